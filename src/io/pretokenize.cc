#include "io/pretokenize.h"

#include <algorithm>

#include "io/unicode.h"

namespace qforge {
namespace {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

using unicode::is_letter;
using unicode::is_number;
using unicode::is_space;

bool is_newline(uint32_t c) {
  return c == '\r' || c == '\n';
}
bool is_other(uint32_t c) {
  return !is_space(c) && !is_letter(c) && !is_number(c);
}
uint32_t lower_ascii(uint32_t c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

class Matcher {
 public:
  Matcher(const std::vector<uint32_t>& cps, bool ignore_case) : c_(cps), icase_(ignore_case) {}
  size_t size() const { return c_.size(); }
  uint32_t at(size_t i) const { return i < c_.size() ? c_[i] : 0xFFFFFFFFu; }
  bool valid(size_t i) const { return i < c_.size(); }

  // 's|'t|'re|'ve|'m|'ll|'d  -> end index or 0 (no match)
  size_t contraction(size_t i) const {
    if (at(i) != '\'') return 0;
    auto ch = [&](size_t k) { return icase_ ? lower_ascii(at(k)) : at(k); };
    const uint32_t a = ch(i + 1), b = ch(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' || a == 'v') && b == 'e') return i + 3;
    if (a == 'l' && b == 'l') return i + 3;
    return 0;
  }
  template <typename Pred>
  size_t run(size_t i, Pred p) const {  // end of the maximal run of p starting at i
    while (valid(i) && p(at(i))) ++i;
    return i;
  }
  // \s+(?!\S) then \s+ : whitespace run, leaving its last char to the next piece when a
  // non-space follows (so " word" keeps its leading space).
  size_t whitespace(size_t i) const {
    const size_t end = run(i, is_space);
    if (end == i) return 0;
    if (!valid(end) || end - i == 1) return end;  // at the end, or the \s+ fallback
    return end - 1;
  }

 private:
  const std::vector<uint32_t>& c_;
  bool icase_;
};

size_t match_gpt2(const Matcher& m, size_t i) {
  if (size_t e = m.contraction(i)) return e;
  const size_t j = m.at(i) == ' ' ? i + 1 : i;  // optional leading space
  if (m.valid(j) && is_letter(m.at(j))) return m.run(j, is_letter);
  if (m.valid(j) && is_number(m.at(j))) return m.run(j, is_number);
  if (m.valid(j) && is_other(m.at(j))) return m.run(j, is_other);
  return m.whitespace(i);
}

// Qwen2's pattern; Llama-3's differs only in taking up to `max_digits` digits at once.
size_t match_qwen2(const Matcher& m, size_t i, size_t max_digits = 1) {
  if (size_t e = m.contraction(i)) return e;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  const uint32_t c = m.at(i);
  if (!is_newline(c) && !is_letter(c) && !is_number(c) && m.valid(i + 1) && is_letter(m.at(i + 1)))
    return m.run(i + 1, is_letter);
  if (is_letter(c)) return m.run(i, is_letter);
  if (is_number(c)) return std::min(m.run(i, is_number), i + max_digits);
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  const size_t j = c == ' ' ? i + 1 : i;
  if (m.valid(j) && is_other(m.at(j))) return m.run(m.run(j, is_other), is_newline);
  // \s*[\r\n]+ : up to and including the last newline of the whitespace run
  const size_t end = m.run(i, is_space);
  for (size_t k = end; k > i; --k)
    if (is_newline(m.at(k - 1))) return k;
  return m.whitespace(i);
}

// Each digit alone, GPT-2's regex over the text between digits.
std::vector<std::string_view> pretokenize_smollm(std::string_view text,
                                                 const std::vector<uint32_t>& cps,
                                                 const std::vector<size_t>& offsets) {
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < cps.size();) {
    size_t j = i + 1;
    if (!is_number(cps[i]))
      while (j < cps.size() && !is_number(cps[j])) ++j;
    const std::string_view segment = text.substr(offsets[i], offsets[j] - offsets[i]);
    if (is_number(cps[i]))
      pieces.push_back(segment);
    else
      for (std::string_view p : pretokenize(PreTokenizerRegex::Gpt2, segment)) pieces.push_back(p);
    i = j;
  }
  return pieces;
}

}  // namespace

PreTokenizerRegex pretokenizer_regex_from_pattern(const std::string& pattern) {
  if (pattern == kGpt2Pattern) return PreTokenizerRegex::Gpt2;
  if (pattern == kQwen2Pattern) return PreTokenizerRegex::Qwen2;
  if (pattern == kLlama3Pattern) return PreTokenizerRegex::Llama3;
  return PreTokenizerRegex::None;
}

std::string pretokenizer_pattern(PreTokenizerRegex regex) {
  switch (regex) {
    case PreTokenizerRegex::Gpt2:
      return kGpt2Pattern;
    case PreTokenizerRegex::Qwen2:
      return kQwen2Pattern;
    case PreTokenizerRegex::Llama3:
      return kLlama3Pattern;
    default:
      return "";
  }
}

std::optional<PreTokenizerRegex> pretokenizer_regex_from_gguf_name(std::string_view name) {
  if (name == "gpt-2" || name == "default") return PreTokenizerRegex::Gpt2;
  if (name == "qwen2") return PreTokenizerRegex::Qwen2;
  if (name == "llama-bpe" || name == "llama3") return PreTokenizerRegex::Llama3;
  if (name == "smollm") return PreTokenizerRegex::SmolLm;
  return std::nullopt;
}

std::string gguf_pretokenizer_name(PreTokenizerRegex regex) {
  switch (regex) {
    case PreTokenizerRegex::Qwen2:
      return "qwen2";
    case PreTokenizerRegex::Llama3:
      return "llama-bpe";
    case PreTokenizerRegex::SmolLm:
      return "smollm";
    default:
      return "gpt-2";
  }
}

std::vector<std::string_view> pretokenize(PreTokenizerRegex regex, std::string_view text) {
  if (regex == PreTokenizerRegex::None) return {text};
  std::vector<uint32_t> cps;
  std::vector<size_t> offsets;
  unicode::decode_utf8(text, cps, offsets);
  if (regex == PreTokenizerRegex::SmolLm) return pretokenize_smollm(text, cps, offsets);
  const Matcher m(cps, regex != PreTokenizerRegex::Gpt2);
  std::vector<std::string_view> pieces;
  size_t i = 0;
  while (i < cps.size()) {
    size_t e = regex == PreTokenizerRegex::Gpt2     ? match_gpt2(m, i)
               : regex == PreTokenizerRegex::Llama3 ? match_qwen2(m, i, 3)
                                                    : match_qwen2(m, i);
    if (e <= i) e = i + 1;  // cannot happen for these patterns; never loop forever
    pieces.push_back(text.substr(offsets[i], offsets[e] - offsets[i]));
    i = e;
  }
  return pieces;
}

}  // namespace qforge
