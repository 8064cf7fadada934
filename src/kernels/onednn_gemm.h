// Prefill GEMMs through oneDNN's matmul primitive: bf16 x bf16 -> f32 and s8 x s8 -> s32. oneDNN
// JIT-compiles for the CPU it finds (AMX tiles, AVX512-BF16 / VNNI, or AVX2), which measured
// 3-30x faster than OpenBLAS sgemm on prefill shapes (docs/RESULTS.md, bench/kernels_bench).
// Each call runs on the calling thread only: the caller parallelises across weight tiles with its
// own pool, so oneDNN's OpenMP threads never oversubscribe the cores.
#pragma once

#include <cstdint>

namespace qforge::kernels::onednn {

// Whether oneDNN can run the bf16 / int8 GEMM on this CPU (false if it finds no kernel).
bool bf16_gemm_available();
bool int8_gemm_available();

// The implementation oneDNN picked for bf16 and int8 (e.g. "brg:avx512_core_amx_bf16").
const char* bf16_impl_name();
const char* int8_impl_name();

// y[m, n] (row stride ldy) = x[m, k] (bf16, row stride k) · w[n, k]ᵀ (bf16, row stride ldw).
void gemm_bf16(int64_t m, int64_t n, int64_t k, const uint16_t* x, const uint16_t* w, int64_t ldw,
               float* y, int64_t ldy);
// y[m, n] (row stride ldy) = x[m, k] (int8, row stride ldx) · w[n, k]ᵀ (int8, row stride ldw).
void gemm_s8(int64_t m, int64_t n, int64_t k, const int8_t* x, int64_t ldx, const int8_t* w,
             int64_t ldw, int32_t* y, int64_t ldy);

}  // namespace qforge::kernels::onednn
