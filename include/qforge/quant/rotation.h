// QuaRot (Ashkboos et al., "QuaRot: Outlier-Free 4-Bit Inference in Rotated LLMs", 2024): rotate
// the residual stream by an orthogonal Q so that outlier features are spread over all channels,
// with Q fused into the weights. RMSNorm commutes with Q once its weight is folded into the next
// linears (‖xQ‖ = ‖x‖), so in exact arithmetic the rotated model computes the same function:
//   R1  residual stream: Q = diag(±1) · H / √d, a randomised Hadamard matrix (§3). Embedding rows
//       x ← xQ; linears reading the residual (q/k/v, gate/up, lm_head) W ← W diag(γ) Q with the
//       norm weight γ folded in (γ ← 1); linears writing it (o_proj, down_proj) W ← Qᵀ W, b ← b Q.
//   R2  per head, values and o_proj's input: v_proj rows of each value head ← H_hdᵀ · rows,
//       o_proj columns of each head ← columns · H_hd (attention output is linear in v).
//   R4  optional online Hadamard before down_proj: down_proj W ← W H_ff, and the forward pass
//       multiplies down_proj's input by H_ff (InferenceOptions::online_hadamard_down).
// Widths without a power-of-two Hadamard use Sylvester x Paley constructions (kernels/hadamard.h).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "qforge/kernels/hadamard.h"
#include "qforge/model/config.h"
#include "qforge/model/weights.h"
#include "qforge/quant/weight_arena.h"

namespace qforge {

struct RotationOptions {
  bool online_down = false;  // R4
  uint64_t seed = 0;         // signs of R1's randomised Hadamard
};

class ModelRotation {
 public:
  // Throws Error naming the width when hidden_size, head_dim or (with R4) intermediate_size has no
  // Hadamard construction.
  ModelRotation(const ModelConfig& config, const RotationOptions& options);
  const RotationOptions& options() const { return options_; }

  // x ← x Q for n rows of the residual stream ([n, hidden]).
  void rotate_residual(float* x, int64_t n) const;
  // Folds the layer's norms and applies R1, R2 (and R4's weight side) to its weights.
  void rotate_layer(LayerWeights& layer, WeightArena& arena) const;
  // Rows [r0, r1) of the output head with the final norm folded in and rotated, into out [r1-r0,
  // d].
  void rotated_head_rows(const Matrix& head, const Vector& final_norm, int64_t r0, int64_t r1,
                         float* out) const;
  // A final-norm weight that is the identity (1, or 0 for Gemma's 1 + w), to replace the folded
  // one.
  float unit_norm_value() const { return config_.norm_plus_one ? 0.0f : 1.0f; }

 private:
  void fold_norm(Vector& norm, Matrix* const* linears, int count, WeightArena& arena) const;
  void rotate_inputs(Matrix& m, WeightArena& arena) const;                 // W ← W Q
  void rotate_outputs(Matrix& m, Vector& bias, WeightArena& arena) const;  // W ← Qᵀ W, b ← b Q

  ModelConfig config_;
  RotationOptions options_;
  kernels::HadamardTransform residual_, head_;
  std::optional<kernels::HadamardTransform> down_;
  std::vector<float> signs_;  // R1's random ±1
};

// Rotates a whole model in memory (tests, small models): every layer, the embedding and the head
// (untied from the embedding when they were tied: the head carries the folded final norm). The
// arena must outlive the use of `weights`; with R4 the model must run with
// InferenceOptions::online_hadamard_down.
void rotate_model(ModelWeights& weights, const ModelRotation& rotation, WeightArena& arena);

}  // namespace qforge
