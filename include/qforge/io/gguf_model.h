// Models in GGUF: how Hugging Face names, shapes and hyperparameters map to llama.cpp's (one
// place for both directions), and writing a loaded model as a .gguf (`qforge convert`).
// Reading is part of load_model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qforge/core/dtype.h"
#include "qforge/io/gguf.h"
#include "qforge/io/model_loader.h"

namespace qforge {

// GGUF's general.architecture for a model type ("mistral" -> "llama"); throws for others.
std::string gguf_architecture(const std::string& model_type);
// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight" and back; `arch` decides
// Phi-3's fused names. Throws Error for a name outside the supported architectures.
std::string gguf_tensor_name(const std::string& hf_name, const std::string& arch);
std::string hf_tensor_name(const std::string& gguf_name, const std::string& arch);

// llama.cpp's llama arch stores q/k rows of each head interleaved (Meta's RoPE layout, the
// permutation of convert_hf_to_gguf.py): to_gguf permutes Hugging Face rows into it, otherwise
// back. Rows are opaque (`row_bytes` each), so packed block rows permute as well as floats.
std::vector<std::byte> permute_qk_rows(const std::byte* rows, int64_t n_rows, size_t row_bytes,
                                       int64_t heads, bool to_gguf);

// The metadata llama.cpp's convert_hf_to_gguf.py writes: general.*, the hyperparameters and the
// vocabulary (tokenizer.ggml.*). `file_type` is llama.cpp's LLAMA_FTYPE of the tensors.
gguf::MetadataWriter gguf_metadata(const LoadedModel& model, uint32_t file_type);

// Bytes of the GGUF file write_gguf_model writes for `model` besides its matrices' data: header,
// metadata (vocabulary included, general.name = `general_name`), tensor infos, alignment (bounded
// by a whole alignment per tensor) and the norms and biases in F32. An upper bound, exact to within
// 32 bytes a tensor: what a --size budget for a .gguf output leaves to everything else.
uint64_t gguf_overhead_bytes(const LoadedModel& model, const std::string& general_name);

// Writes `model` as a GGUF file: 2-D weights in `dtype` (F32/F16/BF16; nullopt keeps the source's
// dtype, or F32 for a dequantized source), norms and biases in F32, q/k permuted for llama,
// Gemma's norms stored as 1 + w (llama.cpp multiplies by the weight). Temp file + rename.
void write_gguf_model(const LoadedModel& model, const std::filesystem::path& path,
                      std::optional<DType> dtype);

}  // namespace qforge
