// Sensitivity measurement for `qforge plan`: for every quantizable tensor (decoder linears, the
// embedding, the head) and every candidate format, the exact bytes and the predicted damage.
//
// Two estimators, combined:
//  (a) the layer objective tr((W−Q)H(W−Q)ᵀ) after GPTQ (or RTN) under each candidate, with H the
//      tensor's input Hessian from the calibration text (collected once per layer, shared by all
//      candidates; inputs from the unquantized model);
//  (b) end to end: the KL divergence of the model with only that tensor quantized, on a few
//      "probe" sequences. Measured for one probe candidate per linear (the one nearest 3.5 bits),
//      and for every candidate of the embedding and head (which have no layer objective).
// A linear's predicted KLD under candidate f is k · objective(f), with k = KLD(probe) /
// objective(probe): to second order KLD is a quadratic form in the output error, so it scales
// with the objective, and k carries how much this tensor's output error reaches the logits.
// The measurement is saved as JSON and reused for any budget.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/quant/layerwise.h"
#include "qforge/quant/plan.h"

namespace qforge {
struct LoadedModel;
}

namespace qforge::plan {

struct CandidateMeasure {
  std::string format;
  uint64_t bytes = 0;
  double objective = 0;      // layer objective under the method (linears)
  double kld_measured = -1;  // end-to-end KLD with only this tensor quantized (-1: not measured)
  double kld_predicted = 0;  // what the planner uses
};

struct TensorMeasure {
  std::string name;
  QuantizableTensor::Kind kind = QuantizableTensor::Kind::Linear;
  int64_t rows = 0, cols = 0;
  uint64_t kept_bytes = 0;   // bytes as stored unquantized
  std::string probe_format;  // linears: the candidate whose KLD calibrates the objective
  double kld_per_objective = 0;
  std::vector<CandidateMeasure> candidates;  // only formats that can take the tensor's rows
};

struct MeasureOptions {
  std::filesystem::path model, calib;
  std::string formats = "int";  // candidate_formats spec
  QuantMethod method = QuantMethod::GPTQ;
  GptqOptions gptq;
  int64_t calib_tokens = 128 * 512;
  int seq_len = 512;
  int64_t probe_tokens = 512;  // (b) runs on the first probe_tokens calibration tokens
  bool probe_all = false;      // (b) for every candidate of every tensor (to check (a))
};

// Where a measurement's time went (wall seconds): the embedding and head under every candidate
// (encode, decode, probe); the calibration forward and input statistics; the linears' GPTQ (or
// RTN) under every candidate; their end-to-end probes.
struct PhaseSeconds {
  double tables = 0, statistics = 0, quantize = 0, probes = 0;
};

// Version 2: the head (or a tied table) measured by GPTQ as quantize writes it with GPTQ (version
// 1 measured it by RTN). Version 3: the embedding's GGUF candidates with the rows of calibration
// tokens re-encoded by the weighted search, as quantize writes them with GPTQ (version 2 encoded
// every row plainly). Version 4: GGUF candidates as quantize now writes them (k-quant sub-block
// levels chosen inside GPTQ, weighted q4_0/q5_0 searches). A saved measurement of another version
// is not reused, except a version 2 or 3 without GGUF candidates (the same numbers).
inline constexpr int kMeasurementVersion = 4;

struct Measurement {
  int version = kMeasurementVersion;
  std::string model;  // the model directory as given
  uint64_t calib_hash = 0;
  int64_t calib_tokens = 0, probe_tokens = 0;
  int seq_len = 0;
  std::string method, formats;
  std::vector<TensorMeasure> tensors;
  uint64_t other_bytes = 0;  // every other tensor of the model (norms, biases) as stored
  double seconds = 0;
  PhaseSeconds phase_seconds;
};

// The frame of a measurement without errors: every quantizable tensor with the exact bytes of
// each candidate that can take its rows. Reads no weights, so budgets are checked before any work.
// Refuses candidate formats no tensor can take.
Measurement candidate_sizes(const LoadedModel& model, const std::string& formats);

Measurement measure_sensitivity(const MeasureOptions& options,
                                const std::function<void(int, int)>& progress = {});

// The measurement in `cache` when it answers these options, else a new one, saved there (when
// `cache` is not empty). *reused tells which.
Measurement measure_or_reuse(const MeasureOptions& options, const std::filesystem::path& cache,
                             const std::function<void(int, int)>& progress, bool* reused);

// Whether a saved measurement answers these options (same model, text, formats, method, tokens).
bool measurement_matches(const Measurement& m, const MeasureOptions& options, uint64_t calib_hash);

nlohmann::json measurement_to_json(const Measurement& m);
Measurement measurement_from_json(const nlohmann::json& j, const std::string& source);
Measurement read_measurement(const std::filesystem::path& path);
void write_measurement(const std::filesystem::path& path, const Measurement& m);

}  // namespace qforge::plan
