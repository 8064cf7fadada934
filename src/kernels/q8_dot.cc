#include "kernels/q8_dot.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "formats/block_formats.h"
#include "qforge/core/error.h"
#include "qforge/formats/format.h"
#include "qforge/formats/gguf_blocks.h"

namespace qforge::kernels::q8 {
namespace {

#define QFORGE_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

bool cpu_has_vnni() {
  __builtin_cpu_init();
  // Every CPU with AVX-512 has F16C (clang's __builtin_cpu_supports does not take "f16c").
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> on{cpu_has_vnni() && std::getenv("QFORGE_NO_VNNI") == nullptr};
  return on;
}

// Where a symmetric qforge integer format keeps a row's groups: [scale][codes] each.
struct IntGroups {
  int bits = 4;
  int64_t width = 0;  // weights per group (the row for per-channel scales)
  formats::ScaleType scale = formats::ScaleType::F16;
  size_t scale_bytes = 2;
  size_t group_bytes = 0;
};

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
  g->scale_bytes = s->scale == formats::ScaleType::F32 ? 4 : 2;
  g->group_bytes = g->scale_bytes + static_cast<size_t>(g->width * g->bits / 8);
  return g->width % kBlock == 0;
}

// ------------------------------------------------------------------ VNNI kernels

// 32 codes of a GGUF Q4_0 block, in weight order: low nibbles are weights 0-15, high 16-31.
QFORGE_VNNI inline __m256i unpack_planar_nibbles(const uint8_t* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

// 32 codes packed LSB first (byte i holds weights 2i and 2i + 1), in weight order.
QFORGE_VNNI inline __m256i unpack_sequential_nibbles(const uint8_t* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
  return _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
}

QFORGE_VNNI inline __m256i load_bytes(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

QFORGE_VNNI inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// sum_i u_i (254 hi_i + lo_i) over one block, per VNNI lane (|.| < 2^25: exact in int32; its
// conversion to f32 rounds by at most 2^-24 relative).
QFORGE_VNNI inline __m256i planes_dot(__m256i u, const Activations& a, int t, int64_t block) {
  const size_t at = static_cast<size_t>(t * a.cols + block * kBlock);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i hi = _mm256_dpbusd_epi32(zero, u, load_bytes(a.hi.data() + at));
  if (!a.two_planes) return hi;
  const __m256i lo = _mm256_dpbusd_epi32(zero, u, load_bytes(a.lo.data() + at));
  return _mm256_add_epi32(_mm256_mullo_epi32(hi, _mm256_set1_epi32(254)), lo);
}

// acc[t] += scale * d_t[block] * sum_i (u_i - offset) q_ti over one block of 32, for kT tokens.
// The integer sum is exact (|sum| < 2^17), so is its conversion; offset = 2^kShift.
template <int kT, int kShift>
QFORGE_VNNI inline void block_dot(__m256i u, float scale, int64_t block, const Activations& a,
                                  __m256* acc) {
  const int64_t nb = a.cols / kBlock;
  for (int t = 0; t < kT; ++t) {
    const __m256i s4 = load_bytes(a.sum4.data() + t * (a.cols / 4) + block * (kBlock / 4));
    const __m256i i = _mm256_sub_epi32(planes_dot(u, a, t, block), _mm256_slli_epi32(s4, kShift));
    acc[t] =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(scale * a.d[t * nb + block]), acc[t]);
  }
}

template <int kT>
QFORGE_VNNI inline void store_row(const __m256* acc, int64_t r, float* y, int64_t ldy,
                                  const float* bias) {
  for (int t = 0; t < kT; ++t) y[t * ldy + r] = hsum(acc[t]) + (bias ? bias[r] : 0.0f);
}

template <int kT>
QFORGE_VNNI void rows_q4_0(const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
                           int64_t ldy, const float* bias) {
  const int64_t nb = w.cols / kBlock;
  for (int64_t r = r0; r < r1; ++r) {
    __m256 acc[kT];
    for (auto& v : acc) v = _mm256_setzero_ps();
    const auto* blk = reinterpret_cast<const formats::gguf::BlockQ4_0*>(w.row(r));
    for (int64_t b = 0; b < nb; ++b)
      block_dot<kT, 3>(unpack_planar_nibbles(blk[b].qs), _cvtsh_ss(blk[b].d), b, a, acc);
    store_row<kT>(acc, r, y, ldy, bias);
  }
}

template <int kT>
QFORGE_VNNI void rows_q8_0(const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
                           int64_t ldy, const float* bias) {
  const int64_t nb = w.cols / kBlock;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));  // s -> s + 128
  for (int64_t r = r0; r < r1; ++r) {
    __m256 acc[kT];
    for (auto& v : acc) v = _mm256_setzero_ps();
    const auto* blk = reinterpret_cast<const formats::gguf::BlockQ8_0*>(w.row(r));
    for (int64_t b = 0; b < nb; ++b)
      block_dot<kT, 7>(_mm256_xor_si256(load_bytes(blk[b].qs), flip), _cvtsh_ss(blk[b].d), b, a,
                       acc);
    store_row<kT>(acc, r, y, ldy, bias);
  }
}

// The 6-bit scale and min of sub-block k of a Q4_K block (llama.cpp's get_scale_min_k4).
inline void scale_min_k4(const uint8_t* s, int k, int* sc, int* mn) {
  if (k < 4) {
    *sc = s[k] & 63;
    *mn = s[k + 4] & 63;
  } else {
    *sc = (s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4);
    *mn = (s[k + 4] >> 4) | ((s[k] >> 6) << 4);
  }
}

// Q4_K: weight = d sc_k u - dmin m_k in sub-block k of 32, so a sub-block contributes
// d_t (d sc_k sum u q - dmin m_k sum q): one dot product and the block's code sum.
template <int kT>
QFORGE_VNNI void rows_q4_k(const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
                           int64_t ldy, const float* bias) {
  const int64_t nsuper = w.cols / formats::gguf::kQKK, nb = a.cols / kBlock;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t r = r0; r < r1; ++r) {
    __m256 acc[kT];
    for (auto& v : acc) v = _mm256_setzero_ps();
    const auto* blk = reinterpret_cast<const formats::gguf::BlockQ4_K*>(w.row(r));
    for (int64_t sb = 0; sb < nsuper; ++sb) {
      const float d = _cvtsh_ss(blk[sb].d), dmin = _cvtsh_ss(blk[sb].dmin);
      for (int j = 0; j < 4; ++j) {
        const __m256i bytes = load_bytes(blk[sb].qs + 32 * j);
        const __m256i u[2] = {_mm256_and_si256(bytes, m4),
                              _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4)};
        for (int h = 0; h < 2; ++h) {
          int sc, mn;
          scale_min_k4(blk[sb].scales, 2 * j + h, &sc, &mn);
          const int64_t block = sb * 8 + 2 * j + h;
          const float ds = d * static_cast<float>(sc), dm = dmin * static_cast<float>(mn);
          for (int t = 0; t < kT; ++t) {
            const __m256i s4 = load_bytes(a.sum4.data() + t * (a.cols / 4) + block * (kBlock / 4));
            const float dt = a.d[t * nb + block];
            const __m256i i = planes_dot(u[h], a, t, block);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(ds * dt), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(s4), _mm256_set1_ps(dm * dt), acc[t]);
          }
        }
      }
    }
    store_row<kT>(acc, r, y, ldy, bias);
  }
}

QFORGE_VNNI inline float group_scale(const uint8_t* p, formats::ScaleType t) {
  uint16_t h;
  switch (t) {
    case formats::ScaleType::F16:
      std::memcpy(&h, p, 2);
      return _cvtsh_ss(h);
    case formats::ScaleType::BF16:
      std::memcpy(&h, p, 2);
      return bf16_to_f32(h);
    default: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
  }
}

template <int kT>
QFORGE_VNNI void rows_int_groups(const Matrix& w, const IntGroups& g, int64_t r0, int64_t r1,
                                 const Activations& a, float* y, int64_t ldy, const float* bias) {
  const int64_t groups = w.cols / g.width, subs = g.width / kBlock;
  for (int64_t r = r0; r < r1; ++r) {
    __m256 acc[kT];
    for (auto& v : acc) v = _mm256_setzero_ps();
    const auto* p = reinterpret_cast<const uint8_t*>(w.row(r));
    for (int64_t gi = 0; gi < groups; ++gi, p += g.group_bytes) {
      const float scale = group_scale(p, g.scale);
      const uint8_t* codes = p + g.scale_bytes;
      for (int64_t k = 0; k < subs; ++k) {
        const int64_t block = gi * subs + k;
        if (g.bits == 4)
          block_dot<kT, 3>(unpack_sequential_nibbles(codes + 16 * k), scale, block, a, acc);
        else
          block_dot<kT, 7>(load_bytes(codes + 32 * k), scale, block, a, acc);
      }
    }
    store_row<kT>(acc, r, y, ldy, bias);
  }
}

template <int kT>
void rows(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias) {
  switch (l) {
    case Layout::Q4_0:
      return rows_q4_0<kT>(w, r0, r1, a, y, ldy, bias);
    case Layout::Q8_0:
      return rows_q8_0<kT>(w, r0, r1, a, y, ldy, bias);
    case Layout::Q4_K:
      return rows_q4_k<kT>(w, r0, r1, a, y, ldy, bias);
    case Layout::IntGroups: {
      IntGroups g;
      int_groups(w, &g);
      return rows_int_groups<kT>(w, g, r0, r1, a, y, ldy, bias);
    }
    case Layout::None:
      break;
  }
  fail("internal: no integer kernel for '{}'", w.name);
}

}  // namespace

void set_enabled(bool on) {
  enabled_flag() = on && cpu_has_vnni();
}
bool enabled() {
  return enabled_flag();
}

void quantize(const float* x, int64_t tokens, int64_t cols, Activations& a) {
  check(cols % kBlock == 0, "q8 activations: {} columns are not a multiple of {}", cols, kBlock);
  a.tokens = tokens;
  a.cols = cols;
  a.two_planes = true;
  a.hi.resize(static_cast<size_t>(tokens * cols));
  a.lo.resize(static_cast<size_t>(tokens * cols));
  a.d.resize(static_cast<size_t>(tokens * cols / kBlock));
  a.sum4.resize(static_cast<size_t>(tokens * cols / 4));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t b = 0; b < cols / kBlock; ++b) {
      const int64_t at = t * cols + b * kBlock;
      const float* xb = x + at;
      float amax = 0.0f;
      for (int64_t i = 0; i < kBlock; ++i) amax = std::max(amax, std::abs(xb[i]));
      // d is the unit of the combined code 254 hi + lo; the hi plane's unit is 254 d.
      const float d = amax / (127.0f * 254.0f), id = d > 0.0f ? 1.0f / d : 0.0f;
      a.d[static_cast<size_t>(t * (cols / kBlock) + b)] = d;
      int32_t* s4 = a.sum4.data() + t * (cols / 4) + b * (kBlock / 4);
      for (int64_t i = 0; i < kBlock; ++i) {
        const float units = xb[i] * id;  // in [-127 * 254, 127 * 254] up to rounding
        const float h = std::clamp(std::nearbyint(units / 254.0f), -127.0f, 127.0f);
        const float l = std::clamp(std::nearbyint(units - 254.0f * h), -127.0f, 127.0f);
        a.hi[static_cast<size_t>(at + i)] = static_cast<int8_t>(h);
        a.lo[static_cast<size_t>(at + i)] = static_cast<int8_t>(l);
        if (i % 4 == 0) s4[i / 4] = 0;
        s4[i / 4] += 254 * static_cast<int32_t>(h) + static_cast<int32_t>(l);
      }
    }
}

void quantize_per_token(const float* x, int64_t tokens, int64_t cols, Activations& a) {
  check(cols % kBlock == 0, "int8 activations: {} columns are not a multiple of {}", cols, kBlock);
  a.tokens = tokens;
  a.cols = cols;
  a.two_planes = false;
  a.hi.resize(static_cast<size_t>(tokens * cols));
  a.d.resize(static_cast<size_t>(tokens * cols / kBlock));
  a.sum4.resize(static_cast<size_t>(tokens * cols / 4));
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
    std::fill_n(a.d.begin() + t * (cols / kBlock), cols / kBlock, scale);
    for (int64_t j = 0; j < cols / 4; ++j)
      a.sum4[static_cast<size_t>(t * (cols / 4) + j)] =
          q[4 * j] + q[4 * j + 1] + q[4 * j + 2] + q[4 * j + 3];
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
  IntGroups g;
  return int_groups(w, &g) ? Layout::IntGroups : Layout::None;
}

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Q4_0:
      return "vnni q4_0 x q8";
    case Layout::Q8_0:
      return "vnni q8_0 x q8";
    case Layout::Q4_K:
      return "vnni q4_k x q8";
    case Layout::IntGroups:
      return "vnni int x q8";
    case Layout::None:
      break;
  }
  return "none";
}

void gemv(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias) {
  switch (a.tokens) {
    case 1:
      return rows<1>(l, w, r0, r1, a, y, ldy, bias);
    case 2:
      return rows<2>(l, w, r0, r1, a, y, ldy, bias);
    case 3:
      return rows<3>(l, w, r0, r1, a, y, ldy, bias);
    case 4:
      return rows<4>(l, w, r0, r1, a, y, ldy, bias);
    case 5:
      return rows<5>(l, w, r0, r1, a, y, ldy, bias);
    case 6:
      return rows<6>(l, w, r0, r1, a, y, ldy, bias);
    case 7:
      return rows<7>(l, w, r0, r1, a, y, ldy, bias);
    case 8:
      return rows<8>(l, w, r0, r1, a, y, ldy, bias);
    default:
      fail("internal: the integer GEMV takes 1 to 8 tokens, not {}", a.tokens);
  }
}

}  // namespace qforge::kernels::q8
