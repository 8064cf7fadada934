#include "qforge/plan/planner.h"

#include <cmath>

#include "qforge/core/error.h"
#include "qforge/plan/knapsack.h"

namespace qforge::plan {
namespace {

// Per tensor: its candidates, then "kept as stored" (no loss) as the last option.
std::vector<std::vector<KnapsackOption>> knapsack_items(const Measurement& m) {
  std::vector<std::vector<KnapsackOption>> items;
  for (const TensorMeasure& t : m.tensors) {
    std::vector<KnapsackOption> options;
    for (const CandidateMeasure& c : t.candidates) options.push_back({c.bytes, c.kld_predicted});
    options.push_back({t.kept_bytes, 0.0});
    items.push_back(std::move(options));
  }
  return items;
}

uint64_t weight_count(const Measurement& m) {
  uint64_t n = 0;
  for (const TensorMeasure& t : m.tensors) n += static_cast<uint64_t>(t.rows * t.cols);
  return n;
}

double bits_per_weight(uint64_t bytes, uint64_t weights) {
  return 8.0 * static_cast<double>(bytes) / static_cast<double>(weights);
}

}  // namespace

std::string Budget::describe() const {
  return kind == Kind::BitsPerWeight ? fmt::format("--bpw {}", value)
                                     : fmt::format("--size {:.0f}", value);
}

uint64_t file_overhead_bytes(const Measurement& m) {
  // Header: per tensor at most three entries (compressed-tensors) of name + dtype + shape +
  // offsets, and its record (format, shape, layout, objectives, predicted KLD); plus the
  // model-wide record. Generous, so that the file never exceeds the budget.
  uint64_t header = 16384;
  for (const TensorMeasure& t : m.tensors) header += 4 * t.name.size() + 640;
  return m.other_bytes + header;
}

uint64_t budget_bytes(const Measurement& m, const Budget& budget) {
  uint64_t smallest = 0, largest = 0;
  for (const auto& options : knapsack_items(m)) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const KnapsackOption& o : options) {
      lo = std::min(lo, o.cost);
      hi = std::max(hi, o.cost);
    }
    smallest += lo;
    largest += hi;
  }
  if (budget.kind == Budget::Kind::BitsPerWeight) {
    const uint64_t weights = weight_count(m);
    const double lo = bits_per_weight(smallest, weights), hi = bits_per_weight(largest, weights);
    check(budget.value >= lo && budget.value <= hi,
          "--bpw {}: out of range for {}: the smallest possible is {:.4f} bits per weight, the "
          "largest {:.4f}",
          budget.value, m.model, lo, hi);
    return static_cast<uint64_t>(std::floor(budget.value * static_cast<double>(weights) / 8));
  }
  const uint64_t overhead = budget.overhead.value_or(file_overhead_bytes(m));
  check(
      budget.value >= static_cast<double>(smallest + overhead) &&
          budget.value <= static_cast<double>(largest + overhead),
      "--size {:.0f}: out of range for {}: the smallest possible file is {} bytes, the largest {}",
      budget.value, m.model, smallest + overhead, largest + overhead);
  return static_cast<uint64_t>(budget.value) - overhead;
}

QuantPlan plan_for_budget(const Measurement& m, const Budget& budget) {
  const uint64_t capacity = budget_bytes(m, budget);
  const uint64_t weights = weight_count(m);
  const std::vector<std::vector<KnapsackOption>> items = knapsack_items(m);
  const std::optional<KnapsackSolution> best = solve_knapsack(items, capacity);
  check(best.has_value(), "{}: no plan fits", budget.describe());  // excluded by the range check

  QuantPlan plan;
  plan.method = m.method;
  plan.budget.request = budget.describe();
  plan.budget.max_bytes = capacity;
  plan.budget.used_bytes = best->cost;
  plan.budget.bits_per_weight = bits_per_weight(best->cost, weights);
  plan.predicted_kld = best->loss;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorMeasure& t = m.tensors[i];
    const size_t c = static_cast<size_t>(best->choice[i]);
    if (c == t.candidates.size()) continue;  // kept as stored
    const CandidateMeasure& cm = t.candidates[c];
    plan.tensors[t.name] = {cm.format, t.rows, t.cols, cm.bytes, cm.kld_predicted, cm.objective};
  }
  return plan;
}

}  // namespace qforge::plan
