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

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

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

// One pair's q, k, v (part 0, 1, 2) as row-major [tokens, head_dim] matrices with row
// stride `stride`: in place in qkv, or, with a bias, copies of them plus the bias in a
// scratch buffer that stays in the core's cache.
struct Operands {
  const float* part[3];
  int64_t stride;
  ConstView View(int i, int64_t tokens, int64_t head_dim) const {
    return ConstView(part[i], tokens, head_dim, Eigen::OuterStride<>(stride));
  }
};

class PairOperands {
 public:
  PairOperands(const float* qkv, const float* bias, const Layout& l)
      : qkv_(qkv), bias_(bias), l_(l),
        scratch_(bias == nullptr ? 0 : 3 * l.s.tokens * l.s.head_dim) {}

  Operands Get(int64_t item) {
    const int64_t t = l_.s.tokens, hd = l_.s.head_dim, row3 = 3 * l_.width();
    Operands o{{}, bias_ == nullptr ? row3 : hd};
    for (int part = 0; part < 3; ++part) {
      const float* src = qkv_ + l_.qkv_offset(item, part);
      if (bias_ == nullptr) {
        o.part[part] = src;
        continue;
      }
      const float* b = bias_ + part * l_.width() + (item % l_.s.heads) * hd;
      float* dst = scratch_.data() + part * t * hd;
      for (int64_t i = 0; i < t; ++i)
        for (int64_t c = 0; c < hd; ++c) dst[i * hd + c] = src[i * row3 + c] + b[c];
      o.part[part] = dst;
    }
    return o;
  }

 private:
  const float *qkv_, *bias_;
  const Layout& l_;
  std::vector<float> scratch_;
};

// dbias_rows[b, part * D + h * hd + c] = sum over tokens of pair (b, h)'s dq, dk, dv column c.
void BiasGradRows(const float* dqkv, const Layout& l, int64_t item, float* dbias_rows) {
  const int64_t t = l.s.tokens, hd = l.s.head_dim, row3 = 3 * l.width();
  const int64_t b = item / l.s.heads, h = item % l.s.heads;
  for (int part = 0; part < 3; ++part) {
    const float* g = dqkv + l.qkv_offset(item, part);
    float* sum = dbias_rows + b * row3 + part * l.width() + h * hd;
    std::fill(sum, sum + hd, 0.0f);
    for (int64_t i = 0; i < t; ++i)
      for (int64_t c = 0; c < hd; ++c) sum[c] += g[i * row3 + c];
  }
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

void ForwardTiles(PairOperands& operands, const Layout& l, int64_t begin, int64_t end,
                  float* out, float* probs) {
  using simd::Product;
  const int64_t t = l.s.tokens, hd = l.s.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> scratch(probs == nullptr ? t * t : 0);
  simd::Transposed<Isa> k_t;
  for (int64_t item = begin; item < end; ++item) {
    float* p = probs == nullptr ? scratch.data() : probs + item * t * t;
    const Operands o = operands.Get(item);
    const simd::Panels kt = k_t.Pack(o.part[1], t, hd, o.stride);  // [hd, T]
    Product<Isa>(t, o.part[0], o.stride, 1, kt, p, t);              // q k^T [T, T]
    simd::SoftmaxRows(p, t, scale);
    Product<Isa>(t, p, t, 1, simd::Rows<Isa>(o.part[2], t, hd, o.stride),
                 out + l.out_offset(item), l.width());  // p v [T, hd]
  }
}

void BackwardTiles(PairOperands& operands, const float* probs, const float* dout,
                   const Layout& l, int64_t begin, int64_t end, float* dqkv, float* dbias_rows) {
  using simd::Product;
  using simd::Rows;
  const int64_t t = l.s.tokens, hd = l.s.head_dim, row3 = 3 * l.width(), d = l.width();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> ds(t * t);
  simd::Transposed<Isa> v_t;
  for (int64_t item = begin; item < end; ++item) {
    const float *p = probs + item * t * t, *g = dout + l.out_offset(item);
    const Operands o = operands.Get(item);
    float *dq = dqkv + l.qkv_offset(item, 0), *dk = dqkv + l.qkv_offset(item, 1);
    float* dv = dqkv + l.qkv_offset(item, 2);
    Product<Isa>(t, p, 1, t, Rows<Isa>(g, t, hd, d), dv, row3);  // dv = p^T g [T, hd]
    const simd::Panels vt = v_t.Pack(o.part[2], t, hd, o.stride);  // [hd, T]
    Product<Isa>(t, g, d, 1, vt, ds.data(), t);                     // dp = g v^T [T, T]
    SoftmaxGradRows(p, ds.data(), t, scale);                        // ds / sqrt(hd)
    Product<Isa>(t, ds.data(), t, 1, Rows<Isa>(o.part[1], t, hd, o.stride), dq, row3);  // ds k
    Product<Isa>(t, ds.data(), 1, t, Rows<Isa>(o.part[0], t, hd, o.stride), dk, row3);  // ds^T q
    if (dbias_rows != nullptr) BiasGradRows(dqkv, l, item, dbias_rows);
  }
}
#endif

}  // namespace

void AttentionForward(const float* qkv, const float* bias, Shape shape, int64_t begin,
                      int64_t end, float* out, float* probs) {
  const Layout l{shape};
  PairOperands operands(qkv, bias, l);
#ifdef SIMATTENTION_TILES
  if (UseTiles(shape)) return ForwardTiles(operands, l, begin, end, out, probs);
#endif
  const int64_t t = shape.tokens, hd = shape.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Without probs (nothing will differentiate) each pair's [T, T] stays in one scratch
  // matrix that is still in cache for the next pair, instead of going out to memory.
  Matrix scratch(probs == nullptr ? t : 0, probs == nullptr ? t : 0);
  for (int64_t item = begin; item < end; ++item) {
    const Operands o = operands.Get(item);
    Eigen::Map<Matrix> p(probs == nullptr ? scratch.data() : probs + item * t * t, t, t);
    p.noalias() = o.View(0, t, hd) * o.View(1, t, hd).transpose();
    SoftmaxRows(p.data(), t, scale);
    View out_view(out + l.out_offset(item), t, hd, Eigen::OuterStride<>(l.width()));
    out_view.noalias() = p * o.View(2, t, hd);  // [T, hd]
  }
}

void AttentionBackward(const float* qkv, const float* bias, const float* probs,
                       const float* dout, Shape shape, int64_t begin, int64_t end, float* dqkv,
                       float* dbias_rows) {
  const Layout l{shape};
  PairOperands operands(qkv, bias, l);
#ifdef SIMATTENTION_TILES
  if (UseTiles(shape))
    return BackwardTiles(operands, probs, dout, l, begin, end, dqkv, dbias_rows);
#endif
  const int64_t t = shape.tokens, hd = shape.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  Matrix ds(t, t);  // scratch, reused by every item of this call
  for (int64_t item = begin; item < end; ++item) {
    const Operands o = operands.Get(item);
    Eigen::Map<const Matrix> p(probs + item * t * t, t, t);
    ConstView g(dout + l.out_offset(item), t, hd, Eigen::OuterStride<>(l.width()));
    auto grad = [&](int part) {
      return View(dqkv + l.qkv_offset(item, part), t, hd, Eigen::OuterStride<>(3 * l.width()));
    };
    grad(2).noalias() = p.transpose() * g;             // dv [T, hd]
    ds.noalias() = g * o.View(2, t, hd).transpose();   // dp [T, T]
    SoftmaxGradRows(p.data(), ds.data(), t, scale);    // ds / sqrt(hd)
    grad(0).noalias() = ds * o.View(1, t, hd);              // dq [T, hd]
    grad(1).noalias() = ds.transpose() * o.View(0, t, hd);  // dk [T, hd]
    if (dbias_rows != nullptr) BiasGradRows(dqkv, l, item, dbias_rows);
  }
}

}  // namespace simattention
