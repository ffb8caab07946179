// Shared between batch_norm.cc (TensorFlow glue) and batch_norm_math.cc (the maths).
// BatchNorm over the channels of a row-major float32 [rows, width] tensor, statistics over
// the rows (every token of the batch). Each function works on rows [begin, end), so the
// glue can split the rows over TensorFlow's intra-op threads; the column sums are added to
// [width] float32 partial sums the glue combines in a fixed order.
#ifndef SIAMESEIM_BATCH_NORM_H_
#define SIAMESEIM_BATCH_NORM_H_

#include <cstdint>

namespace simbn {

// sums[0:width] += x - center, sums[width:2 width] += (x - center)^2, per column.
void CenteredMoments(const float* x, const float* center, int64_t width, int64_t begin,
                     int64_t end, float* sums);

// sums[0:width] += dy, sums[width:2 width] += dy * (x - center), per column.
void CenteredDot(const float* x, const float* dy, const float* center, int64_t width,
                 int64_t begin, int64_t end, float* sums);

// Per column: y = (a - center) * scale_a + shift, or with b:
// y = a * scale_a + (b - center) * scale_b + shift. The centre is subtracted first: folding
// it into the shift loses precision when |center| is large against the spread.
void ChannelAffine(const float* a, const float* center, const float* scale_a, const float* b,
                   const float* scale_b, const float* shift, int64_t width, int64_t begin,
                   int64_t end, float* y);

}  // namespace simbn

#endif  // SIAMESEIM_BATCH_NORM_H_
