#include "test_util.h"

#include <cstdlib>

namespace qforge::testing {

std::filesystem::path source_dir() {
  if (const char* env = std::getenv("QFORGE_SOURCE_DIR")) return env;
  return QFORGE_SOURCE_DIR;
}

std::optional<std::filesystem::path> shared_dir() {
  if (const char* env = std::getenv("QFORGE_SHARED_DIR")) {
    if (std::filesystem::is_directory(env)) return std::filesystem::path(env);
    return std::nullopt;
  }
  const auto p = source_dir().parent_path() / "shared";
  if (std::filesystem::is_directory(p / "models")) return p;
  return std::nullopt;
}

std::filesystem::path embedded_model_dir() {
  return source_dir() / "models" / "tiny-llama-bpe-7m";
}

bool sanitized() {
  const char* env = std::getenv("QFORGE_SANITIZED");
  return env != nullptr && std::string(env) == "1";
}

}  // namespace qforge::testing
