// The decoder forward pass: one implementation for every supported family, steered by ModelConfig.
//   x = embed(tokens) [* sqrt(hidden) for Gemma]
//   per layer:  h = x + o_proj(attention(rope(q), rope(k), v))   with q/k/v from rmsnorm(x)
//               x = h + down(act(gate(rmsnorm(h))) * up(rmsnorm(h)))
//   logits = lm_head(rmsnorm(x))
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "qforge/core/thread_pool.h"
#include "qforge/model/config.h"
#include "qforge/model/weights.h"

namespace qforge {

// Keys and values of every layer for up to `capacity` positions, fp32.
// Layout [layer][kv_head][position][head_dim], so one head's keys are contiguous for attention.
class KVCache {
 public:
  // shared_layers: one slot that every layer uses in turn, for layer-at-a-time passes that run a
  // whole sequence through one layer before the next (calibration); memory does not grow with
  // depth then.
  KVCache(const ModelConfig& config, int capacity, bool shared_layers = false);
  int capacity() const { return capacity_; }
  float* keys(int layer, int kv_head) { return k_.data() + offset(layer, kv_head); }
  float* values(int layer, int kv_head) { return v_.data() + offset(layer, kv_head); }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

 private:
  size_t offset(int layer, int kv_head) const;
  int capacity_, kv_heads_, head_dim_;
  bool shared_layers_;
  std::vector<float> k_, v_;
};

// Where the inputs of each group of linear layers can be observed (for calibration statistics).
// Linears in one group read the same input, so they share its statistics.
enum class LinearGroup : uint8_t {
  AttnIn,   // q_proj, k_proj, v_proj read rmsnorm(x)
  AttnOut,  // o_proj reads the attention output
  MlpIn,    // gate_proj, up_proj read rmsnorm(h)
  MlpAct,   // down_proj reads act(gate) * up
};
constexpr int kLinearGroups = 4;

// Observer of linear-layer inputs: called with the [n, dim] input of `group` in `layer`.
struct ForwardHooks {
  std::function<void(int layer, LinearGroup group, const float* x, int n, int dim)> on_input;
  // Stop the layer right after reporting this group's input (skip the rest of the layer).
  std::optional<LinearGroup> stop_after;
};

class Transformer {
 public:
  // `weights` must outlive the transformer. Norm weights and biases are widened to f32 once here.
  Transformer(const ModelConfig& config, const ModelWeights& weights, ThreadPool& pool);

  // Runs `tokens` at positions [pos, pos + n), reading and extending `cache` (which must hold
  // positions [0, pos) already). Writes logits [n, vocab] when all_logits, else only the last
  // token's logits [vocab].
  void forward(std::span<const int32_t> tokens, int pos, KVCache& cache, float* logits,
               bool all_logits);

  // The same computation in pieces, for layer-by-layer work (calibration, quantization).
  // x is [n, hidden_size]. run_layer updates x in place (unless hooks stop it early).
  void embed(std::span<const int32_t> tokens, float* x);
  void run_layer(int layer, float* x, int n, int pos, KVCache& cache,
                 const ForwardHooks* hooks = nullptr);
  // Final norm + lm_head for n rows of x.
  void output(const float* x, int n, float* logits);

  const ModelConfig& config() const { return config_; }
  ThreadPool& pool() const { return pool_; }
  // Bytes of weights read to decode one token (all linear layers + one embedding row + norms).
  size_t weight_bytes_per_token() const;
  // Total parameters of the model.
  int64_t parameter_count() const;

 private:
  struct LayerParams {  // f32 copies of the small per-layer vectors
    std::vector<float> attn_norm, ffn_norm, q_norm, k_norm, bq, bk, bv, bo, b_gate, b_up, b_down;
  };
  void attention(int layer, int n, int pos, KVCache& cache);
  void ensure_scratch(int n, int ctx);
  void rope_tables(int pos, int n);

  const ModelConfig config_;
  const ModelWeights& w_;
  ThreadPool& pool_;
  std::vector<LayerParams> layer_params_;
  std::vector<float> final_norm_;
  // scratch, sized for the largest n seen
  int scratch_n_ = 0;
  std::vector<float> x_, xn_, q_, k_, v_, attn_out_, gate_, up_, scores_;
  std::vector<float> cos_,
      sin_;  // [n, rotary_dim/2] for positions [rope_pos_, rope_pos_ + rope_n_)
  int rope_pos_ = -1, rope_n_ = 0;
  std::vector<double> inv_freq_;
};

}  // namespace qforge
