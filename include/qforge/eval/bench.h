// `qforge bench`: prefill and decode speed with their rooflines, measured on this machine.
#pragma once

#include <cstdint>
#include <string>

#include "qforge/core/thread_pool.h"
#include "qforge/model/transformer.h"

namespace qforge {

struct BenchOptions {
  int prefill_tokens = 512;
  int decode_tokens = 128;
  // Positions already in the KV cache when the decode test starts: 0, as llama-bench's tg test
  // (its -d 0), decodes from an empty context; at most prefill_tokens (the prefill's own keys).
  int decode_context = 0;
  int repeats = 5;  // medians are reported
};

struct BenchResult {
  int threads = 0;
  std::string simd_target;
  int prefill_tokens = 0, decode_tokens = 0, decode_context = 0, repeats = 0;
  double prefill_tok_s = 0;  // median
  double decode_tok_s = 0;   // median
  size_t weight_bytes_per_token = 0;
  double read_bandwidth = 0;         // bytes/s, measured
  double fma_peak_flops = 0;         // FLOP/s, measured
  double decode_roofline_tok_s = 0;  // bandwidth / bytes per token
  double decode_roofline_fraction = 0;
  double prefill_flops_per_token = 0;  // useful FLOPs (causal attention counted once)
  double prefill_peak_fraction = 0;
  int64_t peak_rss_bytes = 0;        // of the whole run, the bandwidth probe's buffers included
  int64_t model_peak_rss_bytes = 0;  // before the probes: what running the model takes
  size_t kv_cache_bytes = 0;         // for prefill_tokens + decode_tokens positions
  std::string inference;             // InferenceOptions::describe()
  std::string kernels;  // per weight format: the decode and the prefill kernel that ran
};

BenchResult run_bench(Transformer& model, ThreadPool& pool, const BenchOptions& options);

// Peak resident set size of this process so far.
int64_t peak_rss_bytes();

}  // namespace qforge
