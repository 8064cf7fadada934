// AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization for LLM Compression and
// Acceleration", MLSys 2024; reference code mit-han-lab/llm-awq, auto_scale.py and auto_clip.py).
//
// Scale search (§3.2, Eq. 4–5): for a group of linears sharing an input X, per input channel
//     s = x̄^α / w̄^(1−α),   x̄ = mean |X| per channel,  w̄ = mean of |W| normalised per quant group,
// normalised to geometric mean 1, for α on a grid of 20 points; each candidate quantizes W·diag(s)
// with the format's round-to-nearest and measures the group's output error. The best s (or none,
// when no candidate beats plain RTN) is folded into what produces X (channel_scaling.h).
// The output error of the group's linears is computed exactly from H = XᵀX/n:
//     ‖X Wᵀ − X (Q diag(1/s))ᵀ‖² / n = tr(Δ H Δᵀ),  Δ = W − Q diag(1/s)
// (llm-awq measures it on sampled activations, AutoAWQ on the whole attention/MLP block).
//
// Clipping search (auto_clip): per output row and quantization group, the weights are clipped to
// r · max|w| for r ∈ {1, 0.95, …, 0.55} and the r with the least output error of that group
// (Δ_g H_gg Δ_gᵀ) is kept. Here clipping only steers the choice of scales (ClippedQuantizer): the
// rounded values are those of the unclipped weights, which for a saturating grid is the same thing,
// and objectives stay measured against the real weights.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "qforge/core/thread_pool.h"
#include "qforge/quant/gptq.h"

namespace qforge {

struct AwqOptions {
  int grid = 20;            // α ∈ {0, 1/grid, …, (grid−1)/grid}
  int clip_grid = 20;       // clip ratios 1 − k/clip_grid …
  double max_shrink = 0.5;  // … for k < max_shrink · clip_grid: 1.0, 0.95, …, 0.55
};

// A fresh quantizer (the format's scale state) for a weight w [rows, cols].
using QuantizerMaker =
    std::function<std::unique_ptr<ColumnQuantizer>(const float* w, int64_t rows, int64_t cols)>;

struct AwqLinear {
  const float* w = nullptr;  // f32 [rows, cols], row-major
  int64_t rows = 0, cols = 0;
  QuantizerMaker make;
};

struct AwqScales {
  std::vector<float> s;  // one per scale entry (see `expand`); empty when identity was best
  double alpha = -1;     // the chosen α; −1: identity
  double objective_identity = 0;  // summed RTN layer objectives without scaling
  double objective = 0;           // the same with the chosen scales
};

// diag(1/s) H diag(1/s): the Hessian of the scaled input X diag(1/s).
std::vector<double> scaled_hessian(const std::vector<double>& h, std::span<const float> s);

// Searches the scales of one group (the α candidates in parallel on `pool`). x_mean (one per scale
// entry) is mean |x|; `expand` maps scale entries to input channels (identity except for o_proj
// under GQA) and `reduce_mean` maps per-input-channel values back to scale entries.
AwqScales awq_search_scales(
    std::span<const AwqLinear> linears, const std::vector<double>& h,
    std::span<const double> x_mean,
    const std::function<std::vector<float>(std::span<const float>)>& expand,
    const std::function<std::vector<double>(std::span<const double>)>& reduce_mean,
    const AwqOptions& options, ThreadPool& pool);

// Per (row, group) clip ratios [rows, groups] for one linear with input Hessian h (the groups in
// parallel on `pool`).
std::vector<float> awq_search_clip(const AwqLinear& linear, const std::vector<double>& h,
                                   const AwqOptions& options, ThreadPool& pool);

// A quantizer whose scales are chosen from clipped weights: group g of row r is clipped to
// ratio[r, g] · max|w| before the wrapped quantizer chooses its scales.
class ClippedQuantizer final : public ColumnQuantizer {
 public:
  ClippedQuantizer(std::unique_ptr<ColumnQuantizer> inner, std::vector<float> ratios,
                   int64_t groups);
  int64_t group_size() const override { return inner_->group_size(); }
  void choose_scales(int64_t group, int64_t first_row, const float* w, int64_t rows, int64_t width,
                     int64_t ld, const float* h_diag) override;
  float round(int64_t row, int64_t col, float value) const override {
    return inner_->round(row, col, value);
  }
  const ColumnQuantizer& inner() const { return *inner_; }

 private:
  std::unique_ptr<ColumnQuantizer> inner_;
  std::vector<float> ratios_;
  int64_t groups_;
};

}  // namespace qforge
