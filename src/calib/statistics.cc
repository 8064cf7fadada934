#include "qforge/calib/statistics.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "qforge/core/thread_pool.h"

namespace qforge {

InputStatistics::InputStatistics(int dim)
    : dim_(dim),
      xtx_(static_cast<size_t>(dim) * dim, 0.0),
      chunk_(static_cast<size_t>(dim) * dim, 0.0f),
      sum_abs_(dim, 0.0),
      max_abs_(dim, 0.0f) {}

namespace {
// Channels per tile of the Gram matrix: a 128 x 128 tile over a sequence of a few hundred rows is
// one BLAS call of ~10 MFLOP, and a 576-wide input still makes 15 tiles to share.
constexpr int kTile = 128;
}  // namespace

void InputStatistics::add(const float* x, int n, ThreadPool* pool) {
  if (n <= 0) return;
  // One sequence's Gram matrix in fp32 (a few hundred rows: fp32 is ample), accumulated in fp64
  // across the whole calibration set. The upper triangle goes in tiles (ssyrk on the diagonal,
  // sgemm above it), each added to the fp64 sums by whoever computed it: a fixed split, so the
  // sums do not depend on the number of threads. Diagonal tiles also own their channels' |x|.
  const int blocks = (dim_ + kTile - 1) / kTile;
  std::vector<std::pair<int, int>> tiles;
  for (int bi = 0; bi < blocks; ++bi)
    for (int bj = bi; bj < blocks; ++bj) tiles.emplace_back(bi, bj);
  auto tile = [&](size_t t0, size_t t1, int) {
    for (size_t t = t0; t < t1; ++t) {
      const int i0 = tiles[t].first * kTile, j0 = tiles[t].second * kTile;
      const int ni = std::min(kTile, dim_ - i0), nj = std::min(kTile, dim_ - j0);
      float* c = &chunk_[static_cast<size_t>(i0) * dim_ + j0];
      if (i0 == j0)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, ni, n, 1.0f, x + i0, dim_, 0.0f, c,
                    dim_);
      else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, nj, n, 1.0f, x + i0, dim_, x + j0,
                    dim_, 0.0f, c, dim_);
      for (int i = i0; i < i0 + ni; ++i)
        for (int j = i0 == j0 ? i : j0; j < j0 + nj; ++j)
          xtx_[static_cast<size_t>(i) * dim_ + j] += chunk_[static_cast<size_t>(i) * dim_ + j];
      if (i0 != j0) continue;
      for (int r = 0; r < n; ++r)
        for (int i = i0; i < i0 + ni; ++i) {
          const float a = std::fabs(x[static_cast<size_t>(r) * dim_ + i]);
          sum_abs_[i] += a;
          max_abs_[i] = std::max(max_abs_[i], a);
        }
    }
  };
  if (pool != nullptr)
    pool->parallel_for(tiles.size(), tile);
  else
    tile(0, tiles.size(), 0);
  tokens_ += n;
}

std::vector<double> InputStatistics::hessian() const {
  std::vector<double> h(xtx_.size());
  const double inv = tokens_ > 0 ? 1.0 / static_cast<double>(tokens_) : 0.0;
  for (int i = 0; i < dim_; ++i)
    for (int j = i; j < dim_; ++j) {
      const double v = xtx_[static_cast<size_t>(i) * dim_ + j] * inv;
      h[static_cast<size_t>(i) * dim_ + j] = v;
      h[static_cast<size_t>(j) * dim_ + i] = v;
    }
  return h;
}

std::vector<double> InputStatistics::mean_abs() const {
  std::vector<double> m(sum_abs_);
  for (double& v : m) v = tokens_ > 0 ? v / static_cast<double>(tokens_) : 0.0;
  return m;
}

}  // namespace qforge
