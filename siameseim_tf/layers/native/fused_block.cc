// Fused element-wise kernels of a transformer block for graph-mode training: LayerNorm
// (forward keeps its float32 statistics for the backward), exact GELU, softmax's backward.
// TensorFlow runs each element-wise op of these expressions (and of their gradients) as its
// own pass over memory; each kernel here is one pass, split over the intra-op threads.
// The maths is in fused_block_math.cc; siameseim_tf/layers/native/__init__.py builds this
// file and siameseim_tf/layers/fused.py uses it. Types: float32 and bfloat16.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"
#include "fused_block.h"
#include "row_glue.h"

using namespace tensorflow;
using simglue::ParallelRows;
using simglue::RowLayout;
using simglue::SumOverRowBlocks;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

namespace {

// The bits TensorFlow stores, as the maths file sees them.
template <typename T> struct Bits { using type = T; };
template <> struct Bits<bfloat16> { using type = uint16_t; };

template <typename T>
const typename Bits<T>::type* In(const Tensor& t) {
  return reinterpret_cast<const typename Bits<T>::type*>(t.flat<T>().data());
}
template <typename T>
typename Bits<T>::type* Out(Tensor* t) {
  return reinterpret_cast<typename Bits<T>::type*>(t->flat<T>().data());
}

Status RowStatistics(InferenceContext* c) {  // mean / rstd: the input's shape without its last axis
  ShapeHandle x, rows;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &x));
  TF_RETURN_IF_ERROR(c->Subshape(x, 0, -1, &rows));
  c->set_output(0, x);
  c->set_output(1, rows);
  c->set_output(2, rows);
  return OkStatus();
}

}  // namespace

REGISTER_OP("SimLayerNorm")
    .Input("x: T")              // [..., D]
    .Input("gamma: float")      // [D]
    .Input("beta: float")       // [D]
    .Output("y: T")             // [..., D]
    .Output("mean: float")      // [...]
    .Output("rstd: float")      // [...] 1 / sqrt(var + epsilon)
    .Attr("epsilon: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(RowStatistics);

REGISTER_OP("SimLayerNormGrad")
    .Input("x: T")
    .Input("gamma: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Input("dy: T")
    .Output("dx: T")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return OkStatus();
    });

REGISTER_OP("SimGelu")
    .Input("x: T")
    .Output("y: T")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("SimGeluGrad")
    .Input("x: T")
    .Input("dy: T")
    .Output("dx: T")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("SimSoftmaxGrad")
    .Input("y: T")    // softmax's output, [..., N]
    .Input("dy: T")
    .Output("dz: T")  // gradient with respect to softmax's input
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("SimBiasGelu")
    .Input("x: T")     // [..., C]
    .Input("bias: T")  // [C]
    .Output("y: T")    // GELU(x + bias)
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("SimBiasGeluGrad")
    .Input("x: T")
    .Input("bias: T")
    .Input("dy: T")
    .Output("dx: T")   // the gradient w.r.t. x (and x + bias)
    .Output("db: T")   // [C], summed in float32
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return OkStatus();
    });

REGISTER_OP("SimBiasAdd")
    .Input("x: T")     // [..., C]
    .Input("bias: T")  // [C]
    .Output("y: T")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("SimBiasAddResidual")
    .Input("x: T")         // [..., C]
    .Input("bias: T")      // [C]
    .Input("residual: T")  // x's shape
    .Output("y: T")        // residual + (x + bias); its gradient: dy, SimBiasAddGrad(dy), dy
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("SimBiasAddGrad")
    .Input("dy: T")    // [..., C]
    .Output("db: T")   // [C], summed in float32
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle dy;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &dy));
      c->set_output(0, c->Vector(c->Dim(dy, -1)));
      return OkStatus();
    });

// Checks shared by the kernels: same shape for the paired inputs, a [D] vector for gamma.
#define SIM_REQUIRE_SAME_SHAPE(ctx, a, b)                                                   \
  OP_REQUIRES(ctx, (a).shape() == (b).shape(),                                            \
              errors::InvalidArgument("shapes differ: ", (a).shape().DebugString(), " vs ", \
                                      (b).shape().DebugString()))

template <typename T>
class SimLayerNormOp : public OpKernel {
 public:
  explicit SimLayerNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &gamma = ctx->input(1), &beta = ctx->input(2);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowLayout(x, "x", &rows, &width));
    OP_REQUIRES(ctx, gamma.NumElements() == width && beta.NumElements() == width,
                errors::InvalidArgument("gamma and beta need ", width, " elements"));
    TensorShape row_shape = x.shape();
    row_shape.RemoveLastDims(1);
    Tensor *y, *mean, *rstd;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, row_shape, &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, row_shape, &rstd));
    if (rows == 0 || width == 0) return;
    ParallelRows(ctx, rows, 12 * width, [&](int64_t begin, int64_t end) {
      simblock::LayerNormForward(In<T>(x), gamma.flat<float>().data(), beta.flat<float>().data(),
                                 epsilon_, width, begin, end, Out<T>(y),
                                 mean->flat<float>().data(), rstd->flat<float>().data());
    });
  }

 private:
  float epsilon_;
};

template <typename T>
class SimLayerNormGradOp : public OpKernel {
 public:
  explicit SimLayerNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &gamma = ctx->input(1), &mean = ctx->input(2);
    const Tensor &rstd = ctx->input(3), &dy = ctx->input(4);
    SIM_REQUIRE_SAME_SHAPE(ctx, x, dy);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowLayout(x, "x", &rows, &width));
    OP_REQUIRES(ctx, gamma.NumElements() == width,
                errors::InvalidArgument("gamma needs ", width, " elements"));
    OP_REQUIRES(ctx, mean.NumElements() == rows && rstd.NumElements() == rows,
                errors::InvalidArgument("mean and rstd need ", rows, " elements"));
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, gamma.shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, gamma.shape(), &dbeta));
    const std::vector<float> sums = SumOverRowBlocks(
        ctx, rows, width, 2, 20 * width, [&](int64_t begin, int64_t end, float* partial) {
          simblock::LayerNormBackward(In<T>(x), gamma.flat<float>().data(),
                                      mean.flat<float>().data(), rstd.flat<float>().data(),
                                      In<T>(dy), width, begin, end, Out<T>(dx), partial,
                                      partial + width);
        });
    std::copy(sums.begin(), sums.begin() + width, dgamma->flat<float>().data());
    std::copy(sums.begin() + width, sums.end(), dbeta->flat<float>().data());
  }
};

template <typename T>
class SimGeluOp : public OpKernel {
 public:
  explicit SimGeluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    ParallelRows(ctx, x.NumElements(), 40, [&](int64_t begin, int64_t end) {
      simblock::GeluForward(In<T>(x), begin, end, Out<T>(y));
    });
  }
};

template <typename T>
class SimGeluGradOp : public OpKernel {
 public:
  explicit SimGeluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &dy = ctx->input(1);
    SIM_REQUIRE_SAME_SHAPE(ctx, x, dy);
    Tensor* dx;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    ParallelRows(ctx, x.NumElements(), 60, [&](int64_t begin, int64_t end) {
      simblock::GeluBackward(In<T>(x), In<T>(dy), begin, end, Out<T>(dx));
    });
  }
};

template <typename T>
class SimSoftmaxGradOp : public OpKernel {
 public:
  explicit SimSoftmaxGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &y = ctx->input(0), &dy = ctx->input(1);
    SIM_REQUIRE_SAME_SHAPE(ctx, y, dy);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowLayout(y, "y", &rows, &width));
    Tensor* dz;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, y.shape(), &dz));
    if (rows == 0) return;
    ParallelRows(ctx, rows, 8 * width, [&](int64_t begin, int64_t end) {
      simblock::SoftmaxBackward(In<T>(y), In<T>(dy), width, begin, end, Out<T>(dz));
    });
  }
};

// A bias gradient summed in float32, written in the op's type.
template <typename T>
void WriteSums(const std::vector<float>& sums, Tensor* db) {
  auto out = db->flat<T>();
  for (int64_t i = 0; i < out.size(); ++i) out(i) = static_cast<T>(sums[i]);
}

// x [..., C] and a bias [C] of its width (the bias ops' check).
Status RowsAndBias(const Tensor& x, const Tensor& bias, int64_t* rows, int64_t* width) {
  TF_RETURN_IF_ERROR(RowLayout(x, "x", rows, width));
  if (bias.dims() != 1 || bias.dim_size(0) != *width)
    return errors::InvalidArgument("bias must be [", *width, "], got ", bias.shape().DebugString());
  return OkStatus();
}

template <typename T>
class SimBiasGeluGradOp : public OpKernel {
 public:
  explicit SimBiasGeluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &bias = ctx->input(1), &dy = ctx->input(2);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowsAndBias(x, bias, &rows, &width));
    SIM_REQUIRE_SAME_SHAPE(ctx, x, dy);
    Tensor *dx, *db;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({width}), &db));
    const std::vector<float> sums = SumOverRowBlocks(
        ctx, rows, width, 1, 60 * width, [&](int64_t begin, int64_t end, float* partial) {
          simblock::BiasGeluBackward(In<T>(x), In<T>(bias), In<T>(dy), width, begin, end,
                                     Out<T>(dx), partial);
        });
    WriteSums<T>(sums, db);
  }
};

// SimBiasAdd (y = x + bias) and SimBiasGelu (y = GELU(x + bias)), row by row.
template <typename T, bool kGelu>
class SimBiasRowsOp : public OpKernel {
 public:
  explicit SimBiasRowsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &bias = ctx->input(1);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowsAndBias(x, bias, &rows, &width));
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    if (rows == 0) return;
    ParallelRows(ctx, rows, (kGelu ? 40 : 2) * width, [&](int64_t begin, int64_t end) {
      if (kGelu)
        simblock::BiasGeluForward(In<T>(x), In<T>(bias), width, begin, end, Out<T>(y));
      else
        simblock::BiasAdd(In<T>(x), In<T>(bias), width, begin, end, Out<T>(y));
    });
  }
};

template <typename T>
class SimBiasAddResidualOp : public OpKernel {
 public:
  explicit SimBiasAddResidualOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &bias = ctx->input(1), &residual = ctx->input(2);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowsAndBias(x, bias, &rows, &width));
    SIM_REQUIRE_SAME_SHAPE(ctx, x, residual);
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    if (rows == 0) return;
    ParallelRows(ctx, rows, 3 * width, [&](int64_t begin, int64_t end) {
      simblock::BiasAddResidual(In<T>(x), In<T>(bias), In<T>(residual), width, begin, end,
                                Out<T>(y));
    });
  }
};

template <typename T>
class SimBiasAddGradOp : public OpKernel {
 public:
  explicit SimBiasAddGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    int64_t rows, width;
    OP_REQUIRES_OK(ctx, RowLayout(dy, "dy", &rows, &width));
    Tensor* db;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({width}), &db));
    const std::vector<float> sums = SumOverRowBlocks(
        ctx, rows, width, 1, 2 * width, [&](int64_t begin, int64_t end, float* partial) {
          simblock::BiasGradRows(In<T>(dy), width, begin, end, partial);
        });
    WriteSums<T>(sums, db);
  }
};

#define SIM_REGISTER(T)                                                                     \
  REGISTER_KERNEL_BUILDER(Name("SimLayerNorm").Device(DEVICE_CPU).TypeConstraint<T>("T"),    \
                          SimLayerNormOp<T>);                                               \
  REGISTER_KERNEL_BUILDER(Name("SimLayerNormGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          SimLayerNormGradOp<T>);                                           \
  REGISTER_KERNEL_BUILDER(Name("SimGelu").Device(DEVICE_CPU).TypeConstraint<T>("T"),         \
                          SimGeluOp<T>);                                                    \
  REGISTER_KERNEL_BUILDER(Name("SimGeluGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
                          SimGeluGradOp<T>);                                                \
  REGISTER_KERNEL_BUILDER(Name("SimSoftmaxGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),  \
                          SimSoftmaxGradOp<T>);                                             \
  REGISTER_KERNEL_BUILDER(Name("SimBiasGelu").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
                          (SimBiasRowsOp<T, true>));                                        \
  REGISTER_KERNEL_BUILDER(Name("SimBiasGeluGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          SimBiasGeluGradOp<T>);                                            \
  REGISTER_KERNEL_BUILDER(Name("SimBiasAdd").Device(DEVICE_CPU).TypeConstraint<T>("T"),      \
                          (SimBiasRowsOp<T, false>));                                       \
  REGISTER_KERNEL_BUILDER(                                                                  \
      Name("SimBiasAddResidual").Device(DEVICE_CPU).TypeConstraint<T>("T"),                 \
      SimBiasAddResidualOp<T>);                                                             \
  REGISTER_KERNEL_BUILDER(Name("SimBiasAddGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),  \
                          SimBiasAddGradOp<T>);

SIM_REGISTER(float)
SIM_REGISTER(bfloat16)
