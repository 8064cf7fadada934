// End-to-end quantization of the embedded model: RTN and GPTQ into real formats, reloaded and
// compared against the original in one streaming pass; and every refusal happens before work.
#include <filesystem>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/eval/compare.h"
#include "qforge/io/model_loader.h"
#include "qforge/quant/quantize_model.h"
#include "test_util.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

fs::path out_dir(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / ("qforge_quant_" + name);
  fs::remove_all(p);
  return p;
}

ComparisonResult compare_to_original(const fs::path& quantized) {
  LoadedModel q = load_model(quantized), ref = load_model(testing::embedded_model_dir());
  ThreadPool pool(2);
  Transformer tq(q.config, q.weights, pool), tr(ref.config, ref.weights, pool);
  const auto ids =
      ref.tokenizer->encode(read_text_file(testing::source_dir() / "data/sample.txt"), false);
  return compare_models(tq, tr, ids, {128, 0});
}

QuantizeOptions base(const std::string& name, const std::string& format, QuantMethod method) {
  QuantizeOptions o;
  o.model = testing::embedded_model_dir();
  o.output = out_dir(name);
  o.format = format;
  o.method = method;
  o.calib = testing::source_dir() / "data/sample.txt";
  o.calib_tokens = 384;
  o.seq_len = 64;
  return o;
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
  std::atomic<bool> stop{true};
  o.interrupted = &stop;
  expect_refused([&] { quantize_model(o); }, "interrupted", o.output);
}

}  // namespace
}  // namespace qforge
