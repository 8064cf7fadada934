// KL divergence of one position's predicted distribution from a reference, SIMD (Highway).
#pragma once

#include <cstdint>

namespace qforge::kernels {

// KL(p ‖ softmax(logits)) over n entries, with the reference given as probabilities p and
// log-probabilities logp: Σ p_i (logp_i − logits_i) + lse(logits) · Σ p_i. Exponentials in
// float (as std::exp(float)), every sum in double. Clamped at 0 (rounding).
double kl_from_logits(const float* p, const float* logp, const float* logits, int64_t n);

}  // namespace qforge::kernels
