// SentencePiece tokenizer.model through libsentencepiece (the reference implementation).
#include <sentencepiece_processor.h>

#include "qforge/core/error.h"
#include "qforge/io/tokenizer.h"

namespace qforge {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& path) {
    const auto status = sp_.Load(path.string());
    check(status.ok(), "{}: cannot load SentencePiece model: {}", path.string(), status.ToString());
  }
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    check(status.ok(), "sentencepiece encode failed: {}", status.ToString());
    std::vector<int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_bos && bos_id() >= 0) out.push_back(bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::vector<int> v;
    for (int32_t id : ids)
      if (id != bos_id() && id != eos_id()) v.push_back(id);
    std::string text;
    const auto status = sp_.Decode(v, &text);
    check(status.ok(), "sentencepiece decode failed: {}", status.ToString());
    return text;
  }
  int vocab_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  bool adds_bos() const override { return true; }
  std::string describe() const override {
    return "sentencepiece tokenizer.model (" + std::to_string(vocab_size()) + " tokens)";
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace qforge
