// TensorFlow glue shared by the op libraries that work row by row on [..., width] tensors
// (fused_block.cc, batch_norm.cc): the row view of a tensor, the split of rows over the
// intra-op threads, and column sums that do not depend on the thread count.
#ifndef SIAMESEIM_ROW_GLUE_H_
#define SIAMESEIM_ROW_GLUE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"

namespace simglue {

using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
namespace errors = tensorflow::errors;

inline void ParallelRows(OpKernelContext* ctx, int64_t rows, int64_t cost_per_row,
                         const std::function<void(int64_t, int64_t)>& work) {
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(rows, cost_per_row, work);
}

// Column sums of per-row contributions: `add_rows(begin, end, sums)` adds rows [begin, end)
// into `count` consecutive [width] float32 arrays. One partial sum per fixed block of 64
// rows, added in block order, so the result does not depend on the thread count.
inline std::vector<float> SumOverRowBlocks(
    OpKernelContext* ctx, int64_t rows, int64_t width, int count, int64_t cost_per_row,
    const std::function<void(int64_t, int64_t, float*)>& add_rows) {
  constexpr int64_t kBlockRows = 64;
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows, size = count * width;
  std::vector<float> partial(blocks * size, 0.0f), total(size, 0.0f);
  ParallelRows(ctx, blocks, cost_per_row * kBlockRows, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b)
      add_rows(b * kBlockRows, std::min(rows, (b + 1) * kBlockRows), partial.data() + b * size);
  });
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < size; ++i) total[i] += partial[b * size + i];
  return total;
}

// A [..., width] tensor as `rows` rows of `width` elements.
inline Status RowLayout(const Tensor& t, const char* name, int64_t* rows, int64_t* width) {
  if (t.dims() < 1) return errors::InvalidArgument(name, " needs a last axis");
  *width = t.dim_size(t.dims() - 1);
  *rows = *width ? t.NumElements() / *width : 0;
  return tensorflow::OkStatus();
}

}  // namespace simglue

#endif  // SIAMESEIM_ROW_GLUE_H_
