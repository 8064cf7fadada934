// Equivalent transforms leave an unquantized model's function unchanged: QuaRot rotation (with and
// without the online Hadamard before down_proj) and per-channel input scaling folded into norms,
// v_proj and up_proj (SmoothQuant / AWQ), on the embedded model and every zoo architecture.
//
// Tolerance: the logits of these models are O(10); an fp32 forward pass differs from float64 by
// ~1e-5 (golden_logits_test), and a rotated model adds one O(d)-term rounding per weight, so
// differences stay below ~1e-4. A wrong fold or a rotation applied on the wrong side moves logits
// by O(1). 2e-3 is far from both.
#include <cmath>
#include <random>

#include "qforge/core/error.h"
#include "qforge/io/model_loader.h"
#include "qforge/model/transformer.h"
#include "qforge/quant/channel_scaling.h"
#include "qforge/quant/rotation.h"
#include "test_util.h"

namespace qforge {
namespace {

constexpr double kTolerance = 2e-3;

std::vector<float> logits_of(const LoadedModel& m, const ModelWeights& w,
                             const InferenceOptions& o) {
  ThreadPool pool(2);
  Transformer model(m.config, w, pool, o);
  std::vector<int32_t> ids;
  for (int i = 0; i < 24; ++i) ids.push_back((i * 7919 + 13) % m.config.vocab_size);
  KVCache cache = model.new_cache(24);
  std::vector<float> logits(ids.size() * m.config.vocab_size);
  model.forward(ids, 0, cache, logits.data(), true);
  return logits;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  return worst;
}

std::vector<std::filesystem::path> models() {
  std::vector<std::filesystem::path> out = {testing::embedded_model_dir()};
  if (auto shared = testing::shared_dir())
    for (const char* z : {"llama", "mistral", "qwen2", "qwen3", "gemma", "phi3"})
      out.push_back(*shared / "zoo" / z);
  return out;
}

LoadedModel load(const std::filesystem::path& dir) {
  LoadOptions lo;
  lo.require_tokenizer = false;
  return load_model(dir, lo);
}

TEST(EquivalentTransforms, RotationLeavesLogitsUnchanged) {
  for (const auto& dir : models()) {
    LoadedModel m = load(dir);
    if (!kernels::HadamardTransform::exists(m.config.hidden_size) ||
        !kernels::HadamardTransform::exists(m.config.head_dim)) {
      ADD_FAILURE() << dir << ": no Hadamard construction for its widths";
      continue;
    }
    const std::vector<float> before = logits_of(m, m.weights, {});
    for (bool online : {false, true}) {
      if (online && !kernels::HadamardTransform::exists(m.config.intermediate_size)) continue;
      ModelWeights w = m.weights;
      WeightArena arena;
      rotate_model(w, ModelRotation(m.config, {online, 42}), arena);
      InferenceOptions o;
      o.online_hadamard_down = online;
      const std::vector<float> after = logits_of(m, w, o);
      EXPECT_LT(max_abs_diff(before, after), kTolerance) << dir << " online " << online;
      // And it did something: the weights really changed.
      const Matrix& q0 = m.weights.layers[0].wq;
      std::vector<float> original(static_cast<size_t>(q0.cols));
      convert_to_f32(q0.dtype, q0.data, original.data(), original.size());
      const float* rotated = reinterpret_cast<const float*>(w.layers[0].wq.data);
      EXPECT_GT(max_abs_diff(original, {rotated, rotated + q0.cols}), 1e-3) << dir;
    }
  }
}

TEST(EquivalentTransforms, RotationSpreadsAnOutlierChannel) {
  // Why rotate: a residual vector with one huge channel becomes flat (max/rms from sqrt(d) to ~1).
  const LoadedModel m = load(testing::embedded_model_dir());
  const ModelRotation rot(m.config, {false, 1});
  const int d = m.config.hidden_size;
  std::vector<float> x(d, 0.01f);
  x[17] = 100.0f;
  rot.rotate_residual(x.data(), 1);
  double ss = 0, mx = 0;
  for (float v : x) {
    ss += double(v) * v;
    mx = std::max(mx, double(std::fabs(v)));
  }
  EXPECT_LT(mx / std::sqrt(ss / d), 1.5);
}

TEST(EquivalentTransforms, ChannelScalingOfEveryGroupLeavesLogitsUnchanged) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (const auto& dir : models()) {
    LoadedModel m = load(dir);
    const std::vector<float> before = logits_of(m, m.weights, {});
    ModelWeights w = m.weights;
    WeightArena arena;
    for (LayerWeights& lw : w.layers)
      for (int g = 0; g < kLinearGroups; ++g) {
        std::vector<float> s(
            static_cast<size_t>(scale_count(m.config, static_cast<LinearGroup>(g))));
        for (float& v : s) v = std::exp(dist(rng));  // scales from 0.14 to 7.4
        scale_group_input(m.config, lw, static_cast<LinearGroup>(g), s, arena);
      }
    EXPECT_LT(max_abs_diff(before, logits_of(m, w, {})), kTolerance) << dir;
  }
}

TEST(EquivalentTransforms, ImpossibleWidthsAndScalesAreRefused) {
  LoadedModel m = load(testing::embedded_model_dir());
  ModelConfig c = m.config;
  c.hidden_size = 2752;  // 43 * 64: no Paley order (or product of two) is 43 * 2^k
  try {
    ModelRotation rot(c, {});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size"), std::string::npos) << e.what();
  }
  WeightArena arena;
  std::vector<float> s(static_cast<size_t>(m.config.hidden_size), 1.0f);
  s[3] = 0.0f;
  EXPECT_THROW(scale_group_input(m.config, m.weights.layers[0], LinearGroup::AttnIn, s, arena),
               Error);
}

}  // namespace
}  // namespace qforge
