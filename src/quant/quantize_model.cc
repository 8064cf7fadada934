#include "qforge/quant/quantize_model.h"

#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
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
  std::vector<int32_t> ids = tok.encode(text, false);
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

QuantizeReport quantize_model(const QuantizeOptions& o,
                              const std::function<void(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizeReport report;
  // --- everything that can be refused is refused before any work
  const formats::Format& default_format = formats::find_format(o.format);
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
  std::map<std::string, const formats::Format*> plan;  // linear name -> format (absent: keep)
  for (LayerWeights& lw : m.weights.layers)
    for (int g = 0; g < kLinearGroups; ++g)
      for (Matrix* w : linears_of_group(lw, static_cast<LinearGroup>(g))) {
        bool kept = false;
        for (const auto& re : keep) kept = kept || std::regex_search(w->name, re);
        if (kept) continue;
        const formats::Format* f = &default_format;
        for (const auto& [re, fo] : overrides)
          if (std::regex_search(w->name, re)) f = fo;
        f->check_shape(w->name, w->rows, w->cols);
        plan[w->name] = f;
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

  // --- quantize
  std::map<std::string, TensorToWrite> packed;
  nlohmann::json per_tensor = nlohmann::json::object();
  auto record = [&](const Matrix& w, std::vector<std::byte> bytes, const formats::Format& f,
                    const LinearResult* r) {
    per_tensor[w.name] = {{"format", f.name()}, {"shape", {w.rows, w.cols}}};
    if (r != nullptr) {
      per_tensor[w.name]["objective"] = r->objective;
      per_tensor[w.name]["objective_rtn"] = r->objective_rtn;
      report.linears.push_back(*r);
      report.formats.push_back(f.name());
    }
    const int64_t n = static_cast<int64_t>(bytes.size());
    packed[w.name] = TensorToWrite{w.name + ".packed", DType::U8, {n}, std::move(bytes)};
  };
  if (o.method == QuantMethod::RTN) {
    int done = 0;
    for (const auto& [name, f] : plan) {
      if (o.interrupted && o.interrupted->load()) fail("interrupted; no output written");
      const Matrix* w = nullptr;
      for (LayerWeights& lw : m.weights.layers)
        for (int g = 0; g < kLinearGroups; ++g)
          for (Matrix* x : linears_of_group(lw, static_cast<LinearGroup>(g)))
            if (x->name == name) w = x;
      const std::vector<float> wf =
          TensorView{w->name, w->dtype, {w->rows, w->cols}, w->data}.to_f32();
      record(*w, f->encode(wf.data(), w->rows, w->cols), *f, nullptr);
      if (progress) progress(++done, static_cast<int>(plan.size()));
    }
  } else {
    LayerwiseOptions lo;
    lo.method = o.method;
    lo.gptq = o.gptq;
    auto factory = [&](const Matrix& w) -> std::unique_ptr<ColumnQuantizer> {
      if (o.interrupted && o.interrupted->load()) fail("interrupted; no output written");
      auto it = plan.find(w.name);
      if (it == plan.end()) return nullptr;
      const std::vector<float> wf = TensorView{w.name, w.dtype, {w.rows, w.cols}, w.data}.to_f32();
      return std::make_unique<FormatColumnQuantizer>(
          it->second->make_quantizer(wf.data(), w.rows, w.cols));
    };
    auto sink = [&](const Matrix& w, const std::vector<float>& values, const ColumnQuantizer& q,
                    const LinearResult& r) {
      record(w, static_cast<const FormatColumnQuantizer&>(q).pack(values.data()), *plan.at(w.name),
             &r);
    };
    quantize_layerwise(m.config, m.weights, sequences, factory, sink, lo, ThreadPool::global(),
                       progress);
  }

  // --- write: quantized linears packed, everything else as it was
  std::vector<TensorToWrite> out;
  for (const TensorView& t : m.tensors) {
    auto it = packed.find(t.name);
    if (it != packed.end()) {
      out.push_back(std::move(it->second));
      continue;
    }
    out.push_back({t.name, t.dtype, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes())});
  }
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
      {"tensors", per_tensor}};
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"qforge.quantization", qc.dump()}};
  write_safetensors(tmp.path / "model.safetensors", out, meta);
  auto config = nlohmann::json::parse(read_text_file(o.model / "config.json"));
  config["quantization_config"] = qc;
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
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace qforge
