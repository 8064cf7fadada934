#include "qforge/eval/bench.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "qforge/core/error.h"
#include "qforge/formats/format.h"
#include "qforge/kernels/kernels.h"
#include "qforge/kernels/probes.h"

namespace qforge {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// "q4_k: decode vnni q4_k x q8, prefill decoded tiles + sgemm; bf16: ..." for each distinct
// storage of the model's matrices, so a benchmark says which code it measured.
std::string kernel_summary(const ModelWeights& w, int64_t prefill_tokens, bool int8_activations) {
  std::map<std::string, std::string> seen;
  auto note = [&](const Matrix& m) {
    if (!m.present()) return;
    const std::string key = m.packed() ? m.format->name() : std::string(dtype_name(m.dtype));
    if (!seen.contains(key)) {
      // W8A8 / W4A8 models give int8 inputs to the linears that have an integer kernel.
      const auto input = [&](int64_t n) {
        return int8_activations && kernels::runs_int8_activations(m, n)
                   ? kernels::InputQuant::Int8PerToken
                   : kernels::InputQuant::None;
      };
      seen[key] = fmt::format("decode {}, prefill {}", kernels::matmul_path(m, 1, input(1)),
                              kernels::matmul_path(m, prefill_tokens, input(prefill_tokens)));
    }
  };
  for (const LayerWeights& l : w.layers)
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) note(*m);
  note(w.lm_head);
  std::string out;
  for (const auto& [k, v] : seen) out += (out.empty() ? "" : "; ") + k + ": " + v;
  return out;
}

}  // namespace

int64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

BenchResult run_bench(Transformer& model, ThreadPool& pool, const BenchOptions& o) {
  const ModelConfig& c = model.config();
  check(o.prefill_tokens >= 1 && o.decode_tokens >= 1 && o.repeats >= 1,
        "bench: token counts and repeats must be positive");
  check(o.decode_context >= 0 && o.decode_context <= o.prefill_tokens,
        "bench: the decode context ({} positions) must be between 0 and the prefill's {}",
        o.decode_context, o.prefill_tokens);
  check(o.prefill_tokens + o.decode_tokens <= std::max(c.max_position_embeddings, 1) ||
            c.max_position_embeddings == 0,
        "bench: {} prefill + {} decode tokens exceed the model's {} positions", o.prefill_tokens,
        o.decode_tokens, c.max_position_embeddings);
  BenchResult r;
  r.threads = pool.size();
  r.simd_target = kernels::simd_target_name();
  r.prefill_tokens = o.prefill_tokens;
  r.decode_tokens = o.decode_tokens;
  r.decode_context = o.decode_context;
  r.repeats = o.repeats;

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> id(0, c.vocab_size - 1);
  std::vector<int32_t> prompt(o.prefill_tokens);
  for (auto& t : prompt) t = id(rng);
  KVCache cache = model.new_cache(o.prefill_tokens + o.decode_tokens);
  std::vector<float> logits(c.vocab_size);

  model.forward(prompt, 0, cache, logits.data(), false);  // warm-up: page in weights
  std::vector<double> prefill, decode;
  for (int rep = 0; rep < o.repeats; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    model.forward(prompt, 0, cache, logits.data(), false);
    prefill.push_back(o.prefill_tokens / seconds_since(t0));
    // Decode from position decode_context: the cache holds the prompt's keys before it, and
    // each decoded token overwrites the position it takes.
    t0 = std::chrono::steady_clock::now();
    int32_t tok = prompt.back();
    for (int i = 0; i < o.decode_tokens; ++i) {
      model.forward({&tok, 1}, o.decode_context + i, cache, logits.data(), false);
      tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    decode.push_back(o.decode_tokens / seconds_since(t0));
  }
  r.prefill_tok_s = median(prefill);
  r.decode_tok_s = median(decode);

  // The model's own memory (mapped weights, KV cache, buffers), before the probes allocate theirs.
  r.model_peak_rss_bytes = peak_rss_bytes();
  r.kernels = kernel_summary(model.weights(), o.prefill_tokens,
                             model.options().activations == formats::ActivationFormat::Int8);
  r.weight_bytes_per_token = model.weight_bytes_per_token();
  r.read_bandwidth = kernels::measure_read_bandwidth(pool);
  r.fma_peak_flops = kernels::measure_fma_peak(pool);
  r.decode_roofline_tok_s = r.read_bandwidth / static_cast<double>(r.weight_bytes_per_token);
  r.decode_roofline_fraction = r.decode_tok_s / r.decode_roofline_tok_s;

  // Useful prefill FLOPs per token: 2 per weight of every linear layer (the lm_head runs for the
  // last token only), plus causal attention QK^T and PV over on average (n+1)/2 positions.
  double linear = 0;
  const double d = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.intermediate_size;
  linear = c.num_layers * (d * qd + 2 * d * kvd + qd * d + 3 * d * ff);
  const double n = o.prefill_tokens;
  const double attn = c.num_layers * 4.0 * qd * (n + 1) / 2;
  r.prefill_flops_per_token = 2 * linear + attn + 2.0 * c.vocab_size * d / n;
  r.prefill_peak_fraction = r.prefill_tok_s * r.prefill_flops_per_token / r.fma_peak_flops;
  r.peak_rss_bytes = peak_rss_bytes();
  r.kv_cache_bytes = cache.bytes();
  r.inference = model.options().describe();
  return r;
}

}  // namespace qforge
