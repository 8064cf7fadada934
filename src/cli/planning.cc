#include "cli/planning.h"

#include <fmt/format.h>

#include <map>

#include "qforge/core/error.h"
#include "qforge/core/progress.h"
#include "qforge/io/model_loader.h"

namespace qforge::cli {

std::pair<CLI::Option*, CLI::Option*> add_planning_options(CLI::App* cmd, PlanningOptions& p) {
  auto* bpw = cmd->add_option("--bpw", p.bpw,
                              "Budget: bits per weight over the linears, embedding and head "
                              "(scales and zeros included; a kept tensor at its own bits)");
  auto* size = cmd->add_option("--size", p.size,
                               "Budget: bytes of the whole output file, metadata included "
                               "(model.safetensors; for quantize -o X.gguf the .gguf)");
  bpw->excludes(size);
  cmd->add_option("--formats", p.formats,
                  "Candidate formats: int (default), fp, gguf, all, or a comma-separated list");
  cmd->add_option("--measurement", p.measurement,
                  "Sensitivity measurement file: reused when it matches, else written");
  cmd->add_option("--probe-tokens", p.probe_tokens,
                  "Calibration tokens for the end-to-end KLD probes (default 512)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--probe-all", p.probe_all,
                "Measure the end-to-end KLD of every candidate of every tensor (slow; to check "
                "the layer-objective estimate)");
  return {bpw, size};
}

std::optional<plan::Budget> budget_of(const PlanningOptions& p) {
  if (p.bpw) return plan::Budget{plan::Budget::Kind::BitsPerWeight, *p.bpw};
  if (p.size) return plan::Budget{plan::Budget::Kind::FileBytes, *p.size};
  return std::nullopt;
}

plan::Measurement measurement_for(const plan::MeasureOptions& o,
                                  const std::vector<plan::Budget>& budgets,
                                  const std::filesystem::path& cache) {
  {
    LoadOptions lo;
    lo.require_tokenizer = false;
    const plan::Measurement sizes = plan::candidate_sizes(load_model(o.model, lo), o.formats);
    for (const plan::Budget& b : budgets) plan::budget_bytes(sizes, b);
  }
  check(!o.calib.empty(), "planning needs calibration text: pass --calib FILE");
  Progress progress("measure", 1);
  bool reused = false;
  plan::Measurement m = plan::measure_or_reuse(
      o, cache,
      [&](int done, int total) {
        progress.set_total(static_cast<size_t>(total));
        progress.update(static_cast<size_t>(done));
      },
      &reused);
  progress.finish();
  if (reused)
    fmt::print(stderr, "reusing the measurement in {}\n", cache.string());
  else
    fmt::print(stderr, "measured {} tensors x {} formats in {:.1f} s{}\n", m.tensors.size(),
               o.formats, m.seconds, cache.empty() ? "" : "; saved to " + cache.string());
  return m;
}

std::string plan_summary(const QuantPlan& p) {
  std::map<std::string, int> count;
  for (const auto& [name, t] : p.tensors) ++count[t.format];
  std::string formats;
  for (const auto& [f, n] : count)
    formats += fmt::format("{}{}x{}", formats.empty() ? "" : " ", n, f);
  return fmt::format(
      "{}: {} bytes of {} allowed, {:.4f} bits per weight, predicted KLD {:.5f} [{}]",
      p.budget.request, p.budget.used_bytes, p.budget.max_bytes, p.budget.bits_per_weight,
      p.predicted_kld, formats);
}

}  // namespace qforge::cli
