// qforge quantize MODEL -o OUT (--format FMT | --plan FILE | --bpw B | --size BYTES)
//                [--method rtn|gptq|awq|awq+gptq] [--calib FILE] ...
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <optional>
#include <regex>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/planning.h"
#include "qforge/core/error.h"
#include "qforge/core/progress.h"
#include "qforge/formats/format.h"
#include "qforge/io/model_loader.h"
#include "qforge/quant/llamacpp_presets.h"
#include "qforge/quant/quantize_model.h"

namespace qforge::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
  g_interrupted = true;
}

// --bpw / --size: refuse what can be refused, measure (or reuse the measurement cached beside the
// output), plan, and quantize by that plan. --size bounds the whole output file: for a .gguf its
// header, vocabulary and F32 norms are what the quantized tensors may not use.
void plan_for_quantize(QuantizeOptions& q, plan::Budget budget, const PlanningOptions& p,
                       bool gguf) {
  check(!q.calib.empty(), "--bpw / --size need calibration text: pass --calib FILE");
  if (std::filesystem::exists(q.output) && !q.overwrite)
    check(std::filesystem::is_directory(q.output) && std::filesystem::is_empty(q.output),
          "{}: output exists (use --force to replace it)", q.output.string());
  if (gguf && budget.kind == plan::Budget::Kind::FileBytes)
    budget.overhead = gguf_output_overhead_bytes(load_model(q.model), q.output);
  plan::MeasureOptions m;
  m.model = q.model;
  m.calib = q.calib;
  m.formats = p.formats;
  m.method = q.method;
  m.gptq = q.gptq;
  m.calib_tokens = q.calib_tokens;
  m.seq_len = q.seq_len;
  m.probe_tokens = p.probe_tokens;
  m.probe_all = p.probe_all;
  const std::filesystem::path cache =
      p.measurement.empty() ? std::filesystem::path(q.output.string() + ".measurement.json")
                            : std::filesystem::path(p.measurement);
  const plan::Measurement measured = measurement_for(m, {budget}, cache);
  q.plan = plan::plan_for_budget(measured, budget);
  if (q.awq) q.plan->method = q.method == QuantMethod::GPTQ ? "awq+gptq" : "awq";
  q.plan_source = "planned for " + budget.describe();
  if (budget.kind == plan::Budget::Kind::FileBytes)
    q.max_output_bytes = static_cast<uint64_t>(budget.value);
}

// A llama.cpp preset (q4_k_m, ...) becomes exact per-tensor formats ahead of any --tensor-format.
// Names that are also formats (q4_0, q6_k, iq4_xs, ...) are presets only for a GGUF output, where
// matching llama-quantize's files is the point; natively they stay one format for every linear.
void apply_llamacpp_preset(QuantizeOptions& q, bool gguf) {
  if (!gguf) {
    for (const auto* f : formats::all_formats())
      if (f->name() == q.format) return;
  }
  LoadOptions lo;
  lo.require_tokenizer = false;
  const auto preset =
      llamacpp_preset(q.format, load_model(q.model, lo).config, needs_calibration(q));
  if (!preset) return;
  std::vector<std::pair<std::string, std::string>> formats;
  for (const auto& [name, format] : preset->tensors) {
    std::string exact = "^" + std::regex_replace(name, std::regex(R"(\.)"), R"(\.)") + "$";
    if (format != "keep")
      formats.emplace_back(std::move(exact), format);
    else if (name.ends_with("_proj.weight"))
      q.keep.push_back(std::move(exact));  // llama.cpp: F16; embeddings are kept by default
  }
  q.format = preset->base;
  q.tensor_formats.insert(q.tensor_formats.begin(), formats.begin(), formats.end());
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  struct Opts {
    QuantizeOptions q;
    std::string model, output, method = "gptq", calib, plan, output_format;
    PlanningOptions planning;
    std::vector<std::string> tensor_formats;
    int64_t group_size = 0;
    int threads = 0;
    bool awq_clip = false, no_awq_clip = false;
    std::optional<double> smooth;
    std::string act = "none", rotate = "none";
    bool rotate_online = false;
    uint64_t rotate_seed = 0;
    KvOptions kv;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a model's linear layers into a format");
  cmd->add_option("model", o->model,
                  "Hugging Face model directory, or a .gguf file (quantized into a .gguf)")
      ->required();
  cmd->add_option("-o,--output", o->output,
                  "Output directory, or a .gguf file for llama.cpp (written atomically)")
      ->required();
  cmd->add_option("--output-format", o->output_format,
                  "native (a Hugging Face directory) or gguf (default: gguf for *.gguf)")
      ->check(CLI::IsMember({"native", "gguf"}));
  auto* format = cmd->add_option(
      "--format", o->q.format,
      "Format of every linear layer (see `qforge formats`), or a llama.cpp preset "
      "(q4_k_m, q4_k_s, q3_k_m, q5_k_m, q6_k, q8_0, q4_0, iq4_xs, ...: llama-quantize's "
      "type per tensor, embedding and head included; for a GGUF output)");
  auto* plan_file = cmd->add_option("--plan", o->plan,
                                    "A plan from `qforge plan`: each tensor's "
                                    "format (tensors it does not name are kept)");
  plan_file->excludes(format);
  auto [bpw, size] = add_planning_options(cmd, o->planning);
  for (CLI::Option* budget : {bpw, size}) budget->excludes(format)->excludes(plan_file);
  auto* method =
      cmd->add_option("--method", o->method,
                      "rtn (round to nearest), gptq (default), awq (AWQ scales and clipping, then "
                      "RTN) or awq+gptq (AWQ scales, then GPTQ)")
          ->check(CLI::IsMember({"rtn", "gptq", "awq", "awq+gptq"}));
  auto* clip = cmd->add_flag("--awq-clip", o->awq_clip,
                             "AWQ's per-group clipping search (default: on for awq, off for "
                             "awq+gptq, where GPTQ's error feedback does better)");
  cmd->add_flag("--no-awq-clip", o->no_awq_clip, "Turn AWQ's clipping search off")->excludes(clip);
  cmd->add_option("--awq-grid", o->q.awq_options.grid, "AWQ: points of the alpha grid (20)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--smooth", o->smooth,
                  "SmoothQuant with this alpha (e.g. 0.5): move activation outliers into the "
                  "weights before quantizing (for W8A8 with --act)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--act", o->act,
                  "Quantize the inputs of the quantized linears dynamically per token: int8 or "
                  "fp8-e4m3 (W8A8, W4A8); recorded in the model and simulated exactly")
      ->check(CLI::IsMember({"none", "int8", "fp8-e4m3"}));
  cmd->add_option("--rotate", o->rotate,
                  "hadamard: rotate the residual stream by a randomised Hadamard matrix fused into "
                  "the weights (QuaRot; output-preserving), before quantizing")
      ->check(CLI::IsMember({"none", "hadamard"}));
  cmd->add_flag("--rotate-online", o->rotate_online,
                "With --rotate: also an online Hadamard before down_proj (the model then needs "
                "qforge to run; not servable by vLLM)");
  cmd->add_option("--rotate-seed", o->rotate_seed, "Seed of the rotation's random signs (0)");
  add_kv_options(cmd, o->kv);
  cmd->add_option("--calib", o->calib, "Calibration text (GPTQ, AWQ, SmoothQuant)");
  cmd->add_option("--calib-tokens", o->q.calib_tokens, "Calibration tokens (default 128 x 512)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", o->q.seq_len, "Calibration sequence length")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--group-size", o->group_size,
                  "Override the group size of an integer/fp format (e.g. 64 for int4-g64)");
  cmd->add_flag("--act-order", o->q.gptq.act_order,
                "GPTQ: process columns by decreasing Hessian diagonal (static groups)");
  cmd->add_option("--damp", o->q.gptq.damp, "GPTQ dampening as a fraction of mean(diag H)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--refit-scales", o->q.gptq.refit_rounds,
                  "GPTQ: refit each block's scales to its final codes by least squares under H "
                  "(GGUF block types): 0 off, 1 once (default), N: GPTQ again under the refit "
                  "scales, N rounds in all")
      ->check(CLI::Range(0, 8));
  cmd->add_option("--sub-block-scales", o->q.gptq.sub_block_scales,
                  "GPTQ: choose each k-quant sub-block's scale levels (Q3_K-Q6_K) again when GPTQ "
                  "reaches it (true, default), or keep those chosen at its super-block's start");
  cmd->add_option("--tensor-format", o->tensor_formats,
                  "REGEX=FMT: a different format for linears whose name matches (repeatable)");
  cmd->add_option("--keep", o->q.keep, "REGEX: leave matching linears unquantized (repeatable)");
  cmd->add_option("--fallback", o->q.fallback,
                  "FMT or 'keep': for a linear whose row length the format cannot take, use FMT "
                  "(or leave it unquantized) instead of refusing; each fallback is reported");
  cmd->add_flag("--allow-requantize", o->q.allow_requantize,
                "Quantize a source whose weights are already quantized (a q8_0 / q4_k ... GGUF): "
                "decode them and quantize again (loses quality; refused without this)");
  cmd->add_flag("--force", o->q.overwrite, "Replace an existing output directory");
  add_threads_option(cmd, o->threads);
  cmd->callback([o, method] {
    apply_threads(o->threads);
    QuantizeOptions q = o->q;
    q.model = o->model;
    q.output = o->output;
    q.calib = o->calib;
    q.method =
        o->method == "gptq" || o->method == "awq+gptq" ? QuantMethod::GPTQ : QuantMethod::RTN;
    q.awq = o->method.starts_with("awq");
    q.awq_clip = o->awq_clip || (o->method == "awq" && !o->no_awq_clip);
    check(!(o->awq_clip || o->no_awq_clip) || q.awq,
          "--awq-clip / --no-awq-clip apply to --method awq or awq+gptq");
    q.smooth_alpha = o->smooth;
    q.activations = formats::parse_activation_format(o->act);
    check(!o->rotate_online || o->rotate == "hadamard", "--rotate-online needs --rotate hadamard");
    if (o->rotate == "hadamard") q.rotate = RotationOptions{o->rotate_online, o->rotate_seed};
    if (auto kv = kv_format(o->kv)) q.kv = *kv;
    if (o->group_size > 0) {
      const auto g = q.format.rfind("-g");
      check(g != std::string::npos, "--group-size applies to formats named like int4-g128");
      const auto end = q.format.find('-', g + 2);
      q.format = q.format.substr(0, g) + "-g" + std::to_string(o->group_size) +
                 (end == std::string::npos ? "" : q.format.substr(end));
    }
    for (const std::string& tf : o->tensor_formats) {
      const auto eq = tf.rfind('=');
      check(eq != std::string::npos && eq > 0, "--tensor-format expects REGEX=FMT, got '{}'", tf);
      q.tensor_formats.emplace_back(tf.substr(0, eq), tf.substr(eq + 1));
    }
    check(!q.format.empty() || !o->plan.empty() || budget_of(o->planning),
          "quantize needs --format FMT, --plan FILE, --bpw B or --size BYTES");
    const bool gguf =
        o->output_format.empty() ? q.output.extension() == ".gguf" : o->output_format == "gguf";
    if (!q.format.empty()) apply_llamacpp_preset(q, gguf);
    if (!o->plan.empty()) {
      q.plan = read_plan(o->plan);
      q.plan_source = o->plan;
      if (method->count() == 0 && q.plan->method == "awq+gptq") q.awq = true;
    }
    if (auto budget = budget_of(o->planning)) plan_for_quantize(q, *budget, o->planning, gguf);
    g_interrupted = false;
    std::signal(SIGINT, on_sigint);
    q.interrupted = &g_interrupted;
    Progress progress("quantize", 1);
    const QuantizeReport r =
        (gguf ? quantize_model_to_gguf : quantize_model)(q, [&](int done, int total) {
          progress.set_total(static_cast<size_t>(total));
          progress.update(static_cast<size_t>(done));
        });
    progress.finish();
    std::signal(SIGINT, SIG_DFL);
    if (!r.requantized.empty())
      fmt::print(stderr,
                 "warning: {} weights were already quantized (first: {}); they were decoded and "
                 "quantized again, which loses quality against quantizing the original\n",
                 r.requantized.size(), r.requantized.front());
    double rtn = 0, got = 0;
    for (const auto& l : r.linears) {
      rtn += l.objective_rtn;
      got += l.objective;
    }
    for (const auto& fb : r.fallbacks)
      fmt::print(stderr, "fallback: {} cannot be stored as {} (row length); {}\n", fb.tensor,
                 fb.format,
                 fb.fallback == "keep" ? "kept unquantized" : "stored as " + fb.fallback);
    if (q.plan) fmt::print("plan: {}\n", plan_summary(*q.plan));
    fmt::print(
        "wrote {} ({}) in {:.1f} s: format {}, method {}, {} calibration tokens, {} layout\n",
        q.output.string(), human_bytes(static_cast<double>(r.output_bytes)), r.seconds,
        q.plan ? "mixed (plan)" : q.format, r.method, r.calib_tokens,
        gguf                   ? "gguf"
        : r.compressed_tensors ? "compressed-tensors"
                               : "qforge");
    InferenceOptions io;
    io.activations = q.activations;
    io.kv = q.kv;
    io.online_hadamard_down = q.rotate && q.rotate->online_down;
    if (io.describe() != "none") fmt::print("inference: {}\n", io.describe());
    if (!r.awq.empty()) {
      double before = 0, after = 0;
      int scaled = 0, rejected = 0;
      for (const auto& a : r.awq) {
        before += a.objective_identity;
        after += a.alpha >= 0 ? a.objective : a.objective_identity;
        scaled += a.alpha >= 0;
        rejected += a.gptq_rejected;
      }
      fmt::print(
          "AWQ: scaled {} of {} linear groups{}; RTN objective {:.4g} -> {:.4g} ({:.1f}%)\n",
          scaled, r.awq.size(),
          rejected ? fmt::format(" ({} more rejected: GPTQ did better without)", rejected) : "",
          before, after, 100 * after / std::max(before, 1e-30));
    }
    if (!r.linears.empty() && r.calib_tokens > 0)
      fmt::print(
          "layer objective tr((W-Q)H(W-Q)^T) summed over {} linears: {:.4g} (RTN {:.4g}, "
          "{:.1f}% of RTN)\n",
          r.linears.size(), got, rtn, 100 * got / std::max(rtn, 1e-30));
  });
}

}  // namespace qforge::cli
