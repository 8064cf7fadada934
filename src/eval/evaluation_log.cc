#include "qforge/eval/evaluation_log.h"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kLogName = "qforge-evaluations.json";

json to_json(const EvaluationEntry& e) {
  return {{"reference", e.reference},
          {"text", e.text},
          {"tokens", e.tokens},
          {"ctx", e.ctx},
          {"batch", e.batch},
          {"inference", e.inference},
          {"kld_mean", e.kld_mean},
          {"kld_mean_stderr", e.kld_mean_stderr},
          {"kld_median", e.kld_median},
          {"kld_p99", e.kld_p99},
          {"ppl", e.ppl},
          {"ref_ppl", e.ref_ppl},
          {"top1_agreement", e.top1_agreement},
          {"predicted_kld", e.predicted_kld},
          {"date", e.date},
          {"tool_version", e.tool_version}};
}

template <class T>
T field(const json& j, const char* key, const fs::path& file, size_t index) {
  check(j.contains(key), "{}: evaluation {} has no \"{}\"", file.string(), index, key);
  const json& v = j.at(key);
  if constexpr (std::is_same_v<T, std::string>)
    check(v.is_string(), "{}: evaluation {}: \"{}\" is not a string", file.string(), index, key);
  else
    check(v.is_number(), "{}: evaluation {}: \"{}\" is not a number", file.string(), index, key);
  return v.get<T>();
}

EvaluationEntry from_json(const json& j, const fs::path& file, size_t i) {
  check(j.is_object(), "{}: evaluation {} is not an object", file.string(), i);
  EvaluationEntry e;
  e.reference = field<std::string>(j, "reference", file, i);
  e.text = field<std::string>(j, "text", file, i);
  e.tokens = field<int64_t>(j, "tokens", file, i);
  e.ctx = field<int>(j, "ctx", file, i);
  e.batch = field<int>(j, "batch", file, i);
  e.inference = field<std::string>(j, "inference", file, i);
  e.kld_mean = field<double>(j, "kld_mean", file, i);
  e.kld_mean_stderr = field<double>(j, "kld_mean_stderr", file, i);
  e.kld_median = field<double>(j, "kld_median", file, i);
  e.kld_p99 = field<double>(j, "kld_p99", file, i);
  e.ppl = field<double>(j, "ppl", file, i);
  e.ref_ppl = field<double>(j, "ref_ppl", file, i);
  e.top1_agreement = field<double>(j, "top1_agreement", file, i);
  e.predicted_kld = field<double>(j, "predicted_kld", file, i);
  e.date = field<std::string>(j, "date", file, i);
  e.tool_version = field<std::string>(j, "tool_version", file, i);
  return e;
}

bool same_measurement(const EvaluationEntry& a, const EvaluationEntry& b) {
  return a.reference == b.reference && a.text == b.text && a.tokens == b.tokens && a.ctx == b.ctx &&
         a.batch == b.batch && a.inference == b.inference;
}

}  // namespace

fs::path evaluation_log_path(const fs::path& model) {
  if (fs::is_directory(model)) return model / kLogName;
  return fs::path(model.string() + "." + kLogName);
}

std::vector<EvaluationEntry> read_evaluation_log(const fs::path& model) {
  const fs::path file = evaluation_log_path(model);
  if (!fs::exists(file)) return {};
  json j;
  try {
    j = json::parse(read_text_file(file));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not an evaluation log: {}", file.string(), e.what()));
  }
  check(j.is_object() && j.contains("evaluations") && j.at("evaluations").is_array(),
        "{}: not an evaluation log (no \"evaluations\" array)", file.string());
  std::vector<EvaluationEntry> entries;
  for (const json& e : j.at("evaluations")) entries.push_back(from_json(e, file, entries.size()));
  return entries;
}

void record_evaluation(const fs::path& model, const EvaluationEntry& entry) {
  std::vector<EvaluationEntry> entries = read_evaluation_log(model);
  std::erase_if(entries, [&](const EvaluationEntry& e) { return same_measurement(e, entry); });
  entries.push_back(entry);
  json list = json::array();
  for (const EvaluationEntry& e : entries) list.push_back(to_json(e));
  write_file_atomic(evaluation_log_path(model), json{{"evaluations", list}}.dump(1) + "\n");
}

std::string utc_now_iso8601() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace qforge
