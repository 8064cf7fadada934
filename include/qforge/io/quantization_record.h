// The record of how a model was quantized: `qforge quantize` writes it into the safetensors
// metadata ("qforge.quantization", JSON) and into config.json's quantization_config; the loader,
// the GGUF writer, `qforge info` and `qforge eval` read it back. One typed struct with its JSON
// in one place (to_json / record_from_json), so no other file spells its keys.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/model/transformer.h"

namespace qforge {

// The safetensors metadata key the record is stored under.
inline constexpr const char* kQuantizationRecordKey = "qforge.quantization";

// One quantized tensor (a linear, the embedding or the head), by Hugging Face name.
struct TensorRecord {
  std::string format;             // a qforge format name (formats/format.h), required
  int64_t rows = 0, cols = 0;     // "shape": [rows, cols]; 0 when not recorded
  std::string layout = "qforge";  // where its bytes are: "qforge" (<name>.packed) or
                                  // "compressed-tensors" (<module>.weight_packed, ...)
  std::string ct_format;          // compressed-tensors' format name, with that layout
  std::string input_activations;  // per-token activation format of its input, or ""
  double predicted_kld = 0;       // what a plan predicted for it (0: no plan)
  std::string method;             // set where it differs from the model's ("gptq" for the head)
  // Measured while quantizing: tr((W-Q)H(W-Q)ᵀ) and RTN's, and the head's seconds.
  std::optional<double> objective, objective_rtn, seconds;

  // A tensor stored in `format` with qforge's layout (shape 0 x 0: not recorded).
  static TensorRecord stored_as(std::string format, int64_t rows = 0, int64_t cols = 0);
};

struct CalibrationRecord {
  std::string file;
  int64_t tokens = 0;
  std::string fnv1a64;  // hash of the calibration text, 16 hex digits
  int64_t seq_len = 0;
};

struct GptqRecord {
  double damp = 0;
  int64_t block_size = 0;
  bool act_order = false;
  int64_t refit_rounds = 0;
  bool sub_block_scales = false;
};

struct RotationRecord {
  std::string kind;  // "hadamard"
  uint64_t seed = 0;
  bool online_down = false;
};

// Inputs quantized per token, dynamically (the only kind qforge runs).
struct ActivationsRecord {
  std::string format;  // formats::activation_format_name
  std::string strategy = "token";
  bool dynamic = true;

  static ActivationsRecord per_token(std::string format);
};

struct KvCacheRecord {
  std::string type;  // formats::kv_type_name
  std::string keys;  // "channel" or "token"
  bool keys_pre_rope = false;
  int64_t group = 0;
};

// A tensor whose format had to change (rows not divisible by the block): what was asked, what
// was used.
struct FallbackRecord {
  std::string tensor, format, fallback;
};

struct QuantizationRecord {
  std::string quant_method = "qforge";  // or "compressed-tensors" for a record read from one
  std::string format;                   // the --format asked for, or "mixed" for a plan
  std::string method;                   // "rtn", "gptq", "awq", "awq+gptq"
  std::string tool_version;
  std::optional<CalibrationRecord> calibration;
  std::optional<GptqRecord> gptq;
  std::optional<double> smooth_alpha;
  std::optional<RotationRecord> rotation;
  std::optional<ActivationsRecord> activations;
  std::optional<KvCacheRecord> kv_cache;
  std::vector<FallbackRecord> fallbacks;
  std::map<std::string, TensorRecord> tensors;
  // Written by their own modules and kept as they are: the plan (quant/plan.h's plan_to_json,
  // its tensors left out, plus "file") and AWQ's options and per-group results.
  nlohmann::json plan, awq;

  // The tensor's entry, or nullptr when it is not quantized.
  const TensorRecord* find(const std::string& name) const;
  // The KLD its plan predicted, 0 without a plan.
  double planned_kld() const;
};

nlohmann::json to_json(const QuantizationRecord& r);
// Throws Error naming the key (its path, e.g. "tensors.lm_head.weight.format") that is missing or
// has the wrong type. Required: "tensors" and each tensor's "format"; every other key may be
// absent (or null) but is checked when present.
QuantizationRecord record_from_json(const nlohmann::json& j);
// From its JSON text; malformed JSON is refused like a missing key.
QuantizationRecord parse_quantization_record(std::string_view text);

// How the model must run: activation quantization of the groups whose linears carry
// input_activations, the KV cache format and the online Hadamard before down_proj. Throws Error
// for unknown formats or a KV group the model cannot take (the caller adds the file name).
// `layers` gives the linears' tensor names.
InferenceOptions inference_from_record(const QuantizationRecord& record, const ModelConfig& config,
                                       const std::vector<LayerWeights>& layers);

}  // namespace qforge
