#include "quant/quantized_output.h"

#include <fmt/format.h>

#include <set>

namespace qforge::output {
namespace {

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

// compressed-tensors' description of dynamic per-token activation quantization.
nlohmann::json ct_input_activations(formats::ActivationFormat a) {
  if (a == formats::ActivationFormat::None) return nullptr;
  return {{"num_bits", 8},         {"type", a == formats::ActivationFormat::Int8 ? "int" : "float"},
          {"symmetric", true},     {"strategy", "token"},
          {"group_size", nullptr}, {"dynamic", true},
          {"actorder", nullptr},   {"observer", nullptr}};
}

}  // namespace

std::string module_of(const std::string& weight_name) {
  const std::string suffix = ".weight";
  return weight_name.ends_with(suffix) ? weight_name.substr(0, weight_name.size() - suffix.size())
                                       : weight_name;
}

nlohmann::json compressed_tensors_config(const std::map<std::string, TensorPlan>& plan,
                                         const std::vector<std::string>& unquantized_linears,
                                         formats::ActivationFormat activations,
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
        {"input_activations", ct_input_activations(activations)},
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

}  // namespace qforge::output
