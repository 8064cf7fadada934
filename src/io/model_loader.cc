#include "qforge/io/model_loader.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf_source.h"
#include "io/tensor_source.h"
#include "qforge/core/error.h"
#include "qforge/formats/activation.h"
#include "qforge/formats/compressed_tensors.h"
#include "qforge/formats/format.h"
#include "qforge/io/compressed_tensors_config.h"
#include "qforge/io/config_json.h"
#include "qforge/io/quantization_record.h"
#include "qforge/io/safetensors.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

TensorSource safetensors_source(const fs::path& dir) {
  const TensorStore store = TensorStore::open(dir);
  TensorSource s;
  s.path = dir;
  s.find = [store](const std::string& name) { return store.find(name); };
  for (const auto& f : store.files()) {
    s.storage.push_back(f);
    auto it = f->metadata().find(kQuantizationRecordKey);
    if (it != f->metadata().end()) s.record = it->second;
  }
  s.release_pages = [files = store.files()](const std::byte* p, size_t n) {
    for (const auto& f : files)
      if (f->release(p, n)) return;
  };
  for (const TensorView* tv : store.all()) s.listing.push_back(*tv);
  return s;
}

// Looks tensors up by Hugging Face name and checks their shapes against the config.
// Quantized linears of a qforge-native directory are stored as "<name>.packed" (U8) with their
// format in the "qforge.quantization" metadata; they stay packed (Matrix::format).
class HfTensorMapper {
 public:
  explicit HfTensorMapper(const TensorSource& source) : source_(source), dir_(source.path) {
    if (!source.record.empty()) {
      try {
        record_ = parse_quantization_record(source.record);
      } catch (const Error& e) {
        fail("{}: malformed qforge.quantization metadata: {}", dir_.string(), e.what());
      }
      quantized_ = record_->tensors;
    } else {
      quantized_ = source.packed_tensors;
      read_foreign_config();
    }
  }
  std::vector<std::shared_ptr<const void>> take_buffers() { return std::move(buffers_); }
  std::optional<QuantizationRecord> take_record() { return std::move(record_); }

  // The inference options the quantization record asks for (io/quantization_record.h).
  InferenceOptions inference(const ModelConfig& c, const ModelWeights& w) const {
    if (!record_) return {};
    try {
      return inference_from_record(*record_, c, w.layers);
    } catch (const Error& e) {
      fail("{}: {}", dir_.string(), e.what());
    }
  }

  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const {
    const TensorView* tv = source_.find(name);
    check(tv != nullptr, "{}: missing tensor '{}'", dir_.string(), name);
    check(tv->shape == shape, "{}: tensor '{}' has shape {}, expected {}", dir_.string(), name,
          tv->shape_string(), shape_to_string(shape));
    check(is_float_weight_dtype(tv->dtype),
          "{}: tensor '{}' has dtype {}; weights must be F32, F16 or BF16", dir_.string(), name,
          dtype_name(tv->dtype));
    return *tv;
  }
  // A weight matrix: plain, or quantized and kept packed (never dequantized at load).
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const TensorView* tv = source_.find(name);
    // Quantized weights: "<name>.packed", or compressed-tensors' tensors, some of which are named
    // "<module>.weight" too (F8_E4M3 for FP8, I8 for int-quantized).
    if ((tv == nullptr || !is_float_weight_dtype(tv->dtype)) && is_quantized(name))
      return packed(name, rows, cols);
    return matrix_from(get(name, {rows, cols}));
  }
  Vector vector(const std::string& name, int64_t size) const {
    return vector_from(get(name, {size}));
  }
  Vector optional_vector(bool present, const std::string& name, int64_t size) const {
    return present ? vector(name, size) : Vector{};
  }

 private:
  // A checkpoint quantized by another tool: config.json's quantization_config, read into the same
  // record (compressed-tensors; anything else is refused rather than misread as dense weights).
  void read_foreign_config() {
    std::ifstream in(dir_ / "config.json");
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json qc;
    try {
      qc = nlohmann::json::parse(text.str()).value("quantization_config", nlohmann::json());
    } catch (const nlohmann::json::exception&) {
      return;  // load_config_json reports a malformed config.json
    }
    if (!qc.is_object()) return;
    const std::string method = qc.value("quant_method", std::string());
    if (method == "qforge") return;  // qforge's own record lives in the safetensors metadata
    check(method == "compressed-tensors",
          "{}: quantization_config.quant_method '{}' is not supported (qforge reads "
          "compressed-tensors and its own checkpoints)",
          dir_.string(), method);
    std::map<std::string, DType> dtypes;
    for (const TensorView& tv : source_.listing) dtypes[tv.name] = tv.dtype;
    try {
      record_ = record_from_compressed_tensors_config(qc.dump(), dtypes);
    } catch (const Error& e) {
      fail("{}: {}", dir_.string(), e.what());
    }
    quantized_ = record_->tensors;
  }

  bool is_quantized(const std::string& name) const { return quantized_.contains(name); }

  // A quantized linear in its format's bytes: qforge's layout ("<name>.packed") is used where it
  // is mapped; compressed-tensors' ("<module>.weight_packed", ...) is repacked once into qforge's
  // layout (same codes and scales, arranged differently) and its mapped pages are dropped.
  Matrix packed(const std::string& name, int64_t rows, int64_t cols) const {
    const TensorRecord& entry = quantized_.at(name);
    const std::string& format = entry.format;
    const auto& f = formats::find_format(format);
    try {
      f.check_shape(name, rows, cols);
    } catch (const Error& e) {
      fail("{}: {}", dir_.string(), e.what());
    }
    if (entry.layout != "compressed-tensors") {
      const TensorView* tv = source_.find(name + ".packed");
      check(tv != nullptr, "{}: missing tensor '{}.packed'", dir_.string(), name);
      check(tv->nbytes() == f.encoded_bytes(rows, cols),
            "{}: tensor '{}' holds {} bytes but {} [{}, {}] needs {}", dir_.string(), name,
            tv->nbytes(), format, rows, cols, f.encoded_bytes(rows, cols));
      return packed_matrix(name, f, rows, cols, tv->data);
    }
    const std::string module = name.ends_with(".weight") ? name.substr(0, name.size() - 7) : name;
    std::vector<const TensorView*> sources;
    auto buf = std::make_shared<std::vector<std::byte>>(formats::from_compressed_tensors(
        f, rows, cols,
        [&](const std::string& suffix) {
          const TensorView* t = source_.find(module + "." + suffix);
          check(t != nullptr, "{}: missing tensor '{}.{}' of the compressed-tensors weight '{}'",
                dir_.string(), module, suffix, name);
          sources.push_back(t);
          return std::span<const std::byte>(t->data, t->nbytes());
        },
        entry.ct_format == "int-quantized"));
    if (source_.release_pages)
      for (const TensorView* t : sources) source_.release_pages(t->data, t->nbytes());
    buffers_.push_back(buf);
    return packed_matrix(name, f, rows, cols, buf->data());
  }

  const TensorSource& source_;
  const fs::path& dir_;
  std::optional<QuantizationRecord> record_;       // qforge's own, or read from compressed-tensors
  std::map<std::string, TensorRecord> quantized_;  // the tensors stored quantized, by name
  mutable std::vector<std::shared_ptr<const void>> buffers_;
};

ModelWeights map_hf_weights(const ModelConfig& c, const TensorSource& source,
                            InferenceOptions* inference,
                            std::optional<QuantizationRecord>* record) {
  HfTensorMapper m(source);
  const int64_t d = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.intermediate_size,
                hd = c.head_dim, v = c.vocab_size;
  ModelWeights w;
  w.embedding = m.matrix("model.embed_tokens.weight", v, d);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    LayerWeights lw;
    lw.attn_norm = m.vector(p + "input_layernorm.weight", d);
    lw.ffn_norm = m.vector(p + "post_attention_layernorm.weight", d);
    if (c.model_type == "phi3") {
      // Fused projections: rows [q | k | v] and [gate | up], exposed as row slices.
      const Matrix qkv = m.matrix(p + "self_attn.qkv_proj.weight", qd + 2 * kvd, d);
      lw.wq = qkv.slice_rows(0, qd, qkv.name + "[q]");
      lw.wk = qkv.slice_rows(qd, kvd, qkv.name + "[k]");
      lw.wv = qkv.slice_rows(qd + kvd, kvd, qkv.name + "[v]");
      const Matrix gate_up = m.matrix(p + "mlp.gate_up_proj.weight", 2 * ff, d);
      lw.w_gate = gate_up.slice_rows(0, ff, gate_up.name + "[gate]");
      lw.w_up = gate_up.slice_rows(ff, ff, gate_up.name + "[up]");
    } else {
      lw.wq = m.matrix(p + "self_attn.q_proj.weight", qd, d);
      lw.wk = m.matrix(p + "self_attn.k_proj.weight", kvd, d);
      lw.wv = m.matrix(p + "self_attn.v_proj.weight", kvd, d);
      lw.w_gate = m.matrix(p + "mlp.gate_proj.weight", ff, d);
      lw.w_up = m.matrix(p + "mlp.up_proj.weight", ff, d);
    }
    lw.wo = m.matrix(p + "self_attn.o_proj.weight", d, qd);
    lw.w_down = m.matrix(p + "mlp.down_proj.weight", d, ff);
    lw.bq = m.optional_vector(c.qkv_bias, p + "self_attn.q_proj.bias", qd);
    lw.bk = m.optional_vector(c.qkv_bias, p + "self_attn.k_proj.bias", kvd);
    lw.bv = m.optional_vector(c.qkv_bias, p + "self_attn.v_proj.bias", kvd);
    lw.bo = m.optional_vector(c.o_bias, p + "self_attn.o_proj.bias", d);
    lw.b_gate = m.optional_vector(c.mlp_bias, p + "mlp.gate_proj.bias", ff);
    lw.b_up = m.optional_vector(c.mlp_bias, p + "mlp.up_proj.bias", ff);
    lw.b_down = m.optional_vector(c.mlp_bias, p + "mlp.down_proj.bias", d);
    lw.q_norm = m.optional_vector(c.qk_norm, p + "self_attn.q_norm.weight", hd);
    lw.k_norm = m.optional_vector(c.qk_norm, p + "self_attn.k_norm.weight", hd);
    w.layers.push_back(std::move(lw));
  }
  w.final_norm = m.vector("model.norm.weight", d);
  // Tied embeddings reuse the embedding matrix (Hugging Face ignores a stray lm_head then).
  w.lm_head = c.tie_word_embeddings ? w.embedding : m.matrix("lm_head.weight", v, d);
  w.storage = source.storage;
  w.release_pages = source.release_pages;
  for (auto& b : m.take_buffers()) w.storage.push_back(std::move(b));
  *inference = m.inference(c, w);
  *record = m.take_record();
  return w;
}

std::unique_ptr<Tokenizer> find_tokenizer(const fs::path& where, const LoadOptions& o) {
  if (o.tokenizer) return load_tokenizer(*o.tokenizer);
  try {
    return load_tokenizer(where);
  } catch (const Error&) {
    if (o.require_tokenizer) throw;
    return nullptr;
  }
}

LoadedModel load_hf_model(const fs::path& dir, const LoadOptions& o) {
  LoadedModel m;
  m.source = dir;
  check(o.config || fs::exists(dir / "config.json"),
        "{}: no config.json (not a Hugging Face model directory)", dir.string());
  m.config = o.config ? *o.config : load_config_json(dir / "config.json");
  const TensorSource source = safetensors_source(dir);
  m.weights = map_hf_weights(m.config, source, &m.inference, &m.quantization_record);
  m.tensors = source.listing;
  m.tokenizer = find_tokenizer(dir, o);
  return m;
}

LoadedModel load_gguf(const fs::path& path, const LoadOptions& o) {
  LoadedModel m;
  m.source = path;
  GgufModelSource gguf = open_gguf_model(path);
  m.config = gguf.config;
  m.weights = map_hf_weights(m.config, gguf.tensors, &m.inference, &m.quantization_record);
  m.tensors = gguf.tensors.listing;
  m.tokenizer = o.tokenizer ? load_tokenizer(*o.tokenizer) : std::move(gguf.tokenizer);
  check(m.tokenizer != nullptr || !o.require_tokenizer, "{}: no tokenizer in the file",
        path.string());
  return m;
}

}  // namespace

LoadedModel load_model(const fs::path& path, const LoadOptions& options) {
  check(fs::exists(path), "{}: no such file or directory", path.string());
  if (fs::is_directory(path)) return load_hf_model(path, options);
  if (path.extension() == ".gguf") return load_gguf(path, options);
  check(path.extension() == ".bin",
        "{}: not a model directory, a .gguf file or a llama2.c .bin checkpoint", path.string());
  LoadedModel m = load_llama2c_checkpoint(path);
  if (options.tokenizer) {
    m.tokenizer = load_tokenizer(*options.tokenizer);
  } else {
    for (const char* name : {"tokenizer.bin", "tok512.bin"})
      if (fs::exists(path.parent_path() / name)) {
        m.tokenizer = load_tokenizer(path.parent_path() / name);
        break;
      }
    check(m.tokenizer != nullptr || !options.require_tokenizer,
          "{}: no tokenizer.bin or tok512.bin beside the checkpoint (use --tokenizer)",
          path.string());
  }
  if (m.tokenizer)
    check(m.tokenizer->vocab_size() == m.config.vocab_size,
          "{}: tokenizer has {} tokens but the model's vocabulary is {}", path.string(),
          m.tokenizer->vocab_size(), m.config.vocab_size);
  return m;
}

}  // namespace qforge
