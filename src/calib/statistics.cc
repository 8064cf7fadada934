#include "qforge/calib/statistics.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace qforge {

InputStatistics::InputStatistics(int dim)
    : dim_(dim),
      xtx_(static_cast<size_t>(dim) * dim, 0.0),
      chunk_(static_cast<size_t>(dim) * dim, 0.0f),
      sum_abs_(dim, 0.0),
      max_abs_(dim, 0.0f) {}

void InputStatistics::add(const float* x, int n) {
  if (n <= 0) return;
  // One sequence's Gram matrix in fp32 (a few hundred rows: fp32 is ample), accumulated in fp64
  // across the whole calibration set.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, dim_, n, 1.0f, x, dim_, 0.0f, chunk_.data(),
              dim_);
  for (int i = 0; i < dim_; ++i)
    for (int j = i; j < dim_; ++j)
      xtx_[static_cast<size_t>(i) * dim_ + j] += chunk_[static_cast<size_t>(i) * dim_ + j];
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < dim_; ++i) {
      const float a = std::fabs(x[static_cast<size_t>(t) * dim_ + i]);
      sum_abs_[i] += a;
      max_abs_[i] = std::max(max_abs_[i], a);
    }
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
