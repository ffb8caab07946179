// The per-view computation of SimFusedViews (fused_views.cc), free of TensorFlow headers
// so that it can be compiled for the build machine's CPU (-march=native) while the
// TensorFlow glue keeps TensorFlow's own flags.
//
// Same maths as the TF-op path (resize.py, color.py), laid out for the compiler's
// vectoriser: the view is kept as three planes [3][S][S] between steps (every colour step
// is then a loop over contiguous floats), the resize's row pass runs over whole source rows
// and its column pass over blocks of 16 output columns (a small dense band matrix per
// block), and `__restrict__` tells the compiler that buffers do not overlap.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fused_views.h"

namespace {

constexpr float kGray[3] = {0.299f, 0.587f, 0.114f};
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
constexpr int kBlurTaps = 13;
constexpr int kBlock = 16;  // output columns per block of the column pass

inline float Clip01(float v) { return std::min(std::max(v, 0.0f), 1.0f); }

inline float Bicubic(float x) {
  const float a = -0.5f;
  x = std::fabs(x);
  if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  if (x < 2.0f) return (((x - 5.0f) * x + 8.0f) * x - 4.0f) * a;
  return 0.0f;
}

inline float Triangle(float x) { return std::max(1.0f - std::fabs(x), 0.0f); }

// PIL's precompute_coeffs, same float32 formula as resize.py: `taps` weights per output.
struct Taps {
  int taps = 0;
  std::vector<int> first;     // [out]
  std::vector<float> weight;  // [out, taps]
};

void ComputeTaps(int in_size, int out_size, bool bicubic, bool antialias, Taps* t) {
  const float n = static_cast<float>(in_size);
  const float scale = n / out_size;
  const float stretch = antialias ? std::max(scale, 1.0f) : 1.0f;
  const float support = (bicubic ? 2.0f : 1.0f) * stretch;
  t->taps = static_cast<int>(std::ceil(2.0f * support)) + 1;
  t->first.assign(out_size, 0);
  t->weight.assign(static_cast<size_t>(out_size) * t->taps, 0.0f);
  for (int o = 0; o < out_size; ++o) {
    const float center = (o + 0.5f) * scale;
    const float lo = std::max(std::floor(center - support + 0.5f), 0.0f);
    const float hi = std::min(std::floor(center + support + 0.5f), n);
    float* w = &t->weight[static_cast<size_t>(o) * t->taps];
    float sum = 0.0f;
    for (int k = 0; k < t->taps; ++k) {
      const float x = lo + k;
      const float arg = (x + 0.5f - center) / stretch;
      w[k] = x < hi ? (bicubic ? Bicubic(arg) : Triangle(arg)) : 0.0f;
      sum += w[k];
    }
    for (int k = 0; k < t->taps; ++k) w[k] /= sum;
    t->first[o] = static_cast<int>(lo);
  }
}

// Row pass: rows[r][x * 3 + ch] = sum_k wv[r][k] * source[first_r + k][x * 3 + ch].
__attribute__((noinline)) void RowPass(const uint8_t* __restrict__ image, int width, int top, int left, int h, int w,
             const Taps& vt, int size, float* __restrict__ rows) {
  const int row_len = w * 3;
  for (int r = 0; r < size; ++r) {
    float* __restrict__ dst = rows + static_cast<size_t>(r) * row_len;
    bool first = true;  // the first tap assigns: no separate zeroing pass
    for (int k = 0; k < vt.taps; ++k) {
      const float wk = vt.weight[static_cast<size_t>(r) * vt.taps + k];
      const int y = vt.first[r] + k;
      if (wk == 0.0f || y >= h) continue;
      const uint8_t* __restrict__ src = image + (static_cast<size_t>(top + y) * width + left) * 3;
      if (first) {
        for (int i = 0; i < row_len; ++i) dst[i] = wk * static_cast<float>(src[i]);
        first = false;
      } else {
        for (int i = 0; i < row_len; ++i) dst[i] += wk * static_cast<float>(src[i]);
      }
    }
    if (first) std::fill(dst, dst + row_len, 0.0f);  // no tap (cannot happen: rows sum to 1)
  }
}

// 16 floats as one value (GCC vector extension): the column pass's multiply-add is written
// on it directly; the auto-vectoriser scattered a float[16] accumulator over registers.
typedef float Vec16 __attribute__((vector_size(kBlock * sizeof(float))));

// Column pass into planes [3][S][S] (in [0, 1]): per block of 16 output columns, a dense
// band matrix band[x] (input column x -> its weight for each of the 16 output columns),
// so the inner loop is one 16-wide multiply-add. Output column c uses the weights of
// column S-1-c when flipped.
__attribute__((noinline)) void ColumnPass(const float* __restrict__ rows, int w, const Taps& ht,
                                          int size, bool flip, float* __restrict__ planes) {
  const int row_len = w * 3;
  std::vector<Vec16> band;
  for (int c0 = 0; c0 < size; c0 += kBlock) {
    const int cols = std::min(kBlock, size - c0);
    int lo = w, hi = 0;
    for (int j = 0; j < cols; ++j) {
      const int o = flip ? size - 1 - (c0 + j) : c0 + j;
      lo = std::min(lo, ht.first[o]);
      hi = std::max(hi, std::min(ht.first[o] + ht.taps, w));
    }
    const int span = hi - lo;
    band.assign(span, Vec16{});
    for (int j = 0; j < cols; ++j) {
      const int o = flip ? size - 1 - (c0 + j) : c0 + j;
      for (int k = 0; k < ht.taps; ++k) {
        const int x = ht.first[o] + k;
        if (x < w) band[x - lo][j] = ht.weight[o * ht.taps + k];
      }
    }
    for (int r = 0; r < size; ++r) {
      const float* __restrict__ src = rows + static_cast<size_t>(r) * row_len + lo * 3;
      Vec16 acc[3] = {Vec16{}, Vec16{}, Vec16{}};
      for (int x = 0; x < span; ++x) {
        const Vec16 bw = band[x];
        acc[0] += bw * src[x * 3];
        acc[1] += bw * src[x * 3 + 1];
        acc[2] += bw * src[x * 3 + 2];
      }
      for (int ch = 0; ch < 3; ++ch) {
        float* dst = planes + (static_cast<size_t>(ch) * size + r) * size + c0;
        for (int j = 0; j < cols; ++j) dst[j] = Clip01(acc[ch][j] * (1.0f / 255.0f));
      }
    }
  }
}

struct Planes {
  float* __restrict__ r;
  float* __restrict__ g;
  float* __restrict__ b;
  int n;
};

__attribute__((noinline)) void Brightness(const Planes& p, float f) {
  for (float* __restrict__ x : {p.r, p.g, p.b})
    for (int i = 0; i < p.n; ++i) x[i] = Clip01(x[i] * f);
}

float PlaneMean(const float* __restrict__ x, int n) {
  float partial[16] = {};  // independent partial sums: vectorisable and accurate enough
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += x[i + j];
  double sum = 0.0;
  for (float v : partial) sum += v;
  for (; i < n; ++i) sum += x[i];
  return static_cast<float>(sum / n);
}

__attribute__((noinline)) void Contrast(const Planes& p, float f) {
  const float mean =
      kGray[0] * PlaneMean(p.r, p.n) + kGray[1] * PlaneMean(p.g, p.n) + kGray[2] * PlaneMean(p.b, p.n);
  const float offset = (1.0f - f) * mean;
  for (float* __restrict__ x : {p.r, p.g, p.b})
    for (int i = 0; i < p.n; ++i) x[i] = Clip01(x[i] * f + offset);
}

__attribute__((noinline)) void Saturation(const Planes& p, float f) {
  float* __restrict__ R = p.r;  // local restrict pointers: the vectoriser ignores them in structs
  float* __restrict__ G = p.g;
  float* __restrict__ B = p.b;
  for (int i = 0; i < p.n; ++i) {
    const float gray = (1.0f - f) * (kGray[0] * R[i] + kGray[1] * G[i] + kGray[2] * B[i]);
    R[i] = Clip01(R[i] * f + gray);
    G[i] = Clip01(G[i] * f + gray);
    B[i] = Clip01(B[i] * f + gray);
  }
}

// Same closed form as color.adjust_hue (hexcone HSV, k = (n + 6h) mod 6), branch-free
// so that the loop vectorises.
__attribute__((noinline)) void Hue(float* __restrict__ R, float* __restrict__ G,
                                   float* __restrict__ B, int n, float delta) {
  for (int i = 0; i < n; ++i) {
    const float r = R[i], g = G[i], b = B[i];
    const float v = std::max(std::max(r, g), b);
    const float chroma = v - std::min(std::min(r, g), b);
    const float inv = 1.0f / std::max(chroma, 1e-12f);
    const float h_r = (g - b) * inv, h_g = (b - r) * inv + 2.0f, h_b = (r - g) * inv + 4.0f;
    const float shifted = (r == v ? h_r : (g == v ? h_g : h_b)) + 6.0f * delta;
    float out[3];
    const float offsets[3] = {5.0f, 3.0f, 1.0f};
    for (int ch = 0; ch < 3; ++ch) {
      float k = offsets[ch] + shifted;
      k = k - 6.0f * std::floor(k * (1.0f / 6.0f));
      const float ramp = std::min(std::max(std::min(k, 4.0f - k), 0.0f), 1.0f);
      out[ch] = Clip01(v - chroma * ramp);
    }
    R[i] = out[0];
    G[i] = out[1];
    B[i] = out[2];
  }
}

void Grayscale(const Planes& p) {
  float* __restrict__ R = p.r;
  float* __restrict__ G = p.g;
  float* __restrict__ B = p.b;
  for (int i = 0; i < p.n; ++i) {
    const float gray = kGray[0] * R[i] + kGray[1] * G[i] + kGray[2] * B[i];
    R[i] = G[i] = B[i] = gray;
  }
}

inline int Reflect(int i, int n) {
  i = std::abs(i);
  return i > n - 1 ? 2 * (n - 1) - i : i;
}

// 13-tap Gaussian (keras-cv's kernel) with reflect padding, per plane: horizontal, then
// vertical (whole rows).
__attribute__((noinline)) void Blur(float* __restrict__ plane, int size, const float* kernel, float* __restrict__ tmp) {
  const int r = kBlurTaps / 2;
  thread_local std::vector<float> padded;
  padded.resize(size + 2 * r);
  for (int y = 0; y < size; ++y) {
    const float* src = plane + static_cast<size_t>(y) * size;
    for (int c = -r; c < size + r; ++c) padded[c + r] = src[Reflect(c, size)];
    float* __restrict__ dst = tmp + static_cast<size_t>(y) * size;
    const float* __restrict__ pad = padded.data();
    int c = 0;
    for (; c + kBlock <= size; c += kBlock) {  // 16 columns at a time, explicit vectors
      Vec16 acc{};
      for (int t = 0; t < kBlurTaps; ++t) {
        Vec16 v;
        std::memcpy(&v, pad + c + t, sizeof(v));  // unaligned load
        acc += v * kernel[t];
      }
      std::memcpy(dst + c, &acc, sizeof(acc));
    }
    for (; c < size; ++c) {
      float acc = 0.0f;
      for (int t = 0; t < kBlurTaps; ++t) acc += kernel[t] * pad[c + t];
      dst[c] = acc;
    }
  }
  for (int y = 0; y < size; ++y) {  // vertical: 13 whole source rows per output row
    float* __restrict__ dst = plane + static_cast<size_t>(y) * size;
    const float* src[kBlurTaps];
    for (int t = 0; t < kBlurTaps; ++t) src[t] = tmp + static_cast<size_t>(Reflect(y + t - r, size)) * size;
    int c = 0;
    for (; c + kBlock <= size; c += kBlock) {
      Vec16 acc{};
      for (int t = 0; t < kBlurTaps; ++t) {
        Vec16 v;
        std::memcpy(&v, src[t] + c, sizeof(v));
        acc += v * kernel[t];
      }
      std::memcpy(dst + c, &acc, sizeof(acc));
    }
    for (; c < size; ++c) {
      float acc = 0.0f;
      for (int t = 0; t < kBlurTaps; ++t) acc += kernel[t] * src[t][c];
      dst[c] = acc;
    }
  }
}

void Solarize(const Planes& p) {
  for (float* __restrict__ x : {p.r, p.g, p.b})
    for (int i = 0; i < p.n; ++i) {
      const float step = x[i] * 255.0f >= 128.0f ? 1.0f : 0.0f;
      x[i] = x[i] + step * (1.0f - 2.0f * x[i]);
    }
}

// Planes -> interleaved [S, S, 3], ImageNet-normalised as x * (1/std) + (-mean/std).
__attribute__((noinline)) void NormalizeInterleave(const Planes& p, float* __restrict__ out) {
  const float* __restrict__ R = p.r;
  const float* __restrict__ G = p.g;
  const float* __restrict__ B = p.b;
  const float a0 = 1.0f / kStd[0], a1 = 1.0f / kStd[1], a2 = 1.0f / kStd[2];
  const float b0 = -kMean[0] / kStd[0], b1 = -kMean[1] / kStd[1], b2 = -kMean[2] / kStd[2];
  for (int i = 0; i < p.n; ++i) {  // three consecutive stores per pixel
    out[i * 3] = R[i] * a0 + b0;
    out[i * 3 + 1] = G[i] * a1 + b1;
    out[i * 3 + 2] = B[i] * a2 + b2;
  }
}

}  // namespace

namespace sim {

void RenderView(const uint8_t* image, int width, const ViewSpec& spec, int size, bool bicubic,
                bool antialias, std::vector<float>* buf, float* out) {
  Taps vt, ht;
  ComputeTaps(spec.height, size, bicubic, antialias, &vt);
  ComputeTaps(spec.width, size, bicubic, antialias, &ht);
  const size_t count = static_cast<size_t>(size) * size;
  const size_t rows_len = static_cast<size_t>(size) * spec.width * 3;
  buf->resize(std::max(rows_len, count) + 3 * count);
  float* scratch = buf->data();
  float* planes = scratch + std::max(rows_len, count);
  RowPass(image, width, spec.top, spec.left, spec.height, spec.width, vt, size, scratch);
  ColumnPass(scratch, spec.width, ht, size, spec.flip, planes);
  const Planes p{planes, planes + count, planes + 2 * count, static_cast<int>(count)};
  if (spec.jitter) {
    for (int step = 0; step < 4; ++step) {
      switch (spec.order[step]) {
        case 0: Brightness(p, spec.brightness); break;
        case 1: Contrast(p, spec.contrast); break;
        case 2: Saturation(p, spec.saturation); break;
        case 3: Hue(p.r, p.g, p.b, p.n, spec.hue); break;
      }
    }
  }
  if (spec.grayscale) Grayscale(p);
  if (spec.blur) {
    float kernel[kBlurTaps];
    float sum = 0.0f;
    for (int t = 0; t < kBlurTaps; ++t) {
      const float d = static_cast<float>(t - kBlurTaps / 2);
      kernel[t] = std::exp(-(d * d) / (2.0f * spec.sigma * spec.sigma));
      sum += kernel[t];
    }
    for (float& k : kernel) k /= sum;
    for (float* plane : {p.r, p.g, p.b}) Blur(plane, size, kernel, scratch);
  }
  if (spec.solarize) Solarize(p);
  NormalizeInterleave(p, out);
}

}  // namespace sim
