// Tokenizers: Hugging Face tokenizer.json (byte-level BPE and SentencePiece-style BPE with byte
// fallback, implemented here), SentencePiece tokenizer.model (libsentencepiece) and llama2.c
// tokenizer.bin. All behind one interface.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qforge {

// A tokenizer's vocabulary as GGUF carries it (`tokenizer.ggml.*`, llama.cpp's llama-vocab.cpp):
// enough to rebuild the tokenizer without its original files.
struct Vocabulary {
  // Token types, numbered as SentencePiece and GGUF number them.
  enum TokenType : int32_t {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6
  };
  std::string model;  // "llama" (SentencePiece, scored pieces) or "gpt2" (byte-level BPE)
  std::string pre;    // gpt2 pre-tokenizer: "gpt-2", "default", "llama-bpe", "qwen2", "smollm"
  std::vector<std::string> tokens;
  std::vector<float> scores;        // llama only
  std::vector<int32_t> types;       // TokenType per token
  std::vector<std::string> merges;  // gpt2 only: "a b", by rank
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = false;
  bool add_space_prefix = true;  // llama: SentencePiece's add_dummy_prefix
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Encodes text. With add_bos, the BOS id is prepended when the tokenizer has one.
  // Special tokens written in the text (e.g. "<|endoftext|>") are recognised as such.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // Decodes ids to text (the inverse of encode for ordinary text; BOS/EOS are dropped).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when none
  virtual int eos_id() const = 0;  // -1 when none
  // Whether the model expects BOS at the start of a text (SentencePiece/Llama-2 style: yes;
  // GPT-2-style byte-level BPE: no).
  virtual bool adds_bos() const = 0;
  // "tokenizer.json (BPE, byte-level)", "sentencepiece", "llama2.c" ...
  virtual std::string describe() const = 0;
  // The vocabulary as GGUF stores it; throws Error when this kind of tokenizer has no GGUF form.
  virtual Vocabulary vocabulary() const;
};

// Rebuilds a tokenizer from a GGUF vocabulary (`label` names its file in errors): "llama" through
// libsentencepiece (a model proto assembled from the pieces), "gpt2" through the tokenizer.json
// BPE implementation with the pre-tokenizer named by `pre`.
std::unique_ptr<Tokenizer> make_tokenizer(const Vocabulary& vocabulary, const std::string& label);

// Parses a Hugging Face tokenizer.json (text in memory; `label` names it in errors).
std::unique_ptr<Tokenizer> parse_hf_tokenizer(std::string_view json_text, const std::string& label);
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& path);
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& path);
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& path);

// Picks by file name/extension: *.json -> HF, *.model -> SentencePiece, *.bin -> llama2.c.
// A directory: tokenizer.json preferred, else tokenizer.model. Throws Error when none is found.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace qforge
