// What `qforge plan` and `qforge quantize --bpw/--size` share: the budget and candidate options,
// and measuring (or reusing a measurement) then planning.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <optional>
#include <string>

#include "qforge/plan/planner.h"

namespace qforge::cli {

struct PlanningOptions {
  std::optional<double> bpw, size;
  std::string formats = "int";
  std::string measurement;  // cache file; empty: the command's default
  int64_t probe_tokens = 512;
  bool probe_all = false;
};

// --bpw, --size (returned, for exclusions), --formats, --measurement, --probe-tokens, --probe-all
std::pair<CLI::Option*, CLI::Option*> add_planning_options(CLI::App* cmd, PlanningOptions& p);

// The budget asked for, if any.
std::optional<plan::Budget> budget_of(const PlanningOptions& p);

// Checks the budgets against the model's possible sizes (before any work), then measures (or
// reuses the measurement in `cache`) and returns it. Prints what it does to stderr.
plan::Measurement measurement_for(const plan::MeasureOptions& m,
                                  const std::vector<plan::Budget>& budgets,
                                  const std::filesystem::path& cache);

// One line: budget, bytes, bits per weight, predicted KLD, formats used.
std::string plan_summary(const QuantPlan& p);

}  // namespace qforge::cli
