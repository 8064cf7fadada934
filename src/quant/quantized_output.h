// The layout and metadata of `qforge quantize`'s output directory (internal to quant): which
// tensors a quantized weight becomes, and config.json's quantization_config in compressed-tensors'
// schema or qforge's own.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/formats/activation.h"
#include "qforge/formats/compressed_tensors.h"
#include "qforge/formats/format.h"

namespace qforge::output {

// How one quantized weight is stored: compressed-tensors' tensors where the format has a scheme
// there (decoder linears only), else qforge's "<name>.packed".
struct TensorPlan {
  const formats::Format* format = nullptr;
  std::optional<formats::CtScheme> scheme;
  int64_t rows = 0, cols = 0;
};

// "model.layers.0.mlp.down_proj.weight" -> "model.layers.0.mlp.down_proj"
std::string module_of(const std::string& weight_name);

// config.json's quantization_config in compressed-tensors' schema (for vLLM), for outputs whose
// quantized weights all have a scheme there. qforge's own record rides along under "qforge".
nlohmann::json compressed_tensors_config(const std::map<std::string, TensorPlan>& plan,
                                         const std::vector<std::string>& unquantized_linears,
                                         formats::ActivationFormat activations,
                                         const nlohmann::json& qforge_record);

}  // namespace qforge::output
