// An independent float64 forward pass for tests: the transformer written out plainly in double,
// reading the same loaded weights. It shares no code with model/ or kernels/, so agreement between
// the two checks the optimised fp32 implementation against the mathematics, not against itself.
#pragma once

#include <vector>

#include "qforge/model/config.h"
#include "qforge/model/weights.h"

namespace qforge::testing {

// Logits [tokens.size(), vocab] for the whole sequence (causal), in double.
std::vector<double> reference_forward_f64(const ModelConfig& config, const ModelWeights& weights,
                                          const std::vector<int32_t>& tokens);

}  // namespace qforge::testing
