// BatchNorm's passes over memory, one loop each, compiled for the CPU it runs on
// (-march=native, see siameseim_tf/native_build.py). The inner loops run along a row's
// channels (contiguous), so they vectorise.

#include "batch_norm.h"

namespace simbn {

void CenteredMoments(const float* x, const float* center, int64_t width, int64_t begin,
                     int64_t end, float* sums) {
  float* first = sums;
  float* second = sums + width;
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * width;
    for (int64_t i = 0; i < width; ++i) {
      const float d = xr[i] - center[i];
      first[i] += d;
      second[i] += d * d;
    }
  }
}

void CenteredDot(const float* x, const float* dy, const float* center, int64_t width,
                 int64_t begin, int64_t end, float* sums) {
  float* first = sums;
  float* second = sums + width;
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * width;
    const float* gr = dy + r * width;
    for (int64_t i = 0; i < width; ++i) {
      first[i] += gr[i];
      second[i] += gr[i] * (xr[i] - center[i]);
    }
  }
}

void ChannelAffine(const float* a, const float* center, const float* scale_a, const float* b,
                   const float* scale_b, const float* shift, int64_t width, int64_t begin,
                   int64_t end, float* y) {
  for (int64_t r = begin; r < end; ++r) {
    const float* ar = a + r * width;
    float* yr = y + r * width;
    if (b == nullptr) {
      for (int64_t i = 0; i < width; ++i) yr[i] = (ar[i] - center[i]) * scale_a[i] + shift[i];
    } else {
      const float* br = b + r * width;
      for (int64_t i = 0; i < width; ++i)
        yr[i] = ar[i] * scale_a[i] + (br[i] - center[i]) * scale_b[i] + shift[i];
    }
  }
}

}  // namespace simbn
