#include "qforge/io/quantization_record.h"

#include "qforge/core/error.h"

namespace qforge {
namespace {

using json = nlohmann::json;

// Reads one JSON object's keys, refusing a missing required key or a present key of the wrong
// type with the key's full path ("kv_cache.group").
class Fields {
 public:
  Fields(const json& object, std::string path) : j_(object), path_(std::move(path)) {
    check(j_.is_object(), "quantization record: '{}' must be an object", where());
  }
  // The value under `key`, or nullptr when it is absent or null.
  const json* find(const char* key) const {
    const auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  const json& required(const char* key) const {
    const json* v = find(key);
    check(v != nullptr, "quantization record: key '{}' is missing", key_path(key));
    return *v;
  }
  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  Fields object(const char* key) const { return Fields(required(key), key_path(key)); }

  std::string string(const char* key, std::string fallback = {}) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    check(v->is_string(), "quantization record: key '{}' must be a string", key_path(key));
    return v->get<std::string>();
  }
  int64_t integer(const char* key, bool is_required = false) const {
    const json* v = is_required ? &required(key) : find(key);
    if (v == nullptr) return 0;
    check(v->is_number_integer(), "quantization record: key '{}' must be an integer",
          key_path(key));
    return v->get<int64_t>();
  }
  std::optional<double> number(const char* key) const {
    const json* v = find(key);
    if (v == nullptr) return std::nullopt;
    check(v->is_number(), "quantization record: key '{}' must be a number", key_path(key));
    return v->get<double>();
  }
  uint64_t unsigned_integer(const char* key) const {
    const json* v = find(key);
    if (v == nullptr) return 0;
    check(v->is_number_unsigned(), "quantization record: key '{}' must be an integer >= 0",
          key_path(key));
    return v->get<uint64_t>();
  }
  bool boolean(const char* key, bool fallback = false) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    check(v->is_boolean(), "quantization record: key '{}' must be true or false", key_path(key));
    return v->get<bool>();
  }

 private:
  std::string where() const { return path_.empty() ? "the record" : path_; }
  const json& j_;
  std::string path_;
};

TensorRecord tensor_from_json(const Fields& f) {
  TensorRecord t;
  t.format = f.string("format");
  check(!t.format.empty(), "quantization record: key '{}' is missing", f.key_path("format"));
  if (const json* shape = f.find("shape")) {
    check(shape->is_array() && shape->size() == 2 && (*shape)[0].is_number_integer() &&
              (*shape)[1].is_number_integer(),
          "quantization record: key '{}' must be [rows, cols]", f.key_path("shape"));
    t.rows = (*shape)[0].get<int64_t>();
    t.cols = (*shape)[1].get<int64_t>();
  }
  t.layout = f.string("layout", "qforge");
  check(t.layout == "qforge" || t.layout == "compressed-tensors",
        "quantization record: key '{}' is '{}', not qforge or compressed-tensors",
        f.key_path("layout"), t.layout);
  t.ct_format = f.string("ct_format");
  t.input_activations = f.string("input_activations");
  t.predicted_kld = f.number("predicted_kld").value_or(0.0);
  t.method = f.string("method");
  t.objective = f.number("objective");
  t.objective_rtn = f.number("objective_rtn");
  t.seconds = f.number("seconds");
  return t;
}

json tensor_to_json(const TensorRecord& t) {
  json j = {{"format", t.format}, {"layout", t.layout}};
  if (t.rows || t.cols) j["shape"] = {t.rows, t.cols};
  if (!t.ct_format.empty()) j["ct_format"] = t.ct_format;
  if (!t.input_activations.empty()) j["input_activations"] = t.input_activations;
  if (t.predicted_kld > 0) j["predicted_kld"] = t.predicted_kld;
  if (!t.method.empty()) j["method"] = t.method;
  if (t.objective) j["objective"] = *t.objective;
  if (t.objective_rtn) j["objective_rtn"] = *t.objective_rtn;
  if (t.seconds) j["seconds"] = *t.seconds;
  return j;
}

// An optional sub-object: absent or null gives nullopt, anything else is read by `read`.
template <typename T, typename Read>
std::optional<T> optional_object(const Fields& f, const char* key, Read read) {
  if (f.find(key) == nullptr) return std::nullopt;
  return read(f.object(key));
}

template <typename T, typename Write>
json optional_to_json(const std::optional<T>& v, Write write) {
  return v ? write(*v) : json(nullptr);
}

}  // namespace

TensorRecord TensorRecord::stored_as(std::string format, int64_t rows, int64_t cols) {
  TensorRecord t;
  t.format = std::move(format);
  t.rows = rows;
  t.cols = cols;
  return t;
}

ActivationsRecord ActivationsRecord::per_token(std::string format) {
  ActivationsRecord a;
  a.format = std::move(format);
  return a;
}

const TensorRecord* QuantizationRecord::find(const std::string& name) const {
  const auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

double QuantizationRecord::planned_kld() const {
  if (!plan.is_object()) return 0;
  const auto it = plan.find("predicted_kld");
  return it != plan.end() && it->is_number() ? it->get<double>() : 0.0;
}

json to_json(const QuantizationRecord& r) {
  json tensors = json::object();
  for (const auto& [name, t] : r.tensors) tensors[name] = tensor_to_json(t);
  json fallbacks = json::array();
  for (const FallbackRecord& fb : r.fallbacks)
    fallbacks.push_back({{"tensor", fb.tensor}, {"format", fb.format}, {"fallback", fb.fallback}});
  json j = {{"quant_method", r.quant_method}, {"tensors", tensors}};
  if (!r.format.empty()) j["format"] = r.format;
  if (!r.method.empty()) j["method"] = r.method;
  if (!r.tool_version.empty()) j["tool_version"] = r.tool_version;
  j["calibration"] = optional_to_json(r.calibration, [](const CalibrationRecord& c) {
    return json{
        {"file", c.file}, {"tokens", c.tokens}, {"fnv1a64", c.fnv1a64}, {"seq_len", c.seq_len}};
  });
  j["gptq"] = optional_to_json(r.gptq, [](const GptqRecord& g) {
    return json{{"damp", g.damp},
                {"block_size", g.block_size},
                {"act_order", g.act_order},
                {"refit_rounds", g.refit_rounds},
                {"sub_block_scales", g.sub_block_scales}};
  });
  j["smooth"] = optional_to_json(r.smooth_alpha, [](double a) { return json{{"alpha", a}}; });
  j["rotation"] = optional_to_json(r.rotation, [](const RotationRecord& rot) {
    return json{{"kind", rot.kind}, {"seed", rot.seed}, {"online_down", rot.online_down}};
  });
  j["activations"] = optional_to_json(r.activations, [](const ActivationsRecord& a) {
    return json{{"format", a.format}, {"strategy", a.strategy}, {"dynamic", a.dynamic}};
  });
  j["kv_cache"] = optional_to_json(r.kv_cache, [](const KvCacheRecord& kv) {
    return json{{"type", kv.type},
                {"keys", kv.keys},
                {"keys_pre_rope", kv.keys_pre_rope},
                {"group", kv.group}};
  });
  j["fallbacks"] = fallbacks;
  if (!r.plan.is_null()) j["plan"] = r.plan;
  if (!r.awq.is_null()) j["awq"] = r.awq;
  return j;
}

QuantizationRecord record_from_json(const json& j) {
  const Fields f(j, "");
  QuantizationRecord r;
  r.quant_method = f.string("quant_method", "qforge");
  r.format = f.string("format");
  r.method = f.string("method");
  r.tool_version = f.string("tool_version");
  r.calibration = optional_object<CalibrationRecord>(f, "calibration", [](const Fields& c) {
    return CalibrationRecord{c.string("file"), c.integer("tokens"), c.string("fnv1a64"),
                             c.integer("seq_len")};
  });
  r.gptq = optional_object<GptqRecord>(f, "gptq", [](const Fields& g) {
    return GptqRecord{g.number("damp").value_or(0.0), g.integer("block_size"),
                      g.boolean("act_order"), g.integer("refit_rounds"),
                      // absent in records written before 2026-12-07, which did not do it
                      g.boolean("sub_block_scales", false)};
  });
  r.smooth_alpha = optional_object<double>(
      f, "smooth", [](const Fields& s) { return s.number("alpha").value_or(0.0); });
  r.rotation = optional_object<RotationRecord>(f, "rotation", [](const Fields& rot) {
    return RotationRecord{rot.string("kind"), rot.unsigned_integer("seed"),
                          rot.boolean("online_down")};
  });
  r.activations = optional_object<ActivationsRecord>(f, "activations", [](const Fields& a) {
    ActivationsRecord out{a.string("format"), a.string("strategy", "token"),
                          a.boolean("dynamic", true)};
    check(!out.format.empty(), "quantization record: key '{}' is missing", a.key_path("format"));
    return out;
  });
  r.kv_cache = optional_object<KvCacheRecord>(f, "kv_cache", [](const Fields& kv) {
    KvCacheRecord out{kv.string("type"), kv.string("keys", "token"), kv.boolean("keys_pre_rope"),
                      kv.integer("group", /*is_required=*/true)};
    check(!out.type.empty(), "quantization record: key '{}' is missing", kv.key_path("type"));
    return out;
  });
  if (const json* fallbacks = f.find("fallbacks")) {
    check(fallbacks->is_array(), "quantization record: key 'fallbacks' must be an array");
    for (size_t i = 0; i < fallbacks->size(); ++i) {
      const Fields fb((*fallbacks)[i], fmt::format("fallbacks.{}", i));
      r.fallbacks.push_back({fb.string("tensor"), fb.string("format"), fb.string("fallback")});
    }
  }
  const Fields tensors = f.object("tensors");
  for (const auto& [name, t] : f.required("tensors").items())
    r.tensors[name] = tensor_from_json(Fields(t, tensors.key_path(name)));
  if (const json* plan = f.find("plan")) r.plan = *plan;
  if (const json* awq = f.find("awq")) r.awq = *awq;
  return r;
}

QuantizationRecord parse_quantization_record(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("quantization record: malformed JSON: {}", e.what());
  }
  return record_from_json(j);
}

InferenceOptions inference_from_record(const QuantizationRecord& r, const ModelConfig& c,
                                       const std::vector<LayerWeights>& layers) {
  InferenceOptions o;
  if (r.activations) {
    o.activations = formats::parse_activation_format(r.activations->format);
    check(static_cast<int>(layers.size()) == c.num_layers, "{} layers of weights for {} in config",
          layers.size(), c.num_layers);
    o.activation_groups.assign(c.num_layers, {});
    for (int l = 0; l < c.num_layers; ++l)
      for (int g = 0; g < kLinearGroups; ++g)
        for (const Matrix* m : linears_of_group(layers[l], static_cast<LinearGroup>(g))) {
          const TensorRecord* t = r.find(m->name);
          if (t != nullptr && !t->input_activations.empty()) o.activation_groups[l][g] = true;
        }
  }
  if (r.kv_cache) {
    o.kv.type = formats::parse_kv_type(r.kv_cache->type);
    o.kv.keys_per_channel = r.kv_cache->keys == "channel";
    o.kv.keys_pre_rope = r.kv_cache->keys_pre_rope;
    o.kv.group = static_cast<int>(r.kv_cache->group);
    o.kv.validate(c);
  }
  if (r.rotation) o.online_hadamard_down = r.rotation->online_down;
  return o;
}

}  // namespace qforge
