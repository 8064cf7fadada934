// W8A8 and W4A8 for real: when decoding, a quantized model with --act int8 multiplies int8
// activations by its integer weights in integers (kernels::InputQuant::Int8PerToken). It must
// compute what the f32 simulation computes (the same per-token rounding, then exact products):
// the two differ only by f32 summation order and the final scale multiplication, so the logits'
// KL-divergence stays far below 1e-5 and the top token is the same at every position.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/q8_dot.h"
#include "qforge/eval/compare.h"
#include "qforge/kernels/kernels.h"
#include "quantize_test_util.h"

namespace qforge {
namespace {

// Logits of `tokens` fed one at a time (the decode path), [tokens][vocab].
std::vector<float> decode_logits(const LoadedModel& m, const std::vector<int32_t>& tokens) {
  ThreadPool pool(2);
  Transformer model(m.config, m.weights, pool, m.inference);
  KVCache cache = model.new_cache(static_cast<int>(tokens.size()));
  const size_t vocab = static_cast<size_t>(m.config.vocab_size);
  std::vector<float> logits(tokens.size() * vocab);
  for (size_t i = 0; i < tokens.size(); ++i)
    model.forward({&tokens[i], 1}, static_cast<int>(i), cache, logits.data() + i * vocab, false);
  return logits;
}

void expect_real_equals_simulated(const char* format) {
  if (!kernels::q8::enabled()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU (or QFORGE_NO_VNNI)";
  QuantizeOptions o = testing::embedded_quantize_options(std::string("w8a8_real_") + format, format,
                                                         QuantMethod::RTN);
  o.activations = formats::ActivationFormat::Int8;
  quantize_model(o);
  const LoadedModel m = load_model(o.output);
  ASSERT_TRUE(kernels::runs_int8_activations(m.weights.layers[0].wq, 1)) << format;
  std::vector<int32_t> ids = testing::sample_ids(m);
  ids.resize(96);
  const std::vector<float> real = decode_logits(m, ids);
  kernels::q8::set_enabled(false);  // the f32 simulation of the same model
  ASSERT_FALSE(kernels::runs_int8_activations(m.weights.layers[0].wq, 1));
  const std::vector<float> simulated = decode_logits(m, ids);
  kernels::q8::set_enabled(true);
  const size_t vocab = static_cast<size_t>(m.config.vocab_size);
  double kld = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const TokenComparison t = compare_token({real.data() + i * vocab, vocab},
                                            {simulated.data() + i * vocab, vocab}, ids[i + 1]);
    EXPECT_TRUE(t.same_top1) << format << " position " << i;
    kld += t.kld;
  }
  EXPECT_LT(kld / static_cast<double>(ids.size() - 1), 1e-5) << format;
  EXPECT_NE(real, simulated) << format << ": the integer path did not run";
}

TEST(IntegerActivations, W8A8RealEqualsTheSimulation) {
  expect_real_equals_simulated("int8-channel");
}

TEST(IntegerActivations, W4A8RealEqualsTheSimulation) {
  expect_real_equals_simulated("int4-g64");
}

}  // namespace
}  // namespace qforge
