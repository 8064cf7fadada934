// GGUF <-> Hugging Face: names, the llama q/k permutation, hyperparameters, vocabulary; opening a
// .gguf as a model and writing a model as one. Conventions follow llama.cpp's
// convert_hf_to_gguf.py (writing) and src/llama-model.cpp (reading).
#include "qforge/io/gguf_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <utility>

#include "io/gguf_source.h"
#include "qforge/core/error.h"
#include "qforge/formats/format.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

constexpr std::array<const char*, 5> kArchitectures{"llama", "qwen2", "qwen3", "gemma", "phi3"};

// Whole-model tensors.
constexpr std::array<std::pair<const char*, const char*>, 3> kGlobalNames{{
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
}};

// Per-layer tensors: "model.layers.N.<hf>" <-> "blk.N.<gguf>".
constexpr std::array<std::pair<const char*, const char*>, 21> kLayerNames{{
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.gate_proj.bias", "ffn_gate.bias"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.up_proj.bias", "ffn_up.bias"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.down_proj.bias", "ffn_down.bias"},
    {"mlp.gate_up_proj.weight", "ffn_up.weight"},  // Phi-3: fused [gate | up] rows
    {"", ""},
}};

// Phi-3 stores its fused gate_up as ffn_up; every other architecture has a separate up_proj.
bool name_applies(const std::string& hf_suffix, const std::string& arch) {
  if (hf_suffix.empty()) return false;
  if (hf_suffix == "mlp.gate_up_proj.weight") return arch == "phi3";
  if (hf_suffix == "mlp.up_proj.weight") return arch != "phi3";
  return true;
}

// "prefix<N>.rest" -> (N, rest), or nullopt.
std::optional<std::pair<int, std::string>> split_layer(const std::string& name,
                                                       const std::string& prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot - prefix.size() > 6)
    return std::nullopt;
  int layer = 0;
  for (size_t i = prefix.size(); i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    layer = layer * 10 + (name[i] - '0');
  }
  return std::make_pair(layer, name.substr(dot + 1));
}

bool permutes_qk(const std::string& arch) {
  return arch == "llama";
}

// ---- reading ----

struct Hyper {
  const gguf::File& f;
  const std::string& arch;
  int64_t get(const char* key) const { return f.integer(arch + "." + key); }
  std::optional<int64_t> optional(const char* key) const {
    return f.optional_integer(arch + "." + key);
  }
  std::optional<double> number(const char* key) const {
    return f.optional_number(arch + "." + key);
  }
};

int positive_int(const gguf::File& f, const std::string& key, int64_t v) {
  check(v > 0 && v <= (1 << 24), "{}: {} = {} is out of range", f.label(), key, v);
  return static_cast<int>(v);
}

ModelConfig config_from_gguf(const gguf::File& f) {
  const std::string arch(f.string("general.architecture"));
  check(std::find(kArchitectures.begin(), kArchitectures.end(), arch) != kArchitectures.end(),
        "{}: unsupported architecture '{}' (supported: llama, qwen2, qwen3, gemma, phi3)",
        f.label(), arch);
  const Hyper h{f, arch};
  ModelConfig c;
  c.model_type = arch;
  c.hidden_size = positive_int(f, arch + ".embedding_length", h.get("embedding_length"));
  c.intermediate_size =
      positive_int(f, arch + ".feed_forward_length", h.get("feed_forward_length"));
  c.num_layers = positive_int(f, arch + ".block_count", h.get("block_count"));
  c.num_heads = positive_int(f, arch + ".attention.head_count", h.get("attention.head_count"));
  c.num_kv_heads = positive_int(f, arch + ".attention.head_count_kv",
                                h.optional("attention.head_count_kv").value_or(c.num_heads));
  check(c.hidden_size % c.num_heads == 0 || h.optional("attention.key_length"),
        "{}: embedding_length {} is not a multiple of head_count {}", f.label(), c.hidden_size,
        c.num_heads);
  c.head_dim =
      positive_int(f, arch + ".attention.key_length",
                   h.optional("attention.key_length").value_or(c.hidden_size / c.num_heads));
  c.max_position_embeddings =
      static_cast<int>(std::clamp<int64_t>(h.optional("context_length").value_or(0), 0, 1 << 30));
  c.rms_norm_eps = static_cast<float>(h.number("attention.layer_norm_rms_epsilon").value_or(1e-6));
  c.rope_theta = static_cast<float>(h.number("rope.freq_base").value_or(10000.0));
  if (auto dims = h.optional("rope.dimension_count")) {
    check(*dims > 0 && *dims <= c.head_dim && *dims % 2 == 0,
          "{}: rope.dimension_count {} does not fit head dimension {}", f.label(), *dims,
          c.head_dim);
    c.partial_rotary_factor = static_cast<float>(*dims) / static_cast<float>(c.head_dim);
  }
  c.activation = arch == "gemma" ? Activation::GeluTanh : Activation::SiLU;
  c.scale_embeddings = arch == "gemma";
  c.norm_plus_one = false;  // a GGUF's Gemma norms already hold 1 + w
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
  c.mlp_bias = f.find_tensor("blk.0.ffn_down.bias") != nullptr;
  c.qk_norm = f.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  check(embd != nullptr && embd->ne.size() == 2, "{}: missing 2-D tensor 'token_embd.weight'",
        f.label());
  c.vocab_size = positive_int(f, "token_embd.weight rows", embd->ne[1]);
  c.torch_dtype = embd->type->dtype == DType::BF16  ? "bfloat16"
                  : embd->type->dtype == DType::F16 ? "float16"
                                                    : "float32";
  c.bos_token_id = static_cast<int>(f.optional_integer("tokenizer.ggml.bos_token_id").value_or(-1));
  if (auto eos = f.optional_integer("tokenizer.ggml.eos_token_id"))
    c.eos_token_ids.push_back(static_cast<int>(*eos));
  return c;
}

Vocabulary vocabulary_from_gguf(const gguf::File& f) {
  Vocabulary v;
  v.model = std::string(f.string("tokenizer.ggml.model"));
  for (std::string_view t : f.strings("tokenizer.ggml.tokens")) v.tokens.emplace_back(t);
  if (f.find("tokenizer.ggml.scores"))
    for (double s : f.numbers("tokenizer.ggml.scores")) v.scores.push_back(static_cast<float>(s));
  if (f.find("tokenizer.ggml.token_type"))
    for (int64_t t : f.integers("tokenizer.ggml.token_type"))
      v.types.push_back(static_cast<int32_t>(std::clamp<int64_t>(t, 0, 6)));
  if (f.find("tokenizer.ggml.merges"))
    for (std::string_view m : f.strings("tokenizer.ggml.merges")) v.merges.emplace_back(m);
  v.pre = std::string(f.optional_string("tokenizer.ggml.pre").value_or("default"));
  auto id = [&](const char* key) {
    const int64_t i = f.optional_integer(key).value_or(-1);
    check(i >= -1 && i < static_cast<int64_t>(v.tokens.size()), "{}: {} = {} is not a token id",
          f.label(), key, i);
    return static_cast<int32_t>(i);
  };
  v.bos = id("tokenizer.ggml.bos_token_id");
  v.eos = id("tokenizer.ggml.eos_token_id");
  v.unk = id("tokenizer.ggml.unknown_token_id");
  v.pad = id("tokenizer.ggml.padding_token_id");
  v.add_bos = f.optional_bool("tokenizer.ggml.add_bos_token").value_or(v.model == "llama");
  v.add_space_prefix = f.optional_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  return v;
}

// Owns what the tensor views of a GGUF model point into: the mapping and un-permuted copies.
struct GgufStorage {
  std::shared_ptr<gguf::File> file;
  std::vector<std::vector<std::byte>> copies;
  std::map<std::string, TensorView> views;  // by Hugging Face name (quantized: "<name>.packed")
};

// One GGUF tensor as a Hugging Face view: a float dtype keeps its shape; a block type becomes
// "<name>.packed" (U8, its bytes) with the format recorded in `packed`.
void add_tensor(GgufStorage& s, std::map<std::string, TensorRecord>& packed,
                const gguf::TensorInfo& t, const std::string& arch, const ModelConfig& c) {
  const std::string& label = s.file->label();
  std::string name;
  try {
    name = hf_tensor_name(t.name, arch);
  } catch (const Error& e) {
    fail("{}: {}", label, e.what());
  }
  check(t.type->dtype || !t.type->format.empty(),
        "{}: tensor '{}' has type {}, which qforge cannot read (supported: f32, f16, bf16, q4_0, "
        "q4_1, q5_0, q5_1, q8_0, q2_K..q6_K, iq4_nl, iq4_xs)",
        label, t.name, t.type->name);
  const std::byte* data = t.data;
  const bool is_q = name.ends_with("self_attn.q_proj.weight");
  if (permutes_qk(arch) && t.ne.size() == 2 &&
      (is_q || name.ends_with("self_attn.k_proj.weight"))) {
    const int64_t heads = is_q ? c.num_heads : c.num_kv_heads;
    check(t.ne[1] > 0 && t.ne[1] % (2 * heads) == 0,
          "{}: tensor '{}' has {} rows, not {} heads of even size", label, t.name, t.ne[1], heads);
    s.copies.push_back(permute_qk_rows(t.data, t.ne[1], t.nbytes / t.ne[1], heads, false));
    data = s.copies.back().data();
  }
  TensorView v;
  if (t.type->dtype) {
    v = TensorView{name, *t.type->dtype, t.shape(), data};
  } else {
    check(t.ne.size() == 2, "{}: quantized tensor '{}' must be a matrix", label, t.name);
    packed[name] = TensorRecord::stored_as(std::string(t.type->format), t.ne[1], t.ne[0]);
    v = TensorView{name + ".packed", DType::U8, {static_cast<int64_t>(t.nbytes)}, data};
  }
  s.views[v.name] = v;
}

}  // namespace

std::string gguf_architecture(const std::string& model_type) {
  if (model_type == "mistral") return "llama";
  check(std::find(kArchitectures.begin(), kArchitectures.end(), model_type) != kArchitectures.end(),
        "model type '{}' has no GGUF architecture here (supported: llama, mistral, qwen2, qwen3, "
        "gemma, phi3)",
        model_type);
  return model_type;
}

std::string gguf_tensor_name(const std::string& hf_name, const std::string& arch) {
  for (const auto& [hf, gg] : kGlobalNames)
    if (hf_name == hf) return gg;
  if (auto layer = split_layer(hf_name, "model.layers."))
    for (const auto& [hf, gg] : kLayerNames)
      if (layer->second == hf && name_applies(hf, arch))
        return fmt::format("blk.{}.{}", layer->first, gg);
  fail("tensor '{}' has no GGUF name for architecture {}", hf_name, arch);
}

std::string hf_tensor_name(const std::string& gguf_name, const std::string& arch) {
  for (const auto& [hf, gg] : kGlobalNames)
    if (gguf_name == gg) return hf;
  if (auto layer = split_layer(gguf_name, "blk."))
    for (const auto& [hf, gg] : kLayerNames)
      if (layer->second == gg && name_applies(hf, arch))
        return fmt::format("model.layers.{}.{}", layer->first, hf);
  fail("tensor '{}' is not part of a {} model as qforge reads it", gguf_name, arch);
}

std::vector<std::byte> permute_qk_rows(const std::byte* rows, int64_t n_rows, size_t row_bytes,
                                       int64_t heads, bool to_gguf) {
  const int64_t head_dim = n_rows / heads, half = head_dim / 2;
  std::vector<std::byte> out(static_cast<size_t>(n_rows) * row_bytes);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t side = 0; side < 2; ++side)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t hf = h * head_dim + side * half + i, gg = h * head_dim + 2 * i + side;
        const int64_t from = to_gguf ? hf : gg, to = to_gguf ? gg : hf;
        std::memcpy(out.data() + to * row_bytes, rows + from * row_bytes, row_bytes);
      }
  return out;
}

GgufModelSource open_gguf_model(const fs::path& path) {
  auto storage = std::make_shared<GgufStorage>();
  storage->file = gguf::File::open(path);
  const gguf::File& f = *storage->file;
  GgufModelSource m;
  m.config = config_from_gguf(f);
  std::map<std::string, TensorRecord> packed;
  for (const gguf::TensorInfo& t : f.tensors())
    add_tensor(*storage, packed, t, m.config.model_type, m.config);
  TensorSource& s = m.tensors;
  s.path = path;
  s.find = [st = storage.get()](const std::string& name) -> const TensorView* {
    auto it = st->views.find(name);
    return it == st->views.end() ? nullptr : &it->second;
  };
  s.packed_tensors = std::move(packed);
  s.storage.push_back(storage);
  s.release_pages = [file = storage->file](const std::byte* p, size_t n) { file->release(p, n); };
  for (const auto& [name, v] : storage->views) s.listing.push_back(v);
  if (f.find("tokenizer.ggml.model"))
    m.tokenizer = make_tokenizer(vocabulary_from_gguf(f), path.string());
  return m;
}

// ---- writing ----

namespace {

// One tensor of the output: its GGUF name and the pieces of rows it is made of (Phi-3's fused
// qkv is three matrices), or a vector.
struct OutTensor {
  std::string name;
  std::vector<Matrix> parts;
  Vector vector;
  bool permute = false;
  int64_t heads = 0;
  float add = 0;  // Gemma norms: 1 + w
};

std::vector<OutTensor> output_tensors(const LoadedModel& m, const std::string& arch) {
  const ModelConfig& c = m.config;
  const ModelWeights& w = m.weights;
  const float norm_add = c.norm_plus_one ? 1.0f : 0.0f;
  std::vector<OutTensor> out;
  auto matrix = [&](std::string name, std::vector<Matrix> parts) {
    out.push_back({std::move(name), std::move(parts), {}, false, 0, 0});
  };
  auto vector = [&](std::string name, const Vector& v, float add = 0) {
    if (v.present()) out.push_back({std::move(name), {}, v, false, 0, add});
  };
  matrix("token_embd.weight", {w.embedding});
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    auto n = [&](const char* suffix) { return fmt::format("blk.{}.{}", l, suffix); };
    vector(n("attn_norm.weight"), lw.attn_norm, norm_add);
    if (arch == "phi3") {
      matrix(n("attn_qkv.weight"), {lw.wq, lw.wk, lw.wv});
    } else {
      const bool p = permutes_qk(arch);
      out.push_back({n("attn_q.weight"), {lw.wq}, {}, p, c.num_heads, 0});
      out.push_back({n("attn_k.weight"), {lw.wk}, {}, p, c.num_kv_heads, 0});
      matrix(n("attn_v.weight"), {lw.wv});
    }
    vector(n("attn_q.bias"), lw.bq);
    vector(n("attn_k.bias"), lw.bk);
    vector(n("attn_v.bias"), lw.bv);
    vector(n("attn_q_norm.weight"), lw.q_norm, norm_add);
    vector(n("attn_k_norm.weight"), lw.k_norm, norm_add);
    matrix(n("attn_output.weight"), {lw.wo});
    vector(n("attn_output.bias"), lw.bo);
    vector(n("ffn_norm.weight"), lw.ffn_norm, norm_add);
    if (arch == "phi3") {
      matrix(n("ffn_up.weight"), {lw.w_gate, lw.w_up});
    } else {
      matrix(n("ffn_gate.weight"), {lw.w_gate});
      matrix(n("ffn_up.weight"), {lw.w_up});
    }
    matrix(n("ffn_down.weight"), {lw.w_down});
    vector(n("ffn_gate.bias"), lw.b_gate);
    vector(n("ffn_up.bias"), lw.b_up);
    vector(n("ffn_down.bias"), lw.b_down);
  }
  vector("output_norm.weight", w.final_norm, norm_add);
  if (!c.tie_word_embeddings) matrix("output.weight", {w.lm_head});
  return out;
}

// llama.cpp's LLAMA_FTYPE (llama.h) of a file whose main type is `t`: the float types, and for
// block types the _M mix llama-quantize names after them (informational for llama.cpp).
uint32_t file_type_of(const gguf::TypeTraits& t) {
  static const std::map<std::string_view, uint32_t> kFileTypes = {
      {"f32", 0},   {"f16", 1},   {"q4_0", 2},    {"q4_1", 3},    {"q8_0", 7},
      {"q5_0", 8},  {"q5_1", 9},  {"q2_K", 10},   {"q3_K", 12},   {"q4_K", 15},
      {"q5_K", 17}, {"q6_K", 18}, {"iq4_nl", 25}, {"iq4_xs", 30}, {"bf16", 32}};
  auto it = kFileTypes.find(t.name);
  return it == kFileTypes.end() ? 0 : it->second;
}

// A weight a qforge-quantized model stores packed ("<name>.packed" in qforge's layout).
struct PackedWeight {
  const gguf::TypeTraits* type = nullptr;
  const std::byte* data = nullptr;
  size_t bytes = 0;
};

// The packed weights of a model written by `qforge quantize`, by Hugging Face name. A format GGUF
// has no type for is refused here, naming the tensor, before anything is written.
std::map<std::string, PackedWeight> packed_weights(const LoadedModel& m) {
  std::map<std::string, PackedWeight> out;
  if (!m.quantization_record) return out;
  for (const auto& [key, entry] : m.quantization_record->tensors) {
    const std::string& name = key;  // not the structured binding: the lambda below uses it
    const std::string& format = entry.format;
    const gguf::TypeTraits* type = gguf::type_of_format(format);
    check(type != nullptr && entry.layout == "qforge",
          "{}: tensor '{}' is quantized as {}, which has no GGUF type (GGUF types: q4_0 q4_1 "
          "q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs)",
          m.source.string(), name, format);
    auto view = std::find_if(m.tensors.begin(), m.tensors.end(),
                             [&](const TensorView& t) { return t.name == name + ".packed"; });
    check(view != m.tensors.end(), "{}: missing tensor '{}.packed'", m.source.string(), name);
    out[name] = {type, view->data, view->nbytes()};
  }
  return out;
}

// How each part of an output tensor is stored: its packed bytes, or its floats in `dtype` (the
// part's own dtype when none is asked for).
struct PartWriter {
  const std::map<std::string, PackedWeight>& packed;
  std::optional<DType> dtype;

  const gguf::TypeTraits* type_of(const Matrix& m) const {
    if (auto it = packed.find(m.name); it != packed.end()) return it->second.type;
    return gguf::type_of_dtype(float_dtype(m));
  }
  // A packed matrix not written as its blocks is decoded (to F32 unless a dtype is asked for).
  DType float_dtype(const Matrix& m) const {
    return dtype.value_or(m.packed() ? DType::F32 : m.dtype);
  }
  std::vector<std::byte> bytes_of(const Matrix& m) const {
    if (auto it = packed.find(m.name); it != packed.end())
      return {it->second.data, it->second.data + it->second.bytes};
    const DType to = float_dtype(m);
    const std::vector<float> f = m.to_f32();
    std::vector<std::byte> out(f.size() * dtype_size(to));
    for (size_t i = 0; i < f.size(); ++i) {
      if (to == DType::F32) {
        std::memcpy(out.data() + 4 * i, &f[i], 4);
      } else {
        const uint16_t h = to == DType::F16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
    }
    return out;
  }
};

// The file's main type: that of the most weights among the layers' linears.
const gguf::TypeTraits* main_type(const std::vector<OutTensor>& tensors, const PartWriter& w) {
  std::map<const gguf::TypeTraits*, int64_t> weights;
  for (const OutTensor& t : tensors)
    if (t.name.starts_with("blk."))
      for (const Matrix& p : t.parts) weights[w.type_of(p)] += p.rows * p.cols;
  const gguf::TypeTraits* best = gguf::type_of_dtype(DType::F32);
  int64_t most = -1;
  for (const auto& [type, n] : weights)
    if (n > most) std::tie(best, most) = std::tie(type, n);
  return best;
}

void add_vocabulary(gguf::MetadataWriter& md, const Vocabulary& v) {
  md.add_string("tokenizer.ggml.model", v.model);
  md.add_string("tokenizer.ggml.pre", v.model == "gpt2" ? v.pre : "default");
  md.add_strings("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) md.add_f32s("tokenizer.ggml.scores", v.scores);
  md.add_i32s("tokenizer.ggml.token_type", v.types);
  if (!v.merges.empty()) md.add_strings("tokenizer.ggml.merges", v.merges);
  if (v.bos >= 0) md.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos));
  if (v.eos >= 0) md.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos));
  if (v.unk >= 0) md.add_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk));
  if (v.pad >= 0) md.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(v.pad));
  md.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  md.add_bool("tokenizer.ggml.add_eos_token", false);
  if (v.model == "llama") md.add_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

}  // namespace

gguf::MetadataWriter gguf_metadata(const LoadedModel& model, uint32_t file_type) {
  const ModelConfig& c = model.config;
  const std::string arch = gguf_architecture(c.model_type);
  gguf::MetadataWriter md;
  md.add_string("general.architecture", arch);
  md.add_string("general.type", "model");
  md.add_string("general.name", model.source.filename().replace_extension().string());
  md.add_u32("general.file_type", file_type);
  md.add_u32("general.quantization_version", 2);
  const auto key = [&](const char* k) { return arch + "." + k; };
  md.add_u32(key("block_count"), static_cast<uint32_t>(c.num_layers));
  md.add_u32(key("context_length"), static_cast<uint32_t>(std::max(c.max_position_embeddings, 0)));
  md.add_u32(key("embedding_length"), static_cast<uint32_t>(c.hidden_size));
  md.add_u32(key("feed_forward_length"), static_cast<uint32_t>(c.intermediate_size));
  md.add_u32(key("attention.head_count"), static_cast<uint32_t>(c.num_heads));
  md.add_u32(key("attention.head_count_kv"), static_cast<uint32_t>(c.num_kv_heads));
  md.add_f32(key("rope.freq_base"), c.rope_theta);
  md.add_f32(key("attention.layer_norm_rms_epsilon"), c.rms_norm_eps);
  md.add_u32(key("attention.key_length"), static_cast<uint32_t>(c.head_dim));
  md.add_u32(key("attention.value_length"), static_cast<uint32_t>(c.head_dim));
  md.add_u32(key("rope.dimension_count"), static_cast<uint32_t>(c.rotary_dim()));
  md.add_u32(key("vocab_size"), static_cast<uint32_t>(c.vocab_size));
  if (model.tokenizer) add_vocabulary(md, model.tokenizer->vocabulary());
  return md;
}

uint64_t gguf_overhead_bytes(const LoadedModel& model, const std::string& general_name) {
  const std::string own_name = model.source.filename().replace_extension().string();
  // "GGUF", version, tensor count, metadata count; then the metadata with general.name renamed.
  uint64_t bytes = 4 + 4 + 8 + 8 + gguf_metadata(model, 0).bytes().size() - own_name.size() +
                   general_name.size() + gguf::kDefaultAlignment;
  for (const OutTensor& t : output_tensors(model, gguf_architecture(model.config.model_type))) {
    const uint64_t dims = t.parts.empty() ? 1 : 2;
    // Name, dimension count, dimensions, type, offset; padding before the next tensor's data.
    bytes += 8 + t.name.size() + 4 + 8 * dims + 4 + 8 + gguf::kDefaultAlignment;
    if (t.parts.empty()) bytes += 4 * static_cast<uint64_t>(t.vector.size);
  }
  return bytes;
}

void write_gguf_model(const LoadedModel& model, const fs::path& path, std::optional<DType> dtype) {
  const ModelConfig& c = model.config;
  const std::string arch = gguf_architecture(c.model_type);
  check(c.rope_layout == RopeLayout::HalfSplit,
        "{}: only Hugging Face models (rotate-half RoPE) convert to GGUF", model.source.string());
  check(!dtype || gguf::type_of_dtype(*dtype), "GGUF output type must be f32, f16 or bf16");
  const std::map<std::string, PackedWeight> packed = packed_weights(model);
  const PartWriter parts{packed, dtype};
  const std::vector<OutTensor> tensors = output_tensors(model, arch);
  std::vector<gguf::Writer::Entry> entries;
  for (const OutTensor& t : tensors) {
    if (t.parts.empty()) {
      entries.push_back({t.name, gguf::type_of_dtype(DType::F32), {t.vector.size}});
      continue;
    }
    int64_t rows = 0;
    for (const Matrix& p : t.parts) {
      rows += p.rows;
      check(parts.type_of(p) == parts.type_of(t.parts[0]),
            "{}: the parts of '{}' have different types", model.source.string(), t.name);
    }
    entries.push_back({t.name, parts.type_of(t.parts[0]), {t.parts[0].cols, rows}});
  }
  gguf::Writer writer(path, gguf_metadata(model, file_type_of(*main_type(tensors, parts))),
                      entries);
  for (const OutTensor& t : tensors) {
    if (t.parts.empty()) {
      std::vector<float> v(static_cast<size_t>(t.vector.size));
      convert_to_f32(t.vector.dtype, t.vector.data, v.data(), v.size());
      for (float& x : v) x += t.add;
      writer.write(t.name, v.data(), v.size() * 4);
      continue;
    }
    size_t offset = 0;
    for (const Matrix& p : t.parts) {
      std::vector<std::byte> bytes = parts.bytes_of(p);
      if (t.permute)  // whole rows move: a block never spans two rows
        bytes = permute_qk_rows(bytes.data(), p.rows, bytes.size() / p.rows, t.heads, true);
      writer.write(t.name, bytes.data(), bytes.size(), offset);
      offset += bytes.size();
      model.weights.release(p);
    }
  }
  writer.commit();
}

}  // namespace qforge
