// From a measurement and a size budget to a plan: each tensor's format chosen so that the
// predicted KLD (the sum of the tensors' predicted shares) is smallest with the bytes within the
// budget, solved exactly (plan/knapsack.h). A tensor may also be kept as stored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "qforge/plan/sensitivity.h"
#include "qforge/quant/plan.h"

namespace qforge::plan {

struct Budget {
  enum class Kind { BitsPerWeight, FileBytes };
  Budget() = default;
  Budget(Kind k, double v) : kind(k), value(v) {}
  Kind kind = Kind::BitsPerWeight;
  // BitsPerWeight: bits over all weights of the linears, embedding and head (a tensor kept as
  // stored counts at its own bits). FileBytes: bytes of the whole output file (model.safetensors,
  // or the .gguf of `quantize -o X.gguf`), header and every unquantized tensor included.
  double value = 0;
  // FileBytes: the file's bytes besides the quantizable tensors; unset, file_overhead_bytes (the
  // model.safetensors layout). A .gguf output sets gguf_overhead_bytes.
  std::optional<uint64_t> overhead;
  std::string describe() const;  // "--bpw 4.25" / "--size 30000000"
};

// Bytes of model.safetensors besides the quantizable tensors' own: every other tensor and a bound
// on the header (tensor names, offsets and the quantization record).
uint64_t file_overhead_bytes(const Measurement& m);

// The bytes the quantizable tensors may take under the budget. A budget below the smallest or
// above the largest possible size is refused, naming both limits. Needs only the sizes
// (candidate_sizes), so it runs before any measurement.
uint64_t budget_bytes(const Measurement& m, const Budget& budget);

// The optimal plan. A budget below the smallest or above the largest possible size is refused,
// naming both limits.
QuantPlan plan_for_budget(const Measurement& m, const Budget& budget);

}  // namespace qforge::plan
