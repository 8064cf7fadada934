// llama.cpp's (ggml's) quantized block types, byte for byte. Each block covers 32 weights
// (QK4_0 ...) or 256 (QK_K super-blocks); fp16 fields are raw uint16 bit patterns. These pin the
// on-disk layout that GGUF files use, so qforge-written blocks run in llama.cpp unchanged.
#pragma once

#include <cstdint>

namespace qforge::formats::gguf {

constexpr int kQK = 32;    // weights per block of the legacy types
constexpr int kQKK = 256;  // weights per K-quant / IQ4_XS super-block

// Q4_0: x = (q - 8) * d, q in [0, 15]; 4.5 bits/weight. Nibble j holds weight j (low) / j+16
// (high).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// Q4_1: x = q * d + m; 5.0 bits/weight.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
// Q5_0: x = (q - 16) * d, the fifth bit of weight j in bit j of qh; 5.5 bits/weight.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// Q5_1: x = q * d + m; 6.0 bits/weight.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// Q8_0: x = q * d, q int8; 8.5 bits/weight.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// Q2_K: 16 sub-blocks of 16, 4-bit scale and 4-bit min each (times d, dmin); 2.625 bits/weight.
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d, dmin;
};
// Q3_K: 16 sub-blocks of 16, 6-bit signed scales; the third bit in hmask; 3.4375 bits/weight.
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
// Q4_K: 8 sub-blocks of 32, 6-bit scale and min (packed in 12 bytes); 4.5 bits/weight.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
// Q5_K: as Q4_K plus a fifth bit in qh; 5.5 bits/weight.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// Q6_K: 16 sub-blocks of 16, int8 scales; 4 low bits in ql, 2 high in qh; 6.5625 bits/weight.
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
// IQ4_NL: Q4_0's layout on a non-uniform grid (kIq4nlValues * d); 4.5 bits/weight.
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// IQ4_XS: IQ4_NL values with 6-bit sub-block scales per 32 in a 256 super-block; 4.25 bits/weight.
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQKK / 64];
  uint8_t qs[kQKK / 2];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockIQ4_XS) == 136);

inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace qforge::formats::gguf
