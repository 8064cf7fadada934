#include "qforge/io/tokenizer.h"

#include "qforge/core/error.h"

namespace qforge {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    // A SentencePiece model is the source of truth where it exists: tokenizer.json files converted
    // from it reproduce SentencePiece's splitting of whitespace runs only approximately.
    if (fs::exists(path / "tokenizer.model"))
      return load_sentencepiece_tokenizer(path / "tokenizer.model");
    if (fs::exists(path / "tokenizer.json")) return load_hf_tokenizer(path / "tokenizer.json");
    for (const char* name : {"tokenizer.bin", "tok512.bin"})
      if (fs::exists(path / name)) return load_llama2c_tokenizer(path / name);
    fail("{}: no tokenizer found (looked for tokenizer.model, tokenizer.json, tokenizer.bin)",
         path.string());
  }
  check(fs::exists(path), "{}: no such tokenizer file", path.string());
  const std::string ext = path.extension().string();
  if (ext == ".json") return load_hf_tokenizer(path);
  if (ext == ".model") return load_sentencepiece_tokenizer(path);
  if (ext == ".bin") return load_llama2c_tokenizer(path);
  fail("{}: unknown tokenizer file type (expected .json, .model or .bin)", path.string());
}

}  // namespace qforge
