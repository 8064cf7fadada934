#include "qforge/plan/sensitivity.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/core/thread_pool.h"
#include "qforge/io/model_loader.h"
#include "qforge/kernels/kl.h"
#include "qforge/plan/candidates.h"
#include "qforge/quant/format_quantizer.h"
#include "qforge/quant/quantize_model.h"

namespace qforge::plan {
namespace {

using Kind = QuantizableTensor::Kind;

double elapsed_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* kind_name(Kind k) {
  return k == Kind::Linear ? "linear" : k == Kind::Embedding ? "embedding" : "head";
}

Kind kind_from_name(const std::string& s, const std::string& source) {
  if (s == "linear") return Kind::Linear;
  if (s == "embedding") return Kind::Embedding;
  check(s == "head", "{}: unknown tensor kind '{}'", source, s);
  return Kind::Head;
}

// End-to-end damage on a few sequences: the unquantized model's residual stream entering every
// layer and its output distribution are kept, so the KLD of a model changed from layer l on costs
// only layers l.. and the head.
class Probe {
 public:
  Probe(Transformer& model, std::vector<std::vector<int32_t>> sequences)
      : model_(model),
        sequences_(std::move(sequences)),
        len_(static_cast<int>(sequences_.front().size())),
        layers_(model.config().num_layers),
        vocab_(static_cast<size_t>(model.config().vocab_size)),
        cache_(model.new_cache(len_, /*shared_layers=*/true)),
        logits_(len_ * vocab_) {
    const size_t d = static_cast<size_t>(model.config().hidden_size);
    residual_.assign(static_cast<size_t>(layers_) + 1, {});
    for (const auto& seq : sequences_) {
      std::vector<float> x(len_ * d);
      model_.embed(seq, x.data());
      for (int l = 0; l < layers_; ++l) {
        residual_[l].push_back(x);
        model_.run_layer(l, x.data(), len_, 0, cache_);
      }
      residual_[layers_].push_back(x);
      model_.output(x.data(), len_, logits_.data());
      ref_p_.emplace_back(len_ * vocab_);
      ref_logp_.emplace_back(len_ * vocab_);
      for (size_t i = 0; i < static_cast<size_t>(len_) * vocab_; i += vocab_)
        log_softmax(&logits_[i], &ref_p_.back()[i], &ref_logp_.back()[i]);
    }
  }

  // Mean KL(reference ‖ model) over the predicted positions, running the current weights from
  // layer `first` on (from_embedding: embed first; first = layers: the head only).
  double kld_from(int first, bool from_embedding = false) {
    double sum = 0;
    for (size_t s = 0; s < sequences_.size(); ++s) {
      std::vector<float> x = residual_[first][s];
      if (from_embedding) model_.embed(sequences_[s], x.data());
      for (int l = first; l < layers_; ++l) model_.run_layer(l, x.data(), len_, 0, cache_);
      model_.output(x.data(), len_, logits_.data());
      std::vector<double> part(static_cast<size_t>(len_ - 1));
      model_.pool().parallel_for(part.size(), [&](size_t begin, size_t end, int) {
        for (size_t p = begin; p < end; ++p)
          part[p] = kernels::kl_from_logits(&ref_p_[s][p * vocab_], &ref_logp_[s][p * vocab_],
                                            &logits_[p * vocab_], static_cast<int64_t>(vocab_));
      });
      for (double v : part) sum += v;
    }
    return sum / static_cast<double>(sequences_.size() * static_cast<size_t>(len_ - 1));
  }

 private:
  // The reference distribution of one position, in double then rounded.
  void log_softmax(const float* logits, float* p, float* logp) const {
    const float mx = *std::max_element(logits, logits + vocab_);
    double sum = 0;
    for (size_t i = 0; i < vocab_; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    const double lse = mx + std::log(sum);
    for (size_t i = 0; i < vocab_; ++i) {
      logp[i] = static_cast<float>(logits[i] - lse);
      p[i] = static_cast<float>(std::exp(logits[i] - lse));
    }
  }

  Transformer& model_;
  std::vector<std::vector<int32_t>> sequences_;
  int len_, layers_;
  size_t vocab_;
  KVCache cache_;
  std::vector<float> logits_;                              // scratch [len, vocab]
  std::vector<std::vector<std::vector<float>>> residual_;  // [layer (or layers: final)][sequence]
  std::vector<std::vector<float>> ref_p_, ref_logp_;       // [sequence] [len, vocab]
};

// Every candidate that can take the tensor's rows.
TensorMeasure tensor_measure(const QuantizableTensor& t,
                             const std::vector<const formats::Format*>& formats) {
  TensorMeasure tm;
  tm.name = t.name;
  tm.kind = t.kind;
  tm.rows = t.rows;
  tm.cols = t.cols;
  tm.kept_bytes = static_cast<uint64_t>(t.rows * t.cols) * dtype_size(t.dtype);
  for (const formats::Format* f : formats)
    if (t.cols % f->info().row_multiple == 0)
      tm.candidates.push_back({f->name(), f->encoded_bytes(t.rows, t.cols)});
  // The probe: the candidate nearest 3.5 bits, where damage is large enough to measure well and
  // small enough for the quadratic model to hold.
  double best = 1e30;
  for (const CandidateMeasure& c : tm.candidates) {
    const double bpw = 8.0 * static_cast<double>(c.bytes) / static_cast<double>(t.rows * t.cols);
    if (std::abs(bpw - 3.5) < best) {
      best = std::abs(bpw - 3.5);
      tm.probe_format = c.format;
    }
  }
  return tm;
}

// A table (embedding or head) in format f as `qforge quantize` writes it: the table GPTQ takes as
// the head (head_h: its input Hessian; the head, or a tied table) by GPTQ in the same chunks of
// rows, any other by the format's own encoder with the rows of calibration tokens (seen)
// re-encoded by the weighted search.
std::vector<float> table_values(const Matrix& table, const formats::Format& f,
                                const std::vector<double>* head_h, const GptqOptions& gptq,
                                const std::vector<uint8_t>& seen) {
  std::vector<float> out(static_cast<size_t>(table.rows * table.cols));
  if (head_h != nullptr) {
    GptqChunks c = gptq_table_chunks(table, f);
    c.sink = [&](int64_t r0, int64_t, const std::vector<float>& q, const ColumnQuantizer&) {
      std::copy(q.begin(), q.end(), out.begin() + r0 * table.cols);
    };
    gptq_quantize_chunked(c, *head_h, gptq);
    return out;
  }
  const std::vector<float> w = table.to_f32();
  const std::vector<std::byte> bytes =
      encode_embedding_table(f, w.data(), table.rows, table.cols, seen);
  f.decode(bytes.data(), table.rows, table.cols, out.data());
  return out;
}

// The embedding or the head: each candidate is measured end to end.
void measure_table(const QuantizableTensor& t, TensorMeasure& tm, ModelWeights& weights,
                   const std::vector<double>* head_h, const GptqOptions& gptq,
                   const std::vector<uint8_t>& seen, Probe& probe, int layers,
                   const std::function<void()>& step) {
  const bool tied = weights.lm_head.data == weights.embedding.data;
  Matrix& slot = t.kind == Kind::Embedding ? weights.embedding : weights.lm_head;
  const Matrix original = slot;
  const bool as_head = t.kind == Kind::Head || tied;  // quantize_model's gptq_head_table
  for (CandidateMeasure& c : tm.candidates) {
    const std::vector<float> values = table_values(original, formats::find_format(c.format),
                                                   as_head ? head_h : nullptr, gptq, seen);
    slot = Matrix{original.name, DType::F32, t.rows, t.cols,
                  reinterpret_cast<const std::byte*>(values.data())};
    if (tied) weights.lm_head = slot;
    c.kld_measured = t.kind == Kind::Embedding ? probe.kld_from(0, true) : probe.kld_from(layers);
    c.kld_predicted = c.kld_measured;
    slot = original;
    if (tied) weights.lm_head = original;
    step();
  }
}

// The head's input Hessian: the final-normed hidden states of the unquantized model on the
// calibration text (x: the residual stream after the last layer).
std::vector<double> head_hessian(const Transformer& model, const std::vector<std::vector<float>>& x,
                                 int len, int dim) {
  InputStatistics stats(dim);
  std::vector<float> normed(static_cast<size_t>(len) * dim);
  for (const auto& xs : x) {
    model.final_norm(xs.data(), len, normed.data());
    stats.add(normed.data(), len, &model.pool());
  }
  return stats.hessian();
}

// Input statistics of every linear group of layer l (inputs from the unquantized model).
std::array<std::unique_ptr<InputStatistics>, kLinearGroups> layer_statistics(
    Transformer& model, KVCache& cache, int layer, const std::vector<std::vector<float>>& x,
    int len) {
  std::array<std::unique_ptr<InputStatistics>, kLinearGroups> stats;
  ForwardHooks hooks;
  hooks.on_input = [&](int, LinearGroup g, const float* in, int n, int dim) {
    auto& s = stats[static_cast<size_t>(g)];
    if (!s) s = std::make_unique<InputStatistics>(dim);
    s->add(in, n, &model.pool());
  };
  std::vector<float> scratch;
  for (const auto& xs : x) {
    scratch = xs;
    model.run_layer(layer, scratch.data(), len, 0, cache, &hooks);
  }
  return stats;
}

// One matrix of a linear group under one candidate format.
struct CandidateJob {
  Matrix* slot;
  const std::vector<float>* weights;  // the matrix in f32
  const formats::Format* format;
  CandidateMeasure* result;
  bool probe;                 // measured end to end: keep its values
  std::vector<float> values;  // the quantized values (probe candidates only)
};

// The layer objective of every job, after GPTQ (or RTN) with the group's shared H. The jobs run
// side by side, one per thread (BLAS is single-threaded here, so one GPTQ uses one core), largest
// first, each thread taking the next job when done; GPTQ's factor of H is made once for all.
void quantize_candidates(std::vector<CandidateJob>& jobs, const std::vector<double>& h,
                         const MeasureOptions& o, ThreadPool& pool) {
  const int64_t cols = jobs.front().slot->cols;
  std::optional<GptqFactor> factor;
  if (o.method == QuantMethod::GPTQ) factor = gptq_factor(h, cols, o.gptq);
  std::vector<double> h_diag(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) h_diag[i] = h[static_cast<size_t>(i * cols + i)];
  std::stable_sort(jobs.begin(), jobs.end(), [](const CandidateJob& a, const CandidateJob& b) {
    return a.slot->rows > b.slot->rows;
  });
  std::atomic<size_t> next{0};
  pool.parallel_for(static_cast<size_t>(pool.size()), [&](size_t, size_t, int) {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      CandidateJob& j = jobs[i];
      const float* w = j.weights->data();
      const int64_t rows = j.slot->rows;
      auto q = quantizer_maker(*j.format)(w, rows, cols);
      std::vector<float> values;
      if (factor) {
        GptqResult g = gptq_quantize(w, rows, h, *factor, *q);
        j.result->objective = g.objective;
        values = std::move(g.q);
      } else {
        values = rtn_quantize(w, rows, cols, *q, h_diag.data());
        j.result->objective = layer_objective(w, values.data(), rows, cols, h);
      }
      if (j.probe) j.values = std::move(values);
    }
  });
}

// Every linear of one group (same input, same H) under every candidate: the layer objectives,
// then the probe candidates (every candidate with probe_all) end to end, one at a time.
void measure_group(const std::vector<Matrix*>& linears, int layer, const std::vector<double>& h,
                   const std::map<std::string, TensorMeasure*>& measures, const MeasureOptions& o,
                   Probe& probe, ThreadPool& pool, PhaseSeconds& seconds,
                   const std::function<void()>& step) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<float>> weights;
  weights.reserve(linears.size());
  std::vector<CandidateJob> jobs;
  for (Matrix* slot : linears) {
    weights.push_back(slot->to_f32());
    TensorMeasure& tm = *measures.at(slot->name);
    for (CandidateMeasure& c : tm.candidates)
      jobs.push_back({slot,
                      &weights.back(),
                      &formats::find_format(c.format),
                      &c,
                      o.probe_all || c.format == tm.probe_format,
                      {}});
  }
  if (jobs.empty()) return;
  quantize_candidates(jobs, h, o, pool);
  seconds.quantize += elapsed_since(t0);

  t0 = std::chrono::steady_clock::now();
  for (CandidateJob& j : jobs) {
    if (j.probe) {
      const Matrix original = *j.slot;
      *j.slot = Matrix{original.name, DType::F32, original.rows, original.cols,
                       reinterpret_cast<const std::byte*>(j.values.data())};
      j.result->kld_measured = probe.kld_from(layer);
      *j.slot = original;
    }
    step();
  }
  seconds.probes += elapsed_since(t0);
}

// Predicted KLD of a linear's candidates: the probe's measured KLD per unit of objective.
void predict_linear(TensorMeasure& tm) {
  for (const CandidateMeasure& c : tm.candidates)
    if (c.format == tm.probe_format && c.objective > 0)
      tm.kld_per_objective = std::max(0.0, c.kld_measured) / c.objective;
  for (CandidateMeasure& c : tm.candidates) c.kld_predicted = tm.kld_per_objective * c.objective;
}

}  // namespace

Measurement candidate_sizes(const LoadedModel& m, const std::string& formats_spec) {
  const std::vector<const formats::Format*> formats = candidate_formats(formats_spec);
  Measurement out;
  out.model = m.source.string();
  out.formats = formats_spec;
  uint64_t quantizable_bytes = 0;
  bool any = false;
  for (const QuantizableTensor& t : quantizable_tensors(m.weights)) {
    out.tensors.push_back(tensor_measure(t, formats));
    quantizable_bytes += out.tensors.back().kept_bytes;
    any = any || !out.tensors.back().candidates.empty();
  }
  check(any, "--formats {}: no candidate format can take any tensor of {} (row lengths)",
        formats_spec, m.source.string());
  for (const TensorView& t : m.tensors) out.other_bytes += t.nbytes();
  out.other_bytes -= quantizable_bytes;
  return out;
}

Measurement measure_sensitivity(const MeasureOptions& o,
                                const std::function<void(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  check(o.calib_tokens >= o.seq_len && o.seq_len >= 2,
        "--calib-tokens ({}) must be at least the sequence length ({})", o.calib_tokens, o.seq_len);
  LoadedModel m = load_model(o.model);
  check(m.config.model_type != "phi3" && m.config.model_type != "llama2c",
        "{}: plan needs a Hugging Face model without fused projections", o.model.string());
  check(m.config.seq_len_ok(o.seq_len), "--seq-len {} exceeds the model's {} positions", o.seq_len,
        m.config.max_position_embeddings);
  Measurement out = candidate_sizes(m, o.formats);
  out.model = o.model.string();
  out.method = o.method == QuantMethod::GPTQ ? "gptq" : "rtn";
  out.seq_len = o.seq_len;
  const std::vector<std::vector<int32_t>> sequences =
      calibration_sequences(o.calib, *m.tokenizer, o.calib_tokens, o.seq_len, &out.calib_hash);
  out.calib_tokens = static_cast<int64_t>(sequences.size()) * o.seq_len;
  const size_t n_probe = static_cast<size_t>(std::clamp<int64_t>(
      (o.probe_tokens + o.seq_len - 1) / o.seq_len, 1, static_cast<int64_t>(sequences.size())));
  out.probe_tokens = static_cast<int64_t>(n_probe) * o.seq_len;
  const std::vector<QuantizableTensor> tensors = quantizable_tensors(m.weights);
  std::map<std::string, TensorMeasure*> index;
  int total = 0, done = 0;
  for (TensorMeasure& tm : out.tensors) {
    index[tm.name] = &tm;
    total += static_cast<int>(tm.candidates.size());
  }
  auto step = [&] {
    if (progress) progress(++done, total);
  };

  ThreadPool& pool = ThreadPool::global();
  Transformer model(m.config, m.weights, pool);
  auto t_phase = std::chrono::steady_clock::now();
  Probe probe(model,
              std::vector<std::vector<int32_t>>(sequences.begin(), sequences.begin() + n_probe));
  out.phase_seconds.tables = elapsed_since(t_phase);

  const int len = o.seq_len;
  KVCache cache = model.new_cache(len, /*shared_layers=*/true);
  std::vector<std::vector<float>> x(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) {
    x[s].resize(static_cast<size_t>(len) * m.config.hidden_size);
    model.embed(sequences[s], x[s].data());
  }
  for (int l = 0; l < m.config.num_layers; ++l) {
    t_phase = std::chrono::steady_clock::now();
    auto stats = layer_statistics(model, cache, l, x, len);
    out.phase_seconds.statistics += elapsed_since(t_phase);
    for (int g = 0; g < kLinearGroups; ++g) {
      const auto group = static_cast<LinearGroup>(g);
      const std::vector<Matrix*> linears = linears_of_group(m.weights.layers[l], group);
      if (linears.empty() || !stats[g]) continue;
      const std::vector<double> h = stats[g]->hessian();
      stats[g].reset();
      measure_group(linears, l, h, index, o, probe, pool, out.phase_seconds, step);
    }
    t_phase = std::chrono::steady_clock::now();
    for (auto& xs : x) model.run_layer(l, xs.data(), len, 0, cache);
    out.phase_seconds.statistics += elapsed_since(t_phase);
    for (int g = 0; g < kLinearGroups; ++g)
      for (const Matrix* w : linears_of_group(m.weights.layers[l], static_cast<LinearGroup>(g)))
        m.weights.release(*w);
  }
  // The tables last: the head's Hessian needs the calibration text through every layer.
  t_phase = std::chrono::steady_clock::now();
  // As quantize with GPTQ (which reads calibration text) writes the tables; RTN reads none.
  std::vector<double> head_h;
  std::vector<uint8_t> seen;
  if (o.method == QuantMethod::GPTQ) {
    head_h = head_hessian(model, x, len, m.config.hidden_size);
    seen = calibration_tokens_seen(sequences, m.weights.embedding.rows);
  }
  for (const QuantizableTensor& t : tensors)
    if (t.kind != Kind::Linear)
      measure_table(t, *index.at(t.name), m.weights, head_h.empty() ? nullptr : &head_h, o.gptq,
                    seen, probe, m.config.num_layers, step);
  out.phase_seconds.tables += elapsed_since(t_phase);
  for (TensorMeasure& tm : out.tensors)
    if (tm.kind == Kind::Linear) predict_linear(tm);
  out.seconds = elapsed_since(t0);
  return out;
}

Measurement measure_or_reuse(const MeasureOptions& o, const std::filesystem::path& cache,
                             const std::function<void(int, int)>& progress, bool* reused) {
  *reused = false;
  if (!cache.empty() && std::filesystem::exists(cache)) {
    const Measurement saved = read_measurement(cache);
    if (measurement_matches(saved, o, fnv1a64(read_text_file(o.calib)))) {
      *reused = true;
      return saved;
    }
  }
  Measurement m = measure_sensitivity(o, progress);
  if (!cache.empty()) write_measurement(cache, m);
  return m;
}

namespace {

// Whether each tensor's candidates are the formats `spec` names now that take its rows: a family
// ("gguf", "int") may list other formats than when the measurement was made.
bool same_candidates(const Measurement& m, const std::string& spec) {
  const std::vector<const formats::Format*> formats = candidate_formats(spec);
  for (const TensorMeasure& t : m.tensors) {
    size_t i = 0;
    for (const formats::Format* f : formats) {
      if (t.cols % f->info().row_multiple != 0) continue;
      if (i == t.candidates.size() || t.candidates[i].format != f->name()) return false;
      ++i;
    }
    if (i != t.candidates.size()) return false;
  }
  return true;
}

// Versions 2 and 3 differ from 4 only in GGUF candidates (see kMeasurementVersion).
bool current_version(const Measurement& m) {
  if (m.version == kMeasurementVersion) return true;
  if (m.version != 2 && m.version != 3) return false;
  for (const TensorMeasure& t : m.tensors)
    for (const CandidateMeasure& c : t.candidates)
      if (formats::find_format(c.format).info().family == "gguf") return false;
  return true;
}

}  // namespace

bool measurement_matches(const Measurement& m, const MeasureOptions& o, uint64_t calib_hash) {
  const int64_t probe_sequences =
      std::max<int64_t>(1, (o.probe_tokens + o.seq_len - 1) / o.seq_len);
  return m.model == o.model.string() && m.calib_hash == calib_hash &&
         m.calib_tokens == o.calib_tokens / o.seq_len * o.seq_len && m.seq_len == o.seq_len &&
         m.probe_tokens == probe_sequences * o.seq_len && m.formats == o.formats &&
         m.method == (o.method == QuantMethod::GPTQ ? "gptq" : "rtn") &&
         same_candidates(m, o.formats) && current_version(m);
}

nlohmann::json measurement_to_json(const Measurement& m) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorMeasure& t : m.tensors) {
    nlohmann::json cands = nlohmann::json::array();
    for (const CandidateMeasure& c : t.candidates)
      cands.push_back({{"format", c.format},
                       {"bytes", c.bytes},
                       {"objective", c.objective},
                       {"kld_measured", c.kld_measured},
                       {"kld_predicted", c.kld_predicted}});
    tensors.push_back({{"name", t.name},
                       {"kind", kind_name(t.kind)},
                       {"shape", {t.rows, t.cols}},
                       {"kept_bytes", t.kept_bytes},
                       {"probe_format", t.probe_format},
                       {"kld_per_objective", t.kld_per_objective},
                       {"candidates", cands}});
  }
  return {{"version", m.version},
          {"model", m.model},
          {"calibration",
           {{"fnv1a64", m.calib_hash},
            {"tokens", m.calib_tokens},
            {"seq_len", m.seq_len},
            {"probe_tokens", m.probe_tokens}}},
          {"method", m.method},
          {"formats", m.formats},
          {"other_bytes", m.other_bytes},
          {"seconds", m.seconds},
          {"phase_seconds",
           {{"tables", m.phase_seconds.tables},
            {"statistics", m.phase_seconds.statistics},
            {"quantize", m.phase_seconds.quantize},
            {"probes", m.phase_seconds.probes}}},
          {"tensors", tensors}};
}

Measurement measurement_from_json(const nlohmann::json& j, const std::string& source) {
  Measurement m;
  try {
    m.version = j.value("version", 1);
    m.model = j.at("model").get<std::string>();
    const auto& c = j.at("calibration");
    m.calib_hash = c.at("fnv1a64").get<uint64_t>();
    m.calib_tokens = c.at("tokens").get<int64_t>();
    m.seq_len = c.at("seq_len").get<int>();
    m.probe_tokens = c.at("probe_tokens").get<int64_t>();
    m.method = j.at("method").get<std::string>();
    m.formats = j.at("formats").get<std::string>();
    m.other_bytes = j.at("other_bytes").get<uint64_t>();
    m.seconds = j.value("seconds", 0.0);
    if (j.contains("phase_seconds")) {  // older measurements have only the total
      const auto& p = j.at("phase_seconds");
      m.phase_seconds = {p.at("tables").get<double>(), p.at("statistics").get<double>(),
                         p.at("quantize").get<double>(), p.at("probes").get<double>()};
    }
    for (const auto& t : j.at("tensors")) {
      TensorMeasure tm;
      tm.name = t.at("name").get<std::string>();
      tm.kind = kind_from_name(t.at("kind").get<std::string>(), source);
      tm.rows = t.at("shape").at(0).get<int64_t>();
      tm.cols = t.at("shape").at(1).get<int64_t>();
      tm.kept_bytes = t.at("kept_bytes").get<uint64_t>();
      tm.probe_format = t.at("probe_format").get<std::string>();
      tm.kld_per_objective = t.at("kld_per_objective").get<double>();
      for (const auto& cj : t.at("candidates"))
        tm.candidates.push_back({cj.at("format").get<std::string>(), cj.at("bytes").get<uint64_t>(),
                                 cj.at("objective").get<double>(),
                                 cj.at("kld_measured").get<double>(),
                                 cj.at("kld_predicted").get<double>()});
      m.tensors.push_back(std::move(tm));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed measurement: {}", source, e.what());
  }
  return m;
}

Measurement read_measurement(const std::filesystem::path& path) {
  try {
    return measurement_from_json(nlohmann::json::parse(read_text_file(path)), path.string());
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
}

void write_measurement(const std::filesystem::path& path, const Measurement& m) {
  write_file_atomic(path, measurement_to_json(m).dump(1) + "\n");
}

}  // namespace qforge::plan
