#include "qforge/io/quantization_record.h"

#include <nlohmann/json.hpp>

#include "qforge/core/error.h"

namespace qforge {
InferenceOptions inference_from_record(std::string_view record, const ModelConfig& c,
                                       const std::vector<LayerWeights>& layers) {
  InferenceOptions o;
  try {
    const nlohmann::json r = nlohmann::json::parse(record);
    if (!r.is_object()) fail("the record is not a JSON object");
    static const nlohmann::json kAbsent;
    auto field = [&r](const char* key) -> const nlohmann::json& {
      const auto it = r.find(key);
      return it == r.end() ? kAbsent : *it;
    };
    const nlohmann::json& tensors = field("tensors");
    const nlohmann::json& a = field("activations");
    if (a.is_object()) {
      o.activations = formats::parse_activation_format(a.at("format").get<std::string>());
      check(static_cast<int>(layers.size()) == c.num_layers,
            "{} layers of weights for {} in config", layers.size(), c.num_layers);
      o.activation_groups.assign(c.num_layers, {});
      for (int l = 0; l < c.num_layers; ++l)
        for (int g = 0; g < kLinearGroups; ++g)
          for (const Matrix* m : linears_of_group(layers[l], static_cast<LinearGroup>(g))) {
            const auto it = tensors.is_object() ? tensors.find(m->name) : tensors.end();
            if (it != tensors.end() && it->is_object() && it->contains("input_activations"))
              o.activation_groups[l][g] = true;
          }
    }
    const nlohmann::json& kv = field("kv_cache");
    if (kv.is_object()) {
      o.kv.type = formats::parse_kv_type(kv.at("type").get<std::string>());
      o.kv.keys_per_channel = kv.at("keys").get<std::string>() == "channel";
      o.kv.keys_pre_rope = kv.at("keys_pre_rope").get<bool>();
      o.kv.group = kv.at("group").get<int>();
      o.kv.validate(c);
    }
    const nlohmann::json& rot = field("rotation");
    if (rot.is_object()) o.online_hadamard_down = rot.value("online_down", false);
  } catch (const nlohmann::json::exception& e) {
    fail("malformed qforge.quantization metadata: {}", e.what());
  }
  return o;
}

}  // namespace qforge
