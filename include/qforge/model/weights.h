// The weights of a decoder as views into mapped files. Linear weights are row-major [out, in]
// (the Hugging Face / PyTorch convention); fused tensors (Phi-3's qkv_proj, gate_up_proj) are
// exposed as row-slices of the fused tensor, so no copy is ever made.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qforge/core/dtype.h"
#include "qforge/core/tensor.h"
#include "qforge/formats/matrix.h"

namespace qforge {

struct LayerWeights {
  Vector attn_norm;             // input_layernorm
  Matrix wq, wk, wv, wo;        // q_proj, k_proj, v_proj, o_proj
  Vector bq, bk, bv, bo;        // optional biases
  Vector q_norm, k_norm;        // Qwen3 per-head norms [head_dim]
  Vector ffn_norm;              // post_attention_layernorm
  Matrix w_gate, w_up, w_down;  // gate_proj, up_proj, down_proj
  Vector b_gate, b_up, b_down;  // optional biases
};

struct ModelWeights {
  Matrix embedding;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  Vector final_norm;
  Matrix lm_head;  // [vocab, hidden]; equals `embedding` when embeddings are tied

  // Keeps the backing storage (mapped files, converted buffers) alive as long as the views.
  std::vector<std::shared_ptr<const void>> storage;
  // Drops the resident pages of a matrix whose bytes are file-mapped (no-op otherwise): streaming
  // passes (quantization) call it for each layer they are done with. Set by the loader.
  std::function<void(const std::byte*, size_t)> release_pages;
  void release(const Matrix& m) const {
    if (release_pages && m.present()) release_pages(m.data, m.nbytes());
  }
};

// Conversion helpers for views.
Matrix matrix_from(const TensorView& t);
Vector vector_from(const TensorView& t);

}  // namespace qforge
