// What `qforge eval --ref` measured for a quantized model, kept beside the model so that its
// quantization record (the plan and the KLD it predicted, io/quantization_record.h) meets the KLD
// measured afterwards; `qforge info` shows both. The model's own files are never rewritten: the
// log is DIR/qforge-evaluations.json for a model directory, FILE.qforge-evaluations.json beside a
// single-file model (.gguf). One entry per (reference, text, tokens, ctx, batch, inference); a
// newer measurement of the same replaces the older.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qforge {

struct EvaluationEntry {
  std::string reference, text;  // paths as given to eval
  int64_t tokens = 0;           // predicted tokens scored
  int ctx = 0, batch = 0;
  std::string inference;  // how the model ran (InferenceOptions::describe)
  double kld_mean = 0, kld_mean_stderr = 0, kld_median = 0, kld_p99 = 0;
  double ppl = 0, ref_ppl = 0, top1_agreement = 0;
  double predicted_kld = 0;  // what the model's plan predicted (0: no plan)
  std::string date;          // UTC, ISO 8601
  std::string tool_version;
};

std::filesystem::path evaluation_log_path(const std::filesystem::path& model);

// The log's entries, oldest first; none when there is no log. Throws Error naming the file when it
// is not a log (malformed JSON, a missing or mistyped key).
std::vector<EvaluationEntry> read_evaluation_log(const std::filesystem::path& model);

// Adds `entry` (replacing one of the same measurement: all of the key above) and writes the log
// atomically. A malformed existing log is an Error, not overwritten.
void record_evaluation(const std::filesystem::path& model, const EvaluationEntry& entry);

// The current UTC time as "2026-12-07T10:30:00Z".
std::string utc_now_iso8601();

}  // namespace qforge
