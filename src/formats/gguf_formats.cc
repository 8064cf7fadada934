#include "formats/gguf_formats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "formats/gguf_codec.h"
#include "formats/simd_decode.h"
#include "qforge/core/error.h"

namespace qforge::formats {
namespace {

using gguf::TypeCodec;

constexpr int kMaxBlockBytes = 256;

// Σ qw (x − decoded)² of one encoded block.
double weighted_error(const TypeCodec& c, const float* x, const float* qw, const uint8_t* block) {
  float y[256];
  c.dequantize(block, y);
  double e = 0;
  for (int j = 0; j < c.block_weights; ++j)
    e += static_cast<double>(qw[j]) * (x[j] - y[j]) * (x[j] - y[j]);
  return e;
}

// Importances of n columns, floored at 1e-6 of their mean (a block's weights must not vanish;
// dead input columns have none); all ones when every importance is zero.
std::vector<float> floored_importance(const float* importance, int64_t n) {
  std::vector<float> qw(importance, importance + n);
  double mean = 0;
  for (float v : qw) mean += v;
  mean /= static_cast<double>(n);
  if (!(mean > 0)) return std::vector<float>(static_cast<size_t>(n), 1.0f);
  for (float& v : qw) v = std::max(v, static_cast<float>(1e-6 * mean));
  return qw;
}

// One block: llama.cpp's plain scale search, or with per-element importances qw its
// importance-weighted search (as llama-quantize with an imatrix), keeping whichever of the two has
// the smaller importance-weighted error (so the weighted encoding is never worse than the plain
// one under the weights it is given).
void encode_block(const TypeCodec& c, const float* x, const float* qw, uint8_t* out) {
  c.quantize(x, out);
  if (qw == nullptr || c.quantize_weighted == nullptr) return;
  uint8_t alt[kMaxBlockBytes];
  c.quantize_weighted(x, qw, alt);
  if (weighted_error(c, x, qw, alt) < weighted_error(c, x, qw, out))
    std::memcpy(out, alt, static_cast<size_t>(c.block_bytes));
}

class GgufQuantizer final : public GroupQuantizer {
 public:
  GgufQuantizer(const TypeCodec& c, int64_t rows, int64_t cols)
      : c_(c),
        rows_(rows),
        cols_(cols),
        groups_(cols / c.block_weights),
        subs_(c.block_weights / c.sub_block),
        blocks_(static_cast<size_t>(rows * groups_ * c.block_bytes)),
        a_(static_cast<size_t>(rows * groups_ * subs_)),
        m_(a_.size()) {}

  int64_t group_size() const override { return c_.block_weights; }

  void choose_scales(int64_t group, int64_t first_row, const float* w, int64_t rows, int64_t width,
                     int64_t ld, const float* importance) override {
    // importance: GPTQ's diag(H), the mean x² of each input channel, exactly what llama.cpp's
    // imatrix holds. Columns with zero importance (dead inputs) get a tiny weight so that a block
    // is never weightless.
    std::vector<float> x(static_cast<size_t>(c_.block_weights), 0.0f), qw;
    if (importance && width == c_.block_weights) qw = floored_importance(importance, width);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t r = first_row + i;
      std::copy(w + i * ld, w + i * ld + width, x.begin());
      encode_block(c_, x.data(), qw.empty() ? nullptr : qw.data(), block(r, group));
      const size_t s = static_cast<size_t>((r * groups_ + group) * subs_);
      c_.sub_scales(block(r, group), &a_[s], &m_[s]);
    }
  }

  // Nearest value under the block's scales, exactly as requantizing the block would round it
  // (each element's code depends only on its value and its sub-block's scale and offset).
  float round(int64_t row, int64_t col, float v) const override {
    const size_t s = static_cast<size_t>((row * groups_ + col / c_.block_weights) * subs_ +
                                         col % c_.block_weights / c_.sub_block);
    return gguf::round_element(c_, a_[s], m_[s], v);
  }

  // Codes recovered from values on the grid: each value's level under its sub-block's (a, m),
  // rounded to the integer (or codebook value) it is.
  bool group_codes(int64_t row, int64_t group, const float* values,
                   GroupCodes& out) const override {
    if (c_.set_scales == nullptr) return false;
    out.sub_block = c_.sub_block;
    out.offset = c_.offset == gguf::Offset::Plus    ? 1.f
                 : c_.offset == gguf::Offset::Minus ? -1.f
                                                    : 0.f;
    const size_t s0 = static_cast<size_t>((row * groups_ + group) * subs_);
    out.a.assign(a_.begin() + s0, a_.begin() + s0 + subs_);
    out.m.assign(m_.begin() + s0, m_.begin() + s0 + subs_);
    out.a_step = out.m_step = 0;
    if (c_.scale_steps) c_.scale_steps(block(row, group), &out.a_step, &out.m_step);
    out.code.resize(static_cast<size_t>(c_.block_weights));
    for (int j = 0; j < c_.block_weights; ++j) {
      const float a = out.a[j / c_.sub_block], m = out.m[j / c_.sub_block];
      const float v = gguf::round_element(c_, a, m, values[j]);
      out.code[j] = a == 0.f ? 0.f : std::nearbyint((v - out.offset * m) / a);
    }
    return true;
  }

  void try_scales(int64_t row, int64_t group, const GroupCodes& g, float* values) override {
    std::memcpy(candidate_, block(row, group), c_.block_bytes);
    c_.set_scales(g.a.data(), g.m.data(), candidate_);
    float a[256 / 16], m[256 / 16], x[256];
    c_.sub_scales(candidate_, a, m);
    for (int j = 0; j < c_.block_weights; ++j)
      x[j] = a[j / c_.sub_block] * g.code[j] + g.offset * m[j / c_.sub_block];
    c_.requantize(x, candidate_);
    c_.dequantize(candidate_, values);
  }

  void keep_candidate(int64_t row, int64_t group) override {
    std::memcpy(block(row, group), candidate_, c_.block_bytes);
    const size_t s = static_cast<size_t>((row * groups_ + group) * subs_);
    c_.sub_scales(block(row, group), &a_[s], &m_[s]);
  }

  int64_t sub_group_size() const override { return c_.set_sub_levels ? c_.sub_block : 0; }

  // The sub-block's (scale, min) levels with the smallest importance-weighted rounding error of w,
  // searched near the ones the group's scale search chose (d and dmin fixed): within 8 levels, or
  // 1/16 of the level range for Q6_K's finer int8 levels (on tiny-llama-bpe-7m's q4_k_m, 8
  // levels lower the objective 0.7% more than 4, and 12 no more than 8).
  void choose_sub_scales(int64_t group, int64_t sub, int64_t first_row, const float* w,
                         int64_t rows, int64_t ld, const float* importance) override {
    if (!c_.set_sub_levels) return;
    const int reach = std::max(8, (c_.level_hi - c_.level_lo + 1) / 16);
    const int n = c_.sub_block;
    std::vector<float> qw = importance ? floored_importance(importance, n)
                                       : std::vector<float>(static_cast<size_t>(n), 1.0f);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t r = first_row + i;
      uint8_t* b = block(r, group);
      float d = 0, dmin = 0;
      c_.scale_steps(b, &d, &dmin);
      int ls0 = 0, lm0 = 0;
      c_.sub_levels(b, static_cast<int>(sub), &ls0, &lm0);
      const float* x = w + i * ld;
      const auto error = [&](int ls, int lm) {
        const float a = d * static_cast<float>(ls), m = dmin * static_cast<float>(lm);
        double e = 0;
        for (int j = 0; j < n; ++j) {
          const double diff = x[j] - gguf::round_element(c_, a, m, x[j]);
          e += qw[j] * diff * diff;
        }
        return e;
      };
      int best_ls = ls0, best_lm = lm0;
      double best = error(ls0, lm0);
      // Without offsets (dmin = 0) only the scale is searched.
      const int lm_reach = dmin != 0.f ? reach : 0;
      for (int ls = std::max(c_.level_lo, ls0 - reach); ls <= std::min(c_.level_hi, ls0 + reach);
           ++ls)
        for (int lm = std::max(c_.level_lo, lm0 - lm_reach);
             lm <= std::min(c_.level_hi, lm0 + lm_reach); ++lm) {
          const double e = error(ls, lm);
          if (e < best) best = e, best_ls = ls, best_lm = lm;
        }
      if (best_ls == ls0 && best_lm == lm0) continue;
      c_.set_sub_levels(b, static_cast<int>(sub), best_ls, best_lm);
      const size_t s0 = static_cast<size_t>((r * groups_ + group) * subs_);
      c_.sub_scales(b, &a_[s0], &m_[s0]);
    }
  }

  std::vector<std::byte> pack(const float* values) const override {
    std::vector<std::byte> out(static_cast<size_t>(rows_ * groups_ * c_.block_bytes));
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t g = 0; g < groups_; ++g) {
        auto* dst = reinterpret_cast<uint8_t*>(out.data()) + (r * groups_ + g) * c_.block_bytes;
        std::memcpy(dst, block(r, g), c_.block_bytes);
        c_.requantize(values + r * cols_ + g * c_.block_weights, dst);
      }
    return out;
  }

 private:
  uint8_t* block(int64_t r, int64_t g) {
    return blocks_.data() + (r * groups_ + g) * c_.block_bytes;
  }
  const uint8_t* block(int64_t r, int64_t g) const {
    return blocks_.data() + (r * groups_ + g) * c_.block_bytes;
  }
  const TypeCodec& c_;
  int64_t rows_, cols_, groups_, subs_;
  std::vector<uint8_t> blocks_;
  std::vector<float> a_, m_;  // per (row, group, sub-block): scale and offset (see gguf::Offset)
  uint8_t candidate_[kMaxBlockBytes] = {};  // try_scales' block, until keep_candidate
};

class GgufFormat final : public Format {
 public:
  explicit GgufFormat(const TypeCodec& c) : c_(c) {
    check(c.block_bytes <= kMaxBlockBytes && c.block_weights <= 256, "{}: block too large", c.name);
    info_.name = c.name;
    info_.family = "gguf";
    info_.block = c.block_weights;
    info_.row_multiple = c.block_weights;
    info_.bits_per_weight = 8.0 * c.block_bytes / c.block_weights;
    info_.element_bits = static_cast<int>(info_.bits_per_weight);
    const std::string n = c.name;
    info_.element = n.rfind("iq4", 0) == 0 ? "iq4_nl codebook x int8 levels"
                                           : fmt::format("ggml {} block ({} bytes / {} weights)", n,
                                                         c.block_bytes, c.block_weights);
    info_.scale = n.find("_k") != std::string::npos || n == "iq4_xs"
                      ? "fp16 super-block + packed sub-block scales"
                  : (n == "q4_1" || n == "q5_1") ? "fp16 scale + fp16 min"
                                                 : "fp16";
  }
  const FormatInfo& info() const override { return info_; }
  size_t row_bytes(int64_t cols) const override {
    return static_cast<size_t>((cols / c_.block_weights) * c_.block_bytes);
  }
  std::unique_ptr<GroupQuantizer> make_quantizer(const float*, int64_t rows,
                                                 int64_t cols) const override {
    check_shape("(tensor)", rows, cols);
    return std::make_unique<GgufQuantizer>(c_, rows, cols);
  }
  // Block by block with llama.cpp's scale search (no per-element requantization); with per-column
  // importances, its importance-weighted search where that is better (see encode_block).
  std::vector<std::byte> encode(const float* w, int64_t rows, int64_t cols,
                                const float* importance) const override {
    check_shape("(tensor)", rows, cols);
    std::vector<std::byte> out(encoded_bytes(rows, cols));
    auto* p = reinterpret_cast<uint8_t*>(out.data());
    const int64_t per_row = cols / c_.block_weights, blocks = rows * per_row;
    std::vector<float> floored;
    if (importance) floored = floored_importance(importance, cols);
    for (int64_t b = 0; b < blocks; ++b) {
      const float* qw = importance ? floored.data() + (b % per_row) * c_.block_weights : nullptr;
      encode_block(c_, w + b * c_.block_weights, qw, p + b * c_.block_bytes);
    }
    return out;
  }
  void decode_rows(const std::byte*, const std::byte* data, int64_t rows, int64_t cols,
                   float* out) const override {
    if (!simd_) return decode_reference(data, rows, cols, out);
    simd::decode_gguf(*simd_, reinterpret_cast<const uint8_t*>(data),
                      rows * (cols / c_.block_weights), out);
  }
  void decode_reference(const std::byte* data, int64_t rows, int64_t cols,
                        float* out) const override {
    const auto* p = reinterpret_cast<const uint8_t*>(data);
    const int64_t blocks = rows * (cols / c_.block_weights);
    for (int64_t b = 0; b < blocks; ++b)
      c_.dequantize(p + b * c_.block_bytes, out + b * c_.block_weights);
  }

 private:
  const TypeCodec& c_;
  std::optional<simd::GgufType> simd_ = simd::gguf_type(c_.name);
  FormatInfo info_;
};

}  // namespace

std::vector<std::string> gguf_format_names() {
  int n = 0;
  const TypeCodec* const* all = gguf::all_codecs(&n);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back(all[i]->name);
  return names;
}

std::unique_ptr<Format> make_gguf_format(const std::string& name) {
  const TypeCodec* c = gguf::find_codec(name);
  return c ? std::make_unique<GgufFormat>(*c) : nullptr;
}

}  // namespace qforge::formats
