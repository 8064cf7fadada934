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
#include "qforge/io/model_loader.h"
#include "qforge/io/safetensors.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

// Adapts a format's GroupQuantizer to the algorithms' ColumnQuantizer.
class FormatColumnQuantizer final : public ColumnQuantizer {
 public:
  explicit FormatColumnQuantizer(std::unique_ptr<formats::GroupQuantizer> q) : q_(std::move(q)) {}
  int64_t group_size() const override { return q_->group_size(); }
  void choose_scales(int64_t group, const float* w, int64_t rows, int64_t width, int64_t ld,
                     const float* h_diag) override {
    q_->choose_scales(group, w, rows, width, ld, h_diag);
  }
  float round(int64_t row, int64_t col, float value) const override {
    return q_->round(row, col, value);
  }
  std::vector<std::byte> pack(const float* values) const { return q_->pack(values); }

 private:
  std::unique_ptr<formats::GroupQuantizer> q_;
};

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

}  // namespace

uint64_t fnv1a64(std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

// Where a quantized linear's bytes go in the output file: compressed-tensors' tensors where the
// format has a scheme there, else qforge's "<name>.packed".
struct TensorPlan {
  const formats::Format* format = nullptr;
  std::optional<formats::CtScheme> scheme;
  int64_t rows = 0, cols = 0;
};

// "model.layers.0.mlp.down_proj.weight" -> "model.layers.0.mlp.down_proj"
std::string module_of(const std::string& weight_name) {
  const std::string suffix = ".weight";
  return weight_name.ends_with(suffix) ? weight_name.substr(0, weight_name.size() - suffix.size())
                                       : weight_name;
}

nlohmann::json ct_weights_json(const formats::CtScheme& c) {
  return {{"num_bits", c.num_bits},
          {"type", c.type},
          {"symmetric", c.symmetric},
          {"strategy", c.strategy},
          {"group_size", c.group_size ? nlohmann::json(c.group_size) : nlohmann::json(nullptr)},
          {"dynamic", false},
          {"actorder", nullptr},
          {"observer", "minmax"}};
}

// config.json's quantization_config in compressed-tensors' schema (for vLLM), used when every
// quantized linear has a compressed-tensors scheme. qforge's own record rides along under "qforge".
nlohmann::json compressed_tensors_config(const std::map<std::string, TensorPlan>& plan,
                                         const std::vector<std::string>& unquantized_linears,
                                         const nlohmann::json& qforge_record) {
  std::map<std::string, std::vector<std::string>> modules_by_scheme;
  std::map<std::string, formats::CtScheme> schemes;
  for (const auto& [name, tp] : plan) {
    const std::string key = ct_weights_json(*tp.scheme).dump() + tp.scheme->format;
    modules_by_scheme[key].push_back(module_of(name));
    schemes[key] = *tp.scheme;
  }
  nlohmann::json groups = nlohmann::json::object();
  std::set<std::string> checkpoint_formats;
  int i = 0;
  for (const auto& [key, modules] : modules_by_scheme) {
    const formats::CtScheme& c = schemes.at(key);
    checkpoint_formats.insert(c.format);
    groups[fmt::format("group_{}", i++)] = {
        {"targets", modules_by_scheme.size() == 1 ? nlohmann::json::array({"Linear"})
                                                  : nlohmann::json(modules)},
        {"weights", ct_weights_json(c)},
        {"input_activations", nullptr},
        {"output_activations", nullptr},
        {"format", c.format}};
  }
  nlohmann::json ignore = nlohmann::json::array({"lm_head"});
  for (const auto& n : unquantized_linears) ignore.push_back(module_of(n));
  return {
      {"quant_method", "compressed-tensors"},
      {"format", checkpoint_formats.size() == 1 ? *checkpoint_formats.begin() : "mixed-precision"},
      {"config_groups", groups},
      {"ignore", ignore},
      {"quantization_status", "compressed"},
      {"kv_cache_scheme", nullptr},
      {"qforge", qforge_record}};
}

}  // namespace

QuantizeReport quantize_model(const QuantizeOptions& o,
                              const std::function<void(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizeReport report;
  // --- everything that can be refused is refused before any work
  const formats::Format& default_format = formats::find_format(o.format);
  const formats::Format* fallback = nullptr;  // null with fallback "keep": leave unquantized
  if (!o.fallback.empty() && o.fallback != "keep") fallback = &formats::find_format(o.fallback);
  std::vector<std::pair<std::regex, const formats::Format*>> overrides;
  for (const auto& [re, f] : o.tensor_formats) {
    try {
      overrides.emplace_back(std::regex(re), &formats::find_format(f));
    } catch (const std::regex_error& e) {
      fail("--tensor-format: invalid regex '{}': {}", re, e.what());
    }
  }
  std::vector<std::regex> keep;
  for (const auto& re : o.keep) {
    try {
      keep.emplace_back(re);
    } catch (const std::regex_error& e) {
      fail("--keep: invalid regex '{}': {}", re, e.what());
    }
  }
  check(o.calib_tokens >= o.seq_len && o.seq_len >= 2,
        "--calib-tokens ({}) must be at least the sequence length ({})", o.calib_tokens, o.seq_len);
  if (fs::exists(o.output) && !o.overwrite)
    check(fs::is_directory(o.output) && fs::is_empty(o.output),
          "{}: output exists (use --force to replace it)", o.output.string());

  LoadedModel m = load_model(o.model);
  check(m.config.model_type != "phi3",
        "{}: quantizing fused qkv/gate_up projections (Phi-3) is not supported yet",
        o.model.string());
  check(m.config.model_type != "llama2c", "{}: quantize a Hugging Face model directory",
        o.model.string());
  std::map<std::string, TensorPlan> plan;  // linear name -> how (absent: kept unquantized)
  std::vector<std::string> unquantized_linears;
  for (LayerWeights& lw : m.weights.layers)
    for (int g = 0; g < kLinearGroups; ++g)
      for (Matrix* w : linears_of_group(lw, static_cast<LinearGroup>(g))) {
        bool kept = false;
        for (const auto& re : keep) kept = kept || std::regex_search(w->name, re);
        const formats::Format* f = &default_format;
        for (const auto& [re, fo] : overrides)
          if (std::regex_search(w->name, re)) f = fo;
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
        plan[w->name] = {f, formats::compressed_tensors_scheme(*f, w->rows, w->cols), w->rows,
                         w->cols};
      }
  check(m.config.seq_len_ok(o.seq_len), "--seq-len {} exceeds the model's {} positions", o.seq_len,
        m.config.max_position_embeddings);

  TempDir tmp{fs::path(o.output.string() + ".tmp-qforge")};
  fs::remove_all(tmp.path);
  std::error_code ec;
  fs::create_directories(tmp.path, ec);
  check(!ec, "{}: cannot create the output: {}", tmp.path.string(), ec.message());

  // --- calibration data
  std::vector<std::vector<int32_t>> sequences;
  if (o.method == QuantMethod::GPTQ) {
    check(!o.calib.empty(), "GPTQ needs calibration text: pass --calib FILE");
    const std::vector<int32_t> ids = calibration_tokens(o, *m.tokenizer, &report.calib_hash);
    for (size_t s = 0; s + o.seq_len <= ids.size(); s += static_cast<size_t>(o.seq_len))
      sequences.emplace_back(ids.begin() + static_cast<ptrdiff_t>(s),
                             ids.begin() + static_cast<ptrdiff_t>(s + o.seq_len));
    report.calib_tokens = static_cast<int64_t>(sequences.size()) * o.seq_len;
  }

  // --- the output file's layout, known before any work: unquantized tensors as they were,
  // quantized linears in compressed-tensors' layout or as "<name>.packed"
  bool all_compressed_tensors = !plan.empty();
  nlohmann::json per_tensor = nlohmann::json::object();
  for (const auto& [name, tp] : plan) {
    per_tensor[name] = {{"format", tp.format->name()},
                        {"shape", {tp.rows, tp.cols}},
                        {"layout", tp.scheme ? "compressed-tensors" : "qforge"}};
    all_compressed_tensors = all_compressed_tensors && tp.scheme.has_value();
  }
  nlohmann::json fallbacks = nlohmann::json::array();
  for (const auto& fb : report.fallbacks)
    fallbacks.push_back({{"tensor", fb.tensor}, {"format", fb.format}, {"fallback", fb.fallback}});
  nlohmann::json qc = {
      {"quant_method", "qforge"},
      {"format", o.format},
      {"method", o.method == QuantMethod::GPTQ ? "gptq" : "rtn"},
      {"tool_version", QFORGE_VERSION},
      {"calibration",
       {{"file", o.calib.string()},
        {"tokens", report.calib_tokens},
        {"fnv1a64", fmt::format("{:016x}", report.calib_hash)},
        {"seq_len", o.seq_len}}},
      {"gptq",
       {{"damp", o.gptq.damp}, {"block_size", o.gptq.block_size}, {"act_order", o.gptq.act_order}}},
      {"fallbacks", fallbacks},
      {"tensors", per_tensor}};
  std::vector<SafetensorsWriter::Entry> entries;
  for (const TensorView& t : m.tensors) {
    auto it = plan.find(t.name);
    if (it == plan.end()) {
      entries.push_back({t.name, t.dtype, t.shape});
    } else if (it->second.scheme) {
      for (const auto& ct :
           formats::compressed_tensors_layout(*it->second.format, it->second.rows, it->second.cols))
        entries.push_back({module_of(t.name) + "." + ct.suffix, ct.dtype, ct.shape});
    } else {
      const auto n =
          static_cast<int64_t>(it->second.format->encoded_bytes(it->second.rows, it->second.cols));
      entries.push_back({t.name + ".packed", DType::U8, {n}});
    }
  }
  SafetensorsWriter writer(tmp.path / "model.safetensors", entries,
                           {{"format", "pt"}, {"qforge.quantization", qc.dump()}});
  for (const TensorView& t : m.tensors)
    if (!plan.contains(t.name)) {
      writer.write(t.name, t.data, t.nbytes());
      if (m.weights.release_pages) m.weights.release_pages(t.data, t.nbytes());
    }

  // --- quantize, each linear written as soon as it is done
  auto record = [&](const Matrix& w, const std::vector<std::byte>& bytes, const LinearResult* r) {
    const TensorPlan& tp = plan.at(w.name);
    if (r != nullptr) {
      per_tensor[w.name]["objective"] = r->objective;
      per_tensor[w.name]["objective_rtn"] = r->objective_rtn;
      report.linears.push_back(*r);
      report.formats.push_back(tp.format->name());
    }
    if (tp.scheme) {
      for (const auto& ct :
           formats::to_compressed_tensors(*tp.format, bytes.data(), w.rows, w.cols))
        writer.write(module_of(w.name) + "." + ct.suffix, ct.data.data(), ct.data.size());
    } else {
      writer.write(w.name + ".packed", bytes.data(), bytes.size());
    }
  };
  if (o.method == QuantMethod::RTN) {
    int done = 0;
    for (LayerWeights& lw : m.weights.layers)
      for (int g = 0; g < kLinearGroups; ++g)
        for (Matrix* w : linears_of_group(lw, static_cast<LinearGroup>(g))) {
          auto it = plan.find(w->name);
          if (it == plan.end()) continue;
          if (o.interrupted && o.interrupted->load()) fail("interrupted; no output written");
          const std::vector<float> wf =
              TensorView{w->name, w->dtype, {w->rows, w->cols}, w->data}.to_f32();
          record(*w, it->second.format->encode(wf.data(), w->rows, w->cols), nullptr);
          m.weights.release(*w);
          if (progress) progress(++done, static_cast<int>(plan.size()));
        }
  } else {
    LayerwiseOptions lo;
    lo.method = o.method;
    lo.gptq = o.gptq;
    lo.selected = [&](const Matrix& w) { return plan.contains(w.name); };
    auto factory = [&](const Matrix& w) -> std::unique_ptr<ColumnQuantizer> {
      if (o.interrupted && o.interrupted->load()) fail("interrupted; no output written");
      auto it = plan.find(w.name);
      if (it == plan.end()) return nullptr;
      const std::vector<float> wf = TensorView{w.name, w.dtype, {w.rows, w.cols}, w.data}.to_f32();
      return std::make_unique<FormatColumnQuantizer>(
          it->second.format->make_quantizer(wf.data(), w.rows, w.cols));
    };
    auto sink = [&](const Matrix& w, const std::vector<float>& values, const ColumnQuantizer& q,
                    const LinearResult& r) {
      record(w, static_cast<const FormatColumnQuantizer&>(q).pack(values.data()), &r);
    };
    quantize_layerwise(m.config, m.weights, sequences, factory, sink, lo, ThreadPool::global(),
                       progress);
  }
  writer.commit();

  // --- config.json (with the measured layer errors) and tokenizer files; then into place
  qc["tensors"] = per_tensor;
  auto config = nlohmann::json::parse(read_text_file(o.model / "config.json"));
  config["quantization_config"] =
      all_compressed_tensors ? compressed_tensors_config(plan, unquantized_linears, qc) : qc;
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
