// libFuzzer target: arbitrary bytes as a safetensors file. Any input must either parse (and then
// every tensor view must lie inside the buffer) or raise qforge::Error — never crash.
#include <cstddef>
#include <cstdint>

#include "qforge/core/error.h"
#include "qforge/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  try {
    auto st = qforge::SafetensorsFile::parse(bytes, size, "fuzz.safetensors");
    for (const auto& t : st->tensors()) {
      if (t.data < bytes || t.data + t.nbytes() > bytes + size) __builtin_trap();
      volatile std::byte sink{};
      if (t.nbytes() > 0) sink = t.data[t.nbytes() - 1];  // touch the last byte (ASan checks it)
      (void)sink;
    }
  } catch (const qforge::Error&) {
  }
  return 0;
}
