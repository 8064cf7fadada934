// GGUF block types (llama.cpp's ggml quantization types) as registered formats.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qforge/formats/format.h"

namespace qforge::formats {

// The GGUF type names this build supports, e.g. "q4_0", "q4_k".
std::vector<std::string> gguf_format_names();
// The format for a GGUF type name, or null when `name` is not one.
std::unique_ptr<Format> make_gguf_format(const std::string& name);

}  // namespace qforge::formats
