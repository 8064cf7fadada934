#include "qforge/quant/quantize_model.h"

#include <fmt/format.h>

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
#include "qforge/io/model_loader.h"
#include "qforge/io/safetensors.h"
#include "qforge/quant/format_quantizer.h"
#include "quant/quantized_output.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using output::TensorPlan;

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

std::vector<int32_t> calibration_tokens(const QuantizeOptions& o, const Tokenizer& tok,
                                        uint64_t* hash) {
  const std::string text = read_text_file(o.calib);
  *hash = fnv1a64(text);
  // Tokenized a paragraph-aligned chunk at a time, only as far as needed: tokenizing a large file
  // in one call costs tens of bytes of tokenizer state per input byte.
  std::vector<int32_t> ids;
  constexpr size_t kChunk = 64 << 10;
  for (size_t begin = 0;
       begin < text.size() && static_cast<int64_t>(ids.size()) < o.calib_tokens;) {
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
  check(static_cast<int64_t>(ids.size()) >= o.calib_tokens,
        "{}: calibration text too short: {} tokens, --calib-tokens asks for {}", o.calib.string(),
        ids.size(), o.calib_tokens);
  ids.resize(static_cast<size_t>(o.calib_tokens));
  return ids;
}

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

nlohmann::json kv_record(const KvCacheFormat& kv) {
  if (!kv.quantized()) return nullptr;
  return {{"type", formats::kv_type_name(kv.type)},
          {"keys", kv.keys_per_channel ? "channel" : "token"},
          {"keys_pre_rope", kv.keys_pre_rope},
          {"group", kv.group}};
}

// GGUF output: every quantized weight in a GGUF block type, nothing only qforge can run.
void check_gguf_expressible(const QuantizeOptions& o, const std::map<std::string, TensorPlan>& plan,
                            const std::map<std::string, TensorPlan>& table_plan) {
  for (const auto* p : {&plan, &table_plan})
    for (const auto& [name, tp] : *p)
      check(gguf::type_of_format(tp.format->name()) != nullptr,
            "{}: format {} has no GGUF type; a GGUF output takes q4_0 q4_1 q5_0 q5_1 q8_0 q2_k "
            "q3_k q4_k q5_k q6_k iq4_nl iq4_xs",
            name, tp.format->name());
  check(o.activations == formats::ActivationFormat::None && !o.kv.quantized() &&
            !(o.rotate && o.rotate->online_down),
        "a GGUF output cannot record --act, --kv or --rotate-online (llama.cpp would not apply "
        "them)");
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

bool needs_calibration(const QuantizeOptions& o) {
  return o.method == QuantMethod::GPTQ || o.awq || o.smooth_alpha.has_value();
}

QuantizeReport quantize_model(const QuantizeOptions& o,
                              const std::function<void(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizeReport report;
  report.method = method_name(o);
  // --- everything that can be refused is refused before any work
  const formats::Format& default_format = formats::find_format(o.format);
  const formats::Format* fallback = nullptr;  // null with fallback "keep": leave unquantized
  if (!o.fallback.empty() && o.fallback != "keep") fallback = &formats::find_format(o.fallback);
  std::vector<std::pair<std::regex, const formats::Format*>> overrides;
  for (const auto& [re, f] : o.tensor_formats) {
    const formats::Format* fmt = &formats::find_format(f);
    overrides.emplace_back(compile_regexes({re}, "--tensor-format")[0], fmt);
  }
  const std::vector<std::regex> keep = compile_regexes(o.keep, "--keep");
  if (needs_calibration(o))
    check(!o.calib.empty(), "{} needs calibration text: pass --calib FILE",
          o.smooth_alpha && !o.awq && o.method == QuantMethod::RTN ? "SmoothQuant" : report.method);
  check(o.calib_tokens >= o.seq_len && o.seq_len >= 2,
        "--calib-tokens ({}) must be at least the sequence length ({})", o.calib_tokens, o.seq_len);
  if (o.smooth_alpha)
    check(*o.smooth_alpha >= 0 && *o.smooth_alpha <= 1, "--smooth: alpha must be in [0, 1], got {}",
          *o.smooth_alpha);
  if (fs::exists(o.output) && !o.overwrite)
    check(fs::is_directory(o.output) && fs::is_empty(o.output),
          "{}: output exists (use --force to replace it)", o.output.string());

  check(fs::is_directory(o.model),
        "{}: quantize a Hugging Face model directory (from a .gguf or .bin: not supported yet)",
        o.model.string());
  LoadedModel m = load_model(o.model);
  check(m.config.model_type != "phi3",
        "{}: quantizing fused qkv/gate_up projections (Phi-3) is not supported yet",
        o.model.string());
  check(m.config.model_type != "llama2c", "{}: quantize a Hugging Face model directory",
        o.model.string());
  o.kv.validate(m.config);
  std::unique_ptr<RotationTransform> rotation;  // built now: refuses impossible widths up front
  if (o.rotate) rotation = std::make_unique<RotationTransform>(m.config, *o.rotate);
  const bool rewrites_layers = rotation || o.awq || o.smooth_alpha;

  // --- which weights are quantized, into what
  const bool act_quantized = o.activations != formats::ActivationFormat::None;
  auto format_for = [&](const std::string& name) {
    const formats::Format* f = &default_format;
    for (const auto& [re, fo] : overrides)
      if (std::regex_search(name, re)) f = fo;
    return f;
  };
  std::map<std::string, TensorPlan> plan;  // linear name -> how (absent: kept unquantized)
  std::vector<std::string> unquantized_linears;
  for (LayerWeights& lw : m.weights.layers)
    for (int g = 0; g < kLinearGroups; ++g)
      for (Matrix* w : linears_of_group(lw, static_cast<LinearGroup>(g))) {
        bool kept = false;
        for (const auto& re : keep) kept = kept || std::regex_search(w->name, re);
        const formats::Format* f = format_for(w->name);
        if (!kept && w->cols % f->info().row_multiple != 0 && !o.fallback.empty()) {
          report.fallbacks.push_back({w->name, f->name(), fallback ? fallback->name() : "keep"});
          if (fallback == nullptr) kept = true;
          f = fallback;
        }
        if (kept) {
          unquantized_linears.push_back(w->name);
          continue;
        }
        f->check_shape(w->name, w->rows, w->cols);  // names the tensor and the rule
        plan[w->name] = {f, formats::compressed_tensors_scheme(*f, w->rows, w->cols, act_quantized),
                         w->rows, w->cols};
      }
  // The embedding and the output head only when a --tensor-format names them (RTN, qforge layout).
  const bool tied = m.weights.lm_head.data == m.weights.embedding.data;
  const bool untie = tied && rotation;  // the rotated head carries the folded final norm
  const std::string head_name = "lm_head.weight";
  std::map<std::string, TensorPlan> table_plan;  // embedding / head -> format
  for (const Matrix* t : {&m.weights.embedding, &m.weights.lm_head}) {
    const std::string name = t == &m.weights.lm_head ? head_name : t->name;
    if (t == &m.weights.lm_head && tied && !untie) continue;  // the embedding is the head
    const formats::Format* f = nullptr;
    for (const auto& [re, fo] : overrides)
      if (std::regex_search(name, re) ||
          (tied && !untie && std::regex_search(head_name, re)))  // tied: naming either is enough
        f = fo;
    if (f == nullptr) continue;
    f->check_shape(name, t->rows, t->cols);
    table_plan[name] = {f, std::nullopt, t->rows, t->cols};
  }
  if (o.gguf_types_only) check_gguf_expressible(o, plan, table_plan);
  check(m.config.seq_len_ok(o.seq_len), "--seq-len {} exceeds the model's {} positions", o.seq_len,
        m.config.max_position_embeddings);

  TempDir tmp{fs::path(o.output.string() + ".tmp-qforge")};
  fs::remove_all(tmp.path);
  std::error_code ec;
  fs::create_directories(tmp.path, ec);
  check(!ec, "{}: cannot create the output: {}", tmp.path.string(), ec.message());

  // --- calibration data
  std::vector<std::vector<int32_t>> sequences;
  if (needs_calibration(o)) {
    const std::vector<int32_t> ids = calibration_tokens(o, *m.tokenizer, &report.calib_hash);
    for (size_t s = 0; s + o.seq_len <= ids.size(); s += static_cast<size_t>(o.seq_len))
      sequences.emplace_back(ids.begin() + static_cast<ptrdiff_t>(s),
                             ids.begin() + static_cast<ptrdiff_t>(s + o.seq_len));
    report.calib_tokens = static_cast<int64_t>(sequences.size()) * o.seq_len;
  }

  // --- the record: everything needed to reproduce the output (and to run it: activations, KV)
  bool all_compressed_tensors = !plan.empty() && table_plan.empty() &&
                                !(rotation && rotation->rotation().options().online_down);
  nlohmann::json per_tensor = nlohmann::json::object();
  for (const auto& [name, tp] : plan) {
    per_tensor[name] = {{"format", tp.format->name()},
                        {"shape", {tp.rows, tp.cols}},
                        {"layout", tp.scheme ? "compressed-tensors" : "qforge"}};
    if (tp.scheme) per_tensor[name]["ct_format"] = tp.scheme->format;
    if (act_quantized)
      per_tensor[name]["input_activations"] = formats::activation_format_name(o.activations);
    all_compressed_tensors = all_compressed_tensors && tp.scheme.has_value();
  }
  for (const auto& [name, tp] : table_plan)
    per_tensor[name] = {
        {"format", tp.format->name()}, {"shape", {tp.rows, tp.cols}}, {"layout", "qforge"}};
  nlohmann::json fallbacks = nlohmann::json::array();
  for (const auto& fb : report.fallbacks)
    fallbacks.push_back({{"tensor", fb.tensor}, {"format", fb.format}, {"fallback", fb.fallback}});
  nlohmann::json qc = {
      {"quant_method", "qforge"},
      {"format", o.format},
      {"method", report.method},
      {"tool_version", QFORGE_VERSION},
      {"calibration",
       {{"file", o.calib.string()},
        {"tokens", report.calib_tokens},
        {"fnv1a64", fmt::format("{:016x}", report.calib_hash)},
        {"seq_len", o.seq_len}}},
      {"gptq",
       {{"damp", o.gptq.damp}, {"block_size", o.gptq.block_size}, {"act_order", o.gptq.act_order}}},
      {"smooth", o.smooth_alpha ? nlohmann::json({{"alpha", *o.smooth_alpha}}) : nullptr},
      {"rotation", o.rotate ? nlohmann::json({{"kind", "hadamard"},
                                              {"seed", o.rotate->seed},
                                              {"online_down", o.rotate->online_down}})
                            : nullptr},
      {"activations",
       o.activations == formats::ActivationFormat::None
           ? nlohmann::json(nullptr)
           : nlohmann::json({{"format", formats::activation_format_name(o.activations)},
                             {"strategy", "token"},
                             {"dynamic", true}})},
      {"kv_cache", kv_record(o.kv)},
      {"fallbacks", fallbacks},
      {"tensors", per_tensor}};
  if (o.awq)
    qc["awq"] = {{"grid", o.awq_options.grid},
                 {"clip", o.awq_clip},
                 {"clip_grid", o.awq_options.clip_grid},
                 {"max_shrink", o.awq_options.max_shrink}};

  // --- the output file's layout, known before any work
  std::set<std::string> rewritten;  // unquantized layer tensors a transform may change (as F32)
  if (rewrites_layers)
    for (const LayerWeights& lw : m.weights.layers)
      for_each_layer_tensor(lw, [&](const std::string& name, DType, const std::byte*, size_t) {
        if (!plan.contains(name)) rewritten.insert(name);
      });
  const std::string& embed_name = m.weights.embedding.name;
  const std::string& norm_name = m.weights.final_norm.name;
  std::vector<SafetensorsWriter::Entry> entries;
  auto add_table = [&](const std::string& name, const std::vector<int64_t>& shape, DType dtype) {
    if (auto it = table_plan.find(name); it != table_plan.end())
      entries.push_back(
          {name + ".packed",
           DType::U8,
           {static_cast<int64_t>(it->second.format->encoded_bytes(shape[0], shape[1]))}});
    else
      entries.push_back({name, dtype, shape});
  };
  for (const TensorView& t : m.tensors) {
    auto it = plan.find(t.name);
    if (it != plan.end()) {
      if (it->second.scheme) {
        for (const auto& ct : formats::compressed_tensors_layout(
                 *it->second.format, it->second.rows, it->second.cols, act_quantized))
          entries.push_back({output::module_of(t.name) + "." + ct.suffix, ct.dtype, ct.shape});
      } else {
        const auto n = static_cast<int64_t>(
            it->second.format->encoded_bytes(it->second.rows, it->second.cols));
        entries.push_back({t.name + ".packed", DType::U8, {n}});
      }
    } else if (rewritten.contains(t.name)) {
      entries.push_back({t.name, DType::F32, t.shape});
    } else if (t.name == embed_name || (t.name == head_name && !tied)) {
      add_table(t.name, t.shape, rotation ? DType::F32 : t.dtype);
    } else if (t.name == norm_name && rotation) {
      entries.push_back({t.name, DType::F32, t.shape});
    } else if (!(t.name == head_name && tied && untie)) {
      entries.push_back({t.name, t.dtype, t.shape});
    }
  }
  if (untie) add_table(head_name, {m.weights.lm_head.rows, m.weights.lm_head.cols}, DType::F32);
  SafetensorsWriter writer(tmp.path / "model.safetensors", entries,
                           {{"format", "pt"}, {"qforge.quantization", qc.dump()}});

  // --- tensors that need no layer: copied, or rotated / quantized now (the embedding and head)
  const ModelRotation* rot = rotation ? &rotation->rotation() : nullptr;
  auto write_table = [&](const std::string& name, const Matrix& src, bool is_head) {
    constexpr int64_t kRows = 1024;
    const int64_t rows = src.rows, cols = src.cols;
    auto rows_f32 = [&](int64_t r0, int64_t r1, float* out) {
      if (rot && is_head)
        rot->rotated_head_rows(src, m.weights.final_norm, r0, r1, out);
      else {
        convert_to_f32(src.dtype, src.row(r0), out, static_cast<size_t>((r1 - r0) * cols));
        if (rot) rot->rotate_residual(out, r1 - r0);
      }
    };
    if (auto it = table_plan.find(name); it != table_plan.end()) {
      std::vector<float> all(static_cast<size_t>(rows * cols));
      rows_f32(0, rows, all.data());
      const std::vector<std::byte> bytes = it->second.format->encode(all.data(), rows, cols);
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
  };
  for (const TensorView& t : m.tensors) {
    if (plan.contains(t.name) || rewritten.contains(t.name)) continue;
    if (t.name == embed_name) {
      write_table(embed_name, m.weights.embedding, false);
    } else if (t.name == head_name && !tied) {
      write_table(head_name, m.weights.lm_head, true);
    } else if (t.name == norm_name && rot) {
      std::vector<float> ones(static_cast<size_t>(t.numel()), rot->unit_norm_value());
      writer.write(t.name, ones.data(), ones.size() * sizeof(float));
    } else if (!(t.name == head_name && untie)) {
      writer.write(t.name, t.data, t.nbytes());
      if (m.weights.release_pages) m.weights.release_pages(t.data, t.nbytes());
    }
  }
  if (untie) write_table(head_name, m.weights.embedding, true);

  // --- the layers, each linear written as soon as it is quantized
  std::vector<LayerTransform*> transforms;
  if (rotation) transforms.push_back(rotation.get());
  const bool online_down = o.rotate && o.rotate->online_down;
  auto quantized = [&](const Matrix& w) { return plan.contains(w.name); };
  std::unique_ptr<SmoothQuantTransform> smooth;
  if (o.smooth_alpha) {
    smooth =
        std::make_unique<SmoothQuantTransform>(m.config, *o.smooth_alpha, quantized, online_down);
    transforms.push_back(smooth.get());
  }
  std::unique_ptr<AwqTransform> awq;
  if (o.awq) {
    awq = std::make_unique<AwqTransform>(
        m.config, o.awq_options, o.awq_clip,
        [&](const Matrix& w) -> QuantizerMaker {
          auto it = plan.find(w.name);
          return it == plan.end() ? QuantizerMaker{} : quantizer_maker(*it->second.format);
        },
        o.method == QuantMethod::GPTQ ? std::optional<GptqOptions>(o.gptq) : std::nullopt,
        online_down);
    transforms.push_back(awq.get());
  }
  const bool data_free = sequences.empty();
  LayerwiseOptions lo;
  lo.method = o.method;
  lo.gptq = o.gptq;
  lo.selected = quantized;
  lo.transforms = transforms;
  lo.inference.activations = o.activations;
  lo.inference.kv = o.kv;
  lo.inference.online_hadamard_down = online_down;
  lo.inference.activation_groups.assign(m.config.num_layers, {});
  for (int l = 0; l < m.config.num_layers; ++l)
    for (int g = 0; g < kLinearGroups; ++g)
      for (Matrix* w : linears_of_group(m.weights.layers[l], static_cast<LinearGroup>(g)))
        lo.inference.activation_groups[l][g] =
            lo.inference.activation_groups[l][g] || quantized(*w);
  lo.layer_done = [&](int, const LayerWeights& lw) {
    for_each_layer_tensor(
        lw, [&](const std::string& name, DType dtype, const std::byte* data, size_t count) {
          if (rewritten.contains(name)) write_as_f32(writer, name, dtype, data, count);
        });
  };
  auto factory = [&](const Matrix& w) -> std::unique_ptr<ColumnQuantizer> {
    if (o.interrupted && o.interrupted->load()) fail("interrupted; no output written");
    auto it = plan.find(w.name);
    if (it == plan.end()) return nullptr;
    const std::vector<float> wf = TensorView{w.name, w.dtype, {w.rows, w.cols}, w.data}.to_f32();
    return quantizer_maker(*it->second.format)(wf.data(), w.rows, w.cols);
  };
  auto sink = [&](const Matrix& w, const std::vector<float>& values, const ColumnQuantizer& q,
                  const LinearResult& r) {
    const TensorPlan& tp = plan.at(w.name);
    std::vector<std::byte> bytes;
    if (data_free && dynamic_cast<const FormatColumnQuantizer*>(&q) != nullptr) {
      // Plain RTN: the format's own encoder (for GGUF types, llama.cpp's exact code assignment).
      const std::vector<float> wf = TensorView{w.name, w.dtype, {w.rows, w.cols}, w.data}.to_f32();
      bytes = tp.format->encode(wf.data(), w.rows, w.cols);
    } else {
      bytes = format_quantizer(q).pack(values.data());
    }
    if (!data_free) {
      per_tensor[w.name]["objective"] = r.objective;
      per_tensor[w.name]["objective_rtn"] = r.objective_rtn;
    }
    report.linears.push_back(r);
    report.formats.push_back(tp.format->name());
    if (tp.scheme) {
      for (const auto& ct :
           formats::to_compressed_tensors(*tp.format, bytes.data(), w.rows, w.cols, act_quantized))
        writer.write(output::module_of(w.name) + "." + ct.suffix, ct.data.data(), ct.data.size());
    } else {
      writer.write(w.name + ".packed", bytes.data(), bytes.size());
    }
  };
  quantize_layerwise(m.config, m.weights, sequences, factory, sink, lo, ThreadPool::global(),
                     progress);
  writer.commit();

  // --- config.json (with the measured layer errors) and tokenizer files; then into place
  if (awq) {
    report.awq = awq->records();
    nlohmann::json groups = nlohmann::json::array();
    for (const AwqGroupRecord& a : report.awq) {
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
    qc["awq"]["groups"] = groups;
  }
  qc["tensors"] = per_tensor;
  auto config = nlohmann::json::parse(read_text_file(o.model / "config.json"));
  if (untie) config["tie_word_embeddings"] = false;
  config["quantization_config"] =
      all_compressed_tensors
          ? output::compressed_tensors_config(plan, unquantized_linears, o.activations, qc)
          : qc;
  write_file_atomic(tmp.path / "config.json", config.dump(2) + "\n");
  for (const char* f :
       {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json",
        "vocab.json", "merges.txt", "special_tokens_map.json"})
    if (fs::exists(o.model / f))
      fs::copy_file(o.model / f, tmp.path / f, fs::copy_options::overwrite_existing);
  if (fs::exists(o.output)) fs::remove_all(o.output);
  fs::rename(tmp.path, o.output, ec);
  check(!ec, "{}: cannot move the result into place: {}", o.output.string(), ec.message());
  tmp.keep = true;
  report.output_bytes = fs::file_size(o.output / "model.safetensors");
  report.compressed_tensors = all_compressed_tensors;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace qforge
