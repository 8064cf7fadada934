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

namespace qforge {

// A matrix [rows, cols] (rows = output features) stored row-major in `dtype`, or absent.
// This is what the kernels consume; quantized formats will extend it with a format descriptor.
struct Matrix {
  std::string name;
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const std::byte* data = nullptr;

  bool present() const { return data != nullptr; }
  size_t row_bytes() const { return static_cast<size_t>(cols) * dtype_size(dtype); }
  size_t nbytes() const { return static_cast<size_t>(rows) * row_bytes(); }
  const std::byte* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
  // Rows [begin, begin + count) of this matrix, as a matrix.
  Matrix slice_rows(int64_t begin, int64_t count, std::string slice_name) const;
};

// A 1-D parameter (norm weight or bias), or absent.
struct Vector {
  std::string name;
  DType dtype = DType::F32;
  int64_t size = 0;
  const std::byte* data = nullptr;
  bool present() const { return data != nullptr; }
};

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
