// Multi-head attention for one (batch, head) pair at a time, on strided views of the qkv
// projection: no transposes of q, k, v, the output or their gradients, and each pair's
// matrices (tokens x head_dim, tokens x tokens) stay in the core's caches between the
// products. The products are the register-tiled ones of attention_simd.h (AVX2 or AVX-512,
// chosen by TilesChosen below) or Eigen's single-threaded GEMM; the glue runs pairs in
// parallel. Compiled with -march=native (see siameseim_tf/native_build.py).

// Eigen under its own namespace here: this file is compiled for the CPU it runs on, the
// glue (and TensorFlow) with other flags, and the linker must not pick one file's copy of an
// Eigen template for the other.
#define Eigen SimAttentionEigen
#include <Eigen/Core>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "attention.h"

#if defined(__AVX512F__)
#define SIMATTENTION_TILES 1
#include "attention_simd.h"
using Isa = simattention::simd::Avx512;
#elif defined(__AVX2__) && defined(__FMA__)
#define SIMATTENTION_TILES 1
#include "attention_simd.h"
using Isa = simattention::simd::Avx2;
#endif

namespace simattention {
namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using View = Eigen::Map<Matrix, 0, Eigen::OuterStride<>>;
using ConstView = Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>;

struct Layout {
  Shape s;
  int64_t width() const { return s.heads * s.head_dim; }  // D
  // Row-major [tokens, head_dim] views of item `item`'s q (part 0), k (1) or v (2).
  int64_t qkv_offset(int64_t item, int part) const {
    const int64_t b = item / s.heads, h = item % s.heads;
    return b * s.tokens * 3 * width() + part * width() + h * s.head_dim;
  }
  int64_t out_offset(int64_t item) const {
    const int64_t b = item / s.heads, h = item % s.heads;
    return b * s.tokens * width() + h * s.head_dim;
  }
};

ConstView Part(const float* qkv, const Layout& l, int64_t item, int part) {
  return ConstView(qkv + l.qkv_offset(item, part), l.s.tokens, l.s.head_dim,
                   Eigen::OuterStride<>(3 * l.width()));
}

void SoftmaxRows(float* s, int64_t t, float scale) {
  Eigen::Map<Matrix> p(s, t, t);
  for (int64_t i = 0; i < t; ++i) {
    auto row = p.row(i).array();
    row = ((row - row.maxCoeff()) * scale).exp();
    row /= row.sum();
  }
}

// ds = p * (dp - rowsum(p * dp)) * scale, in place of dp.
void SoftmaxGradRows(const float* probs, float* dp, int64_t t, float scale) {
  Eigen::Map<const Matrix> p(probs, t, t);
  Eigen::Map<Matrix> ds(dp, t, t);
  for (int64_t i = 0; i < t; ++i) {
    auto row = ds.row(i).array();
    const auto prow = p.row(i).array();
    row = prow * (row - (row * prow).sum()) * scale;
  }
}

#ifdef SIMATTENTION_TILES
// The same maths with attention_simd.h's products (head_dim a multiple of the vector width
// keeps every in-place load within q, k, v and the output gradient).
// SIAMESEIM_ATTENTION_TILES=1 / 0 forces the choice. By default: the tiles with AVX2, and
// with AVX-512 on Intel CPUs, where they were measured faster than Eigen (docs/speed.md);
// on AMD CPUs with AVX-512 (Zen 4, 5) Eigen's AVX-512 GEMM measured 198-234 GFLOP/s per
// product on one core of a Zen 5 and stays until the tiles are measured there.
bool TilesChosen() {
  static const bool chosen = [] {
    const char* forced = std::getenv("SIAMESEIM_ATTENTION_TILES");
    if (forced != nullptr && *forced != '\0') return std::strcmp(forced, "0") != 0;
#ifdef __AVX512F__
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
#else
    return true;
#endif
  }();
  return chosen;
}

bool UseTiles(const Shape& s) { return TilesChosen() && s.head_dim % Isa::kLanes == 0; }

void ForwardTiles(const float* qkv, const Layout& l, int64_t begin, int64_t end, float* out,
                  float* probs) {
  using simd::Product;
  const int64_t t = l.s.tokens, hd = l.s.head_dim, row3 = 3 * l.width();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> scratch(probs == nullptr ? t * t : 0);
  simd::Transposed<Isa> k_t;
  for (int64_t item = begin; item < end; ++item) {
    float* p = probs == nullptr ? scratch.data() : probs + item * t * t;
    const float *q = qkv + l.qkv_offset(item, 0), *v = qkv + l.qkv_offset(item, 2);
    const simd::Panels kt = k_t.Pack(qkv + l.qkv_offset(item, 1), t, hd, row3);  // [hd, T]
    Product<Isa>(t, q, row3, 1, kt, p, t);  // q k^T [T, T]
    simd::SoftmaxRows(p, t, scale);
    Product<Isa>(t, p, t, 1, simd::Rows<Isa>(v, t, hd, row3), out + l.out_offset(item),
                 l.width());  // p v [T, hd]
  }
}

void BackwardTiles(const float* qkv, const float* probs, const float* dout, const Layout& l,
                   int64_t begin, int64_t end, float* dqkv) {
  using simd::Product;
  using simd::Rows;
  const int64_t t = l.s.tokens, hd = l.s.head_dim, row3 = 3 * l.width(), d = l.width();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> ds(t * t);
  simd::Transposed<Isa> v_t;
  for (int64_t item = begin; item < end; ++item) {
    const float *p = probs + item * t * t, *g = dout + l.out_offset(item);
    const float *q = qkv + l.qkv_offset(item, 0), *k = qkv + l.qkv_offset(item, 1);
    float *dq = dqkv + l.qkv_offset(item, 0), *dk = dqkv + l.qkv_offset(item, 1);
    float* dv = dqkv + l.qkv_offset(item, 2);
    Product<Isa>(t, p, 1, t, Rows<Isa>(g, t, hd, d), dv, row3);  // dv = p^T g [T, hd]
    const simd::Panels vt = v_t.Pack(qkv + l.qkv_offset(item, 2), t, hd, row3);  // [hd, T]
    Product<Isa>(t, g, d, 1, vt, ds.data(), t);                         // dp = g v^T [T, T]
    SoftmaxGradRows(p, ds.data(), t, scale);                            // ds / sqrt(hd)
    Product<Isa>(t, ds.data(), t, 1, Rows<Isa>(k, t, hd, row3), dq, row3);  // dq = ds k
    Product<Isa>(t, ds.data(), 1, t, Rows<Isa>(q, t, hd, row3), dk, row3);  // dk = ds^T q
  }
}
#endif

}  // namespace

void AttentionForward(const float* qkv, Shape shape, int64_t begin, int64_t end, float* out,
                      float* probs) {
  const Layout l{shape};
#ifdef SIMATTENTION_TILES
  if (UseTiles(shape)) return ForwardTiles(qkv, l, begin, end, out, probs);
#endif
  const int64_t t = shape.tokens;
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  // Without probs (nothing will differentiate) each pair's [T, T] stays in one scratch
  // matrix that is still in cache for the next pair, instead of going out to memory.
  Matrix scratch(probs == nullptr ? t : 0, probs == nullptr ? t : 0);
  for (int64_t item = begin; item < end; ++item) {
    Eigen::Map<Matrix> p(probs == nullptr ? scratch.data() : probs + item * t * t, t, t);
    p.noalias() = Part(qkv, l, item, 0) * Part(qkv, l, item, 1).transpose();
    SoftmaxRows(p.data(), t, scale);
    View o(out + l.out_offset(item), t, shape.head_dim, Eigen::OuterStride<>(l.width()));
    o.noalias() = p * Part(qkv, l, item, 2);  // [T, hd]
  }
}

void AttentionBackward(const float* qkv, const float* probs, const float* dout, Shape shape,
                       int64_t begin, int64_t end, float* dqkv) {
  const Layout l{shape};
#ifdef SIMATTENTION_TILES
  if (UseTiles(shape)) return BackwardTiles(qkv, probs, dout, l, begin, end, dqkv);
#endif
  const int64_t t = shape.tokens, hd = shape.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  Matrix ds(t, t);  // scratch, reused by every item of this call
  for (int64_t item = begin; item < end; ++item) {
    Eigen::Map<const Matrix> p(probs + item * t * t, t, t);
    ConstView g(dout + l.out_offset(item), t, hd, Eigen::OuterStride<>(l.width()));
    auto grad = [&](int part) {
      return View(dqkv + l.qkv_offset(item, part), t, hd, Eigen::OuterStride<>(3 * l.width()));
    };
    grad(2).noalias() = p.transpose() * g;                   // dv [T, hd]
    ds.noalias() = g * Part(qkv, l, item, 2).transpose();  // dp [T, T]
    SoftmaxGradRows(p.data(), ds.data(), t, scale);         // ds / sqrt(hd)
    grad(0).noalias() = ds * Part(qkv, l, item, 1);              // dq [T, hd]
    grad(1).noalias() = ds.transpose() * Part(qkv, l, item, 0);  // dk [T, hd]
  }
}

}  // namespace simattention
