// Compute kernels of the forward pass. They know matrices and vectors, not model structure.
// Everything is fp32 arithmetic; weights may be stored as F32, BF16 or F16 and are widened on the
// fly (exactly: both widenings are lossless).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "qforge/core/thread_pool.h"
#include "qforge/formats/kv_quant.h"
#include "qforge/formats/matrix.h"

namespace qforge::kernels {

// How matmul treats its input. Int8PerToken: W8A8 / W4A8 for real: each token is quantized to
// int8 with scale amax/127 (formats::fake_quantize_activations' rule) and dotted with the integer
// weights in integers (int8 x int -> int32, then both scales); only where
// runs_int8_activations(w, n_tokens).
enum class InputQuant : uint8_t { None, Int8PerToken };
// Whether matmul can take w's input as int8 per token: an integer decode kernel (few tokens) or,
// for many tokens, oneDNN's int8 GEMM on symmetric int4/int8 weights in groups or rows.
bool runs_int8_activations(const Matrix& w, int64_t n_tokens);

// Y[t, r] = sum_c W[r, c] * X[t, c] (+ bias[r]) for t < n_tokens, r < W.rows.
// X is [n_tokens, W.cols] with row stride W.cols; Y is [n_tokens, ldy] (ldy >= W.rows).
// Few tokens: a SIMD GEMV per token that streams W once (decode is memory-bound).
// Many tokens: W is widened to f32 tile by tile and multiplied with OpenBLAS sgemm (prefill is
// compute-bound). Rows are split across the pool's threads; OpenBLAS itself runs single-threaded.
void matmul(const Matrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
            ThreadPool& pool, const float* bias = nullptr, InputQuant input = InputQuant::None);

// How matmul computes many-token (prefill) products. Exact: f32 products (weights widened or
// decoded to f32 tiles, OpenBLAS sgemm): the reference every test compares with, and the default.
// Fast: activations and weights rounded to bf16 (round-to-nearest-even; stored bf16 weights are
// read as they are) and multiplied on oneDNN's bf16 GEMM (AMX / AVX512-BF16), accumulating in f32,
// as llama.cpp does for bf16 weights. f32 weights and few-token (decode) products are the same in
// both. Process-wide; `run` and `bench` choose Fast, `eval` Exact unless told (--kernels).
enum class PrefillKernel : uint8_t { Exact, Fast };
void set_prefill_kernel(PrefillKernel kernel);
PrefillKernel prefill_kernel();
// Sets the prefill kernels for a scope (eval runs its reference exact whatever the model runs on).
class ScopedPrefillKernel {
 public:
  explicit ScopedPrefillKernel(PrefillKernel kernel) : saved_(prefill_kernel()) {
    set_prefill_kernel(kernel);
  }
  ~ScopedPrefillKernel() { set_prefill_kernel(saved_); }
  ScopedPrefillKernel(const ScopedPrefillKernel&) = delete;
  ScopedPrefillKernel& operator=(const ScopedPrefillKernel&) = delete;

 private:
  PrefillKernel saved_;
};
// What prefill runs on, for bench: e.g. "bf16 onednn brg:avx512_core_amx_bf16".
std::string prefill_kernel_name();

// One product of a group that shares its input: y (row stride ldy) = x · wᵀ (+ bias).
struct LinearTarget {
  const Matrix* w;
  float* y;
  int64_t ldy;
  const float* bias = nullptr;
};
// matmul for several matrices of the same input (q/k/v, gate/up). Decoding, they share one
// parallel region (one fork-join instead of one per matrix) and one quantization of the input;
// GEMM-sized products run in turn.
void matmul_group(std::span<const LinearTarget> targets, const float* x, int64_t n_tokens,
                  ThreadPool& pool, InputQuant input = InputQuant::None);

// Which kernel matmul runs for w with n_tokens (bench reports it), e.g. "vnni q4_0 x q8".
// input: Int8PerToken for a W8A8 / W4A8 model's linears (where runs_int8_activations).
std::string matmul_path(const Matrix& w, int64_t n_tokens, InputQuant input = InputQuant::None);

// Row-major sgemm C[m,n] = alpha * A[m,k] * B^T (B is [n,k]) + beta * C, single-threaded.
void sgemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// Row-major sgemm C[m,n] = A[m,k] * B[k,n], single-threaded.
void sgemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
              int64_t ldb, float* c, int64_t ldc);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], in fp32 (w already includes Gemma's +1).
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* out);

// Rotates `n_heads` heads of `head_dim` (stride head_dim) at one position with the precomputed
// cos/sin of that position (rotary_dim / 2 entries each). Layout per RopeLayout.
void rope(float* x, int n_heads, int head_dim, int rotary_dim, const float* cos, const float* sin,
          bool interleaved);

// In-place numerically stable softmax over n values.
void softmax(float* x, int64_t n);

// gate[i] = act(gate[i]) * up[i]
void silu_mul(float* gate, const float* up, int64_t n);
void gelu_tanh_mul(float* gate, const float* up, int64_t n);

// KV-cache codes [first, first + n) (int8: the byte; int4: two a byte, the even index in the low
// nibble; fp8: E4M3) to code * scale + offset (fp8: offset 0) with SIMD, one scale and offset for
// the range or one per value. A value does not depend on the range it was decoded in.
void kv_dequantize(formats::KvType t, const uint8_t* codes, size_t first, size_t n, float scale,
                   float offset, float* out);
void kv_dequantize_channels(formats::KvType t, const uint8_t* codes, size_t first, size_t n,
                            const float* scale, const float* offset, float* out);

// Dot product of a weight row (dtype) with f32 x; the SIMD path used by matmul.
float dot_row(DType dtype, const std::byte* row, const float* x, int64_t n);

// Widens n elements of a weight row to f32 (SIMD).
void widen_row(DType dtype, const std::byte* row, float* out, int64_t n);

// f32 -> bf16, round-to-nearest-even (SIMD).
void narrow_to_bf16(const float* in, uint16_t* out, int64_t n);

// OpenBLAS (0.3.21, Debian) does not know CPUs newer than itself: it runs its AVX2 "Haswell"
// kernels on AVX-512 AMD CPUs and its SSE3 "Prescott" kernels on Zen 5 (4-8x slower than
// "SkylakeX"). The core type is only read when the library loads, so this re-executes the program
// with OPENBLAS_CORETYPE=SkylakeX (Haswell on AVX2-only CPUs) when that would help and the user has
// not chosen a core type. Call first thing in main(); returns only if no re-exec happened.
void prefer_avx512_blas(char** argv);
// OpenBLAS's kernel family in use (e.g. "SkylakeX").
std::string blas_core_name();
// Makes every OpenBLAS call single-threaded, once per process: qforge cuts work into tiles on
// its own pool, and OpenBLAS threads inside each tile would oversubscribe the cores.
void use_single_threaded_blas();

// Name of the SIMD target chosen at runtime (e.g. "AVX3_ZEN4").
std::string simd_target_name();

}  // namespace qforge::kernels
