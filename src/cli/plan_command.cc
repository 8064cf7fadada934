// qforge plan MODEL --calib FILE (--bpw B | --size BYTES | --sweep A:B:STEP) [--formats ...] -o OUT
// Measures every quantizable tensor's sensitivity under each candidate format (or reuses a saved
// measurement) and writes the plan that minimizes the predicted KLD within the budget.
#include <fmt/format.h>

#include <cmath>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/planning.h"
#include "qforge/core/error.h"

namespace qforge::cli {
namespace {

// "2.5:8:0.25" -> 2.5, 2.75, ..., 8
std::vector<double> parse_sweep(const std::string& s) {
  double a = 0, b = 0, step = 0;
  char c1 = 0, c2 = 0;
  std::istringstream in(s);
  in >> a >> c1 >> b >> c2 >> step;
  check(in && in.peek() == EOF && c1 == ':' && c2 == ':' && step > 0 && b >= a,
        "--sweep expects FROM:TO:STEP with FROM <= TO and STEP > 0, got '{}'", s);
  std::vector<double> out;
  for (int i = 0; a + i * step <= b + 1e-9; ++i)
    out.push_back(std::round((a + i * step) * 1e6) / 1e6);
  return out;
}

}  // namespace

void add_plan_command(CLI::App& app) {
  struct Opts {
    plan::MeasureOptions m;
    PlanningOptions p;
    std::string model, output, calib, method = "gptq", sweep;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "plan", "Choose each tensor's format for a size budget from measured sensitivity");
  cmd->add_option("model", o->model, "Hugging Face model directory")->required();
  cmd->add_option("-o,--output", o->output,
                  "Plan file (JSON); with --sweep a directory of plan-bpw<B>.json files")
      ->required();
  cmd->add_option("--calib", o->calib, "Calibration text")->required();
  auto [bpw, size] = add_planning_options(cmd, o->p);
  cmd->add_option("--sweep", o->sweep, "FROM:TO:STEP: one plan per bits-per-weight budget")
      ->excludes(bpw)
      ->excludes(size);
  cmd->add_option("--method", o->method,
                  "gptq (default), rtn, or awq+gptq (measured as GPTQ: an upper bound, since "
                  "AWQ's scales are kept only where GPTQ's objective drops)")
      ->check(CLI::IsMember({"gptq", "rtn", "awq+gptq"}));
  cmd->add_option("--calib-tokens", o->m.calib_tokens, "Calibration tokens (default 128 x 512)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", o->m.seq_len, "Calibration sequence length")
      ->check(CLI::PositiveNumber);
  add_threads_option(cmd, o->threads);
  cmd->callback([o] {
    apply_threads(o->threads);
    plan::MeasureOptions m = o->m;
    m.model = o->model;
    m.calib = o->calib;
    m.formats = o->p.formats;
    m.method = o->method == "rtn" ? QuantMethod::RTN : QuantMethod::GPTQ;
    m.probe_tokens = o->p.probe_tokens;
    m.probe_all = o->p.probe_all;
    std::vector<plan::Budget> budgets;
    if (!o->sweep.empty()) {
      for (double b : parse_sweep(o->sweep))
        budgets.push_back({plan::Budget::Kind::BitsPerWeight, b});
    } else if (auto b = budget_of(o->p)) {
      budgets.push_back(*b);
    }
    check(!budgets.empty(), "plan needs a budget: --bpw B, --size BYTES or --sweep FROM:TO:STEP");
    const std::filesystem::path out = o->output;
    const bool many = !o->sweep.empty();
    check(many || !std::filesystem::is_directory(out), "{}: is a directory", out.string());
    std::filesystem::path cache = o->p.measurement;
    if (cache.empty())
      cache = many ? out / "measurement.json"
                   : std::filesystem::path(out.string() + ".measurement.json");
    if (many) std::filesystem::create_directories(out);
    const plan::Measurement measured = measurement_for(m, budgets, cache);
    for (const plan::Budget& b : budgets) {
      QuantPlan p = plan::plan_for_budget(measured, b);
      if (o->method == "awq+gptq") p.method = o->method;
      const std::filesystem::path file = many ? out / fmt::format("plan-bpw{}.json", b.value) : out;
      write_plan(file, p);
      fmt::print("{} -> {}\n", plan_summary(p), file.string());
    }
  });
}

}  // namespace qforge::cli
