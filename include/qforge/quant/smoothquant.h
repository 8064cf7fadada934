// SmoothQuant (Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training Quantization for
// Large Language Models", ICML 2023, Eq. 4): migrate activation outliers into the weights with
//     s_j = max|X_j|^α / max|W_j|^(1−α)
// per input channel j, folded with channel_scaling.h (X diag(1/s), W diag(s)). α = 0.5 balances
// the two ranges; larger α moves more of the difficulty into the weights.
#pragma once

#include <span>
#include <vector>

namespace qforge {

// act_max and weight_max per scale entry; channels with no signal (a zero max) keep s = 1.
std::vector<float> smoothquant_scales(std::span<const double> act_max,
                                      std::span<const double> weight_max, double alpha);

}  // namespace qforge
