// SimFusedViews: crop + flip + resize + colour pipeline + normalisation of K views of one
// image in one CPU kernel (siameseim_tf/data/native/__init__.py builds and loads it).
//
// It computes exactly what the TensorFlow-op path of siameseim_tf/data does
// (resize.py, color.py: PIL's resampling weights, torchvision's colour semantics, method §1),
// in float32, without the intermediate tensors and per-operation overhead of that path.
// The maths is in fused_views_math.cc; this file is the TensorFlow op around it.
// tests/data/test_data_native.py checks the two against each other.

#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "fused_views.h"

using namespace tensorflow;

REGISTER_OP("SimFusedViews")
    .Input("image: uint8")         // [H, W, 3]
    .Input("regions: int32")       // [K, 4] top, left (original frame), height, width
    .Input("flips: bool")          // [K]
    .Input("factors: float")       // [K, 5] brightness, contrast, saturation, hue, sigma
    .Input("order: int32")         // [K, 4] permutation of 0..3 (b, c, s, h)
    .Input("flags: bool")          // [K, 4] jitter, grayscale, blur, solarize
    .Output("views: K * float")    // K x [S, S, 3], ImageNet-normalised
    .Attr("K: int >= 1")
    .Attr("size: int")
    .Attr("bicubic: bool = true")
    .Attr("antialias: bool = true")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      int size;
      TF_RETURN_IF_ERROR(c->GetAttr("size", &size));
      for (int k = 0; k < c->num_outputs(); ++k) c->set_output(k, c->MakeShape({size, size, 3}));
      return OkStatus();
    });

class SimFusedViewsOp : public OpKernel {
 public:
  explicit SimFusedViewsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("size", &size_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("bicubic", &bicubic_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("antialias", &antialias_));
    OP_REQUIRES(ctx, size_ > 0, errors::InvalidArgument("size must be positive"));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& image = ctx->input(0);
    const Tensor& regions = ctx->input(1);
    OP_REQUIRES(ctx, image.dims() == 3 && image.dim_size(2) == 3,
                errors::InvalidArgument("image must be [H, W, 3]"));
    OP_REQUIRES(ctx, regions.dims() == 2 && regions.dim_size(1) == 4,
                errors::InvalidArgument("regions must be [K, 4]"));
    const int views = regions.dim_size(0);
    for (int i = 1; i < 6; ++i)
      OP_REQUIRES(ctx, ctx->input(i).dim_size(0) == views,
                  errors::InvalidArgument("every per-view input needs K rows"));
    const int height = image.dim_size(0), width = image.dim_size(1);
    auto reg = regions.matrix<int32>();
    auto flips = ctx->input(2).vec<bool>();
    auto factors = ctx->input(3).matrix<float>();
    auto order = ctx->input(4).matrix<int32>();
    auto flags = ctx->input(5).matrix<bool>();
    OP_REQUIRES(ctx, views == ctx->num_outputs(),
                errors::InvalidArgument("regions must have K rows"));
    const uint8_t* pixels = image.flat<uint8>().data();
    const int count = size_ * size_;
    // scratch reused across calls by this thread: fresh MB-sized buffers cost page faults
    thread_local std::vector<float> buf;
    for (int k = 0; k < views; ++k) {
      sim::ViewSpec spec;
      spec.top = reg(k, 0), spec.left = reg(k, 1), spec.height = reg(k, 2), spec.width = reg(k, 3);
      OP_REQUIRES(ctx, spec.top >= 0 && spec.left >= 0 && spec.height > 0 && spec.width > 0 &&
                           spec.top + spec.height <= height && spec.left + spec.width <= width,
                  errors::InvalidArgument("region outside the image"));
      spec.flip = flips(k);
      spec.jitter = flags(k, 0), spec.grayscale = flags(k, 1), spec.blur = flags(k, 2);
      spec.solarize = flags(k, 3);
      for (int i = 0; i < 4; ++i) spec.order[i] = order(k, i);
      spec.brightness = factors(k, 0), spec.contrast = factors(k, 1);
      spec.saturation = factors(k, 2), spec.hue = factors(k, 3), spec.sigma = factors(k, 4);
      Tensor* output = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(k, TensorShape({size_, size_, 3}), &output));
      float* x = output->flat<float>().data();
      sim::RenderView(pixels, width, spec, size_, bicubic_, antialias_, &buf, x);
    }
  }

 private:
  int size_;
  bool bicubic_, antialias_;
};

REGISTER_KERNEL_BUILDER(Name("SimFusedViews").Device(DEVICE_CPU), SimFusedViewsOp);
