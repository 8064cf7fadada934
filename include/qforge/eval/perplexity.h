// Perplexity with the protocol of ../shared/DESIGN.md ("Quality measurement"): the text tokenized
// whole (BOS first when the tokenizer uses one), windows of ctx+1 tokens overlapping by one (the
// first token of each window is context only), every other token predicted exactly once with
// window-local context, mean NLL in fp32 logits (log-softmax accumulated in double).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qforge/model/transformer.h"

namespace qforge {

struct PerplexityOptions {
  int ctx = 512;           // predicted tokens per window
  int64_t max_tokens = 0;  // evaluate only the first N tokens of the text (0: all)
  // Tokens per forward call (0: a whole window at once). 1-8 measure what decoding computes:
  // the few-token kernels (integer dot products with quantized activations) instead of GEMM.
  int batch = 0;
};

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;
  int64_t tokens = 0;  // predicted tokens
  int64_t windows = 0;
  double seconds = 0;
};

// One window of the protocol: tokens [start, start + length) of the text.
struct TextWindow {
  int64_t start = 0, length = 0;
};
// The protocol's windows over a text of `text_tokens` tokens (options.max_tokens applied).
std::vector<TextWindow> protocol_windows(size_t text_tokens, const PerplexityOptions& options);
// How many tokens those windows predict (every token of the text but the first, up to
// max_tokens): the total of an evaluation's progress.
int64_t scored_tokens(std::span<const TextWindow> windows);

// Runs one window through `model` from position 0 of `cache`, `batch` tokens per forward call
// (0: all at once); logits row i (of [window.size() - 1, vocab]) predicts window[i + 1].
void forward_window(Transformer& model, std::span<const int32_t> window, int batch, KVCache& cache,
                    float* logits);

// Calls fn(window_tokens, logits [window_len, vocab]) for each window of the protocol. Predictions
// for window_tokens[i + 1] are in logits row i. Shared by perplexity and model comparison.
void for_each_window(Transformer& model, std::span<const int32_t> tokens,
                     const PerplexityOptions& o,
                     const std::function<void(std::span<const int32_t>, const float*)>& fn,
                     const std::function<void(int64_t done, int64_t total)>& progress = {});

PerplexityResult evaluate_perplexity(
    Transformer& model, std::span<const int32_t> tokens, const PerplexityOptions& options,
    const std::function<void(int64_t done, int64_t total)>& progress = {});

// llama.cpp's llama-perplexity protocol (tools/perplexity/perplexity.cpp), so numbers compare with
// llama.cpp's: the text tokenized whole, cut into chunks of `ctx` tokens (a partial last chunk is
// dropped), each chunk run from position 0 with its first token replaced by BOS when `bos` >= 0
// (llama.cpp does so when the vocabulary adds BOS), and only the second half of each chunk scored
// (positions ctx/2 .. ctx-2 predicting the next token). `chunks` > 0 limits the chunk count.
PerplexityResult evaluate_perplexity_llamacpp(
    Transformer& model, std::span<const int32_t> tokens, int ctx, int64_t chunks, int32_t bos,
    const std::function<void(int64_t done, int64_t total)>& progress = {});

// -log softmax(logits)[target], accumulated in double.
double token_nll(std::span<const float> logits, int32_t target);

}  // namespace qforge
