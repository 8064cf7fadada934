#include "qforge/quant/gptq.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "qforge/core/error.h"
#include "qforge/core/thread_pool.h"
#include "qforge/kernels/kernels.h"
#include "qforge/quant/scale_refit.h"

namespace qforge {
namespace {

// Upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) into u, from r = J H J: H with its rows and columns
// in reverse order (row-major n×n, symmetric; overwritten). Returns false when H is not
// numerically positive definite.
//
// With J H J = L Lᵀ (lower Cholesky), H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J), and J L⁻¹ J is upper triangular
// with a positive diagonal: it is U. One Cholesky and one triangular inverse (2n³/3 flops) instead
// of Cholesky, inverse, Cholesky again (4n³/3). A row-major lower triangle is a column-major upper
// one, so LAPACK runs on the buffer as it is, without its row-major interface's transposes.
bool inverse_cholesky_upper(std::vector<double>& r, int64_t n, std::vector<double>& u) {
  const auto N = static_cast<lapack_int>(n);
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', N, r.data(), N) != 0) return false;
  if (LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', N, r.data(), N) != 0) return false;
  // r's row-major lower triangle is now L⁻¹; U = J L⁻¹ J.
  u.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) u[i * n + j] = r[(n - 1 - i) * n + (n - 1 - j)];
  for (int64_t i = 0; i < n; ++i)
    if (!(u[i * n + i] > 0) || !std::isfinite(u[i * n + i])) return false;
  return true;
}

// Columns [c0, c0 + width) of w (row stride ld) as f32 rows [rows, width], and their importance
// (1 where h_diag is null): what a quantizer's scale searches take.
struct ColumnSlice {
  std::vector<float> w, importance;
};
ColumnSlice column_slice(const double* w, int64_t rows, int64_t ld, int64_t c0, int64_t width,
                         const double* h_diag) {
  ColumnSlice s{std::vector<float>(static_cast<size_t>(rows * width)),
                std::vector<float>(static_cast<size_t>(width))};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) s.w[r * width + c] = static_cast<float>(w[r * ld + c0 + c]);
  for (int64_t c = 0; c < width; ++c)
    s.importance[c] = h_diag ? static_cast<float>(h_diag[c0 + c]) : 1.0f;
  return s;
}

void choose_group_scales(ColumnQuantizer& quantizer, int64_t group, int64_t first_row,
                         const double* w, int64_t rows, int64_t ld, int64_t c0, int64_t width,
                         const double* h_diag) {
  const ColumnSlice s = column_slice(w, rows, ld, c0, width, h_diag);
  quantizer.choose_scales(group, first_row, s.w.data(), rows, width, width, s.importance.data());
}

// Sub-block `sub` of group `group` from the current weights (columns [c0, c0 + sub_group_size)).
void choose_sub_block_scales(ColumnQuantizer& quantizer, int64_t group, int64_t sub,
                             int64_t first_row, const double* w, int64_t rows, int64_t ld,
                             int64_t c0, const double* importance) {
  const int64_t width = quantizer.sub_group_size();
  const ColumnSlice s = column_slice(w, rows, ld, c0, width, importance);
  quantizer.choose_sub_scales(group, sub, first_row, s.w.data(), rows, width, s.importance.data());
}

// Rows per tile of the row-parallel loops. GPTQ never moves error between rows, so a tile of rows
// runs the whole column loop on its own (the quantizer's scales are per row, too). The tile is
// fixed, not derived from the thread count, so that the results do not depend on the threads;
// 32 rows x a 128-column block of f64 is 32 KiB, an L1's worth.
constexpr int64_t kRowTile = 32;

// Calls fn(r0, r1) on tiles of `tile` rows covering [0, rows), on the pool when there is one.
void for_row_tiles(int64_t rows, ThreadPool* pool, const std::function<void(int64_t, int64_t)>& fn,
                   int64_t tile = kRowTile) {
  const auto tiles = static_cast<size_t>((rows + tile - 1) / tile);
  const auto run = [&](size_t t0, size_t t1, int) {
    for (size_t t = t0; t < t1; ++t) {
      const auto r0 = static_cast<int64_t>(t) * tile;
      fn(r0, std::min(rows, r0 + tile));
    }
  };
  // Always, so that a tile's BLAS sums never depend on OpenBLAS's own thread count.
  kernels::use_single_threaded_blas();
  if (pool != nullptr && pool->size() > 1 && tiles > 1)
    pool->parallel_for(tiles, run);
  else
    run(0, tiles, 0);
}

// What GPTQ's column loop reads and never writes: shared by every tile of rows.
struct ColumnLoop {
  const std::vector<double>& u;         // upper Cholesky factor of H⁻¹, [cols, cols]
  const std::vector<int64_t>& perm;     // processing order
  const std::vector<double>& diag;      // diag(H): the group scale searches' importance
  std::vector<double> loss_weight;      // sub-block searches' importance (empty: none)
  int64_t cols = 0, block = 0, gs = 0;  // lazy batch width, group size
  int64_t sub = 0;                      // sub-block width re-chosen in the loop (0: none)
  bool choose_scales = false;
};

// GPTQ's column loop on rows [r0, r0 + n) of wp (permuted, updated in place): their codes into q
// (the same rows, processing order).
void quantize_row_tile(const ColumnLoop& L, ColumnQuantizer& quantizer, int64_t r0, int64_t n,
                       double* wp, double* q) {
  const int64_t cols = L.cols;
  std::vector<double> err(static_cast<size_t>(n * L.block));
  for (int64_t i1 = 0; i1 < cols; i1 += L.block) {
    const int64_t i2 = std::min(i1 + L.block, cols), count = i2 - i1;
    for (int64_t i = i1; i < i2; ++i) {
      const int64_t orig = L.perm[i];
      if (L.choose_scales && orig % L.gs == 0) {
        // Without act-order perm is the identity: columns [i, i + gs) lie in this block and
        // have received every update so far.
        choose_group_scales(quantizer, orig / L.gs, r0, wp, n, cols, i, std::min(L.gs, cols - i),
                            L.diag.data());
      } else if (L.choose_scales && L.sub > 0 && orig % L.sub == 0 &&
                 (orig / L.gs + 1) * L.gs <= cols) {
        choose_sub_block_scales(quantizer, orig / L.gs, orig % L.gs / L.sub, r0, wp, n, cols, i,
                                L.loss_weight.data());
      }
      const double d = L.u[i * cols + i];
      const double* ui = &L.u[i * cols];
      for (int64_t r = 0; r < n; ++r) {
        double* wr = &wp[r * cols];
        const double qv = quantizer.round(r0 + r, orig, static_cast<float>(wr[i]));
        q[r * cols + i] = qv;
        const double e = (wr[i] - qv) / d;
        err[r * count + (i - i1)] = e;
        // Compensate the rest of this block now (Eq. 3 restricted to the block).
        for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * ui[j];
      }
    }
    // Lazy batch update of all later columns: W[:, i2:] -= Err · U[i1:i2, i2:].
    if (i2 < cols)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(n),
                  static_cast<blasint>(cols - i2), static_cast<blasint>(count), -1.0, err.data(),
                  static_cast<blasint>(count), &L.u[i1 * cols + i2], static_cast<blasint>(cols),
                  1.0, &wp[i2], static_cast<blasint>(cols));
  }
}

// GPTQ's column loop on wp (permuted by perm, updated in place) with U, the upper Cholesky factor
// of H⁻¹; returns Q in the original column order. With choose_scales, each group's scales are
// chosen when the loop reaches its first column (perm must be the identity); otherwise the
// quantizer's scales are used as they are. With sub_scales as well, each sub-block's scales (for
// formats that have them) are chosen again when the loop reaches the sub-block. Tiles of rows run
// side by side on the pool.
std::vector<float> quantize_columns(std::vector<double> wp, const std::vector<double>& u,
                                    const std::vector<int64_t>& perm, int64_t rows, int64_t cols,
                                    int64_t block, ColumnQuantizer& quantizer, bool choose_scales,
                                    bool sub_scales, const std::vector<double>& diag,
                                    ThreadPool* pool) {
  const int64_t gs = quantizer.group_size() > 0 ? quantizer.group_size() : cols;
  const int64_t sub = sub_scales && gs % std::max<int64_t>(1, quantizer.sub_group_size()) == 0
                          ? quantizer.sub_group_size()
                          : 0;
  ColumnLoop L{u, perm, diag, {}, cols, block, gs, sub, choose_scales};
  // A sub-block's levels are searched under GPTQ's own loss weight per column, 1 / U_ii²: the
  // objective grows by ((w_i − q_i) / U_ii)² when column i is rounded and the later columns
  // compensate (diag(H) would ignore that compensation). Lower objectives than diag(H) on
  // tiny-llama-bpe-7m and llama-sp-58m (docs/RESULTS.md).
  if (L.sub > 0) {
    L.loss_weight.resize(static_cast<size_t>(cols));
    for (int64_t i = 0; i < cols; ++i)
      L.loss_weight[perm[i]] = 1.0 / (u[i * cols + i] * u[i * cols + i]);
  }
  std::vector<double> q(static_cast<size_t>(rows * cols));
  for_row_tiles(rows, pool, [&](int64_t r0, int64_t r1) {
    quantize_row_tile(L, quantizer, r0, r1 - r0, &wp[r0 * cols], &q[r0 * cols]);
  });
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + perm[c]] = static_cast<float>(q[r * cols + c]);
  return out;
}

}  // namespace

double layer_objective(const float* w, const float* q, int64_t rows, int64_t cols,
                       const std::vector<double>& h, ThreadPool* pool) {
  check(static_cast<int64_t>(h.size()) == cols * cols, "layer_objective: H is not {}x{}", cols,
        cols);
  // Tiles of rows: D = W − Q, then sum(D ∘ (D H)) with one BLAS-3 product per tile; the tiles'
  // sums are added in order, so the total does not depend on the threads. Each tile's product
  // reads all of H, so the tiles are twice the GPTQ loop's (on 576 x 1536, 32-row tiles were ~10%
  // slower on one thread).
  constexpr int64_t tile = 64;
  std::vector<double> partial(static_cast<size_t>((rows + tile - 1) / tile));
  for_row_tiles(
      rows, pool,
      [&](int64_t r0, int64_t r1) {
        const int64_t n = r1 - r0;
        std::vector<double> d(static_cast<size_t>(n * cols)), dh(d.size());
        for (int64_t i = 0; i < n * cols; ++i)
          d[i] = static_cast<double>(w[r0 * cols + i]) - q[r0 * cols + i];
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, static_cast<blasint>(n),
                    static_cast<blasint>(cols), 1.0, h.data(), static_cast<blasint>(cols), d.data(),
                    static_cast<blasint>(cols), 0.0, dh.data(), static_cast<blasint>(cols));
        double sum = 0;
        for (int64_t i = 0; i < n * cols; ++i) sum += d[i] * dh[i];
        partial[r0 / tile] = sum;
      },
      tile);
  return std::accumulate(partial.begin(), partial.end(), 0.0);
}

std::vector<float> rtn_quantize(const float* w, int64_t rows, int64_t cols,
                                ColumnQuantizer& quantizer, const double* h_diag,
                                ThreadPool* pool) {
  const int64_t gs = quantizer.group_size() > 0 ? quantizer.group_size() : cols;
  std::vector<float> q(static_cast<size_t>(rows * cols));
  for_row_tiles(rows, pool, [&](int64_t r0, int64_t r1) {
    const std::vector<double> wd(w + r0 * cols, w + r1 * cols);
    for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += gs) {
      const int64_t width = std::min(gs, cols - c0);
      choose_group_scales(quantizer, g, r0, wd.data(), r1 - r0, cols, c0, width, h_diag);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c0 + width; ++c)
          q[r * cols + c] = quantizer.round(r, c, w[r * cols + c]);
    }
  });
  return q;
}

GptqFactor gptq_factor(const std::vector<double>& h_in, int64_t cols, const GptqOptions& o) {
  check(static_cast<int64_t>(h_in.size()) == cols * cols, "GPTQ: Hessian is not {}x{}", cols, cols);
  check(o.damp >= 0, "GPTQ: dampening must be >= 0 (got {})", o.damp);
  kernels::use_single_threaded_blas();  // LAPACK's sums must not depend on OpenBLAS's threads
  GptqFactor f;
  f.cols = cols;
  f.block_size = std::max<int64_t>(1, o.block_size);
  f.act_order = o.act_order;
  f.refit_rounds = o.refit_rounds;
  f.sub_block_scales = o.sub_block_scales;
  f.dead.assign(static_cast<size_t>(cols), false);
  f.diag.resize(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) {
    f.dead[i] = h_in[i * cols + i] == 0.0;
    f.diag[i] = f.dead[i] ? 1.0 : h_in[i * cols + i];
  }
  // Column order: act-order processes the most important inputs (largest H_ii) first.
  f.perm.resize(static_cast<size_t>(cols));
  std::iota(f.perm.begin(), f.perm.end(), 0);
  if (o.act_order)
    std::stable_sort(f.perm.begin(), f.perm.end(),
                     [&](int64_t a, int64_t b) { return f.diag[a] > f.diag[b]; });
  // J P H Pᵀ J + λI: H in reverse processing order (what inverse_cholesky_upper takes), dead
  // inputs' diagonal set to 1 (their rows and columns of H are zero), dampened by λ.
  std::vector<double> reversed(static_cast<size_t>(cols * cols));
  auto reverse_and_damp = [&](double lambda) {
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t pi = f.perm[cols - 1 - i];
      for (int64_t j = 0; j < cols; ++j)
        reversed[i * cols + j] = h_in[pi * cols + f.perm[cols - 1 - j]];
      reversed[i * cols + i] = f.diag[pi] + lambda;
    }
  };
  // Dampening λ = damp · mean(diag H); raised tenfold until the factorisation succeeds.
  const double mean_diag =
      std::accumulate(f.diag.begin(), f.diag.end(), 0.0) / static_cast<double>(cols);
  double damp = o.damp * mean_diag;
  for (int attempt = 0;; ++attempt) {
    reverse_and_damp(damp);
    if (inverse_cholesky_upper(reversed, cols, f.u)) break;
    check(attempt < 6, "GPTQ: Hessian is not positive definite even with dampening {}", damp);
    damp = std::max(damp * 10, 1e-8 * std::max(mean_diag, 1.0));
  }
  f.damp_used = damp;
  return f;
}

GptqResult gptq_quantize(const float* w, int64_t rows, int64_t cols, const std::vector<double>& h,
                         ColumnQuantizer& quantizer, const GptqOptions& o, ThreadPool* pool) {
  return gptq_quantize(w, rows, h, gptq_factor(h, cols, o), quantizer, pool);
}

GptqResult gptq_quantize(const float* w_in, int64_t rows, const std::vector<double>& h_in,
                         const GptqFactor& f, ColumnQuantizer& quantizer, ThreadPool* pool) {
  const int64_t cols = f.cols;
  check(static_cast<int64_t>(h_in.size()) == cols * cols, "GPTQ: Hessian is not {}x{}", cols, cols);
  const int64_t gs = quantizer.group_size() > 0 ? quantizer.group_size() : cols;
  // Groups must not straddle a lazy-update block, so that a group's scales are chosen from fully
  // updated weights: round the block size up to a multiple of the group size.
  int64_t block = f.block_size;
  if (gs < cols && block % gs != 0) block = (block + gs - 1) / gs * gs;

  GptqResult res;
  res.damp_used = f.damp_used;
  // Dead inputs (always zero in calibration): nothing to preserve, quantize the weights to zero.
  std::vector<double> w(w_in, w_in + rows * cols);
  for (int64_t i = 0; i < cols; ++i) {
    if (!f.dead[i]) continue;
    for (int64_t r = 0; r < rows; ++r) w[r * cols + i] = 0.0;
    ++res.dead_columns;
  }
  const std::vector<int64_t>& perm = f.perm;
  if (f.act_order) {
    // Static groups: all scales fixed now from the cleaned weights, in the original order.
    for_row_tiles(rows, pool, [&](int64_t r0, int64_t r1) {
      for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += gs)
        choose_group_scales(quantizer, g, r0, &w[r0 * cols], r1 - r0, cols, c0,
                            std::min(gs, cols - c0), f.diag.data());
    });
  }
  // The weights in processing order (a move without act-order: perm is the identity).
  std::vector<double> wp;
  if (f.act_order) {
    wp.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) wp[r * cols + c] = w[r * cols + perm[c]];
    std::vector<double>().swap(w);
  } else {
    wp = std::move(w);
  }

  // Round 1 chooses each group's scales as GPTQ reaches it; each later round re-runs GPTQ under
  // the scales the previous refit left (kept only while it lowers the objective).
  const int rounds = std::max(1, f.refit_rounds);
  const std::vector<double> w_start = rounds > 1 ? wp : std::vector<double>{};
  res.q = quantize_columns(std::move(wp), f.u, perm, rows, cols, block, quantizer, !f.act_order,
                           f.sub_block_scales, f.diag, pool);
  for (int round = 1; round <= f.refit_rounds; ++round) {
    if (round > 1) {
      std::vector<float> again = quantize_columns(w_start, f.u, perm, rows, cols, block, quantizer,
                                                  false, false, f.diag, pool);
      if (!(layer_objective(w_in, again.data(), rows, cols, h_in, pool) <
            layer_objective(w_in, res.q.data(), rows, cols, h_in, pool)))
        break;
      res.q = std::move(again);
    }
    // The codes are final for this round; their scales were chosen before most of the error
    // feedback reached the group.
    refit_scales(w_in, res.q.data(), rows, cols, h_in, quantizer);
  }
  res.objective = layer_objective(w_in, res.q.data(), rows, cols, h_in, pool);
  return res;
}

GptqChunkedResult gptq_quantize_chunked(const GptqChunks& c, const std::vector<double>& h,
                                        const GptqOptions& o, bool measure_rtn, ThreadPool* pool) {
  check(c.chunk_rows > 0, "GPTQ: chunk_rows must be positive (got {})", c.chunk_rows);
  GptqChunkedResult res;
  const GptqFactor factor = gptq_factor(h, c.cols, o);  // every chunk of rows shares H
  std::vector<float> w;
  for (int64_t r0 = 0; r0 < c.rows; r0 += c.chunk_rows) {
    const int64_t r1 = std::min(c.rows, r0 + c.chunk_rows), n = r1 - r0;
    w.resize(static_cast<size_t>(n * c.cols));
    c.read(r0, r1, w.data());
    if (measure_rtn) {
      std::vector<double> diag(static_cast<size_t>(c.cols));
      for (int64_t i = 0; i < c.cols; ++i) diag[i] = h[i * c.cols + i];
      const auto q = c.make(w.data(), n, c.cols);
      const std::vector<float> rtn = rtn_quantize(w.data(), n, c.cols, *q, diag.data(), pool);
      res.objective_rtn += layer_objective(w.data(), rtn.data(), n, c.cols, h, pool);
    }
    const auto q = c.make(w.data(), n, c.cols);
    GptqResult g = gptq_quantize(w.data(), n, h, factor, *q, pool);
    res.objective += g.objective;
    res.dead_columns = g.dead_columns;
    c.sink(r0, r1, g.q, *q);
  }
  return res;
}

}  // namespace qforge
