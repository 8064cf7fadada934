// qforge eval MODEL... --text FILE [--ref REF] [--ctx 512] [--max-tokens N] [--json]
//            [--dump-logits FILE]
// Perplexity with the protocol in ../shared/DESIGN.md ("Quality measurement"); with --ref, the
// comparison against a reference, several models in one pass that runs the reference once.
// --dump-logits writes the first window's tokens and logits instead (scripts/peers/ compare them
// with other engines' on the same checkpoint).
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/core/progress.h"
#include "qforge/eval/compare.h"
#include "qforge/eval/evaluation_log.h"
#include "qforge/eval/perplexity.h"
#include "qforge/io/model_loader.h"
#include "qforge/io/safetensors.h"

namespace qforge::cli {

namespace {

struct EvalOpts {
  std::vector<std::string> models;
  std::string text, tokenizer, ref, protocol = "qforge", dump_logits;
  int ctx = 512;
  int64_t max_tokens = 0, chunks = 0;
  int batch = 0;
  bool json = false;
  bool ref_simulated_activations = false;
  bool no_record = false;
  int threads = 0;
  std::string kernels = "exact";
  KvOptions kv;
};

// The KLD a plan predicted for this model (`qforge plan`), from its quantization record; 0: none.
double planned_kld(const LoadedModel& m) {
  return m.quantization_record ? m.quantization_record->planned_kld() : 0.0;
}

// Each window's KLD sum and token count, so that two evaluations on the same text can be compared
// pairwise (scripts/peers/compare_table.py: the standard error of a KLD difference).
void add_window_klds(nlohmann::json& j, const std::vector<ClusterSum>& windows) {
  nlohmann::json sums = nlohmann::json::array(), tokens = nlohmann::json::array();
  for (const ClusterSum& w : windows) {
    sums.push_back(w.sum);
    tokens.push_back(w.tokens);
  }
  j["window_kld_sums"] = std::move(sums);
  j["window_tokens"] = std::move(tokens);
}

void print_comparison(const EvalOpts& o, const LoadedModel& m, const LoadedModel& rm,
                      const ComparisonResult& r, int threads, const std::string& inference) {
  if (o.json) {
    nlohmann::json j = {{"model", m.source.string()},
                        {"ref", rm.source.string()},
                        {"text", o.text},
                        {"ppl", r.ppl},
                        {"ref_ppl", r.ref_ppl},
                        {"delta_ppl", r.ppl - r.ref_ppl},
                        {"kld_mean", r.kld_mean},
                        {"kld_mean_stderr", r.kld_mean_stderr},
                        {"kld_median", r.kld_median},
                        {"kld_p99", r.kld_p99},
                        {"kld_max", r.kld_max},
                        {"top1_agreement", r.top1_agreement},
                        {"delta_p_mean", r.delta_p_mean},
                        {"tokens", r.tokens},
                        {"ctx", o.ctx},
                        {"batch", o.batch},
                        {"seconds", r.seconds},
                        {"threads", threads},
                        {"inference", inference}};
    if (const double p = planned_kld(m); p > 0) j["predicted_kld"] = p;
    add_window_klds(j, r.window_klds);
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("model       {}\nreference   {}\ntext        {} ({} predicted tokens, ctx {})\n",
             m.source.string(), rm.source.string(), o.text, r.tokens, o.ctx);
  fmt::print("perplexity  {:.4f}  (reference {:.4f}, delta {:+.4f}, {:+.3f}%)\n", r.ppl, r.ref_ppl,
             r.ppl - r.ref_ppl, 100 * (r.ppl / r.ref_ppl - 1));
  fmt::print(
      "KLD         mean {:.6f} ± {:.6f} (standard error)  median {:.6f}  p99 {:.6f}  max {:.4f}\n",
      r.kld_mean, r.kld_mean_stderr, r.kld_median, r.kld_p99, r.kld_max);
  if (const double p = planned_kld(m); p > 0)
    fmt::print("            the plan predicted mean {:.6f} (on its calibration probe)\n", p);
  fmt::print("top-1       {:.3f}% same top token\n", 100 * r.top1_agreement);
  fmt::print("delta-p     {:+.5f} mean change in p(correct token)\n", r.delta_p_mean);
  fmt::print("inference   {}\n", inference);
  fmt::print("time        {:.2f} s ({} threads)\n", r.seconds, threads);
}

void print_perplexity(const EvalOpts& o, const LoadedModel& m, const PerplexityResult& r,
                      size_t text_tokens, double tokenize_s, int threads,
                      const std::string& inference) {
  const bool llamacpp = o.protocol == "llama.cpp";
  if (o.json) {
    nlohmann::json j = {{"model", m.source.string()},
                        {"text", o.text},
                        {"protocol", o.protocol},
                        {"ppl", r.ppl},
                        {"mean_nll", r.mean_nll},
                        {"tokens", r.tokens},
                        {"windows", r.windows},
                        {"ctx", o.ctx},
                        {"seconds", r.seconds},
                        {"tokenize_seconds", tokenize_s},
                        {"threads", threads},
                        {"inference", inference},
                        {"tokens_per_second", r.tokens / r.seconds}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("model      {}\ntext       {} ({} tokens, tokenized in {:.2f} s)\n", m.source.string(),
             o.text, text_tokens, tokenize_s);
  if (llamacpp)
    fmt::print("protocol   llama.cpp: {} chunks of {} tokens, BOS first: {}, second half scored\n",
               r.windows, o.ctx, m.tokenizer->adds_bos() ? "yes" : "no");
  else
    fmt::print("protocol   windows of {} + 1 tokens overlapping by one; {} windows\n", o.ctx,
               r.windows);
  fmt::print("perplexity {:.4f}  (mean NLL {:.6f} over {} predicted tokens)\n", r.ppl, r.mean_nll,
             r.tokens);
  fmt::print("time       {:.2f} s ({:.0f} tok/s, {} threads)\n", r.seconds, r.tokens / r.seconds,
             threads);
}

// Runs the first min(ctx + 1, max_tokens, all) tokens through the model in one window and writes
// `tokens` (I32 [n]) and `logits` (F32 [n, vocab], row i predicts token i + 1) to `path`, the
// layout of the shared models' reference_logits.safetensors.
void dump_logits(Transformer& model, const std::vector<int32_t>& ids, const EvalOpts& o) {
  int64_t n = std::min<int64_t>(static_cast<int64_t>(ids.size()), o.ctx + 1);
  if (o.max_tokens > 0) n = std::min(n, o.max_tokens);
  const int64_t vocab = model.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(n * vocab));
  KVCache cache = model.new_cache(static_cast<int>(n));
  model.forward(std::span(ids).first(static_cast<size_t>(n)), 0, cache, logits.data(), true);
  auto bytes = [](const auto& v) {
    const auto* p = reinterpret_cast<const std::byte*>(v.data());
    return std::vector<std::byte>(p, p + v.size() * sizeof(v[0]));
  };
  write_safetensors(o.dump_logits, {{"tokens", DType::I32, {n}, bytes(std::span(ids).first(n))},
                                    {"logits", DType::F32, {n, vocab}, bytes(logits)}});
  fmt::print("wrote {} tokens and their logits [{}, {}] to {}\n", n, n, vocab, o.dump_logits);
}

// Several models compared in one pass share the first model's token ids; a model whose own
// tokenizer reads the text differently would be scored on the wrong tokens, so the tokenizers must
// agree on the start of the text (a cheap check: tokenizing all of it again per model is not).
void check_same_tokens(const LoadedModel& first, const LoadedModel& m, const std::string& text) {
  constexpr size_t kPrefixBytes = 16384;
  std::string_view prefix(text);
  prefix = prefix.substr(0, std::min(prefix.size(), kPrefixBytes));
  if (const size_t nl = prefix.rfind('\n'); nl != std::string_view::npos && nl > 0)
    prefix = prefix.substr(0, nl);  // whole lines: a cut inside a word may tokenize differently
  check(first.tokenizer->encode(prefix, first.tokenizer->adds_bos()) ==
            m.tokenizer->encode(prefix, m.tokenizer->adds_bos()),
        "{} and {} tokenize the text differently: compare them in separate runs, or give "
        "--tokenizer",
        first.source.string(), m.source.string());
}

// A quantized model's measured KLD goes into the evaluation log beside it, where `qforge info`
// shows it with the plan's prediction. The model is evaluated either way: a log that cannot be
// written (a read-only folder, a malformed log) is a warning.
void record_in_log(const EvalOpts& o, const LoadedModel& m, const ComparisonResult& r,
                   const std::string& inference) {
  if (o.no_record || !m.quantization_record) return;
  const EvaluationEntry e{.reference = o.ref,
                          .text = o.text,
                          .tokens = r.tokens,
                          .ctx = o.ctx,
                          .batch = o.batch,
                          .inference = inference,
                          .kld_mean = r.kld_mean,
                          .kld_mean_stderr = r.kld_mean_stderr,
                          .kld_median = r.kld_median,
                          .kld_p99 = r.kld_p99,
                          .ppl = r.ppl,
                          .ref_ppl = r.ref_ppl,
                          .top1_agreement = r.top1_agreement,
                          .predicted_kld = planned_kld(m),
                          .date = utc_now_iso8601(),
                          .tool_version = QFORGE_VERSION};
  try {
    record_evaluation(m.source, e);
    if (!o.json) fmt::print("recorded    in {}\n", evaluation_log_path(m.source).string());
  } catch (const std::exception& err) {
    fmt::print(stderr, "warning: the evaluation was not recorded: {}\n", err.what());
  }
}

// eval MODEL... --ref REF: every model against the reference, one pass over the text.
void compare_with_reference(const EvalOpts& o, std::vector<LoadedModel>& loaded,
                            const std::vector<int32_t>& ids, ThreadPool& pool) {
  LoadOptions rlo;
  rlo.require_tokenizer = false;
  LoadedModel rm = load_model(o.ref, rlo);
  if (o.ref_simulated_activations) rm.inference.integer_activations = false;
  Transformer reference(rm.config, rm.weights, pool, rm.inference);
  std::vector<std::unique_ptr<Transformer>> models;
  std::vector<Transformer*> pointers;
  for (LoadedModel& m : loaded) {
    models.push_back(std::make_unique<Transformer>(m.config, m.weights, pool, m.inference));
    pointers.push_back(models.back().get());
  }
  const PerplexityOptions protocol{o.ctx, o.max_tokens, o.batch};
  Progress progress("eval",
                    static_cast<size_t>(scored_tokens(protocol_windows(ids.size(), protocol))));
  const std::vector<ComparisonResult> results =
      compare_models(pointers, reference, ids, protocol,
                     [&](int64_t done, int64_t) { progress.update(static_cast<size_t>(done)); });
  progress.finish();
  for (size_t i = 0; i < results.size(); ++i) {
    if (i > 0 && !o.json) fmt::print("\n");
    const std::string inference = models[i]->options().describe();
    print_comparison(o, loaded[i], rm, results[i], pool.size(), inference);
    record_in_log(o, loaded[i], results[i], inference);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  using Opts = EvalOpts;
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("eval", "Measure perplexity on a text file");
  cmd->add_option("models", o->models,
                  "Model directory, .gguf or llama2.c .bin; with --ref, several models are "
                  "compared in one pass (the reference runs once; --json prints a line each)")
      ->required();
  cmd->add_option("--text", o->text, "UTF-8 text file to evaluate on")->required();
  cmd->add_option("--ctx", o->ctx, "Predicted tokens per window (windows overlap by one token)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-tokens", o->max_tokens, "Evaluate only the first N tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", o->batch,
                  "Tokens per forward call (0 = a whole window); 1-8 measure the decode kernels "
                  "(integer dot products with 8-bit activations where the format has them)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--protocol", o->protocol,
                  "qforge (windows overlapping by one, every token scored) or llama.cpp "
                  "(llama-perplexity's: chunks of --ctx tokens, BOS first, second half scored)")
      ->check(CLI::IsMember({"qforge", "llama.cpp"}));
  cmd->add_option("--chunks", o->chunks, "llama.cpp protocol: score only the first N chunks")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file overriding the model's own");
  cmd->add_option(
      "--ref", o->ref,
      "Reference model (e.g. the unquantized original): also report its PPL, "
      "KL-divergence(ref||model), top-1 agreement and mean delta-p of the correct token");
  cmd->add_flag("--ref-simulated-activations", o->ref_simulated_activations,
                "Run the reference's int8 activations (W8A8/W4A8) through the f32 simulation "
                "instead of the integer kernels: with --ref MODEL it checks the integer path "
                "against its definition");
  cmd->add_flag("--no-record", o->no_record,
                "With --ref: do not add the measurement to the quantized model's evaluation log "
                "(qforge-evaluations.json beside it, which `qforge info` shows)");
  cmd->add_flag("--json", o->json, "Print one JSON object instead of text");
  cmd->add_option("--dump-logits", o->dump_logits,
                  "Instead of evaluating, write the first window's tokens (I32 [n], n = "
                  "min(ctx + 1, --max-tokens)) and logits (F32 [n, vocab]) to this safetensors "
                  "file");
  add_threads_option(cmd, o->threads);
  add_kernels_option(cmd, o->kernels);
  add_kv_options(cmd, o->kv);
  cmd->callback([o] {
    apply_threads(o->threads);
    apply_kernels(o->kernels);
    check(!o->ref_simulated_activations || !o->ref.empty(),
          "--ref-simulated-activations describes the reference: give --ref MODEL too");
    check(o->models.size() == 1 || !o->ref.empty(),
          "several models ({}) are compared against a reference: give --ref MODEL",
          o->models.size());
    check(o->models.size() == 1 || (o->dump_logits.empty() && o->protocol == "qforge"),
          "--dump-logits and --protocol llama.cpp take one model");
    LoadOptions lo;
    if (!o->tokenizer.empty()) lo.tokenizer = o->tokenizer;
    std::vector<LoadedModel> loaded;
    for (const std::string& path : o->models) loaded.push_back(load_model(path, lo));
    LoadedModel& m = loaded.front();
    const std::string text = read_text_file(o->text);
    for (size_t i = 1; i < loaded.size(); ++i) check_same_tokens(m, loaded[i], text);
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = m.tokenizer->encode(text, m.tokenizer->adds_bos());
    const double tokenize_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    check(ids.size() >= 2, "{}: text too short ({} tokens); need at least 2", o->text, ids.size());
    check(o->ctx + 1 <= m.config.max_position_embeddings || m.config.max_position_embeddings == 0,
          "--ctx {} needs {} positions but the model has {}", o->ctx, o->ctx + 1,
          m.config.max_position_embeddings);
    ThreadPool& pool = ThreadPool::global();
    if (auto kv = kv_format(o->kv))
      for (LoadedModel& each : loaded) each.inference.kv = *kv;
    check(o->protocol == "qforge" || (o->ref.empty() && o->max_tokens == 0),
          "--protocol llama.cpp takes --ctx and --chunks (not --ref or --max-tokens)");
    if (!o->ref.empty() && o->dump_logits.empty())
      return compare_with_reference(*o, loaded, ids, pool);
    Transformer model(m.config, m.weights, pool, m.inference);
    if (o->protocol == "llama.cpp") {
      const int32_t bos = m.tokenizer->adds_bos() ? m.tokenizer->bos_id() : -1;
      Progress progress("eval", 1);
      const PerplexityResult r = evaluate_perplexity_llamacpp(
          model, ids, o->ctx, o->chunks, bos, [&](int64_t done, int64_t total) {
            progress.set_total(static_cast<size_t>(total));
            progress.update(static_cast<size_t>(done));
          });
      progress.finish();
      print_perplexity(*o, m, r, ids.size(), tokenize_s, pool.size(), model.options().describe());
      return;
    }
    if (!o->dump_logits.empty()) return dump_logits(model, ids, *o);
    PerplexityOptions po{o->ctx, o->max_tokens, o->batch};
    Progress progress("eval", static_cast<size_t>(scored_tokens(protocol_windows(ids.size(), po))));
    const PerplexityResult r =
        evaluate_perplexity(model, ids, po, [&](int64_t done, int64_t total) {
          (void)total;
          progress.update(static_cast<size_t>(done));
        });
    progress.finish();
    print_perplexity(*o, m, r, ids.size(), tokenize_s, pool.size(), model.options().describe());
  });
}

}  // namespace qforge::cli
