// UTF-8 decoding and the Unicode character classes the tokenizer regexes need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qforge::unicode {

struct CodepointRange {
  uint32_t first, last;
};
extern const CodepointRange kLetters[];
extern const size_t kLettersCount;
extern const CodepointRange kNumbers[];
extern const size_t kNumbersCount;

bool is_letter(uint32_t cp);  // \p{L}
bool is_number(uint32_t cp);  // \p{N}
bool is_space(uint32_t cp);   // \s: the Unicode White_Space property

// Decodes UTF-8 into code points with their byte offsets (offsets.size() == cps.size() + 1).
// Invalid bytes decode to U+FFFD one byte at a time, so every input byte is covered.
void decode_utf8(std::string_view text, std::vector<uint32_t>& cps, std::vector<size_t>& offsets);
void append_utf8(uint32_t cp, std::string& out);

}  // namespace qforge::unicode
