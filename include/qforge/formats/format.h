// Numeric formats: an element grid (int4, e2m1, an NF4 codebook, ...), a scale policy (per tensor,
// row or block; scale dtype fp16/bf16/fp32/e8m0/e4m3; how scales are chosen) and a storage layout
// (how codes and scales are packed). Algorithms talk to GroupQuantizer (grid + scales); kernels and
// files talk to the bytes. Every format is found by name in one registry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qforge::formats {

struct FormatInfo {
  std::string name;     // registry name, e.g. "int4-g128", "mxfp4", "q4_k"
  std::string element;  // element grid, e.g. "int4 [-8, 7]", "e2m1", "nf4 codebook"
  int element_bits = 0;
  int64_t block = 0;  // weights sharing a scale along a row; 0 = the whole row, -1 = tensor
  std::string scale;  // scale type and rule, e.g. "fp16 absmax/7.5", "e8m0 (MX)"
  double bits_per_weight = 0;    // exact, every per-block scale/zero included
  int tensor_overhead_bits = 0;  // per-tensor extras (e.g. NVFP4's fp32 global scale), not in bpw
  int64_t row_multiple = 1;      // a row length must be a multiple of this
  std::string family;            // "int", "minifloat", "mx", "nvfp4", "nf4", "gguf"
};

// A group's quantized values with their codes fixed, as a linear function of the group's scales:
// value[j] = a[s] * code[j] + offset * m[s], s = j / sub_block. What a scale refit after GPTQ
// solves over (quant/scale_refit.h).
struct GroupCodes {
  int64_t sub_block = 0;    // weights sharing one (a, m)
  float offset = 0;         // +1 (value = a·L + m), -1 (a·L − m) or 0 (no offset)
  std::vector<float> code;  // per weight: its integer level, or its codebook value
  std::vector<float> a, m;  // per sub-block: the scale and offset in use
  // Spacing of the representable values of a and m when they are integer levels of a super-block
  // scale (0: not leveled, e.g. one fp16 scale per group).
  float a_step = 0, m_step = 0;
};

// The scale state of one tensor being quantized, as the algorithms drive it: scales of a group
// of columns are chosen (default rule, optionally weighted by per-column importance), then values
// are rounded one at a time to the grid under those scales (GPTQ rounds column by column with
// error feedback in between), then everything is packed.
class GroupQuantizer {
 public:
  virtual ~GroupQuantizer() = default;
  // Columns sharing scales along a row (the format's block; whole row for per-row/tensor scales).
  virtual int64_t group_size() const = 0;
  // Chooses group `group`'s scales for rows [first_row, first_row + rows) of the tensor from w
  // [rows, width] (row stride ld). Rows never share scales, so disjoint row ranges may be chosen
  // from different threads at once. importance: per-column weights for a weighted-error search
  // (may be null).
  virtual void choose_scales(int64_t group, int64_t first_row, const float* w, int64_t rows,
                             int64_t width, int64_t ld, const float* importance) = 0;
  // Nearest representable value of v at (row, col) under the chosen scales of col's group.
  virtual float round(int64_t row, int64_t col, float v) const = 0;
  // Packs values (rows x cols, on the grid under the chosen scales) into the format's bytes.
  virtual std::vector<std::byte> pack(const float* values) const = 0;

  // Optional, for refitting scales to fixed codes (formats whose groups have sub-block scales
  // and offsets: the GGUF block types). The codes of a full group's values (on its grid) and its
  // scales; false when the format does not support it.
  virtual bool group_codes(int64_t /*row*/, int64_t /*group*/, const float* /*values*/,
                           GroupCodes& /*out*/) const {
    return false;
  }
  // Quantizes the scales g.a, g.m into the format's scale fields as a candidate for (row, group)
  // and writes the values of g.code under them, exactly as the packed group will decode.
  virtual void try_scales(int64_t /*row*/, int64_t /*group*/, const GroupCodes& /*g*/,
                          float* /*values*/) {}
  // Makes the last candidate of try_scales the group's scales.
  virtual void keep_candidate(int64_t /*row*/, int64_t /*group*/) {}

  // Optional, for formats whose groups hold sub-blocks with their own scale levels under the
  // group's shared scale (k-quants): the sub-block width (0: none), and re-choosing sub-block
  // `sub` of `group` for rows [first_row, first_row + rows) from w [rows, sub_group_size()] (row
  // stride ld), the group's shared scales kept. GPTQ calls it when it reaches the sub-block, so
  // that its scale sees the error feedback from the group's earlier columns.
  virtual int64_t sub_group_size() const { return 0; }
  virtual void choose_sub_scales(int64_t /*group*/, int64_t /*sub*/, int64_t /*first_row*/,
                                 const float* /*w*/, int64_t /*rows*/, int64_t /*ld*/,
                                 const float* /*importance*/) {}
};

class Format {
 public:
  virtual ~Format() = default;
  virtual const FormatInfo& info() const = 0;
  const std::string& name() const { return info().name; }
  // Bytes of an encoded [rows, cols] tensor.
  size_t encoded_bytes(int64_t rows, int64_t cols) const {
    return header_bytes() + static_cast<size_t>(rows) * row_bytes(cols);
  }
  // Scale state for tensor w [rows, cols] (the whole original tensor: per-tensor scales come
  // from it). Call check_shape first.
  virtual std::unique_ptr<GroupQuantizer> make_quantizer(const float* w, int64_t rows,
                                                         int64_t cols) const = 0;
  // Every format lays a tensor out as header_bytes() of per-tensor scales (most have none), then
  // the rows, each row_bytes(cols) long: any range of rows can be read without the others.
  virtual size_t header_bytes() const { return 0; }
  virtual size_t row_bytes(int64_t cols) const = 0;
  // Rows of a tensor -> f32 [rows, cols]: `header` is the tensor's header (null when the format has
  // none), `data` the first row to decode. SIMD where the format has a fast path.
  virtual void decode_rows(const std::byte* header, const std::byte* data, int64_t rows,
                           int64_t cols, float* out) const = 0;
  // Decoding a few tokens without storing the weights: for rows [0, rows) from `data` (header as
  // for decode_rows) and n_tokens inputs x [n_tokens, cols], y[t * ldy + r] = row r . x[t].
  // The weights are the ones decode_rows writes; only the summation order differs. Returns false
  // (nothing written) when the format has no such kernel (has_fused_dot() false): the caller
  // decodes, then dots.
  virtual bool has_fused_dot() const { return false; }
  virtual bool dot_rows(const std::byte* /*header*/, const std::byte* /*data*/, int64_t /*rows*/,
                        int64_t /*cols*/, const float* /*x*/, int64_t /*n_tokens*/, float* /*y*/,
                        int64_t /*ldy*/) const {
    return false;
  }
  // A whole tensor (header included) -> f32 [rows, cols].
  void decode(const std::byte* data, int64_t rows, int64_t cols, float* out) const {
    decode_rows(data, data + header_bytes(), rows, cols, out);
  }
  // The scalar decoder, one element at a time: the definition decode() equals bit for bit.
  virtual void decode_reference(const std::byte* data, int64_t rows, int64_t cols,
                                float* out) const = 0;

  // Round-to-nearest with the default scale rule (optionally importance-weighted).
  virtual std::vector<std::byte> encode(const float* w, int64_t rows, int64_t cols,
                                        const float* importance = nullptr) const;
  // Refuses a row length the format cannot take, naming the tensor and the rule.
  void check_shape(const std::string& tensor, int64_t rows, int64_t cols) const;
};

// Finds a format by name; an unknown name throws Error listing the known ones.
const Format& find_format(std::string_view name);
// Every registered format, in a stable order (the `qforge formats` table).
std::vector<const Format*> all_formats();

}  // namespace qforge::formats
