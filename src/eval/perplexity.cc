#include "qforge/eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "qforge/core/error.h"

namespace qforge {

double token_nll(std::span<const float> logits, int32_t target) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  return std::log(sum) + mx - static_cast<double>(logits[target]);
}

std::vector<TextWindow> protocol_windows(size_t text_tokens, const PerplexityOptions& o) {
  check(o.ctx >= 1, "context length must be >= 1 (got {})", o.ctx);
  int64_t n = static_cast<int64_t>(text_tokens);
  if (o.max_tokens > 0) n = std::min(n, o.max_tokens);
  check(n >= 2, "text too short: {} tokens, need at least 2 to predict anything", n);
  std::vector<TextWindow> windows;
  for (int64_t start = 0; start + 1 < n; start += o.ctx)
    windows.push_back({start, std::min<int64_t>(o.ctx + 1, n - start)});
  return windows;
}

int64_t scored_tokens(std::span<const TextWindow> windows) {
  return windows.back().start + windows.back().length - 1;
}

void forward_window(Transformer& model, std::span<const int32_t> window, int batch, KVCache& cache,
                    float* logits) {
  // Only the first len-1 positions predict something inside the window.
  const int64_t len = static_cast<int64_t>(window.size());
  const int64_t vocab = model.config().vocab_size;
  const int64_t step = batch > 0 ? batch : len - 1;
  for (int64_t i = 0; i < len - 1; i += step)
    model.forward(
        window.subspan(static_cast<size_t>(i), static_cast<size_t>(std::min(step, len - 1 - i))),
        static_cast<int>(i), cache, logits + i * vocab, true);
}

void for_each_window(Transformer& model, std::span<const int32_t> tokens,
                     const PerplexityOptions& o,
                     const std::function<void(std::span<const int32_t>, const float*)>& fn,
                     const std::function<void(int64_t, int64_t)>& progress) {
  const std::vector<TextWindow> windows = protocol_windows(tokens.size(), o);
  const int vocab = model.config().vocab_size;
  KVCache cache = model.new_cache(o.ctx + 1);
  std::vector<float> logits(static_cast<size_t>(o.ctx + 1) * vocab);
  const int64_t total = scored_tokens(windows);
  for (const TextWindow& w : windows) {
    const auto window = tokens.subspan(static_cast<size_t>(w.start), static_cast<size_t>(w.length));
    forward_window(model, window, o.batch, cache, logits.data());
    fn(window, logits.data());
    if (progress) progress(w.start + w.length - 1, total);
  }
}

PerplexityResult evaluate_perplexity(Transformer& model, std::span<const int32_t> tokens,
                                     const PerplexityOptions& options,
                                     const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int vocab = model.config().vocab_size;
  double nll = 0.0;
  PerplexityResult r;
  for_each_window(
      model, tokens, options,
      [&](std::span<const int32_t> window, const float* logits) {
        for (size_t i = 0; i + 1 < window.size(); ++i) {
          nll += token_nll({logits + i * vocab, static_cast<size_t>(vocab)}, window[i + 1]);
          ++r.tokens;
        }
        ++r.windows;
      },
      progress);
  r.mean_nll = nll / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

PerplexityResult evaluate_perplexity_llamacpp(
    Transformer& model, std::span<const int32_t> tokens, int ctx, int64_t chunks, int32_t bos,
    const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  check(ctx >= 4, "context length must be >= 4 (got {})", ctx);
  const auto n = static_cast<int64_t>(tokens.size());
  // llama-perplexity refuses texts shorter than two chunks.
  check(n >= 2 * static_cast<int64_t>(ctx), "text too short: {} tokens, need 2 x ctx = {}", n,
        2 * static_cast<int64_t>(ctx));
  int64_t n_chunks = n / ctx;
  if (chunks > 0) n_chunks = std::min(n_chunks, chunks);
  const int vocab = model.config().vocab_size;
  const int first = ctx / 2;
  KVCache cache = model.new_cache(ctx);
  std::vector<float> logits(static_cast<size_t>(ctx) * vocab);
  std::vector<int32_t> chunk(static_cast<size_t>(ctx));
  double nll = 0.0;
  PerplexityResult r;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::copy_n(tokens.begin() + c * ctx, ctx, chunk.begin());
    if (bos >= 0) chunk[0] = bos;
    model.forward(chunk, 0, cache, logits.data(), true);
    // Scored targets are the original tokens (only the input's first token became BOS).
    for (int j = first; j < ctx - 1; ++j) {
      nll += token_nll({logits.data() + static_cast<size_t>(j) * vocab, static_cast<size_t>(vocab)},
                       tokens[c * ctx + j + 1]);
      ++r.tokens;
    }
    ++r.windows;
    if (progress) progress(c + 1, n_chunks);
  }
  r.mean_nll = nll / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace qforge
