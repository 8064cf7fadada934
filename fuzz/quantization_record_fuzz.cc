// libFuzzer target: arbitrary bytes as a model's qforge quantization record. Any input must either
// give inference options the forward pass accepts or raise qforge::Error — never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qforge/core/error.h"
#include "qforge/io/quantization_record.h"

namespace {

struct Model {
  qforge::ModelConfig config;
  std::vector<qforge::LayerWeights> layers;
  Model() {
    config.num_layers = 2;
    config.hidden_size = 64;
    config.num_heads = 4;
    config.num_kv_heads = 2;
    config.head_dim = 16;
    config.intermediate_size = 128;
    for (int l = 0; l < config.num_layers; ++l) {
      qforge::LayerWeights lw;
      const std::string p = "model.layers." + std::to_string(l) + ".";
      lw.wq.name = p + "self_attn.q_proj.weight";
      lw.wk.name = p + "self_attn.k_proj.weight";
      lw.wv.name = p + "self_attn.v_proj.weight";
      lw.wo.name = p + "self_attn.o_proj.weight";
      lw.w_gate.name = p + "mlp.gate_proj.weight";
      lw.w_up.name = p + "mlp.up_proj.weight";
      lw.w_down.name = p + "mlp.down_proj.weight";
      layers.push_back(lw);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Model m;
  try {
    const qforge::InferenceOptions o =
        qforge::inference_from_record(qforge::parse_quantization_record(std::string_view(
                                          reinterpret_cast<const char*>(data), size)),
                                      m.config, m.layers);
    o.kv.validate(m.config);  // what the forward pass would check again
    if (!o.activation_groups.empty() &&
        static_cast<int>(o.activation_groups.size()) != m.config.num_layers)
      __builtin_trap();
  } catch (const qforge::Error&) {
  }
  return 0;
}
