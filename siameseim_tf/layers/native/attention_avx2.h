// Small-matrix products for one attention pair on AVX2 + FMA CPUs without AVX-512 (Haswell
// to Alder Lake desktops, Zen 1-3): C[M, N] = scale * A[M, K] B[K, N] with a 6 x 16 tile of
// accumulators in 12 ymm registers, A read in place (any strides: a row-major matrix or a
// transposed one) and B packed once per product into 16-column panels that stay in L1.
// Eigen's GEMM packs both operands on every call, which at these sizes (K = 64 or
// T <= ~300) cost ~30 % of the products (measured on an AVX2 CPU; docs/speed.md). Included
// by attention_math.cc only when compiled for such a CPU.
#ifndef SIAMESEIM_ATTENTION_AVX2_H_
#define SIAMESEIM_ATTENTION_AVX2_H_

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace simattention {
namespace avx2 {

constexpr int64_t kPanel = 16;  // columns per packed B panel (two ymm vectors)
constexpr int kRows = 6;        // rows per register tile

// B[K, N] as the kernels read it: 16-column panels, panel p's row k at
// base + p * panel_stride + k * k_stride, 16 floats readable there (8 where fewer than 9
// columns are left).
struct Panels {
  const float* base;
  int64_t k_stride, panel_stride, k_size, n_size;
};

// B = the rows of a row-major matrix, read in place: its N (a multiple of 8) columns.
inline Panels Rows(const float* src, int64_t k_size, int64_t n_size, int64_t row_stride) {
  return {src, row_stride, kPanel, k_size, n_size};
}

// B = the transpose of a row-major [N, K] matrix (K a multiple of 8), packed into
// ceil(N / 16) panels of [K][16] floats with 8 x 8 register transposes; columns past N are
// zero. The buffer is reused between calls.
class Transposed {
 public:
  Panels Pack(const float* src, int64_t n_size, int64_t k_size, int64_t row_stride) {
    const int64_t panels = (n_size + kPanel - 1) / kPanel;
    data_.resize(panels * k_size * kPanel);
    for (int64_t j0 = 0; j0 < n_size; j0 += 8) {
      float* out = data_.data() + (j0 / kPanel) * k_size * kPanel + j0 % kPanel;
      const int64_t rows = std::min<int64_t>(8, n_size - j0);
      for (int64_t k0 = 0; k0 < k_size; k0 += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i)
          r[i] = i < rows ? _mm256_loadu_ps(src + (j0 + i) * row_stride + k0) : _mm256_setzero_ps();
        Transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (k0 + i) * kPanel, r[i]);
      }
    }
    if (n_size % kPanel != 0 && n_size % kPanel <= 8) {  // the last panel's unused half
      float* out = data_.data() + (panels - 1) * k_size * kPanel + 8;
      for (int64_t k = 0; k < k_size; ++k) _mm256_storeu_ps(out + k * kPanel, _mm256_setzero_ps());
    }
    return {data_.data(), kPanel, k_size * kPanel, k_size, n_size};
  }

 private:
  static void Transpose8(__m256 r[8]) {
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    __m256 u[8];
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
      r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
  }

  std::vector<float> data_;
};

// exp(x) for x <= 0 (softmax after the row maximum is subtracted): Cephes' expf, a
// degree-5 polynomial on [-ln 2 / 2, ln 2 / 2] times 2^n built in the exponent bits; max
// relative error 1.2e-7 on [-87, 0] against double exp (one float epsilon). Inputs below
// -87.3 give ~1e-38 instead of 0 (no denormals); NaN stays NaN. Half the instructions of
// Eigen's pexp, which handles every input.
inline __m256 ExpNonPositive(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);  // this order lets a NaN through
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

inline __m256i TailMask(int64_t cols) {  // lanes [0, cols) of 8
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), lanes);
}

inline float HorizontalMax(__m256 x) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

inline float HorizontalSum(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// SoftmaxRows in three passes instead of four (max; exp and sum; scale by the sum's
// reciprocal), with an exp for x <= 0 only: the rows' passes were a quarter of the forward.
inline void SoftmaxRows(float* s, int64_t t, float scale) {
  // Four independent maxima and sums: one chain of dependent max / add instructions was
  // half the time of a row.
  const int64_t whole = t / 8 * 8, wide = t / 32 * 32;
  const __m256i tail = TailMask(t - whole);
  const __m256 lowest = _mm256_set1_ps(-INFINITY), k = _mm256_set1_ps(scale);
  for (int64_t i = 0; i < t; ++i) {
    float* row = s + i * t;
    __m256 top[4] = {lowest, lowest, lowest, lowest};
    for (int64_t j = 0; j < wide; j += 32)
      for (int u = 0; u < 4; ++u) top[u] = _mm256_max_ps(top[u], _mm256_loadu_ps(row + j + 8 * u));
    for (int64_t j = wide; j < whole; j += 8)
      top[0] = _mm256_max_ps(top[0], _mm256_loadu_ps(row + j));
    if (whole < t)
      top[1] = _mm256_max_ps(top[1], _mm256_blendv_ps(lowest, _mm256_maskload_ps(row + whole, tail),
                                                      _mm256_castsi256_ps(tail)));
    const __m256 shift = _mm256_set1_ps(
        HorizontalMax(_mm256_max_ps(_mm256_max_ps(top[0], top[1]), _mm256_max_ps(top[2], top[3]))));
    auto exp_at = [&](const float* x) {  // exp((x - max) * scale)
      return ExpNonPositive(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x), shift), k));
    };
    __m256 sum[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t j = 0; j < wide; j += 32)
      for (int u = 0; u < 4; ++u) {
        const __m256 e = exp_at(row + j + 8 * u);
        _mm256_storeu_ps(row + j + 8 * u, e);
        sum[u] = _mm256_add_ps(sum[u], e);
      }
    for (int64_t j = wide; j < whole; j += 8) {
      const __m256 e = exp_at(row + j);
      _mm256_storeu_ps(row + j, e);
      sum[0] = _mm256_add_ps(sum[0], e);
    }
    if (whole < t) {
      const __m256 x = _mm256_sub_ps(_mm256_maskload_ps(row + whole, tail), shift);
      const __m256 e = _mm256_and_ps(ExpNonPositive(_mm256_mul_ps(x, k)),
                                     _mm256_castsi256_ps(tail));
      _mm256_maskstore_ps(row + whole, tail, e);
      sum[1] = _mm256_add_ps(sum[1], e);
    }
    const float total =
        HorizontalSum(_mm256_add_ps(_mm256_add_ps(sum[0], sum[1]), _mm256_add_ps(sum[2], sum[3])));
    const __m256 inverse = _mm256_set1_ps(1.0f / total);
    for (int64_t j = 0; j < whole; j += 8)
      _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inverse));
    if (whole < t)
      _mm256_maskstore_ps(row + whole, tail,
                          _mm256_mul_ps(_mm256_maskload_ps(row + whole, tail), inverse));
  }
}

// One tile: R rows (<= 6) by NV vectors (1 or 2) of C, `cols` of them stored (<= 8 * NV).
template <int R, int NV>
inline void Tile(const float* a, int64_t a_row, int64_t a_col, const float* panel,
                 int64_t b_stride, int64_t k_size, float scale, float* c, int64_t ldc,
                 int64_t cols) {
  // Every loop over r and v unrolled, so that the accumulators live in registers.
  __m256 acc[R][NV];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < k_size; ++k) {
    const float* b = panel + k * b_stride;
    const __m256 b0 = _mm256_loadu_ps(b), b1 = NV > 1 ? _mm256_loadu_ps(b + 8) : b0;
    const float* ak = a + k * a_col;
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(ak + r * a_row);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      if (NV > 1) acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  const __m256 s = _mm256_set1_ps(scale);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* row = c + r * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const __m256 value = _mm256_mul_ps(acc[r][v], s);
      const int64_t left = cols - 8 * v;
      if (left >= 8)
        _mm256_storeu_ps(row + 8 * v, value);
      else if (left > 0)
        _mm256_maskstore_ps(row + 8 * v, TailMask(left), value);
    }
  }
}

template <int NV>
inline void RowTile(int rows, const float* a, int64_t a_row, int64_t a_col, const float* panel,
                    int64_t b_stride, int64_t k_size, float scale, float* c, int64_t ldc,
                    int64_t cols) {
  switch (rows) {
    case 6: return Tile<6, NV>(a, a_row, a_col, panel, b_stride, k_size, scale, c, ldc, cols);
    case 5: return Tile<5, NV>(a, a_row, a_col, panel, b_stride, k_size, scale, c, ldc, cols);
    case 4: return Tile<4, NV>(a, a_row, a_col, panel, b_stride, k_size, scale, c, ldc, cols);
    case 3: return Tile<3, NV>(a, a_row, a_col, panel, b_stride, k_size, scale, c, ldc, cols);
    case 2: return Tile<2, NV>(a, a_row, a_col, panel, b_stride, k_size, scale, c, ldc, cols);
    default: return Tile<1, NV>(a, a_row, a_col, panel, b_stride, k_size, scale, c, ldc, cols);
  }
}

// C[M, N] = scale * A B: A's element (i, k) at a[i * a_row + k * a_col], C row-major
// with row stride ldc (only its N columns written).
inline void Product(int64_t m_size, const float* a, int64_t a_row, int64_t a_col,
                    const Panels& b, float scale, float* c, int64_t ldc) {
  const int64_t n_size = b.n_size, k_size = b.k_size;
  auto tile = [&](int64_t i, int64_t j0) {
    const int64_t cols = std::min(kPanel, n_size - j0);
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m_size - i));
    const float* panel = b.base + (j0 / kPanel) * b.panel_stride;
    if (cols > 8)
      RowTile<2>(rows, a + i * a_row, a_row, a_col, panel, b.k_stride, k_size, scale,
                 c + i * ldc + j0, ldc, cols);
    else
      RowTile<1>(rows, a + i * a_row, a_row, a_col, panel, b.k_stride, k_size, scale,
                 c + i * ldc + j0, ldc, cols);
  };
  if (a_row == 1) {
    // A transposed: a tile's 6 values of A share one cache line per k, the K lines of its
    // strip are reused by every panel before the next strip (measured 87 -> ~105 GFLOP/s).
    for (int64_t i = 0; i < m_size; i += kRows)
      for (int64_t j0 = 0; j0 < n_size; j0 += kPanel) tile(i, j0);
  } else {
    // A row-major: a panel of B (K x 64 bytes) stays in L1 while every row strip passes.
    for (int64_t j0 = 0; j0 < n_size; j0 += kPanel)
      for (int64_t i = 0; i < m_size; i += kRows) tile(i, j0);
  }
}

}  // namespace avx2
}  // namespace simattention

#endif  // SIAMESEIM_ATTENTION_AVX2_H_
