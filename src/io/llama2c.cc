// llama2.c checkpoints (karpathy/llama2.c, legacy "version 0" export): a header of seven int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
// means the classifier is stored separately) followed by fp32 weights in a fixed order.
#include <cstdint>
#include <cstring>
#include <memory>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/io/model_loader.h"

namespace qforge {

LoadedModel load_llama2c_checkpoint(const std::filesystem::path& path) {
  auto file = std::make_shared<MappedFile>(path);
  const std::string label = path.string();
  constexpr size_t kHeader = 7 * sizeof(int32_t);
  check(file->size() >= kHeader, "{}: truncated: {} bytes, the header alone is {}", label,
        file->size(), kHeader);
  int32_t h[7];
  std::memcpy(h, file->data(), kHeader);
  const bool shared_classifier = h[5] > 0;
  ModelConfig c;
  c.model_type = "llama2c";
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.num_layers = h[2];
  c.num_heads = h[3];
  c.num_kv_heads = h[4];
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.max_position_embeddings = h[6];
  for (int i = 0; i < 7; ++i)
    check(i == 5 ? h[i] != 0 && c.vocab_size < (1 << 24) : h[i] > 0 && h[i] < (1 << 20),
          "{}: implausible header value {} at field {} (not a llama2.c checkpoint?)", label, h[i],
          i);
  check(c.hidden_size % c.num_heads == 0 && c.num_heads % c.num_kv_heads == 0,
        "{}: inconsistent head counts (dim {}, heads {}, kv heads {})", label, c.hidden_size,
        c.num_heads, c.num_kv_heads);
  c.head_dim = c.hidden_size / c.num_heads;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_layout = RopeLayout::Interleaved;
  c.activation = Activation::SiLU;
  c.tie_word_embeddings = shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.torch_dtype = "float32";

  const int64_t d = c.hidden_size, kvd = c.kv_dim(), ff = c.intermediate_size, L = c.num_layers,
                v = c.vocab_size, hd = c.head_dim;
  const int64_t floats = v * d + L * d + L * d * d + 2 * L * d * kvd + L * d * d + L * d +
                         3 * L * d * ff + d + c.max_position_embeddings * hd +
                         (shared_classifier ? 0 : v * d);
  const uint64_t expected = kHeader + static_cast<uint64_t>(floats) * 4;
  check(file->size() == expected,
        "{}: size {} bytes does not match the header's model ({} bytes expected)", label,
        file->size(), expected);

  LoadedModel m;
  m.source = path;
  m.config = c;
  const std::byte* p = file->data() + kHeader;
  auto take = [&](const std::string& name, std::vector<int64_t> shape) {
    TensorView tv{name, DType::F32, std::move(shape), p};
    p += tv.nbytes();
    m.tensors.push_back(tv);
    return tv;
  };
  auto matrix_at = [&](const TensorView& all, int64_t layer, int64_t rows, int64_t cols,
                       const std::string& name) {
    return Matrix{name, DType::F32, rows, cols, all.data + layer * rows * cols * 4};
  };
  auto vector_at = [&](const TensorView& all, int64_t layer, int64_t n, const std::string& name) {
    return Vector{name, DType::F32, n, all.data + layer * n * 4};
  };
  const TensorView emb = take("token_embedding_table", {v, d});
  const TensorView rms_att = take("rms_att_weight", {L, d});
  const TensorView wq = take("wq", {L, d, d});
  const TensorView wk = take("wk", {L, kvd, d});
  const TensorView wv = take("wv", {L, kvd, d});
  const TensorView wo = take("wo", {L, d, d});
  const TensorView rms_ffn = take("rms_ffn_weight", {L, d});
  const TensorView w1 = take("w1", {L, ff, d});
  const TensorView w2 = take("w2", {L, d, ff});
  const TensorView w3 = take("w3", {L, ff, d});
  const TensorView rms_final = take("rms_final_weight", {d});
  take("freq_cis_real", {c.max_position_embeddings, hd / 2});
  take("freq_cis_imag", {c.max_position_embeddings, hd / 2});

  ModelWeights& w = m.weights;
  w.embedding = matrix_from(emb);
  for (int64_t l = 0; l < L; ++l) {
    const std::string s = "[" + std::to_string(l) + "]";
    LayerWeights lw;
    lw.attn_norm = vector_at(rms_att, l, d, "rms_att_weight" + s);
    lw.wq = matrix_at(wq, l, d, d, "wq" + s);
    lw.wk = matrix_at(wk, l, kvd, d, "wk" + s);
    lw.wv = matrix_at(wv, l, kvd, d, "wv" + s);
    lw.wo = matrix_at(wo, l, d, d, "wo" + s);
    lw.ffn_norm = vector_at(rms_ffn, l, d, "rms_ffn_weight" + s);
    lw.w_gate = matrix_at(w1, l, ff, d, "w1" + s);
    lw.w_down = matrix_at(w2, l, d, ff, "w2" + s);
    lw.w_up = matrix_at(w3, l, ff, d, "w3" + s);
    w.layers.push_back(lw);
  }
  w.final_norm = vector_from(rms_final);
  w.lm_head = shared_classifier ? w.embedding : matrix_from(take("wcls", {v, d}));
  w.storage.push_back(file);
  return m;
}

}  // namespace qforge
