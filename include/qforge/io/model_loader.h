// Loads a model from disk: a Hugging Face directory (config.json + safetensors + tokenizer) or a
// llama2.c checkpoint (.bin, with tokenizer.bin / tok512.bin beside it or given explicitly).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "qforge/io/quantization_record.h"
#include "qforge/io/tokenizer.h"
#include "qforge/model/config.h"
#include "qforge/model/transformer.h"
#include "qforge/model/weights.h"

namespace qforge {

struct LoadedModel {
  std::filesystem::path source;
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;  // may be null if none was found and none was required
  // Every tensor of the source with its name, dtype and shape (for `qforge info`).
  std::vector<TensorView> tensors;
  // How a quantized model runs (activation quantization, KV cache format, online rotation), as
  // its quantization record says; defaults for anything else.
  InferenceOptions inference;
  // The quantization record of a model written by `qforge quantize` (or read from a
  // compressed-tensors config); none for a plain model.
  std::optional<QuantizationRecord> quantization_record;
};

struct LoadOptions {
  std::optional<std::filesystem::path> tokenizer;  // overrides the tokenizer found beside the model
  bool require_tokenizer = true;
  // A directory: this config instead of its config.json (the intermediate native directory of a
  // GGUF quantized into a GGUF, whose config comes from the source's metadata).
  const ModelConfig* config = nullptr;
};

// Throws Error naming the file and problem for anything malformed or unsupported, including
// missing or misshaped tensors (checked against the config).
LoadedModel load_model(const std::filesystem::path& path, const LoadOptions& options = {});

// llama2.c checkpoint (legacy v0 format: 7 int32 header + fp32 weights). Part of load_model.
LoadedModel load_llama2c_checkpoint(const std::filesystem::path& path);

}  // namespace qforge
