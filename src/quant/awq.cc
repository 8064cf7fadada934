#include "qforge/quant/awq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "qforge/core/error.h"

namespace qforge {
namespace {

int64_t group_width(const ColumnQuantizer& q, int64_t cols) {
  return q.group_size() > 0 ? std::min(q.group_size(), cols) : cols;
}

// w̄: mean over rows of |w| / max |w| within the weight's quantization group (AWQ's w_mean).
std::vector<double> normalised_weight_mean(std::span<const AwqLinear> linears) {
  const int64_t cols = linears[0].cols;
  std::vector<double> mean(static_cast<size_t>(cols), 0.0);
  int64_t total_rows = 0;
  for (const AwqLinear& l : linears) {
    const int64_t gs = group_width(*l.make(l.w, l.rows, l.cols), cols);
    for (int64_t r = 0; r < l.rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += gs) {
        const int64_t c1 = std::min(cols, c0 + gs);
        double mx = 0;
        for (int64_t c = c0; c < c1; ++c) mx = std::max(mx, double(std::fabs(l.w[r * cols + c])));
        if (mx > 0)
          for (int64_t c = c0; c < c1; ++c) mean[c] += std::fabs(l.w[r * cols + c]) / mx;
      }
    total_rows += l.rows;
  }
  for (double& m : mean) m /= static_cast<double>(total_rows);
  return mean;
}

// Summed RTN objective of the group's linears with their columns multiplied by s (empty: none).
double rtn_objective(std::span<const AwqLinear> linears, const std::vector<double>& h,
                     std::span<const float> s) {
  const std::vector<double> hs = s.empty() ? h : scaled_hessian(h, s);
  const int64_t cols = linears[0].cols;
  std::vector<double> diag(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) diag[i] = hs[i * cols + i];
  double total = 0;
  for (const AwqLinear& l : linears) {
    std::vector<float> ws(l.w, l.w + l.rows * cols);
    if (!s.empty())
      for (int64_t r = 0; r < l.rows; ++r)
        for (int64_t c = 0; c < cols; ++c) ws[r * cols + c] *= s[c];
    auto q = l.make(ws.data(), l.rows, cols);
    const std::vector<float> qv = rtn_quantize(ws.data(), l.rows, cols, *q, diag.data());
    total += layer_objective(ws.data(), qv.data(), l.rows, cols, hs);
  }
  return total;
}

}  // namespace

std::vector<double> scaled_hessian(const std::vector<double>& h, std::span<const float> s) {
  const size_t n = s.size();
  std::vector<double> hs(h.size());
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) hs[i * n + j] = h[i * n + j] / (double(s[i]) * s[j]);
  return hs;
}

AwqScales awq_search_scales(
    std::span<const AwqLinear> linears, const std::vector<double>& h,
    std::span<const double> x_mean,
    const std::function<std::vector<float>(std::span<const float>)>& expand,
    const std::function<std::vector<double>(std::span<const double>)>& reduce_mean,
    const AwqOptions& o, ThreadPool& pool) {
  check(!linears.empty(), "AWQ: no linears in the group");
  for (const AwqLinear& l : linears)
    check(l.cols == linears[0].cols, "AWQ: linears of a group must share their input width");
  const std::vector<double> w_mean = reduce_mean(normalised_weight_mean(linears));
  check(w_mean.size() == x_mean.size(), "AWQ: {} activation and {} weight statistics",
        x_mean.size(), w_mean.size());
  AwqScales best;
  best.objective_identity = best.objective = rtn_objective(linears, h, {});
  // Every α is independent: evaluate them in parallel, then pick the best in order (the result
  // does not depend on the thread count).
  std::vector<std::vector<float>> candidates(static_cast<size_t>(o.grid));
  std::vector<double> objectives(static_cast<size_t>(o.grid));
  pool.parallel_for(static_cast<size_t>(o.grid), [&](size_t k0, size_t k1, int) {
    for (size_t k = k0; k < k1; ++k) {
      const double alpha = static_cast<double>(k) / o.grid;
      // AutoAWQ's duo scaling: x̄^α / (w̄^(1−α) + 1e-4), clamped, normalised by sqrt(max · min).
      double mx = 0, mn = std::numeric_limits<double>::infinity();
      std::vector<double> sd(x_mean.size());
      for (size_t i = 0; i < sd.size(); ++i) {
        sd[i] =
            std::max(1e-4, std::pow(x_mean[i], alpha) / (std::pow(w_mean[i], 1 - alpha) + 1e-4));
        mx = std::max(mx, sd[i]);
        mn = std::min(mn, sd[i]);
      }
      const double norm = std::sqrt(mx * mn);
      std::vector<float>& s = candidates[k];
      s.resize(sd.size());
      for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(sd[i] / norm);
      objectives[k] = rtn_objective(linears, h, expand(s));
    }
  });
  for (int k = 0; k < o.grid; ++k)
    if (objectives[k] < best.objective) {
      best.objective = objectives[k];
      best.alpha = static_cast<double>(k) / o.grid;
      best.s = candidates[k];
    }
  return best;
}

std::vector<float> awq_search_clip(const AwqLinear& l, const std::vector<double>& h,
                                   const AwqOptions& o, ThreadPool& pool) {
  const int64_t rows = l.rows, cols = l.cols;
  auto q = l.make(l.w, rows, cols);
  const int64_t gs = group_width(*q, cols), groups = (cols + gs - 1) / gs;
  std::vector<float> diag(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) diag[i] = static_cast<float>(h[i * cols + i]);
  std::vector<float> ratios(static_cast<size_t>(rows * groups), 1.0f);
  std::vector<double> best(ratios.size(), std::numeric_limits<double>::infinity());
  // Groups are independent (a quantizer keeps each group's scales apart): search them in parallel.
  pool.parallel_for(static_cast<size_t>(groups), [&](size_t g0, size_t g1, int) {
    std::vector<float> block;
    std::vector<double> d, dh, hg;
    for (auto g = static_cast<int64_t>(g0); g < static_cast<int64_t>(g1); ++g) {
      const int64_t c0 = g * gs, width = std::min(gs, cols - c0);
      hg.resize(static_cast<size_t>(width * width));
      for (int64_t i = 0; i < width; ++i)
        for (int64_t j = 0; j < width; ++j) hg[i * width + j] = h[(c0 + i) * cols + c0 + j];
      block.resize(static_cast<size_t>(rows * width));
      d.resize(block.size());
      dh.resize(block.size());
      for (int k = 0; k < static_cast<int>(o.max_shrink * o.clip_grid); ++k) {
        const float r = 1.0f - static_cast<float>(k) / o.clip_grid;
        for (int64_t row = 0; row < rows; ++row) {
          const float* w = l.w + row * cols + c0;
          float mx = 0;
          for (int64_t c = 0; c < width; ++c) mx = std::max(mx, std::fabs(w[c]));
          for (int64_t c = 0; c < width; ++c)
            block[row * width + c] = std::clamp(w[c], -r * mx, r * mx);
        }
        q->choose_scales(g, 0, block.data(), rows, width, width, diag.data() + c0);
        for (int64_t row = 0; row < rows; ++row)
          for (int64_t c = 0; c < width; ++c) {
            const float w = l.w[row * cols + c0 + c];
            d[row * width + c] = static_cast<double>(w) - q->round(row, c0 + c, w);
          }
        // Per row: Δ_g H_gg Δ_gᵀ.
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, static_cast<blasint>(rows),
                    static_cast<blasint>(width), 1.0, hg.data(), static_cast<blasint>(width),
                    d.data(), static_cast<blasint>(width), 0.0, dh.data(),
                    static_cast<blasint>(width));
        for (int64_t row = 0; row < rows; ++row) {
          double err = 0;
          for (int64_t c = 0; c < width; ++c) err += d[row * width + c] * dh[row * width + c];
          if (err < best[row * groups + g]) {
            best[row * groups + g] = err;
            ratios[row * groups + g] = r;
          }
        }
      }
    }
  });
  return ratios;
}

ClippedQuantizer::ClippedQuantizer(std::unique_ptr<ColumnQuantizer> inner,
                                   std::vector<float> ratios, int64_t groups)
    : inner_(std::move(inner)), ratios_(std::move(ratios)), groups_(groups) {}

void ClippedQuantizer::choose_scales(int64_t group, int64_t first_row, const float* w, int64_t rows,
                                     int64_t width, int64_t ld, const float* h_diag) {
  check(static_cast<int64_t>(ratios_.size()) >= (first_row + rows) * groups_ && group < groups_,
        "internal: clip ratios for {} x {} groups, asked for rows {}..{} group {}",
        ratios_.size() / std::max<int64_t>(groups_, 1), groups_, first_row, first_row + rows,
        group);
  std::vector<float> clipped(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    float mx = 0;
    for (int64_t c = 0; c < width; ++c) mx = std::max(mx, std::fabs(w[r * ld + c]));
    const float lim = ratios_[(first_row + r) * groups_ + group] * mx;
    for (int64_t c = 0; c < width; ++c)
      clipped[r * width + c] = std::clamp(w[r * ld + c], -lim, lim);
  }
  inner_->choose_scales(group, first_row, clipped.data(), rows, width, width, h_diag);
}

}  // namespace qforge
