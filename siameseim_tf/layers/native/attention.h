// Shared between attention.cc (TensorFlow glue) and attention_math.cc (the maths).
// Multi-head self-attention straight from the qkv projection: qkv is row-major
// [batch, tokens, 3, heads, head_dim] (the Dense layer's [B, T, 3D] output), out is
// [batch, tokens, heads, head_dim] ([B, T, D]) and probs [batch, heads, tokens, tokens].
// Work items are (batch, head) pairs, item = b * heads + h; each function does items
// [begin, end) so the glue can split them over TensorFlow's intra-op threads. No item
// reads another's results, so the output does not depend on the split.
// bias ([3D], or null for none) is the projection's bias, not yet added to qkv: each pair
// adds it to its own q, k, v (copies that stay in cache) instead of a separate pass over
// the whole projection; the sums are rounded as a bias add rounds them.
#ifndef SIAMESEIM_ATTENTION_H_
#define SIAMESEIM_ATTENTION_H_

#include <cstdint>

namespace simattention {

struct Shape {
  int64_t tokens, heads, head_dim;
};

// probs = softmax(q k^T / sqrt(head_dim)) over each row, out = probs v; with probs null
// the probabilities are not kept (a forward that nothing differentiates).
void AttentionForward(const float* qkv, const float* bias, Shape shape, int64_t begin,
                      int64_t end, float* out, float* probs);

// The gradients of out w.r.t. q, k and v, written into dqkv ([B, T, 3D], every element of
// items [begin, end) written): with p = probs and g = dout,
// dv = p^T g, ds = p * (g v^T - rowsum(p * g v^T)), dq = ds k / sqrt(hd), dk = ds^T q / sqrt(hd).
// With dbias_rows ([B, 3D], else null) each pair also writes the sums over its tokens of
// its columns of dqkv there (the bias gradient before the sum over the batch).
void AttentionBackward(const float* qkv, const float* bias, const float* probs,
                       const float* dout, Shape shape, int64_t begin, int64_t end, float* dqkv,
                       float* dbias_rows);

}  // namespace simattention

#endif  // SIAMESEIM_ATTENTION_H_
