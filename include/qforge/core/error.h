// Errors: one exception type carrying a human-readable, context-rich message.
// Library code throws qforge::Error at the boundary where the problem is detected, naming the
// file/tensor/shape involved; the CLI catches it, prints one line and exits with code 1.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace qforge {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Throws Error(message) unless `condition` holds. Use for input validation, not for invariants.
template <typename... Args>
void check(bool condition, fmt::format_string<Args...> format, Args&&... args) {
  if (!condition) fail(format, std::forward<Args>(args)...);
}

}  // namespace qforge
