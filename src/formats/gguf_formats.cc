#include "formats/gguf_formats.h"

namespace qforge::formats {

std::vector<std::string> gguf_format_names() {
  return {};
}
std::unique_ptr<Format> make_gguf_format(const std::string&) {
  return nullptr;
}

}  // namespace qforge::formats
