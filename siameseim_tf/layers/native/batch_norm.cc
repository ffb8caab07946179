// BatchNorm over the channels with statistics over every other axis (TokenBatchNorm) as
// C++ ops for graph-mode training, float32: the passes of its forward (two for the exact
// mean and variance, one to normalise) and backward (one for both channel sums, one for
// the input gradient). TensorFlow's ops and their automatic gradient take ~20 passes. The
// statistics are returned as [2, C] sums so the caller can add them over replicas (sync
// BatchNorm) between the passes. The maths is in batch_norm_math.cc;
// siameseim_tf/layers/fused.py uses it.

#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "batch_norm.h"
#include "row_glue.h"

using namespace tensorflow;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;
using simglue::ParallelRows;
using simglue::RowLayout;
using simglue::SumOverRowBlocks;

namespace {

Status ChannelSumsShape(InferenceContext* c) {  // [2, C]
  ShapeHandle x;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &x));
  c->set_output(0, c->Matrix(2, c->Dim(x, -1)));
  return OkStatus();
}

// Every [C] vector input of `ctx` from `first` on must have the width of x's last axis.
Status CheckChannelVectors(OpKernelContext* ctx, int first, int64_t width) {
  for (int i = first; i < ctx->num_inputs(); ++i) {
    const Tensor& v = ctx->input(i);
    if (v.dims() != 1 || v.dim_size(0) != width)
      return errors::InvalidArgument("per-channel input ", i, " must be [", width, "], got ",
                                     v.shape().DebugString());
  }
  return OkStatus();
}

Status SameShape(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    return errors::InvalidArgument("the two [..., C] inputs differ in shape: ",
                                   a.shape().DebugString(), " vs ", b.shape().DebugString());
  return OkStatus();
}

void WriteSums(OpKernelContext* ctx, int64_t width, const std::vector<float>& sums) {
  Tensor* out;
  OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({2, width}), &out));
  std::copy(sums.begin(), sums.end(), out->flat<float>().data());
}

}  // namespace

REGISTER_OP("SimChannelMoments")
    .Input("x: float")       // [..., C]
    .Input("center: float")  // [C]
    .Output("sums: float")   // [2, C]: sum(x - center), sum((x - center)^2) over all but C
    .SetShapeFn(ChannelSumsShape);

REGISTER_OP("SimChannelDot")
    .Input("x: float")       // [..., C]
    .Input("dy: float")      // [..., C]
    .Input("center: float")  // [C]
    .Output("sums: float")   // [2, C]: sum(dy), sum(dy * (x - center))
    .SetShapeFn(ChannelSumsShape);

REGISTER_OP("SimChannelAffine")
    .Input("a: float")        // [..., C]
    .Input("center: float")   // [C]
    .Input("scale_a: float")  // [C]
    .Input("shift: float")    // [C]
    .Output("y: float")       // (a - center) * scale_a + shift
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("SimChannelAffine2")
    .Input("a: float")        // [..., C]
    .Input("b: float")        // [..., C]
    .Input("center: float")   // [C]
    .Input("scale_a: float")  // [C]
    .Input("scale_b: float")  // [C]
    .Input("shift: float")    // [C]
    .Output("y: float")       // a * scale_a + (b - center) * scale_b + shift
    .SetShapeFn(shape_inference::UnchangedShape);

class SimChannelMomentsOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &center = ctx->input(1);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowLayout(x, "x", &rows, &width));
    OP_REQUIRES_OK(ctx, CheckChannelVectors(ctx, 1, width));
    WriteSums(ctx, width, SumOverRowBlocks(ctx, rows, width, 2, 3 * width,
                                           [&](int64_t begin, int64_t end, float* partial) {
                                             simbn::CenteredMoments(
                                                 x.flat<float>().data(),
                                                 center.flat<float>().data(), width, begin,
                                                 end, partial);
                                           }));
  }
};

class SimChannelDotOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &dy = ctx->input(1), &center = ctx->input(2);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowLayout(x, "x", &rows, &width));
    OP_REQUIRES_OK(ctx, SameShape(x, dy));
    OP_REQUIRES_OK(ctx, CheckChannelVectors(ctx, 2, width));
    WriteSums(ctx, width, SumOverRowBlocks(ctx, rows, width, 2, 4 * width,
                                           [&](int64_t begin, int64_t end, float* partial) {
                                             simbn::CenteredDot(x.flat<float>().data(),
                                                                dy.flat<float>().data(),
                                                                center.flat<float>().data(),
                                                                width, begin, end, partial);
                                           }));
  }
};

// SimChannelAffine (one [..., C] input) and SimChannelAffine2 (two).
template <int kInputs>
class SimChannelAffineOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(kInputs - 1);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowLayout(a, "a", &rows, &width));
    OP_REQUIRES_OK(ctx, SameShape(a, b));
    OP_REQUIRES_OK(ctx, CheckChannelVectors(ctx, kInputs, width));
    const float* center = ctx->input(kInputs).flat<float>().data();
    const float* scale_a = ctx->input(kInputs + 1).flat<float>().data();
    const float* scale_b = kInputs == 2 ? ctx->input(kInputs + 2).flat<float>().data() : nullptr;
    const float* shift = ctx->input(ctx->num_inputs() - 1).flat<float>().data();
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, a.shape(), &y));
    if (rows == 0) return;
    ParallelRows(ctx, rows, (2 * kInputs + 1) * width, [&](int64_t begin, int64_t end) {
      simbn::ChannelAffine(a.flat<float>().data(), center, scale_a,
                           kInputs == 2 ? b.flat<float>().data() : nullptr, scale_b, shift,
                           width, begin, end, y->flat<float>().data());
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("SimChannelMoments").Device(DEVICE_CPU), SimChannelMomentsOp);
REGISTER_KERNEL_BUILDER(Name("SimChannelDot").Device(DEVICE_CPU), SimChannelDotOp);
REGISTER_KERNEL_BUILDER(Name("SimChannelAffine").Device(DEVICE_CPU), SimChannelAffineOp<1>);
REGISTER_KERNEL_BUILDER(Name("SimChannelAffine2").Device(DEVICE_CPU), SimChannelAffineOp<2>);
