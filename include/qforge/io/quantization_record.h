// The record `qforge quantize` writes into a model's metadata ("qforge.quantization", JSON) read
// back into how the model must run: activation quantization of the groups whose linears carry
// "input_activations", the KV cache format, and the online Hadamard before down_proj.
#pragma once

#include <string_view>
#include <vector>

#include "qforge/model/transformer.h"

namespace qforge {

// Throws Error for malformed JSON, wrong field types, unknown formats or a KV group the model
// cannot take (the caller adds the file name). `layers` gives the linears' tensor names.
InferenceOptions inference_from_record(std::string_view record, const ModelConfig& config,
                                       const std::vector<LayerWeights>& layers);

}  // namespace qforge
