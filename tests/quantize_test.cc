// End-to-end quantization of the embedded model: RTN and GPTQ into real formats, reloaded and
// compared against the original in one streaming pass; and every refusal happens before work.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/eval/compare.h"
#include "qforge/formats/format.h"
#include "qforge/io/model_loader.h"
#include "qforge/io/safetensors.h"
#include "qforge/quant/quantize_model.h"
#include "quantize_test_util.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

QuantizeOptions base(const std::string& name, const std::string& format, QuantMethod method) {
  return testing::embedded_quantize_options(name, format, method);
}

ComparisonResult compare_to_original(const fs::path& quantized) {
  return testing::compare_to_embedded(quantized);
}

TEST(Quantize, RtnInt8IsNearlyLossless) {
  const QuantizeOptions o = base("rtn8", "int8-channel", QuantMethod::RTN);
  quantize_model(o);
  EXPECT_TRUE(fs::exists(o.output / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(o.output.string() + ".tmp-qforge"));
  const ComparisonResult r = compare_to_original(o.output);
  EXPECT_LT(r.kld_mean, 1e-3);
  EXPECT_GT(r.top1_agreement, 0.97);
}

TEST(Quantize, KldPerWindowAddsUpToTheMeanAndGivesItsStandardError) {
  const QuantizeOptions o = base("rtn8_windows", "int8-channel", QuantMethod::RTN);
  quantize_model(o);
  const ComparisonResult r = compare_to_original(o.output);
  // compare_to_embedded: windows of 128 + 1 tokens overlapping by one.
  ASSERT_EQ(static_cast<int64_t>(r.window_klds.size()), (r.tokens + 127) / 128);
  int64_t tokens = 0;
  double sum = 0;
  for (const ClusterSum& w : r.window_klds) {
    tokens += w.tokens;
    sum += w.sum;
  }
  EXPECT_EQ(tokens, r.tokens);
  EXPECT_NEAR(sum / static_cast<double>(tokens), r.kld_mean, 1e-12 * r.kld_mean);
  EXPECT_GT(r.kld_mean_stderr, 0.0);
  EXPECT_LT(r.kld_mean_stderr, r.kld_mean);
  EXPECT_EQ(r.kld_mean_stderr, clustered_stderr(r.window_klds));
}

TEST(Quantize, SeveralModelsComparedInOnePassGetWhatEachGetsAlone) {
  const QuantizeOptions o8 = base("one_pass_int8", "int8-channel", QuantMethod::RTN);
  const QuantizeOptions o4 = base("one_pass_int4", "int4-g64", QuantMethod::RTN);
  quantize_model(o8);
  quantize_model(o4);
  LoadedModel q8 = load_model(o8.output), q4 = load_model(o4.output),
              ref = load_model(testing::embedded_model_dir());
  ThreadPool pool(2);
  Transformer t8(q8.config, q8.weights, pool, q8.inference),
      t4(q4.config, q4.weights, pool, q4.inference), tr(ref.config, ref.weights, pool),
      self(ref.config, ref.weights, pool);
  const std::vector<int32_t> ids = testing::sample_ids(ref);
  std::vector<Transformer*> models = {&t8, &t4, &self};
  const std::vector<ComparisonResult> together = compare_models(models, tr, ids, {100, 0});
  ASSERT_EQ(together.size(), 3u);
  // The same sums in the same order: equal to the last bit, whatever the thread count.
  for (size_t i = 0; i < 2; ++i) {
    const ComparisonResult alone = compare_models(*models[i], tr, ids, {100, 0});
    EXPECT_EQ(together[i].kld_mean, alone.kld_mean) << i;
    EXPECT_EQ(together[i].kld_median, alone.kld_median) << i;
    EXPECT_EQ(together[i].ppl, alone.ppl) << i;
    EXPECT_EQ(together[i].ref_ppl, alone.ref_ppl) << i;
    EXPECT_EQ(together[i].top1_agreement, alone.top1_agreement) << i;
    EXPECT_EQ(together[i].delta_p_mean, alone.delta_p_mean) << i;
    ASSERT_EQ(together[i].window_klds.size(), alone.window_klds.size());
    for (size_t w = 0; w < alone.window_klds.size(); ++w)
      EXPECT_EQ(together[i].window_klds[w].sum, alone.window_klds[w].sum);
  }
  // Each model is scored on its own logits: the int4 file loses more than the int8 one, and the
  // reference against itself loses nothing.
  EXPECT_GT(together[1].kld_mean, 2 * together[0].kld_mean);
  EXPECT_LT(together[2].kld_mean, 1e-12);
  EXPECT_EQ(together[2].top1_agreement, 1.0);
  EXPECT_NEAR(together[2].ppl, together[2].ref_ppl, 1e-9 * together[2].ppl);
}

TEST(Compare, TokenStatisticsMatchTheirDefinitionInDouble) {
  const std::vector<float> logits = {1.5f, -0.25f, 3.0f, 0.0f, 2.0f};
  const std::vector<float> ref = {1.0f, 0.5f, 2.5f, -1.0f, 2.75f};
  auto log_softmax = [](const std::vector<float>& x) {
    double s = 0;
    for (float v : x) s += std::exp(static_cast<double>(v));
    std::vector<double> out;
    for (float v : x) out.push_back(v - std::log(s));
    return out;
  };
  const std::vector<double> lq = log_softmax(logits), lr = log_softmax(ref);
  double kld = 0;
  for (size_t i = 0; i < lq.size(); ++i) kld += std::exp(lr[i]) * (lr[i] - lq[i]);
  const TokenComparison t = compare_token(logits, ref, 1);
  EXPECT_NEAR(t.kld, kld, 1e-15);
  EXPECT_NEAR(t.nll, -lq[1], 1e-14);
  EXPECT_NEAR(t.ref_nll, -lr[1], 1e-14);
  EXPECT_NEAR(t.p - t.ref_p, std::exp(lq[1]) - std::exp(lr[1]), 1e-15);
  EXPECT_FALSE(t.same_top1);  // the model's top token is 2, the reference's 4
  EXPECT_TRUE(compare_token(logits, logits, 0).same_top1);
  EXPECT_NEAR(compare_token(logits, logits, 0).kld, 0.0, 1e-16);
}

TEST(Quantize, GptqBeatsRtnOnEveryLayerObjectiveAndOnKld) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  for (const char* format : {"int4-g64", "q4_k"}) {
    QuantizeOptions g = base(std::string("gptq_") + format, format, QuantMethod::GPTQ);
    const QuantizeReport rep = quantize_model(g);
    ASSERT_EQ(rep.linears.size(), 28u);  // 4 layers x 7 linears
    for (const auto& l : rep.linears)
      EXPECT_LT(l.objective, l.objective_rtn) << format << " " << l.name;
    QuantizeOptions r = base(std::string("rtn_") + format, format, QuantMethod::RTN);
    quantize_model(r);
    const double kld_gptq = compare_to_original(g.output).kld_mean;
    const double kld_rtn = compare_to_original(r.output).kld_mean;
    EXPECT_LT(kld_gptq, kld_rtn) << format;
  }
}

// The loaded weight stays packed in its format (from either layout) and decodes to
// decode(encode(original)), exactly.
void expect_weight_is_rtn(const fs::path& dir, const std::string& format, int layer) {
  const LoadedModel q = load_model(dir), ref = load_model(testing::embedded_model_dir());
  const Matrix& wq = q.weights.layers[layer].wq;
  const Matrix& wr = ref.weights.layers[layer].wq;
  const formats::Format& f = formats::find_format(format);
  ASSERT_EQ(wq.format, &f) << format;
  const std::vector<float> w = wr.to_f32();
  std::vector<float> want(w.size());
  f.decode(f.encode(w.data(), wr.rows, wr.cols).data(), wr.rows, wr.cols, want.data());
  const std::vector<float> got = wq.to_f32();
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4)) << format;
}

TEST(Quantize, WritesCompressedTensorsWhereTheSchemeExists) {
  for (const char* format : {"int4-g64", "int8-channel", "fp8-e4m3", "nvfp4"}) {
    const QuantizeOptions o = base(std::string("ct_") + format, format, QuantMethod::RTN);
    const QuantizeReport rep = quantize_model(o);
    EXPECT_TRUE(rep.compressed_tensors) << format;
    const auto config = nlohmann::json::parse(read_text_file(o.output / "config.json"));
    const auto& qc = config["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "compressed-tensors") << format;
    EXPECT_EQ(qc["qforge"]["format"], format);
    const auto& weights = qc["config_groups"]["group_0"]["weights"];
    EXPECT_EQ(weights["num_bits"], std::string(format) == "nvfp4"      ? 4
                                   : std::string(format) == "int4-g64" ? 4
                                                                       : 8);
    const auto st = SafetensorsFile::open(o.output / "model.safetensors");
    const std::string q0 = "model.layers.0.self_attn.q_proj.";
    EXPECT_EQ(st->find(q0 + "weight.packed"), nullptr);
    EXPECT_NE(st->find(q0 + "weight_scale"), nullptr) << format;
    expect_weight_is_rtn(o.output, format, 1);
  }
  // A format without a compressed-tensors scheme keeps qforge's layout.
  const QuantizeOptions o = base("native_q4k", "q4_k", QuantMethod::RTN);
  EXPECT_FALSE(quantize_model(o).compressed_tensors);
  const auto config = nlohmann::json::parse(read_text_file(o.output / "config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "qforge");
  EXPECT_NE(SafetensorsFile::open(o.output / "model.safetensors")
                ->find("model.layers.0.self_attn.q_proj.weight.packed"),
            nullptr);
  expect_weight_is_rtn(o.output, "q4_k", 2);
}

TEST(Quantize, FallsBackOnlyWhenAskedAndReportsIt) {
  QuantizeOptions o = base("fallback", "int4-g64", QuantMethod::RTN);
  o.tensor_formats = {{"down_proj", "int4-g512"}};  // down_proj rows have 768 columns
  o.fallback = "int4-g128";
  QuantizeReport rep = quantize_model(o);
  ASSERT_EQ(rep.fallbacks.size(), 4u);  // one down_proj per layer
  EXPECT_EQ(rep.fallbacks[0].tensor, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(rep.fallbacks[0].format, "int4-g512");
  EXPECT_EQ(rep.fallbacks[0].fallback, "int4-g128");
  auto config = nlohmann::json::parse(read_text_file(o.output / "config.json"));
  const auto& tensors = config["quantization_config"]["qforge"]["tensors"];
  EXPECT_EQ(tensors["model.layers.0.mlp.down_proj.weight"]["format"], "int4-g128");
  EXPECT_EQ(config["quantization_config"]["qforge"]["fallbacks"].size(), 4u);

  o.fallback = "keep";
  o.overwrite = true;
  rep = quantize_model(o);
  EXPECT_EQ(rep.fallbacks[0].fallback, "keep");
  const auto st = SafetensorsFile::open(o.output / "model.safetensors");
  const TensorView* down = st->find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dtype, DType::BF16);  // left as it was
}

template <typename F>
void expect_refused(F&& f, const std::string& needle, const fs::path& output) {
  try {
    f();
    ADD_FAILURE() << "expected refusal: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(output));
  EXPECT_FALSE(fs::exists(output.string() + ".tmp-qforge"));
}

TEST(Quantize, RefusesBadRequestsBeforeWritingAnything) {
  QuantizeOptions o = base("bad", "int4-g128x", QuantMethod::RTN);
  expect_refused([&] { quantize_model(o); }, "unknown format 'int4-g128x'", o.output);
  o.format = "mxfp4";
  o.tensor_formats = {{"down_proj", "int4-g512"}};  // down_proj rows have 768 columns
  expect_refused([&] { quantize_model(o); }, "model.layers.0.mlp.down_proj.weight", o.output);
  o.tensor_formats.clear();
  o.method = QuantMethod::GPTQ;
  o.calib_tokens = 1 << 20;
  expect_refused([&] { quantize_model(o); }, "calibration text too short", o.output);
  o.calib_tokens = 384;
  const fs::path good_output = o.output;
  o.output = "/proc/qforge_cannot_write_here";
  expect_refused([&] { quantize_model(o); }, "cannot create", o.output);
  o.output = good_output;
  std::atomic<bool> stop{true};
  o.interrupted = &stop;
  expect_refused([&] { quantize_model(o); }, "interrupted", o.output);
}

}  // namespace
}  // namespace qforge
