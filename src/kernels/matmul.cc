// Y = X · Wᵀ for weights stored row-major [out, in] in F32/BF16/F16 or packed in a format.
#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernels/onednn_gemm.h"
#include "kernels/q8_dot.h"
#include "qforge/core/error.h"
#include "qforge/formats/format.h"
#include "qforge/kernels/kernels.h"

namespace qforge::kernels {
namespace {

// Up to this many tokens, streaming W once per token (GEMV) beats widening tiles for sgemm.
constexpr int64_t kGemvMaxTokens = 4;
// Rows of W widened to f32 per sgemm call: 128 rows x 1536 cols x 4 B = 768 KiB fits in L2.
constexpr int64_t kTileRows = 128;
// Rows per GEMV work item (4 rows share each load of x).
constexpr size_t kGemvGrain = 16;
// Packed weights: up to this many tokens share each decoded row; beyond, tiles go to sgemm.
constexpr int64_t kPackedGemvMaxTokens = 8;
// Decoded rows per step of a packed GEMV: 64 KiB of f32, resident in L2.
constexpr int64_t kDecodeBufferFloats = 16384;

std::atomic<PrefillKernel> g_prefill_kernel{PrefillKernel::Exact};

}  // namespace

void use_single_threaded_blas() {
  static std::once_flag once;
  // We parallelise across tiles ourselves; OpenBLAS threads would oversubscribe the cores.
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

std::string blas_core_name() {
  return openblas_get_corename();
}

void prefer_avx512_blas(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user decided (or we already did)
  const std::string core = openblas_get_corename();
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // OpenBLAS 0.3.21 does not know CPUs newer than itself: it runs its AVX2 kernels on AVX-512 AMD
  // CPUs ("Haswell", "Zen") and its SSE3 kernels ("Prescott", 4-8x slower) on Zen 5.
  const char* better = nullptr;
  if (avx512 && core != "SkylakeX" && core != "Cooperlake" && core != "SapphireRapids")
    better = "SkylakeX";
  else if (!avx512 && avx2 && (core == "Prescott" || core == "Nehalem" || core == "Core2"))
    better = "Haswell";
  if (better == nullptr) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  execv("/proc/self/exe", argv);  // only returns on failure: carry on with the slower kernels
}

void sgemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  use_single_threaded_blas();
  if (m == 1) {  // one query (decode): sgemm would pack both operands for a matrix-vector product
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<blasint>(n), static_cast<blasint>(k),
                alpha, b, static_cast<blasint>(ldb), a, 1, beta, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda),
              b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void sgemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
              int64_t ldb, float* c, int64_t ldc) {
  use_single_threaded_blas();
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<blasint>(k), static_cast<blasint>(n), 1.0f,
                b, static_cast<blasint>(ldb), a, 1, 0.0f, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a, static_cast<blasint>(lda),
              b, static_cast<blasint>(ldb), 0.0f, c, static_cast<blasint>(ldc));
}

namespace {

// How a decode-sized product computes its rows (each row range independently, on one thread).
enum class RowKernel : uint8_t { Plain, Packed, Integer };

// Plain weights: a SIMD dot product per row and token.
void plain_rows(const Matrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
                const float* bias, int64_t r0, int64_t r1) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * w.cols;
    float* yt = y + t * ldy;
    for (int64_t r = r0; r < r1; ++r)
      yt[r] = dot_row(w.dtype, w.row(r), xt, w.cols) + (bias ? bias[r] : 0.0f);
  }
}

// Packed weights without an integer kernel: decoded in registers and dotted with every token where
// the format has a fused kernel; else rows are decoded a few at a time into an L1/L2-resident f32
// buffer and each decoded row serves every token (one unpack per weight per matmul).
void packed_rows(const Matrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
                 const float* bias, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols;
  // Formats with a fused decode-and-dot kernel never store their weights.
  if (w.format->dot_rows(w.header, w.row(r0), r1 - r0, cols, x, n_tokens, y + r0, ldy)) {
    if (bias)
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = r0; r < r1; ++r) y[t * ldy + r] += bias[r];
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, kDecodeBufferFloats / cols);
  thread_local std::vector<float> buf;
  buf.resize(static_cast<size_t>(std::min<int64_t>(chunk, w.rows) * cols));
  for (int64_t c0 = r0; c0 < r1; c0 += chunk) {
    const int64_t nr = std::min<int64_t>(chunk, r1 - c0);
    w.rows_to_f32(c0, nr, buf.data());
    for (int64_t r = 0; r < nr; ++r) {
      const auto* row = reinterpret_cast<const std::byte*>(buf.data() + r * cols);
      for (int64_t t = 0; t < n_tokens; ++t)
        y[t * ldy + c0 + r] =
            dot_row(DType::F32, row, x + t * cols, cols) + (bias ? bias[c0 + r] : 0.0f);
    }
  }
}

// The row kernel for w with n_tokens, or nullopt when the product is GEMM-sized.
std::optional<RowKernel> row_kernel(const Matrix& w, int64_t n_tokens) {
  if (!w.packed())
    return n_tokens <= kGemvMaxTokens ? std::optional(RowKernel::Plain) : std::nullopt;
  if (n_tokens > kPackedGemvMaxTokens) return std::nullopt;
  return q8::layout_for(w) != q8::Layout::None ? RowKernel::Integer : RowKernel::Packed;
}

// Decode-sized products of one input with several matrices in a single parallel region: one
// fork-join per group instead of one per matrix, and the input quantized once for every integer
// kernel. The rows of all targets are split across the pool as one range.
void row_products(std::span<const LinearTarget> targets, const float* x, int64_t n_tokens,
                  ThreadPool& pool, InputQuant input) {
  std::vector<RowKernel> kinds;
  std::vector<q8::Layout> layouts;  // looked up once here, not by every worker per range
  std::vector<int64_t> offsets{0};
  bool integer = false;
  for (const LinearTarget& t : targets) {
    kinds.push_back(*row_kernel(*t.w, n_tokens));
    layouts.push_back(kinds.back() == RowKernel::Integer ? q8::layout_for(*t.w) : q8::Layout::None);
    integer = integer || kinds.back() == RowKernel::Integer;
    offsets.push_back(offsets.back() + t.w->rows);
  }
  thread_local q8::Activations tls;
  q8::Activations& a = tls;  // a lambda would read each worker's own thread_local, not ours
  if (integer && input == InputQuant::Int8PerToken)
    q8::quantize_per_token(x, n_tokens, targets[0].w->cols, a);
  else if (integer)
    q8::quantize(x, n_tokens, targets[0].w->cols, a);
  pool.parallel_for(
      static_cast<size_t>(offsets.back()),
      [&](size_t begin, size_t end, int) {
        for (size_t i = 0; i < targets.size(); ++i) {
          const int64_t r0 =
              std::max<int64_t>(static_cast<int64_t>(begin), offsets[i]) - offsets[i];
          const int64_t r1 =
              std::min<int64_t>(static_cast<int64_t>(end), offsets[i + 1]) - offsets[i];
          if (r0 >= r1) continue;
          const LinearTarget& t = targets[i];
          switch (kinds[i]) {
            case RowKernel::Plain:
              plain_rows(*t.w, x, n_tokens, t.y, t.ldy, t.bias, r0, r1);
              break;
            case RowKernel::Packed:
              packed_rows(*t.w, x, n_tokens, t.y, t.ldy, t.bias, r0, r1);
              break;
            case RowKernel::Integer:
              q8::gemv(layouts[i], *t.w, r0, r1, a, t.y, t.ldy, t.bias);
              break;
          }
        }
      },
      kGemvGrain);
}

// Many tokens, fast kernels: activations rounded to bf16 once, weights read as bf16 (stored bf16
// rows directly, anything else decoded tile by tile and rounded), products on oneDNN's bf16 GEMM
// (AMX or AVX512-BF16), one weight tile per call so each thread keeps its tile in L2.
void bf16_gemm(const Matrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
               ThreadPool& pool, const float* bias) {
  const int64_t rows = w.rows, cols = w.cols;
  thread_local std::vector<uint16_t> x_bf16_tls;
  std::vector<uint16_t>& x_bf16 = x_bf16_tls;  // the caller's buffer, read by every worker
  x_bf16.resize(static_cast<size_t>(n_tokens * cols));
  pool.parallel_for(static_cast<size_t>(n_tokens), [&](size_t t0, size_t t1, int) {
    narrow_to_bf16(x + t0 * cols, x_bf16.data() + t0 * cols, static_cast<int64_t>(t1 - t0) * cols);
  });
  const bool stored_bf16 = !w.packed() && w.dtype == DType::BF16;
  const size_t tiles = static_cast<size_t>((rows + kTileRows - 1) / kTileRows);
  pool.parallel_for(tiles, [&](size_t t0, size_t t1, int) {
    thread_local std::vector<float> tile_f32;
    thread_local std::vector<uint16_t> tile_bf16;
    for (size_t t = t0; t < t1; ++t) {
      const int64_t r0 = static_cast<int64_t>(t) * kTileRows;
      const int64_t nr = std::min(kTileRows, rows - r0);
      const uint16_t* wt = reinterpret_cast<const uint16_t*>(w.row(r0));
      if (!stored_bf16) {
        tile_f32.resize(static_cast<size_t>(nr * cols));
        tile_bf16.resize(static_cast<size_t>(nr * cols));
        w.rows_to_f32(r0, nr, tile_f32.data());
        narrow_to_bf16(tile_f32.data(), tile_bf16.data(), nr * cols);
        wt = tile_bf16.data();
      }
      onednn::gemm_bf16(n_tokens, nr, cols, x_bf16.data(), wt, cols, y + r0, ldy);
      if (bias)
        for (int64_t i = 0; i < n_tokens; ++i)
          for (int64_t r = 0; r < nr; ++r) y[i * ldy + r0 + r] += bias[r0 + r];
    }
  });
}

// Many tokens, int8 activations (W8A8 / W4A8 for real): each token quantized to int8 once (the
// same rule as decode and the simulation), integer weights unpacked to int8 codes tile by tile,
// and per group of the weights one s8 x s8 -> s32 GEMM on oneDNN (AMX / VNNI); the exact integer
// sums are scaled by the token's and the group's scales and summed in f32.
void int8_gemm(const Matrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
               ThreadPool& pool, const float* bias) {
  const int64_t rows = w.rows, cols = w.cols;
  const int64_t width = q8::group_width(w), groups = cols / width;
  thread_local q8::Activations tls;
  q8::Activations& a = tls;  // the caller's activations, read by every worker
  q8::quantize_per_token(x, n_tokens, cols, a);
  const size_t tiles = static_cast<size_t>((rows + kTileRows - 1) / kTileRows);
  pool.parallel_for(tiles, [&](size_t t0, size_t t1, int) {
    thread_local std::vector<int8_t> codes;
    thread_local std::vector<float> scales;
    thread_local std::vector<int32_t> sums;
    for (size_t t = t0; t < t1; ++t) {
      const int64_t r0 = static_cast<int64_t>(t) * kTileRows;
      const int64_t nr = std::min(kTileRows, rows - r0);
      codes.resize(static_cast<size_t>(nr * cols));
      scales.resize(static_cast<size_t>(nr * groups));
      sums.resize(static_cast<size_t>(n_tokens * nr));
      q8::unpack_int_groups(w, r0, nr, codes.data(), scales.data());
      for (int64_t g = 0; g < groups; ++g) {
        onednn::gemm_s8(n_tokens, nr, width, a.hi.data() + g * width, cols,
                        codes.data() + g * width, cols, sums.data(), nr);
        for (int64_t i = 0; i < n_tokens; ++i) {
          const float token_scale = a.d[static_cast<size_t>(i * (cols / q8::kBlock))];
          float* yi = y + i * ldy + r0;
          const int32_t* si = sums.data() + i * nr;
          for (int64_t r = 0; r < nr; ++r) {
            const float v = static_cast<float>(si[r]) * (token_scale * scales[r * groups + g]);
            yi[r] = g == 0 ? v + (bias ? bias[r0 + r] : 0.0f) : yi[r] + v;
          }
        }
      }
    }
  });
}

// Whether matmul takes the int8 GEMM: int8 activations asked for, a GEMM-sized batch, integer
// weights in groups, and a JIT kernel on this CPU.
bool runs_int8_gemm(const Matrix& w, int64_t n_tokens) {
  return n_tokens > kPackedGemvMaxTokens && w.packed() &&
         q8::layout_for(w) == q8::Layout::IntGroups && onednn::int8_gemm_available();
}

// Whether matmul takes the bf16 GEMM: fast kernels chosen, a GEMM-sized batch, weights that are
// not f32 (f32 models keep f32 products, as llama.cpp does), and a JIT kernel on this CPU.
bool runs_bf16_gemm(const Matrix& w, int64_t n_tokens) {
  if (g_prefill_kernel.load(std::memory_order_relaxed) != PrefillKernel::Fast) return false;
  if (n_tokens <= (w.packed() ? kPackedGemvMaxTokens : kGemvMaxTokens)) return false;
  if (!w.packed() && w.dtype == DType::F32) return false;
  return onednn::bf16_gemm_available();
}

}  // namespace

void set_prefill_kernel(PrefillKernel kernel) {
  g_prefill_kernel.store(kernel);
}

PrefillKernel prefill_kernel() {
  return g_prefill_kernel.load();
}

std::string prefill_kernel_name() {
  if (prefill_kernel() == PrefillKernel::Fast && onednn::bf16_gemm_available())
    return fmt::format("bf16 onednn {}", onednn::bf16_impl_name());
  return fmt::format("f32 openblas {}", blas_core_name());
}

bool runs_int8_activations(const Matrix& w, int64_t n_tokens) {
  if (runs_int8_gemm(w, n_tokens)) return true;
  return w.packed() && n_tokens <= kPackedGemvMaxTokens && q8::layout_for(w) != q8::Layout::None;
}

std::string matmul_path(const Matrix& w, int64_t n_tokens, InputQuant input) {
  if (input == InputQuant::Int8PerToken && runs_int8_gemm(w, n_tokens))
    return "int8 codes + onednn s8 gemm";
  if (runs_bf16_gemm(w, n_tokens))
    return w.packed() || w.dtype != DType::BF16 ? "decoded bf16 tiles + onednn bf16 gemm"
                                                : "onednn bf16 gemm";
  if (!w.packed()) return n_tokens <= kGemvMaxTokens ? "simd gemv" : "widened tiles + sgemm";
  if (n_tokens > kPackedGemvMaxTokens) return "decoded tiles + sgemm";
  const q8::Layout layout = q8::layout_for(w);
  if (layout != q8::Layout::None) return q8::layout_name(layout);
  return w.format->has_fused_dot() ? "fused decode + simd dot" : "decoded rows + simd dot";
}

void matmul(const Matrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
            ThreadPool& pool, const float* bias, InputQuant input) {
  check(w.present(), "matmul: weight matrix '{}' is absent", w.name);
  check(ldy >= w.rows, "matmul: output stride {} < rows {} for '{}'", ldy, w.rows, w.name);
  const int64_t rows = w.rows, cols = w.cols;
  check(input == InputQuant::None || runs_int8_activations(w, n_tokens),
        "matmul: '{}' has no integer kernel for int8 activations of {} tokens", w.name, n_tokens);
  if (input == InputQuant::Int8PerToken && runs_int8_gemm(w, n_tokens))
    return int8_gemm(w, x, n_tokens, y, ldy, pool, bias);
  if (row_kernel(w, n_tokens)) {
    const LinearTarget target{&w, y, ldy, bias};
    return row_products({&target, 1}, x, n_tokens, pool, input);
  }
  if (runs_bf16_gemm(w, n_tokens)) return bf16_gemm(w, x, n_tokens, y, ldy, pool, bias);
  const size_t tiles = static_cast<size_t>((rows + kTileRows - 1) / kTileRows);
  pool.parallel_for(tiles, [&](size_t t0, size_t t1, int) {
    thread_local std::vector<float> tile;
    for (size_t t = t0; t < t1; ++t) {
      const int64_t r0 = static_cast<int64_t>(t) * kTileRows;
      const int64_t nr = std::min(kTileRows, rows - r0);
      const float* wt;
      if (w.packed()) {
        tile.resize(static_cast<size_t>(nr * cols));
        w.rows_to_f32(r0, nr, tile.data());
        wt = tile.data();
      } else if (w.dtype == DType::F32) {
        wt = reinterpret_cast<const float*>(w.row(r0));
      } else {
        tile.resize(static_cast<size_t>(nr * cols));
        for (int64_t r = 0; r < nr; ++r)
          widen_row(w.dtype, w.row(r0 + r), tile.data() + r * cols, cols);
        wt = tile.data();
      }
      float beta = 0.0f;
      if (bias) {
        for (int64_t i = 0; i < n_tokens; ++i)
          std::copy(bias + r0, bias + r0 + nr, y + i * ldy + r0);
        beta = 1.0f;
      }
      sgemm_nt(n_tokens, nr, cols, 1.0f, x, cols, wt, cols, beta, y + r0, ldy);
    }
  });
}

void matmul_group(std::span<const LinearTarget> targets, const float* x, int64_t n_tokens,
                  ThreadPool& pool, InputQuant input) {
  bool rows_only = true;
  for (const LinearTarget& t : targets) {
    check(t.w->present() && t.w->cols == targets[0].w->cols,
          "matmul_group: '{}' is absent or its input width differs", t.w->name);
    check(t.ldy >= t.w->rows, "matmul: output stride {} < rows {} for '{}'", t.ldy, t.w->rows,
          t.w->name);
    check(input == InputQuant::None || runs_int8_activations(*t.w, n_tokens),
          "matmul: '{}' has no integer kernel for int8 activations of {} tokens", t.w->name,
          n_tokens);
    rows_only = rows_only && row_kernel(*t.w, n_tokens).has_value();
  }
  if (rows_only) return row_products(targets, x, n_tokens, pool, input);
  for (const LinearTarget& t : targets) matmul(*t.w, x, n_tokens, t.y, t.ldy, pool, t.bias, input);
}

}  // namespace qforge::kernels
