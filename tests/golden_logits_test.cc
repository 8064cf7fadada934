// The forward pass against golden fp32 logits from the reference implementation (Hugging Face
// transformers), for every architecture in ../shared/zoo, the trained models in ../shared/models,
// and the embedded model (always present, so a fresh clone tests the forward pass too).
//
// Tolerance 2e-3 absolute: the reference and we both compute in fp32 but sum in different orders;
// with logits of magnitude ~10 and hidden sizes <= 1536 the accumulated rounding stays near 1e-4,
// so 2e-3 leaves headroom while catching any real bug (a wrong RoPE layout or norm is >= 1e-1).
#include <cmath>
#include <cstring>

#include "qforge/io/model_loader.h"
#include "qforge/io/safetensors.h"
#include "qforge/model/sampler.h"
#include "qforge/model/transformer.h"
#include "test_util.h"

namespace qforge {
namespace {

constexpr float kTolerance = 2e-3f;

struct GoldenStats {
  float max_abs_diff = 0;
  int argmax_mismatches = 0;
  int positions = 0;
};

std::vector<int32_t> read_i32(const TensorView& t) {
  EXPECT_EQ(t.dtype, DType::I32) << t.name;
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

GoldenStats compare_with_reference(const std::filesystem::path& dir) {
  LoadOptions lo;
  lo.require_tokenizer = false;
  LoadedModel m = load_model(dir, lo);
  auto ref = SafetensorsFile::open(dir / "reference_logits.safetensors");
  const std::vector<int32_t> tokens = read_i32(*ref->find("tokens"));
  std::vector<int32_t> positions;
  if (const TensorView* p = ref->find("positions")) positions = read_i32(*p);
  if (positions.empty())
    for (size_t i = 0; i < tokens.size(); ++i) positions.push_back(static_cast<int32_t>(i));
  const TensorView& ref_logits = *ref->find("logits");
  const int vocab = m.config.vocab_size;
  EXPECT_EQ(ref_logits.dim(1), vocab);
  const std::vector<float> expected = ref_logits.to_f32();

  ThreadPool pool(2);
  Transformer model(m.config, m.weights, pool);
  KVCache cache(m.config, static_cast<int>(tokens.size()));
  std::vector<float> logits(tokens.size() * vocab);
  model.forward(tokens, 0, cache, logits.data(), true);

  GoldenStats s;
  for (size_t k = 0; k < positions.size(); ++k) {
    const float* got = &logits[static_cast<size_t>(positions[k]) * vocab];
    const float* want = &expected[k * vocab];
    for (int i = 0; i < vocab; ++i)
      s.max_abs_diff = std::max(s.max_abs_diff, std::fabs(got[i] - want[i]));
    if (argmax({got, static_cast<size_t>(vocab)}) != argmax({want, static_cast<size_t>(vocab)}))
      ++s.argmax_mismatches;
    ++s.positions;
  }
  return s;
}

void expect_matches_reference(const std::filesystem::path& dir) {
  const GoldenStats s = compare_with_reference(dir);
  EXPECT_GT(s.positions, 0);
  EXPECT_LE(s.max_abs_diff, kTolerance) << dir;
  EXPECT_EQ(s.argmax_mismatches, 0) << dir;
  std::printf("%s: %d positions, max |delta| = %.3g\n", dir.filename().c_str(), s.positions,
              s.max_abs_diff);
}

TEST(GoldenLogits, EmbeddedTinyLlamaMatchesReference) {
  expect_matches_reference(testing::embedded_model_dir());
}

class ZooGoldenLogits : public ::testing::TestWithParam<const char*> {};

TEST_P(ZooGoldenLogits, MatchesReference) {
  QFORGE_REQUIRE_SHARED(shared);
  expect_matches_reference(shared / "zoo" / GetParam());
}

INSTANTIATE_TEST_SUITE_P(Architectures, ZooGoldenLogits,
                         ::testing::Values("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3"));

class TrainedGoldenLogits : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainedGoldenLogits, MatchesReference) {
  QFORGE_REQUIRE_SHARED(shared);
  expect_matches_reference(shared / "models" / GetParam());
}

INSTANTIATE_TEST_SUITE_P(Models, TrainedGoldenLogits,
                         ::testing::Values("llama-sp-58m", "qwen-bpe-31m", "tiny-llama-bpe-7m"));

TEST(Decode, IncrementalDecodeMatchesPrefill) {
  // Feeding tokens one at a time through the KV cache must give the same logits as one prefill.
  LoadOptions lo;
  lo.require_tokenizer = false;
  LoadedModel m = load_model(testing::embedded_model_dir(), lo);
  ThreadPool pool(2);
  Transformer model(m.config, m.weights, pool);
  const std::vector<int32_t> tokens = {5, 17, 300, 42, 9000, 1, 77, 1234};
  const int vocab = m.config.vocab_size;
  KVCache a(m.config, 8), b(m.config, 8);
  std::vector<float> all(tokens.size() * vocab), one(vocab);
  model.forward(tokens, 0, a, all.data(), true);
  float worst = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    model.forward({&tokens[t], 1}, static_cast<int>(t), b, one.data(), false);
    for (int i = 0; i < vocab; ++i) worst = std::max(worst, std::fabs(one[i] - all[t * vocab + i]));
  }
  EXPECT_LE(worst, 1e-4f);
}

TEST(Stories260K, GreedyFromBosPrintsTheKnownStory) {
  QFORGE_REQUIRE_SHARED(shared);
  LoadedModel m = load_model(shared / "models" / "stories260K" / "stories260K.bin");
  ThreadPool pool(1);
  Transformer model(m.config, m.weights, pool);
  std::vector<int32_t> ids = {m.tokenizer->bos_id()};
  KVCache cache(m.config, m.config.max_position_embeddings);
  std::vector<float> logits(m.config.vocab_size);
  for (int i = 0; i < 160; ++i) {
    model.forward({&ids.back(), 1}, static_cast<int>(ids.size()) - 1, cache, logits.data(), false);
    ids.push_back(argmax(logits));
  }
  const std::string text = m.tokenizer->decode(ids);
  const std::string expected =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";
  EXPECT_EQ(text.substr(0, expected.size()), expected) << text;
}

}  // namespace
}  // namespace qforge
