// A .gguf file opened as a model: its config from the metadata, its tensors under Hugging Face
// names and shapes (the llama q/k row permutation undone), its tokenizer from the vocabulary.
#pragma once

#include <filesystem>
#include <memory>

#include "io/tensor_source.h"
#include "qforge/io/tokenizer.h"
#include "qforge/model/config.h"

namespace qforge {

struct GgufModelSource {
  ModelConfig config;
  TensorSource tensors;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the file has no tokenizer.ggml.model
};

// Throws Error naming the file for anything malformed or unsupported.
GgufModelSource open_gguf_model(const std::filesystem::path& path);

}  // namespace qforge
