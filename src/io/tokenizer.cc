#include "qforge/io/tokenizer.h"

#include "io/tokenizer_factories.h"
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

Vocabulary Tokenizer::vocabulary() const {
  fail("{}: this tokenizer has no GGUF vocabulary form", describe());
}

std::unique_ptr<Tokenizer> make_tokenizer(const Vocabulary& v, const std::string& label) {
  const size_t n = v.tokens.size();
  check(n > 0, "{}: the vocabulary has no tokens", label);
  check(v.types.empty() || v.types.size() == n, "{}: {} token types for {} tokens", label,
        v.types.size(), n);
  for (int32_t id : {v.bos, v.eos, v.unk, v.pad})
    check(id >= -1 && id < static_cast<int64_t>(n), "{}: special token id {} is not in [0, {})",
          label, id, n);
  if (v.model == "llama") {
    check(v.scores.size() == n, "{}: {} token scores for {} tokens", label, v.scores.size(), n);
    return make_sentencepiece_tokenizer(v, label);
  }
  if (v.model == "gpt2") {
    check(!v.merges.empty(), "{}: a BPE (gpt2) tokenizer without merges", label);
    return make_byte_level_bpe_tokenizer(v, label);
  }
  fail("{}: unsupported tokenizer model '{}' (supported: llama, gpt2)", label, v.model);
}

}  // namespace qforge
