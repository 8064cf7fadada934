#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/io/tokenizer.h"

namespace qforge {

std::unique_ptr<Tokenizer> parse_hf_tokenizer(std::string_view, const std::string& label) {
  fail("{}: tokenizer.json support is not built yet", label);
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& path) {
  return parse_hf_tokenizer(read_text_file(path), path.string());
}

}  // namespace qforge
