#include "qforge/quant/rotation.h"

#include <random>

#include "qforge/core/error.h"

namespace qforge {
namespace {

kernels::HadamardTransform hadamard_for(int64_t n, const char* what) {
  check(kernels::HadamardTransform::exists(n),
        "cannot rotate: no Hadamard matrix of order {} ({}) can be built (need m * 2^k with m a "
        "Paley order such as 12, 20, 28, 36, ...)",
        n, what);
  return kernels::HadamardTransform(n);
}

// In-place transpose of a row-major [rows, cols] matrix through a scratch copy.
void transpose(float* a, int64_t rows, int64_t cols) {
  std::vector<float> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = a[r * cols + c];
  std::copy(t.begin(), t.end(), a);
}

}  // namespace

ModelRotation::ModelRotation(const ModelConfig& c, const RotationOptions& o)
    : config_(c),
      options_(o),
      residual_(hadamard_for(c.hidden_size, "hidden_size")),
      head_(hadamard_for(c.head_dim, "head_dim")) {
  if (o.online_down) down_.emplace(hadamard_for(c.intermediate_size, "intermediate_size"));
  std::mt19937_64 rng(o.seed);
  signs_.resize(static_cast<size_t>(c.hidden_size));
  for (float& s : signs_) s = (rng() & 1) ? -1.0f : 1.0f;
}

void ModelRotation::rotate_residual(float* x, int64_t n) const {
  const int64_t d = config_.hidden_size;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < d; ++i) x[t * d + i] *= signs_[i];
  residual_.apply(x, n);
}

void ModelRotation::rotate_inputs(Matrix& m, WeightArena& arena) const {
  rotate_residual(arena.matrix(m), m.rows);  // each row w ← w Q
}

void ModelRotation::rotate_outputs(Matrix& m, Vector& bias, WeightArena& arena) const {
  // Qᵀ W = (Wᵀ Q)ᵀ: rotate the rows of Wᵀ.
  float* w = arena.matrix(m);
  transpose(w, m.rows, m.cols);
  rotate_residual(w, m.cols);
  transpose(w, m.cols, m.rows);
  if (bias.present()) rotate_residual(arena.vector(bias), 1);
}

void ModelRotation::fold_norm(Vector& norm, Matrix* const* linears, int count,
                              WeightArena& arena) const {
  float* g = arena.vector(norm);
  const float add = config_.norm_plus_one ? 1.0f : 0.0f;
  for (int k = 0; k < count; ++k) {
    Matrix& m = *linears[k];
    float* w = arena.matrix(m);
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t j = 0; j < m.cols; ++j) w[r * m.cols + j] *= g[j] + add;
  }
  std::fill(g, g + norm.size, unit_norm_value());
}

void ModelRotation::rotate_layer(LayerWeights& lw, WeightArena& arena) const {
  const int hd = config_.head_dim;
  // Attention: fold the input norm into q/k/v, then R1 on their inputs.
  Matrix* qkv[] = {&lw.wq, &lw.wk, &lw.wv};
  fold_norm(lw.attn_norm, qkv, 3, arena);
  for (Matrix* m : qkv) rotate_inputs(*m, arena);
  // R2: each value head's output channels, and o_proj's matching input channels.
  float* wv = arena.matrix(lw.wv);
  for (int h = 0; h < config_.num_kv_heads; ++h) {
    float* block = wv + static_cast<int64_t>(h) * hd * lw.wv.cols;  // [hd, hidden]
    transpose(block, hd, lw.wv.cols);
    head_.apply(block, lw.wv.cols);
    transpose(block, lw.wv.cols, hd);
  }
  if (lw.bv.present()) head_.apply(arena.vector(lw.bv), config_.num_kv_heads);
  float* wo = arena.matrix(lw.wo);
  head_.apply(wo, lw.wo.rows * config_.num_heads);  // every head's segment of every row
  rotate_outputs(lw.wo, lw.bo, arena);
  // MLP: fold the norm into gate/up, R1 on their inputs; R4 on down's inputs; R1 on its outputs.
  Matrix* gate_up[] = {&lw.w_gate, &lw.w_up};
  fold_norm(lw.ffn_norm, gate_up, 2, arena);
  for (Matrix* m : gate_up) rotate_inputs(*m, arena);
  if (down_) down_->apply(arena.matrix(lw.w_down), lw.w_down.rows);
  rotate_outputs(lw.w_down, lw.b_down, arena);
}

void ModelRotation::rotated_head_rows(const Matrix& head, const Vector& final_norm, int64_t r0,
                                      int64_t r1, float* out) const {
  const int64_t d = config_.hidden_size;
  std::vector<float> g(static_cast<size_t>(d));
  convert_to_f32(final_norm.dtype, final_norm.data, g.data(), g.size());
  const float add = config_.norm_plus_one ? 1.0f : 0.0f;
  head.rows_to_f32(r0, r1 - r0, out);
  for (int64_t r = 0; r < r1 - r0; ++r)
    for (int64_t i = 0; i < d; ++i) out[r * d + i] *= g[i] + add;
  rotate_residual(out, r1 - r0);
}

void rotate_model(ModelWeights& w, const ModelRotation& rot, WeightArena& arena) {
  for (LayerWeights& lw : w.layers) rot.rotate_layer(lw, arena);
  // The head from the original weights (it may be the embedding itself), into a buffer of its own.
  const Matrix head = w.lm_head;
  if (w.lm_head.data == w.embedding.data) w.lm_head.name = "lm_head.weight";  // now untied
  float* h = arena.new_matrix(w.lm_head);
  rot.rotated_head_rows(head, w.final_norm, 0, head.rows, h);
  rot.rotate_residual(arena.matrix(w.embedding), w.embedding.rows);
  float* g = arena.vector(w.final_norm);
  std::fill(g, g + w.final_norm.size, rot.unit_norm_value());
}

}  // namespace qforge
