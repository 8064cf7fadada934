#include "reference_forward.h"

#include <cmath>

namespace qforge::testing {
namespace {

using Vec = std::vector<double>;

Vec to_f64(const std::byte* data, DType dtype, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  convert_to_f32(dtype, data, f.data(), f.size());
  return Vec(f.begin(), f.end());
}
Vec vec(const Vector& v) {
  return v.present() ? to_f64(v.data, v.dtype, v.size) : Vec{};
}

// y = W x (+ b) with W [rows, cols]
Vec linear(const Matrix& w, const Vec& x, const Vec& b = {}) {
  Vec y(static_cast<size_t>(w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    const Vec row = to_f64(w.row(r), w.dtype, w.cols);
    double s = 0;
    for (int64_t c = 0; c < w.cols; ++c) s += row[c] * x[c];
    y[r] = s + (b.empty() ? 0.0 : b[r]);
  }
  return y;
}

Vec rmsnorm(const Vec& x, const Vec& w, double eps, bool plus_one, size_t off = 0, size_t n = 0) {
  if (n == 0) n = x.size();
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += x[off + i] * x[off + i];
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  Vec y(n);
  for (size_t i = 0; i < n; ++i) y[i] = x[off + i] * inv * (plus_one ? 1.0 + w[i] : w[i]);
  return y;
}

void rope(double* v, int head_dim, int rotary_dim, double theta, int pos, bool interleaved) {
  for (int i = 0; i < rotary_dim / 2; ++i) {
    const double freq = std::pow(theta, -2.0 * i / rotary_dim);
    const double c = std::cos(pos * freq), s = std::sin(pos * freq);
    const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + rotary_dim / 2;
    const double x = v[a], y = v[b];
    v[a] = x * c - y * s;
    v[b] = y * c + x * s;
  }
  (void)head_dim;
}

}  // namespace

std::vector<double> reference_forward_f64(const ModelConfig& c, const ModelWeights& w,
                                          const std::vector<int32_t>& tokens) {
  const size_t n = tokens.size(), d = c.hidden_size, hd = c.head_dim;
  const bool il = c.rope_layout == RopeLayout::Interleaved;
  std::vector<Vec> x(n);
  for (size_t t = 0; t < n; ++t) {
    x[t] = to_f64(w.embedding.row(tokens[t]), w.embedding.dtype, d);
    if (c.scale_embeddings)
      for (double& v : x[t]) v *= std::sqrt(static_cast<double>(d));
  }
  for (const LayerWeights& lw : w.layers) {
    std::vector<Vec> q(n), k(n), v(n);
    for (size_t t = 0; t < n; ++t) {
      const Vec h = rmsnorm(x[t], vec(lw.attn_norm), c.rms_norm_eps, c.norm_plus_one);
      q[t] = linear(lw.wq, h, vec(lw.bq));
      k[t] = linear(lw.wk, h, vec(lw.bk));
      v[t] = linear(lw.wv, h, vec(lw.bv));
      for (int hh = 0; hh < c.num_heads; ++hh) {
        if (c.qk_norm) {
          const Vec nq = rmsnorm(q[t], vec(lw.q_norm), c.rms_norm_eps, false, hh * hd, hd);
          std::copy(nq.begin(), nq.end(), q[t].begin() + hh * hd);
        }
        rope(&q[t][hh * hd], hd, c.rotary_dim(), c.rope_theta, static_cast<int>(t), il);
      }
      for (int hh = 0; hh < c.num_kv_heads; ++hh) {
        if (c.qk_norm) {
          const Vec nk = rmsnorm(k[t], vec(lw.k_norm), c.rms_norm_eps, false, hh * hd, hd);
          std::copy(nk.begin(), nk.end(), k[t].begin() + hh * hd);
        }
        rope(&k[t][hh * hd], hd, c.rotary_dim(), c.rope_theta, static_cast<int>(t), il);
      }
    }
    for (size_t t = 0; t < n; ++t) {
      Vec att(static_cast<size_t>(c.q_dim()), 0.0);
      for (int hh = 0; hh < c.num_heads; ++hh) {
        const int kv = hh / (c.num_heads / c.num_kv_heads);
        Vec s(t + 1);
        double mx = -1e300;
        for (size_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (size_t i = 0; i < hd; ++i) dot += q[t][hh * hd + i] * k[j][kv * hd + i];
          s[j] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (size_t j = 0; j <= t; ++j)
          for (size_t i = 0; i < hd; ++i) att[hh * hd + i] += s[j] / z * v[j][kv * hd + i];
      }
      const Vec o = linear(lw.wo, att, vec(lw.bo));
      for (size_t i = 0; i < d; ++i) x[t][i] += o[i];
      const Vec h = rmsnorm(x[t], vec(lw.ffn_norm), c.rms_norm_eps, c.norm_plus_one);
      Vec g = linear(lw.w_gate, h, vec(lw.b_gate));
      const Vec u = linear(lw.w_up, h, vec(lw.b_up));
      for (size_t i = 0; i < g.size(); ++i) {
        const double a = g[i];
        const double act =
            c.activation == Activation::SiLU
                ? a / (1 + std::exp(-a))
                : 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
        g[i] = act * u[i];
      }
      const Vec down = linear(lw.w_down, g, vec(lw.b_down));
      for (size_t i = 0; i < d; ++i) x[t][i] += down[i];
    }
  }
  std::vector<double> logits;
  for (size_t t = 0; t < n; ++t) {
    const Vec h = rmsnorm(x[t], vec(w.final_norm), c.rms_norm_eps, c.norm_plus_one);
    const Vec l = linear(w.lm_head, h);
    logits.insert(logits.end(), l.begin(), l.end());
  }
  return logits;
}

}  // namespace qforge::testing
