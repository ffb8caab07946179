// Multi-head self-attention as two C++ TensorFlow ops for graph-mode float32 training:
// SimAttention (qkv projection -> attention output and the softmax probabilities, kept for
// the backward) and SimAttentionGrad (-> the qkv gradient). TensorFlow's path transposes
// q, k, v into [B, H, T, hd], runs batched matmuls, a softmax and their gradients as
// separate passes; here each (batch, head) pair is done start to finish while its matrices
// are in cache. The maths is in attention_math.cc; siameseim_tf/layers/fused.py uses it.

#include <cstdint>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"
#include "attention.h"

using namespace tensorflow;
using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

namespace {

// qkv [B, T, 3 * heads * head_dim] -> the shape of one (batch, head) problem.
Status QkvLayout(const Tensor& qkv, int64_t heads, int64_t* batch, simattention::Shape* shape) {
  if (qkv.dims() != 3)
    return errors::InvalidArgument("qkv must be [batch, tokens, 3 * width], got ",
                                   qkv.shape().DebugString());
  const int64_t width3 = qkv.dim_size(2);
  if (heads < 1 || width3 % (3 * heads) != 0)
    return errors::InvalidArgument("qkv's last axis (", width3, ") is not 3 * num_heads (",
                                   heads, ") * head_dim");
  *batch = qkv.dim_size(0);
  *shape = {qkv.dim_size(1), heads, width3 / (3 * heads)};
  return OkStatus();
}

// The bias as the maths takes it: [3D] -> its data, [0] (no bias) -> null.
Status BiasData(const Tensor& bias, const Tensor& qkv, const float** data) {
  if (bias.dims() != 1 || (bias.dim_size(0) != 0 && bias.dim_size(0) != qkv.dim_size(2)))
    return errors::InvalidArgument("bias must be [", qkv.dim_size(2), "] (or [0]: none), got ",
                                   bias.shape().DebugString());
  *data = bias.NumElements() == 0 ? nullptr : bias.flat<float>().data();
  return OkStatus();
}

void ParallelItems(OpKernelContext* ctx, int64_t items, const simattention::Shape& s,
                   const std::function<void(int64_t, int64_t)>& work) {
  const int64_t cost = 6 * s.tokens * s.tokens * s.head_dim;  // ~ per (batch, head), cycles
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(items, cost, work);
}

}  // namespace

REGISTER_OP("SimAttention")
    .Input("qkv: float")    // [B, T, 3 * D], D = num_heads * head_dim; q, k, v then heads
    .Input("bias: float")   // [3 * D] added to qkv, or [0]: none
    .Output("out: float")   // [B, T, D]
    .Output("probs: float") // [B, num_heads, T, T]
    .Attr("num_heads: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle qkv;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &qkv));
      int64_t heads;
      TF_RETURN_IF_ERROR(c->GetAttr("num_heads", &heads));
      DimensionHandle width, tokens = c->Dim(qkv, 1);
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(qkv, 2), 3, /*evenly_divisible=*/true, &width));
      c->set_output(0, c->MakeShape({c->Dim(qkv, 0), tokens, width}));
      c->set_output(1, c->MakeShape({c->Dim(qkv, 0), c->MakeDim(heads), tokens, tokens}));
      return OkStatus();
    });

// The same forward without the probabilities, for branches nothing differentiates (the
// momentum branch): no gradient is registered, so differentiating it is an error.
REGISTER_OP("SimAttentionInference")
    .Input("qkv: float")   // [B, T, 3 * D]
    .Input("bias: float")  // [3 * D] or [0]
    .Output("out: float")  // [B, T, D]
    .Attr("num_heads: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle qkv;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &qkv));
      DimensionHandle width;
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(qkv, 2), 3, /*evenly_divisible=*/true, &width));
      c->set_output(0, c->MakeShape({c->Dim(qkv, 0), c->Dim(qkv, 1), width}));
      return OkStatus();
    });

REGISTER_OP("SimAttentionGrad")
    .Input("qkv: float")
    .Input("bias: float")
    .Input("probs: float")
    .Input("dout: float")
    .Output("dqkv: float")
    .Output("dbias: float")  // the bias' shape: [3 * D] or [0]
    .Attr("num_heads: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return OkStatus();
    });

// SimAttention (keep_probs) and SimAttentionInference (not).
template <bool keep_probs>
class SimAttentionOp : public OpKernel {
 public:
  explicit SimAttentionOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_heads", &heads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &qkv = ctx->input(0), &bias = ctx->input(1);
    int64_t batch;
    simattention::Shape s;
    OP_REQUIRES_OK(ctx, QkvLayout(qkv, heads_, &batch, &s));
    const float* bias_data;
    OP_REQUIRES_OK(ctx, BiasData(bias, qkv, &bias_data));
    Tensor *out, *probs = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({batch, s.tokens, s.heads * s.head_dim}), &out));
    if (keep_probs)
      OP_REQUIRES_OK(ctx, ctx->allocate_output(
                              1, TensorShape({batch, s.heads, s.tokens, s.tokens}), &probs));
    if (out->NumElements() == 0) return;
    float* probs_data = probs == nullptr ? nullptr : probs->flat<float>().data();
    ParallelItems(ctx, batch * s.heads, s, [&](int64_t begin, int64_t end) {
      simattention::AttentionForward(qkv.flat<float>().data(), bias_data, s, begin, end,
                                     out->flat<float>().data(), probs_data);
    });
  }

 private:
  int64_t heads_;
};

class SimAttentionGradOp : public OpKernel {
 public:
  explicit SimAttentionGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_heads", &heads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &qkv = ctx->input(0), &bias = ctx->input(1), &probs = ctx->input(2),
                 &dout = ctx->input(3);
    int64_t batch;
    simattention::Shape s;
    OP_REQUIRES_OK(ctx, QkvLayout(qkv, heads_, &batch, &s));
    const float* bias_data;
    OP_REQUIRES_OK(ctx, BiasData(bias, qkv, &bias_data));
    const TensorShape probs_shape({batch, s.heads, s.tokens, s.tokens});
    const TensorShape out_shape({batch, s.tokens, s.heads * s.head_dim});
    OP_REQUIRES(ctx, probs.shape() == probs_shape && dout.shape() == out_shape,
                errors::InvalidArgument("probs / dout must be ", probs_shape.DebugString(),
                                        " / ", out_shape.DebugString(), ", got ",
                                        probs.shape().DebugString(), " / ",
                                        dout.shape().DebugString()));
    Tensor *dqkv, *dbias;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, qkv.shape(), &dqkv));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, bias.shape(), &dbias));
    if (bias_data != nullptr) dbias->flat<float>().setZero();  // stays so without tokens
    if (dqkv->NumElements() == 0) return;
    // Each pair sums its own columns of dqkv into row b of dbias_rows (no two pairs write
    // the same place); the rows are summed over the batch here.
    Tensor dbias_rows;
    float* rows = nullptr;
    if (bias_data != nullptr) {
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_FLOAT, TensorShape({batch, qkv.dim_size(2)}),
                                             &dbias_rows));
      rows = dbias_rows.flat<float>().data();
    }
    ParallelItems(ctx, batch * s.heads, s, [&](int64_t begin, int64_t end) {
      simattention::AttentionBackward(qkv.flat<float>().data(), bias_data,
                                      probs.flat<float>().data(), dout.flat<float>().data(), s,
                                      begin, end, dqkv->flat<float>().data(), rows);
    });
    if (rows != nullptr) {
      float* sum = dbias->flat<float>().data();
      const int64_t width3 = qkv.dim_size(2);
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j < width3; ++j) sum[j] += rows[b * width3 + j];
    }
  }

 private:
  int64_t heads_;
};

REGISTER_KERNEL_BUILDER(Name("SimAttention").Device(DEVICE_CPU), SimAttentionOp<true>);
REGISTER_KERNEL_BUILDER(Name("SimAttentionInference").Device(DEVICE_CPU),
                        SimAttentionOp<false>);
REGISTER_KERNEL_BUILDER(Name("SimAttentionGrad").Device(DEVICE_CPU), SimAttentionGradOp);
