// Architecture description of one decoder-only transformer. The six supported families (Llama,
// Mistral, Qwen2, Qwen3, Gemma, Phi-3) and llama2.c checkpoints are all expressed as flags of this
// one struct; the forward pass reads nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qforge {

enum class Activation : uint8_t { SiLU, GeluTanh };

// How RoPE pairs up the dimensions of a head.
//  HalfSplit:   (x[i], x[i + d/2]) — Hugging Face layout (rotate_half), used by all HF families.
//  Interleaved: (x[2i], x[2i + 1]) — llama2.c / original Meta layout.
enum class RopeLayout : uint8_t { HalfSplit, Interleaved };

struct ModelConfig {
  std::string model_type;  // "llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "llama2c"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  float partial_rotary_factor = 1.0f;  // fraction of head_dim that is rotated
  RopeLayout rope_layout = RopeLayout::HalfSplit;
  Activation activation = Activation::SiLU;

  bool tie_word_embeddings = false;
  bool qkv_bias = false;          // Qwen2: q/k/v projections have biases
  bool o_bias = false;            // attention output bias
  bool mlp_bias = false;          // gate/up/down biases
  bool qk_norm = false;           // Qwen3: per-head RMSNorm on q and k before RoPE
  bool norm_plus_one = false;     // Gemma: RMSNorm multiplies by (1 + w)
  bool scale_embeddings = false;  // Gemma: embeddings scaled by sqrt(hidden_size)

  int bos_token_id = -1;  // -1: none
  std::vector<int> eos_token_ids;
  std::string torch_dtype;  // as declared by the config ("bfloat16", "float32", ...)

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  int rotary_dim() const { return static_cast<int>(head_dim * partial_rotary_factor); }
  bool seq_len_ok(int n) const {
    return max_position_embeddings <= 0 || n <= max_position_embeddings;
  }
};

}  // namespace qforge
