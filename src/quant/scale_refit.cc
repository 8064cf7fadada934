#include "qforge/quant/scale_refit.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>

#include "qforge/core/error.h"

namespace qforge {
namespace {

// The columns φ_p of a group's values as linear functions of its parameters, each nonzero only on
// [begin_p, end_p): value(θ0 + δ) = value(θ0) + Σ_p δ_p φ_p.
struct Basis {
  explicit Basis(int64_t weights) : n(weights) {}
  int64_t n;                // weights in the group
  std::vector<double> phi;  // [params][n]
  std::vector<int64_t> begin, end;
  int64_t params() const { return static_cast<int64_t>(begin.size()); }
  double* add(int64_t b, int64_t e) {
    begin.push_back(b);
    end.push_back(e);
    phi.resize(phi.size() + static_cast<size_t>(n), 0.0);
    return &phi[phi.size() - static_cast<size_t>(n)];
  }
};

// Candidate (1): a scale (and an offset, if the format has one) per sub-block.
Basis sub_block_basis(const formats::GroupCodes& g) {
  Basis b(static_cast<int64_t>(g.code.size()));
  for (size_t s = 0; s < g.a.size(); ++s) {
    const int64_t j0 = static_cast<int64_t>(s) * g.sub_block, j1 = j0 + g.sub_block;
    double* pa = b.add(j0, j1);
    for (int64_t j = j0; j < j1; ++j) pa[j] = g.code[j];
    if (g.offset != 0) {
      double* pm = b.add(j0, j1);
      for (int64_t j = j0; j < j1; ++j) pm[j] = g.offset;
    }
  }
  return b;
}

// Candidate (2): one factor on every scale, one on every offset (the super-block's d and dmin).
Basis super_block_basis(const formats::GroupCodes& g) {
  Basis b(static_cast<int64_t>(g.code.size()));
  double* pa = b.add(0, b.n);
  for (int64_t j = 0; j < b.n; ++j) pa[j] = static_cast<double>(g.a[j / g.sub_block]) * g.code[j];
  if (g.offset != 0) {
    double* pm = b.add(0, b.n);
    for (int64_t j = 0; j < b.n; ++j) pm[j] = static_cast<double>(g.offset) * g.m[j / g.sub_block];
  }
  return b;
}

// The step δ minimising δᵀ(ΦᵀH_BBΦ)δ − 2δᵀΦᵀg_B: the change of the group's values that lowers
// the objective most (g = H·(w − q) of this row). hb is H's group block, row stride ld.
// Empty when the normal equations are singular.
std::vector<double> least_squares_step(const Basis& b, const double* hb, int64_t ld,
                                       const double* g) {
  const int64_t p = b.params(), n = b.n;
  std::vector<double> hphi(static_cast<size_t>(p * n), 0.0), a(static_cast<size_t>(p * p)),
      rhs(static_cast<size_t>(p), 0.0);
  for (int64_t i = 0; i < p; ++i) {
    const double* phi = &b.phi[static_cast<size_t>(i * n)];
    double* out = &hphi[static_cast<size_t>(i * n)];
    for (int64_t k = b.begin[i]; k < b.end[i]; ++k) {
      if (phi[k] == 0.0) continue;
      for (int64_t j = 0; j < n; ++j) out[j] += hb[k * ld + j] * phi[k];  // H is symmetric
      rhs[i] += phi[k] * g[k];
    }
  }
  double trace = 0;
  for (int64_t i = 0; i < p; ++i)
    for (int64_t k = 0; k < p; ++k) {
      const double* phi = &b.phi[static_cast<size_t>(k * n)];
      double s = 0;
      for (int64_t j = b.begin[k]; j < b.end[k]; ++j) s += phi[j] * hphi[i * n + j];
      a[i * p + k] = s;
      if (i == k) trace += s;
    }
  if (!(trace > 0)) return {};
  // A sub-block whose codes are all equal makes its scale and offset collinear: a tiny ridge.
  for (int64_t i = 0; i < p; ++i) a[i * p + i] += 1e-9 * trace / static_cast<double>(p);
  const auto P = static_cast<lapack_int>(p);
  if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', P, 1, a.data(), P, rhs.data(), 1) != 0) return {};
  return rhs;
}

// The group's scales after the step: θ0 + δ in candidate (1)'s or (2)'s parameters.
formats::GroupCodes stepped(const formats::GroupCodes& g, const std::vector<double>& d,
                            bool per_sub_block) {
  formats::GroupCodes out = g;
  const size_t per = g.offset != 0 ? 2 : 1;
  for (size_t s = 0; s < g.a.size(); ++s) {
    const size_t ia = per_sub_block ? per * s : 0, im = ia + 1;
    if (per_sub_block) {
      out.a[s] = static_cast<float>(g.a[s] + d[ia]);
      if (per == 2) out.m[s] = static_cast<float>(g.m[s] + d[im]);
    } else {
      out.a[s] = static_cast<float>(g.a[s] * (1 + d[0]));
      if (per == 2) out.m[s] = static_cast<float>(g.m[s] * (1 + d[1]));
    }
  }
  return out;
}

// The objective's exact change when the group's values move by dq: dqᵀ H_BB dq − 2 dq·g_B, over
// the entries that moved (a level search moves one sub-block). This is the refit's inner loop:
// where the moved entries are most of their span (a sub-block, or the whole group), the span's
// block of H goes through BLAS (dsymv) instead of a gather over index pairs.
double objective_change(const std::vector<double>& dq, const double* hb, int64_t ld,
                        const double* g, std::vector<int64_t>& moved) {
  moved.clear();
  for (int64_t j = 0; j < static_cast<int64_t>(dq.size()); ++j)
    if (dq[j] != 0.0) moved.push_back(j);
  if (moved.empty()) return 0.0;
  double quad = 0, lin = 0;
  const int64_t j0 = moved.front(), span = moved.back() + 1 - j0;
  if (2 * static_cast<int64_t>(moved.size()) >= span) {
    thread_local std::vector<double> hdq;
    hdq.resize(static_cast<size_t>(span));
    cblas_dsymv(CblasRowMajor, CblasUpper, static_cast<blasint>(span), 1.0, hb + j0 * ld + j0,
                static_cast<blasint>(ld), dq.data() + j0, 1, 0.0, hdq.data(), 1);
    for (int64_t j = 0; j < span; ++j) {
      quad += dq[j0 + j] * hdq[j];
      lin += dq[j0 + j] * g[j0 + j];
    }
    return quad - 2 * lin;
  }
  for (int64_t j : moved) {
    double s = 0;
    for (int64_t k : moved) s += hb[j * ld + k] * dq[k];
    quad += dq[j] * s;
    lin += dq[j] * g[j];
  }
  return quad - 2 * lin;
}

// One group of one row during the descent: its values in q, g = H·(w − q) of the row.
struct GroupRefit {
  ColumnQuantizer& quantizer;
  int64_t row, group, width, ld;
  float* q;              // the group's values (on the grid)
  const double* hb;      // H's group block, row stride ld
  double* g;             // the whole row's gradient
  const double* h_cols;  // H[:, group's columns], row stride ld
  ScaleRefitStats& st;
  std::vector<float> y = {};  // scratch: a candidate's values, their change, which changed
  std::vector<double> dq = {};
  std::vector<int64_t> moved = {};

  // Tries scales `candidate` (quantized by the format); keeps them when the objective drops.
  bool try_candidate(const formats::GroupCodes& candidate) {
    y.resize(static_cast<size_t>(width));
    dq.resize(static_cast<size_t>(width));
    quantizer.try_scales(row, group, candidate, y.data());
    for (int64_t j = 0; j < width; ++j)
      dq[j] = static_cast<double>(y[j]) - static_cast<double>(q[j]);
    const double change = objective_change(dq, hb, ld, g, moved);
    if (!(change < 0)) return false;
    quantizer.keep_candidate(row, group);
    std::copy(y.begin(), y.end(), q);
    st.objective_change += change;
    ++st.kept;
    // e loses dq on the group's columns, so g = H e loses H[:, group] dq (all ld columns).
    cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<blasint>(ld), static_cast<blasint>(width),
                -1.0, h_cols, static_cast<blasint>(ld), dq.data(), 1, 1.0, g - group * width, 1);
    return true;
  }

  // Candidates (1) and (2): least-squares steps in the sub-block or super-block parameters.
  void least_squares(bool per_sub_block) {
    formats::GroupCodes codes;
    if (!quantizer.group_codes(row, group, q, codes)) return;
    const Basis b = per_sub_block ? sub_block_basis(codes) : super_block_basis(codes);
    const std::vector<double> d = least_squares_step(b, hb, ld, g);
    if (!d.empty()) try_candidate(stepped(codes, d, per_sub_block));
  }

  // Candidate (3): each sub-block's scale and offset one level up or down, where they are
  // integer levels: the rounding of (1) to levels is not always the best choice of levels.
  void level_search() {
    formats::GroupCodes codes;
    if (!quantizer.group_codes(row, group, q, codes) || codes.a_step == 0) return;
    for (size_t s = 0; s < codes.a.size(); ++s)
      for (bool offset : {false, true}) {
        const float step = offset ? codes.m_step : codes.a_step;
        if (step == 0) continue;
        for (float dir : {1.f, -1.f}) {
          float& v = (offset ? codes.m : codes.a)[s];
          const float old = v;
          v += dir * step;
          const bool kept = try_candidate(codes);
          v = old;
          if (kept) {
            quantizer.group_codes(row, group, q, codes);
            break;
          }
        }
      }
  }
};

}  // namespace

ScaleRefitStats refit_scales(const float* w, float* q, int64_t rows, int64_t cols,
                             const std::vector<double>& h, ColumnQuantizer& quantizer, int sweeps) {
  check(static_cast<int64_t>(h.size()) == cols * cols, "refit_scales: H is not {}x{}", cols, cols);
  ScaleRefitStats st;
  const int64_t gs = quantizer.group_size();
  if (sweeps <= 0 || rows <= 0 || gs <= 0 || cols % gs != 0) return st;
  formats::GroupCodes probe;
  if (!quantizer.group_codes(0, 0, q, probe)) return st;

  std::vector<double> e(static_cast<size_t>(cols)), g(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* qr = q + r * cols;
    for (int64_t c = 0; c < cols; ++c) e[c] = static_cast<double>(w[r * cols + c]) - qr[c];
    // g = H e: how the objective (e H eᵀ) moves with this row's values.
    cblas_dsymv(CblasRowMajor, CblasUpper, static_cast<blasint>(cols), 1.0, h.data(),
                static_cast<blasint>(cols), e.data(), 1, 0.0, g.data(), 1);
    for (int sweep = 0; sweep < sweeps; ++sweep)
      for (int64_t c0 = 0; c0 < cols; c0 += gs) {
        ++st.groups;
        GroupRefit gr{quantizer,
                      r,
                      c0 / gs,
                      gs,
                      cols,
                      qr + c0,
                      &h[static_cast<size_t>(c0 * cols + c0)],
                      &g[c0],
                      &h[static_cast<size_t>(c0)],
                      st};
        gr.least_squares(true);
        gr.least_squares(false);
        gr.level_search();
      }
  }
  return st;
}

}  // namespace qforge
