#include "qforge/io/config_json.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"

namespace qforge {
namespace {

using Json = nlohmann::json;

constexpr const char* kSupported = "llama, mistral, qwen2, qwen3, gemma, phi3";

struct Reader {
  const Json& j;
  const std::string& label;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  int required_int(const char* key) const {
    check(has(key), "{}: missing '{}'", label, key);
    check(j[key].is_number_integer(), "{}: '{}' must be an integer, got {}", label, key,
          j[key].dump());
    const auto v = j[key].get<int64_t>();
    check(v > 0 && v < (1ll << 31), "{}: '{}' must be a positive integer, got {}", label, key, v);
    return static_cast<int>(v);
  }
  int optional_int(const char* key, int fallback) const {
    return has(key) ? required_int(key) : fallback;
  }
  double optional_number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    check(j[key].is_number(), "{}: '{}' must be a number, got {}", label, key, j[key].dump());
    return j[key].get<double>();
  }
  bool optional_bool(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    check(j[key].is_boolean(), "{}: '{}' must be true or false, got {}", label, key, j[key].dump());
    return j[key].get<bool>();
  }
  std::string optional_string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    check(j[key].is_string(), "{}: '{}' must be a string, got {}", label, key, j[key].dump());
    return j[key].get<std::string>();
  }
};

// Only plain RoPE is implemented; any scaling scheme would silently change the model's outputs,
// so it is refused by name.
void check_rope_type(const Json& rope, const char* where, const std::string& label) {
  if (rope.is_null()) return;
  check(rope.is_object(), "{}: '{}' must be an object", label, where);
  for (const char* key : {"rope_type", "type"}) {
    if (rope.contains(key) && !rope[key].is_null()) {
      check(rope[key].is_string(), "{}: '{}.{}' must be a string", label, where, key);
      const std::string t = rope[key].get<std::string>();
      check(t == "default",
            "{}: unsupported RoPE scaling type '{}' in '{}' (only 'default' is supported)", label,
            t, where);
    }
  }
}

std::vector<int> token_ids(const Json& v, const char* key, const std::string& label) {
  std::vector<int> ids;
  if (v.is_null()) return ids;
  if (v.is_number_integer()) return {v.get<int>()};
  check(v.is_array(), "{}: '{}' must be an integer or a list of integers", label, key);
  for (const auto& e : v) {
    check(e.is_number_integer(), "{}: '{}' must contain integers", label, key);
    ids.push_back(e.get<int>());
  }
  return ids;
}

}  // namespace

ModelConfig parse_config_json(std::string_view text, const std::string& label) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail("{}: malformed JSON: {}", label, e.what());
  }
  check(j.is_object(), "{}: not a JSON object", label);
  const Reader r{j, label};
  ModelConfig c;
  c.model_type = r.optional_string("model_type", "");
  check(!c.model_type.empty(), "{}: missing 'model_type' (supported: {})", label, kSupported);
  const std::string& t = c.model_type;
  check(
      t == "llama" || t == "mistral" || t == "qwen2" || t == "qwen3" || t == "gemma" || t == "phi3",
      "{}: unsupported model_type '{}' (supported: {})", label, t, kSupported);

  c.hidden_size = r.required_int("hidden_size");
  c.intermediate_size = r.required_int("intermediate_size");
  c.num_layers = r.required_int("num_hidden_layers");
  c.num_heads = r.required_int("num_attention_heads");
  c.num_kv_heads = r.optional_int("num_key_value_heads", c.num_heads);
  c.vocab_size = r.required_int("vocab_size");
  c.max_position_embeddings = r.optional_int("max_position_embeddings", 2048);
  check(c.num_heads % c.num_kv_heads == 0,
        "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", label,
        c.num_heads, c.num_kv_heads);
  if (r.has("head_dim")) {
    c.head_dim = r.required_int("head_dim");
  } else {
    check(c.hidden_size % c.num_heads == 0,
          "{}: hidden_size {} is not a multiple of num_attention_heads {} and head_dim is absent",
          label, c.hidden_size, c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  c.rms_norm_eps = static_cast<float>(r.optional_number("rms_norm_eps", 1e-6));
  c.torch_dtype = r.optional_string("dtype", r.optional_string("torch_dtype", ""));

  // RoPE: newer configs nest theta (and the type) in rope_parameters; classic ones use
  // rope_theta and an optional rope_scaling object.
  double theta = r.optional_number("rope_theta", 10000.0);
  double partial = r.optional_number("partial_rotary_factor", 1.0);
  if (r.has("rope_scaling")) check_rope_type(j["rope_scaling"], "rope_scaling", label);
  if (r.has("rope_parameters")) {
    const Json& rp = j["rope_parameters"];
    check_rope_type(rp, "rope_parameters", label);
    const Reader rr{rp, label};
    theta = rr.optional_number("rope_theta", theta);
    partial = rr.optional_number("partial_rotary_factor", partial);
  }
  check(theta > 0, "{}: rope_theta must be positive, got {}", label, theta);
  check(partial > 0 && partial <= 1, "{}: partial_rotary_factor must be in (0, 1], got {}", label,
        partial);
  c.rope_theta = static_cast<float>(theta);
  c.partial_rotary_factor = static_cast<float>(partial);
  check(c.rotary_dim() % 2 == 0 && c.rotary_dim() > 0, "{}: rotary dimension {} must be even",
        label, c.rotary_dim());

  if (r.has("sliding_window") && (t == "mistral" || t == "qwen2" || t == "qwen3" || t == "phi3")) {
    const bool enabled = r.optional_bool("use_sliding_window", t == "mistral" || t == "phi3");
    const int window = r.required_int("sliding_window");
    check(!enabled || window >= c.max_position_embeddings,
          "{}: sliding window attention ({} tokens < {} positions) is not supported", label, window,
          c.max_position_embeddings);
  }

  // Activation: Gemma names it hidden_activation (hidden_act in older configs).
  const std::string act =
      r.optional_string("hidden_activation", r.optional_string("hidden_act", "silu"));
  if (act == "silu" || act == "swish") {
    c.activation = Activation::SiLU;
  } else if (act == "gelu_pytorch_tanh" ||
             (t == "gemma" && (act == "gelu" || act == "gelu_tanh"))) {
    // Gemma's checkpoints were trained with the tanh approximation even where configs say "gelu".
    c.activation = Activation::GeluTanh;
  } else {
    fail("{}: unsupported activation '{}' (supported: silu, gelu_pytorch_tanh)", label, act);
  }

  const bool attention_bias = r.optional_bool("attention_bias", false);
  c.qkv_bias = attention_bias || t == "qwen2";
  c.o_bias = attention_bias && t != "qwen2";
  c.mlp_bias = r.optional_bool("mlp_bias", false);
  c.qk_norm = t == "qwen3";
  c.norm_plus_one = t == "gemma";
  c.scale_embeddings = t == "gemma";
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", t == "gemma");

  if (r.has("bos_token_id")) {
    const std::vector<int> bos = token_ids(j["bos_token_id"], "bos_token_id", label);
    if (!bos.empty()) c.bos_token_id = bos.front();
  }
  if (r.has("eos_token_id")) c.eos_token_ids = token_ids(j["eos_token_id"], "eos_token_id", label);
  return c;
}

ModelConfig load_config_json(const std::filesystem::path& path) {
  return parse_config_json(read_text_file(path), path.string());
}

}  // namespace qforge
