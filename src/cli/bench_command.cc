// qforge bench MODEL [--threads N] [--json]: prefill and decode speed against measured rooflines.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "qforge/eval/bench.h"
#include "qforge/io/model_loader.h"
#include "qforge/kernels/kernels.h"

namespace qforge::cli {

void add_bench_command(CLI::App& app) {
  struct Opts {
    std::string model;
    int threads = 0;
    std::string kernels = "fast";
    KvOptions kv;
    bool json = false;
    BenchOptions bench;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "Measure prefill and decode speed with rooflines");
  cmd->add_option("model", o->model, "Model directory or llama2.c .bin")->required();
  cmd->add_option("--prefill", o->bench.prefill_tokens, "Prompt tokens for the prefill test")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--decode", o->bench.decode_tokens, "Tokens generated in the decode test")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--decode-context", o->bench.decode_context,
                  "Positions in the KV cache before the decode test (0: an empty context, as "
                  "llama-bench's tg; at most --prefill)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeats", o->bench.repeats, "Repeats (medians are reported)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of text");
  add_threads_option(cmd, o->threads);
  add_kernels_option(cmd, o->kernels);
  add_kv_options(cmd, o->kv);
  cmd->callback([o] {
    apply_threads(o->threads);
    apply_kernels(o->kernels);
    LoadOptions lo;
    lo.require_tokenizer = false;
    LoadedModel m = load_model(o->model, lo);
    ThreadPool& pool = ThreadPool::global();
    if (auto kv = kv_format(o->kv)) m.inference.kv = *kv;
    Transformer model(m.config, m.weights, pool, m.inference);
    const BenchResult r = run_bench(model, pool, o->bench);
    if (o->json) {
      nlohmann::json j = {{"model", m.source.string()},
                          {"threads", r.threads},
                          {"simd_target", r.simd_target},
                          {"blas_core", kernels::blas_core_name()},
                          {"prefill_tokens", r.prefill_tokens},
                          {"decode_tokens", r.decode_tokens},
                          {"decode_context", r.decode_context},
                          {"repeats", r.repeats},
                          {"prefill_tok_s", r.prefill_tok_s},
                          {"decode_tok_s", r.decode_tok_s},
                          {"weight_bytes_per_token", r.weight_bytes_per_token},
                          {"read_bandwidth_bytes_s", r.read_bandwidth},
                          {"fma_peak_flops", r.fma_peak_flops},
                          {"decode_roofline_tok_s", r.decode_roofline_tok_s},
                          {"decode_roofline_fraction", r.decode_roofline_fraction},
                          {"prefill_flops_per_token", r.prefill_flops_per_token},
                          {"prefill_peak_fraction", r.prefill_peak_fraction},
                          {"peak_rss_bytes", r.peak_rss_bytes},
                          {"model_peak_rss_bytes", r.model_peak_rss_bytes},
                          {"kv_cache_bytes", r.kv_cache_bytes},
                          {"inference", r.inference},
                          {"kernels", r.kernels}};
      fmt::print("{}\n", j.dump());
      return;
    }
    fmt::print("model     {} ({} threads, SIMD {}, BLAS {})\n", m.source.string(), r.threads,
               r.simd_target, kernels::blas_core_name());
    fmt::print("machine   read bandwidth {:.2f} GB/s, fp32 FMA peak {:.1f} GFLOP/s (measured)\n",
               r.read_bandwidth / 1e9, r.fma_peak_flops / 1e9);
    fmt::print(
        "prefill   {:8.1f} tok/s  ({} tokens, median of {}; {:.2f} GFLOP/token; "
        "{:.0f}% of FMA peak)\n",
        r.prefill_tok_s, r.prefill_tokens, r.repeats, r.prefill_flops_per_token / 1e9,
        100 * r.prefill_peak_fraction);
    fmt::print(
        "decode    {:8.1f} tok/s  ({} tokens after {} in context, median of {}; {} "
        "weights/token; roofline {:.1f} tok/s; {:.0f}% of roofline)\n",
        r.decode_tok_s, r.decode_tokens, r.decode_context, r.repeats,
        human_bytes(static_cast<double>(r.weight_bytes_per_token)), r.decode_roofline_tok_s,
        100 * r.decode_roofline_fraction);
    fmt::print(
        "memory    model peak RSS {} (whole run {}, bandwidth probe included); KV cache {} "
        "for {} positions\n",
        human_bytes(static_cast<double>(r.model_peak_rss_bytes)),
        human_bytes(static_cast<double>(r.peak_rss_bytes)),
        human_bytes(static_cast<double>(r.kv_cache_bytes)), r.prefill_tokens + r.decode_tokens);
    fmt::print("inference {}\n", r.inference);
    fmt::print("kernels   {}\n", r.kernels);
  });
}

}  // namespace qforge::cli
