// The maths of the fused transformer-block kernels (see fused_block.h), for one CPU:
// compiled with -O3 -march=native, written so that GCC vectorises the inner loops
// (fixed-width partial sums instead of serial float reductions, branch-free erf / exp).
// tests/layers/test_fused_native.py compares every function with TensorFlow's ops.

#include <cmath>
#include <cstring>
#include <vector>

#include "fused_block.h"

namespace simblock {
namespace {

constexpr int kLanes = 16;  // partial sums per reduction: one AVX-512 or two AVX2 registers
constexpr int kChunk = 256;  // elements widened to float32 at a time

inline float Widen(float v) { return v; }
inline float Widen(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline void Narrow(float v, float* out) { *out = v; }
inline void Narrow(float v, uint16_t* out) {
  // round to nearest even, as Eigen::bfloat16 does; NaN stays a (quiet) NaN
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  *out = v != v ? static_cast<uint16_t>((bits >> 16) | 0x40u) : static_cast<uint16_t>(rounded);
}

// A row as float32: the row itself, or widened into `buf`.
inline const float* RowAsFloat(const float* row, int64_t, std::vector<float>*) { return row; }
inline const float* RowAsFloat(const uint16_t* row, int64_t width, std::vector<float>* buf) {
  buf->resize(width);
  for (int64_t i = 0; i < width; ++i) (*buf)[i] = Widen(row[i]);
  return buf->data();
}

// The bias as float32 (each thread keeps its own widening buffer).
template <typename T>
const float* BiasAsFloat(const T* bias, int64_t width) {
  thread_local std::vector<float> buf;
  return RowAsFloat(bias, width, &buf);
}

inline float Sum(const float* v, int64_t n) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += v[i + j];
  float total = 0;
  for (; i < n; ++i) total += v[i];
  for (int j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

inline float SumOfProducts(const float* a, const float* b, int64_t n) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += a[i + j] * b[i + j];
  float total = 0;
  for (; i < n; ++i) total += a[i] * b[i];
  for (int j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

// erf as XLA's CPU backend computes it in float32 (a rational function on [-4, 4], clamped
// beyond): max abs error 4e-7 against libm.
inline float Erf(float x) {
  x = x < -4.0f ? -4.0f : x;  // selects, not fmin / fmax: those do not vectorise
  x = x > 4.0f ? 4.0f : x;
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x * p / q;
}

// exp for x <= 0 (the normal density's exponent): Cephes' range reduction x = n ln2 + r and
// degree-6 polynomial; relative error ~1e-7; below -87 it returns the smallest normal float.
inline float ExpNonPositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return e * scale;
}

constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// y = f(x + bias) over rows [begin, end), the sum in float32.
template <typename T, typename F>
void MapBiasedRows(const T* x, const T* bias, int64_t width, int64_t begin, int64_t end, T* y,
                   F f) {
  const float* b = BiasAsFloat(bias, width);
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * width;
    T* yr = y + r * width;
    for (int64_t i = 0; i < width; ++i) Narrow(f(Widen(xr[i]) + b[i]), yr + i);
  }
}

// GELU'(v) = Phi(v) + v * phi(v).
inline float GeluSlope(float v) {
  const float cdf = 0.5f * (1.0f + Erf(v * kSqrtHalf));
  return cdf + v * ExpNonPositive(-0.5f * v * v) * kInvSqrt2Pi;
}

}  // namespace

template <typename T>
void LayerNormForward(const T* x, const float* gamma, const float* beta, float epsilon,
                      int64_t width, int64_t begin, int64_t end, T* y, float* mean, float* rstd) {
  thread_local std::vector<float> row_buf, centred;
  centred.resize(width);
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = RowAsFloat(x + r * width, width, &row_buf);
    const float mu = Sum(xr, width) / width;
    for (int64_t i = 0; i < width; ++i) centred[i] = xr[i] - mu;
    const float inv = 1.0f / std::sqrt(SumOfProducts(centred.data(), centred.data(), width) / width +
                                       epsilon);
    T* yr = y + r * width;
    for (int64_t i = 0; i < width; ++i) Narrow(centred[i] * inv * gamma[i] + beta[i], yr + i);
    mean[r] = mu;
    rstd[r] = inv;
  }
}

template <typename T>
void LayerNormBackward(const T* x, const float* gamma, const float* mean, const float* rstd,
                       const T* dy, int64_t width, int64_t begin, int64_t end, T* dx,
                       float* dgamma, float* dbeta) {
  thread_local std::vector<float> x_buf, dy_buf, x_hat, g;
  x_hat.resize(width);
  g.resize(width);
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = RowAsFloat(x + r * width, width, &x_buf);
    const float* dyr = RowAsFloat(dy + r * width, width, &dy_buf);
    const float mu = mean[r], inv = rstd[r];
    for (int64_t i = 0; i < width; ++i) {
      x_hat[i] = (xr[i] - mu) * inv;
      g[i] = dyr[i] * gamma[i];
      dgamma[i] += dyr[i] * x_hat[i];
      dbeta[i] += dyr[i];
    }
    const float mean_g = Sum(g.data(), width) / width;
    const float mean_gx = SumOfProducts(g.data(), x_hat.data(), width) / width;
    T* dxr = dx + r * width;
    for (int64_t i = 0; i < width; ++i)
      Narrow(inv * (g[i] - mean_g - x_hat[i] * mean_gx), dxr + i);
  }
}

template <typename T>
void GeluForward(const T* x, int64_t begin, int64_t end, T* y) {
  for (int64_t start = begin; start < end; start += kChunk) {
    const int64_t stop = std::min(end, start + kChunk);
    for (int64_t i = start; i < stop; ++i) {
      const float v = Widen(x[i]);
      Narrow(0.5f * v * (1.0f + Erf(v * kSqrtHalf)), y + i);
    }
  }
}

template <typename T>
void GeluBackward(const T* x, const T* dy, int64_t begin, int64_t end, T* dx) {
  for (int64_t i = begin; i < end; ++i) Narrow(Widen(dy[i]) * GeluSlope(Widen(x[i])), dx + i);
}

template <typename T>
void BiasGeluForward(const T* x, const T* bias, int64_t width, int64_t begin, int64_t end, T* y) {
  MapBiasedRows(x, bias, width, begin, end, y,
                [](float v) { return 0.5f * v * (1.0f + Erf(v * kSqrtHalf)); });
}

template <typename T>
void BiasGeluBackward(const T* x, const T* bias, const T* dy, int64_t width, int64_t begin,
                      int64_t end, T* dh, float* sums) {
  const float* b = BiasAsFloat(bias, width);
  for (int64_t r = begin; r < end; ++r) {
    const T *xr = x + r * width, *dyr = dy + r * width;
    T* dhr = dh + r * width;
    for (int64_t i = 0; i < width; ++i) {
      const float g = Widen(dyr[i]) * GeluSlope(Widen(xr[i]) + b[i]);
      Narrow(g, dhr + i);
      sums[i] += g;
    }
  }
}

template <typename T>
void SoftmaxBackward(const T* y, const T* dy, int64_t width, int64_t begin, int64_t end, T* dz) {
  thread_local std::vector<float> y_buf, dy_buf;
  for (int64_t r = begin; r < end; ++r) {
    const float* yr = RowAsFloat(y + r * width, width, &y_buf);
    const float* dyr = RowAsFloat(dy + r * width, width, &dy_buf);
    const float dot = SumOfProducts(yr, dyr, width);
    T* dzr = dz + r * width;
    for (int64_t i = 0; i < width; ++i) Narrow(yr[i] * (dyr[i] - dot), dzr + i);
  }
}

template <typename T>
void BiasAdd(const T* x, const T* bias, int64_t width, int64_t begin, int64_t end, T* y) {
  MapBiasedRows(x, bias, width, begin, end, y, [](float v) { return v; });
}

template <typename T>
void BiasAddResidual(const T* x, const T* bias, const T* residual, int64_t width,
                     int64_t begin, int64_t end, T* y) {
  const float* b = BiasAsFloat(bias, width);
  for (int64_t r = begin; r < end; ++r) {
    const T *xr = x + r * width, *rr = residual + r * width;
    T* yr = y + r * width;
    for (int64_t i = 0; i < width; ++i) {
      T branch;
      Narrow(Widen(xr[i]) + b[i], &branch);
      Narrow(Widen(rr[i]) + Widen(branch), yr + i);
    }
  }
}

template <typename T>
void BiasGradRows(const T* dy, int64_t width, int64_t begin, int64_t end, float* sums) {
  for (int64_t r = begin; r < end; ++r) {
    const T* dyr = dy + r * width;
    for (int64_t i = 0; i < width; ++i) sums[i] += Widen(dyr[i]);
  }
}

#define SIMBLOCK_INSTANTIATE(T)                                                                \
  template void LayerNormForward<T>(const T*, const float*, const float*, float, int64_t,      \
                                    int64_t, int64_t, T*, float*, float*);                    \
  template void LayerNormBackward<T>(const T*, const float*, const float*, const float*,      \
                                     const T*, int64_t, int64_t, int64_t, T*, float*, float*); \
  template void GeluForward<T>(const T*, int64_t, int64_t, T*);                                \
  template void GeluBackward<T>(const T*, const T*, int64_t, int64_t, T*);                     \
  template void BiasGeluForward<T>(const T*, const T*, int64_t, int64_t, int64_t, T*);         \
  template void BiasGeluBackward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*, \
                                    float*);                                                   \
  template void SoftmaxBackward<T>(const T*, const T*, int64_t, int64_t, int64_t, T*);        \
  template void BiasAdd<T>(const T*, const T*, int64_t, int64_t, int64_t, T*);                 \
  template void BiasGradRows<T>(const T*, int64_t, int64_t, int64_t, float*);                 \
  template void BiasAddResidual<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*);

SIMBLOCK_INSTANTIATE(float)
SIMBLOCK_INSTANTIATE(uint16_t)

}  // namespace simblock
