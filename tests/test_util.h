// Shared helpers for tests: locating ../shared and the embedded model, skipping cleanly.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

namespace qforge::testing {

// The repository root (compiled in; overridable with QFORGE_SOURCE_DIR).
std::filesystem::path source_dir();
// ../shared beside the repository, or nullopt when it is absent (then tests must skip).
std::optional<std::filesystem::path> shared_dir();
// The embedded demo model (models/tiny-llama-bpe-7m in the repo).
std::filesystem::path embedded_model_dir();
// True when running under sanitizers (QFORGE_SANITIZED=1): slow end-to-end tests skip.
bool sanitized();

}  // namespace qforge::testing

// Skips the current test when ../shared is absent; otherwise binds `var` to its path.
#define QFORGE_REQUIRE_SHARED(var)                                   \
  const auto var##_opt = ::qforge::testing::shared_dir();            \
  if (!var##_opt) GTEST_SKIP() << "../shared not present; skipping"; \
  const std::filesystem::path var = *var##_opt
