// Multi-head attention for one (batch, head) pair at a time, on strided views of the qkv
// projection: no transposes of q, k, v, the output or their gradients, and each pair's
// matrices (tokens x head_dim, tokens x tokens) stay in the core's caches between the
// products. The products are Eigen's single-threaded GEMM, or on AVX2 CPUs without AVX-512
// the register-tiled products of attention_avx2.h; the glue runs pairs in parallel.
// Compiled with -march=native (see siameseim_tf/native_build.py).

// Eigen under its own namespace here: this file is compiled for the CPU it runs on, the
// glue (and TensorFlow) with other flags, and the linker must not pick one file's copy of an
// Eigen template for the other.
#define Eigen SimAttentionEigen
#include <Eigen/Core>

#include <cmath>

#include "attention.h"

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define SIMATTENTION_AVX2 1
#include "attention_avx2.h"
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

#ifdef SIMATTENTION_AVX2
// The same maths with attention_avx2.h's products (head_dim a multiple of 8 keeps every
// packed panel's loads whole).
bool UseAvx2(const Shape& s) { return s.head_dim % 8 == 0; }

void ForwardAvx2(const float* qkv, const Layout& l, int64_t begin, int64_t end, float* out,
                 float* probs) {
  const int64_t t = l.s.tokens, hd = l.s.head_dim, row3 = 3 * l.width();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> scratch(probs == nullptr ? t * t : 0);
  avx2::Transposed kt;
  for (int64_t item = begin; item < end; ++item) {
    float* p = probs == nullptr ? scratch.data() : probs + item * t * t;
    const float *q = qkv + l.qkv_offset(item, 0), *v = qkv + l.qkv_offset(item, 2);
    const avx2::Panels k_t = kt.Pack(qkv + l.qkv_offset(item, 1), t, hd, row3);  // [hd, T]
    avx2::Product(t, q, row3, 1, k_t, 1.0f, p, t);  // q k^T [T, T]
    avx2::SoftmaxRows(p, t, scale);
    avx2::Product(t, p, t, 1, avx2::Rows(v, t, hd, row3), 1.0f, out + l.out_offset(item),
                  l.width());  // p v [T, hd]
  }
}

void BackwardAvx2(const float* qkv, const float* probs, const float* dout, const Layout& l,
                  int64_t begin, int64_t end, float* dqkv) {
  const int64_t t = l.s.tokens, hd = l.s.head_dim, row3 = 3 * l.width(), d = l.width();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> ds(t * t);
  avx2::Transposed vt;
  for (int64_t item = begin; item < end; ++item) {
    const float* p = probs + item * t * t;
    const float* g = dout + l.out_offset(item);
    const float *q = qkv + l.qkv_offset(item, 0), *k = qkv + l.qkv_offset(item, 1);
    float *dq = dqkv + l.qkv_offset(item, 0), *dk = dqkv + l.qkv_offset(item, 1);
    float* dv = dqkv + l.qkv_offset(item, 2);
    avx2::Product(t, p, 1, t, avx2::Rows(g, t, hd, d), 1.0f, dv, row3);  // dv = p^T g
    const avx2::Panels v_t = vt.Pack(qkv + l.qkv_offset(item, 2), t, hd, row3);  // [hd, T]
    avx2::Product(t, g, d, 1, v_t, 1.0f, ds.data(), t);                  // dp = g v^T
    SoftmaxGradRows(p, ds.data(), t, scale);                              // ds / sqrt(hd)
    avx2::Product(t, ds.data(), t, 1, avx2::Rows(k, t, hd, row3), 1.0f, dq, row3);  // ds k
    avx2::Product(t, ds.data(), 1, t, avx2::Rows(q, t, hd, row3), 1.0f, dk, row3);  // ds^T q
  }
}
#endif

}  // namespace

void AttentionForward(const float* qkv, Shape shape, int64_t begin, int64_t end, float* out,
                      float* probs) {
  const Layout l{shape};
#ifdef SIMATTENTION_AVX2
  if (UseAvx2(shape)) return ForwardAvx2(qkv, l, begin, end, out, probs);
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
#ifdef SIMATTENTION_AVX2
  if (UseAvx2(shape)) return BackwardAvx2(qkv, probs, dout, l, begin, end, dqkv);
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
