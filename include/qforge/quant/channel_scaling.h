// Per-input-channel scaling of a group of linears that read the same input, folded exactly into
// what produces that input — the equivalent transform behind SmoothQuant and AWQ:
//     X · Wᵀ = (X · diag(1/s)) · (W · diag(s))ᵀ
// The 1/s goes into the RMSNorm weight (AttnIn: q/k/v, MlpIn: gate/up), the rows of v_proj
// (AttnOut: o_proj; attention output channels are linear in v) or the rows of up_proj (MlpAct:
// down_proj; act(gate) · up is linear in up). In exact arithmetic the model computes the same
// function; only what the quantizers see changes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qforge/model/config.h"
#include "qforge/model/transformer.h"
#include "qforge/quant/weight_arena.h"

namespace qforge {

// Entries of s for a group: hidden_size (AttnIn, MlpIn), kv_dim (AttnOut: query heads that share a
// value head read the same v channels, so they must share its scale), intermediate_size (MlpAct).
int64_t scale_count(const ModelConfig& config, LinearGroup group);
// s expanded to the input channels of the group's linears (AttnOut: kv_dim -> q_dim).
std::vector<float> scales_per_input(const ModelConfig& config, LinearGroup group,
                                    std::span<const float> s);
// Reduces per-input-channel values (e.g. max |x| over o_proj's q_dim inputs) to one per scale
// entry (kv_dim for AttnOut) with `reduce` (max or mean); identity for the other groups.
std::vector<double> per_scale_entry(const ModelConfig& config, LinearGroup group,
                                    std::span<const double> per_input, bool take_max);

// Multiplies the columns of the group's linears by s and divides the producer of their input by s.
// Every s must be positive and finite.
void scale_group_input(const ModelConfig& config, LayerWeights& layer, LinearGroup group,
                       std::span<const float> s, WeightArena& arena);

}  // namespace qforge
