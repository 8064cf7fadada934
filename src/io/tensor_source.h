// Where load_model finds a model's tensors by Hugging Face name: the safetensors files of a
// directory, or a GGUF file whose tensors were renamed and reshaped to Hugging Face's convention.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qforge/core/tensor.h"
#include "qforge/io/quantization_record.h"

namespace qforge {

struct TensorSource {
  std::filesystem::path path;  // named in errors
  // The tensor called `name` (Hugging Face name, row-major shape), or nullptr.
  std::function<const TensorView*(const std::string&)> find;
  // The "qforge.quantization" record of a qforge-native model (JSON text), or empty.
  std::string record;
  // Block-quantized weights stored as "<name>.packed" (U8) without a record, by name.
  std::map<std::string, TensorRecord> packed_tensors;
  // Keeps the views' bytes alive; drops resident pages of a finished layer (may be empty).
  std::vector<std::shared_ptr<const void>> storage;
  std::function<void(const std::byte*, size_t)> release_pages;
  // Every tensor of the source, for `qforge info`.
  std::vector<TensorView> listing;
};

}  // namespace qforge
