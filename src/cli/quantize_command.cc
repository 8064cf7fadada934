// qforge quantize MODEL -o OUT --format FMT [--method rtn|gptq] [--calib FILE] ...
#include <fmt/format.h>

#include <atomic>
#include <csignal>

#include "cli/commands.h"
#include "cli/common.h"
#include "qforge/core/error.h"
#include "qforge/core/progress.h"
#include "qforge/quant/quantize_model.h"

namespace qforge::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
  g_interrupted = true;
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  struct Opts {
    QuantizeOptions q;
    std::string model, output, method = "gptq", calib;
    std::vector<std::string> tensor_formats;
    int64_t group_size = 0;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a model's linear layers into a format");
  cmd->add_option("model", o->model, "Hugging Face model directory")->required();
  cmd->add_option("-o,--output", o->output, "Output directory (written atomically)")->required();
  cmd->add_option("--format", o->q.format, "Format of every linear layer (see `qforge formats`)")
      ->required();
  cmd->add_option("--method", o->method, "rtn (round to nearest) or gptq (default)")
      ->check(CLI::IsMember({"rtn", "gptq"}));
  cmd->add_option("--calib", o->calib, "Calibration text for GPTQ");
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
  cmd->add_option("--tensor-format", o->tensor_formats,
                  "REGEX=FMT: a different format for linears whose name matches (repeatable)");
  cmd->add_option("--keep", o->q.keep, "REGEX: leave matching linears unquantized (repeatable)");
  cmd->add_option("--fallback", o->q.fallback,
                  "FMT or 'keep': for a linear whose row length the format cannot take, use FMT "
                  "(or leave it unquantized) instead of refusing; each fallback is reported");
  cmd->add_flag("--force", o->q.overwrite, "Replace an existing output directory");
  add_threads_option(cmd, o->threads);
  cmd->callback([o] {
    apply_threads(o->threads);
    QuantizeOptions q = o->q;
    q.model = o->model;
    q.output = o->output;
    q.calib = o->calib;
    q.method = o->method == "rtn" ? QuantMethod::RTN : QuantMethod::GPTQ;
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
    g_interrupted = false;
    std::signal(SIGINT, on_sigint);
    q.interrupted = &g_interrupted;
    Progress progress("quantize", 1);
    const QuantizeReport r = quantize_model(q, [&](int done, int total) {
      progress.set_total(static_cast<size_t>(total));
      progress.update(static_cast<size_t>(done));
    });
    progress.finish();
    std::signal(SIGINT, SIG_DFL);
    double rtn = 0, got = 0;
    for (const auto& l : r.linears) {
      rtn += l.objective_rtn;
      got += l.objective;
    }
    for (const auto& fb : r.fallbacks)
      fmt::print(stderr, "fallback: {} cannot be stored as {} (row length); {}\n", fb.tensor,
                 fb.format,
                 fb.fallback == "keep" ? "kept unquantized" : "stored as " + fb.fallback);
    fmt::print(
        "wrote {} ({}) in {:.1f} s: format {}, method {}, {} calibration tokens, {} layout\n",
        q.output.string(), human_bytes(static_cast<double>(r.output_bytes)), r.seconds, q.format,
        o->method, r.calib_tokens, r.compressed_tensors ? "compressed-tensors" : "qforge");
    if (!r.linears.empty())
      fmt::print(
          "layer objective tr((W-Q)H(W-Q)^T) summed over {} linears: {:.4g} (RTN {:.4g}, "
          "{:.1f}% of RTN)\n",
          r.linears.size(), got, rtn, 100 * got / std::max(rtn, 1e-30));
  });
}

}  // namespace qforge::cli
