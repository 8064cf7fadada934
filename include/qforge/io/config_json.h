// Hugging Face config.json -> ModelConfig, for the Llama, Mistral, Qwen2, Qwen3, Gemma and Phi-3
// families, in both the classic (rope_theta, torch_dtype) and newer (rope_parameters, dtype)
// styles. Unsupported architectures or RoPE scaling types are refused by name, never guessed.
#pragma once

#include <filesystem>
#include <string_view>

#include "qforge/model/config.h"

namespace qforge {

// `label` names the source in errors (usually the file path).
ModelConfig parse_config_json(std::string_view json_text, const std::string& label);
ModelConfig load_config_json(const std::filesystem::path& path);

}  // namespace qforge
