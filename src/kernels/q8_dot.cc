#include "kernels/q8_dot.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/q8_layouts.h"
#include "qforge/core/error.h"
#include "qforge/formats/format.h"

namespace qforge::kernels::q8 {

bool int_groups(const Matrix& w, IntGroups* g) {
  const formats::BlockSpec* s = formats::block_spec(*w.format);
  if (s == nullptr || s->element != formats::Element::IntSym || (s->bits != 4 && s->bits != 8))
    return false;
  if (s->granularity == formats::Granularity::Tensor) return false;
  if (s->scale != formats::ScaleType::F16 && s->scale != formats::ScaleType::BF16 &&
      s->scale != formats::ScaleType::F32)
    return false;
  g->bits = s->bits;
  g->width = s->granularity == formats::Granularity::Row ? w.cols : s->block;
  g->scale = s->scale;
  g->scale_bytes = static_cast<size_t>(formats::scale_bytes(s->scale));
  g->group_bytes = g->scale_bytes + static_cast<size_t>(g->width * g->bits / 8);
  return g->width % kBlock == 0;
}

bool fp4_groups(const Matrix& w, Fp4Groups* g) {
  const formats::BlockSpec* s = formats::block_spec(*w.format);
  if (s == nullptr || s->element != formats::Element::Mini || s->mini != &formats::kE2M1 ||
      s->granularity == formats::Granularity::Tensor)
    return false;
  g->width = s->granularity == formats::Granularity::Row ? w.cols : s->block;
  g->scale = s->scale;
  g->scale_bytes = static_cast<size_t>(formats::scale_bytes(s->scale));
  g->group_bytes = g->scale_bytes + static_cast<size_t>(g->width / 2);
  if (s->scale == formats::ScaleType::NvFp4) {
    if (w.header == nullptr) return false;
    std::memcpy(&g->tensor_scale, w.header, 4);
  }
  return g->width == 16 || g->width == 32 || g->width % 64 == 0;
}

const std::array<int8_t, 16>& e2m1_twice() {
  static const std::array<int8_t, 16> table = [] {
    std::array<int8_t, 16> t{};
    for (uint32_t c = 0; c < 16; ++c) {
      const float twice = 2.0f * formats::kE2M1.decode(c);
      check(twice == std::nearbyint(twice) && std::abs(twice) <= 127.0f,
            "internal: E2M1 code {} is not half an integer", c);
      t[c] = static_cast<int8_t>(twice);
    }
    return t;
  }();
  return table;
}

// Kept per thread and rebuilt at most once per matrix, not for every range of rows.
const float* half_scale_table(formats::ScaleType type, float tensor_scale) {
  struct Table {
    formats::ScaleType type = formats::ScaleType::F16;  // no table built yet
    float tensor_scale = 0.0f;
    std::array<float, 256> half;
  };
  thread_local Table t;
  if (t.type == type && t.tensor_scale == tensor_scale) return t.half.data();
  const formats::ScaleCodeValues& codes = formats::scale_code_values();
  for (int c = 0; c < 256; ++c)
    t.half[c] = 0.5f * (type == formats::ScaleType::E8M0
                            ? codes.e8m0[c]
                            : formats::nvfp4_group_scale(codes.e4m3[c], tensor_scale));
  t.type = type;
  t.tensor_scale = tensor_scale;
  return t.half.data();
}

namespace {
// The best instruction set this CPU has for the integer kernels, capped by QFORGE_Q8_ISA
// (none | avx2 | vnni); QFORGE_NO_VNNI=1, the older spelling, turns them off.
Isa best_isa() {
  static const Isa best = [] {
    Isa cpu = vnni::cpu_supports() ? Isa::Avx512Vnni : avx2::cpu_supports() ? Isa::Avx2 : Isa::None;
    if (std::getenv("QFORGE_NO_VNNI") != nullptr) return Isa::None;
    if (const char* cap = std::getenv("QFORGE_Q8_ISA")) {
      const std::string c = cap;
      const Isa want = c == "none" ? Isa::None : c == "avx2" ? Isa::Avx2 : Isa::Avx512Vnni;
      check(c == "none" || c == "avx2" || c == "vnni",
            "QFORGE_Q8_ISA='{}': expected none, avx2 or vnni", c);
      cpu = std::min(cpu, want);
    }
    return cpu;
  }();
  return best;
}

std::atomic<Isa>& isa_in_use() {
  static std::atomic<Isa> isa{best_isa()};
  return isa;
}
}  // namespace

Isa isa() {
  return isa_in_use();
}
void set_isa(Isa want) {
  isa_in_use() = std::min(want, best_isa());
}
std::vector<Isa> supported_isas() {
  std::vector<Isa> all;
  for (Isa i : {Isa::Avx2, Isa::Avx512Vnni})
    if (i <= best_isa()) all.push_back(i);
  return all;
}
const char* isa_name(Isa i) {
  switch (i) {
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512Vnni:
      return "vnni";
    case Isa::None:
      break;
  }
  return "none";
}
void set_enabled(bool on) {
  set_isa(on ? best_isa() : Isa::None);
}
bool enabled() {
  return isa() != Isa::None;
}

namespace {
// Sizes every array of `a` for tokens x cols, with the zero padding the kernels may read.
void shape(Activations& a, int64_t tokens, int64_t cols, bool two_planes) {
  check(cols % kBlock == 0, "q8 activations: {} columns are not a multiple of {}", cols, kBlock);
  a.tokens = tokens;
  a.cols = cols;
  a.two_planes = two_planes;
  const auto n = static_cast<size_t>(tokens * cols);
  a.hi.assign(n + 64, 0);
  a.lo.assign(n + 64, 0);
  a.units.assign(n + 64, 0);
  a.units_even_odd.assign(n + 64, 0);
  a.d.assign(n / kBlock, 0.0f);
  a.lane_d.assign(n / 4 + 16, 0.0f);
  a.lane_sum.assign(n / 4 + 16, 0);
  a.block_sum.assign(n / kBlock, 0.0f);
  a.half_sum.assign(n / (kBlock / 2), 0.0f);
}

// The per-lane and per-block views of block b, whose codes U (256 hi + lo, or hi alone with one
// plane) are set, with scale d.
void finish_block(Activations& a, int64_t b, float d) {
  a.d[static_cast<size_t>(b)] = d;
  int32_t half[2] = {0, 0};
  for (int64_t lane = b * (kBlock / 4); lane < (b + 1) * (kBlock / 4); ++lane) {
    int32_t sum = 0;
    for (auto i = static_cast<size_t>(4 * lane); i < static_cast<size_t>(4 * lane + 4); ++i) {
      a.units[i] = static_cast<int16_t>(a.two_planes ? 256 * a.hi[i] + a.lo[i] : a.hi[i]);
      sum += a.units[i];
    }
    a.lane_d[static_cast<size_t>(lane)] = d;
    a.lane_sum[static_cast<size_t>(lane)] = 128 * sum;
    half[lane % (kBlock / 4) / (kBlock / 8)] += sum;
  }
  a.block_sum[static_cast<size_t>(b)] = d * static_cast<float>(half[0] + half[1]);
  a.half_sum[static_cast<size_t>(2 * b)] = d * static_cast<float>(half[0]);
  a.half_sum[static_cast<size_t>(2 * b + 1)] = d * static_cast<float>(half[1]);
  const auto first = static_cast<size_t>(b * kBlock);
  for (size_t i = 0; i < kBlock; ++i)
    a.units_even_odd[first + (i % 2) * (kBlock / 2) + i / 2] = a.units[first + i];
}
}  // namespace

void quantize(const float* x, int64_t tokens, int64_t cols, Activations& a) {
  shape(a, tokens, cols, true);
  // Decode quantizes every matmul's input on one thread while the others wait: vectorized where
  // the integer kernels run (an AVX2 CPU), with the same values as the rule below.
  if (isa() != Isa::None) return avx2::quantize_blocks(x, tokens * cols / kBlock, a);
  for (int64_t b = 0; b < tokens * cols / kBlock; ++b) {
    const float* xb = x + b * kBlock;
    float amax = 0.0f;
    for (int64_t i = 0; i < kBlock; ++i) amax = std::max(amax, std::abs(xb[i]));
    const float d = amax / (127.0f * 256.0f), id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int64_t i = 0; i < kBlock; ++i) {
      // |U| <= 127 * 256 up to rounding, so hi = floor((U + 128) / 256) is in [-127, 127] and
      // lo = U - 256 hi in [-128, 127].
      const auto units = static_cast<int32_t>(std::nearbyint(xb[i] * id));
      const int32_t h = (units + 128 + 256 * 128) / 256 - 128;  // floor for units >= -32896
      a.hi[static_cast<size_t>(b * kBlock + i)] = static_cast<int8_t>(h);
      a.lo[static_cast<size_t>(b * kBlock + i)] = static_cast<int8_t>(units - 256 * h);
    }
    finish_block(a, b, d);
  }
}

void quantize_per_token(const float* x, int64_t tokens, int64_t cols, Activations& a) {
  shape(a, tokens, cols, false);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = x + t * cols;
    float amax = 0.0f;
    for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::abs(row[i]));
    const float scale = amax / 127.0f;
    int8_t* q = a.hi.data() + t * cols;
    for (int64_t i = 0; i < cols; ++i)
      q[i] = scale > 0.0f
                 ? static_cast<int8_t>(std::clamp(std::nearbyint(row[i] / scale), -127.0f, 127.0f))
                 : 0;
    for (int64_t b = t * (cols / kBlock); b < (t + 1) * (cols / kBlock); ++b)
      finish_block(a, b, scale);
  }
}

int64_t group_width(const Matrix& w) {
  IntGroups g;
  check(int_groups(w, &g), "internal: '{}' is not symmetric int4/int8 in groups", w.name);
  return g.width;
}

void unpack_int_groups(const Matrix& w, int64_t r0, int64_t n, int8_t* codes, float* scales) {
  IntGroups g;
  check(int_groups(w, &g), "internal: '{}' is not symmetric int4/int8 in groups", w.name);
  const int64_t groups = w.cols / g.width;
  for (int64_t r = 0; r < n; ++r) {
    const auto* p = reinterpret_cast<const uint8_t*>(w.row(r0 + r));
    int8_t* out = codes + r * w.cols;
    for (int64_t gi = 0; gi < groups; ++gi, p += g.group_bytes, out += g.width) {
      uint16_t h = 0;
      float scale;
      if (g.scale == formats::ScaleType::F32) {
        std::memcpy(&scale, p, 4);
      } else {
        std::memcpy(&h, p, 2);
        scale = g.scale == formats::ScaleType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      scales[r * groups + gi] = scale;
      const uint8_t* c = p + g.scale_bytes;
      if (g.bits == 8) {
        for (int64_t i = 0; i < g.width; ++i) out[i] = static_cast<int8_t>(c[i] ^ 0x80u);
      } else {  // two codes per byte, the first in the low nibble; offset 8
        for (int64_t i = 0; i < g.width / 2; ++i) {
          out[2 * i] = static_cast<int8_t>((c[i] & 0x0f) - 8);
          out[2 * i + 1] = static_cast<int8_t>((c[i] >> 4) - 8);
        }
      }
    }
  }
}

Layout layout_for(const Matrix& w) {
  if (!w.packed() || !enabled() || w.cols % kBlock != 0) return Layout::None;
  const std::string& name = w.format->name();
  if (name == "q4_0") return Layout::Q4_0;
  if (name == "q8_0") return Layout::Q8_0;
  if (name == "q4_k") return Layout::Q4_K;
  if (name == "q5_k") return Layout::Q5_K;
  if (name == "q6_k") return Layout::Q6_K;
  if (name == "iq4_nl") return Layout::IQ4_NL;
  if (name == "iq4_xs") return Layout::IQ4_XS;
  IntGroups g;
  if (int_groups(w, &g)) return Layout::IntGroups;
  Fp4Groups f;
  return fp4_groups(w, &f) ? Layout::Fp4Groups : Layout::None;
}

std::string layout_name(Layout l) {
  const char* format = "none";
  switch (l) {
    case Layout::Q4_0:
      format = "q4_0";
      break;
    case Layout::Q8_0:
      format = "q8_0";
      break;
    case Layout::Q4_K:
      format = "q4_k";
      break;
    case Layout::Q5_K:
      format = "q5_k";
      break;
    case Layout::Q6_K:
      format = "q6_k";
      break;
    case Layout::IQ4_NL:
      format = "iq4_nl";
      break;
    case Layout::IQ4_XS:
      format = "iq4_xs";
      break;
    case Layout::IntGroups:
      format = "int";
      break;
    case Layout::Fp4Groups:
      format = "fp4 (e2m1 grid)";
      break;
    case Layout::None:
      return "none";
  }
  return std::string(isa_name(isa())) + " " + format + " x q8";
}

void gemv(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias) {
  switch (isa()) {
    case Isa::Avx512Vnni:
      return vnni::gemv(l, w, r0, r1, a, y, ldy, bias);
    case Isa::Avx2:
      return avx2::gemv(l, w, r0, r1, a, y, ldy, bias);
    case Isa::None:
      break;
  }
  fail("internal: integer GEMV of '{}' with the integer kernels off", w.name);
}

}  // namespace qforge::kernels::q8
