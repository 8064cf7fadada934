// SIMD decoders, compiled once per Highway target (foreach_target) and chosen at run time.
//
// The idea shared by all of them: a group (or sub-block) has at most 16 distinct 4-bit values, so
// the group's scale is folded into a 16-entry table once and every code is one table lookup
// (a lane permute); 8-bit codes are widened and converted arithmetically. The table entries are
// computed with exactly the scalar decoder's operations, so the results are bit-identical.
// Codes of other widths (2, 3, 5, 6, 7 bits; GGUF's split high bits) are first assembled in int32
// lanes, then converted and scaled with the scalar decoder's operations in its order (integers)
// or looked up in 32 magnitudes folded with the scale (FP6).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "formats/simd_decode.cc"
#include "formats/simd_decode.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "formats/gguf_codec.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "qforge/core/dtype.h"
#include "qforge/formats/gguf_blocks.h"

HWY_BEFORE_NAMESPACE();
namespace qforge::formats::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using DU = hn::RebindToUnsigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;  // as many bytes as float lanes
using DI8 = hn::Rebind<int8_t, DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;

constexpr size_t kTable = 64;  // >= 16 and >= the widest vector's float lanes

// A 16-entry float table held in registers: one vector when a vector holds 16 floats (AVX-512),
// else 16/N slices. (x86 vectors are sized types, so an array of them is fine.)
struct Table16 {
  static constexpr size_t kSlices = hn::MaxLanes(DF()) >= 16 ? 1 : 16 / hn::MaxLanes(DF());
  VF slice[kSlices];
};

// table[c] = f(c) for c in [0, 16), where f maps a vector of codes (int32 lanes) to floats.
template <class F>
HWY_INLINE Table16 MakeTable(F f) {
  const DI di;
  const int32_t N = static_cast<int32_t>(hn::Lanes(di));
  Table16 t;
  for (size_t k = 0; k < Table16::kSlices; ++k) t.slice[k] = f(hn::Iota(di, k * N));
  return t;
}

// The table of 16 given floats.
HWY_INLINE Table16 LoadTable(const float* values) {
  const DF df;
  HWY_ALIGN float padded[kTable] = {};
  std::memcpy(padded, values, 16 * sizeof(float));
  Table16 t;
  for (size_t k = 0; k < Table16::kSlices; ++k)
    t.slice[k] = hn::Load(df, padded + k * hn::Lanes(df));
  return t;
}

// table[idx] for idx in [0, 16). Narrow vectors look up in every slice and keep the slice the
// index falls in.
HWY_INLINE VF Lookup16(const Table16& t, VI idx) {
  const DF df;
  const DI di;
  const size_t N = hn::Lanes(df);
  if constexpr (Table16::kSlices == 1) {
    return hn::TableLookupLanes(t.slice[0], hn::IndicesFromVec(df, idx));
  } else {
    const auto lanes =
        hn::IndicesFromVec(df, hn::And(idx, hn::Set(di, static_cast<int32_t>(N - 1))));
    VF r = hn::TableLookupLanes(t.slice[0], lanes);
    for (size_t k = 1; k < Table16::kSlices; ++k) {
      const auto in_slice =
          hn::RebindMask(df, hn::Gt(idx, hn::Set(di, static_cast<int32_t>(k * N) - 1)));
      r = hn::IfThenElse(in_slice, hn::TableLookupLanes(t.slice[k], lanes), r);
    }
    return r;
  }
}

#if HWY_TARGET != HWY_SCALAR
// N codes from N/2 bytes, low nibble first, as int32 lanes: widen each byte to 16 bits and move
// its high nibble into the high byte, so the bytes of the result are the codes in order.
HWY_INLINE VI SequentialNibbles(const uint8_t* HWY_RESTRICT p) {
  const hn::Half<DU8> d8h;
  const hn::Rebind<uint16_t, decltype(d8h)> d16;
  const hn::Repartition<uint8_t, decltype(d16)> d8;
  const auto x = hn::PromoteTo(d16, hn::LoadU(d8h, p));
  const auto pair =
      hn::Or(hn::And(x, hn::Set(d16, 0x0F)), hn::ShiftLeft<4>(hn::And(x, hn::Set(d16, 0xF0))));
  return hn::PromoteTo(DI(), hn::BitCast(d8, pair));
}
#endif

template <bool kZero>
void DecodeRowNibblesT(const RowGroups& row, const float* unit, float* HWY_RESTRICT out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const Table16 unit_table = LoadTable(unit);
  const int64_t vector_end = row.width - row.width % N;
  for (int64_t g = 0; g < row.groups; ++g) {
    const float scale = row.scales[g];
    const float zero = kZero ? static_cast<float>(row.zeros[g]) : 0.0f;
    // (unit - zero) * scale: the scalar decoder's operations, so the same roundings.
    Table16 tab;
    for (size_t k = 0; k < Table16::kSlices; ++k)
      tab.slice[k] =
          hn::Mul(kZero ? hn::Sub(unit_table.slice[k], hn::Set(df, zero)) : unit_table.slice[k],
                  hn::Set(df, scale));
    const uint8_t* p = row.codes + g * row.stride;
    float* o = out + g * row.width;
    int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
    for (; i < vector_end; i += N)
      hn::StoreU(Lookup16(tab, SequentialNibbles(p + i / 2)), df, o + i);
#endif
    for (; i < row.width; ++i) o[i] = (unit[(p[i >> 1] >> ((i & 1) * 4)) & 15] - zero) * scale;
  }
  (void)vector_end;
}

void DecodeRowNibbles(const RowGroups& row, const float* unit, float* HWY_RESTRICT out) {
  if (row.zeros)
    DecodeRowNibblesT<true>(row, unit, out);
  else
    DecodeRowNibblesT<false>(row, unit, out);
}

// Unit values of N 8-bit codes.
template <ByteCode kKind>
HWY_INLINE VF ByteUnits(const uint8_t* HWY_RESTRICT p, VI zero) {
  const DF df;
  const DI di;
  const DU du;
  if constexpr (kKind == ByteCode::MinusZero) {
    return hn::ConvertTo(df, hn::Sub(hn::PromoteTo(di, hn::LoadU(DU8(), p)), zero));
  } else if constexpr (kKind == ByteCode::MxInt8) {
    const auto q = hn::PromoteTo(di, hn::LoadU(DI8(), reinterpret_cast<const int8_t*>(p)));
    return hn::Mul(hn::ConvertTo(df, q), hn::Set(df, 1.0f / 64.0f));
  } else {
    // Place exponent and mantissa where float32 keeps them and rescale by 2^(127 - bias): exact
    // for normal and subnormal codes alike. The top binade is patched for NaN (and E5M2's Inf).
    constexpr int kShift = kKind == ByteCode::E4M3 ? 20 : 21;
    const float rebias = kKind == ByteCode::E4M3 ? 0x1p120f : 0x1p112f;
    const auto u = hn::PromoteTo(du, hn::LoadU(DU8(), p));
    const auto mag = hn::And(u, hn::Set(du, 0x7Fu));
    VF v = hn::Mul(hn::BitCast(df, hn::ShiftLeft<kShift>(mag)), hn::Set(df, rebias));
    if constexpr (kKind == ByteCode::E4M3) {
      const auto nan = hn::RebindMask(df, hn::Eq(mag, hn::Set(du, 0x7Fu)));
      v = hn::IfThenElse(nan, hn::BitCast(df, hn::Set(du, 0x7FC00000u)), v);
    } else {
      const auto top =
          hn::RebindMask(df, hn::Eq(hn::And(mag, hn::Set(du, 0x7Cu)), hn::Set(du, 0x7Cu)));
      const auto special =
          hn::Or(hn::Set(du, 0x7F800000u), hn::ShiftLeft<21>(hn::And(mag, hn::Set(du, 3u))));
      v = hn::IfThenElse(top, hn::BitCast(df, special), v);
    }
    const auto sign = hn::ShiftLeft<24>(hn::And(u, hn::Set(du, 0x80u)));
    return hn::BitCast(df, hn::Or(hn::BitCast(du, v), sign));
  }
}

template <ByteCode kKind>
void DecodeRowBytesT(const RowGroups& row, float* HWY_RESTRICT out) {
  const DF df;
  const DI di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t g = 0; g < row.groups; ++g) {
    const auto scale = hn::Set(df, row.scales[g]);
    const auto zero = hn::Set(di, row.zeros ? row.zeros[g] : 0);
    const uint8_t* p = row.codes + g * row.stride;
    float* o = out + g * row.width;
    int64_t i = 0;
    for (; i + N <= row.width; i += N)
      hn::StoreU(hn::Mul(ByteUnits<kKind>(p + i, zero), scale), df, o + i);
    if (i < row.width) {  // tail: the same arithmetic on a zero-padded copy
      HWY_ALIGN uint8_t tmp[kTable] = {};
      HWY_ALIGN float res[kTable];
      std::memcpy(tmp, p + i, static_cast<size_t>(row.width - i));
      hn::Store(hn::Mul(ByteUnits<kKind>(tmp, zero), scale), df, res);
      std::memcpy(o + i, res, static_cast<size_t>(row.width - i) * sizeof(float));
    }
  }
}

void DecodeRowBytes(const RowGroups& row, ByteCode kind, float* HWY_RESTRICT out) {
  switch (kind) {
    case ByteCode::MinusZero:
      return DecodeRowBytesT<ByteCode::MinusZero>(row, out);
    case ByteCode::MxInt8:
      return DecodeRowBytesT<ByteCode::MxInt8>(row, out);
    case ByteCode::E4M3:
      return DecodeRowBytesT<ByteCode::E4M3>(row, out);
    case ByteCode::E5M2:
      return DecodeRowBytesT<ByteCode::E5M2>(row, out);
  }
}

// ------------------------------------------------------------------------ bit-packed codes

#if HWY_TARGET != HWY_SCALAR
// Codes of `bits` (2..8) packed LSB first, a chunk of kChunk codes (a multiple of 8 codes, so
// whole bytes, and at most 16 bytes) at a time. The chunk's bytes are broadcast to every 128-bit
// block (byte shuffles stay within a block); each int32 lane gathers the one or two bytes its
// code straddles, then shifts it down and masks it.
struct BitUnpacker {
  using DB = hn::Repartition<uint8_t, DF>;
  using VB = hn::Vec<DB>;
  static constexpr int kN = static_cast<int>(hn::MaxLanes(DF()));
  static constexpr int kChunk = kN < 8 ? 8 : kN;
  static constexpr int kVectors = kChunk / kN;

  explicit BitUnpacker(int bits) : chunk_bytes(kChunk * bits / 8) {
    HWY_ALIGN uint8_t from[kChunk * 4];
    HWY_ALIGN uint32_t shift[kChunk];
    for (int k = 0; k < kChunk; ++k) {
      const int bit = k * bits;
      from[4 * k] = static_cast<uint8_t>(bit >> 3);
      from[4 * k + 1] = static_cast<uint8_t>((bit + bits - 1) >> 3);
      from[4 * k + 2] = from[4 * k + 3] = 0x80;  // zero
      shift[k] = static_cast<uint32_t>(bit & 7);
    }
    for (int v = 0; v < kVectors; ++v) {
      from_[v] = hn::Load(DB(), from + 4 * kN * v);
      shift_[v] = hn::Load(DU(), shift + kN * v);
    }
    mask_ = hn::Set(DU(), (1u << bits) - 1);
  }

  // The 16 bytes from p, in every block (only the first chunk_bytes are used).
  static VB Load(const uint8_t* p) { return hn::LoadDup128(DB(), p); }
  // Codes [v * kN, (v + 1) * kN) of the chunk.
  hn::Vec<DU> Codes(VB bytes, int v) const {
    const auto pair = hn::BitCast(DU(), hn::TableLookupBytesOr0(bytes, from_[v]));
    return hn::And(pair >> shift_[v], mask_);
  }

  const int chunk_bytes;

 private:
  VB from_[kVectors];
  hn::Vec<DU> shift_[kVectors];
  hn::Vec<DU> mask_;
};
#endif

template <BitCode kKind>
void DecodeRowBitsT(const RowGroups& row, int bits, const float* magnitudes, const uint8_t* end,
                    float* HWY_RESTRICT out) {
  const DF df;
  const DI di;
  const DU du;
  const int64_t width = row.width;
  // Sign-magnitude codes: the group scale is folded into two 16-entry tables of magnitudes and
  // the sign applied after (-x * s is -(x * s) bit for bit).
  Table16 mag_lo, mag_hi;
  if constexpr (kKind == BitCode::SignMagnitude) {
    mag_lo = LoadTable(magnitudes);
    mag_hi = LoadTable(magnitudes + 16);
  }
#if HWY_TARGET != HWY_SCALAR
  constexpr int kN = BitUnpacker::kN, kChunk = BitUnpacker::kChunk;
  const BitUnpacker unpack(bits);
  const int64_t step = unpack.chunk_bytes, chunks = width / kChunk;
  const int64_t code_bytes = (width * bits + 7) / 8;
#else
  (void)end;
#endif
  for (int64_t g = 0; g < row.groups; ++g) {
    const VF scale = hn::Set(df, row.scales[g]);
    const VI zero = hn::Set(di, row.zeros ? row.zeros[g] : 0);
    Table16 lo, hi;
    if constexpr (kKind == BitCode::SignMagnitude) {
      for (size_t k = 0; k < Table16::kSlices; ++k) {
        lo.slice[k] = hn::Mul(mag_lo.slice[k], scale);
        hi.slice[k] = hn::Mul(mag_hi.slice[k], scale);
      }
    }
    // unit(code) * scale for N codes in int32 lanes.
    const auto value = [&](hn::Vec<DU> code) -> VF {
      if constexpr (kKind == BitCode::SignMagnitude) {
        const VI low4 = hn::BitCast(di, hn::And(code, hn::Set(du, 15u)));
        const auto upper = hn::RebindMask(df, hn::TestBit(code, hn::Set(du, 16u)));
        const VF v = hn::IfThenElse(upper, Lookup16(hi, low4), Lookup16(lo, low4));
        const auto sign = hn::ShiftLeft<26>(hn::And(code, hn::Set(du, 32u)));
        return hn::BitCast(df, hn::Xor(hn::BitCast(du, v), sign));
      } else {
        return hn::Mul(hn::ConvertTo(df, hn::Sub(hn::BitCast(di, code), zero)), scale);
      }
    };
    const uint8_t* p = row.codes + g * row.stride;
    float* o = out + g * width;
#if HWY_TARGET == HWY_SCALAR
    for (int64_t i = 0; i < width; ++i) {
      const int64_t bit = i * bits;
      const uint32_t pair = p[bit >> 3] | static_cast<uint32_t>(p[(bit + bits - 1) >> 3]) << 8;
      hn::StoreU(value(hn::Set(du, (pair >> (bit & 7)) & ((1u << bits) - 1))), df, o + i);
    }
#else
    const auto chunk = [&](BitUnpacker::VB bytes, float* HWY_RESTRICT to) {
      for (int v = 0; v < BitUnpacker::kVectors; ++v)
        hn::StoreU(value(unpack.Codes(bytes, v)), df, to + v * kN);
    };
    int64_t c = 0;
    // The 16-byte loads may run past the group (into the next one's bytes), not past `end`.
    if (chunks > 0 && end - (p + (chunks - 1) * step) >= 16)
      for (; c < chunks; ++c) chunk(BitUnpacker::Load(p + c * step), o + c * kChunk);
    for (; c * kChunk < width; ++c) {  // the rest: the same on a zero-padded copy
      HWY_ALIGN uint8_t tmp[16] = {};
      HWY_ALIGN float res[kChunk];
      std::memcpy(tmp, p + c * step,
                  static_cast<size_t>(std::min<int64_t>(16, code_bytes - c * step)));
      chunk(BitUnpacker::Load(tmp), res);
      std::memcpy(o + c * kChunk, res,
                  static_cast<size_t>(std::min<int64_t>(kChunk, width - c * kChunk)) * 4);
    }
#endif
  }
}

void DecodeRowBits(const RowGroups& row, int bits, BitCode kind, const float* magnitudes,
                   const uint8_t* end, float* HWY_RESTRICT out) {
  if (kind == BitCode::SignMagnitude)
    return DecodeRowBitsT<BitCode::SignMagnitude>(row, bits, magnitudes, end, out);
  DecodeRowBitsT<BitCode::MinusZero>(row, bits, magnitudes, end, out);
}

// ------------------------------------------------------------------------------------ GGUF

// lo[j] = tab_lo[p[j] & 15], hi[j] = tab_hi[p[j] >> 4] for j < n: llama.cpp's layout, where the
// low nibbles of a run of bytes are one run of weights and the high nibbles the next.
HWY_INLINE void PlanarNibbles(const uint8_t* HWY_RESTRICT p, int n, const Table16& tab_lo,
                              const Table16& tab_hi, float* HWY_RESTRICT lo,
                              float* HWY_RESTRICT hi) {
  const DF df;
  const DI di;
  const int N = static_cast<int>(hn::Lanes(df));
  int j = 0;
  for (; j + N <= n; j += N) {
    const auto b = hn::PromoteTo(di, hn::LoadU(DU8(), p + j));
    hn::StoreU(Lookup16(tab_lo, hn::And(b, hn::Set(di, 15))), df, lo + j);
    hn::StoreU(Lookup16(tab_hi, hn::ShiftRight<4>(b)), df, hi + j);
  }
  for (; j < n; ++j) {  // only when n is not a multiple of N (never for the GGUF block sizes)
    HWY_ALIGN float one[kTable];
    hn::Store(Lookup16(tab_lo, hn::Set(di, p[j] & 15)), df, one);
    lo[j] = one[0];
    hn::Store(Lookup16(tab_hi, hn::Set(di, p[j] >> 4)), df, one);
    hi[j] = one[0];
  }
}

void DecodeQ4_0(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const DI di;
  for (int64_t b = 0; b < nblocks; ++b, y += gguf::kQK) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ4_0*>(p + b * sizeof(gguf::BlockQ4_0));
    const auto d = hn::Set(df, f16_to_f32(blk->d));
    const Table16 tab =
        MakeTable([&](VI c) { return hn::Mul(hn::ConvertTo(df, hn::Sub(c, hn::Set(di, 8))), d); });
    PlanarNibbles(blk->qs, gguf::kQK / 2, tab, tab, y, y + gguf::kQK / 2);
  }
}

void DecodeQ4_1(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  for (int64_t b = 0; b < nblocks; ++b, y += gguf::kQK) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ4_1*>(p + b * sizeof(gguf::BlockQ4_1));
    const auto d = hn::Set(df, f16_to_f32(blk->d)), m = hn::Set(df, f16_to_f32(blk->m));
    const Table16 tab =
        MakeTable([&](VI c) { return hn::Add(hn::Mul(hn::ConvertTo(df, c), d), m); });
    PlanarNibbles(blk->qs, gguf::kQK / 2, tab, tab, y, y + gguf::kQK / 2);
  }
}

// The IQ4 grid (int8 levels) as floats.
HWY_INLINE Table16 Iq4Levels() {
  float levels[16];
  for (int c = 0; c < 16; ++c) levels[c] = static_cast<float>(gguf::kIq4nlValues[c]);
  return LoadTable(levels);
}

HWY_INLINE Table16 Scaled(VF d, const Table16& t) {
  Table16 r;
  for (size_t k = 0; k < Table16::kSlices; ++k) r.slice[k] = hn::Mul(d, t.slice[k]);
  return r;
}

void DecodeIq4Nl(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const Table16 levels = Iq4Levels();
  for (int64_t b = 0; b < nblocks; ++b, y += gguf::kQK) {
    const auto* blk = reinterpret_cast<const gguf::BlockIQ4_NL*>(p + b * sizeof(gguf::BlockIQ4_NL));
    const Table16 tab = Scaled(hn::Set(df, f16_to_f32(blk->d)), levels);
    PlanarNibbles(blk->qs, gguf::kQK / 2, tab, tab, y, y + gguf::kQK / 2);
  }
}

void DecodeIq4Xs(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const Table16 levels = Iq4Levels();
  for (int64_t b = 0; b < nblocks; ++b) {
    const auto* blk = reinterpret_cast<const gguf::BlockIQ4_XS*>(p + b * sizeof(gguf::BlockIQ4_XS));
    const float d = f16_to_f32(blk->d);
    for (int ib = 0; ib < gguf::kQKK / 32; ++ib, y += 32) {
      const int ls = (((blk->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
                      (((blk->scales_h >> 2 * ib) & 3) << 4)) -
                     32;
      const Table16 tab = Scaled(hn::Set(df, d * static_cast<float>(ls)), levels);
      PlanarNibbles(blk->qs + 16 * ib, 16, tab, tab, y, y + 16);
    }
  }
}

// The 6-bit scale and min of sub-block k of a Q4_K/Q5_K block (llama.cpp's get_scale_min_k4).
HWY_INLINE void ScaleMinK4(const uint8_t* s, int k, uint8_t* sc, uint8_t* mn) {
  if (k < 4) {
    *sc = s[k] & 63;
    *mn = s[k + 4] & 63;
  } else {
    *sc = (s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4);
    *mn = (s[k + 4] >> 4) | ((s[k] >> 6) << 4);
  }
}

void DecodeQ4_K(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  for (int64_t b = 0; b < nblocks; ++b) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ4_K*>(p + b * sizeof(gguf::BlockQ4_K));
    const float d = f16_to_f32(blk->d), dmin = f16_to_f32(blk->dmin);
    for (int j = 0; j < 4; ++j, y += 64) {
      uint8_t sc[2], mn[2];
      for (int h = 0; h < 2; ++h) ScaleMinK4(blk->scales, 2 * j + h, &sc[h], &mn[h]);
      const auto d1 = hn::Set(df, d * sc[0]), m1 = hn::Set(df, dmin * mn[0]);
      const auto d2 = hn::Set(df, d * sc[1]), m2 = hn::Set(df, dmin * mn[1]);
      const Table16 lo =
          MakeTable([&](VI c) { return hn::Sub(hn::Mul(d1, hn::ConvertTo(df, c)), m1); });
      const Table16 hi =
          MakeTable([&](VI c) { return hn::Sub(hn::Mul(d2, hn::ConvertTo(df, c)), m2); });
      PlanarNibbles(blk->qs + 32 * j, 32, lo, hi, y, y + 32);
    }
  }
}

void DecodeQ8_0(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const DI di;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int64_t b = 0; b < nblocks; ++b, y += gguf::kQK) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ8_0*>(p + b * sizeof(gguf::BlockQ8_0));
    const auto d = hn::Set(df, f16_to_f32(blk->d));
    int j = 0;
    for (; j + N <= gguf::kQK; j += N)
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(DI8(), blk->qs + j))), d),
                 df, y + j);
    for (; j < gguf::kQK; ++j) y[j] = static_cast<float>(blk->qs[j]) * hn::GetLane(d);
  }
}

void DecodeQ6_K(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const DI di;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto k3 = hn::Set(di, 3), k15 = hn::Set(di, 15), k32 = hn::Set(di, 32);
  for (int64_t b = 0; b < nblocks; ++b) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ6_K*>(p + b * sizeof(gguf::BlockQ6_K));
    const float d = f16_to_f32(blk->d);
    const uint8_t* ql = blk->ql;
    const uint8_t* qh = blk->qh;
    const int8_t* sc = blk->scales;
    for (int n = 0; n < gguf::kQKK; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      // Sub-blocks of 16 share a scale; N <= 16 lanes at a time stay inside one.
      for (int l0 = 0; l0 < 32; l0 += 16) {
        const int is = l0 / 16;
        const auto s1 = hn::Set(df, d * sc[is + 0]), s2 = hn::Set(df, d * sc[is + 2]);
        const auto s3 = hn::Set(df, d * sc[is + 4]), s4 = hn::Set(df, d * sc[is + 6]);
        for (int l = l0; l < l0 + 16; l += N) {
          const auto a = hn::PromoteTo(di, hn::LoadU(DU8(), ql + l));
          const auto c = hn::PromoteTo(di, hn::LoadU(DU8(), ql + l + 32));
          const auto h = hn::PromoteTo(di, hn::LoadU(DU8(), qh + l));
          const auto q1 = hn::Or(hn::And(a, k15), hn::ShiftLeft<4>(hn::And(h, k3)));
          const auto q2 =
              hn::Or(hn::And(c, k15), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(h), k3)));
          const auto q3 =
              hn::Or(hn::ShiftRight<4>(a), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(h), k3)));
          const auto q4 = hn::Or(hn::ShiftRight<4>(c), hn::ShiftLeft<4>(hn::ShiftRight<6>(h)));
          hn::StoreU(hn::Mul(s1, hn::ConvertTo(df, hn::Sub(q1, k32))), df, y + l);
          hn::StoreU(hn::Mul(s2, hn::ConvertTo(df, hn::Sub(q2, k32))), df, y + l + 32);
          hn::StoreU(hn::Mul(s3, hn::ConvertTo(df, hn::Sub(q3, k32))), df, y + l + 64);
          hn::StoreU(hn::Mul(s4, hn::ConvertTo(df, hn::Sub(q4, k32))), df, y + l + 96);
        }
      }
    }
  }
}

// Q5_0 / Q5_1: weight j's low four bits are nibble j of qs (low nibbles first, as Q4_0) and its
// fifth bit is bit j of qh. f maps the 5-bit codes (int32 lanes) to the outputs.
template <class F>
HWY_INLINE void Q5Block(const uint8_t* HWY_RESTRICT qs, const uint8_t* qh_bytes, F f,
                        float* HWY_RESTRICT y) {
  const DF df;
  const DI di;
  const DU du;
  const int N = static_cast<int>(hn::Lanes(df));
  uint32_t qh_bits;
  std::memcpy(&qh_bits, qh_bytes, 4);
  const auto qh = hn::Set(du, qh_bits), one = hn::Set(du, 1u);
  for (int j = 0; j < gguf::kQK / 2; j += N) {
    const auto x = hn::PromoteTo(di, hn::LoadU(DU8(), qs + j));
    const auto h0 = hn::And(qh >> hn::Iota(du, j), one);
    const auto h1 = hn::And(qh >> hn::Iota(du, j + gguf::kQK / 2), one);
    const auto q0 = hn::Or(hn::And(x, hn::Set(di, 15)), hn::BitCast(di, hn::ShiftLeft<4>(h0)));
    const auto q1 = hn::Or(hn::ShiftRight<4>(x), hn::BitCast(di, hn::ShiftLeft<4>(h1)));
    hn::StoreU(f(q0), df, y + j);
    hn::StoreU(f(q1), df, y + j + gguf::kQK / 2);
  }
}

void DecodeQ5_0(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const DI di;
  for (int64_t b = 0; b < nblocks; ++b, y += gguf::kQK) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ5_0*>(p + b * sizeof(gguf::BlockQ5_0));
    const auto d = hn::Set(df, f16_to_f32(blk->d));
    Q5Block(
        blk->qs, blk->qh,
        [&](VI q) { return hn::Mul(hn::ConvertTo(df, hn::Sub(q, hn::Set(di, 16))), d); }, y);
  }
}

void DecodeQ5_1(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  for (int64_t b = 0; b < nblocks; ++b, y += gguf::kQK) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ5_1*>(p + b * sizeof(gguf::BlockQ5_1));
    const auto d = hn::Set(df, f16_to_f32(blk->d)), m = hn::Set(df, f16_to_f32(blk->m));
    // q * d is exact (5 x 11 significant bits), so a fused multiply-add rounds the same.
    Q5Block(
        blk->qs, blk->qh, [&](VI q) { return hn::Add(hn::Mul(hn::ConvertTo(df, q), d), m); }, y);
  }
}

// In Q2_K, Q3_K and Q5_K the scale of a sub-block times a code is exact (at most 22 significant
// bits), so whether the compiler fuses dl * q - ml or not, the one rounding is the subtraction's.

void DecodeQ2_K(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const DI di;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto k3 = hn::Set(di, 3);
  for (int64_t b = 0; b < nblocks; ++b) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ2_K*>(p + b * sizeof(gguf::BlockQ2_K));
    // The 16 sub-block scales and mins, d * (sc & 15) and dmin * (sc >> 4), a vector at a time.
    HWY_ALIGN float dl[16], ml[16];
    const auto d = hn::Set(df, f16_to_f32(blk->d)), dmin = hn::Set(df, f16_to_f32(blk->dmin));
    for (int k = 0; k < 16; k += N) {
      const auto sc = hn::PromoteTo(di, hn::LoadU(DU8(), blk->scales + k));
      hn::Store(hn::Mul(d, hn::ConvertTo(df, hn::And(sc, hn::Set(di, 15)))), df, dl + k);
      hn::Store(hn::Mul(dmin, hn::ConvertTo(df, hn::ShiftRight<4>(sc))), df, ml + k);
    }
    for (int n = 0; n < 2; ++n, y += 128) {
      // Weight 32j + l of this half is bits 2j of q[l], in sub-block 8n + 2j + l / 16.
      const uint8_t* q = blk->qs + 32 * n;
      for (int l = 0; l < 32; l += N) {
        const auto x = hn::PromoteTo(di, hn::LoadU(DU8(), q + l));
        HWY_UNROLL(4)
        for (int j = 0; j < 4; ++j) {
          const int k = 8 * n + 2 * j + l / 16;
          const auto code = hn::And(hn::ShiftRightSame(x, 2 * j), k3);
          hn::StoreU(
              hn::Sub(hn::Mul(hn::Set(df, dl[k]), hn::ConvertTo(df, code)), hn::Set(df, ml[k])), df,
              y + 32 * j + l);
        }
      }
    }
  }
}

void DecodeQ3_K(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const DI di;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto k1 = hn::Set(di, 1), k3 = hn::Set(di, 3), k4 = hn::Set(di, 4);
  for (int64_t b = 0; b < nblocks; ++b) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ3_K*>(p + b * sizeof(gguf::BlockQ3_K));
    // The 16 sub-block scales d * (sc - 32), a vector at a time.
    HWY_ALIGN int8_t sc[16];
    HWY_ALIGN float dl[16];
    gguf::q3_scales(blk->scales, sc);
    const auto d = hn::Set(df, f16_to_f32(blk->d));
    for (int k = 0; k < 16; k += N) {
      const auto s = hn::Sub(hn::PromoteTo(di, hn::LoadU(DI8(), sc + k)), hn::Set(di, 32));
      hn::Store(hn::Mul(d, hn::ConvertTo(df, s)), df, dl + k);
    }
    for (int n = 0; n < 2; ++n, y += 128) {
      // As Q2_K, plus a third bit: bit 4n + j of hmask[l] (clear means -4).
      const uint8_t* q = blk->qs + 32 * n;
      for (int l = 0; l < 32; l += N) {
        const auto x = hn::PromoteTo(di, hn::LoadU(DU8(), q + l));
        const auto hm =
            hn::ShiftRightSame(hn::PromoteTo(di, hn::LoadU(DU8(), blk->hmask + l)), 4 * n);
        HWY_UNROLL(4)
        for (int j = 0; j < 4; ++j) {
          const int k = 8 * n + 2 * j + l / 16;
          const auto lo = hn::And(hn::ShiftRightSame(x, 2 * j), k3);
          const auto hi = hn::ShiftLeft<2>(hn::And(hn::ShiftRightSame(hm, j), k1));
          const auto code = hn::Sub(hn::Or(lo, hi), k4);
          hn::StoreU(hn::Mul(hn::Set(df, dl[k]), hn::ConvertTo(df, code)), df, y + 32 * j + l);
        }
      }
    }
  }
}

void DecodeQ5_K(const uint8_t* p, int64_t nblocks, float* y) {
  const DF df;
  const DI di;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto k1 = hn::Set(di, 1), k15 = hn::Set(di, 15);
  for (int64_t b = 0; b < nblocks; ++b) {
    const auto* blk = reinterpret_cast<const gguf::BlockQ5_K*>(p + b * sizeof(gguf::BlockQ5_K));
    const float d = f16_to_f32(blk->d), dmin = f16_to_f32(blk->dmin);
    const uint8_t* ql = blk->qs;
    for (int j = 0; j < 4; ++j, y += 64, ql += 32) {
      // Q4_K's layout; the fifth bit of weight l (l + 32) is bit 2j (2j + 1) of qh[l].
      uint8_t sc[2], mn[2];
      for (int h = 0; h < 2; ++h) ScaleMinK4(blk->scales, 2 * j + h, &sc[h], &mn[h]);
      const auto d1 = hn::Set(df, d * sc[0]), m1 = hn::Set(df, dmin * mn[0]);
      const auto d2 = hn::Set(df, d * sc[1]), m2 = hn::Set(df, dmin * mn[1]);
      for (int l = 0; l < 32; l += N) {
        const auto x = hn::PromoteTo(di, hn::LoadU(DU8(), ql + l));
        const auto qh = hn::ShiftRightSame(hn::PromoteTo(di, hn::LoadU(DU8(), blk->qh + l)), 2 * j);
        const auto lo = hn::Or(hn::And(x, k15), hn::ShiftLeft<4>(hn::And(qh, k1)));
        const auto hi =
            hn::Or(hn::ShiftRight<4>(x), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<1>(qh), k1)));
        hn::StoreU(hn::Sub(hn::Mul(d1, hn::ConvertTo(df, lo)), m1), df, y + l);
        hn::StoreU(hn::Sub(hn::Mul(d2, hn::ConvertTo(df, hi)), m2), df, y + l + 32);
      }
    }
  }
}

void DecodeGguf(GgufType type, const uint8_t* blocks, int64_t nblocks, float* out) {
  switch (type) {
    case GgufType::Q4_0:
      return DecodeQ4_0(blocks, nblocks, out);
    case GgufType::Q4_1:
      return DecodeQ4_1(blocks, nblocks, out);
    case GgufType::Q5_0:
      return DecodeQ5_0(blocks, nblocks, out);
    case GgufType::Q5_1:
      return DecodeQ5_1(blocks, nblocks, out);
    case GgufType::Q8_0:
      return DecodeQ8_0(blocks, nblocks, out);
    case GgufType::Q2_K:
      return DecodeQ2_K(blocks, nblocks, out);
    case GgufType::Q3_K:
      return DecodeQ3_K(blocks, nblocks, out);
    case GgufType::Q4_K:
      return DecodeQ4_K(blocks, nblocks, out);
    case GgufType::Q5_K:
      return DecodeQ5_K(blocks, nblocks, out);
    case GgufType::Q6_K:
      return DecodeQ6_K(blocks, nblocks, out);
    case GgufType::IQ4_NL:
      return DecodeIq4Nl(blocks, nblocks, out);
    case GgufType::IQ4_XS:
      return DecodeIq4Xs(blocks, nblocks, out);
  }
}

// --- Fused decode-and-dot: the decoders above, with each decoded vector multiplied straight
// into the activations of up to kDotTokens tokens instead of stored (decode, 1-8 tokens).

// Per-token sums in registers; one decoded weight vector serves every token.
template <int kT>
struct TokenSums {
  VF acc[kT];
  float tail[kT] = {};
  HWY_INLINE TokenSums() {
    for (VF& a : acc) a = hn::Zero(DF());
  }
  HWY_INLINE void Add(VF w, const float* HWY_RESTRICT x, size_t ldx, int64_t col) {
    for (int t = 0; t < kT; ++t) acc[t] = hn::MulAdd(w, hn::LoadU(DF(), x + t * ldx + col), acc[t]);
  }
  HWY_INLINE void AddOne(float w, const float* HWY_RESTRICT x, size_t ldx, int64_t col) {
    for (int t = 0; t < kT; ++t) tail[t] += w * x[t * ldx + col];
  }
  HWY_INLINE void Store(float* out) const {
    for (int t = 0; t < kT; ++t) out[t] = hn::GetLane(hn::SumOfLanes(DF(), acc[t])) + tail[t];
  }
};

template <int kT, bool kZero>
void DotRowNibblesT(const RowGroups& row, const float* unit, const float* HWY_RESTRICT x,
                    size_t ldx, float* out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const Table16 unit_table = LoadTable(unit);
  const int64_t vector_end = row.width - row.width % N;
  TokenSums<kT> sums;
  for (int64_t g = 0; g < row.groups; ++g) {
    const float scale = row.scales[g];
    const float zero = kZero ? static_cast<float>(row.zeros[g]) : 0.0f;
    Table16 tab;  // the decoder's table: the same weights, bit for bit
    for (size_t k = 0; k < Table16::kSlices; ++k)
      tab.slice[k] =
          hn::Mul(kZero ? hn::Sub(unit_table.slice[k], hn::Set(df, zero)) : unit_table.slice[k],
                  hn::Set(df, scale));
    const uint8_t* p = row.codes + g * row.stride;
    const int64_t col = g * row.width;
    int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
    for (; i < vector_end; i += N)
      sums.Add(Lookup16(tab, SequentialNibbles(p + i / 2)), x, ldx, col + i);
#endif
    for (; i < row.width; ++i)
      sums.AddOne((unit[(p[i >> 1] >> ((i & 1) * 4)) & 15] - zero) * scale, x, ldx, col + i);
  }
  (void)vector_end;
  sums.Store(out);
}

template <int kT, ByteCode kKind>
void DotRowBytesT(const RowGroups& row, const float* HWY_RESTRICT x, size_t ldx, float* out) {
  const DF df;
  const DI di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  TokenSums<kT> sums;
  for (int64_t g = 0; g < row.groups; ++g) {
    const auto scale = hn::Set(df, row.scales[g]);
    const auto zero = hn::Set(di, row.zeros ? row.zeros[g] : 0);
    const uint8_t* p = row.codes + g * row.stride;
    const int64_t col = g * row.width;
    int64_t i = 0;
    for (; i + N <= row.width; i += N)
      sums.Add(hn::Mul(ByteUnits<kKind>(p + i, zero), scale), x, ldx, col + i);
    if (i < row.width) {  // tail: decoded from a zero-padded copy, as the decoder does
      HWY_ALIGN uint8_t tmp[kTable] = {};
      HWY_ALIGN float w[kTable];
      std::memcpy(tmp, p + i, static_cast<size_t>(row.width - i));
      hn::Store(hn::Mul(ByteUnits<kKind>(tmp, zero), scale), df, w);
      for (int64_t j = 0; i + j < row.width; ++j) sums.AddOne(w[j], x, ldx, col + i + j);
    }
  }
  sums.Store(out);
}

// Tokens in passes of up to kDotTokens, so that the sums stay in registers.
template <class PassOf>
HWY_INLINE void DotInPasses(int64_t n_tokens, const float* x, size_t ldx, float* out,
                            PassOf pass_of) {
  for (int64_t t = 0; t < n_tokens; t += kDotTokens) {
    const float* xt = x + t * ldx;
    switch (std::min<int64_t>(kDotTokens, n_tokens - t)) {
      case 1:
        pass_of(std::integral_constant<int, 1>())(xt, out + t);
        break;
      case 2:
        pass_of(std::integral_constant<int, 2>())(xt, out + t);
        break;
      case 3:
        pass_of(std::integral_constant<int, 3>())(xt, out + t);
        break;
      default:
        pass_of(std::integral_constant<int, 4>())(xt, out + t);
        break;
    }
  }
}

void DotRowNibbles(const RowGroups& row, const float* unit, const float* x, int64_t n_tokens,
                   size_t ldx, float* out) {
  DotInPasses(n_tokens, x, ldx, out, [&](auto kT) {
    return [&](const float* xt, float* o) {
      if (row.zeros)
        DotRowNibblesT<decltype(kT)::value, true>(row, unit, xt, ldx, o);
      else
        DotRowNibblesT<decltype(kT)::value, false>(row, unit, xt, ldx, o);
    };
  });
}

template <ByteCode kKind>
void DotRowBytesK(const RowGroups& row, const float* x, int64_t n_tokens, size_t ldx, float* out) {
  DotInPasses(n_tokens, x, ldx, out, [&](auto kT) {
    return [&](const float* xt, float* o) {
      DotRowBytesT<decltype(kT)::value, kKind>(row, xt, ldx, o);
    };
  });
}

void DotRowBytes(const RowGroups& row, ByteCode kind, const float* x, int64_t n_tokens, size_t ldx,
                 float* out) {
  switch (kind) {
    case ByteCode::MinusZero:
      return DotRowBytesK<ByteCode::MinusZero>(row, x, n_tokens, ldx, out);
    case ByteCode::MxInt8:
      return DotRowBytesK<ByteCode::MxInt8>(row, x, n_tokens, ldx, out);
    case ByteCode::E4M3:
      return DotRowBytesK<ByteCode::E4M3>(row, x, n_tokens, ldx, out);
    case ByteCode::E5M2:
      return DotRowBytesK<ByteCode::E5M2>(row, x, n_tokens, ldx, out);
  }
}

}  // namespace qforge::formats::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qforge::formats::simd {

HWY_EXPORT(DecodeRowNibbles);
HWY_EXPORT(DecodeRowBytes);
HWY_EXPORT(DecodeRowBits);
HWY_EXPORT(DecodeGguf);
HWY_EXPORT(DotRowNibbles);
HWY_EXPORT(DotRowBytes);

void dot_row_nibbles(const RowGroups& row, const float unit[16], const float* x, int64_t n_tokens,
                     size_t ldx, float* out) {
  HWY_DYNAMIC_DISPATCH(DotRowNibbles)(row, unit, x, n_tokens, ldx, out);
}

void dot_row_bytes(const RowGroups& row, ByteCode kind, const float* x, int64_t n_tokens,
                   size_t ldx, float* out) {
  HWY_DYNAMIC_DISPATCH(DotRowBytes)(row, kind, x, n_tokens, ldx, out);
}

void decode_row_nibbles(const RowGroups& row, const float unit[16], float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeRowNibbles)(row, unit, out);
}

void decode_row_bytes(const RowGroups& row, ByteCode kind, float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeRowBytes)(row, kind, out);
}

void decode_row_bits(const RowGroups& row, int bits, BitCode kind, const float* magnitudes,
                     const uint8_t* end, float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeRowBits)(row, bits, kind, magnitudes, end, out);
}

std::optional<GgufType> gguf_type(std::string_view name) {
  if (name == "q4_0") return GgufType::Q4_0;
  if (name == "q4_1") return GgufType::Q4_1;
  if (name == "q5_0") return GgufType::Q5_0;
  if (name == "q5_1") return GgufType::Q5_1;
  if (name == "q8_0") return GgufType::Q8_0;
  if (name == "q2_k") return GgufType::Q2_K;
  if (name == "q3_k") return GgufType::Q3_K;
  if (name == "q4_k") return GgufType::Q4_K;
  if (name == "q5_k") return GgufType::Q5_K;
  if (name == "q6_k") return GgufType::Q6_K;
  if (name == "iq4_nl") return GgufType::IQ4_NL;
  if (name == "iq4_xs") return GgufType::IQ4_XS;
  return std::nullopt;
}

void decode_gguf(GgufType type, const uint8_t* blocks, int64_t nblocks, float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeGguf)(type, blocks, nblocks, out);
}

}  // namespace qforge::formats::simd
#endif  // HWY_ONCE
