// A quantization plan: the format of every quantizable tensor (decoder linears, the embedding and
// the output head), with the exact bytes it will take and the error predicted for it. Tensors the
// plan does not name stay unquantized. `qforge quantize` builds one from --format /
// --tensor-format rules or reads one written by `qforge plan`; the GGUF writer reads the same.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/model/transformer.h"
#include "qforge/model/weights.h"

namespace qforge {

struct PlannedTensor {
  std::string format;  // registry name (formats::find_format)
  int64_t rows = 0, cols = 0;
  uint64_t bytes = 0;          // encoded bytes: codes and every scale and zero
  double predicted_kld = 0;    // this tensor's predicted share of the model's KLD (0: unknown)
  double layer_objective = 0;  // its predicted tr((W−Q)H(W−Q)ᵀ) (0: unknown, e.g. embedding)
};

// How the plan was chosen (empty for plans built from --format rules).
struct PlanBudget {
  std::string request;         // as asked: "--bpw 4.25" or "--size 30000000"
  uint64_t max_bytes = 0;      // bound on the quantizable tensors' bytes that the request implies
  uint64_t used_bytes = 0;     // their bytes under the plan (<= max_bytes)
  double bits_per_weight = 0;  // bits over all quantizable weights (kept ones at their own bits)
};

struct QuantPlan {
  std::map<std::string, PlannedTensor> tensors;  // tensor name -> format; absent = kept
  PlanBudget budget;
  double predicted_kld = 0;  // sum of the tensors' predicted KLD (0: unknown)
  std::string method;        // the method the errors were measured for ("gptq", "awq+gptq")
};

// A tensor a plan may name: every decoder linear, the embedding and the head. A tied head is the
// embedding (one tensor named `model.embed_tokens.weight`), unless `untie` (a rotation folds the
// final norm into the head, so it becomes a tensor of its own named `lm_head.weight`).
struct QuantizableTensor {
  enum class Kind { Linear, Embedding, Head };
  std::string name;
  Kind kind = Kind::Linear;
  int layer = -1;                           // linears only
  LinearGroup group = LinearGroup::AttnIn;  // linears only
  int64_t rows = 0, cols = 0;
  DType dtype = DType::F32;  // as stored in the source
  const Matrix* weight = nullptr;
};
std::vector<QuantizableTensor> quantizable_tensors(const ModelWeights& weights, bool untie = false);

// Refuses a plan made for another model: a name it does not have, or a shape that differs.
// `source` names the plan (its file) in the message.
void check_plan_fits(const QuantPlan& plan, const std::vector<QuantizableTensor>& tensors,
                     const std::string& source);

nlohmann::json plan_to_json(const QuantPlan& plan);
// Throws Error naming `source` and the problem (missing keys, unknown format names, ...).
QuantPlan plan_from_json(const nlohmann::json& j, const std::string& source);
QuantPlan read_plan(const std::filesystem::path& path);
void write_plan(const std::filesystem::path& path, const QuantPlan& plan);

}  // namespace qforge
