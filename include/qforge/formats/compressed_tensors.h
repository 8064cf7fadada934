// compressed-tensors (the safetensors layout of llm-compressor checkpoints that vLLM serves):
// which qforge formats have a scheme there, and the lossless repacking of a tensor's bytes between
// qforge's layout and compressed-tensors' tensors:
//   int4/int8 symmetric, per tensor/channel/group  "pack-quantized":  weight_packed I32
//       [rows, cols * bits / 32] (codes q + 2^(bits-1), LSB first), weight_scale [rows, groups]
//       (the format's scale dtype), weight_shape I64 [2]
//   int8 symmetric with quantized activations       "int-quantized":   weight I8 [rows, cols]
//       (q itself), weight_scale as above — vLLM's W8A8 schemes read only activation-quantization
//       checkpoint formats (int-quantized, float-quantized), not pack-quantized
//   fp8-e4m3 per tensor/channel                     "float-quantized": weight F8_E4M3
//       [rows, cols], weight_scale [rows, 1] or [1]
//   nvfp4                                     "nvfp4-pack-quantized": weight_packed U8
//       [rows, cols / 2] (E2M1, low nibble first), weight_scale F8_E4M3 [rows, cols / 16],
//       weight_global_scale F32 [1] (the reciprocal of qforge's per-tensor scale)
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qforge/core/dtype.h"
#include "qforge/formats/format.h"

namespace qforge::formats {

// The "weights" entry of a compressed-tensors config group, plus the checkpoint "format".
struct CtScheme {
  std::string format;  // "pack-quantized", "float-quantized", "nvfp4-pack-quantized"
  int num_bits = 0;
  std::string type;        // "int" or "float"
  std::string strategy;    // "tensor", "channel", "group" or "tensor_group"
  int64_t group_size = 0;  // 0: none
  bool symmetric = true;
};

// The scheme of `f` for a [rows, cols] weight; nullopt if compressed-tensors has none (asymmetric
// or 2/3/5/6-bit integers, MX, NF4, GGUF types, ...) or the row length cannot be packed.
// `activations_quantized`: the linear's input is quantized too (W8A8), which picks the
// activation-quantization layout where one exists (int8 -> int-quantized). Every function below
// takes the same flag and must be given the same value for one weight.
std::optional<CtScheme> compressed_tensors_scheme(const Format& f, int64_t rows, int64_t cols,
                                                  bool activations_quantized = false);

// One tensor "<module>.<suffix>" of a compressed-tensors weight.
struct CtTensor {
  std::string suffix;  // "weight_packed", "weight_scale", ...
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  std::vector<std::byte> data;  // empty from compressed_tensors_layout
};

// Names, dtypes and shapes only (what a file header needs before the data exists).
std::vector<CtTensor> compressed_tensors_layout(const Format& f, int64_t rows, int64_t cols,
                                                bool activations_quantized = false);
// qforge bytes (Format::encode / GroupQuantizer::pack) -> compressed-tensors tensors.
std::vector<CtTensor> to_compressed_tensors(const Format& f, const std::byte* packed, int64_t rows,
                                            int64_t cols, bool activations_quantized = false);
// The inverse; `get(suffix)` returns that tensor's bytes (checked against the layout's sizes).
std::vector<std::byte> from_compressed_tensors(
    const Format& f, int64_t rows, int64_t cols,
    const std::function<std::span<const std::byte>(const std::string& suffix)>& get,
    bool activations_quantized = false);

}  // namespace qforge::formats
