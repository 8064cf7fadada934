// AVX2 integer kernels (see q8_dot.h), for CPUs without AVX-512 VNNI: each block of 32 weights
// of a row is unpacked once to signed bytes w (the weight is scale * w), widened to int16, and
// vpmaddwd multiplies it with every token's 16-bit activations U, summing pairs into 32-bit
// lanes. Exact: |w U| <= 128 * 32639 and a lane of a block sums four products, under 2^24, so
// even its conversion to float is exact; the lanes are scaled once per block (per 16 weights
// where a format has sub-blocks of 16). llama.cpp's AVX2 path instead multiplies bytes with
// vpmaddubsw, which needs its activations in 8 bits (q8_0/q8_K); ours keep 16.

#include <immintrin.h>

#include <array>
#include <cstring>
#include <type_traits>

#include "kernels/q8_layouts.h"

namespace qforge::kernels::q8::avx2 {
namespace {

#define QFORGE_AVX2 __attribute__((target("avx2,fma,f16c")))

QFORGE_AVX2 inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
QFORGE_AVX2 inline __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
QFORGE_AVX2 inline __m256i join(__m128i lo, __m128i hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}
QFORGE_AVX2 inline __m256i low_nibbles(__m256i x) {
  return _mm256_and_si256(x, _mm256_set1_epi8(0x0F));
}
QFORGE_AVX2 inline __m256i high_nibbles(__m256i x) {
  return _mm256_and_si256(_mm256_srli_epi16(x, 4), _mm256_set1_epi8(0x0F));
}
// A block of 32 whose 16 bytes hold weights 0-15 in the low nibbles and 16-31 in the high ones
// (Q4_0, IQ4_NL, IQ4_XS): the 32 codes in weight order.
QFORGE_AVX2 inline __m256i planar_codes(const uint8_t* q) {
  const __m128i x = load128(q);
  return low_nibbles(join(x, _mm_srli_epi16(x, 4)));
}
// 16 bytes packed LSB first (byte i holds weights 2i and 2i + 1): the 32 codes in weight order.
QFORGE_AVX2 inline __m256i sequential_codes(__m128i x) {
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(x, m), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
  return join(_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi));
}
// A 16-entry table of signed bytes in both 128-bit lanes, for vpshufb.
QFORGE_AVX2 inline __m256i table16(const int8_t* t) {
  return _mm256_broadcastsi128_si256(load128(t));
}

// Weight rows stream from memory once per token: ask for the bytes kPrefetchBytes ahead of those
// read (as the VNNI kernels do; 2 KiB measured best there).
constexpr int64_t kPrefetchBytes = 2048;
inline void prefetch_ahead(const void* p, int64_t bytes) {
  for (int64_t i = 0; i < bytes; i += 64)
    _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes + i, _MM_HINT_T0);
}

// A block of 32 weights widened to int16 once, for every token.
struct Widened {
  __m256i first, second;  // weights 0-15 and 16-31 as int16
};
QFORGE_AVX2 inline Widened widen(__m256i w) {
  return {_mm256_cvtepi8_epi16(_mm256_castsi256_si128(w)),
          _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1))};
}
// The exact 32-bit lane sums of w times 32 activations U: lane j holds weights 2j, 2j + 1 and
// 16 + 2j, 17 + 2j.
QFORGE_AVX2 inline __m256i units_dot(const Widened& w, const int16_t* u) {
  return _mm256_add_epi32(_mm256_madd_epi16(w.first, load256(u)),
                          _mm256_madd_epi16(w.second, load256(u + 16)));
}

// The activations a kernel dots its weights with: U in column order, or (kEvenOdd) each block's
// even-indexed then odd-indexed U, for weights unpacked as [even | odd] from bytes that hold two
// consecutive codes (qforge's int4 and fp4 packing).
template <bool kEvenOdd>
inline const int16_t* units(const Activations& a) {
  return kEvenOdd ? a.units_even_odd.data() : a.units.data();
}

// One block of 32 weights (int16, the weight scale * w) at column col for kT tokens: exact
// integer sums, scaled once by scale times the block's activation scale.
template <int kT, bool kEvenOdd = false>
QFORGE_AVX2 inline void step(const Widened& w, float scale, const Activations& a, int64_t col,
                             __m256* acc) {
  for (int t = 0; t < kT; ++t) {
    const int64_t at = t * a.cols + col;
    const __m256i i = units_dot(w, units<kEvenOdd>(a) + at);
    acc[t] =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(scale * a.d[at / kBlock]), acc[t]);
  }
}
template <int kT>
QFORGE_AVX2 inline void step(__m256i w, float scale, const Activations& a, int64_t col,
                             __m256* acc) {
  step<kT>(widen(w), scale, a, col, acc);
}

// The same with a float scale per 16 weights (fp4 in groups of 16: NVFP4, fp4-g16).
template <int kT>
QFORGE_AVX2 inline void step_halves(__m256i codes, float first_scale, float second_scale,
                                    const Activations& a, int64_t col, __m256* acc) {
  const Widened w = widen(codes);
  for (int t = 0; t < kT; ++t) {
    const int64_t at = t * a.cols + col;
    const int16_t* u = a.units.data() + at;
    const float d = a.d[at / kBlock];
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(w.first, load256(u))),
                             _mm256_set1_ps(first_scale * d), acc[t]);
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(w.second, load256(u + 16))),
                             _mm256_set1_ps(second_scale * d), acc[t]);
  }
}

// The scales of 8 consecutive blocks of 32 (b0 .. b0 + 7) for each token: the weight scales
// times the token's activation scales of the same blocks, made once per 8 blocks. How a block's
// scale then reaches its FMA:
// - kPermute: the products stay in vectors and a block's scale is one lane permute. One or two
//   tokens only: more vectors would not fit in the 16 registers beside the accumulators.
// - kBroadcast: the products are stored and a block's scale is a broadcast load, which takes a
//   load port instead of a shuffle port: faster where unpacking the codes keeps the shuffle
//   ports busy (IQ4_XS: 12% on one token, docs/RESULTS.md).
// - kCompute: the weight scales are stored and a block's scale is one multiplication and a
//   broadcast.
enum class ScaleLookup { kPermute, kBroadcast, kCompute };
template <int kT>
constexpr ScaleLookup kDefaultLookup = kT <= 2 ? ScaleLookup::kPermute : ScaleLookup::kCompute;

template <int kT, ScaleLookup kLookup = kDefaultLookup<kT>>
struct BlockScales;

template <int kT>
struct BlockScales<kT, ScaleLookup::kPermute> {
  __m256 s[kT];
  QFORGE_AVX2 BlockScales(__m256 weight_scales, const Activations& a, int64_t b0) {
    const int64_t nb = a.cols / kBlock;
    for (int t = 0; t < kT; ++t)
      s[t] = _mm256_mul_ps(weight_scales, _mm256_loadu_ps(a.d.data() + t * nb + b0));
  }
  QFORGE_AVX2 __m256 of(int k, int t) const {
    return _mm256_permutevar8x32_ps(s[t], _mm256_set1_epi32(k));
  }
};
template <int kT>
struct BlockScales<kT, ScaleLookup::kBroadcast> {
  alignas(32) float s[kT][8];
  QFORGE_AVX2 BlockScales(__m256 weight_scales, const Activations& a, int64_t b0) {
    const int64_t nb = a.cols / kBlock;
    for (int t = 0; t < kT; ++t)
      _mm256_store_ps(s[t],
                      _mm256_mul_ps(weight_scales, _mm256_loadu_ps(a.d.data() + t * nb + b0)));
  }
  QFORGE_AVX2 __m256 of(int k, int t) const { return _mm256_broadcast_ss(&s[t][k]); }
};
template <int kT>
struct BlockScales<kT, ScaleLookup::kCompute> {
  alignas(32) float weight[8];
  const float* d;  // the activation scale of block b0, token 0
  int64_t nb;      // blocks per token
  QFORGE_AVX2 BlockScales(__m256 weight_scales, const Activations& a, int64_t b0)
      : d(a.d.data() + b0), nb(a.cols / kBlock) {
    _mm256_store_ps(weight, weight_scales);
  }
  QFORGE_AVX2 __m256 of(int k, int t) const { return _mm256_set1_ps(weight[k] * d[t * nb + k]); }
};

// Block b0 + k of the 8 whose scales are s, at column col.
template <int kT, bool kEvenOdd = false, class Scales>
QFORGE_AVX2 inline void step_lane(const Widened& w, const Scales& s, int k, const Activations& a,
                                  int64_t col, __m256* acc) {
  for (int t = 0; t < kT; ++t) {
    const __m256i i = units_dot(w, units<kEvenOdd>(a) + t * a.cols + col);
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), s.of(k, t), acc[t]);
  }
}

// 16 bytes of 4-bit codes, weights 0-15 in the low nibbles and 16-31 in the high ones, as 32
// unsigned int16 (Q4_0, Q4_K): no byte shuffles, the high nibble is a 16-bit shift.
QFORGE_AVX2 inline Widened planar_widened(const uint8_t* q) {
  const __m256i z = _mm256_cvtepu8_epi16(load128(q));
  return {_mm256_and_si256(z, _mm256_set1_epi16(0x0F)), _mm256_srli_epi16(z, 4)};
}
// The fp16 scales d of 8 consecutive blocks.
template <class Block>
QFORGE_AVX2 inline __m256 block_scales(const Block* b) {
  return _mm256_cvtph_ps(_mm_setr_epi16(
      static_cast<int16_t>(b[0].d), static_cast<int16_t>(b[1].d), static_cast<int16_t>(b[2].d),
      static_cast<int16_t>(b[3].d), static_cast<int16_t>(b[4].d), static_cast<int16_t>(b[5].d),
      static_cast<int16_t>(b[6].d), static_cast<int16_t>(b[7].d)));
}

// Four row sums of 8 lanes each -> [sum a, sum b, sum c, sum d].
QFORGE_AVX2 inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}
QFORGE_AVX2 inline float reduce(__m256 a) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

// y[t * ldy + r] = row r · x_t (+ bias) for rows [r0, r1): Kernel::row<kT> adds one row's
// products into 8-lane accumulators, which are reduced four rows at a time.
template <int kT, class Kernel, class Params>
QFORGE_AVX2 void for_rows(const Matrix& w, const Params& g, int64_t r0, int64_t r1,
                          const Activations& a, float* y, int64_t ldy, const float* bias) {
  const auto* base = reinterpret_cast<const uint8_t*>(w.data);
  const size_t stride = w.row_bytes();
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    __m256 acc[4][kT];
    for (int i = 0; i < 4; ++i) {
      __m256 row_acc[kT];  // a fresh local array stays in registers (see q8_dot_vnni.cc)
      for (int t = 0; t < kT; ++t) row_acc[t] = _mm256_setzero_ps();
      Kernel::template row<kT>(base + static_cast<size_t>(r + i) * stride, g, a, row_acc);
      for (int t = 0; t < kT; ++t) acc[i][t] = row_acc[t];
    }
    const __m128 b = bias ? _mm_loadu_ps(bias + r) : _mm_setzero_ps();
    for (int t = 0; t < kT; ++t)
      _mm_storeu_ps(y + t * ldy + r,
                    _mm_add_ps(reduce4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]), b));
  }
  for (; r < r1; ++r) {
    __m256 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm256_setzero_ps();
    Kernel::template row<kT>(base + static_cast<size_t>(r) * stride, g, a, acc);
    for (int t = 0; t < kT; ++t) y[t * ldy + r] = reduce(acc[t]) + (bias ? bias[r] : 0.0f);
  }
}

// Formats of 32-weight blocks with one fp16 scale d each: Codes::of gives a block's weights as
// int16 w - Codes::kOffset (Q4_0 keeps its unsigned codes: the offset is subtracted once per 8
// blocks through the activations' block sums, sum (u - 8) x = sum u x - 8 sum x).
template <class Block, class Codes>
struct BlocksKernel {
  template <int kT>
  QFORGE_AVX2 static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m256* acc) {
    const int64_t nb = a.cols / kBlock;
    const auto* blk = reinterpret_cast<const Block*>(p);
    [[maybe_unused]] const __m256i grid = table16(formats::gguf::kIq4nlValues);
    __m256 offset_sum[kT];  // sum over blocks of d times the block's d_x sum U
    for (int t = 0; t < kT; ++t) offset_sum[t] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
      prefetch_ahead(blk + b, 8 * sizeof(Block));
      const __m256 d = block_scales(blk + b);
      const BlockScales<kT> s(d, a, b);
      if constexpr (Codes::kOffset != 0)
        for (int t = 0; t < kT; ++t)
          offset_sum[t] =
              _mm256_fmadd_ps(d, _mm256_loadu_ps(a.block_sum.data() + t * nb + b), offset_sum[t]);
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k)
        step_lane<kT>(Codes::of(blk[b + k], grid), s, k, a, (b + k) * kBlock, acc);
    }
    for (; b < nb; ++b) {  // fewer than 8 blocks left
      const float d = _cvtsh_ss(blk[b].d);
      step<kT>(Codes::of(blk[b], grid), d, a, b * kBlock, acc);
      if constexpr (Codes::kOffset != 0)
        for (int t = 0; t < kT; ++t)
          offset_sum[t] = _mm256_add_ps(
              offset_sum[t], _mm256_setr_ps(d * a.block_sum[t * nb + b], 0, 0, 0, 0, 0, 0, 0));
    }
    if constexpr (Codes::kOffset != 0)
      for (int t = 0; t < kT; ++t)
        acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(Codes::kOffset), offset_sum[t], acc[t]);
  }
};

struct Q4_0Codes {  // the unsigned code; weight d (code - 8)
  static constexpr int kOffset = 8;
  QFORGE_AVX2 static Widened of(const formats::gguf::BlockQ4_0& b, __m256i) {
    return planar_widened(b.qs);
  }
};
struct IQ4_NLCodes {  // grid[code]
  static constexpr int kOffset = 0;
  QFORGE_AVX2 static Widened of(const formats::gguf::BlockIQ4_NL& b, __m256i grid) {
    return widen(_mm256_shuffle_epi8(grid, planar_codes(b.qs)));
  }
};
struct Q8_0Codes {  // the signed codes as stored
  static constexpr int kOffset = 0;
  QFORGE_AVX2 static Widened of(const formats::gguf::BlockQ8_0& b, __m256i) {
    return {_mm256_cvtepi8_epi16(load128(b.qs)), _mm256_cvtepi8_epi16(load128(b.qs + 16))};
  }
};

// Q4_K / Q5_K: weight = d sc_k u - dmin m_k in sub-block k of 32, so a sub-block contributes
// d sc_k sum u x - dmin m_k sum x: the dot products in steps, the mins once per super-block
// (8 of them: one per lane).
// 8 bytes as 8 floats.
QFORGE_AVX2 inline __m256 bytes_to_floats(const uint32_t* eight_bytes) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(eight_bytes))));
}

template <bool kFifthBit>
struct K4Kernel {
  template <int kT>
  QFORGE_AVX2 static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m256* acc) {
    using Block = std::conditional_t<kFifthBit, formats::gguf::BlockQ5_K, formats::gguf::BlockQ4_K>;
    const int64_t nsuper = a.cols / formats::gguf::kQKK, nb = a.cols / kBlock;
    const auto* blk = reinterpret_cast<const Block*>(p);
    for (int64_t sb = 0; sb < nsuper; ++sb) {
      const Block& b = blk[sb];
      prefetch_ahead(&b, sizeof(Block));
      const ScaleMinBytes packed = scales_and_mins_k4(b.scales);
      const BlockScales<kT> s(
          _mm256_mul_ps(bytes_to_floats(packed.scale), _mm256_set1_ps(_cvtsh_ss(b.d))), a, sb * 8);
      [[maybe_unused]] __m256i qh;
      if constexpr (kFifthBit) qh = load256(b.qh);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const int64_t col = sb * formats::gguf::kQKK + 64 * j;
        if constexpr (kFifthBit) {  // bit 2j of qh[l] is weight l's fifth bit in sub-block 2j
          const __m256i x = load256(b.qs + 32 * j);
          __m256i lo = low_nibbles(x), hi = high_nibbles(x);
          const __m256i bit_lo = _mm256_set1_epi8(static_cast<char>(1 << (2 * j)));
          const __m256i bit_hi = _mm256_set1_epi8(static_cast<char>(2 << (2 * j)));
          const __m256i sixteen = _mm256_set1_epi8(16);
          lo = _mm256_add_epi8(
              lo,
              _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), sixteen));
          hi = _mm256_add_epi8(
              hi,
              _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), sixteen));
          step_lane<kT>(widen(lo), s, 2 * j, a, col, acc);
          step_lane<kT>(widen(hi), s, 2 * j + 1, a, col + 32, acc);
        } else {  // low nibbles: sub-block 2j, high: 2j + 1, widened straight to 16 bits
          const __m256i z0 = _mm256_cvtepu8_epi16(load128(b.qs + 32 * j));
          const __m256i z1 = _mm256_cvtepu8_epi16(load128(b.qs + 32 * j + 16));
          const __m256i m0f = _mm256_set1_epi16(0x0F);
          step_lane<kT>({_mm256_and_si256(z0, m0f), _mm256_and_si256(z1, m0f)}, s, 2 * j, a, col,
                        acc);
          step_lane<kT>({_mm256_srli_epi16(z0, 4), _mm256_srli_epi16(z1, 4)}, s, 2 * j + 1, a,
                        col + 32, acc);
        }
      }
      const __m256 mins =
          _mm256_mul_ps(bytes_to_floats(packed.min), _mm256_set1_ps(_cvtsh_ss(b.dmin)));
      for (int t = 0; t < kT; ++t)
        acc[t] =
            _mm256_fnmadd_ps(mins, _mm256_loadu_ps(a.block_sum.data() + t * nb + sb * 8), acc[t]);
    }
  }
};

// Q6_K: weight = d sc_s (q - 32), q = 4 bits of ql | 2 bits of qh << 4, sub-blocks s of 16.
// Each half of 128 weights takes ql[64] and qh[32] (llama.cpp's dequantize_row_q6_K order): its
// blocks of 32 are ql[0..31] and ql[32..63]'s low nibbles, then their high nibbles, with qh's
// bit pairs 0-1, 2-3, 4-5, 6-7. The codes q (0-63) stay bytes: vpmaddubsw multiplies them with
// each activation plane (U = 256 hi + lo) and sums pairs into int16 without saturating (2 * 63 *
// 128 < 2^15), and vpmaddwd weighs the planes (256 and 1) and sums pairs again: 32-bit lanes of
// four exact products each (under 2^24, so exact in f32 too), lanes 0-3 from sub-block 2k and
// 4-7 from 2k + 1 of block k, each scaled by its sc d d_x. The -32 comes out once per
// super-block through the activations' half-block sums. Nothing is widened to int16, which
// took three shuffles per block and made this the slowest of the k-quant kernels.
struct Q6_KKernel {
  template <int kT>
  QFORGE_AVX2 static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m256* acc) {
    using formats::gguf::BlockQ6_K;
    const int64_t nsuper = a.cols / formats::gguf::kQKK, nb = a.cols / kBlock;
    const __m256i m30 = _mm256_set1_epi8(0x30), ones = _mm256_set1_epi16(1);
    const __m256i hi_weight = _mm256_set1_epi16(a.two_planes ? 256 : 1);
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(p);
    __m256 offset[kT];  // sum over sub-blocks of sc d times the activations' half-block sums
    for (int t = 0; t < kT; ++t) offset[t] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nsuper; ++sb) {
      const BlockQ6_K& b = blk[sb];
      prefetch_ahead(&b, sizeof(BlockQ6_K));
      const __m128i sc = load128(b.scales);
      const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d));
      const __m256 first8 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), d);
      const __m256 last8 =
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))), d);
      // Per token: sc_s d d_x of the 16 sub-blocks (two per block of 32).
      alignas(32) float scale[kT][16];
      for (int t = 0; t < kT; ++t) {
        const __m256 dx = _mm256_loadu_ps(a.d.data() + t * nb + sb * 8);
        _mm256_store_ps(scale[t],
                        _mm256_mul_ps(first8, _mm256_permutevar8x32_ps(
                                                  dx, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3))));
        _mm256_store_ps(scale[t] + 8,
                        _mm256_mul_ps(last8, _mm256_permutevar8x32_ps(
                                                 dx, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7))));
        const float* half = a.half_sum.data() + t * 2 * nb + sb * 16;
        offset[t] = _mm256_fmadd_ps(first8, _mm256_loadu_ps(half), offset[t]);
        offset[t] = _mm256_fmadd_ps(last8, _mm256_loadu_ps(half + 8), offset[t]);
      }
      for (int n = 0; n < 2; ++n) {
        const __m256i ql0 = load256(b.ql + 64 * n), ql1 = load256(b.ql + 64 * n + 32);
        const __m256i qh = load256(b.qh + 32 * n);
        const __m256i q[4] = {
            _mm256_or_si256(low_nibbles(ql0), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
            _mm256_or_si256(low_nibbles(ql1), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
            _mm256_or_si256(high_nibbles(ql0), _mm256_and_si256(qh, m30)),
            _mm256_or_si256(high_nibbles(ql1), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))};
#pragma GCC unroll 4
        for (int m = 0; m < 4; ++m) {
          // Block k = 4n + m takes sub-blocks 2k, 2k + 1: lanes 2m, 2m + 1 of half n of scale.
          const __m256i pick = _mm256_setr_epi32(2 * m, 2 * m, 2 * m, 2 * m, 2 * m + 1, 2 * m + 1,
                                                 2 * m + 1, 2 * m + 1);
          const int64_t col = sb * formats::gguf::kQKK + 128 * n + 32 * m;
          for (int t = 0; t < kT; ++t) {
            const int64_t at = t * a.cols + col;
            const __m256i sums = _mm256_add_epi32(
                _mm256_madd_epi16(_mm256_maddubs_epi16(q[m], load256(a.hi.data() + at)), hi_weight),
                _mm256_madd_epi16(_mm256_maddubs_epi16(q[m], load256(a.lo.data() + at)), ones));
            acc[t] = _mm256_fmadd_ps(
                _mm256_cvtepi32_ps(sums),
                _mm256_permutevar8x32_ps(_mm256_load_ps(scale[t] + 8 * n), pick), acc[t]);
          }
        }
      }
    }
    for (int t = 0; t < kT; ++t) acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(32), offset[t], acc[t]);
  }
};

// The 8 sub-block scales of an IQ4_XS block in units of d (iq4_xs_scale, 8 lanes at once): the
// low 4 bits from scales_l's nibbles, the high 2 from scales_h, minus 32.
QFORGE_AVX2 inline __m256 iq4_xs_scales(const formats::gguf::BlockIQ4_XS& b) {
  uint32_t low;
  std::memcpy(&low, b.scales_l, 4);
  const __m256i lo =
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(low)),
                                         _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                       _mm256_set1_epi32(0xF));
  const __m256i hi =
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(b.scales_h),
                                         _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                       _mm256_set1_epi32(3));
  return _mm256_cvtepi32_ps(
      _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32)));
}

// IQ4_XS: weight = d (ls_k - 32) grid[q] in sub-block k of 32.
struct IQ4_XSKernel {
  template <int kT>
  QFORGE_AVX2 static void row(const uint8_t* p, const IntGroups&, const Activations& a,
                              __m256* acc) {
    using formats::gguf::BlockIQ4_XS;
    const int64_t nsuper = a.cols / formats::gguf::kQKK;
    const __m256i grid = table16(formats::gguf::kIq4nlValues);
    const auto* blk = reinterpret_cast<const BlockIQ4_XS*>(p);
    for (int64_t sb = 0; sb < nsuper; ++sb) {
      const BlockIQ4_XS& b = blk[sb];
      prefetch_ahead(&b, sizeof(BlockIQ4_XS));
      const BlockScales<kT, ScaleLookup::kBroadcast> s(
          _mm256_mul_ps(iq4_xs_scales(b), _mm256_set1_ps(_cvtsh_ss(b.d))), a, sb * 8);
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k)
        step_lane<kT>(widen(_mm256_shuffle_epi8(grid, planar_codes(b.qs + 16 * k))), s, k, a,
                      sb * formats::gguf::kQKK + 32 * k, acc);
    }
  }
};

// group_scale with the F16C conversion.
QFORGE_AVX2 inline float scale_at(const uint8_t* p, formats::ScaleType t) {
  if (t != formats::ScaleType::F16) return group_scale(p, t);
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// qforge's symmetric int4 / int8 in groups (a multiple of 32 wide): each group [scale][codes],
// codes stored offset by 8 / 128 (4-bit: two per byte, the first in the low nibble).
struct IntGroupsKernel {
  // A block's 32 codes as int16: 8-bit codes in order (stored + 128), 4-bit ones as [even | odd]
  // (two per byte, the first in the low nibble; stored + 8), zero-extended and split by a shift.
  QFORGE_AVX2 static Widened codes_of(const IntGroups& g, const uint8_t* codes) {
    if (g.bits == 8) {
      const __m128i flip = _mm_set1_epi8(-128);
      return {_mm256_cvtepi8_epi16(_mm_xor_si128(load128(codes), flip)),
              _mm256_cvtepi8_epi16(_mm_xor_si128(load128(codes + 16), flip))};
    }
    const __m256i z = _mm256_cvtepu8_epi16(load128(codes)), eight = _mm256_set1_epi16(8);
    return {_mm256_sub_epi16(_mm256_and_si256(z, _mm256_set1_epi16(0x0F)), eight),
            _mm256_sub_epi16(_mm256_srli_epi16(z, 4), eight)};
  }

  template <int kT>
  QFORGE_AVX2 static void row(const uint8_t* p, const IntGroups& g, const Activations& a,
                              __m256* acc) {
    if (!a.two_planes) return row_per_token<kT>(p, g, a, acc);
    if (g.bits == 8) return row_two_planes<kT, false>(p, g, a, acc);
    return row_two_planes<kT, true>(p, g, a, acc);
  }

  // Two-plane activations (a scale per block of 32), by how many blocks a group holds: 1, 2, 4
  // or a multiple of 8 walk the row 8 blocks (whole groups, or part of one) at a time with every
  // offset known at compile time; other widths (96, 160 ...) take a cursor.
  template <int kT, bool kEvenOdd>
  QFORGE_AVX2 static void row_two_planes(const uint8_t* p, const IntGroups& g, const Activations& a,
                                         __m256* acc) {
    const int64_t per_group = g.width / kBlock, nb = a.cols / kBlock;
    if (nb % 8 == 0) {
      if (per_group == 1) return row_chunks<kT, kEvenOdd, 1>(p, g, a, acc);
      if (per_group == 2) return row_chunks<kT, kEvenOdd, 2>(p, g, a, acc);
      if (per_group == 4) return row_chunks<kT, kEvenOdd, 4>(p, g, a, acc);
      if (per_group % 8 == 0) return row_chunks<kT, kEvenOdd, 8>(p, g, a, acc);
    }
    row_blocks<kT, kEvenOdd>(p, g, a, acc);
  }

  // kPerGroup blocks per group (8: a multiple of 8), rows a multiple of 8 blocks long.
  template <int kT, bool kEvenOdd, int kPerGroup>
  QFORGE_AVX2 static void row_chunks(const uint8_t* p, const IntGroups& g, const Activations& a,
                                     __m256* acc) {
    const int64_t nb = a.cols / kBlock, per_group = g.width / kBlock;
    const int64_t block_bytes = kBlock * g.bits / 8;
    for (int64_t b = 0; b < nb; b += 8) {
      // Chunk of 8 blocks: 8 / kPerGroup whole groups from `base`, or blocks (b % per_group) ..
      // + 7 of the group at `base`.
      const uint8_t* base = kPerGroup == 8 ? p + (b / per_group) * g.group_bytes
                                           : p + (b / kPerGroup) * g.group_bytes;
      const uint8_t* codes0 =
          base + g.scale_bytes + (kPerGroup == 8 ? (b % per_group) * block_bytes : 0);
      prefetch_ahead(codes0, 8 * block_bytes);
      __m256 scales;
      if constexpr (kPerGroup == 8) {
        scales = _mm256_set1_ps(scale_at(base, g.scale));
      } else {
        float v[8 / kPerGroup];
        for (int i = 0; i < 8 / kPerGroup; ++i) v[i] = scale_at(base + i * g.group_bytes, g.scale);
        if constexpr (kPerGroup == 1)
          scales = _mm256_setr_ps(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        else if constexpr (kPerGroup == 2)
          scales = _mm256_setr_ps(v[0], v[0], v[1], v[1], v[2], v[2], v[3], v[3]);
        else
          scales = _mm256_setr_ps(v[0], v[0], v[0], v[0], v[1], v[1], v[1], v[1]);
      }
      const BlockScales<kT> s(scales, a, b);
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const uint8_t* codes = kPerGroup == 8 ? codes0 + k * block_bytes
                                              : codes0 + (k / kPerGroup) * g.group_bytes +
                                                    (k % kPerGroup) * block_bytes;
        step_lane<kT, kEvenOdd>(codes_of(g, codes), s, k, a, (b + k) * kBlock, acc);
      }
    }
  }

  // Any group width: 8 blocks at a time with their scales as vectors, walking the groups with a
  // cursor (no division per block).
  template <int kT, bool kEvenOdd>
  QFORGE_AVX2 static void row_blocks(const uint8_t* p, const IntGroups& g, const Activations& a,
                                     __m256* acc) {
    const int64_t nb = a.cols / kBlock, per_group = g.width / kBlock;
    const int64_t block_bytes = kBlock * g.bits / 8;
    const uint8_t* group = p;  // the group of block b
    int64_t in_group = 0;      // b's index in it
    auto next = [&] {
      if (++in_group == per_group) {
        in_group = 0;
        group += g.group_bytes;
      }
    };
    auto codes = [&] { return group + g.scale_bytes + in_group * block_bytes; };
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
      prefetch_ahead(codes(), 8 * block_bytes);
      // Built in registers: eight scalar stores and a vector load would stall on forwarding.
      __m256 scales;
      if (in_group + 8 <= per_group) {
        scales = _mm256_set1_ps(scale_at(group, g.scale));
      } else {
        float v[8];
        const uint8_t* first_group = group;
        const int64_t first_in_group = in_group;
        for (int k = 0; k < 8; ++k, next()) v[k] = scale_at(group, g.scale);
        group = first_group;
        in_group = first_in_group;
        scales = _mm256_setr_ps(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
      }
      const BlockScales<kT> s(scales, a, b);
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k, next())
        step_lane<kT, kEvenOdd>(codes_of(g, codes()), s, k, a, (b + k) * kBlock, acc);
    }
    for (; b < nb; ++b, next())
      step<kT, kEvenOdd>(codes_of(g, codes()), scale_at(group, g.scale), a, b * kBlock, acc);
  }

  // W8A8 / W4A8 (one int8 scale per token): a whole group's products sum exactly in int32
  // (|w U| <= 128 * 127) and are scaled once, so the only rounding is that of the scaling and of
  // the sum over groups.
  template <int kT>
  QFORGE_AVX2 static void row_per_token(const uint8_t* p, const IntGroups& g, const Activations& a,
                                        __m256* acc) {
    const int64_t groups = a.cols / g.width, block_bytes = kBlock * g.bits / 8;
    const int16_t* u = g.bits == 8 ? units<false>(a) : units<true>(a);
    for (int64_t gi = 0; gi < groups; ++gi, p += g.group_bytes) {
      __m256i sums[kT];
      for (int t = 0; t < kT; ++t) sums[t] = _mm256_setzero_si256();
      const uint8_t* c = p + g.scale_bytes;
      for (int64_t k = 0; k < g.width / kBlock; ++k, c += block_bytes) {
        prefetch_ahead(c, block_bytes);
        const Widened wide = codes_of(g, c);
        for (int t = 0; t < kT; ++t)
          sums[t] = _mm256_add_epi32(sums[t],
                                     units_dot(wide, u + t * a.cols + gi * g.width + k * kBlock));
      }
      const float scale = scale_at(p, g.scale);
      for (int t = 0; t < kT; ++t)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t]),
                                 _mm256_set1_ps(scale * a.d[(t * a.cols + gi * g.width) / kBlock]),
                                 acc[t]);
    }
  }
};

// MXFP4, NVFP4 and fp4-gN, one instantiation per scale type (decoding a scale is then a load or a
// table lookup): each block of 32 weights' codes, from one or two groups, looked up in the doubled
// grid and dotted like the other formats, with half the group scales.
template <formats::ScaleType kScale>
struct Fp4GroupsKernel {
  QFORGE_AVX2 static float half_scale_at(const uint8_t* p, const Fp4Groups& g) {
    if constexpr (kScale == formats::ScaleType::E8M0 || kScale == formats::ScaleType::NvFp4)
      return g.half_scale_of_code[*p];
    else
      return 0.5f * group_scale(p, kScale);
  }

  template <int kT>
  QFORGE_AVX2 __attribute__((always_inline)) static void row(const uint8_t* p, const Fp4Groups& g,
                                                             const Activations& a, __m256* acc) {
    const __m256i grid = table16(e2m1_twice().data());
    const size_t gb = g.group_bytes;
    for (int64_t col = 0; col < a.cols; col += kBlock) {
      const uint8_t* group = p + (col / g.width) * gb;  // the group holding column col
      prefetch_ahead(group, 16 + 2 * static_cast<int64_t>(g.scale_bytes));
      if (g.width == 16) {  // two groups of 8 code bytes each
        const __m128i codes = _mm_unpacklo_epi64(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(group + g.scale_bytes)),
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(group + gb + g.scale_bytes)));
        step_halves<kT>(_mm256_shuffle_epi8(grid, sequential_codes(codes)), half_scale_at(group, g),
                        half_scale_at(group + gb, g), a, col, acc);
      } else {
        const __m128i codes = load128(group + g.scale_bytes + (col % g.width) / 2);
        step<kT>(_mm256_shuffle_epi8(grid, sequential_codes(codes)), half_scale_at(group, g), a,
                 col, acc);
      }
    }
  }
};

struct Avx2Kernels {
  using Q4_0 = BlocksKernel<formats::gguf::BlockQ4_0, Q4_0Codes>;
  using Q8_0 = BlocksKernel<formats::gguf::BlockQ8_0, Q8_0Codes>;
  using IQ4_NL = BlocksKernel<formats::gguf::BlockIQ4_NL, IQ4_NLCodes>;
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

// 32 int32 (four vectors of 8, each value within int8) as 32 bytes in order.
QFORGE_AVX2 static inline __m256i bytes_in_order(const __m256i* q, __m256i unpack_order) {
  return _mm256_permutevar8x32_epi32(
      _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])),
      unpack_order);
}

QFORGE_AVX2 void quantize_blocks(const float* x, int64_t blocks, Activations& a) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i ones = _mm256_set1_epi16(1);
  // Within each 128-bit lane: the even-indexed int16 first, then the odd ones.
  const __m256i even_odd = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0,
                                            1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  // Two in-lane packs leave the 4-byte groups in the order 0 4 1 5 2 6 3 7: this restores it.
  const __m256i unpack_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kBlock;
    __m256 v[4];
    __m256 amax8 = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    const float amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    const float d = amax / (127.0f * 256.0f), id = d > 0.0f ? 1.0f / d : 0.0f;
    // U = nearbyint(x / d) (vcvtps2dq rounds to nearest even, as nearbyint does), hi = floor((U
    // + 128) / 256) by an arithmetic shift, lo = U - 256 hi.
    __m256i u[4], h[4], l[4];
    for (int i = 0; i < 4; ++i) {
      u[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], _mm256_set1_ps(id)));
      h[i] = _mm256_srai_epi32(_mm256_add_epi32(u[i], _mm256_set1_epi32(128)), 8);
      l[i] = _mm256_sub_epi32(u[i], _mm256_slli_epi32(h[i], 8));
    }
    const size_t first = static_cast<size_t>(b * kBlock);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.hi.data() + first),
                        bytes_in_order(h, unpack_order));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.lo.data() + first),
                        bytes_in_order(l, unpack_order));
    const __m256i u0 = _mm256_permute4x64_epi64(_mm256_packs_epi32(u[0], u[1]), 0xD8);  // 0-15
    const __m256i u1 = _mm256_permute4x64_epi64(_mm256_packs_epi32(u[2], u[3]), 0xD8);  // 16-31
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.units.data() + first), u0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.units.data() + first + 16), u1);
    const __m256i e0 = _mm256_shuffle_epi8(u0, even_odd), e1 = _mm256_shuffle_epi8(u1, even_odd);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.units_even_odd.data() + first),
                        _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(e0, e1), 0xD8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.units_even_odd.data() + first + 16),
                        _mm256_permute4x64_epi64(_mm256_unpackhi_epi64(e0, e1), 0xD8));
    // Sums of each run of 4 codes: pairs by vpmaddwd, then pairs of pairs.
    const __m256i runs = _mm256_permutevar8x32_epi32(
        _mm256_hadd_epi32(_mm256_madd_epi16(u0, ones), _mm256_madd_epi16(u1, ones)),
        _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.lane_sum.data() + b * (kBlock / 4)),
                        _mm256_slli_epi32(runs, 7));
    _mm256_storeu_ps(a.lane_d.data() + b * (kBlock / 4), _mm256_set1_ps(d));
    // [runs 0-3 summed, runs 4-7 summed, ...]: the two halves of the block.
    __m128i halves =
        _mm_hadd_epi32(_mm256_castsi256_si128(runs), _mm256_extracti128_si256(runs, 1));
    halves = _mm_hadd_epi32(halves, halves);
    const int32_t first_half = _mm_cvtsi128_si32(halves);
    const int32_t second_half = _mm_extract_epi32(halves, 1);
    a.d[static_cast<size_t>(b)] = d;
    a.block_sum[static_cast<size_t>(b)] = d * static_cast<float>(first_half + second_half);
    a.half_sum[static_cast<size_t>(2 * b)] = d * static_cast<float>(first_half);
    a.half_sum[static_cast<size_t>(2 * b + 1)] = d * static_cast<float>(second_half);
  }
}

bool cpu_supports() {
  __builtin_cpu_init();
  // Every CPU with AVX2 and FMA has F16C (clang's __builtin_cpu_supports does not take "f16c").
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void gemv(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias) {
  gemv_with<Avx2Kernels>(l, w, r0, r1, a, y, ldy, bias);
}

}  // namespace qforge::kernels::q8::avx2
