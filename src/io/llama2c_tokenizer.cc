// llama2.c tokenizer.bin (karpathy/llama2.c): int32 max_token_length, then per token a float
// merge score, an int32 byte length and the bytes. Encoding follows run.c: a dummy-prefix " "
// token, one token per UTF-8 code point (byte fallback <0xNN> = byte + 3 otherwise), then greedy
// merging of the adjacent pair whose merged piece has the highest score.
#include <cstring>
#include <unordered_map>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/io/tokenizer.h"

namespace qforge {
namespace {

class Llama2cTokenizer : public Tokenizer {
 public:
  explicit Llama2cTokenizer(const std::filesystem::path& path) {
    const MappedFile f(path);
    const std::string label = path.string();
    size_t off = 0;
    auto read = [&](void* dst, size_t n, const char* what) {
      check(off + n <= f.size(), "{}: truncated while reading {} of token {}", label, what,
            pieces_.size());
      std::memcpy(dst, f.data() + off, n);
      off += n;
    };
    int32_t max_len = 0;
    read(&max_len, 4, "the header");
    check(max_len > 0 && max_len < 4096, "{}: implausible max token length {}", label, max_len);
    while (off < f.size()) {
      float score;
      int32_t len;
      read(&score, 4, "a score");
      read(&len, 4, "a length");
      check(len >= 0 && len <= max_len, "{}: token {} has length {} (max {})", label,
            pieces_.size(), len, max_len);
      std::string piece(static_cast<size_t>(len), '\0');
      if (len > 0) read(piece.data(), static_cast<size_t>(len), "the bytes");
      index_.emplace(piece, static_cast<int32_t>(pieces_.size()));
      pieces_.push_back(std::move(piece));
      scores_.push_back(score);
    }
    check(pieces_.size() > 258, "{}: only {} tokens; a llama2.c vocabulary has byte tokens 3..258",
          label, pieces_.size());
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> ids;
    if (add_bos) ids.push_back(kBos);
    std::vector<int32_t> t;
    if (!text.empty()) {
      auto space = index_.find(" ");
      if (space != index_.end()) t.push_back(space->second);
    }
    for (size_t i = 0; i < text.size();) {
      size_t n = 1;  // bytes in this UTF-8 code point (continuation bytes are 10xxxxxx)
      while (n < 4 && i + n < text.size() && (static_cast<uint8_t>(text[i + n]) & 0xC0) == 0x80)
        ++n;
      auto it = index_.find(std::string(text.substr(i, n)));
      if (it != index_.end()) {
        t.push_back(it->second);
      } else {
        for (size_t k = 0; k < n; ++k) t.push_back(static_cast<uint8_t>(text[i + k]) + 3);
      }
      i += n;
    }
    for (;;) {  // merge the best-scoring adjacent pair until none merges
      float best = -1e10f;
      int best_id = -1;
      size_t best_at = 0;
      for (size_t i = 0; i + 1 < t.size(); ++i) {
        auto it = index_.find(pieces_[t[i]] + pieces_[t[i + 1]]);
        if (it != index_.end() && scores_[it->second] > best) {
          best = scores_[it->second];
          best_id = it->second;
          best_at = i;
        }
      }
      if (best_id < 0) break;
      t[best_at] = best_id;
      t.erase(t.begin() + static_cast<ptrdiff_t>(best_at) + 1);
    }
    ids.insert(ids.end(), t.begin(), t.end());
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    int32_t prev = -1;
    for (int32_t id : ids) {
      check(id >= 0 && id < vocab_size(), "token id {} out of range [0, {})", id, vocab_size());
      if (id == kBos || id == kEos) {
        prev = id;
        continue;
      }
      std::string_view piece = pieces_[id];
      if (prev == kBos && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
      unsigned byte = 0;
      if (piece.size() == 6 && std::sscanf(std::string(piece).c_str(), "<0x%02X>", &byte) == 1)
        out.push_back(static_cast<char>(byte));
      else
        out.append(piece);
      prev = id;
    }
    return out;
  }
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return kBos; }
  int eos_id() const override { return kEos; }
  bool adds_bos() const override { return true; }
  std::string describe() const override {
    return "llama2.c tokenizer.bin (" + std::to_string(vocab_size()) + " tokens)";
  }

 private:
  static constexpr int32_t kBos = 1, kEos = 2;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> index_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& path) {
  return std::make_unique<Llama2cTokenizer>(path);
}

}  // namespace qforge
