#include "formats/block_formats.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "formats/simd_decode.h"
#include "qforge/core/dtype.h"
#include "qforge/core/error.h"

namespace qforge::formats {

const float kNf4Levels[16] = {-1.0f,
                              -0.6961928009986877f,
                              -0.5250730514526367f,
                              -0.39491748809814453f,
                              -0.28444138169288635f,
                              -0.18477343022823334f,
                              -0.09105003625154495f,
                              0.0f,
                              0.07958029955625534f,
                              0.16093020141124725f,
                              0.24611230194568634f,
                              0.33791524171829224f,
                              0.44070982933044434f,
                              0.5626170039176941f,
                              0.7229568362236023f,
                              1.0f};

int scale_bytes(ScaleType t) {
  switch (t) {
    case ScaleType::F16:
    case ScaleType::BF16:
      return 2;
    case ScaleType::F32:
      return 4;
    case ScaleType::E8M0:
    case ScaleType::NvFp4:
      return 1;
  }
  return 0;
}

namespace {

const char* scale_name(ScaleType t) {
  switch (t) {
    case ScaleType::F16:
      return "fp16";
    case ScaleType::BF16:
      return "bf16";
    case ScaleType::F32:
      return "fp32";
    case ScaleType::E8M0:
      return "e8m0";
    case ScaleType::NvFp4:
      return "e4m3 + fp32 per tensor";
  }
  return "?";
}

// Rounds a positive scale to what its storage type can hold (never to zero or infinity).
float round_scale(float s, ScaleType t) {
  switch (t) {
    case ScaleType::F16: {
      float r = f16_to_f32(f32_to_f16(s));
      if (r == 0.0f) r = f16_to_f32(1);  // smallest subnormal
      if (std::isinf(r)) r = 65504.0f;
      return r;
    }
    case ScaleType::BF16: {
      float r = bf16_to_f32(f32_to_bf16(s));
      return r == 0.0f ? bf16_to_f32(1) : r;
    }
    default:
      return s;
  }
}

void store_scale(float s, ScaleType t, std::byte* p) {
  if (t == ScaleType::F16) {
    const uint16_t h = f32_to_f16(s);
    std::memcpy(p, &h, 2);
  } else if (t == ScaleType::BF16) {
    const uint16_t h = f32_to_bf16(s);
    std::memcpy(p, &h, 2);
  } else {
    std::memcpy(p, &s, 4);
  }
}

float load_scale(const std::byte* p, ScaleType t) {
  uint16_t h;
  float f;
  switch (t) {
    case ScaleType::F16:
      std::memcpy(&h, p, 2);
      return f16_to_f32(h);
    case ScaleType::BF16:
      std::memcpy(&h, p, 2);
      return bf16_to_f32(h);
    case ScaleType::F32:
      std::memcpy(&f, p, 4);
      return f;
    case ScaleType::E8M0:
      return e8m0_decode(static_cast<uint8_t>(*p));
    case ScaleType::NvFp4:
      return kE4M3.decode(static_cast<uint8_t>(*p));
  }
  return 0;
}

// LSB-first bit packing of `bits`-wide codes.
void put_bits(std::byte* base, int64_t index, int bits, uint32_t code) {
  const int64_t bit = index * bits;
  for (int k = 0; k < bits; ++k)
    if (code >> k & 1u) base[(bit + k) >> 3] |= static_cast<std::byte>(1u << ((bit + k) & 7));
}
uint32_t get_bits(const std::byte* base, int64_t index, int bits) {
  if (bits == 8) return static_cast<uint8_t>(base[index]);
  if (bits == 4) return (static_cast<uint8_t>(base[index >> 1]) >> ((index & 1) * 4)) & 0xFu;
  const int64_t bit = index * bits;
  uint32_t v = 0;
  for (int k = 0; k < bits; ++k)
    v |= ((static_cast<uint8_t>(base[(bit + k) >> 3]) >> ((bit + k) & 7)) & 1u) << k;
  return v;
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

class BlockFormat;

// Scales of one (row, group): the effective multiplier, its stored code (E8M0/E4M3), the zero.
struct GroupScale {
  float scale = 1.0f;
  uint8_t code = 0;
  int32_t zero = 0;
};

class BlockFormat final : public Format {
 public:
  explicit BlockFormat(BlockSpec spec) : s_(std::move(spec)) {
    FormatInfo& i = info_;
    i.name = s_.name;
    i.element_bits = s_.bits;
    switch (s_.element) {
      case Element::IntSym:
        i.element = fmt::format("int{} [{}, {}]", s_.bits, qmin(), qmax());
        break;
      case Element::IntAsym:
        i.element = fmt::format("uint{} [0, {}] - zero", s_.bits, (1 << s_.bits) - 1);
        break;
      case Element::Mini:
        i.element = s_.mini->name;
        break;
      case Element::NF4:
        i.element = "nf4 (16-level normal codebook)";
        break;
      case Element::MxInt8:
        i.element = "int8 x 2^-6 [-127, 127]";
        break;
    }
    i.family = s_.scale == ScaleType::E8M0    ? "mx"
               : s_.scale == ScaleType::NvFp4 ? "nvfp4"
               : s_.element == Element::NF4   ? "nf4"
               : s_.element == Element::Mini  ? "minifloat"
                                              : "int";
    const int zero_bits = s_.element == Element::IntAsym ? 8 : 0;
    const int per_scale_bits = 8 * scale_bytes(s_.scale) + zero_bits;
    switch (s_.granularity) {
      case Granularity::Block:
        i.block = s_.block;
        i.row_multiple = s_.block;
        i.bits_per_weight = s_.bits + static_cast<double>(per_scale_bits) / s_.block;
        break;
      case Granularity::Row:
        i.block = 0;
        i.bits_per_weight = s_.bits;  // + one scale per row (see encoded_bytes)
        break;
      case Granularity::Tensor:
        i.block = -1;
        i.bits_per_weight = s_.bits;
        i.tensor_overhead_bits = per_scale_bits;
        break;
    }
    if (s_.scale == ScaleType::NvFp4) i.tensor_overhead_bits = 32;
    i.scale = scale_name(s_.scale);
  }

  const FormatInfo& info() const override { return info_; }

  std::unique_ptr<GroupQuantizer> make_quantizer(const float* w, int64_t rows,
                                                 int64_t cols) const override;
  void decode_rows(const std::byte* header, const std::byte* data, int64_t rows, int64_t cols,
                   float* out) const override;
  // Fused kernels for 4- and 8-bit codes (the SIMD decoders' table lookups and conversions).
  bool has_fused_dot() const override { return s_.bits == 4 || s_.bits == 8; }
  bool dot_rows(const std::byte* header, const std::byte* data, int64_t rows, int64_t cols,
                const float* x, int64_t n_tokens, float* y, int64_t ldy) const override;
  void decode_reference(const std::byte* data, int64_t rows, int64_t cols,
                        float* out) const override {
    decode_rows_reference(data, data + header_bytes(), rows, cols, out);
  }

  // --- element grid
  int qmin() const { return -(1 << (s_.bits - 1)); }
  int qmax() const { return (1 << (s_.bits - 1)) - 1; }
  int64_t group_width(int64_t cols) const {
    return s_.granularity == Granularity::Block ? s_.block : cols;
  }
  bool per_tensor() const { return s_.granularity == Granularity::Tensor; }
  size_t scale_zero_bytes() const {
    return static_cast<size_t>(scale_bytes(s_.scale)) + (s_.element == Element::IntAsym ? 1 : 0);
  }
  size_t header_bytes() const override {
    if (s_.scale == ScaleType::NvFp4) return 4;
    return per_tensor() ? scale_zero_bytes() : 0;
  }
  size_t group_bytes(int64_t width) const {
    return (per_tensor() ? 0 : scale_zero_bytes()) + static_cast<size_t>((width * s_.bits + 7) / 8);
  }
  size_t row_bytes(int64_t cols) const override {
    const int64_t g = group_width(cols);
    return static_cast<size_t>(cols / g) * group_bytes(g);
  }

  // Code of v under scale gs, and the value that code stands for.
  uint32_t to_code(float v, const GroupScale& gs) const {
    const float x = v / gs.scale;
    switch (s_.element) {
      case Element::IntSym:
        return static_cast<uint32_t>(
            std::clamp(static_cast<int>(std::nearbyint(x)), qmin(), qmax()) - qmin());
      case Element::IntAsym:
        return static_cast<uint32_t>(
            std::clamp(static_cast<int>(std::nearbyint(x)) + gs.zero, 0, (1 << s_.bits) - 1));
      case Element::Mini:
        return s_.mini->encode(x, /*saturate=*/true);
      case Element::NF4: {
        int best = 0;
        for (int k = 1; k < 16; ++k)
          if (std::fabs(kNf4Levels[k] - x) < std::fabs(kNf4Levels[best] - x)) best = k;
        return static_cast<uint32_t>(best);
      }
      case Element::MxInt8:
        return static_cast<uint32_t>(
                   std::clamp(static_cast<int>(std::nearbyint(x * 64.0f)), -127, 127)) &
               0xFFu;
    }
    return 0;
  }
  float unit_value(uint32_t code, int32_t zero) const {
    switch (s_.element) {
      case Element::IntSym:
        return static_cast<float>(static_cast<int>(code) + qmin());
      case Element::IntAsym:
        return static_cast<float>(static_cast<int>(code) - zero);
      case Element::Mini:
        return s_.mini->decode(code);
      case Element::NF4:
        return kNf4Levels[code & 15];
      case Element::MxInt8:
        return static_cast<float>(static_cast<int8_t>(code)) / 64.0f;
    }
    return 0;
  }
  float value(uint32_t code, const GroupScale& gs) const {
    return unit_value(code, gs.zero) * gs.scale;
  }

  // Default scale rule for a group with the given extremes (tensor_scale: NVFP4's global).
  GroupScale choose(float lo, float hi, float tensor_scale, float shrink = 1.0f) const {
    GroupScale g;
    const float amax = std::max(std::fabs(lo), std::fabs(hi)) * shrink;
    switch (s_.scale) {
      case ScaleType::E8M0: {  // MX: X = 2^(floor(log2(amax)) - emax_elem)
        const int emax = s_.element == Element::MxInt8 ? 0 : s_.mini->emax();
        int e = (amax > 0 ? static_cast<int>(std::floor(std::log2(amax))) : 0) - emax;
        e = std::clamp(e, -127, 127);
        g.code = static_cast<uint8_t>(e + 127);
        g.scale = e8m0_decode(g.code);
        return g;
      }
      case ScaleType::NvFp4: {  // block scale in E4M3 relative to the tensor's global scale
        g.code = static_cast<uint8_t>(kE4M3.encode(amax / 6.0f / tensor_scale, true));
        g.scale = kE4M3.decode(g.code) * tensor_scale;
        if (g.scale == 0.0f) g.scale = tensor_scale;  // an all-zero block: any scale works
        return g;
      }
      default:
        break;
    }
    float s;
    switch (s_.element) {
      case Element::IntSym:
        s = amax / (static_cast<float>((1 << s_.bits) - 1) / 2.0f);
        break;
      case Element::IntAsym: {
        const float mn = std::min(lo * shrink, 0.0f), mx = std::max(hi * shrink, 0.0f);
        s = (mx - mn) / static_cast<float>((1 << s_.bits) - 1);
        if (s <= 0.0f) s = 1.0f;
        s = round_scale(s, s_.scale);
        g.scale = s;
        g.zero = std::clamp(static_cast<int>(std::nearbyint(-mn / s)), 0, (1 << s_.bits) - 1);
        return g;
      }
      case Element::Mini:
        s = amax / s_.mini->max_finite();
        break;
      case Element::NF4:
        s = amax;
        break;
      default:
        s = amax;
        break;
    }
    if (!(s > 0.0f) || !std::isfinite(s)) s = 1.0f;  // an all-zero group
    g.scale = round_scale(s, s_.scale);
    return g;
  }

  const BlockSpec& spec() const { return s_; }

 private:
  void read_header(const std::byte* p, GroupScale* tensor, float* global) const;
  // How decode_rows and dot_rows read a row's codes.
  struct RowCodes {
    enum class Kind : uint8_t { Bits, Nibbles, Bytes } kind = Kind::Bytes;
    float unit[32] = {};  // Nibbles: unit value of each code; Bits (FP6): of each magnitude
    simd::ByteCode byte_code = simd::ByteCode::MinusZero;
    simd::BitCode bit_code = simd::BitCode::MinusZero;
  };
  // Calls per_row(r, row, codes) for rows [0, rows), each row's groups with their scales and zeros.
  template <class PerRow>
  void for_each_row(const std::byte* header, const std::byte* data, int64_t rows, int64_t cols,
                    PerRow per_row) const;

  void decode_rows_reference(const std::byte* header, const std::byte* data, int64_t rows,
                             int64_t cols, float* out) const;
  GroupScale read_group_scale(const std::byte* p, float global) const;

  BlockSpec s_;
  FormatInfo info_;
};

class BlockQuantizer final : public GroupQuantizer {
 public:
  BlockQuantizer(const BlockFormat& f, const float* w, int64_t rows, int64_t cols)
      : f_(f),
        rows_(rows),
        cols_(cols),
        width_(f.group_width(cols)),
        groups_(cols / width_),
        scales_(static_cast<size_t>(rows * groups_)) {
    if (f.spec().scale == ScaleType::NvFp4 || f.per_tensor()) {
      float lo = 0, hi = 0;
      for (int64_t i = 0; i < rows * cols; ++i) {
        lo = std::min(lo, w[i]);
        hi = std::max(hi, w[i]);
      }
      if (f.spec().scale == ScaleType::NvFp4) {
        const float amax = std::max(-lo, hi);
        global_ = amax > 0 ? amax / (448.0f * 6.0f) : 1.0f;
        // compressed-tensors stores the reciprocal (weight_global_scale); nudge by an ulp or two
        // until the reciprocal round-trips, so both files decode to the same values.
        while (1.0f / (1.0f / global_) != global_) global_ = std::nextafter(global_, 1e30f);
      } else {
        tensor_ = f.choose(lo, hi, 1.0f);
        std::fill(scales_.begin(), scales_.end(), tensor_);
      }
    }
  }

  int64_t group_size() const override { return width_; }

  void choose_scales(int64_t group, int64_t first_row, const float* w, int64_t rows, int64_t width,
                     int64_t ld, const float* importance) override {
    if (f_.per_tensor()) return;  // fixed up front from the whole tensor
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = w + r * ld;
      float lo = 0, hi = 0;
      for (int64_t c = 0; c < width; ++c) {
        lo = std::min(lo, x[c]);
        hi = std::max(hi, x[c]);
      }
      GroupScale best = f_.choose(lo, hi, global_);
      if (importance != nullptr && f_.spec().scale != ScaleType::E8M0) {
        // Weighted-error search over clipping ratios (the hook GPTQ/AWQ use): keep the scale
        // whose importance-weighted squared error is lowest.
        double best_err = error(x, width, importance, best);
        for (float shrink = 0.95f; shrink > 0.74f; shrink -= 0.05f) {
          const GroupScale g = f_.choose(lo, hi, global_, shrink);
          const double e = error(x, width, importance, g);
          if (e < best_err) {
            best_err = e;
            best = g;
          }
        }
      }
      scales_[(first_row + r) * groups_ + group] = best;
    }
  }

  float round(int64_t row, int64_t col, float v) const override {
    const GroupScale& g = scales_[row * groups_ + col / width_];
    return f_.value(f_.to_code(v, g), g);
  }

  std::vector<std::byte> pack(const float* values) const override {
    std::vector<std::byte> out(f_.encoded_bytes(rows_, cols_));
    std::byte* p = out.data();
    const ScaleType st = f_.spec().scale;
    if (st == ScaleType::NvFp4) {
      std::memcpy(p, &global_, 4);
      p += 4;
    } else if (f_.per_tensor()) {
      store_scale(tensor_.scale, st, p);
      if (f_.spec().element == Element::IntAsym)
        p[scale_bytes(st)] = static_cast<std::byte>(tensor_.zero);
      p += f_.header_bytes();
    }
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t g = 0; g < groups_; ++g) {
        const GroupScale& gs = scales_[r * groups_ + g];
        if (!f_.per_tensor()) {
          if (st == ScaleType::E8M0 || st == ScaleType::NvFp4)
            p[0] = static_cast<std::byte>(gs.code);
          else
            store_scale(gs.scale, st, p);
          if (f_.spec().element == Element::IntAsym)
            p[scale_bytes(st)] = static_cast<std::byte>(gs.zero);
          p += f_.scale_zero_bytes();
        }
        const float* v = values + r * cols_ + g * width_;
        for (int64_t c = 0; c < width_; ++c) put_bits(p, c, f_.spec().bits, f_.to_code(v[c], gs));
        p += (width_ * f_.spec().bits + 7) / 8;
      }
    return out;
  }

 private:
  double error(const float* x, int64_t n, const float* imp, const GroupScale& g) const {
    double e = 0;
    for (int64_t c = 0; c < n; ++c) {
      const double d = x[c] - f_.value(f_.to_code(x[c], g), g);
      e += imp[c] * d * d;
    }
    return e;
  }

  const BlockFormat& f_;
  int64_t rows_, cols_, width_, groups_;
  std::vector<GroupScale> scales_;
  GroupScale tensor_;
  float global_ = 1.0f;
};

std::unique_ptr<GroupQuantizer> BlockFormat::make_quantizer(const float* w, int64_t rows,
                                                            int64_t cols) const {
  check_shape("(tensor)", rows, cols);
  return std::make_unique<BlockQuantizer>(*this, w, rows, cols);
}

// The header before the rows: the per-tensor scale (and zero), or NVFP4's global scale.
void BlockFormat::read_header(const std::byte* p, GroupScale* tensor, float* global) const {
  if (s_.scale == ScaleType::NvFp4) {
    std::memcpy(global, p, 4);
  } else if (per_tensor()) {
    tensor->scale = load_scale(p, s_.scale);
    if (s_.element == Element::IntAsym)
      tensor->zero = static_cast<uint8_t>(p[scale_bytes(s_.scale)]);
  }
}

GroupScale BlockFormat::read_group_scale(const std::byte* p, float global) const {
  GroupScale gs;
  const ScaleType st = s_.scale;
  gs.scale =
      st == ScaleType::NvFp4 ? nvfp4_group_scale(load_scale(p, st), global) : load_scale(p, st);
  if (s_.element == Element::IntAsym) gs.zero = static_cast<uint8_t>(p[scale_bytes(st)]);
  return gs;
}

void BlockFormat::decode_rows_reference(const std::byte* header, const std::byte* data,
                                        int64_t rows, int64_t cols, float* out) const {
  GroupScale tensor;
  float global = 1.0f;
  read_header(header, &tensor, &global);
  const std::byte* p = data;
  const bool asym = s_.element == Element::IntAsym;
  const int64_t width = group_width(cols), groups = cols / width;
  // Unit values of every code, so the inner loop is a lookup and a multiply.
  const int ncodes = 1 << s_.bits;
  std::vector<float> lut(static_cast<size_t>(ncodes));
  for (int c = 0; c < ncodes; ++c) lut[c] = unit_value(static_cast<uint32_t>(c), 0);
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * cols;
    for (int64_t g = 0; g < groups; ++g) {
      GroupScale gs = tensor;
      if (!per_tensor()) {
        gs = read_group_scale(p, global);
        p += scale_zero_bytes();
      }
      float* og = o + g * width;
      for (int64_t c = 0; c < width; ++c) {
        const uint32_t code = get_bits(p, c, s_.bits);
        og[c] = asym ? static_cast<float>(static_cast<int>(code) - gs.zero) * gs.scale
                     : lut[code] * gs.scale;
      }
      p += (width * s_.bits + 7) / 8;
    }
  }
}

template <class PerRow>
void BlockFormat::for_each_row(const std::byte* header, const std::byte* data, int64_t rows,
                               int64_t cols, PerRow per_row) const {
  GroupScale tensor;
  float global = 1.0f;
  read_header(header, &tensor, &global);
  const std::byte* p = data;
  const bool asym = s_.element == Element::IntAsym;
  const int64_t width = group_width(cols), groups = cols / width;
  const size_t prefix = per_tensor() ? 0 : scale_zero_bytes();
  // Per-thread buffers: this runs for every row range of every decode-sized product.
  thread_local std::vector<float> scales;
  thread_local std::vector<int32_t> zeros;
  scales.assign(static_cast<size_t>(groups), tensor.scale);
  zeros.assign(static_cast<size_t>(groups), tensor.zero);
  simd::RowGroups row{.codes = nullptr,
                      .stride = group_bytes(width),
                      .groups = groups,
                      .width = width,
                      .scales = scales.data(),
                      .zeros = zeros.data()};
  RowCodes codes;
  if (s_.bits != 4 && s_.bits != 8) {  // LSB-first codes of 2, 3, 5, 6 or 7 bits
    codes.kind = RowCodes::Kind::Bits;
    if (s_.element == Element::IntSym) std::fill(zeros.begin(), zeros.end(), -qmin());
    if (s_.element == Element::Mini) {  // FP6: sign and magnitude, like every MiniFloat
      codes.bit_code = simd::BitCode::SignMagnitude;
      for (int c = 0; c < 32; ++c) codes.unit[c] = unit_value(static_cast<uint32_t>(c), 0);
    }
  } else if (s_.bits == 4) {
    codes.kind = RowCodes::Kind::Nibbles;
    for (int c = 0; c < 16; ++c) codes.unit[c] = unit_value(static_cast<uint32_t>(c), 0);
    if (!asym) row.zeros = nullptr;
  } else if (s_.element == Element::IntSym) {
    std::fill(zeros.begin(), zeros.end(), -qmin());  // code = q - qmin
  } else if (s_.element == Element::MxInt8) {
    codes.byte_code = simd::ByteCode::MxInt8;
  } else if (s_.element == Element::Mini) {
    codes.byte_code = s_.mini->exp_bits == 4 ? simd::ByteCode::E4M3 : simd::ByteCode::E5M2;
  }
  const ScaleCodeValues& scale_table = scale_code_values();
  for (int64_t r = 0; r < rows; ++r) {
    row.codes = reinterpret_cast<const uint8_t*>(p + prefix);
    if (!per_tensor()) {
      // The row's group scales, one loop per scale type (this runs once per 16-128 weights).
      const auto* b = reinterpret_cast<const uint8_t*>(p);
      const size_t stride = row.stride;
      switch (s_.scale) {
        case ScaleType::F16:
          for (int64_t g = 0; g < groups; ++g) scales[g] = f16_to_f32(load_u16(b + g * stride));
          break;
        case ScaleType::BF16:
          for (int64_t g = 0; g < groups; ++g) scales[g] = bf16_to_f32(load_u16(b + g * stride));
          break;
        case ScaleType::F32:
          for (int64_t g = 0; g < groups; ++g) std::memcpy(&scales[g], b + g * stride, 4);
          break;
        case ScaleType::E8M0:
          for (int64_t g = 0; g < groups; ++g) scales[g] = scale_table.e8m0[b[g * stride]];
          break;
        case ScaleType::NvFp4:
          for (int64_t g = 0; g < groups; ++g)
            scales[g] = nvfp4_group_scale(scale_table.e4m3[b[g * stride]], global);
          break;
      }
      if (asym)
        for (int64_t g = 0; g < groups; ++g) zeros[g] = b[g * stride + scale_bytes(s_.scale)];
    }
    per_row(r, row, codes);
    p += groups * row.stride;
  }
}

void BlockFormat::decode_rows(const std::byte* header, const std::byte* data, int64_t rows,
                              int64_t cols, float* out) const {
  if (s_.bits != 4 && s_.bits != 8 && s_.element == Element::Mini && s_.bits != 6)
    return decode_rows_reference(header, data, rows, cols, out);
  const auto* end = reinterpret_cast<const uint8_t*>(data) + rows * row_bytes(cols);
  for_each_row(header, data, rows, cols,
               [&](int64_t r, const simd::RowGroups& row, const RowCodes& codes) {
                 switch (codes.kind) {
                   case RowCodes::Kind::Bits:
                     return simd::decode_row_bits(row, s_.bits, codes.bit_code, codes.unit, end,
                                                  out + r * cols);
                   case RowCodes::Kind::Nibbles:
                     return simd::decode_row_nibbles(row, codes.unit, out + r * cols);
                   case RowCodes::Kind::Bytes:
                     return simd::decode_row_bytes(row, codes.byte_code, out + r * cols);
                 }
               });
}

bool BlockFormat::dot_rows(const std::byte* header, const std::byte* data, int64_t rows,
                           int64_t cols, const float* x, int64_t n_tokens, float* y,
                           int64_t ldy) const {
  if (!has_fused_dot()) return false;
  std::array<float, 8> sums;
  for_each_row(
      header, data, rows, cols, [&](int64_t r, const simd::RowGroups& row, const RowCodes& codes) {
        for (int64_t t0 = 0; t0 < n_tokens; t0 += static_cast<int64_t>(sums.size())) {
          const int64_t nt = std::min<int64_t>(sums.size(), n_tokens - t0);
          const float* xt = x + t0 * cols;
          if (codes.kind == RowCodes::Kind::Nibbles)
            simd::dot_row_nibbles(row, codes.unit, xt, nt, static_cast<size_t>(cols), sums.data());
          else
            simd::dot_row_bytes(row, codes.byte_code, xt, nt, static_cast<size_t>(cols),
                                sums.data());
          for (int64_t t = 0; t < nt; ++t) y[(t0 + t) * ldy + r] = sums[t];
        }
      });
  return true;
}

}  // namespace

std::unique_ptr<Format> make_block_format(const BlockSpec& spec) {
  return std::make_unique<BlockFormat>(spec);
}

const ScaleCodeValues& scale_code_values() {
  static const ScaleCodeValues t = [] {
    ScaleCodeValues s;
    for (int c = 0; c < 256; ++c) {
      s.e8m0[c] = e8m0_decode(static_cast<uint8_t>(c));
      s.e4m3[c] = kE4M3.decode(static_cast<uint32_t>(c));
    }
    return s;
  }();
  return t;
}

const BlockSpec* block_spec(const Format& f) {
  const auto* b = dynamic_cast<const BlockFormat*>(&f);
  return b ? &b->spec() : nullptr;
}

std::vector<std::byte> Format::encode(const float* w, int64_t rows, int64_t cols,
                                      const float* importance) const {
  auto q = make_quantizer(w, rows, cols);
  const int64_t g = q->group_size();
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (int64_t c0 = 0, gi = 0; c0 < cols; c0 += g, ++gi) {
    const int64_t width = std::min(g, cols - c0);
    q->choose_scales(gi, 0, w + c0, rows, width, cols, importance ? importance + c0 : nullptr);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c0 + width; ++c)
        values[r * cols + c] = q->round(r, c, w[r * cols + c]);
  }
  return q->pack(values.data());
}

void Format::check_shape(const std::string& tensor, int64_t rows, int64_t cols) const {
  const FormatInfo& i = info();
  check(rows > 0 && cols > 0, "tensor '{}': empty shape [{}, {}]", tensor, rows, cols);
  check(cols % i.row_multiple == 0,
        "tensor '{}': row length {} is not a multiple of {} required by {}", tensor, cols,
        i.row_multiple, i.name);
}

}  // namespace qforge::formats
