// Times the attention library's maths (siameseim_tf/layers/native/attention_math.cc) on one
// core: forward with and without the probabilities and backward over the 96 (batch, head)
// pairs of one ViT-Tiny block (batch 32, 3 heads of 64) at the step's token counts, with the
// qkv bias added inside the kernels when the second argument is 1 (as training does). Which
// products run is read from SIAMESEIM_ATTENTION_TILES, as in training. Prints one JSON
// line of best-of-`repeats` milliseconds. Built and run by run.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "attention.h"

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

int main(int argc, char** argv) {
  using simattention::Shape;
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 7;
  const bool with_bias = argc > 2 && std::atoi(argv[2]) != 0;  // the qkv bias, as in training
  const int64_t batch = 32, heads = 3, head_dim = 64, items = batch * heads;
  std::printf("{");
  const int token_counts[] = {79, 197, 275};  // online encoder, momentum encoder, predictor
  for (int n = 0; n < 3; ++n) {
    const int64_t t = token_counts[n];
    const Shape shape{t, heads, head_dim};
    std::vector<float> qkv(batch * t * 3 * heads * head_dim), dout(batch * t * heads * head_dim);
    std::vector<float> out(dout.size()), probs(items * t * t), dqkv(qkv.size());
    std::mt19937 engine(0);
    std::normal_distribution<float> normal;
    for (float& x : qkv) x = normal(engine);
    for (float& x : dout) x = normal(engine);
    std::vector<float> bias(3 * heads * head_dim), dbias_rows(batch * bias.size());
    for (float& x : bias) x = normal(engine);
    const float* bias_or_null = with_bias ? bias.data() : nullptr;
    float* dbias_rows_or_null = with_bias ? dbias_rows.data() : nullptr;
    double forward = 1e9, inference = 1e9, backward = 1e9;
    for (int r = 0; r < repeats; ++r) {
      const double a = Now();
      simattention::AttentionForward(qkv.data(), bias_or_null, shape, 0, items, out.data(),
                                     probs.data());
      const double b = Now();
      simattention::AttentionBackward(qkv.data(), bias_or_null, probs.data(), dout.data(), shape,
                                      0, items, dqkv.data(), dbias_rows_or_null);
      const double c = Now();
      simattention::AttentionForward(qkv.data(), bias_or_null, shape, 0, items, out.data(),
                                     nullptr);
      const double d = Now();
      forward = std::min(forward, b - a);
      backward = std::min(backward, c - b);
      inference = std::min(inference, d - c);
    }
    std::printf("%s\"%lld\": {\"forward_ms\": %.3f, \"forward_no_probs_ms\": %.3f, "
                "\"backward_ms\": %.3f}",
                n ? ", " : "", static_cast<long long>(t), 1e3 * forward, 1e3 * inference,
                1e3 * backward);
  }
  std::printf("}\n");
  return 0;
}
