// The decoder forward pass: one implementation for every supported family, steered by ModelConfig.
//   x = embed(tokens) [* sqrt(hidden) for Gemma]
//   per layer:  h = x + o_proj(attention(rope(q), rope(k), v))   with q/k/v from rmsnorm(x)
//               x = h + down(act(gate(rmsnorm(h))) * up(rmsnorm(h)))
//   logits = lm_head(rmsnorm(x))
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qforge/core/thread_pool.h"
#include "qforge/formats/activation.h"
#include "qforge/kernels/hadamard.h"
#include "qforge/model/config.h"
#include "qforge/model/kv_cache.h"
#include "qforge/model/weights.h"

namespace qforge {

// Where the inputs of each group of linear layers can be observed (for calibration statistics).
// Linears in one group read the same input, so they share its statistics.
enum class LinearGroup : uint8_t {
  AttnIn,   // q_proj, k_proj, v_proj read rmsnorm(x)
  AttnOut,  // o_proj reads the attention output
  MlpIn,    // gate_proj, up_proj read rmsnorm(h)
  MlpAct,   // down_proj reads act(gate) * up
};
constexpr int kLinearGroups = 4;

// The linears of a layer that read a group's input, in a fixed order.
std::vector<Matrix*> linears_of_group(LayerWeights& layer, LinearGroup group);
std::vector<const Matrix*> linears_of_group(const LayerWeights& layer, LinearGroup group);

// Observer of linear-layer inputs: called with the [n, dim] input of `group` in `layer`.
struct ForwardHooks {
  std::function<void(int layer, LinearGroup group, const float* x, int n, int dim)> on_input;
  // Stop the layer right after reporting this group's input (skip the rest of the layer).
  std::optional<LinearGroup> stop_after;
  // Start the layer at this group's linears instead of at its beginning, where an earlier run
  // stopped. x then holds the residual stream as it stands there: the layer's input up to
  // AttnOut, the attention block's output (h) from MlpIn on. AttnOut and MlpAct read their input
  // from `start_input` (as on_input reported it, activation quantization included; it is not
  // reported again); AttnIn and MlpIn recompute theirs from x.
  std::optional<LinearGroup> start_at;
  const float* start_input = nullptr;
};

// How the forward pass simulates quantized inference beyond the stored weights (recorded in a
// quantized model's config and applied at load time; see docs/ARCHITECTURE.md).
struct InferenceOptions {
  // Dynamic per-token quantization of the inputs of linear layers (W8A8, W4A8).
  formats::ActivationFormat activations = formats::ActivationFormat::None;
  // Which linear groups of which layer get quantized inputs; empty = all of them.
  std::vector<std::array<bool, kLinearGroups>> activation_groups;
  // Run int8 activations through the integer kernels where a format has them (W8A8/W4A8 for
  // real); false keeps the f32 simulation everywhere, the definition the integer path is checked
  // against.
  bool integer_activations = true;
  // QuaRot's online rotation: the input of down_proj is multiplied by an orthonormal Hadamard
  // matrix (whose transpose was folded into down_proj's weights when the model was rotated).
  bool online_hadamard_down = false;
  KvCacheFormat kv;

  bool quantizes_input(int layer, LinearGroup g) const {
    if (activations == formats::ActivationFormat::None) return false;
    return activation_groups.empty() || activation_groups.at(layer)[static_cast<int>(g)];
  }
  // "activations int8 per token; KV int4 (...); online Hadamard before down_proj", or "none".
  std::string describe() const;
};

class Transformer {
 public:
  // `weights` must outlive the transformer. Norm weights and biases are widened to f32 once here.
  Transformer(const ModelConfig& config, const ModelWeights& weights, ThreadPool& pool,
              InferenceOptions options = {});

  // A KV cache in this model's KV format for `capacity` positions.
  KVCache new_cache(int capacity, bool shared_layers = false) const;
  const InferenceOptions& options() const { return options_; }
  // Re-reads layer l's norm weights and biases after its weights were rewritten in place.
  void refresh_layer(int layer);

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
  // The final norm alone (the head's input) for n rows of x, into out [n, hidden_size].
  void final_norm(const float* x, int n, float* out) const;

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return w_; }
  ThreadPool& pool() const { return pool_; }
  // Bytes of weights read to decode one token (all linear layers + one embedding row + norms).
  size_t weight_bytes_per_token() const;
  // Total parameters of the model.
  int64_t parameter_count() const;

 private:
  struct LayerParams {  // f32 copies of the small per-layer vectors
    std::vector<float> attn_norm, ffn_norm, q_norm, k_norm, bq, bk, bv, bo, b_gate, b_up, b_down;
  };
  LayerParams widen_layer(const LayerWeights& lw) const;
  void attention(int layer, int n, int pos, KVCache& cache);
  void ensure_scratch(int n);
  // Makes the RoPE tables cover positions [0, end).
  void ensure_rope(int end);
  void rope_keys(float* keys, int first_pos, int count) const;

  const ModelConfig config_;
  const ModelWeights& w_;
  ThreadPool& pool_;
  InferenceOptions options_;
  std::optional<kernels::HadamardTransform> down_rotation_;
  std::vector<LayerParams> layer_params_;
  std::vector<float> final_norm_;
  // scratch, sized for the largest n seen
  int scratch_n_ = 0;
  std::vector<float> x_, xn_, q_, k_, v_, attn_out_, gate_, up_, scores_;
  // cos/sin of every position in [0, rope_end_), rotary_dim/2 entries each
  std::vector<float> cos_, sin_;
  int rope_end_ = 0;
  std::vector<double> inv_freq_;
};

}  // namespace qforge
