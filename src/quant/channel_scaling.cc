#include "qforge/quant/channel_scaling.h"

#include <algorithm>
#include <cmath>

#include "qforge/core/error.h"
#include "qforge/quant/layerwise.h"

namespace qforge {

int64_t scale_count(const ModelConfig& c, LinearGroup g) {
  switch (g) {
    case LinearGroup::AttnIn:
    case LinearGroup::MlpIn:
      return c.hidden_size;
    case LinearGroup::AttnOut:
      return c.kv_dim();
    case LinearGroup::MlpAct:
      return c.intermediate_size;
  }
  return 0;
}

std::vector<float> scales_per_input(const ModelConfig& c, LinearGroup g, std::span<const float> s) {
  check(static_cast<int64_t>(s.size()) == scale_count(c, g), "scales: {} entries, expected {}",
        s.size(), scale_count(c, g));
  if (g != LinearGroup::AttnOut) return {s.begin(), s.end()};
  // o_proj input channel (h, i) reads value channel (h / heads_per_kv, i).
  const int hd = c.head_dim, per_kv = c.num_heads / c.num_kv_heads;
  std::vector<float> out(static_cast<size_t>(c.q_dim()));
  for (int h = 0; h < c.num_heads; ++h)
    for (int i = 0; i < hd; ++i) out[h * hd + i] = s[(h / per_kv) * hd + i];
  return out;
}

std::vector<double> per_scale_entry(const ModelConfig& c, LinearGroup g,
                                    std::span<const double> per_input, bool take_max) {
  if (g != LinearGroup::AttnOut) return {per_input.begin(), per_input.end()};
  check(static_cast<int64_t>(per_input.size()) == c.q_dim(),
        "per-channel values: {} entries, "
        "expected {}",
        per_input.size(), c.q_dim());
  const int hd = c.head_dim, per_kv = c.num_heads / c.num_kv_heads;
  std::vector<double> out(static_cast<size_t>(c.kv_dim()), 0.0);
  for (int h = 0; h < c.num_heads; ++h)
    for (int i = 0; i < hd; ++i) {
      double& o = out[(h / per_kv) * hd + i];
      const double v = per_input[h * hd + i];
      o = take_max ? std::max(o, v) : o + v / per_kv;
    }
  return out;
}

void scale_group_input(const ModelConfig& c, LayerWeights& lw, LinearGroup g,
                       std::span<const float> s, WeightArena& arena) {
  for (float v : s) check(std::isfinite(v) && v > 0, "channel scale {} is not positive", v);
  const std::vector<float> cols = scales_per_input(c, g, s);
  for (Matrix* m : linears_of_group(lw, g)) {
    float* w = arena.matrix(*m);
    for (int64_t r = 0; r < m->rows; ++r)
      for (int64_t j = 0; j < m->cols; ++j) w[r * m->cols + j] *= cols[j];
  }
  auto divide_rows = [&](Matrix& producer, Vector& bias) {
    float* w = arena.matrix(producer);
    for (int64_t r = 0; r < producer.rows; ++r)
      for (int64_t j = 0; j < producer.cols; ++j) w[r * producer.cols + j] /= s[r];
    if (bias.present()) {
      float* b = arena.vector(bias);
      for (int64_t r = 0; r < bias.size; ++r) b[r] /= s[r];
    }
  };
  auto divide_norm = [&](Vector& norm) {
    float* w = arena.vector(norm);
    // Gemma stores w with an effective weight of 1 + w.
    const float add = c.norm_plus_one ? 1.0f : 0.0f;
    for (int64_t i = 0; i < norm.size; ++i) w[i] = (w[i] + add) / s[i] - add;
  };
  switch (g) {
    case LinearGroup::AttnIn:
      divide_norm(lw.attn_norm);
      break;
    case LinearGroup::MlpIn:
      divide_norm(lw.ffn_norm);
      break;
    case LinearGroup::AttnOut:
      divide_rows(lw.wv, lw.bv);
      break;
    case LinearGroup::MlpAct:
      divide_rows(lw.w_up, lw.b_up);
      break;
  }
}

}  // namespace qforge
