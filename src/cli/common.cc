#include "cli/common.h"

#include <fmt/format.h>

#include "qforge/core/thread_pool.h"
#include "qforge/kernels/kernels.h"

namespace qforge::cli {

void add_threads_option(CLI::App* cmd, int& threads) {
  cmd->add_option("-t,--threads", threads, "Worker threads (0 = all hardware threads)")
      ->check(CLI::NonNegativeNumber);
}

void apply_threads(int threads) {
  if (threads > 0) ThreadPool::set_global_threads(threads);
}

void add_kernels_option(CLI::App* cmd, std::string& kernels) {
  cmd->add_option("--kernels", kernels,
                  "Prefill products: fast (bf16 activations and weights on oneDNN's AMX / "
                  "AVX512-BF16 GEMM) or exact (f32 products, the reference)")
      ->check(CLI::IsMember({"fast", "exact"}))
      ->capture_default_str();
}

void apply_kernels(const std::string& kernels) {
  kernels::set_prefill_kernel(kernels == "fast" ? kernels::PrefillKernel::Fast
                                                : kernels::PrefillKernel::Exact);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.2f} {}", b, units[u]);
}

void add_kv_options(CLI::App* cmd, KvOptions& kv) {
  cmd->add_option("--kv", kv.type,
                  "Quantize the KV cache: int8, int4 or fp8 (f32 = off); attention reads the "
                  "quantized cache")
      ->check(CLI::IsMember({"f32", "int8", "int4", "fp8"}));
  cmd->add_option("--kv-keys", kv.keys,
                  "Key scales per 'channel' over --kv-group positions (KIVI/KVQuant; default) or "
                  "per 'token' over --kv-group channels; values are always per token")
      ->check(CLI::IsMember({"channel", "token"}));
  cmd->add_option("--kv-key-rope", kv.key_rope,
                  "Quantize keys 'pre' RoPE (KVQuant; the default for per-channel keys) or 'post'")
      ->check(CLI::IsMember({"pre", "post"}));
  cmd->add_option("--kv-group", kv.group, "Values sharing one scale in the KV cache (default 64)")
      ->check(CLI::PositiveNumber);
}

std::optional<KvCacheFormat> kv_format(const KvOptions& kv) {
  if (kv.type.empty()) return std::nullopt;
  KvCacheFormat f;
  f.type = formats::parse_kv_type(kv.type);
  f.keys_per_channel = kv.keys == "channel";
  f.keys_pre_rope = kv.key_rope.empty() ? f.keys_per_channel : kv.key_rope == "pre";
  f.group = kv.group;
  return f;
}

}  // namespace qforge::cli
