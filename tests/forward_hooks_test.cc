// ForwardHooks, as calibration uses them: a layer stopped after any group's input and resumed
// there (ForwardHooks::start_at) ends exactly where an uninterrupted run of the layer ends, bit
// for bit, with and without simulated int8 activations; and the inputs reported on the way are the
// uninterrupted run's.
#include <vector>

#include "qforge/core/error.h"
#include "qforge/io/model_loader.h"
#include "qforge/model/transformer.h"
#include "test_util.h"

namespace qforge {
namespace {

constexpr LinearGroup kGroups[] = {LinearGroup::AttnIn, LinearGroup::AttnOut, LinearGroup::MlpIn,
                                   LinearGroup::MlpAct};

std::vector<int32_t> some_tokens(const LoadedModel& m, int n) {
  std::vector<int32_t> ids = m.tokenizer->encode(
      "The quick brown fox jumps over the lazy dog, and the dog, not amused, chases the fox "
      "around the farm until both of them are tired.",
      false);
  ids.resize(static_cast<size_t>(n));
  return ids;
}

// The inputs of every group of one layer, as on_input reports them.
struct Reported {
  std::vector<std::vector<float>> input = std::vector<std::vector<float>>(kLinearGroups);
  ForwardHooks hooks() {
    ForwardHooks h;
    h.on_input = [this](int, LinearGroup g, const float* in, int n, int dim) {
      input[static_cast<size_t>(g)].assign(in, in + static_cast<size_t>(n) * dim);
    };
    return h;
  }
};

void resumed_runs_match_the_uninterrupted_run(const InferenceOptions& options) {
  const LoadedModel m = load_model(testing::embedded_model_dir());
  ThreadPool pool(2);
  Transformer model(m.config, m.weights, pool, options);
  const std::vector<int32_t> ids = some_tokens(m, 11);
  const int n = static_cast<int>(ids.size());
  KVCache cache = model.new_cache(n);
  std::vector<float> layer_input(ids.size() * m.config.hidden_size);
  model.embed(ids, layer_input.data());
  for (int l = 0; l < m.config.num_layers; ++l) {
    SCOPED_TRACE(l);
    Reported whole;
    ForwardHooks watch = whole.hooks();
    std::vector<float> expected = layer_input;
    model.run_layer(l, expected.data(), n, 0, cache, &watch);

    for (const LinearGroup g : kGroups) {
      SCOPED_TRACE(static_cast<int>(g));
      // Stop after g's input, as calibration does, keeping what the run left in x.
      Reported first;
      ForwardHooks stop = first.hooks();
      stop.stop_after = g;
      std::vector<float> x = layer_input;
      model.run_layer(l, x.data(), n, 0, cache, &stop);
      EXPECT_EQ(first.input[static_cast<size_t>(g)], whole.input[static_cast<size_t>(g)]);
      // Resume at g with the reported input and finish the layer.
      Reported rest;
      ForwardHooks resume = rest.hooks();
      resume.start_at = g;
      resume.start_input = first.input[static_cast<size_t>(g)].data();
      model.run_layer(l, x.data(), n, 0, cache, &resume);
      EXPECT_EQ(x, expected);
      for (const LinearGroup later : kGroups) {
        if (later <= g) continue;
        EXPECT_EQ(rest.input[static_cast<size_t>(later)], whole.input[static_cast<size_t>(later)]);
      }
    }
    layer_input = expected;
  }
}

TEST(ForwardHooks, ALayerResumedAfterAnyGroupEndsWhereTheUninterruptedRunEnds) {
  resumed_runs_match_the_uninterrupted_run({});
}

// With int8 activations the stored input is already on its grid: resuming must not round it again.
TEST(ForwardHooks, ResumingWithSimulatedInt8ActivationsDoesNotRequantizeTheStoredInput) {
  InferenceOptions o;
  o.activations = formats::ActivationFormat::Int8;
  resumed_runs_match_the_uninterrupted_run(o);
}

TEST(ForwardHooks, ResumingWithoutTheInputItNeedsIsRefused) {
  const LoadedModel m = load_model(testing::embedded_model_dir());
  ThreadPool pool(1);
  Transformer model(m.config, m.weights, pool);
  KVCache cache = model.new_cache(4);
  std::vector<float> x(4 * static_cast<size_t>(m.config.hidden_size), 0.1f);
  ForwardHooks resume;
  resume.start_at = LinearGroup::MlpAct;
  EXPECT_THROW(model.run_layer(0, x.data(), 4, 0, cache, &resume), Error);
}

}  // namespace
}  // namespace qforge
