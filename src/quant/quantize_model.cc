#include "qforge/quant/quantize_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/formats/compressed_tensors.h"
#include "qforge/formats/format.h"
#include "qforge/io/gguf.h"
#include "qforge/io/gguf_model.h"
#include "qforge/io/model_loader.h"
#include "qforge/io/quantization_record.h"
#include "qforge/io/safetensors.h"
#include "qforge/quant/format_quantizer.h"
#include "qforge/quant/plan.h"
#include "quant/quantized_output.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

const FormatColumnQuantizer& format_quantizer(const ColumnQuantizer& q) {
  if (const auto* clipped = dynamic_cast<const ClippedQuantizer*>(&q))
    return format_quantizer(clipped->inner());
  return dynamic_cast<const FormatColumnQuantizer&>(q);
}

// Removes a directory tree unless released (no half-written output survives an error).
struct TempDir {
  fs::path path;
  bool keep = false;
  ~TempDir() {
    if (!keep && !path.empty()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

std::vector<std::regex> compile_regexes(const std::vector<std::string>& res, const char* option) {
  std::vector<std::regex> out;
  for (const auto& re : res) {
    try {
      out.emplace_back(re);
    } catch (const std::regex_error& e) {
      fail("{}: invalid regex '{}': {}", option, re, e.what());
    }
  }
  return out;
}

std::string method_name(const QuantizeOptions& o) {
  const std::string base = o.method == QuantMethod::GPTQ ? "gptq" : "rtn";
  if (!o.awq) return base;
  return o.method == QuantMethod::GPTQ ? "awq+gptq" : "awq";
}

// Every named, present tensor of a layer (linears, norms, biases) with its current view.
template <typename F>
void for_each_layer_tensor(const LayerWeights& lw, F&& fn) {
  for (const Matrix* m : {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down})
    if (m->present()) fn(m->name, m->dtype, m->data, static_cast<size_t>(m->rows * m->cols));
  for (const Vector* v : {&lw.attn_norm, &lw.ffn_norm, &lw.q_norm, &lw.k_norm, &lw.bq, &lw.bk,
                          &lw.bv, &lw.bo, &lw.b_gate, &lw.b_up, &lw.b_down})
    if (v->present()) fn(v->name, v->dtype, v->data, static_cast<size_t>(v->size));
}

// Writes `count` values of a view as f32 (converting in bounded chunks).
void write_as_f32(SafetensorsWriter& writer, const std::string& name, DType dtype,
                  const std::byte* data, size_t count) {
  if (dtype == DType::F32) {
    writer.write(name, data, count * sizeof(float));
    return;
  }
  constexpr size_t kChunk = 1 << 16;
  std::vector<float> buf(std::min(count, kChunk));
  for (size_t i = 0; i < count; i += kChunk) {
    const size_t n = std::min(kChunk, count - i);
    convert_to_f32(dtype, data + i * dtype_size(dtype), buf.data(), n);
    writer.write(name, buf.data(), n * sizeof(float), i * sizeof(float));
  }
}

std::optional<KvCacheRecord> kv_record(const KvCacheFormat& kv) {
  if (!kv.quantized()) return std::nullopt;
  return KvCacheRecord{formats::kv_type_name(kv.type), kv.keys_per_channel ? "channel" : "token",
                       kv.keys_pre_rope, kv.group};
}

// ---------------------------------------------------------------------------------------------
// Phase 1: refusals that need no model (everything that can be refused is refused before work).

void refuse_bad_options(const QuantizeOptions& o, const std::string& method) {
  check(o.plan || !o.format.empty(), "quantize needs --format FMT or a plan");
  check(!o.plan || (o.tensor_formats.empty() && o.keep.empty() && o.fallback.empty()),
        "--tensor-format, --keep and --fallback do not apply with a plan (it names each tensor's "
        "format; tensors it leaves out are kept)");
  if (needs_calibration(o))
    check(!o.calib.empty(), "{} needs calibration text: pass --calib FILE",
          o.smooth_alpha && !o.awq && o.method == QuantMethod::RTN ? "SmoothQuant" : method);
  check(o.calib_tokens >= o.seq_len && o.seq_len >= 2,
        "--calib-tokens ({}) must be at least the sequence length ({})", o.calib_tokens, o.seq_len);
  if (o.smooth_alpha)
    check(*o.smooth_alpha >= 0 && *o.smooth_alpha <= 1, "--smooth: alpha must be in [0, 1], got {}",
          *o.smooth_alpha);
  if (fs::exists(o.output) && !o.overwrite)
    check(fs::is_directory(o.output) && fs::is_empty(o.output),
          "{}: output exists (use --force to replace it)", o.output.string());
}

bool is_gguf_file(const fs::path& p) {
  return !fs::is_directory(p) && p.extension() == ".gguf";
}

// How a source weight is named to the user: its GGUF name (and the Hugging Face one) in a .gguf.
std::string source_tensor_name(const LoadedModel& m, const std::string& name) {
  if (!is_gguf_file(m.source)) return name;
  return fmt::format("{} ({})", gguf_tensor_name(name, gguf_architecture(m.config.model_type)),
                     name);
}

// The distinct weight matrices of a model that are stored block-quantized (a tied head is its
// embedding, listed once).
std::vector<Matrix*> packed_weights(ModelWeights& w) {
  std::vector<Matrix*> out;
  for (Matrix* x : {&w.embedding, &w.lm_head})
    if (x->packed() && (x == &w.embedding || x->data != w.embedding.data)) out.push_back(x);
  for (LayerWeights& lw : w.layers)
    for (Matrix* x : {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down})
      if (x->packed()) out.push_back(x);
  return out;
}

// Replaces the source's listing of one packed weight ("<name>.packed", or compressed-tensors'
// "<module>.weight_packed", "_scale", ...) by the f32 tensor it was decoded into.
void relist_as_f32(std::vector<TensorView>& listing, const Matrix& plain) {
  const std::string& name = plain.name;
  auto stored_as = [&](const TensorView& t) {
    return t.name == name || t.name.starts_with(name + ".") || t.name.starts_with(name + "_");
  };
  auto first = std::find_if(listing.begin(), listing.end(), stored_as);
  const TensorView view{name, DType::F32, {plain.rows, plain.cols}, plain.data};
  if (first == listing.end()) {
    listing.push_back(view);
    return;
  }
  *first = view;
  listing.erase(std::remove_if(std::next(first), listing.end(), stored_as), listing.end());
}

// A source whose weights are already block-quantized (a q8_0 / q4_k ... GGUF, a quantized
// directory) is refused, naming the first such tensor and its type, unless allow_requantize (as
// llama-quantize's --allow-requantize): then every packed weight is decoded to f32 once (4 bytes
// per weight in memory) and quantized as if it had been stored so. Returns "tensor (type)" of
// each requantized weight.
std::vector<std::string> dequantize_source(const QuantizeOptions& o, LoadedModel& m) {
  std::vector<std::string> requantized;
  for (Matrix* x : packed_weights(m.weights)) {
    const std::string type = x->format->name();
    check(o.allow_requantize,
          "{}: tensor {} is already quantized ({}); quantizing it again loses quality: pass "
          "--allow-requantize to dequantize and requantize it anyway",
          o.model.string(), source_tensor_name(m, x->name), type);
    requantized.push_back(fmt::format("{} ({})", source_tensor_name(m, x->name), type));
    const bool tied_head = x == &m.weights.embedding && m.weights.lm_head.data == x->data;
    auto values = std::make_shared<const std::vector<float>>(x->to_f32());
    Matrix plain;
    plain.name = x->name;
    plain.rows = x->rows;
    plain.cols = x->cols;
    plain.data = reinterpret_cast<const std::byte*>(values->data());
    m.weights.storage.push_back(values);
    *x = plain;
    if (tied_head) m.weights.lm_head = plain;
    relist_as_f32(m.tensors, plain);
  }
  return requantized;
}

LoadedModel load_quantizable_model(const QuantizeOptions& o,
                                   std::vector<std::string>& requantized) {
  // A GGUF holds no config.json or tokenizer files for a Hugging Face directory: its quantized
  // form is written as a GGUF again (quantize_model_to_gguf, which sets gguf_types_only).
  check(fs::is_directory(o.model) || (is_gguf_file(o.model) && o.gguf_types_only), "{}",
        is_gguf_file(o.model)
            ? fmt::format("{}: a .gguf model quantizes into a .gguf (-o NAME.gguf): a Hugging Face "
                          "directory would need config.json and tokenizer files the GGUF does not "
                          "carry",
                          o.model.string())
            : fmt::format("{}: quantize a Hugging Face model directory or a .gguf file (from a "
                          ".bin: not supported)",
                          o.model.string()));
  LoadedModel m = load_model(o.model);
  check(m.config.model_type != "phi3",
        "{}: quantizing fused qkv/gate_up projections (Phi-3) is not supported yet",
        o.model.string());
  check(m.config.model_type != "llama2c", "{}: quantize a Hugging Face model directory",
        o.model.string());
  o.kv.validate(m.config);
  check(m.config.seq_len_ok(o.seq_len), "--seq-len {} exceeds the model's {} positions", o.seq_len,
        m.config.max_position_embeddings);
  requantized = dequantize_source(o, m);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Phase 2: the per-tensor format plan, from --format / --tensor-format / --keep / --fallback.

QuantPlan plan_from_rules(const QuantizeOptions& o, const std::vector<QuantizableTensor>& tensors,
                          std::vector<Fallback>& fallbacks) {
  const formats::Format& default_format = formats::find_format(o.format);
  const formats::Format* fallback = nullptr;  // null with fallback "keep": leave unquantized
  if (!o.fallback.empty() && o.fallback != "keep") fallback = &formats::find_format(o.fallback);
  std::vector<std::pair<std::regex, const formats::Format*>> overrides;
  for (const auto& [re, f] : o.tensor_formats) {
    const formats::Format* fmt = &formats::find_format(f);
    overrides.emplace_back(compile_regexes({re}, "--tensor-format")[0], fmt);
  }
  const std::vector<std::regex> keep = compile_regexes(o.keep, "--keep");
  const std::string head_name = "lm_head.weight";
  bool has_head = false;
  for (const auto& t : tensors) has_head = has_head || t.kind == QuantizableTensor::Kind::Head;

  QuantPlan plan;
  for (const QuantizableTensor& t : tensors) {
    const formats::Format* f = nullptr;
    if (t.kind == QuantizableTensor::Kind::Linear) {
      bool kept = false;
      for (const auto& re : keep) kept = kept || std::regex_search(t.name, re);
      f = &default_format;
      for (const auto& [re, fo] : overrides)
        if (std::regex_search(t.name, re)) f = fo;
      if (!kept && t.cols % f->info().row_multiple != 0 && !o.fallback.empty()) {
        fallbacks.push_back({t.name, f->name(), fallback ? fallback->name() : "keep"});
        if (fallback == nullptr) kept = true;
        f = fallback;
      }
      if (kept) continue;
    } else {
      // The embedding and the head only when a --tensor-format names them; a tied table is both.
      const bool tied_table = t.kind == QuantizableTensor::Kind::Embedding && !has_head;
      for (const auto& [re, fo] : overrides)
        if (std::regex_search(t.name, re) || (tied_table && std::regex_search(head_name, re)))
          f = fo;
      if (f == nullptr) continue;
    }
    f->check_shape(t.name, t.rows, t.cols);  // names the tensor and the rule
    plan.tensors[t.name] = {f->name(), t.rows, t.cols, f->encoded_bytes(t.rows, t.cols)};
  }
  return plan;
}

// A plan read from a file: made for this model, every format able to take its tensor.
QuantPlan checked_plan(const QuantizeOptions& o, const std::vector<QuantizableTensor>& tensors) {
  const std::string source = o.plan_source.empty() ? "plan" : o.plan_source;
  check_plan_fits(*o.plan, tensors, source);
  for (const auto& [name, p] : o.plan->tensors)
    formats::find_format(p.format).check_shape(name, p.rows, p.cols);
  return *o.plan;
}

// Where each tensor of the plan goes in the native output.
struct OutputLayout {
  std::map<std::string, output::TensorPlan> linears;  // quantized decoder linears
  std::map<std::string, output::TensorPlan> tables;   // quantized embedding / head
  std::vector<std::string> unquantized_linears;
  std::set<std::string> rewritten;  // unquantized layer tensors a transform may change (as F32)
  bool tied = false;                // the head is the embedding
  bool untie = false;               // ... but is written as a tensor of its own (rotation)
  std::string gptq_table;           // the table quantized with GPTQ as the head (after the layers)
  std::string embed_name, norm_name, head_name = "lm_head.weight";
};

// GGUF output: every quantized weight in a GGUF block type, nothing only qforge can run.
void check_gguf_expressible(const QuantizeOptions& o, const QuantPlan& plan) {
  for (const auto& [name, t] : plan.tensors)
    check(gguf::type_of_format(t.format) != nullptr,
          "{}: format {} has no GGUF type; a GGUF output takes q4_0 q4_1 q5_0 q5_1 q8_0 q2_k "
          "q3_k q4_k q5_k q6_k iq4_nl iq4_xs",
          name, t.format);
  check(o.activations == formats::ActivationFormat::None && !o.kv.quantized() &&
            !(o.rotate && o.rotate->online_down),
        "a GGUF output cannot record --act, --kv or --rotate-online (llama.cpp would not apply "
        "them)");
}

OutputLayout layout_of(const QuantPlan& plan, const std::vector<QuantizableTensor>& tensors,
                       const ModelWeights& w, bool act_quantized, bool untie,
                       bool rewrites_layers) {
  OutputLayout out;
  out.tied = w.lm_head.data == w.embedding.data;
  out.untie = untie;
  out.embed_name = w.embedding.name;
  out.norm_name = w.final_norm.name;
  for (const QuantizableTensor& t : tensors) {
    auto it = plan.tensors.find(t.name);
    const bool linear = t.kind == QuantizableTensor::Kind::Linear;
    if (it == plan.tensors.end()) {
      if (linear) out.unquantized_linears.push_back(t.name);
      continue;
    }
    const formats::Format& f = formats::find_format(it->second.format);
    if (linear)
      out.linears[t.name] = {
          &f, formats::compressed_tensors_scheme(f, t.rows, t.cols, act_quantized), t.rows, t.cols};
    else
      out.tables[t.name] = {&f, std::nullopt, t.rows, t.cols};
  }
  if (rewrites_layers)
    for (const LayerWeights& lw : w.layers)
      for_each_layer_tensor(lw, [&](const std::string& name, DType, const std::byte*, size_t) {
        if (!out.linears.contains(name)) out.rewritten.insert(name);
      });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Phase 3: the record, everything needed to reproduce the output (and to run it: activations,
// KV cache). The per-tensor objectives are added as the layers are quantized.

QuantizationRecord quantization_record(const QuantizeOptions& o, const QuantPlan& plan,
                                       const OutputLayout& layout, const QuantizeReport& report) {
  const bool act_quantized = o.activations != formats::ActivationFormat::None;
  QuantizationRecord r;
  for (const auto& [name, tp] : layout.linears) {
    TensorRecord& t = r.tensors[name];
    t = TensorRecord::stored_as(tp.format->name(), tp.rows, tp.cols);
    if (tp.scheme) {
      t.layout = "compressed-tensors";
      t.ct_format = tp.scheme->format;
    }
    if (act_quantized) t.input_activations = formats::activation_format_name(o.activations);
  }
  for (const auto& [name, tp] : layout.tables)
    r.tensors[name] = TensorRecord::stored_as(tp.format->name(), tp.rows, tp.cols);
  for (const auto& [name, p] : plan.tensors)
    if (p.predicted_kld > 0) r.tensors[name].predicted_kld = p.predicted_kld;
  for (const auto& fb : report.fallbacks)
    r.fallbacks.push_back({fb.tensor, fb.format, fb.fallback});
  r.format = o.plan ? "mixed" : o.format;
  r.method = report.method;
  r.tool_version = QFORGE_VERSION;
  r.calibration = CalibrationRecord{o.calib.string(), report.calib_tokens,
                                    fmt::format("{:016x}", report.calib_hash), o.seq_len};
  r.gptq = GptqRecord{o.gptq.damp, o.gptq.block_size, o.gptq.act_order, o.gptq.refit_rounds,
                      o.gptq.sub_block_scales};
  r.smooth_alpha = o.smooth_alpha;
  if (o.rotate) r.rotation = RotationRecord{"hadamard", o.rotate->seed, o.rotate->online_down};
  if (act_quantized)
    r.activations = ActivationsRecord::per_token(formats::activation_format_name(o.activations));
  r.kv_cache = kv_record(o.kv);
  if (o.plan) {
    r.plan = plan_to_json(plan);
    r.plan.erase("tensors");  // each tensor's share is in "tensors"
    r.plan["file"] = o.plan_source;
  }
  if (o.awq)
    r.awq = {{"grid", o.awq_options.grid},
             {"clip", o.awq_clip},
             {"clip_grid", o.awq_options.clip_grid},
             {"max_shrink", o.awq_options.max_shrink}};
  return r;
}

// Whether vLLM can serve the output as compressed-tensors: every quantized weight has a scheme.
bool all_compressed_tensors(const OutputLayout& layout, const ModelRotation* rotation) {
  if (layout.linears.empty() || !layout.tables.empty()) return false;
  if (rotation && rotation->options().online_down) return false;
  for (const auto& [name, tp] : layout.linears)
    if (!tp.scheme) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Phase 4: the output writer. The native output is one safetensors file whose tensor list (and
// every size) the plan fixes before any work, so it is written as the work goes.

std::vector<SafetensorsWriter::Entry> native_entries(const LoadedModel& m,
                                                     const OutputLayout& layout, bool rotated,
                                                     bool act_quantized) {
  std::vector<SafetensorsWriter::Entry> entries;
  auto add_table = [&](const std::string& name, const std::vector<int64_t>& shape, DType dtype) {
    if (auto it = layout.tables.find(name); it != layout.tables.end())
      entries.push_back(
          {name + ".packed",
           DType::U8,
           {static_cast<int64_t>(it->second.format->encoded_bytes(shape[0], shape[1]))}});
    else
      entries.push_back({name, dtype, shape});
  };
  const std::string& head = layout.head_name;
  for (const TensorView& t : m.tensors) {
    auto it = layout.linears.find(t.name);
    if (it != layout.linears.end()) {
      const output::TensorPlan& tp = it->second;
      if (tp.scheme) {
        for (const auto& ct :
             formats::compressed_tensors_layout(*tp.format, tp.rows, tp.cols, act_quantized))
          entries.push_back({output::module_of(t.name) + "." + ct.suffix, ct.dtype, ct.shape});
      } else {
        const auto n = static_cast<int64_t>(tp.format->encoded_bytes(tp.rows, tp.cols));
        entries.push_back({t.name + ".packed", DType::U8, {n}});
      }
    } else if (layout.rewritten.contains(t.name)) {
      entries.push_back({t.name, DType::F32, t.shape});
    } else if (t.name == layout.embed_name || (t.name == head && !layout.tied)) {
      add_table(t.name, t.shape, rotated ? DType::F32 : t.dtype);
    } else if (t.name == layout.norm_name && rotated) {
      entries.push_back({t.name, DType::F32, t.shape});
    } else if (!(t.name == head && layout.tied && layout.untie)) {
      entries.push_back({t.name, t.dtype, t.shape});
    }
  }
  if (layout.untie) add_table(head, {m.weights.lm_head.rows, m.weights.lm_head.cols}, DType::F32);
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Phase 5: tensors that need no layer: copied, or rotated / quantized now (embedding and head).

// Re-encodes the embedding rows of tokens seen in calibration with the format's
// importance-weighted search (GGUF types: llama.cpp's imatrix encoders, kept per block only where
// they beat the plain encoder). An embedding row's error reaches exactly the positions holding its
// token, so a token's frequency weighs its whole row; GGUF blocks never span rows, so that weight
// cannot change a row's best encoding, only whether the costlier search is worth running. Tokens
// the calibration text never holds keep the plain (RTN) encoding, bit for bit.
void encode_seen_rows(const formats::Format& f, const float* w, int64_t rows, int64_t cols,
                      const std::vector<uint8_t>& seen, std::vector<std::byte>& bytes) {
  if (!reencodes_seen_rows(f)) return;
  const std::vector<float> importance(static_cast<size_t>(cols), 1.0f);
  const size_t row_bytes = f.row_bytes(cols);
  for (int64_t r = 0; r < rows; ++r) {
    if (!seen[static_cast<size_t>(r)]) continue;
    const std::vector<std::byte> row = f.encode(w + r * cols, 1, cols, importance.data());
    std::copy(row.begin(), row.end(), bytes.begin() + static_cast<ptrdiff_t>(r * row_bytes));
  }
}

}  // namespace

std::vector<uint8_t> calibration_tokens_seen(const std::vector<std::vector<int32_t>>& sequences,
                                             int64_t vocab) {
  std::vector<uint8_t> seen(static_cast<size_t>(vocab), 0);
  for (const auto& s : sequences)
    for (int32_t t : s)
      if (t >= 0 && t < vocab) seen[static_cast<size_t>(t)] = 1;
  return seen;
}

bool reencodes_seen_rows(const formats::Format& f) {
  return f.info().family == "gguf" && f.header_bytes() == 0;
}

std::vector<std::byte> encode_embedding_table(const formats::Format& f, const float* w,
                                              int64_t rows, int64_t cols,
                                              const std::vector<uint8_t>& seen) {
  std::vector<std::byte> bytes = f.encode(w, rows, cols);
  if (static_cast<int64_t>(seen.size()) == rows) encode_seen_rows(f, w, rows, cols, seen, bytes);
  return bytes;
}

namespace {

// Writes the embedding or the head: quantized (RTN, the format's own encoder; the embedding rows
// of seen tokens with the weighted encoder), rotated in chunks of rows, or copied.
void write_table(SafetensorsWriter& writer, const LoadedModel& m, const OutputLayout& layout,
                 const ModelRotation* rot, const std::string& name, const Matrix& src, bool is_head,
                 const std::vector<uint8_t>& seen) {
  constexpr int64_t kRows = 1024;
  const int64_t rows = src.rows, cols = src.cols;
  auto rows_f32 = [&](int64_t r0, int64_t r1, float* out) {
    if (rot && is_head)
      rot->rotated_head_rows(src, m.weights.final_norm, r0, r1, out);
    else {
      src.rows_to_f32(r0, r1 - r0, out);
      if (rot) rot->rotate_residual(out, r1 - r0);
    }
  };
  if (auto it = layout.tables.find(name); it != layout.tables.end()) {
    std::vector<float> all(static_cast<size_t>(rows * cols));
    rows_f32(0, rows, all.data());
    const std::vector<std::byte> bytes =
        is_head ? it->second.format->encode(all.data(), rows, cols)
                : encode_embedding_table(*it->second.format, all.data(), rows, cols, seen);
    writer.write(name + ".packed", bytes.data(), bytes.size());
  } else if (rot) {
    std::vector<float> chunk(static_cast<size_t>(std::min(rows, kRows) * cols));
    for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
      const int64_t r1 = std::min(rows, r0 + kRows);
      rows_f32(r0, r1, chunk.data());
      writer.write(name, chunk.data(), static_cast<size_t>((r1 - r0) * cols) * sizeof(float),
                   static_cast<size_t>(r0 * cols) * sizeof(float));
    }
  } else {
    writer.write(name, src.data, src.nbytes());
  }
  m.weights.release(src);
}

void write_unlayered_tensors(SafetensorsWriter& writer, const LoadedModel& m,
                             const OutputLayout& layout, const ModelRotation* rot,
                             const std::vector<uint8_t>& seen) {
  const std::string& head = layout.head_name;
  for (const TensorView& t : m.tensors) {
    if (layout.linears.contains(t.name) || layout.rewritten.contains(t.name)) continue;
    if (t.name == layout.gptq_table) continue;  // written after the layers
    if (t.name == layout.embed_name) {
      write_table(writer, m, layout, rot, t.name, m.weights.embedding, false, seen);
    } else if (t.name == head && !layout.tied) {
      write_table(writer, m, layout, rot, head, m.weights.lm_head, true, seen);
    } else if (t.name == layout.norm_name && rot) {
      std::vector<float> ones(static_cast<size_t>(t.numel()), rot->unit_norm_value());
      writer.write(t.name, ones.data(), ones.size() * sizeof(float));
    } else if (!(t.name == head && layout.untie)) {
      writer.write(t.name, t.data, t.nbytes());
      if (m.weights.release_pages) m.weights.release_pages(t.data, t.nbytes());
    }
  }
  if (layout.untie) write_table(writer, m, layout, rot, head, m.weights.embedding, true, seen);
}

// ---------------------------------------------------------------------------------------------
// Phase 6: the layers, each linear written as soon as it is quantized.

// The layer rewrites the options ask for, in the order they apply: rotation, SmoothQuant, AWQ.
struct Transforms {
  std::unique_ptr<SmoothQuantTransform> smooth;
  std::unique_ptr<AwqTransform> awq;
  std::vector<LayerTransform*> in_order;
};

Transforms layer_transforms(const QuantizeOptions& o, const ModelConfig& config,
                            RotationTransform* rotation, const OutputLayout& layout) {
  Transforms t;
  if (rotation) t.in_order.push_back(rotation);
  const bool online_down = o.rotate && o.rotate->online_down;
  auto quantized = [&layout](const Matrix& w) { return layout.linears.contains(w.name); };
  if (o.smooth_alpha) {
    t.smooth =
        std::make_unique<SmoothQuantTransform>(config, *o.smooth_alpha, quantized, online_down);
    t.in_order.push_back(t.smooth.get());
  }
  if (o.awq) {
    t.awq = std::make_unique<AwqTransform>(
        config, o.awq_options, o.awq_clip,
        [&layout](const Matrix& w) -> QuantizerMaker {
          auto it = layout.linears.find(w.name);
          return it == layout.linears.end() ? QuantizerMaker{}
                                            : quantizer_maker(*it->second.format);
        },
        o.method == QuantMethod::GPTQ ? std::optional<GptqOptions>(o.gptq) : std::nullopt,
        online_down);
    t.in_order.push_back(t.awq.get());
  }
  return t;
}

LayerwiseOptions layerwise_options(const QuantizeOptions& o, const LoadedModel& m,
                                   const OutputLayout& layout,
                                   const std::vector<LayerTransform*>& transforms) {
  LayerwiseOptions lo;
  lo.method = o.method;
  lo.gptq = o.gptq;
  lo.selected = [&layout](const Matrix& w) { return layout.linears.contains(w.name); };
  lo.transforms = transforms;
  lo.inference.activations = o.activations;
  lo.inference.kv = o.kv;
  lo.inference.online_hadamard_down = o.rotate && o.rotate->online_down;
  lo.inference.activation_groups.assign(m.config.num_layers, {});
  for (int l = 0; l < m.config.num_layers; ++l)
    for (int g = 0; g < kLinearGroups; ++g)
      for (const Matrix* w : linears_of_group(m.weights.layers[l], static_cast<LinearGroup>(g)))
        lo.inference.activation_groups[l][g] =
            lo.inference.activation_groups[l][g] || layout.linears.contains(w->name);
  return lo;
}

// Writes one quantized linear: compressed-tensors' tensors or qforge's packed bytes.
void write_linear(SafetensorsWriter& writer, const output::TensorPlan& tp, const Matrix& w,
                  const std::vector<std::byte>& bytes, bool act_quantized) {
  if (tp.scheme) {
    for (const auto& ct :
         formats::to_compressed_tensors(*tp.format, bytes.data(), w.rows, w.cols, act_quantized))
      writer.write(output::module_of(w.name) + "." + ct.suffix, ct.data.data(), ct.data.size());
  } else {
    writer.write(w.name + ".packed", bytes.data(), bytes.size());
  }
}

void quantize_layers(const QuantizeOptions& o, LoadedModel& m, const OutputLayout& layout,
                     const std::vector<std::vector<int32_t>>& sequences,
                     const std::vector<LayerTransform*>& transforms, SafetensorsWriter& writer,
                     std::map<std::string, TensorRecord>& per_tensor, QuantizeReport& report,
                     std::vector<double>& head_hessian,
                     const std::function<void(int, int)>& progress) {
  const bool data_free = sequences.empty();
  const bool act_quantized = o.activations != formats::ActivationFormat::None;
  LayerwiseOptions lo = layerwise_options(o, m, layout, transforms);
  if (!layout.gptq_table.empty())
    lo.head_input = [&](const InputStatistics& s) { head_hessian = s.hessian(); };
  lo.layer_done = [&](int, const LayerWeights& lw) {
    for_each_layer_tensor(
        lw, [&](const std::string& name, DType dtype, const std::byte* data, size_t count) {
          if (layout.rewritten.contains(name)) write_as_f32(writer, name, dtype, data, count);
        });
  };
  auto factory = [&](const Matrix& w) -> std::unique_ptr<ColumnQuantizer> {
    if (o.interrupted && o.interrupted->load()) fail("interrupted; no output written");
    auto it = layout.linears.find(w.name);
    if (it == layout.linears.end()) return nullptr;
    const std::vector<float> wf = w.to_f32();
    return quantizer_maker(*it->second.format)(wf.data(), w.rows, w.cols);
  };
  auto sink = [&](const Matrix& w, const std::vector<float>& values, const ColumnQuantizer& q,
                  const LinearResult& r) {
    const output::TensorPlan& tp = layout.linears.at(w.name);
    std::vector<std::byte> bytes;
    if (data_free && dynamic_cast<const FormatColumnQuantizer*>(&q) != nullptr) {
      // Plain RTN: the format's own encoder (for GGUF types, llama.cpp's exact code assignment).
      const std::vector<float> wf = w.to_f32();
      bytes = tp.format->encode(wf.data(), w.rows, w.cols);
    } else {
      bytes = format_quantizer(q).pack(values.data());
    }
    if (!data_free) {
      per_tensor[w.name].objective = r.objective;
      per_tensor[w.name].objective_rtn = r.objective_rtn;
    }
    report.linears.push_back(r);
    report.formats.push_back(tp.format->name());
    write_linear(writer, tp, w, bytes, act_quantized);
  };
  quantize_layerwise(m.config, m.weights, sequences, factory, sink, lo, ThreadPool::global(),
                     progress);
}

// ---------------------------------------------------------------------------------------------
// Phase 6b: the output head with GPTQ. Its input is the final-normed hidden state of the quantized
// model, so its Hessian is only hidden x hidden; its vocab rows go a chunk at a time. A tied
// table is quantized as the head: the head's error reaches every logit of every position, while
// an embedding row's error reaches only the positions holding that token (GPTQ against RTN for a
// tied table was not measured apart; see docs/RESULTS.md).

}  // namespace

GptqChunks gptq_table_chunks(const Matrix& table, const formats::Format& f) {
  GptqChunks c;
  c.rows = table.rows;
  c.cols = table.cols;
  // Formats with per-tensor state (a global scale) see the whole head at once.
  if (f.header_bytes() > 0 || f.info().block < 0) c.chunk_rows = table.rows;
  c.read = [&table](int64_t r0, int64_t r1, float* out) { table.rows_to_f32(r0, r1 - r0, out); };
  c.make = quantizer_maker(f);
  return c;
}

namespace {

// The table GPTQ quantizes as the head: with GPTQ, the head (or a tied table) when it is
// quantized, unless rotated (the rotation folds the final norm into the head's rows).
std::string gptq_head_table(const QuantizeOptions& o, const OutputLayout& layout, bool rotated) {
  if (o.method != QuantMethod::GPTQ || rotated || layout.untie) return {};
  const std::string& name = layout.tied ? layout.embed_name : layout.head_name;
  return layout.tables.contains(name) ? name : std::string();
}

void quantize_head(const LoadedModel& m, const OutputLayout& layout, const GptqOptions& gptq,
                   const std::vector<double>& h, SafetensorsWriter& writer,
                   std::map<std::string, TensorRecord>& per_tensor) {
  const std::string& name = layout.gptq_table;
  const formats::Format& f = *layout.tables.at(name).format;
  const Matrix& src = m.weights.lm_head;  // the embedding's data when tied
  check(static_cast<int64_t>(h.size()) == src.cols * src.cols,
        "{}: no head statistics were collected", name);
  const auto t0 = std::chrono::steady_clock::now();
  GptqChunks c = gptq_table_chunks(src, f);
  c.sink = [&](int64_t r0, int64_t, const std::vector<float>& q, const ColumnQuantizer& quantizer) {
    const std::vector<std::byte> bytes = format_quantizer(quantizer).pack(q.data());
    writer.write(name + ".packed", bytes.data(), bytes.size(),
                 static_cast<size_t>(r0) * f.row_bytes(src.cols));
  };
  const GptqChunkedResult g =
      gptq_quantize_chunked(c, h, gptq, /*measure_rtn=*/true, &ThreadPool::global());
  m.weights.release(src);
  // In the record only: the head's objective (squared logit error) is on another scale than the
  // decoder linears' totals that report.linears sums.
  TensorRecord& t = per_tensor.at(name);
  t.method = "gptq";
  t.objective = g.objective;
  t.objective_rtn = g.objective_rtn;
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------
// Phase 7: config.json (with the measured layer errors) and tokenizer files; then into place.

nlohmann::json awq_groups_record(const std::vector<AwqGroupRecord>& records) {
  nlohmann::json groups = nlohmann::json::array();
  for (const AwqGroupRecord& a : records) {
    nlohmann::json g = {{"layer", a.layer},
                        {"group", linear_group_name(a.group)},
                        {"alpha", a.alpha},
                        {"objective_identity", a.objective_identity},
                        {"objective", a.objective}};
    if (a.gptq_objective_identity > 0) {
      g["gptq_objective_identity"] = a.gptq_objective_identity;
      g["gptq_objective"] = a.gptq_objective;
      g["gptq_rejected"] = a.gptq_rejected;
    }
    groups.push_back(g);
  }
  return groups;
}

void write_config_and_tokenizer(const QuantizeOptions& o, const fs::path& dir,
                                const OutputLayout& layout, const QuantizationRecord& record,
                                bool compressed_tensors) {
  // From a GGUF only the intermediate of a GGUF output is written: the record stays in the
  // safetensors metadata, config and vocabulary come from the source GGUF.
  if (is_gguf_file(o.model)) return;
  auto config = nlohmann::json::parse(read_text_file(o.model / "config.json"));
  if (layout.untie) config["tie_word_embeddings"] = false;
  config["quantization_config"] =
      compressed_tensors
          ? output::compressed_tensors_config(layout.linears, layout.unquantized_linears,
                                              o.activations, to_json(record))
          : to_json(record);
  write_file_atomic(dir / "config.json", config.dump(2) + "\n");
  for (const char* f :
       {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json",
        "vocab.json", "merges.txt", "special_tokens_map.json"})
    if (fs::exists(o.model / f))
      fs::copy_file(o.model / f, dir / f, fs::copy_options::overwrite_existing);
}

void move_into_place(TempDir& tmp, const fs::path& output) {
  std::error_code ec;
  if (fs::exists(output)) fs::remove_all(output);
  fs::rename(tmp.path, output, ec);
  check(!ec, "{}: cannot move the result into place: {}", output.string(), ec.message());
  tmp.keep = true;
}

}  // namespace

uint64_t fnv1a64(std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<std::vector<int32_t>> calibration_sequences(const fs::path& file, const Tokenizer& tok,
                                                        int64_t tokens, int seq_len,
                                                        uint64_t* hash) {
  const std::string text = read_text_file(file);
  *hash = fnv1a64(text);
  // Tokenized a paragraph-aligned chunk at a time, only as far as needed: tokenizing a large file
  // in one call costs tens of bytes of tokenizer state per input byte.
  std::vector<int32_t> ids;
  constexpr size_t kChunk = 64 << 10;
  for (size_t begin = 0; begin < text.size() && static_cast<int64_t>(ids.size()) < tokens;) {
    size_t end = std::min(text.size(), begin + kChunk);
    if (end < text.size()) {
      const size_t para = text.rfind("\n\n", end);
      if (para != std::string::npos && para > begin) end = para + 2;
    }
    const std::vector<int32_t> part =
        tok.encode(std::string_view(text).substr(begin, end - begin), false);
    ids.insert(ids.end(), part.begin(), part.end());
    begin = end;
  }
  check(static_cast<int64_t>(ids.size()) >= tokens,
        "{}: calibration text too short: {} tokens, --calib-tokens asks for {}", file.string(),
        ids.size(), tokens);
  std::vector<std::vector<int32_t>> sequences;
  for (size_t s = 0; s + seq_len <= static_cast<size_t>(tokens); s += static_cast<size_t>(seq_len))
    sequences.emplace_back(ids.begin() + static_cast<ptrdiff_t>(s),
                           ids.begin() + static_cast<ptrdiff_t>(s + seq_len));
  return sequences;
}

bool needs_calibration(const QuantizeOptions& o) {
  return o.method == QuantMethod::GPTQ || o.awq || o.smooth_alpha.has_value();
}

QuantizeReport quantize_model(const QuantizeOptions& o,
                              const std::function<void(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizeReport report;
  report.method = method_name(o);
  refuse_bad_options(o, report.method);
  LoadedModel m = load_quantizable_model(o, report.requantized);
  std::unique_ptr<RotationTransform> rotation;  // built now: refuses impossible widths up front
  if (o.rotate) rotation = std::make_unique<RotationTransform>(m.config, *o.rotate);
  const ModelRotation* rot = rotation ? &rotation->rotation() : nullptr;
  const bool rewrites_layers = rotation || o.awq || o.smooth_alpha;
  const bool act_quantized = o.activations != formats::ActivationFormat::None;
  const bool untie = rotation && m.weights.lm_head.data == m.weights.embedding.data;

  const std::vector<QuantizableTensor> tensors = quantizable_tensors(m.weights, untie);
  const QuantPlan plan =
      o.plan ? checked_plan(o, tensors) : plan_from_rules(o, tensors, report.fallbacks);
  if (o.gguf_types_only) check_gguf_expressible(o, plan);
  OutputLayout layout = layout_of(plan, tensors, m.weights, act_quantized, untie, rewrites_layers);
  layout.gptq_table = gptq_head_table(o, layout, rot != nullptr);

  TempDir tmp{fs::path(o.output.string() + ".tmp-qforge")};
  fs::remove_all(tmp.path);
  std::error_code ec;
  fs::create_directories(tmp.path, ec);
  check(!ec, "{}: cannot create the output: {}", tmp.path.string(), ec.message());

  std::vector<std::vector<int32_t>> sequences;
  if (needs_calibration(o)) {
    sequences =
        calibration_sequences(o.calib, *m.tokenizer, o.calib_tokens, o.seq_len, &report.calib_hash);
    report.calib_tokens = static_cast<int64_t>(sequences.size()) * o.seq_len;
  }
  QuantizationRecord record = quantization_record(o, plan, layout, report);
  const bool compressed_tensors = all_compressed_tensors(layout, rot);

  SafetensorsWriter writer(tmp.path / "model.safetensors",
                           native_entries(m, layout, rot != nullptr, act_quantized),
                           {{"format", "pt"}, {kQuantizationRecordKey, to_json(record).dump()}});
  const std::vector<uint8_t> seen =
      sequences.empty() ? std::vector<uint8_t>()
                        : calibration_tokens_seen(sequences, m.weights.embedding.rows);
  write_unlayered_tensors(writer, m, layout, rot, seen);
  Transforms transforms = layer_transforms(o, m.config, rotation.get(), layout);
  std::vector<double> head_hessian;
  quantize_layers(o, m, layout, sequences, transforms.in_order, writer, record.tensors, report,
                  head_hessian, progress);
  if (!layout.gptq_table.empty())
    quantize_head(m, layout, o.gptq, head_hessian, writer, record.tensors);
  writer.commit();
  const uint64_t file_bytes = fs::file_size(tmp.path / "model.safetensors");
  check(o.max_output_bytes == 0 || file_bytes <= o.max_output_bytes,
        "{}: the output would be {} bytes, over the budget of {}", o.output.string(), file_bytes,
        o.max_output_bytes);

  if (transforms.awq) {
    report.awq = transforms.awq->records();
    record.awq["groups"] = awq_groups_record(report.awq);
  }
  write_config_and_tokenizer(o, tmp.path, layout, record, compressed_tensors);
  move_into_place(tmp, o.output);
  report.output_bytes = fs::file_size(o.output / "model.safetensors");
  report.compressed_tensors = compressed_tensors;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace qforge
