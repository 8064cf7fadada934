// SentencePiece tokenizer.model through libsentencepiece (the reference implementation). A GGUF
// "llama" vocabulary becomes a SentencePiece model proto (BPE over the scored pieces, as
// llama.cpp's SPM tokenizer), assembled here field by field.
#include <sentencepiece_processor.h>

#include <cstring>

#include "io/tokenizer_factories.h"
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
  SentencePieceTokenizer(std::string_view serialized_proto, const std::string& label) {
    const auto status = sp_.LoadFromSerializedProto(serialized_proto);
    check(status.ok(), "{}: cannot build a SentencePiece model from the vocabulary: {}", label,
          status.ToString());
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
  Vocabulary vocabulary() const override;

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

Vocabulary SentencePieceTokenizer::vocabulary() const {
  Vocabulary v;
  v.model = "llama";
  for (int id = 0; id < sp_.GetPieceSize(); ++id) {
    v.tokens.push_back(sp_.IdToPiece(id));
    v.scores.push_back(sp_.GetScore(id));
    v.types.push_back(sp_.IsUnknown(id)   ? Vocabulary::Unknown
                      : sp_.IsControl(id) ? Vocabulary::Control
                      : sp_.IsUnused(id)  ? Vocabulary::Unused
                      : sp_.IsByte(id)    ? Vocabulary::Byte
                                          : Vocabulary::Normal);
  }
  v.bos = sp_.bos_id();
  v.eos = sp_.eos_id();
  v.unk = sp_.unk_id();
  v.pad = sp_.pad_id();
  v.add_bos = true;
  return v;
}

// Protocol-buffer wire format, just what sentencepiece_model.proto needs.
class ProtoWriter {
 public:
  void varint(int field, uint64_t v) {
    tag(field, 0);
    raw_varint(v);
  }
  void boolean(int field, bool v) { varint(field, v ? 1 : 0); }
  void fixed32_float(int field, float v) {
    tag(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    out_.append(b, 4);
  }
  void bytes(int field, std::string_view s) {
    tag(field, 2);
    raw_varint(s.size());
    out_.append(s);
  }
  const std::string& str() const { return out_; }

 private:
  void tag(int field, int wire) { raw_varint(static_cast<uint64_t>(field) << 3 | wire); }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

// ModelProto: pieces (1), trainer_spec (2), normalizer_spec (3).
std::string model_proto(const Vocabulary& v) {
  ProtoWriter model;
  bool has_bytes = false;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int32_t type = v.types.empty() ? Vocabulary::Normal : v.types[i];
    has_bytes |= type == Vocabulary::Byte;
    ProtoWriter piece;
    piece.bytes(1, v.tokens[i]);
    piece.fixed32_float(2, v.scores[i]);
    piece.varint(3, static_cast<uint64_t>(type >= 1 && type <= 6 ? type : Vocabulary::Normal));
    model.bytes(1, piece.str());
  }
  ProtoWriter trainer;
  trainer.varint(3, 2);  // model_type: BPE
  trainer.varint(4, v.tokens.size());
  trainer.boolean(35, has_bytes);  // byte_fallback
  // Special pieces by name (the processor finds BOS/EOS/UNK through them); -1 ids are left out.
  const std::pair<int, int32_t> specials[] = {{45, v.unk}, {46, v.bos}, {47, v.eos}, {48, v.pad}};
  for (const auto& [field, id] : specials)
    if (id >= 0) trainer.bytes(field, v.tokens[id]);
  ProtoWriter normalizer;
  normalizer.bytes(1, "identity");
  normalizer.boolean(3, v.add_space_prefix);
  normalizer.boolean(4, false);  // remove_extra_whitespaces: llama.cpp keeps them
  normalizer.boolean(5, true);   // escape_whitespaces
  model.bytes(2, trainer.str());
  model.bytes(3, normalizer.str());
  return model.str();
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const Vocabulary& v,
                                                        const std::string& label) {
  return std::make_unique<SentencePieceTokenizer>(model_proto(v), label);
}

}  // namespace qforge
