// Helpers shared by the subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "qforge/model/kv_cache.h"

namespace qforge::cli {

// Adds --threads to a subcommand; 0 means all hardware threads.
void add_threads_option(CLI::App* cmd, int& threads);
// Recreates the global pool when --threads was given.
void apply_threads(int threads);
// Adds --kernels fast|exact (kernels::PrefillKernel: bf16 GEMMs on oneDNN, or exact f32 products)
// with the subcommand's default.
void add_kernels_option(CLI::App* cmd, std::string& kernels);
// Selects the prefill kernels named by --kernels.
void apply_kernels(const std::string& kernels);
// "1.23 MiB"
std::string human_bytes(double bytes);

// --kv TYPE [--kv-keys channel|token] [--kv-key-rope pre|post] [--kv-group N]
struct KvOptions {
  std::string type, keys = "channel", key_rope, group_text;
  int group = 64;
};
void add_kv_options(CLI::App* cmd, KvOptions& kv);
// The KV cache format asked for, or nullopt when --kv was not given.
std::optional<KvCacheFormat> kv_format(const KvOptions& kv);

}  // namespace qforge::cli
