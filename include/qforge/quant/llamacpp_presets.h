// llama-quantize's presets by name (q4_k_m, q3_k_m, iq4_xs, ...): the GGUF type of every weight
// exactly as mainline llama.cpp chooses it (src/llama-quant.cpp, llama_tensor_get_type_impl and
// tensor_type_fallback, for the dense architectures qforge supports), so that a qforge file and
// a llama-quantize file of the same preset have the same tensor types and size.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qforge/model/config.h"

namespace qforge {

struct PresetPlan {
  std::string base;  // the preset's default type (qforge format name), e.g. "q4_k" for q4_k_m
  // (Hugging Face weight name, format or "keep") for every linear, the embedding and the head;
  // "keep" where llama.cpp would fall back to F16 (rows not a multiple of 32).
  std::vector<std::pair<std::string, std::string>> tensors;
};

// nullopt when `name` is not a llama.cpp preset. `imatrix`: whether llama-quantize would be given
// an importance matrix (qforge: calibration data), which changes a few choices.
std::optional<PresetPlan> llamacpp_preset(std::string_view name, const ModelConfig& config,
                                          bool imatrix);
// The preset names, for help and errors.
std::vector<std::string> llamacpp_preset_names();

}  // namespace qforge
