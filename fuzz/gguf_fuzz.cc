// libFuzzer target: arbitrary bytes as a GGUF file. Any input must either parse (and then every
// tensor's data and every metadata value must lie inside the buffer) or raise qforge::Error —
// never crash, never allocate beyond what the input can describe.
#include <cstddef>
#include <cstdint>

#include "qforge/core/error.h"
#include "qforge/io/gguf.h"

namespace {

void require_inside(const std::byte* p, uint64_t n, const std::byte* begin, size_t size) {
  if (n == 0) return;
  if (p < begin || p + n > begin + size) __builtin_trap();
  volatile std::byte sink = p[n - 1];  // touch the last byte (ASan checks it)
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  try {
    auto f = qforge::gguf::File::parse(bytes, size, "fuzz.gguf");
    for (const auto& t : f->tensors()) require_inside(t.data, t.nbytes, bytes, size);
    for (const auto& [key, v] : f->metadata()) {
      for (std::string_view s : v.strings)
        require_inside(reinterpret_cast<const std::byte*>(s.data()), s.size(), bytes, size);
      // Typed access must fail cleanly on the wrong type too.
      try {
        (void)f->integer(key);
      } catch (const qforge::Error&) {
      }
      try {
        (void)f->numbers(key);
      } catch (const qforge::Error&) {
      }
    }
  } catch (const qforge::Error&) {
  }
  return 0;
}
