// libFuzzer target: arbitrary bytes as another tool's compressed-tensors quantization_config,
// against a fixed tensor list. Any input must give a record whose formats all exist, or raise
// qforge::Error — never crash or throw anything else.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "qforge/core/error.h"
#include "qforge/formats/format.h"
#include "qforge/io/compressed_tensors_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // "re:" targets are std::regex, whose recursive compiler a megabyte of '(' would overflow:
  // real configs are a few kilobytes.
  if (size > 4096) return 0;
  static const std::map<std::string, qforge::DType> tensors = {
      {"model.layers.0.self_attn.q_proj.weight_packed", qforge::DType::I32},
      {"model.layers.0.self_attn.q_proj.weight_scale", qforge::DType::BF16},
      {"model.layers.0.self_attn.q_proj.weight_shape", qforge::DType::I64},
      {"model.layers.0.mlp.down_proj.weight", qforge::DType::I8},
      {"model.layers.0.mlp.down_proj.weight_scale", qforge::DType::F32},
      {"model.layers.0.mlp.up_proj.weight", qforge::DType::F8_E4M3},
      {"model.layers.0.mlp.up_proj.weight_scale", qforge::DType::F16},
      {"lm_head.weight", qforge::DType::BF16}};
  try {
    // Kept in a variable: a range-for over a temporary's member would outlive the temporary.
    const qforge::QuantizationRecord record = qforge::record_from_compressed_tensors_config(
        std::string_view(reinterpret_cast<const char*>(data), size), tensors);
    for (const auto& [name, e] : record.tensors) qforge::formats::find_format(e.format);
  } catch (const qforge::Error&) {
  }
  return 0;
}
