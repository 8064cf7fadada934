// quantize_layerwise's passes: each group's statistics pass resumes the layer where the last one
// stopped, keeping o_proj's and (within LayerwiseOptions::activation_cache_bytes) down_proj's
// inputs. Whether down_proj's inputs are kept or computed again, and whichever groups are
// quantized, GPTQ must get the same Hessians and so write the same values, bit for bit.
#include "qforge/quant/layerwise.h"

#include <map>
#include <string>
#include <vector>

#include "qforge/formats/format.h"
#include "qforge/io/model_loader.h"
#include "qforge/quant/format_quantizer.h"
#include "test_util.h"

namespace qforge {
namespace {

using Values = std::map<std::string, std::vector<float>>;

std::vector<std::vector<int32_t>> calibration(const LoadedModel& m) {
  const std::vector<int32_t> ids = m.tokenizer->encode(
      "Once upon a time there was a little robot who wanted to learn how to paint. Every morning "
      "it rolled to the window, looked at the sky and tried to mix the colour of the clouds. The "
      "cat next door watched it with great interest and some suspicion, as cats do.",
      false);
  const size_t len = 24;
  std::vector<std::vector<int32_t>> seqs;
  for (size_t s = 0; s + len <= ids.size() && seqs.size() < 3; s += len)
    seqs.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(s),
                      ids.begin() + static_cast<std::ptrdiff_t>(s + len));
  return seqs;
}

// GPTQ int4-g32 on the linears whose name contains one of `names` (all when empty).
Values quantize(size_t cache_bytes, const std::vector<std::string>& names) {
  LoadedModel m = load_model(testing::embedded_model_dir());
  ThreadPool pool(2);
  const formats::Format& format = formats::find_format("int4-g32");
  auto chosen = [&](const Matrix& w) {
    if (names.empty()) return true;
    for (const std::string& n : names)
      if (w.name.find(n) != std::string::npos) return true;
    return false;
  };
  const QuantizerFactory factory = [&](const Matrix& w) -> std::unique_ptr<ColumnQuantizer> {
    if (!chosen(w)) return nullptr;
    const std::vector<float> f = w.to_f32();
    return std::make_unique<FormatColumnQuantizer>(format.make_quantizer(f.data(), w.rows, w.cols));
  };
  Values values;
  const QuantizedSink sink = [&](const Matrix& w, const std::vector<float>& v,
                                 const ColumnQuantizer&,
                                 const LinearResult&) { values[w.name] = v; };
  LayerwiseOptions o;
  o.activation_cache_bytes = cache_bytes;
  quantize_layerwise(m.config, m.weights, calibration(m), factory, sink, o, pool);
  return values;
}

TEST(Layerwise, KeepingDownProjInputsOrComputingThemAgainGivesTheSameValues) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  const Values kept = quantize(size_t{1} << 30, {}), recomputed = quantize(0, {});
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept, recomputed);
}

// down_proj alone, against the plain definition: its Hessian from whole forward passes of the
// model as quantized so far (layer 0: the original model; layer 1: after layer 0's down_proj),
// then GPTQ. The layerwise run reaches down_proj's input in one pass from the layer's start,
// keeps it, and finishes the layer from there: both must give these values bit for bit.
TEST(Layerwise, DownProjAloneGetsTheHessianOfWholeForwardPasses) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  for (const size_t cache : {size_t{1} << 30, size_t{0}}) {
    SCOPED_TRACE(cache);
    const Values layerwise = quantize(cache, {"down_proj"});
    LoadedModel m = load_model(testing::embedded_model_dir());
    ASSERT_EQ(layerwise.size(), static_cast<size_t>(m.config.num_layers));  // down_proj only
    ThreadPool pool(2);
    const formats::Format& format = formats::find_format("int4-g32");
    const std::vector<std::vector<int32_t>> seqs = calibration(m);
    const int len = static_cast<int>(seqs.front().size());
    Transformer model(m.config, m.weights, pool);
    KVCache kv = model.new_cache(len, true);
    std::vector<std::vector<float>> x(seqs.size());
    for (size_t s = 0; s < seqs.size(); ++s) {
      x[s].resize(static_cast<size_t>(len) * m.config.hidden_size);
      model.embed(seqs[s], x[s].data());
    }
    std::vector<std::vector<float>> kept;  // quantized values the model computes with
    kept.reserve(2);
    for (int l = 0; l < 2; ++l) {
      Matrix& down = m.weights.layers[l].w_down;
      std::unique_ptr<InputStatistics> stats;
      ForwardHooks hooks;
      hooks.on_input = [&](int, LinearGroup g, const float* in, int n, int dim) {
        if (g != LinearGroup::MlpAct) return;
        if (!stats) stats = std::make_unique<InputStatistics>(dim);
        stats->add(in, n, &pool);
      };
      for (const auto& xs : x) {
        std::vector<float> copy = xs;
        model.run_layer(l, copy.data(), len, 0, kv, &hooks);
      }
      const std::vector<float> w = down.to_f32();
      FormatColumnQuantizer q(format.make_quantizer(w.data(), down.rows, down.cols));
      const GptqResult g = gptq_quantize(w.data(), down.rows, down.cols, stats->hessian(), q);
      EXPECT_EQ(g.q, layerwise.at(down.name)) << down.name;
      kept.push_back(g.q);
      down = Matrix{down.name, DType::F32, down.rows, down.cols,
                    reinterpret_cast<const std::byte*>(kept.back().data())};
      model.refresh_layer(l);
      for (auto& xs : x) model.run_layer(l, xs.data(), len, 0, kv);
    }
  }
}

}  // namespace
}  // namespace qforge
