#include "qforge/formats/compressed_tensors.h"

#include <cstring>

#include "formats/block_formats.h"
#include "qforge/core/error.h"

namespace qforge::formats {
namespace {

DType scale_dtype(ScaleType t) {
  switch (t) {
    case ScaleType::F16:
      return DType::F16;
    case ScaleType::BF16:
      return DType::BF16;
    case ScaleType::F32:
      return DType::F32;
    case ScaleType::E8M0:
    case ScaleType::NvFp4:
      return DType::U8;  // not used by a compressed-tensors scheme
  }
  return DType::U8;
}

bool is_nvfp4(const BlockSpec& s) {
  return s.scale == ScaleType::NvFp4;
}

// qforge's byte layout of a block format, as BlockFormat writes it: an optional header (NVFP4's
// f32 global scale, or a per-tensor scale), then for each row and group the group's scale (unless
// per tensor) followed by its packed codes.
struct Geometry {
  size_t header = 0, scale_bytes = 0, code_bytes = 0;  // code bytes per group
  int64_t width = 0, groups = 0;
};

Geometry geometry(const BlockSpec& s, int64_t cols) {
  Geometry g;
  g.width = s.granularity == Granularity::Block ? s.block : cols;
  g.groups = cols / g.width;
  g.scale_bytes = static_cast<size_t>(scale_bytes(s.scale));
  g.code_bytes = static_cast<size_t>(g.width * s.bits / 8);
  if (is_nvfp4(s)) {
    g.header = 4;
  } else if (s.granularity == Granularity::Tensor) {
    g.header = g.scale_bytes;
    g.scale_bytes = 0;  // no per-group scale
  }
  return g;
}

// Calls fn(offset of the group in qforge's bytes after the header, offset of its scale in
// weight_scale, offset of its codes in the packed codes) for every (row, group) in order.
template <typename F>
void for_each_group(const Geometry& g, int64_t rows, F&& fn) {
  size_t packed = 0, scale = 0, code = 0;
  for (int64_t i = 0; i < rows * g.groups; ++i) {
    fn(packed, scale, code);
    packed += g.scale_bytes + g.code_bytes;
    scale += g.scale_bytes;
    code += g.code_bytes;
  }
}

std::vector<int64_t> scale_shape(const BlockSpec& s, int64_t rows, int64_t groups) {
  if (s.granularity == Granularity::Tensor) return {1};
  if (s.granularity == Granularity::Row) return {rows, 1};
  return {rows, groups};
}

}  // namespace

std::optional<CtScheme> compressed_tensors_scheme(const Format& f, int64_t rows, int64_t cols,
                                                  bool activations_quantized) {
  const BlockSpec* s = block_spec(f);
  if (s == nullptr || rows <= 0 || cols <= 0 || cols % f.info().row_multiple != 0)
    return std::nullopt;
  const bool float_scale =
      s->scale == ScaleType::F16 || s->scale == ScaleType::BF16 || s->scale == ScaleType::F32;
  const char* strategy = s->granularity == Granularity::Tensor ? "tensor"
                         : s->granularity == Granularity::Row  ? "channel"
                                                               : "group";
  CtScheme c;
  if (activations_quantized && s->element == Element::IntSym && s->bits == 8 && float_scale) {
    c.format = "int-quantized";
    c.num_bits = 8;
    c.type = "int";
    c.strategy = strategy;
    c.group_size = s->granularity == Granularity::Block ? s->block : 0;
    return c;
  }
  if (s->element == Element::IntSym && (s->bits == 4 || s->bits == 8) && float_scale &&
      cols * s->bits % 32 == 0) {
    c.format = "pack-quantized";
    c.num_bits = s->bits;
    c.type = "int";
    c.strategy = strategy;
    c.group_size = s->granularity == Granularity::Block ? s->block : 0;
    return c;
  }
  if (s->element == Element::Mini && s->mini == &kE4M3 && float_scale &&
      s->granularity != Granularity::Block) {
    c.format = "float-quantized";
    c.num_bits = 8;
    c.type = "float";
    c.strategy = strategy;
    return c;
  }
  if (is_nvfp4(*s) && s->block == 16) {
    c.format = "nvfp4-pack-quantized";
    c.num_bits = 4;
    c.type = "float";
    c.strategy = "tensor_group";
    c.group_size = 16;
    return c;
  }
  return std::nullopt;
}

std::vector<CtTensor> compressed_tensors_layout(const Format& f, int64_t rows, int64_t cols,
                                                bool activations_quantized) {
  const auto scheme = compressed_tensors_scheme(f, rows, cols, activations_quantized);
  check(scheme.has_value(), "format {} has no compressed-tensors scheme for a [{}, {}] weight",
        f.name(), rows, cols);
  const BlockSpec& s = *block_spec(f);
  const Geometry g = geometry(s, cols);
  if (scheme->format == "pack-quantized")
    return {{"weight_packed", DType::I32, {rows, cols * s.bits / 32}, {}},
            {"weight_scale", scale_dtype(s.scale), scale_shape(s, rows, g.groups), {}},
            {"weight_shape", DType::I64, {2}, {}}};
  if (scheme->format == "int-quantized")
    return {{"weight", DType::I8, {rows, cols}, {}},
            {"weight_scale", scale_dtype(s.scale), scale_shape(s, rows, g.groups), {}}};
  if (scheme->format == "float-quantized")
    return {{"weight", DType::F8_E4M3, {rows, cols}, {}},
            {"weight_scale", scale_dtype(s.scale), scale_shape(s, rows, g.groups), {}}};
  return {{"weight_packed", DType::U8, {rows, cols / 2}, {}},
          {"weight_scale", DType::F8_E4M3, {rows, g.groups}, {}},
          {"weight_global_scale", DType::F32, {1}, {}}};
}

namespace {
// int-quantized stores q as int8; qforge's symmetric int8 code is q + 128: the two differ in the
// top bit only.
void flip_top_bits(std::vector<std::byte>& codes) {
  for (std::byte& b : codes) b ^= std::byte{0x80};
}
}  // namespace

std::vector<CtTensor> to_compressed_tensors(const Format& f, const std::byte* packed, int64_t rows,
                                            int64_t cols, bool activations_quantized) {
  std::vector<CtTensor> out = compressed_tensors_layout(f, rows, cols, activations_quantized);
  const BlockSpec& s = *block_spec(f);
  const Geometry g = geometry(s, cols);
  for (CtTensor& t : out) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    t.data.resize(n);
  }
  std::byte* codes = out[0].data.data();
  std::byte* scales = out[1].data.data();
  const std::byte* p = packed;
  if (is_nvfp4(s)) {
    float global;
    std::memcpy(&global, p, 4);
    const float reciprocal = 1.0f / global;
    std::memcpy(out[2].data.data(), &reciprocal, 4);
  } else if (s.granularity == Granularity::Tensor) {
    std::memcpy(scales, p, g.header);
  }
  p += g.header;
  for_each_group(g, rows, [&](size_t packed_at, size_t scale_at, size_t code_at) {
    std::memcpy(scales + scale_at, p + packed_at, g.scale_bytes);
    std::memcpy(codes + code_at, p + packed_at + g.scale_bytes, g.code_bytes);
  });
  if (out[0].suffix == "weight" && out[0].dtype == DType::I8) flip_top_bits(out[0].data);
  if (out[0].suffix == "weight_packed" && out.size() == 3 && out[2].suffix == "weight_shape") {
    const int64_t shape[2] = {rows, cols};
    std::memcpy(out[2].data.data(), shape, sizeof shape);
  }
  return out;
}

std::vector<std::byte> from_compressed_tensors(
    const Format& f, int64_t rows, int64_t cols,
    const std::function<std::span<const std::byte>(const std::string& suffix)>& get,
    bool activations_quantized) {
  const std::vector<CtTensor> layout =
      compressed_tensors_layout(f, rows, cols, activations_quantized);
  std::vector<std::span<const std::byte>> in;
  for (const CtTensor& t : layout) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    in.push_back(get(t.suffix));
    check(in.back().size() == n,
          "compressed-tensors '{}' of a [{}, {}] {} weight holds {} bytes, expected {}", t.suffix,
          rows, cols, f.name(), in.back().size(), n);
  }
  const BlockSpec& s = *block_spec(f);
  const Geometry g = geometry(s, cols);
  std::vector<std::byte> out(f.encoded_bytes(rows, cols));
  std::byte* p = out.data();
  std::vector<std::byte> int8_codes;  // int-quantized: back to qforge's q + 128
  if (layout[0].dtype == DType::I8) {
    int8_codes.assign(in[0].begin(), in[0].end());
    flip_top_bits(int8_codes);
    in[0] = int8_codes;
  }
  const std::byte* codes = in[0].data();
  const std::byte* scales = in[1].data();
  if (is_nvfp4(s)) {
    float reciprocal;
    std::memcpy(&reciprocal, in[2].data(), 4);
    const float global = 1.0f / reciprocal;
    std::memcpy(p, &global, 4);
  } else if (s.granularity == Granularity::Tensor) {
    std::memcpy(p, scales, g.header);
  }
  p += g.header;
  for_each_group(g, rows, [&](size_t packed_at, size_t scale_at, size_t code_at) {
    std::memcpy(p + packed_at, scales + scale_at, g.scale_bytes);
    std::memcpy(p + packed_at + g.scale_bytes, codes + code_at, g.code_bytes);
  });
  return out;
}

}  // namespace qforge::formats
