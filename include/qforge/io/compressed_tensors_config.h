// A compressed-tensors checkpoint written by another tool (llm-compressor, ...): its config.json
// "quantization_config" read into the record qforge writes for its own checkpoints
// (io/quantization_record.h: per quantized linear its format and layout, and the activations),
// so that the loader dequantizes and runs it the same way.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "qforge/core/dtype.h"
#include "qforge/io/quantization_record.h"

namespace qforge {

// `config`: the quantization_config JSON (quant_method "compressed-tensors"); `tensors`: every
// tensor name of the checkpoint and its dtype. Returns the record. Refuses (Error
// naming the tensor) what qforge cannot honour exactly: a scheme or checkpoint format it does not
// read (asymmetric weights with zero points, activation-ordered g_idx, static or per-tensor
// activation scales, a KV cache scheme, a transform or sparsity config, ...), a quantized module
// no config group targets or that is also ignored, or a missing weight_scale.
QuantizationRecord record_from_compressed_tensors_config(
    std::string_view config, const std::map<std::string, DType>& tensors);

}  // namespace qforge
