#include "qforge/quant/plan.h"

#include <set>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/formats/format.h"

namespace qforge {

std::vector<QuantizableTensor> quantizable_tensors(const ModelWeights& weights, bool untie) {
  using Kind = QuantizableTensor::Kind;
  std::vector<QuantizableTensor> out;
  auto add = [&](const Matrix& m, const std::string& name, Kind kind, int layer, LinearGroup g) {
    out.push_back({name, kind, layer, g, m.rows, m.cols, m.dtype, &m});
  };
  add(weights.embedding, weights.embedding.name, Kind::Embedding, -1, LinearGroup::AttnIn);
  for (int l = 0; l < static_cast<int>(weights.layers.size()); ++l)
    for (int g = 0; g < kLinearGroups; ++g)
      for (const Matrix* w : linears_of_group(weights.layers[l], static_cast<LinearGroup>(g)))
        add(*w, w->name, Kind::Linear, l, static_cast<LinearGroup>(g));
  const bool tied = weights.lm_head.data == weights.embedding.data;
  if (!tied || untie) add(weights.lm_head, "lm_head.weight", Kind::Head, -1, LinearGroup::AttnIn);
  return out;
}

void check_plan_fits(const QuantPlan& plan, const std::vector<QuantizableTensor>& tensors,
                     const std::string& source) {
  std::map<std::string, const QuantizableTensor*> by_name;
  for (const auto& t : tensors) by_name[t.name] = &t;
  for (const auto& [name, p] : plan.tensors) {
    auto it = by_name.find(name);
    check(it != by_name.end(),
          "{}: tensor {} is not a quantizable tensor of this model (a plan "
          "for another model?)",
          source, name);
    const QuantizableTensor& t = *it->second;
    check(t.rows == p.rows && t.cols == p.cols,
          "{}: tensor {} is [{}, {}] in the plan but [{}, {}] in the model (a plan for another "
          "model?)",
          source, name, p.rows, p.cols, t.rows, t.cols);
  }
}

nlohmann::json plan_to_json(const QuantPlan& plan) {
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& [name, p] : plan.tensors) {
    tensors[name] = {{"format", p.format},
                     {"shape", {p.rows, p.cols}},
                     {"bytes", p.bytes},
                     {"predicted_kld", p.predicted_kld},
                     {"layer_objective", p.layer_objective}};
  }
  return {{"predicted_kld", plan.predicted_kld},
          {"method", plan.method},
          {"budget",
           {{"request", plan.budget.request},
            {"max_bytes", plan.budget.max_bytes},
            {"used_bytes", plan.budget.used_bytes},
            {"bits_per_weight", plan.budget.bits_per_weight}}},
          {"tensors", tensors}};
}

QuantPlan plan_from_json(const nlohmann::json& j, const std::string& source) {
  QuantPlan plan;
  try {
    check(j.is_object() && j.contains("tensors") && j["tensors"].is_object(),
          "{}: not a plan (no \"tensors\" object)", source);
    for (const auto& [name, t] : j["tensors"].items()) {
      PlannedTensor p;
      p.format = t.at("format").get<std::string>();
      const auto& shape = t.at("shape");
      check(shape.is_array() && shape.size() == 2, "{}: tensor {}: shape must be [rows, cols]",
            source, name);
      p.rows = shape[0].get<int64_t>();
      p.cols = shape[1].get<int64_t>();
      p.bytes = t.value("bytes", uint64_t{0});
      p.predicted_kld = t.value("predicted_kld", 0.0);
      p.layer_objective = t.value("layer_objective", 0.0);
      try {
        formats::find_format(p.format);
      } catch (const Error& e) {
        fail("{}: tensor {}: {}", source, name, e.what());
      }
      plan.tensors[name] = p;
    }
    plan.predicted_kld = j.value("predicted_kld", 0.0);
    plan.method = j.value("method", std::string());
    if (j.contains("budget") && j["budget"].is_object()) {
      const auto& b = j["budget"];
      plan.budget = {b.value("request", std::string()), b.value("max_bytes", uint64_t{0}),
                     b.value("used_bytes", uint64_t{0}), b.value("bits_per_weight", 0.0)};
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed plan: {}", source, e.what());
  }
  return plan;
}

QuantPlan read_plan(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  return plan_from_json(j, path.string());
}

void write_plan(const std::filesystem::path& path, const QuantPlan& plan) {
  write_file_atomic(path, plan_to_json(plan).dump(2) + "\n");
}

}  // namespace qforge
