// Small-matrix products for one attention pair on x86-64 with AVX2 + FMA or AVX-512:
// C[M, N] = A[M, K] B[K, N] with a tile of 6 rows x 2 vectors of accumulators in
// registers (6 x 16 floats with AVX2, 6 x 32 with AVX-512), A read in place (any strides:
// a row-major matrix or a transposed one) and B read in place (rows of q, k, v or the
// output gradient) or packed once per product (k^T, v^T) into panels of two vectors'
// width. Eigen's GEMM packs both operands on every call, which at these sizes (K = 64 or
// T <= ~300) cost ~30 % of its products on an AVX2 CPU (docs/speed.md). Also the rows'
// softmax with an exp for x <= 0. Included by attention_math.cc when compiled for such a
// CPU; `Isa` is Avx2 or Avx512.
#ifndef SIAMESEIM_ATTENTION_SIMD_H_
#define SIAMESEIM_ATTENTION_SIMD_H_

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace simattention {
namespace simd {

constexpr int kRows = 6;  // rows per register tile

inline __m256i TailMask(int64_t cols) {  // lanes [0, cols) of 8
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), lanes);
}

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V Zero() { return _mm256_setzero_ps(); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static V Broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void Store(float* p, V v, int64_t count) {  // the first count (>= 1) lanes
    if (count >= kLanes)
      _mm256_storeu_ps(p, v);
    else
      _mm256_maskstore_ps(p, TailMask(count), v);
  }
};

#ifdef __AVX512F__
struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static V Zero() { return _mm512_setzero_ps(); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static V Broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static void Store(float* p, V v, int64_t count) {
    if (count >= kLanes)
      _mm512_storeu_ps(p, v);
    else
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1), v);
  }
};
#endif

// B[K, N] as the tiles read it: panels of 2 x kLanes columns, panel p's row k at
// base + p * panel_stride + k * k_stride, whole vectors readable there.
struct Panels {
  const float* base;
  int64_t k_stride, panel_stride, k_size, n_size;
};

// B = the rows of a row-major matrix, read in place: N must be a multiple of kLanes.
template <class Isa>
Panels Rows(const float* src, int64_t k_size, int64_t n_size, int64_t row_stride) {
  return {src, row_stride, 2 * Isa::kLanes, k_size, n_size};
}

// B = the transpose of a row-major [N, K] matrix (K a multiple of 8), packed into panels
// of [K][2 kLanes] floats with 8 x 8 register transposes; columns past N are zero. The
// buffer is reused between calls.
template <class Isa>
class Transposed {
 public:
  static constexpr int64_t kPanel = 2 * Isa::kLanes;

  Panels Pack(const float* src, int64_t n_size, int64_t k_size, int64_t row_stride) {
    const int64_t panels = (n_size + kPanel - 1) / kPanel;
    data_.resize(panels * k_size * kPanel);
    for (int64_t j0 = 0; j0 < n_size; j0 += 8) {
      float* out = data_.data() + (j0 / kPanel) * k_size * kPanel + j0 % kPanel;
      const int64_t rows = std::min<int64_t>(8, n_size - j0);
      for (int64_t k0 = 0; k0 < k_size; k0 += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i)
          r[i] = i < rows ? _mm256_loadu_ps(src + (j0 + i) * row_stride + k0)
                          : _mm256_setzero_ps();
        Transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (k0 + i) * kPanel, r[i]);
      }
    }
    const int64_t used = (n_size % kPanel + 7) / 8 * 8;  // columns written in the last panel
    if (used != 0 && used < kPanel) {
      float* last = data_.data() + (panels - 1) * k_size * kPanel;
      for (int64_t k = 0; k < k_size; ++k)
        std::fill(last + k * kPanel + used, last + (k + 1) * kPanel, 0.0f);
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

// One tile: R rows (<= 6) by NV vectors (1 or 2) of C, `cols` of them stored.
template <class Isa, int R, int NV>
inline void Tile(const float* a, int64_t a_row, int64_t a_col, const float* panel,
                 int64_t b_stride, int64_t k_size, float* c, int64_t ldc, int64_t cols) {
  using V = typename Isa::V;
  // Every loop over r and v unrolled, so that the accumulators live in registers.
  V acc[R][NV];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = Isa::Zero();
  for (int64_t k = 0; k < k_size; ++k) {
    const float* b = panel + k * b_stride;
    const V b0 = Isa::Load(b), b1 = NV > 1 ? Isa::Load(b + Isa::kLanes) : b0;
    const float* ak = a + k * a_col;
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const V x = Isa::Broadcast(ak + r * a_row);
      acc[r][0] = Isa::Fma(x, b0, acc[r][0]);
      if (NV > 1) acc[r][1] = Isa::Fma(x, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const int64_t left = cols - Isa::kLanes * v;
      if (left > 0) Isa::Store(c + r * ldc + Isa::kLanes * v, acc[r][v], left);
    }
  }
}

template <class Isa, int NV>
inline void RowTile(int rows, const float* a, int64_t a_row, int64_t a_col, const float* panel,
                    int64_t b_stride, int64_t k_size, float* c, int64_t ldc, int64_t cols) {
  switch (rows) {
#define SIMATTENTION_TILE(R) \
  case R:                    \
    return Tile<Isa, R, NV>(a, a_row, a_col, panel, b_stride, k_size, c, ldc, cols);
    SIMATTENTION_TILE(6)
    SIMATTENTION_TILE(5)
    SIMATTENTION_TILE(4)
    SIMATTENTION_TILE(3)
    SIMATTENTION_TILE(2)
    default:
      return Tile<Isa, 1, NV>(a, a_row, a_col, panel, b_stride, k_size, c, ldc, cols);
#undef SIMATTENTION_TILE
  }
}

// C[M, N] = A B: A's element (i, k) at a[i * a_row + k * a_col], C row-major with row
// stride ldc (only its N columns written).
template <class Isa>
void Product(int64_t m_size, const float* a, int64_t a_row, int64_t a_col, const Panels& b,
             float* c, int64_t ldc) {
  constexpr int64_t kPanel = 2 * Isa::kLanes;
  const int64_t n_size = b.n_size, k_size = b.k_size;
  auto tile = [&](int64_t i, int64_t j0) {
    const int64_t cols = std::min(kPanel, n_size - j0);
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m_size - i));
    const float* panel = b.base + (j0 / kPanel) * b.panel_stride;
    if (cols > Isa::kLanes)
      RowTile<Isa, 2>(rows, a + i * a_row, a_row, a_col, panel, b.k_stride, k_size,
                      c + i * ldc + j0, ldc, cols);
    else
      RowTile<Isa, 1>(rows, a + i * a_row, a_row, a_col, panel, b.k_stride, k_size,
                      c + i * ldc + j0, ldc, cols);
  };
  if (a_row == 1) {
    // A transposed: a tile's 6 values of A share one cache line per k, the K lines of its
    // strip are reused by every panel before the next strip (AVX2: 87 -> ~96 GFLOP/s).
    for (int64_t i = 0; i < m_size; i += kRows)
      for (int64_t j0 = 0; j0 < n_size; j0 += kPanel) tile(i, j0);
  } else {
    // A row-major: a panel of B stays in L1 while every row strip passes.
    for (int64_t j0 = 0; j0 < n_size; j0 += kPanel)
      for (int64_t i = 0; i < m_size; i += kRows) tile(i, j0);
  }
}

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

}  // namespace simd
}  // namespace simattention

#endif  // SIAMESEIM_ATTENTION_SIMD_H_
