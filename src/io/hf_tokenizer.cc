// Hugging Face tokenizer.json, BPE models only, written here (no tokenizers library):
//  - GPT-2-style byte-level BPE: Split(regex) + ByteLevel pre-tokenizers, ByteLevel decoder;
//  - SentencePiece-style BPE: Metaspace pre-tokenizer (or the older Prepend/Replace normalizer),
//    byte fallback to <0xNN> tokens, Replace/ByteFallback/Fuse/Strip decoder.
// Added tokens are split out of the text first; merges apply by rank (lowest first, leftmost
// among equal ranks), with a heap so that a long unsplit text stays O(n log n).
#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <unordered_map>

#include "io/pretokenize.h"
#include "io/tokenizer_factories.h"
#include "io/unicode.h"
#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/io/tokenizer.h"

namespace qforge {
namespace {

using Json = nlohmann::json;
const std::string kMetaspace = "\xE2\x96\x81";  // U+2581 '▁'

struct AddedToken {
  std::string content;
  int32_t id;
  bool special;
};

class HfBpeTokenizer : public Tokenizer {
 public:
  HfBpeTokenizer(const Json& j, const std::string& label, const Json* tokenizer_config);
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int vocab_size() const override { return static_cast<int>(id_to_token_.size()); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  bool adds_bos() const override { return adds_bos_; }
  std::string describe() const override {
    return std::string("tokenizer.json (BPE, ") +
           (byte_level_ ? "byte-level" : "sentencepiece-style") + ", " +
           std::to_string(vocab_size()) + " tokens)";
  }
  Vocabulary vocabulary() const override;

 private:
  void encode_segment(std::string_view segment, bool first_segment,
                      std::vector<int32_t>& out) const;
  void bpe(std::vector<int32_t>& symbols) const;
  int32_t token_id(const std::string& s) const {
    auto it = vocab_.find(s);
    return it == vocab_.end() ? -1 : it->second;
  }

  std::string label_;
  bool byte_level_ = false;
  PreTokenizerRegex regex_ = PreTokenizerRegex::None;
  bool prepend_always_ = false, prepend_first_ = false;
  bool byte_fallback_ = false;
  bool strip_leading_space_ = false;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> is_special_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a,b) -> (rank, merged)
  std::vector<AddedToken> added_;
  std::array<int32_t, 256> byte_symbol_{};    // byte-level: id of the token for each byte
  std::array<int32_t, 256> fallback_byte_{};  // <0xNN> ids, -1 if absent
  std::unordered_map<uint32_t, uint8_t> unicode_to_byte_;
  int32_t bos_ = -1, eos_ = -1;
  bool adds_bos_ = false;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;  // byte-level word cache
};

// GPT-2's reversible byte -> printable code point mapping.
std::array<uint32_t, 256> bytes_to_unicode() {
  std::array<uint32_t, 256> map{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) map[b] = direct[b] ? static_cast<uint32_t>(b) : next++;
  return map;
}

// obj[key] by reference, or a null value (unlike json::value(), which returns a copy).
const Json& field(const Json& obj, const char* key) {
  static const Json null_json;
  return obj.is_object() && obj.contains(key) ? obj[key] : null_json;
}

std::string token_content(const Json& v, const char* what, const std::string& label) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  fail("{}: '{}' must be a string or an object with 'content'", label, what);
}

HfBpeTokenizer::HfBpeTokenizer(const Json& j, const std::string& label, const Json* config)
    : label_(label) {
  check(j.is_object(), "{}: not a JSON object", label);
  check(j.contains("model") && j["model"].is_object(), "{}: missing 'model'", label);
  const Json& model = j["model"];
  const std::string type = model.value("type", std::string("BPE"));
  check(type == "BPE", "{}: unsupported tokenizer model type '{}' (only BPE is supported)", label,
        type);
  check(model.contains("vocab") && model["vocab"].is_object(), "{}: missing 'model.vocab'", label);
  for (const auto& [tok, id] : model["vocab"].items()) {
    check(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 24),
          "{}: vocab entry '{}' has an invalid id", label, tok);
    const auto i = id.get<int32_t>();
    if (static_cast<size_t>(i) >= id_to_token_.size()) id_to_token_.resize(i + 1);
    id_to_token_[i] = tok;
    vocab_[tok] = i;
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      check(a.is_object() && a.contains("id") && a["id"].is_number_integer() &&
                a.contains("content") && a["content"].is_string(),
            "{}: malformed added_tokens entry", label);
      AddedToken t{a["content"].get<std::string>(), a["id"].get<int32_t>(),
                   a.value("special", false)};
      check(t.id >= 0 && t.id < (1 << 24) && !t.content.empty(), "{}: added token '{}' is invalid",
            label, t.content);
      if (static_cast<size_t>(t.id) >= id_to_token_.size()) id_to_token_.resize(t.id + 1);
      id_to_token_[t.id] = t.content;
      vocab_[t.content] = t.id;
      added_.push_back(std::move(t));
    }
  }
  is_special_.assign(id_to_token_.size(), false);
  for (const auto& a : added_) is_special_[a.id] = a.special;
  byte_fallback_ = model.value("byte_fallback", false);
  fallback_byte_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    fallback_byte_[b] = token_id(name);
  }

  // Merges: "a b" strings (older files) or ["a", "b"] pairs.
  if (model.contains("merges")) {
    check(model["merges"].is_array(), "{}: 'model.merges' must be an array", label);
    int32_t rank = 0;
    for (const auto& m : model["merges"]) {
      std::string a, b;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ', 1);
        check(sp != std::string::npos, "{}: merge '{}' is not two tokens separated by a space",
              label, s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        check(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
              "{}: merge #{} is neither \"a b\" nor [\"a\", \"b\"]", label, rank);
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      }
      const int32_t ia = token_id(a), ib = token_id(b), im = token_id(a + b);
      check(ia >= 0 && ib >= 0, "{}: merge #{} ('{}' '{}') names a token missing from the vocab",
            label, rank, a, b);
      check(im >= 0, "{}: merge #{} produces '{}', which is missing from the vocab", label, rank,
            a + b);
      const uint64_t key = (static_cast<uint64_t>(ia) << 32) | static_cast<uint32_t>(ib);
      merges_.emplace(key, std::make_pair(rank, im));  // the first (lowest) rank wins
      ++rank;
    }
  }

  // Normalizer: none, or the older Llama form Sequence[Prepend('▁'), Replace(' ', '▁')].
  auto types_of = [](const Json& node, const char* list_key) {
    std::vector<const Json*> out;
    if (node.is_null()) return out;
    if (node.value("type", std::string()) == "Sequence" && node.contains(list_key))
      for (const auto& n : node[list_key]) out.push_back(&n);
    else
      out.push_back(&node);
    return out;
  };
  bool replace_space = false;
  for (const Json* n : types_of(field(j, "normalizer"), "normalizers")) {
    const std::string t = n->value("type", std::string());
    if (t == "Prepend" && n->value("prepend", std::string()) == kMetaspace) {
      prepend_always_ = true;
    } else if (t == "Replace") {
      replace_space = true;
    } else {
      fail("{}: unsupported normalizer '{}'", label, t);
    }
  }
  bool metaspace = replace_space;
  bool digits = false;  // Digits(individual_digits) before a ByteLevel regex: SmolLM's splitting
  for (const Json* p : types_of(field(j, "pre_tokenizer"), "pretokenizers")) {
    const std::string t = p->value("type", std::string());
    if (t == "ByteLevel") {
      byte_level_ = true;
      if (p->value("use_regex", true)) regex_ = PreTokenizerRegex::Gpt2;
      check(!p->value("add_prefix_space", false),
            "{}: ByteLevel add_prefix_space=true is not supported", label);
    } else if (t == "Split") {
      const Json& pat = (*p)["pattern"];
      check(pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string(),
            "{}: Split pre-tokenizer without a Regex pattern is not supported", label);
      regex_ = pretokenizer_regex_from_pattern(pat["Regex"].get<std::string>());
      check(regex_ != PreTokenizerRegex::None, "{}: unsupported Split regex {}", label,
            pat["Regex"].dump());
      check(
          p->value("behavior", std::string("Isolated")) == "Isolated" && !p->value("invert", false),
          "{}: only Split with behavior Isolated is supported", label);
    } else if (t == "Digits") {
      check(p->value("individual_digits", false),
            "{}: only the Digits pre-tokenizer with individual_digits is supported", label);
      digits = true;
    } else if (t == "Metaspace") {
      metaspace = true;
      check(p->value("replacement", kMetaspace) == kMetaspace,
            "{}: Metaspace replacement other than U+2581 is not supported", label);
      const std::string scheme = p->value(
          "prepend_scheme", std::string(p->value("add_prefix_space", true) ? "always" : "never"));
      prepend_always_ = scheme == "always";
      prepend_first_ = scheme == "first";
    } else {
      fail("{}: unsupported pre-tokenizer '{}'", label, t);
    }
  }
  check(byte_level_ != metaspace, "{}: expected either a ByteLevel or a Metaspace-style tokenizer",
        label);
  if (digits) {
    check(byte_level_ && regex_ == PreTokenizerRegex::Gpt2,
          "{}: Digits is supported only before ByteLevel's own (GPT-2) regex", label);
    regex_ = PreTokenizerRegex::SmolLm;
  }
  if (byte_level_) {
    const auto map = bytes_to_unicode();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      unicode::append_utf8(map[b], s);
      byte_symbol_[b] = token_id(s);  // -1 when absent (SmolLM2 lacks a few control bytes):
                                      // refused when such a byte occurs in a text
      unicode_to_byte_[map[b]] = static_cast<uint8_t>(b);
    }
  }
  // Decoder: the Metaspace family strips the one space the pre-tokenizer prepended.
  for (const Json* d : types_of(field(j, "decoder"), "decoders")) {
    const std::string t = d->value("type", std::string());
    if (t == "Strip" && d->value("start", 0) > 0) strip_leading_space_ = true;
    if (t == "Metaspace") strip_leading_space_ = prepend_always_ || prepend_first_;
  }

  // BOS: the post-processor template tells whether one is added; the ids come from the template,
  // tokenizer_config.json, or well-known names.
  const Json& post = field(j, "post_processor");
  if (post.is_object() && post.value("type", std::string()) == "TemplateProcessing" &&
      post.contains("single") && post["single"].is_array() && !post["single"].empty()) {
    const Json& first = post["single"][0];
    if (first.contains("SpecialToken")) {
      adds_bos_ = true;
      bos_ = token_id(first["SpecialToken"].value("id", std::string()));
    }
  }
  if (config != nullptr && config->is_object()) {
    if (config->contains("bos_token") && !(*config)["bos_token"].is_null() && bos_ < 0)
      bos_ = token_id(token_content((*config)["bos_token"], "bos_token", label));
    if (config->contains("eos_token") && !(*config)["eos_token"].is_null())
      eos_ = token_id(token_content((*config)["eos_token"], "eos_token", label));
  }
  if (bos_ < 0) bos_ = token_id("<s>");
  if (eos_ < 0) eos_ = token_id("</s>");
  if (eos_ < 0) eos_ = token_id("<|endoftext|>");
}

// Merges adjacent symbols by rank, lowest first and leftmost among equals, until none applies.
void HfBpeTokenizer::bpe(std::vector<int32_t>& sym) const {
  const size_t n = sym.size();
  if (n < 2 || merges_.empty()) return;
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Candidate {
    int32_t rank, left, a, b;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    const int32_t a = sym[left], b = sym[next[left]];
    auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    if (it != merges_.end()) heap.push({it->second.first, left, a, b});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t right = next[c.left];
    if (sym[c.left] != c.a || right < 0 || sym[right] != c.b) continue;  // stale
    sym[c.left] =
        merges_.at((static_cast<uint64_t>(c.a) << 32) | static_cast<uint32_t>(c.b)).second;
    sym[right] = -1;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  size_t w = 0;
  for (size_t i = 0; i < n; ++i)
    if (sym[i] >= 0) sym[w++] = sym[i];
  sym.resize(w);
}

void HfBpeTokenizer::encode_segment(std::string_view seg, bool first_segment,
                                    std::vector<int32_t>& out) const {
  if (byte_level_) {
    for (std::string_view piece : pretokenize(regex_, seg)) {
      auto cached = cache_.find(std::string(piece));
      if (cached != cache_.end()) {
        out.insert(out.end(), cached->second.begin(), cached->second.end());
        continue;
      }
      std::vector<int32_t> sym;
      sym.reserve(piece.size());
      for (char c : piece) {
        const int32_t id = byte_symbol_[static_cast<uint8_t>(c)];
        check(id >= 0, "{}: byte 0x{:02X} has no token in the byte-level vocabulary", label_,
              static_cast<uint8_t>(c));
        sym.push_back(id);
      }
      bpe(sym);
      out.insert(out.end(), sym.begin(), sym.end());
      if (cache_.size() < 200000) cache_.emplace(std::string(piece), std::move(sym));
    }
    return;
  }
  // SentencePiece style: spaces become '▁', one '▁' is prepended, then code points are symbols
  // (unknown ones fall back to their UTF-8 bytes).
  std::string text;
  if (prepend_always_ || (prepend_first_ && first_segment)) text = kMetaspace;
  for (char c : seg) {
    if (c == ' ')
      text += kMetaspace;
    else
      text.push_back(c);
  }
  std::vector<uint32_t> cps;
  std::vector<size_t> offsets;
  unicode::decode_utf8(text, cps, offsets);
  std::vector<int32_t> sym;
  sym.reserve(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    const std::string ch = text.substr(offsets[i], offsets[i + 1] - offsets[i]);
    const int32_t id = token_id(ch);
    if (id >= 0) {
      sym.push_back(id);
      continue;
    }
    check(byte_fallback_,
          "{}: character U+{:04X} is not in the vocabulary and byte_fallback is off", label_,
          cps[i]);
    for (char c : ch) {
      const int32_t b = fallback_byte_[static_cast<uint8_t>(c)];
      check(b >= 0, "{}: byte fallback token <0x{:02X}> is missing", label_,
            static_cast<uint8_t>(c));
      sym.push_back(b);
    }
  }
  bpe(sym);
  out.insert(out.end(), sym.begin(), sym.end());
}

Vocabulary HfBpeTokenizer::vocabulary() const {
  check(byte_level_ && regex_ != PreTokenizerRegex::None,
        "{}: only byte-level BPE with a known pre-tokenizer regex has a GGUF form", label_);
  Vocabulary v;
  v.model = "gpt2";
  v.pre = gguf_pretokenizer_name(regex_);
  v.tokens = id_to_token_;
  v.types.assign(v.tokens.size(), Vocabulary::Normal);
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i].empty()) {  // an id the vocabulary skips: llama.cpp's converter pads so too
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
      v.types[i] = Vocabulary::Unused;
    }
  for (const AddedToken& a : added_)
    v.types[a.id] = a.special ? Vocabulary::Control : Vocabulary::UserDefined;
  std::vector<std::pair<int32_t, uint64_t>> by_rank;
  for (const auto& [pair, rank_merged] : merges_) by_rank.emplace_back(rank_merged.first, pair);
  std::sort(by_rank.begin(), by_rank.end());
  for (const auto& [rank, pair] : by_rank)
    v.merges.push_back(id_to_token_[pair >> 32] + " " + id_to_token_[pair & 0xffffffffu]);
  v.bos = bos_;
  v.eos = eos_;
  v.add_bos = adds_bos_;
  return v;
}

std::vector<int32_t> HfBpeTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    // The earliest (then longest) added token in the rest of the text.
    size_t best_at = std::string_view::npos;
    const AddedToken* best = nullptr;
    for (const AddedToken& a : added_) {
      const size_t at = text.find(a.content, pos);
      if (at != std::string_view::npos &&
          (at < best_at || (at == best_at && a.content.size() > best->content.size()))) {
        best_at = at;
        best = &a;
      }
    }
    const size_t end = best ? best_at : text.size();
    if (end > pos) encode_segment(text.substr(pos, end - pos), first, out);
    first = false;
    if (!best) break;
    out.push_back(best->id);
    pos = best_at + best->content.size();
  }
  return out;
}

std::string HfBpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    check(id >= 0 && static_cast<size_t>(id) < id_to_token_.size(),
          "token id {} out of range [0, {})", id, id_to_token_.size());
    // A BOS the tokenizer adds itself is not part of the text; other special tokens (e.g. an
    // <|endoftext|> written in the text) decode to their content so decode(encode(s)) == s.
    if ((adds_bos_ && id == bos_) || (id == eos_ && is_special_[id] && adds_bos_)) continue;
    if (is_special_[id]) {
      out += id_to_token_[id];
      continue;
    }
    const std::string& tok = id_to_token_[id];
    if (byte_level_) {
      std::vector<uint32_t> cps;
      std::vector<size_t> offsets;
      unicode::decode_utf8(tok, cps, offsets);
      for (uint32_t cp : cps) {
        auto it = unicode_to_byte_.find(cp);
        if (it != unicode_to_byte_.end())
          out.push_back(static_cast<char>(it->second));
        else
          unicode::append_utf8(cp, out);  // an added token's literal text
      }
    } else {
      unsigned byte = 0;
      if (tok.size() == 6 && std::sscanf(tok.c_str(), "<0x%02X>", &byte) == 1) {
        out.push_back(static_cast<char>(byte));
        continue;
      }
      for (size_t i = 0; i < tok.size();) {
        if (tok.compare(i, kMetaspace.size(), kMetaspace) == 0) {
          out.push_back(' ');
          i += kMetaspace.size();
        } else {
          out.push_back(tok[i++]);
        }
      }
    }
  }
  if (strip_leading_space_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> parse_hf_tokenizer(std::string_view json_text,
                                              const std::string& label) {
  Json j;
  try {
    j = Json::parse(json_text);
  } catch (const Json::exception& e) {
    fail("{}: malformed JSON: {}", label, e.what());
  }
  try {
    return std::make_unique<HfBpeTokenizer>(j, label, nullptr);
  } catch (const Json::exception& e) {  // a field of the wrong JSON type
    fail("{}: invalid tokenizer.json: {}", label, e.what());
  }
}

// A tokenizer.json equivalent to a GGUF "gpt2" vocabulary, parsed by the same code as the files.
std::unique_ptr<Tokenizer> make_byte_level_bpe_tokenizer(const Vocabulary& v,
                                                         const std::string& label) {
  const auto regex = pretokenizer_regex_from_gguf_name(v.pre);
  check(regex.has_value(),
        "{}: unsupported pre-tokenizer '{}' (supported: default, gpt-2, llama-bpe, qwen2, smollm)",
        label, v.pre);
  Json vocab = Json::object(), added = Json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    vocab[v.tokens[i]] = i;
    const int32_t type = v.types.empty() ? Vocabulary::Normal : v.types[i];
    if (type == Vocabulary::Control || type == Vocabulary::UserDefined)
      added.push_back(
          {{"id", i}, {"content", v.tokens[i]}, {"special", type == Vocabulary::Control}});
  }
  Json pre = Json::array();
  if (*regex == PreTokenizerRegex::SmolLm)
    pre.push_back({{"type", "Digits"}, {"individual_digits", true}});
  else
    pre.push_back({{"type", "Split"},
                   {"pattern", {{"Regex", pretokenizer_pattern(*regex)}}},
                   {"behavior", "Isolated"},
                   {"invert", false}});
  pre.push_back({{"type", "ByteLevel"},
                 {"add_prefix_space", false},
                 {"use_regex", *regex == PreTokenizerRegex::SmolLm}});
  Json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", v.merges}}},
            {"added_tokens", added},
            {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pre}}},
            {"decoder", {{"type", "ByteLevel"}}}};
  Json config = Json::object();
  if (v.bos >= 0) config["bos_token"] = v.tokens[v.bos];
  if (v.eos >= 0) config["eos_token"] = v.tokens[v.eos];
  if (v.add_bos && v.bos >= 0)
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", v.tokens[v.bos]}}}}, {{"Sequence", {{"id", "A"}}}}}}};
  try {
    return std::make_unique<HfBpeTokenizer>(j, label, &config);
  } catch (const Json::exception& e) {
    fail("{}: invalid vocabulary: {}", label, e.what());
  }
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail("{}: malformed JSON: {}", path.string(), e.what());
  }
  // tokenizer_config.json beside it names BOS/EOS; it is optional.
  std::optional<Json> config;
  const auto config_path = path.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    try {
      config = Json::parse(read_text_file(config_path));
    } catch (const Json::exception& e) {
      fail("{}: malformed JSON: {}", config_path.string(), e.what());
    }
  }
  try {
    return std::make_unique<HfBpeTokenizer>(j, path.string(), config ? &*config : nullptr);
  } catch (const Json::exception& e) {
    fail("{}: invalid tokenizer.json: {}", path.string(), e.what());
  }
}

}  // namespace qforge
