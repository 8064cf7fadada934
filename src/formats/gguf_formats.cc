#include "formats/gguf_formats.h"

#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "formats/gguf_codec.h"
#include "formats/simd_decode.h"
#include "qforge/core/error.h"

namespace qforge::formats {
namespace {

using gguf::TypeCodec;

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

  void choose_scales(int64_t group, const float* w, int64_t rows, int64_t width, int64_t ld,
                     const float* importance) override {
    (void)importance;  // llama.cpp's importance-weighted searches are not implemented yet
    std::vector<float> x(static_cast<size_t>(c_.block_weights), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(w + r * ld, w + r * ld + width, x.begin());
      c_.quantize(x.data(), block(r, group));
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
};

class GgufFormat final : public Format {
 public:
  explicit GgufFormat(const TypeCodec& c) : c_(c) {
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
  // Block by block with llama.cpp's scale search (no per-element requantization).
  std::vector<std::byte> encode(const float* w, int64_t rows, int64_t cols,
                                const float*) const override {
    check_shape("(tensor)", rows, cols);
    std::vector<std::byte> out(encoded_bytes(rows, cols));
    auto* p = reinterpret_cast<uint8_t*>(out.data());
    const int64_t blocks = rows * (cols / c_.block_weights);
    for (int64_t b = 0; b < blocks; ++b)
      c_.quantize(w + b * c_.block_weights, p + b * c_.block_bytes);
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
