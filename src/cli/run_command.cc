// qforge run MODEL [-p TEXT] [-n N] [--temp T] [--top-p P] [--seed S] [--tokenizer FILE]
// Streams generated text to stdout; timing goes to stderr.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "qforge/core/error.h"
#include "qforge/io/model_loader.h"
#include "qforge/model/sampler.h"
#include "qforge/model/transformer.h"

namespace qforge::cli {

void add_run_command(CLI::App& app) {
  struct Opts {
    std::string model, prompt, tokenizer;
    int n = 128;
    float temp = 0.8f, top_p = 0.95f;
    uint64_t seed = 0;
    int threads = 0;
    std::string kernels = "fast";
    KvOptions kv;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt, streaming to stdout");
  cmd->add_option("model", o->model, "Model directory or llama2.c .bin")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (default: empty, i.e. start from BOS)");
  cmd->add_option("-n,--tokens", o->n, "Tokens to generate (stops early at EOS)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temp", o->temp, "Sampling temperature; 0 = greedy")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass in (0, 1]")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->seed, "Random seed for sampling");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file overriding the model's own");
  cmd->add_flag("-q,--quiet", o->quiet, "Do not print timing to stderr");
  add_threads_option(cmd, o->threads);
  add_kernels_option(cmd, o->kernels);
  add_kv_options(cmd, o->kv);
  cmd->callback([o] {
    apply_threads(o->threads);
    apply_kernels(o->kernels);
    LoadOptions lo;
    if (!o->tokenizer.empty()) lo.tokenizer = o->tokenizer;
    LoadedModel m = load_model(o->model, lo);
    const Tokenizer& tok = *m.tokenizer;
    ThreadPool& pool = ThreadPool::global();
    if (auto kv = kv_format(o->kv)) m.inference.kv = *kv;
    Transformer model(m.config, m.weights, pool, m.inference);
    std::vector<int32_t> ids = tok.encode(o->prompt, tok.adds_bos());
    if (ids.empty()) {
      check(tok.bos_id() >= 0, "empty prompt and the tokenizer has no BOS token to start from");
      ids.push_back(tok.bos_id());
    }
    const int prompt_len = static_cast<int>(ids.size());
    const int max_pos =
        m.config.max_position_embeddings > 0 ? m.config.max_position_embeddings : prompt_len + o->n;
    check(prompt_len < max_pos, "prompt has {} tokens; the model's context is {} positions",
          prompt_len, max_pos);
    const int n_gen = std::min(o->n, max_pos - prompt_len);
    KVCache cache = model.new_cache(prompt_len + n_gen);
    Sampler sampler({o->temp, o->top_p, o->seed});
    std::vector<float> logits(m.config.vocab_size);

    // Print the prompt as the tokenizer reads it back, then only what each new token adds.
    std::string shown = tok.decode(ids);
    std::fputs(shown.c_str(), stdout);
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(ids, 0, cache, logits.data(), false);
    const auto t1 = std::chrono::steady_clock::now();
    int generated = 0;
    const auto& eos = m.config.eos_token_ids;
    for (int i = 0; i < n_gen; ++i) {
      const int32_t next = sampler.sample(logits);
      if (next == tok.eos_id() || std::find(eos.begin(), eos.end(), next) != eos.end()) break;
      ids.push_back(next);
      ++generated;
      const std::string text = tok.decode(ids);
      if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) {
        std::fputs(text.c_str() + shown.size(), stdout);
        std::fflush(stdout);
        shown = text;
      }
      if (i + 1 < n_gen)
        model.forward({&next, 1}, static_cast<int>(ids.size()) - 1, cache, logits.data(), false);
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    const auto t2 = std::chrono::steady_clock::now();
    if (!o->quiet) {
      const double pf = std::chrono::duration<double>(t1 - t0).count();
      const double dc = std::chrono::duration<double>(t2 - t1).count();
      fmt::print(
          stderr,
          "[prompt {} tokens, {:.1f} tok/s; generated {} tokens, {:.1f} tok/s; {} threads]\n",
          prompt_len, prompt_len / pf, generated, generated / std::max(dc, 1e-9), pool.size());
    }
  });
}

}  // namespace qforge::cli
