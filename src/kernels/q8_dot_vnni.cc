// AVX-512 VNNI integer kernels (see q8_dot.h): each 64 weights of a row are unpacked once to
// unsigned bytes u = code - offset + 128 (or the bare code where a format subtracts a min) and
// vpdpbusd multiplies and sums four byte pairs per 32-bit lane for both activation planes and
// every token of the batch; the lane sums are exact integers, scaled once per 64 weights.
// Highway 1.0.3 (Debian 12) has no byte dot product, hence intrinsics in functions compiled for
// that ISA, called only after a CPU check.

// GCC 12's AVX-512 intrinsics pass an undefined register as the unused merge source of their
// masked builtins and then warn that it is (or may be) uninitialized (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <array>
#include <cstring>
#include <type_traits>

#include "kernels/q8_layouts.h"

namespace qforge::kernels::q8::vnni {
namespace {

#define QFORGE_VNNI \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

QFORGE_VNNI inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
QFORGE_VNNI inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1);
}
// Lanes 0-7 a, lanes 8-15 b: the scales of two blocks of 32 weights.
QFORGE_VNNI inline __m512 halves(float a, float b) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)),
                                             _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}
QFORGE_VNNI inline __m256i low_nibbles(__m256i x) {
  return _mm256_and_si256(x, _mm256_set1_epi8(0x0F));
}
QFORGE_VNNI inline __m256i high_nibbles(__m256i x) {
  return _mm256_and_si256(_mm256_srli_epi16(x, 4), _mm256_set1_epi8(0x0F));
}
// Two blocks of 32 whose 16 bytes each hold weights 0-15 in the low nibbles and 16-31 in the high
// ones (Q4_0, IQ4_NL, IQ4_XS): x = [block 0 | block 1] -> 64 codes in weight order.
QFORGE_VNNI inline __m512i planar_pair(__m256i x) {
  const __m512i z = join(low_nibbles(x), high_nibbles(x));  // [lo 0, lo 1, hi 0, hi 1]
  return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}
// Two blocks of 32 packed LSB first (byte i holds weights 2i and 2i + 1): 64 codes in order.
QFORGE_VNNI inline __m512i sequential_pair(__m256i x) {
  const __m256i lo = low_nibbles(x), hi = high_nibbles(x);
  const __m512i z = join(_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi));
  return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}
// Two 16-byte blocks, the second absent (zero) at an odd row end.
QFORGE_VNNI inline __m256i load_pair16(const uint8_t* a, const uint8_t* b) {
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  return b ? _mm256_inserti128_si256(_mm256_zextsi128_si256(lo),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1)
           : _mm256_zextsi128_si256(lo);
}
QFORGE_VNNI inline __m256i load_or_zero(const void* p) {
  return p ? load256(p) : _mm256_setzero_si256();
}

// Weight rows stream from memory once per token: the kernels ask for the bytes kPrefetchBytes
// ahead of those they read (measured on llama-sp-58m q8_0, one thread: ~1.3x faster decode than
// leaving it to the hardware prefetcher; 512 gained less).
constexpr int64_t kPrefetchBytes = 2048;
inline void prefetch_ahead(const void* p, int64_t bytes) {
  for (int64_t i = 0; i < bytes; i += 64)
    _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes + i, _MM_HINT_T0);
}

// One step of 64 weights at column col, for kT tokens: u holds the weights as unsigned bytes
// (u - 128 is the signed code when kOffset, else u itself is), wl the weight scale of each lane of
// 4. The lane sums of u times both activation planes are exact integers (|.| < 2^26), and so is
// the offset correction; each lane is scaled once by its weight and activation scales.
template <int kT, bool kOffset>
QFORGE_VNNI inline void step(__m512i u, __m512 wl, const Activations& a, int64_t col, __m512* acc) {
  for (int t = 0; t < kT; ++t) {
    const int64_t at = t * a.cols + col;
    __m512i i =
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(a.hi.data() + at));
    if (a.two_planes)
      i = _mm512_dpbusd_epi32(_mm512_slli_epi32(i, 8), u, _mm512_loadu_si512(a.lo.data() + at));
    if constexpr (kOffset) i = _mm512_sub_epi32(i, _mm512_loadu_si512(a.lane_sum.data() + at / 4));
    const __m512 s = _mm512_mul_ps(wl, _mm512_loadu_ps(a.lane_d.data() + at / 4));
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), s, acc[t]);
  }
}

// Four row sums of 16 lanes each -> [sum a, sum b, sum c, sum d].
QFORGE_VNNI inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  const __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(abcd), _mm512_extractf32x8_ps(abcd, 1));
  return _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
}

// y[t * ldy + r] = row r · x_t (+ bias) for rows [r0, r1): Kernel::row<kT> adds one row's
// products into 16-lane accumulators, which are reduced four rows at a time.
template <int kT, class Kernel, class Params>
QFORGE_VNNI void for_rows(const Matrix& w, const Params& g, int64_t r0, int64_t r1,
                          const Activations& a, float* y, int64_t ldy, const float* bias) {
  const auto* base = reinterpret_cast<const uint8_t*>(w.data);
  const size_t stride = w.row_bytes();
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    __m512 acc[4][kT];
    for (int i = 0; i < 4; ++i) {
      // A fresh local array per row: indexed by constants once row() is inlined, it stays in
      // registers (acc[i] with a loop index would be stored and reloaded at every step, and a
      // store through a may-alias vector pointer makes every pointer of `a` reload too).
      __m512 row_acc[kT];
      for (int t = 0; t < kT; ++t) row_acc[t] = _mm512_setzero_ps();
      Kernel::template row<kT>(base + static_cast<size_t>(r + i) * stride, g, a, row_acc);
      for (int t = 0; t < kT; ++t) acc[i][t] = row_acc[t];
    }
    const __m128 b = bias ? _mm_loadu_ps(bias + r) : _mm_setzero_ps();
    for (int t = 0; t < kT; ++t)
      _mm_storeu_ps(y + t * ldy + r,
                    _mm_add_ps(reduce4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]), b));
  }
  for (; r < r1; ++r) {
    __m512 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    Kernel::template row<kT>(base + static_cast<size_t>(r) * stride, g, a, acc);
    for (int t = 0; t < kT; ++t)
      y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]) + (bias ? bias[r] : 0.0f);
  }
}

// The block of 32 at column 32 b, or nullptr past the row's end (an odd number of blocks).
template <class Block>
const Block* block_or_null(const Block* blk, int64_t b, int64_t nb) {
  return b < nb ? blk + b : nullptr;
}

// The IQ4 grid plus 128 as unsigned bytes, broadcast to every 128-bit lane for vpshufb.
constexpr auto kIq4Unsigned = [] {
  std::array<uint8_t, 16> t{};
  for (int i = 0; i < 16; ++i) t[i] = static_cast<uint8_t>(formats::gguf::kIq4nlValues[i] + 128);
  return t;
}();
QFORGE_VNNI inline __m512i iq4_grid() {
  return _mm512_broadcast_i32x4(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Unsigned.data())));
}

// Formats of 32-weight blocks with one fp16 scale d each (Q4_0, IQ4_NL, Q8_0), taken in pairs:
// Codes::pair gives the 64 weights of a block and of the next (absent past an odd row end: zero)
// as unsigned bytes u, the weight being d (u - 128).
template <class Block, class Codes>
struct PairedBlocksKernel {
  template <int kT>
  QFORGE_VNNI static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m512* acc) {
    const int64_t nb = a.cols / kBlock;
    const auto* blk = reinterpret_cast<const Block*>(p);
    for (int64_t b = 0; b < nb; b += 2) {
      prefetch_ahead(blk + b, 2 * sizeof(Block));
      const Block* next = block_or_null(blk, b + 1, nb);
      step<kT, true>(Codes::pair(blk[b], next),
                     halves(_cvtsh_ss(blk[b].d), next ? _cvtsh_ss(next->d) : 0.0f), a, b * kBlock,
                     acc);
    }
  }
};

// The second block's 32 bytes of u, or none.
constexpr uint64_t pair_mask(const void* next) {
  return next ? ~0ull : 0xFFFFFFFFull;
}

struct Q4_0Codes {  // code - 8 + 128
  QFORGE_VNNI static __m512i pair(const formats::gguf::BlockQ4_0& b,
                                  const formats::gguf::BlockQ4_0* next) {
    return _mm512_maskz_add_epi8(pair_mask(next),
                                 planar_pair(load_pair16(b.qs, next ? next->qs : nullptr)),
                                 _mm512_set1_epi8(120));
  }
};

struct IQ4_NLCodes {  // grid[code] + 128
  QFORGE_VNNI static __m512i pair(const formats::gguf::BlockIQ4_NL& b,
                                  const formats::gguf::BlockIQ4_NL* next) {
    return _mm512_maskz_shuffle_epi8(pair_mask(next), iq4_grid(),
                                     planar_pair(load_pair16(b.qs, next ? next->qs : nullptr)));
  }
};

struct Q8_0Codes {  // the signed code + 128
  QFORGE_VNNI static __m512i pair(const formats::gguf::BlockQ8_0& b,
                                  const formats::gguf::BlockQ8_0* next) {
    return _mm512_maskz_xor_epi64(next ? 0xFF : 0x0F,
                                  join(load256(b.qs), load_or_zero(next ? next->qs : nullptr)),
                                  _mm512_set1_epi8(static_cast<char>(0x80)));
  }
};

using Q4_0Kernel = PairedBlocksKernel<formats::gguf::BlockQ4_0, Q4_0Codes>;
using IQ4_NLKernel = PairedBlocksKernel<formats::gguf::BlockIQ4_NL, IQ4_NLCodes>;
using Q8_0Kernel = PairedBlocksKernel<formats::gguf::BlockQ8_0, Q8_0Codes>;

// The scales and mins of the 8 sub-blocks of a Q4_K / Q5_K block as floats times d and dmin.
struct ScalesK4 {
  __m256 scale, min;
};
QFORGE_VNNI inline __m256 bytes_to_floats(const uint32_t* eight_bytes) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(eight_bytes))));
}
QFORGE_VNNI inline ScalesK4 scales_k4(const uint8_t* s, float d, float dmin) {
  const ScaleMinBytes b = scales_and_mins_k4(s);
  return {_mm256_mul_ps(bytes_to_floats(b.scale), _mm256_set1_ps(d)),
          _mm256_mul_ps(bytes_to_floats(b.min), _mm256_set1_ps(dmin))};
}

// Lanes 0-7 take element 2j of an 8-float table, lanes 8-15 element 2j + 1.
QFORGE_VNNI inline __m512i pair_index(int j) {
  return join(_mm256_set1_epi32(2 * j), _mm256_set1_epi32(2 * j + 1));
}

// Q4_K / Q5_K: weight = d sc_k u - dmin m_k in sub-block k of 32, so a sub-block contributes
// d sc_k sum u x - dmin m_k sum x: the dot products in steps, the mins once per super-block.
template <bool kFifthBit>
struct K4Kernel {
  template <int kT>
  QFORGE_VNNI static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m512* acc) {
    using Block = std::conditional_t<kFifthBit, formats::gguf::BlockQ5_K, formats::gguf::BlockQ4_K>;
    const int64_t nsuper = a.cols / formats::gguf::kQKK, nb = a.cols / kBlock;
    const auto* blk = reinterpret_cast<const Block*>(p);
    for (int64_t sb = 0; sb < nsuper; ++sb) {
      const Block& b = blk[sb];
      prefetch_ahead(&b, sizeof(Block));
      const ScalesK4 k4 = scales_k4(b.scales, _cvtsh_ss(b.d), _cvtsh_ss(b.dmin));
      const __m512 scales = _mm512_zextps256_ps512(k4.scale);
      [[maybe_unused]] __m256i qh;
      if constexpr (kFifthBit) qh = load256(b.qh);
      for (int j = 0; j < 4; ++j) {
        const __m256i x = load256(b.qs + 32 * j);
        __m256i lo = low_nibbles(x), hi = high_nibbles(x);
        if constexpr (kFifthBit) {  // bit 2j of qh[l] is weight l's fifth bit in sub-block 2j
          const __m256i sixteen = _mm256_set1_epi8(16);
          lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(1 << (2 * j))),
                                    lo, sixteen);
          hi = _mm256_mask_add_epi8(
              hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(2 << (2 * j)))), hi,
              sixteen);
        }
        step<kT, false>(join(lo, hi), _mm512_permutexvar_ps(pair_index(j), scales), a,
                        sb * formats::gguf::kQKK + 64 * j, acc);
      }
      // The mins go into lanes 0-7 of the same accumulator: one reduction per row and token.
      const __m512 mins = _mm512_zextps256_ps512(k4.min);
      for (int t = 0; t < kT; ++t)
        acc[t] = _mm512_fnmadd_ps(
            mins, _mm512_maskz_loadu_ps(0xFF, a.block_sum.data() + t * nb + sb * 8), acc[t]);
    }
  }
};

// Lanes of 4 weights -> the 16-weight sub-block scales 4q .. 4q + 3 of a Q6_K block.
QFORGE_VNNI inline __m512i quad_index(int q) {
  return _mm512_set_epi32(4 * q + 3, 4 * q + 3, 4 * q + 3, 4 * q + 3, 4 * q + 2, 4 * q + 2,
                          4 * q + 2, 4 * q + 2, 4 * q + 1, 4 * q + 1, 4 * q + 1, 4 * q + 1, 4 * q,
                          4 * q, 4 * q, 4 * q);
}

// Q6_K: weight = d sc_k (q - 32), q = 4 bits of ql | 2 bits of qh << 4, sub-blocks of 16. Each
// half of 128 weights takes ql[64] and qh[32] (llama.cpp's dequantize_row_q6_K order).
struct Q6_KKernel {
  template <int kT>
  QFORGE_VNNI static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m512* acc) {
    using formats::gguf::BlockQ6_K;
    const int64_t nsuper = a.cols / formats::gguf::kQKK;
    const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30),
                  offset = _mm512_set1_epi8(96);  // q - 32 + 128
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(p);
    for (int64_t sb = 0; sb < nsuper; ++sb) {
      const BlockQ6_K& b = blk[sb];
      prefetch_ahead(&b, sizeof(BlockQ6_K));
      const __m512 scales = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                              reinterpret_cast<const __m128i*>(b.scales)))),
                                          _mm512_set1_ps(_cvtsh_ss(b.d)));
      for (int n = 0; n < 2; ++n) {
        const __m512i ql = join(load256(b.ql + 64 * n), load256(b.ql + 64 * n + 32));
        const __m256i qh = load256(b.qh + 32 * n);
        // Bits 0-1 of qh are weights 0-31's high bits, 2-3 weights 32-63's, 4-5 64-95, 6-7 96-127.
        const __m512i h01 = join(_mm256_slli_epi16(qh, 4), _mm256_slli_epi16(qh, 2));
        const __m512i h23 = join(qh, _mm256_srli_epi16(qh, 2));
        const __m512i u01 = _mm512_or_si512(_mm512_and_si512(ql, m0f), _mm512_and_si512(h01, m30));
        const __m512i u23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m0f),
                                            _mm512_and_si512(h23, m30));
        const int64_t col = sb * formats::gguf::kQKK + 128 * n;
        step<kT, true>(_mm512_add_epi8(u01, offset),
                       _mm512_permutexvar_ps(quad_index(2 * n), scales), a, col, acc);
        step<kT, true>(_mm512_add_epi8(u23, offset),
                       _mm512_permutexvar_ps(quad_index(2 * n + 1), scales), a, col + 64, acc);
      }
    }
  }
};

// IQ4_XS: weight = d (ls_k - 32) grid[q] in sub-block k of 32; u = grid[q] + 128.
struct IQ4_XSKernel {
  template <int kT>
  QFORGE_VNNI static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m512* acc) {
    using formats::gguf::BlockIQ4_XS;
    const int64_t nsuper = a.cols / formats::gguf::kQKK;
    const __m512i grid = iq4_grid();
    const auto* blk = reinterpret_cast<const BlockIQ4_XS*>(p);
    for (int64_t sb = 0; sb < nsuper; ++sb) {
      const BlockIQ4_XS& b = blk[sb];
      prefetch_ahead(&b, sizeof(BlockIQ4_XS));
      const float d = _cvtsh_ss(b.d);
      for (int k = 0; k < 8; k += 2) {
        const __m512i u = _mm512_shuffle_epi8(grid, planar_pair(load256(b.qs + 16 * k)));
        step<kT, true>(u, halves(d * iq4_xs_scale(b, k), d * iq4_xs_scale(b, k + 1)), a,
                       sb * formats::gguf::kQKK + 32 * k, acc);
      }
    }
  }
};

// qforge's symmetric int4 / int8 in groups: each group [scale][codes], codes stored offset by
// 8 / 128 (4-bit: two per byte, the first in the low nibble).
struct IntGroupsKernel {
  // 64 codes of one group from `codes` as unsigned bytes (code + 128); the second 32 absent
  // (zero) when `second` is null.
  QFORGE_VNNI static __m512i unsigned_codes(const IntGroups& g, const uint8_t* first,
                                            const uint8_t* second) {
    if (g.bits == 8) return join(load256(first), load_or_zero(second));  // stored as code + 128
    return _mm512_maskz_add_epi8(pair_mask(second), sequential_pair(load_pair16(first, second)),
                                 _mm512_set1_epi8(120));  // code - 8 + 128
  }

  template <int kT>
  QFORGE_VNNI static void row(const uint8_t* p, const IntGroups& g, const Activations& a,
                              __m512* acc) {
    if (g.width % 64 == 0) {
      if (!a.two_planes) return row_per_token<kT>(p, g, a, acc);
      return row_in_group_steps<kT>(p, g, a, acc);
    }
    // Blocks of 32 in pairs, which may straddle two groups.
    const int64_t nb = a.cols / kBlock, subs = g.width / kBlock;
    const int64_t block_bytes = kBlock * g.bits / 8;
    auto codes = [&](int64_t b) {
      return b < nb ? p + (b / subs) * g.group_bytes + g.scale_bytes + (b % subs) * block_bytes
                    : nullptr;
    };
    auto scale = [&](int64_t b) {
      return b < nb ? group_scale(p + (b / subs) * g.group_bytes, g.scale) : 0.0f;
    };
    for (int64_t b = 0; b < nb; b += 2) {
      prefetch_ahead(codes(b), 2 * block_bytes);
      step<kT, true>(unsigned_codes(g, codes(b), codes(b + 1)), halves(scale(b), scale(b + 1)), a,
                     b * kBlock, acc);
    }
  }

  // Groups of 64k weights: one scale per group, its steps of 64 contiguous codes.
  template <int kT>
  QFORGE_VNNI static void row_in_group_steps(const uint8_t* p, const IntGroups& g,
                                             const Activations& a, __m512* acc) {
    const int64_t groups = a.cols / g.width, step_bytes = 64 * g.bits / 8;
    for (int64_t gi = 0; gi < groups; ++gi, p += g.group_bytes) {
      const __m512 scale = _mm512_set1_ps(group_scale(p, g.scale));
      const uint8_t* codes = p + g.scale_bytes;
      for (int64_t k = 0; k < g.width / 64; ++k, codes += step_bytes) {
        prefetch_ahead(codes, step_bytes);
        step<kT, true>(unsigned_codes(g, codes, codes + step_bytes / 2), scale, a,
                       gi * g.width + 64 * k, acc);
      }
    }
  }

  // W8A8 / W4A8 (one int8 scale per token): a whole group's products sum exactly in int32
  // (|sum| < 2^31 for groups up to a million weights) and are scaled once, so the only rounding
  // is that of the scaling and of the sum over groups.
  template <int kT>
  QFORGE_VNNI static void row_per_token(const uint8_t* p, const IntGroups& g, const Activations& a,
                                        __m512* acc) {
    const int64_t groups = a.cols / g.width, step_bytes = 64 * g.bits / 8;
    for (int64_t gi = 0; gi < groups; ++gi, p += g.group_bytes) {
      __m512i sums[kT];
      for (int t = 0; t < kT; ++t) sums[t] = _mm512_setzero_si512();
      const uint8_t* codes = p + g.scale_bytes;
      for (int64_t k = 0; k < g.width / 64; ++k, codes += step_bytes) {
        prefetch_ahead(codes, step_bytes);
        const __m512i u = unsigned_codes(g, codes, codes + step_bytes / 2);
        const int64_t col = gi * g.width + 64 * k;
        for (int t = 0; t < kT; ++t) {
          const int64_t at = t * a.cols + col;
          sums[t] = _mm512_sub_epi32(
              _mm512_dpbusd_epi32(sums[t], u, _mm512_loadu_si512(a.hi.data() + at)),
              _mm512_loadu_si512(a.lane_sum.data() + at / 4));
        }
      }
      const float scale = group_scale(p, g.scale);
      for (int t = 0; t < kT; ++t)
        acc[t] = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(sums[t]),
            _mm512_set1_ps(scale * a.d[static_cast<size_t>(t * a.cols / kBlock)]), acc[t]);
    }
  }
};

// MXFP4, NVFP4 and fp4-gN, one instantiation per scale type (decoding a scale is then a load,
// or a table lookup): 64 weights at a time, their codes gathered from one, two or four groups,
// looked up in the doubled grid and dotted like the other formats, with half the group scales.
template <formats::ScaleType kScale>
struct Fp4GroupsKernel {
  // Half the scale of the group at p (the grid is doubled).
  QFORGE_VNNI static float half_scale_at(const uint8_t* p, const Fp4Groups& g) {
    if constexpr (kScale == formats::ScaleType::E8M0 || kScale == formats::ScaleType::NvFp4)
      return g.half_scale_of_code[*p];
    else
      return 0.5f * group_scale(p, kScale);
  }

  // Inlined into for_rows so that the accumulators stay in registers.
  template <int kT>
  QFORGE_VNNI __attribute__((always_inline)) static void row(const uint8_t* p, const Fp4Groups& g,
                                                             const Activations& a, __m512* acc) {
    const int64_t cols = a.cols;
    const size_t gb = g.group_bytes;
    const __m512i grid = _mm512_broadcast_i32x4(  // plus 128: unsigned bytes
        _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(e2m1_twice().data())),
                      _mm_set1_epi8(static_cast<char>(0x80))));
    for (int64_t col = 0; col < cols; col += 64) {
      const uint8_t* group = p + (col / g.width) * gb;  // the group holding column col
      prefetch_ahead(group, 32 + 4 * static_cast<int64_t>(g.scale_bytes));
      const bool full = cols - col >= 64;  // else 32 columns are left (cols is a multiple of 32)
      __m256i packed;                      // 64 codes, LSB first, two per byte
      __m512 scales;                       // the scale of each lane of 4 weights
      if (g.width == 16) {  // built in registers: stores then a wide load would stall
        auto codes8 = [&](int k) {
          return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(group + k * gb + g.scale_bytes));
        };
        auto scale = [&](int k) { return half_scale_at(group + k * gb, g); };
        const __m128i first = _mm_unpacklo_epi64(codes8(0), codes8(1));
        const __m128i second =
            full ? _mm_unpacklo_epi64(codes8(2), codes8(3)) : _mm_setzero_si128();
        packed = _mm256_inserti128_si256(_mm256_castsi128_si256(first), second, 1);
        const __m128 sc = full ? _mm_setr_ps(scale(0), scale(1), scale(2), scale(3))
                               : _mm_setr_ps(scale(0), scale(1), 0.0f, 0.0f);
        scales = _mm512_permutexvar_ps(quad_index(0), _mm512_castps128_ps512(sc));
      } else if (g.width == 32) {
        packed = load_pair16(group + g.scale_bytes, full ? group + gb + g.scale_bytes : nullptr);
        scales = halves(half_scale_at(group, g), full ? half_scale_at(group + gb, g) : 0.0f);
      } else {
        packed = load256(group + g.scale_bytes + (col % g.width) / 2);
        scales = _mm512_set1_ps(half_scale_at(group, g));
      }
      const __m512i u =
          _mm512_maskz_shuffle_epi8(full ? ~0ull : 0xFFFFFFFFull, grid, sequential_pair(packed));
      step<kT, true>(u, scales, a, col, acc);
    }
  }
};

struct VnniKernels {
  using Q4_0 = Q4_0Kernel;
  using Q8_0 = Q8_0Kernel;
  using IQ4_NL = IQ4_NLKernel;
  template <bool kFifthBit>
  using K4 = K4Kernel<kFifthBit>;
  using Q6_K = Q6_KKernel;
  using IQ4_XS = IQ4_XSKernel;
  using Int = IntGroupsKernel;
  template <formats::ScaleType kScale>
  using Fp4 = Fp4GroupsKernel<kScale>;
  template <int kT, class Kernel, class Params>
  static void rows(const Matrix& w, const Params& g, int64_t r0, int64_t r1, const Activations& a,
                   float* y, int64_t ldy, const float* bias) {
    for_rows<kT, Kernel>(w, g, r0, r1, a, y, ldy, bias);
  }
};

}  // namespace

bool cpu_supports() {
  __builtin_cpu_init();
  // Every CPU with AVX-512 has F16C (clang's __builtin_cpu_supports does not take "f16c").
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("fma");
}

void gemv(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias) {
  gemv_with<VnniKernels>(l, w, r0, r1, a, y, ldy, bias);
}

}  // namespace qforge::kernels::q8::vnni
