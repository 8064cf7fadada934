// Integer dot products for decoding (1-8 tokens) with packed weights: the activations of one
// matmul are quantized once, per token in blocks of 32, to integers U = round(x / d) with
// d = amax / (127 * 256), kept as two int8 planes U = 256 hi + lo and as int16 (so the rounding
// error is d/2, 256x smaller than llama.cpp's q8_0: on llama-sp-58m q8_0 activations alone cost a
// mean KLD of 2.4e-4, above the 1e-4 this runtime allows itself). The weights' codes are unpacked
// once per step for every token of the batch and the products summed exactly in 32-bit integers,
// scaled once per block:
//   AVX-512 VNNI (q8_dot_vnni.cc): 64 weights as unsigned bytes, vpdpbusd with both int8 planes;
//   AVX2 (q8_dot_avx2.cc): 32 weights as signed bytes widened to int16, vpmaddwd with U.
// Highway 1.0.3 (Debian 12) has no integer dot product, so these are intrinsics in functions
// compiled for their ISA and called only after a CPU check: nothing here can SIGILL on an older
// CPU, which keeps the decode-then-dot path (formats' Highway decoders).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qforge/formats/matrix.h"

namespace qforge::kernels::q8 {

constexpr int64_t kBlock = 32;

// Activations of one matmul, quantized per token in blocks of 32: x ≈ d[block] (256 hi + lo).
// Every array is padded with zeros by 64 codes so that a kernel may read a whole 64-wide step
// past a row's last block of 32 (its weights there are zero).
struct Activations {
  int64_t tokens = 0, cols = 0;
  std::vector<int8_t> hi, lo;  // [tokens][cols]: hi in [-127, 127], lo in [-128, 127]
  std::vector<int16_t> units;  // [tokens][cols]: U = 256 hi + lo (hi with one plane)
  std::vector<int16_t>
      units_even_odd;         // units with each block of 32 as its 16 even- then odd-indexed
  std::vector<float> d;       // [tokens][cols / 32]: amax / (127 * 256) (0: all-zero block)
  std::vector<float> lane_d;  // [tokens][cols / 4]: d of the block each run of 4 codes is in
  std::vector<int32_t>
      lane_sum;  // [tokens][cols / 4]: 128 * (256 hi + lo) summed over each run of 4
  std::vector<float> block_sum;  // [tokens][cols / 32]: d * (256 hi + lo) summed over the block
  std::vector<float> half_sum;   // [tokens][cols / 16]: the same over each half block (Q6_K's
                                 // sub-blocks of 16)
  bool two_planes = true;        // false: x = d hi (lo zero), as quantize_per_token makes it
};
// W8A8's activations: per token, hi = round(x / s) in [-127, 127] with s = amax / 127
// (formats::fake_quantize_activations' rule, the same operations), d = s for every block.
void quantize_per_token(const float* x, int64_t tokens, int64_t cols, Activations& a);
// Quantizes x [tokens, cols] (cols a multiple of 32): U = round(x / d), split exactly into
// hi = floor((U + 128) / 256) and lo = U - 256 hi; |x - d U| <= d / 2 (+ f32 rounding).
void quantize(const float* x, int64_t tokens, int64_t cols, Activations& a);

// The packed layouts with an integer kernel. The weight of code u is scale * (u - offset).
enum class Layout : uint8_t {
  None,
  Q4_0,       // GGUF: fp16 d + 16 bytes, low nibbles weights 0-15, high nibbles 16-31; offset 8
  Q8_0,       // GGUF: fp16 d + 32 signed bytes (read as u = s + 128, offset 128)
  Q4_K,       // GGUF: super-blocks of 256, 8 sub-blocks of 32 with 6-bit scales and mins
  Q5_K,       // GGUF: Q4_K plus a fifth bit per weight in qh
  Q6_K,       // GGUF: 16 sub-blocks of 16 with int8 scales; 4 low bits in ql, 2 in qh; offset 32
  IQ4_NL,     // GGUF: Q4_0's layout, codes index a 16-value non-linear grid
  IQ4_XS,     // GGUF: the IQ4_NL grid in super-blocks of 256 with 6-bit scales per 32
  IntGroups,  // qforge symmetric int4/int8 per group or row: [scale][codes], offset 8 / 128
  Fp4Groups,  // qforge E2M1 in groups of 16/32/64k (mxfp4, nvfp4, fp4-gN): [scale][codes]
};
// The instruction set the integer kernels run on, best last.
enum class Isa : uint8_t { None, Avx2, Avx512Vnni };
// In use now: the best this CPU has, unless capped by QFORGE_Q8_ISA=none|avx2|vnni (or turned
// off by QFORGE_NO_VNNI=1) or by set_isa.
Isa isa();
// Uses `want`, or the best this CPU has below it (tests run every supported one).
void set_isa(Isa want);
std::vector<Isa> supported_isas();  // every ISA but None this CPU (and the environment) allows
const char* isa_name(Isa i);        // "avx2", "vnni", "none"

// The integer kernel for w, or None (no kernel for its format or row length, or none enabled).
Layout layout_for(const Matrix& w);
// Name of the kernel for w with the ISA in use, as bench reports it ("avx2 q4_k x q8").
std::string layout_name(Layout l);

// IntGroups weights as signed codes for a GEMM (prefill): rows [r0, r0 + n) to codes [n][cols]
// (int8, the weight is scale * code) and scales [n][groups]; groups = cols / group_width(w).
int64_t group_width(const Matrix& w);
void unpack_int_groups(const Matrix& w, int64_t r0, int64_t n, int8_t* codes, float* scales);

// y[t * ldy + r] = w[r] · x_t (+ bias[r]) for rows [r0, r1) and every token of `a`.
void gemv(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias);

// Turns the integer kernels off, or back on at the best ISA (tests compare both paths).
void set_enabled(bool enabled);
bool enabled();  // isa() != None

}  // namespace qforge::kernels::q8
