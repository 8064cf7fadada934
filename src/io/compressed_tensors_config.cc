#include "qforge/io/compressed_tensors_config.h"

#include <fmt/format.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <vector>

#include "qforge/core/error.h"
#include "qforge/formats/format.h"

namespace qforge {
namespace {

using nlohmann::json;

// std::regex backtracks, so a repeated group that can itself repeat or branch ("(a*)*", "(a|aa)+")
// or a long run of wildcards (".*.*.*...x") can take exponential or huge polynomial time on one
// module name (the fuzzer found such a config hanging the loader). Real configs use flat patterns
// (".*lm_head", "model\.layers\.\d+\.mlp\.down_proj"); anything else is refused by name.
void check_regex_is_flat(const std::string& pattern) {
  constexpr int kMaxRepeats = 4;
  std::vector<bool> inner{false};  // per open group: it repeats or branches inside
  int repeats = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    const bool quantifier_next =
        i + 1 < pattern.size() &&
        (pattern[i + 1] == '*' || pattern[i + 1] == '+' || pattern[i + 1] == '{');
    if (c == '\\') {
      ++i;
    } else if (c == '[') {  // a character class: its contents are literal
      for (++i; i < pattern.size() && pattern[i] != ']'; ++i)
        if (pattern[i] == '\\') ++i;
    } else if (c == '(') {
      inner.push_back(false);
    } else if (c == ')' && inner.size() > 1) {
      const bool repeats_inside = inner.back();
      inner.pop_back();
      check(!(repeats_inside && quantifier_next),
            "compressed-tensors quantization_config: the \"re:\" target '{}' repeats a group that "
            "repeats or branches inside (exponential matching); use a flat pattern",
            pattern);
      inner.back() = inner.back() || repeats_inside || quantifier_next;
    } else if (c == '*' || c == '+' || c == '{' || c == '|') {
      inner.back() = true;
      if (c != '|') ++repeats;
    }
  }
  check(repeats <= kMaxRepeats,
        "compressed-tensors quantization_config: the \"re:\" target '{}' has {} repetitions (at "
        "most {} are accepted)",
        pattern, repeats, kMaxRepeats);
}

// compressed-tensors' target rule: a class name ("Linear": every quantized module here is one),
// an exact module name, or "re:" and a regex that must match from the start of the name.
bool targets(const json& list, const std::string& module) {
  if (!list.is_array()) return false;
  for (const json& t : list) {
    const std::string s = t.get<std::string>();
    if (s == "Linear" || s == module) return true;
    if (!s.starts_with("re:")) continue;
    check_regex_is_flat(s.substr(3));
    if (std::regex_search(module, std::regex(s.substr(3)), std::regex_constants::match_continuous))
      return true;
  }
  return false;
}

std::string scale_suffix(DType t) {
  return t == DType::F16 ? "fp16" : t == DType::BF16 ? "bf16" : t == DType::F32 ? "fp32" : "";
}

// The qforge format of a group's "weights" for a module whose weight_scale has dtype `scale`.
std::string weight_format(const json& w, const std::string& ct_format, DType scale,
                          const std::string& tensor) {
  const int bits = w.at("num_bits").get<int>();
  const std::string type = w.at("type").get<std::string>();
  const std::string strategy = w.at("strategy").get<std::string>();
  const json& g = w.value("group_size", json());
  const int64_t group = g.is_number_integer() ? g.get<int64_t>() : 0;
  check(w.value("symmetric", true),
        "tensor '{}': asymmetric weights (weight_zero_point) are not read by qforge", tensor);
  check(!w.value("dynamic", false), "tensor '{}': dynamic weight quantization is not supported",
        tensor);
  const json& actorder = w.value("actorder", json());
  check(!actorder.is_string() || actorder.get<std::string>() != "group",
        "tensor '{}': activation-ordered groups (actorder \"group\", weight_g_idx) are not "
        "supported",
        tensor);
  if (ct_format == "nvfp4-pack-quantized") {
    check(type == "float" && bits == 4 && strategy == "tensor_group" && group == 16,
          "tensor '{}': nvfp4-pack-quantized needs float 4-bit tensor_group 16 weights", tensor);
    return "nvfp4";
  }
  const std::string suffix = scale_suffix(scale);
  check(!suffix.empty(), "tensor '{}': weight_scale has dtype {}; expected F16, BF16 or F32",
        tensor, dtype_name(scale));
  std::string granularity;
  if (strategy == "group" && group > 0)
    granularity = fmt::format("g{}", group);
  else if (strategy == "channel" || strategy == "tensor")
    granularity = strategy;
  else
    fail("tensor '{}': weight strategy '{}' (group_size {}) is not supported", tensor, strategy,
         group);
  if (type == "int" && (bits == 4 || bits == 8) && ct_format == "pack-quantized")
    return fmt::format("int{}-{}-{}", bits, granularity, suffix);
  if (type == "int" && bits == 8 && ct_format == "int-quantized")
    return fmt::format("int8-{}-{}", granularity, suffix);
  if (type == "float" && bits == 8 && ct_format == "float-quantized" && group == 0)
    return fmt::format("fp8-e4m3-{}-{}", granularity, suffix);
  fail("tensor '{}': {} {}-bit weights in checkpoint format '{}' are not supported", tensor, type,
       bits, ct_format);
}

// "int8" / "fp8-e4m3" for dynamic symmetric per-token 8-bit input activations, "" for none.
std::string activation_format(const json& a, const std::string& tensor) {
  if (a.is_null()) return "";
  const std::string type = a.at("type").get<std::string>();
  check(a.value("dynamic", false) == true && a.value("strategy", std::string()) == "token" &&
            a.value("symmetric", true) && a.at("num_bits").get<int>() == 8 &&
            (type == "int" || type == "float"),
        "tensor '{}': input activations {} are not supported (qforge runs dynamic symmetric "
        "per-token 8-bit only)",
        tensor, a.dump());
  return type == "int" ? "int8" : "fp8-e4m3";
}

}  // namespace

QuantizationRecord record_from_compressed_tensors_config(
    std::string_view config, const std::map<std::string, DType>& tensors) {
  try {
    const json c = json::parse(config);
    check(c.is_object() && c.value("quant_method", std::string()) == "compressed-tensors",
          "quantization_config is not a compressed-tensors config");
    const json& groups = c.at("config_groups");
    check(groups.is_object(), "config_groups is not an object");
    const json& kv = c.value("kv_cache_scheme", json());
    check(kv.is_null(), "kv_cache_scheme {} is not supported", kv.dump());
    for (const char* key : {"transform_config", "sparsity_config"}) {
      const json& t = c.value(key, json());
      check(t.is_null() || t.empty(), "{} {} is not supported", key, t.dump());
    }
    const json ignore = c.value("ignore", json::array());

    // Quantized modules: those with compressed-tensors' weight tensors, or whose weight is stored
    // in a quantized dtype (its scale must be there too).
    std::set<std::string> modules;
    for (const auto& [name, dtype] : tensors) {
      for (const char* suffix : {".weight_packed", ".weight_scale", ".weight_zero_point"})
        if (name.ends_with(suffix)) modules.insert(name.substr(0, name.size() - strlen(suffix)));
      if (name.ends_with(".weight") && (dtype == DType::I8 || dtype == DType::F8_E4M3))
        modules.insert(name.substr(0, name.size() - 7));
    }

    QuantizationRecord record;
    record.quant_method = "compressed-tensors";
    std::string act_format;
    bool first = true;
    for (const std::string& m : modules) {
      const std::string tensor = m + ".weight";
      check(!targets(ignore, m),
            "tensor '{}': quantized, but its module is in quantization_config's ignore list",
            tensor);
      const json* group = nullptr;
      for (const auto& [key, g] : groups.items())
        if (g.is_object() && targets(g.value("targets", json()), m)) {
          group = &g;
          break;
        }
      check(group != nullptr, "tensor '{}': no config group of quantization_config targets '{}'",
            tensor, m);
      const std::string ct_format = group->value("format", c.value("format", std::string()));
      const auto scale = tensors.find(m + ".weight_scale");
      check(scale != tensors.end(), "tensor '{}': missing tensor '{}.weight_scale'", tensor, m);
      check(!tensors.contains(m + ".weight_zero_point"),
            "tensor '{}': asymmetric weights (weight_zero_point) are not read by qforge", tensor);
      check(!tensors.contains(m + ".weight_g_idx"),
            "tensor '{}': activation-ordered groups (weight_g_idx) are not supported", tensor);
      check(group->value("output_activations", json()).is_null(),
            "tensor '{}': output activation quantization is not supported", tensor);
      const std::string format =
          weight_format(group->at("weights"), ct_format, scale->second, tensor);
      formats::find_format(format);  // throws for a combination qforge has no format for
      const std::string act = activation_format(group->value("input_activations", json()), tensor);
      check(first || act == act_format,
            "tensor '{}': input activations '{}' differ from another module's '{}' (qforge runs "
            "one activation format per model)",
            tensor, act, act_format);
      first = false;
      act_format = act;
      TensorRecord& t = record.tensors[tensor] = TensorRecord::stored_as(format);
      t.layout = "compressed-tensors";
      t.ct_format = ct_format;
      t.input_activations = act;
    }
    if (!act_format.empty()) record.activations = ActivationsRecord::per_token(act_format);
    return record;
  } catch (const json::exception& e) {
    fail("malformed compressed-tensors quantization_config: {}", e.what());
  } catch (const std::regex_error& e) {
    fail("compressed-tensors quantization_config: a \"re:\" target is not a valid regex: {}",
         e.what());
  }
}

}  // namespace qforge
