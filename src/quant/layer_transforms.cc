#include "qforge/quant/layer_transforms.h"

#include <algorithm>
#include <cmath>

#include "qforge/core/error.h"
#include "qforge/quant/channel_scaling.h"
#include "qforge/quant/smoothquant.h"

namespace qforge {

std::string linear_group_name(LinearGroup g) {
  switch (g) {
    case LinearGroup::AttnIn:
      return "attn_in";
    case LinearGroup::AttnOut:
      return "attn_out";
    case LinearGroup::MlpIn:
      return "mlp_in";
    case LinearGroup::MlpAct:
      return "mlp_act";
  }
  return "?";
}

void SmoothQuantTransform::apply(int, LayerWeights& lw, WeightArena& arena,
                                 const LayerStatistics* stats) {
  check(stats != nullptr, "SmoothQuant needs calibration statistics");
  for (int gi = 0; gi < kLinearGroups; ++gi) {
    const auto g = static_cast<LinearGroup>(gi);
    if (!scalable_group(g, online_hadamard_down_)) continue;
    std::vector<Matrix*> linears;
    for (Matrix* m : linears_of_group(lw, g))
      if (quantized_(*m)) linears.push_back(m);
    if (linears.empty()) continue;
    const int64_t cols = linears[0]->cols;
    std::vector<double> w_max(static_cast<size_t>(cols), 0.0);
    for (Matrix* m : linears) {
      const float* w = arena.matrix(*m);
      for (int64_t r = 0; r < m->rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          w_max[c] = std::max(w_max[c], double(std::fabs(w[r * cols + c])));
    }
    const std::vector<float>& act = stats->of(g).max_abs();
    const std::vector<double> act_max(act.begin(), act.end());
    const std::vector<float> s =
        smoothquant_scales(per_scale_entry(config_, g, act_max, true),
                           per_scale_entry(config_, g, w_max, true), alpha_);
    scale_group_input(config_, lw, g, s, arena);
  }
}

void AwqTransform::apply(int layer, LayerWeights& lw, WeightArena& arena,
                         const LayerStatistics* stats) {
  check(stats != nullptr, "AWQ needs calibration statistics");
  clip_ratios_.clear();
  for (int gi = 0; gi < kLinearGroups; ++gi) {
    const auto g = static_cast<LinearGroup>(gi);
    const bool scalable = scalable_group(g, online_hadamard_down_);
    std::vector<Matrix*> linears;
    std::vector<QuantizerMaker> makers;
    for (Matrix* m : linears_of_group(lw, g))
      if (QuantizerMaker mk = maker_(*m)) {
        linears.push_back(m);
        makers.push_back(std::move(mk));
      }
    if (linears.empty()) continue;
    const InputStatistics& st = stats->of(g);
    const std::vector<double> h = st.hessian();
    std::vector<AwqLinear> group;
    for (size_t i = 0; i < linears.size(); ++i)
      group.push_back({arena.matrix(*linears[i]), linears[i]->rows, linears[i]->cols, makers[i]});
    // Not scalable: only AWQ's clipping (identity scales, the search is skipped).
    const AwqScales best =
        !scalable
            ? AwqScales{{}, -1, 0, 0}
            : awq_search_scales(
                  group, h, per_scale_entry(config_, g, st.mean_abs(), false),
                  [&](std::span<const float> s) { return scales_per_input(config_, g, s); },
                  [&](std::span<const double> v) { return per_scale_entry(config_, g, v, false); },
                  options_, ThreadPool::global());
    AwqGroupRecord rec{layer, g, best.alpha, best.objective_identity, best.objective};
    // The scales per input channel and the Hessian of the scaled input, for the GPTQ check and
    // the clip search.
    std::vector<float> s;
    std::vector<double> hs;
    if (!best.s.empty() && (gptq_ || clip_)) {
      s = scales_per_input(config_, g, best.s);
      hs = scaled_hessian(h, s);
    }
    if (!best.s.empty() && gptq_) {
      // GPTQ with and without the scales, on the same Hessian (the scaled input's for the former).
      for (const AwqLinear& l : group) {
        auto q = l.make(l.w, l.rows, l.cols);
        rec.gptq_objective_identity += gptq_quantize(l.w, l.rows, l.cols, h, *q, *gptq_).objective;
        std::vector<float> ws(l.w, l.w + l.rows * l.cols);
        for (int64_t r = 0; r < l.rows; ++r)
          for (int64_t c = 0; c < l.cols; ++c) ws[r * l.cols + c] *= s[c];
        auto qs = l.make(ws.data(), l.rows, l.cols);
        rec.gptq_objective += gptq_quantize(ws.data(), l.rows, l.cols, hs, *qs, *gptq_).objective;
      }
      rec.gptq_rejected = rec.gptq_objective >= rec.gptq_objective_identity;
    }
    const bool scale = !best.s.empty() && !rec.gptq_rejected;
    if (!scale) rec.alpha = -1;
    records_.push_back(rec);
    if (scale) scale_group_input(config_, lw, g, best.s, arena);
    if (!clip_) continue;
    const std::vector<double>& clip_h = scale ? hs : h;
    for (size_t i = 0; i < linears.size(); ++i) {
      Matrix& m = *linears[i];
      // As the reference: no clipping for q/k, whose errors are amplified by the softmax.
      if (&m == &lw.wq || &m == &lw.wk) continue;
      const AwqLinear l{arena.matrix(m), m.rows, m.cols, makers[i]};
      clip_ratios_[m.name] = awq_search_clip(l, clip_h, options_, ThreadPool::global());
    }
  }
}

std::unique_ptr<ColumnQuantizer> AwqTransform::wrap(const Matrix& weight,
                                                    std::unique_ptr<ColumnQuantizer> q) const {
  auto it = clip_ratios_.find(weight.name);
  if (it == clip_ratios_.end()) return q;
  const int64_t gs = q->group_size() > 0 ? std::min(q->group_size(), weight.cols) : weight.cols;
  const int64_t groups = (weight.cols + gs - 1) / gs;
  return std::make_unique<ClippedQuantizer>(std::move(q), it->second, groups);
}

}  // namespace qforge
