// Shared between fused_views.cc (TensorFlow glue) and fused_views_math.cc (the maths).
#ifndef SIAMESEIM_FUSED_VIEWS_H_
#define SIAMESEIM_FUSED_VIEWS_H_

#include <cstdint>
#include <vector>

namespace sim {

struct ViewSpec {
  int top, left, height, width;  // region in the original image
  bool flip;
  bool jitter, grayscale, blur, solarize;
  int order[4];  // 0 brightness, 1 contrast, 2 saturation, 3 hue
  float brightness, contrast, saturation, hue, sigma;
};

// One view: interleaved [size, size, 3] float32, ImageNet-normalised, written to `out`.
void RenderView(const uint8_t* image, int width, const ViewSpec& spec, int size, bool bicubic,
                bool antialias, std::vector<float>* buf, float* out);

}  // namespace sim

#endif  // SIAMESEIM_FUSED_VIEWS_H_
