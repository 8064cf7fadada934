#include "qforge/quant/llamacpp_presets.h"

#include <fmt/format.h>

#include <map>

#include "qforge/core/error.h"
#include "qforge/formats/format.h"

namespace qforge {
namespace {

// Preset name -> default type (llama_ftype_get_default_type).
const std::map<std::string_view, std::string_view>& presets() {
  static const std::map<std::string_view, std::string_view> kPresets = {
      {"q2_k", "q2_k"},   {"q3_k_s", "q3_k"}, {"q3_k_m", "q3_k"},   {"q3_k_l", "q3_k"},
      {"q4_k_s", "q4_k"}, {"q4_k_m", "q4_k"}, {"q5_k_s", "q5_k"},   {"q5_k_m", "q5_k"},
      {"q6_k", "q6_k"},   {"q8_0", "q8_0"},   {"q4_0", "q4_0"},     {"q4_1", "q4_1"},
      {"q5_0", "q5_0"},   {"q5_1", "q5_1"},   {"iq4_nl", "iq4_nl"}, {"iq4_xs", "iq4_xs"}};
  return kPresets;
}

enum class Role { Embedding, AttnQ, AttnK, AttnV, AttnOutput, FfnGate, FfnUp, FfnDown, Output };

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
bool use_more_bits(int i, int n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// llama_tensor_get_type_impl for one weight of layer `i` (of `n`); `type` is the preset's default.
std::string choose(std::string_view preset, std::string type, Role role, int i, int n, int64_t cols,
                   const ModelConfig& c, bool imatrix) {
  const bool gqa4 = c.num_heads / c.num_kv_heads >= 4;
  const auto is = [&](std::string_view p) { return preset == p; };
  switch (role) {
    case Role::Output:  // the head, and a tied embedding
      if (cols % formats::find_format(type).info().block != 0) return "q8_0";
      return type == "q8_0" ? type : "q6_k";
    case Role::AttnV:
      if (is("q2_k")) return gqa4 ? "q4_k" : "q3_k";
      if (is("q3_k_m")) return i < 2 ? "q5_k" : "q4_k";
      if (is("q3_k_l")) return "q5_k";
      if ((is("iq4_nl") || is("iq4_xs")) && gqa4) return "q5_k";
      if ((is("q4_k_m") || is("q5_k_m")) && use_more_bits(i, n)) return "q6_k";
      if (is("q4_k_s") && i < 4) return "q5_k";
      return type;
    case Role::FfnDown:
      if (is("q2_k")) return "q3_k";
      if (is("q3_k_m")) return i < n / 16 ? "q5_k" : "q4_k";
      if (is("q3_k_l")) return "q5_k";
      if (is("q4_k_m")) return use_more_bits(i, n) ? "q6_k" : type;
      if (i < n / 8 && (is("iq4_nl") || is("iq4_xs")) && !imatrix) return "q5_k";
      if (is("q5_k_m") && use_more_bits(i, n)) return "q6_k";
      if (is("q4_k_s") && i < n / 8) return "q5_k";
      if ((is("q4_0") || is("q5_0")) && imatrix && i < n / 8) return is("q4_0") ? "q4_1" : "q5_1";
      return type;
    case Role::AttnOutput:
      if (is("q2_k")) return "q3_k";
      if (is("q3_k_m")) return "q4_k";
      if (is("q3_k_l")) return "q5_k";
      return type;
    default:
      return type;
  }
}

// tensor_type_fallback: a type whose block does not divide the row length falls back to a 32-block
// type, or F16 (here: kept unquantized) when even that does not fit.
std::string fallback(const std::string& type, int64_t cols) {
  if (cols % formats::find_format(type).info().block == 0) return type;
  static const std::map<std::string_view, std::string_view> kFallbacks = {
      {"iq4_xs", "iq4_nl"}, {"q2_k", "q4_0"}, {"q3_k", "q4_0"},
      {"q4_k", "q5_0"},     {"q5_k", "q5_1"}, {"q6_k", "q8_0"}};
  auto it = kFallbacks.find(type);
  const std::string to = it == kFallbacks.end() ? type : std::string(it->second);
  return cols % formats::find_format(to).info().block == 0 ? to : "keep";
}

}  // namespace

std::vector<std::string> llamacpp_preset_names() {
  std::vector<std::string> out;
  for (const auto& [name, type] : presets()) out.emplace_back(name);
  return out;
}

std::optional<PresetPlan> llamacpp_preset(std::string_view name, const ModelConfig& c,
                                          bool imatrix) {
  auto it = presets().find(name);
  if (it == presets().end()) return std::nullopt;
  check(c.model_type != "phi3",
        "llama.cpp presets for fused qkv/gate_up (Phi-3) are not supported");
  PresetPlan p{std::string(it->second), {}};
  const int n = c.num_layers;
  auto add = [&](std::string weight, Role role, int layer, int64_t cols) {
    p.tensors.emplace_back(std::move(weight),
                           fallback(choose(name, p.base, role, layer, n, cols, c, imatrix), cols));
  };
  const int64_t d = c.hidden_size, qd = c.q_dim(), ff = c.intermediate_size;
  // A tied embedding is the head (llama.cpp gives it the output's type); else the base type.
  if (c.tie_word_embeddings) {
    add("model.embed_tokens.weight", Role::Output, 0, d);
  } else {
    add("model.embed_tokens.weight", Role::Embedding, 0, d);
    add("lm_head.weight", Role::Output, 0, d);
  }
  for (int l = 0; l < n; ++l) {
    const std::string pre = fmt::format("model.layers.{}.", l);
    add(pre + "self_attn.q_proj.weight", Role::AttnQ, l, d);
    add(pre + "self_attn.k_proj.weight", Role::AttnK, l, d);
    add(pre + "self_attn.v_proj.weight", Role::AttnV, l, d);
    add(pre + "self_attn.o_proj.weight", Role::AttnOutput, l, qd);
    add(pre + "mlp.gate_proj.weight", Role::FfnGate, l, d);
    add(pre + "mlp.up_proj.weight", Role::FfnUp, l, d);
    add(pre + "mlp.down_proj.weight", Role::FfnDown, l, ff);
  }
  return p;
}

}  // namespace qforge
