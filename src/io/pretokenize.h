// The pre-tokenizer regexes of byte-level BPE tokenizers, as hand-written matchers over code
// points (no regex engine): each follows its pattern's alternation order and backtracking exactly.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qforge {

enum class PreTokenizerRegex {
  None,    // no splitting
  Gpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Qwen2,   // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
           // ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,  // Qwen2's with \p{N}{1,3}: digits in runs of up to three
  SmolLm,  // every digit alone (HF's Digits(individual_digits)), then Gpt2 between them
};

// The tokenizer.json Split pattern of a regex (empty for None and SmolLm, which is no one regex).
std::string pretokenizer_pattern(PreTokenizerRegex regex);
// GGUF's tokenizer.ggml.pre names (llama.cpp's llama-vocab.cpp): "gpt-2" and "default" -> Gpt2,
// "qwen2", "llama-bpe" (also "llama3"), "smollm"; nullopt for others.
std::optional<PreTokenizerRegex> pretokenizer_regex_from_gguf_name(std::string_view name);
// The name GGUF files use for a regex.
std::string gguf_pretokenizer_name(PreTokenizerRegex regex);

// Recognises a pattern from tokenizer.json; None when it is not one of the above.
PreTokenizerRegex pretokenizer_regex_from_pattern(const std::string& pattern);

// Splits text into the pieces the regex matches (with Isolated behaviour every byte of the text
// belongs to exactly one piece).
std::vector<std::string_view> pretokenize(PreTokenizerRegex regex, std::string_view text);

}  // namespace qforge
