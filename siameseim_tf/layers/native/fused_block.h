// Shared between fused_block.cc (TensorFlow glue) and fused_block_math.cc (the maths).
// Every function works on rows [begin, end) of a row-major [rows, width] tensor, so the glue
// can split the rows over TensorFlow's intra-op threads. bfloat16 travels as its bits
// (uint16_t): the maths file is compiled without TensorFlow's headers.
#ifndef SIAMESEIM_FUSED_BLOCK_H_
#define SIAMESEIM_FUSED_BLOCK_H_

#include <cstdint>

namespace simblock {

// y = (x - mean) * rstd * gamma + beta; statistics in float32, written to mean / rstd.
template <typename T>
void LayerNormForward(const T* x, const float* gamma, const float* beta, float epsilon,
                      int64_t width, int64_t begin, int64_t end, T* y, float* mean, float* rstd);

// dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), g = dy * gamma; the rows'
// sum(dy * x_hat) and sum(dy) are added to dgamma / dbeta (each [width], float32).
template <typename T>
void LayerNormBackward(const T* x, const float* gamma, const float* mean, const float* rstd,
                       const T* dy, int64_t width, int64_t begin, int64_t end, T* dx,
                       float* dgamma, float* dbeta);

// Exact GELU x * Phi(x) and its gradient dy * (Phi(x) + x * phi(x)) over elements
// [begin, end).
template <typename T>
void GeluForward(const T* x, int64_t begin, int64_t end, T* y);
template <typename T>
void GeluBackward(const T* x, const T* dy, int64_t begin, int64_t end, T* dx);

// Softmax's gradient from its output y: dz = y * (dy - sum(dy * y)) over each row.
template <typename T>
void SoftmaxBackward(const T* y, const T* dy, int64_t width, int64_t begin, int64_t end, T* dz);

// y = GELU(x + bias) over each row (the bias add in float32, not rounded before GELU); and
// its gradient dh = dy * GELU'(x + bias), whose column sums (the bias gradient's partial
// sum, float32) are added to sums ([width]).
template <typename T>
void BiasGeluForward(const T* x, const T* bias, int64_t width, int64_t begin, int64_t end, T* y);
template <typename T>
void BiasGeluBackward(const T* x, const T* bias, const T* dy, int64_t width, int64_t begin,
                      int64_t end, T* dh, float* sums);

// y = x + bias over each row; and the rows' dy added to sums ([width], float32), the bias
// gradient's partial sum.
template <typename T>
void BiasAdd(const T* x, const T* bias, int64_t width, int64_t begin, int64_t end, T* y);
template <typename T>
void BiasGradRows(const T* dy, int64_t width, int64_t begin, int64_t end, float* sums);
// y = residual + (x + bias) over each row, x + bias rounded to T first as a separate
// bias add would (the same values as the two ops, in one pass).
template <typename T>
void BiasAddResidual(const T* x, const T* bias, const T* residual, int64_t width,
                     int64_t begin, int64_t end, T* y);

}  // namespace simblock

#endif  // SIAMESEIM_FUSED_BLOCK_H_
