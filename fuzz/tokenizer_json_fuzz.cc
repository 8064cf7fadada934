// libFuzzer target: arbitrary bytes as a tokenizer.json. Parsing either succeeds or raises
// qforge::Error; a parsed tokenizer must encode and decode a fixed text without crashing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qforge/core/error.h"
#include "qforge/io/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto tok = qforge::parse_hf_tokenizer(text, "fuzz/tokenizer.json");
    const auto ids = tok->encode("Hello  world, it's 42 \xC3\xA9t\xC3\xA9!\n\tend", true);
    (void)tok->decode(ids);
  } catch (const qforge::Error&) {
  }
  return 0;
}
