// Dynamic per-token activation quantization (W8A8, W4A8): every row (token) of a linear layer's
// input gets its own scale from its absolute maximum at run time, as vLLM's dynamic per-token
// kernels compute it. qforge simulates it exactly in fp32 ("fake quantization"): the forward pass
// sees dequant(quant(x)), which is what an integer or FP8 GEMM computes up to its accumulation
// order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qforge::formats {

enum class ActivationFormat : uint8_t {
  None,
  Int8,     // symmetric, scale = absmax / 127, codes rint(x / scale) in [-127, 127]
  Fp8E4M3,  // scale = absmax / 448, element = E4M3fn(x / scale), round to nearest even
};

// "none", "int8", "fp8-e4m3"; anything else throws Error listing these.
ActivationFormat parse_activation_format(std::string_view name);
std::string activation_format_name(ActivationFormat f);

// x ← dequant(quant(x)) for each of the n rows of x [n, dim] (row stride dim), in place. Rows of
// zeros stay zero; the largest magnitude of a row maps to the largest code.
void fake_quantize_activations(ActivationFormat f, float* x, int64_t n, int64_t dim);

}  // namespace qforge::formats
