// End-to-end `quantize` with outlier methods on the embedded model: rotation written through the
// streaming writer reproduces the original model when nothing is quantized; AWQ beats RTN;
// W8A8 with SmoothQuant is recorded for vLLM and simulated at load; the KV cache format and
// quantized embeddings travel with the model.
#include <algorithm>
#include <cmath>
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
  return testing::embedded_quantize_options("t_" + name, format, method);
}

using testing::sample_ids;

ComparisonResult compare_to_original(const fs::path& dir) {
  return testing::compare_to_embedded(dir);
}

nlohmann::json config_of(const fs::path& dir) {
  return nlohmann::json::parse(read_text_file(dir / "config.json"));
}

TEST(QuantizeTransforms, RotationAloneReproducesTheOriginalModel) {
  for (bool online : {false, true}) {
    QuantizeOptions o = base(online ? "rot_online" : "rot", "int4-g64", QuantMethod::RTN);
    o.keep = {"."};  // every linear kept: only the rotation is written
    o.rotate = RotationOptions{online, 7};
    quantize_model(o);
    const auto config = config_of(o.output);
    EXPECT_EQ(config["tie_word_embeddings"], false);  // the head now carries the final norm
    EXPECT_EQ(config["quantization_config"]["rotation"]["online_down"], online);
    LoadedModel q = load_model(o.output), ref = load_model(testing::embedded_model_dir());
    EXPECT_EQ(q.inference.online_hadamard_down, online);
    ThreadPool pool(2);
    Transformer tq(q.config, q.weights, pool, q.inference), tr(ref.config, ref.weights, pool);
    std::vector<int32_t> ids = sample_ids(ref);
    ids.resize(48);
    KVCache cq = tq.new_cache(48), cr = tr.new_cache(48);
    std::vector<float> a(ids.size() * ref.config.vocab_size), b(a.size());
    tq.forward(ids, 0, cq, a.data(), true);
    tr.forward(ids, 0, cr, b.data(), true);
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    EXPECT_LT(worst, 2e-3) << "online " << online;  // see equivalent_transforms_test.cc
  }
}

TEST(QuantizeTransforms, AwqBeatsRtnAndRecordsItsChoices) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  QuantizeOptions rtn = base("rtn4", "int4-g64", QuantMethod::RTN);
  quantize_model(rtn);
  QuantizeOptions awq = base("awq4", "int4-g64", QuantMethod::RTN);
  awq.awq = true;
  const QuantizeReport r = quantize_model(awq);
  EXPECT_EQ(r.method, "awq");
  ASSERT_EQ(r.awq.size(), 16u);  // 4 layers x 4 groups
  for (const auto& a : r.awq) EXPECT_LE(a.objective, a.objective_identity);
  const auto record = config_of(awq.output)["quantization_config"]["qforge"];
  EXPECT_EQ(record["method"], "awq");
  EXPECT_EQ(record["awq"]["groups"].size(), 16u);
  EXPECT_LT(compare_to_original(awq.output).kld_mean, compare_to_original(rtn.output).kld_mean);
}

TEST(QuantizeTransforms, AwqGptqKeepsScalesOnlyWhereGptqProfits) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  QuantizeOptions o = base("awq_gptq", "int3-g64", QuantMethod::GPTQ);
  o.awq = true;
  o.awq_clip = false;
  const QuantizeReport r = quantize_model(o);
  EXPECT_EQ(r.method, "awq+gptq");
  int checked = 0;
  for (const auto& a : r.awq) {
    if (a.gptq_objective_identity == 0) {  // AWQ found nothing better than identity for RTN
      EXPECT_EQ(a.alpha, -1);
      continue;
    }
    ++checked;
    if (a.gptq_rejected) {
      EXPECT_EQ(a.alpha, -1);
      EXPECT_GE(a.gptq_objective, a.gptq_objective_identity);
    } else {
      EXPECT_GE(a.alpha, 0);
      EXPECT_LT(a.gptq_objective, a.gptq_objective_identity);
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(QuantizeTransforms, AwqWorksWithEveryFormatFamily) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  // One format per family: integer (asymmetric), minifloat, MX, NVFP4, NF4, GGUF k-quant.
  for (const char* format : {"int3-asym-g64", "fp8-e4m3", "mxfp4", "nvfp4", "nf4", "q4_k"}) {
    QuantizeOptions o = base(std::string("awq_") + format, format, QuantMethod::RTN);
    o.awq = true;
    o.awq_options.grid = 4;
    o.awq_options.clip_grid = 10;  // ratios 1.0, 0.9, ..., 0.6: the test is about coverage
    o.calib_tokens = 128;
    const QuantizeReport r = quantize_model(o);
    ASSERT_EQ(r.awq.size(), 16u) << format;
    for (const auto& a : r.awq) EXPECT_LE(a.objective, a.objective_identity) << format;
    EXPECT_LT(compare_to_original(o.output).kld_mean, 0.5) << format;  // it reloads and runs
  }
}

TEST(QuantizeTransforms, W8A8WithSmoothQuantIsRecordedForVllmAndSimulatedAtLoad) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  QuantizeOptions plain = base("w8a8", "int8-channel", QuantMethod::RTN);
  plain.activations = formats::ActivationFormat::Int8;
  quantize_model(plain);
  QuantizeOptions smooth = plain;
  smooth.output = base("w8a8_sq", "int8-channel", QuantMethod::RTN).output;
  smooth.smooth_alpha = 0.5;
  quantize_model(smooth);
  const auto qc = config_of(smooth.output)["quantization_config"];
  ASSERT_EQ(qc["quant_method"], "compressed-tensors");
  const auto& act = qc["config_groups"]["group_0"]["input_activations"];
  EXPECT_EQ(act["num_bits"], 8);
  EXPECT_EQ(act["type"], "int");
  EXPECT_EQ(act["strategy"], "token");
  EXPECT_EQ(act["dynamic"], true);
  EXPECT_EQ(qc["format"], "int-quantized");  // the layout vLLM's W8A8 int8 scheme reads
  const auto st = SafetensorsFile::open(smooth.output / "model.safetensors");
  const TensorView* w0 = st->find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(w0, nullptr);
  EXPECT_EQ(w0->dtype, DType::I8);
  EXPECT_EQ(qc["qforge"]["smooth"]["alpha"], 0.5);
  const LoadedModel q = load_model(smooth.output);
  EXPECT_EQ(q.inference.activations, formats::ActivationFormat::Int8);
  for (const auto& groups : q.inference.activation_groups)
    for (bool g : groups) EXPECT_TRUE(g);
  const ComparisonResult with = compare_to_original(smooth.output);
  EXPECT_LT(with.kld_mean, compare_to_original(plain.output).kld_mean);
  EXPECT_GT(with.top1_agreement, 0.97);
}

TEST(QuantizeTransforms, ScalingAfterAnOnlineRotationLeavesDownProjAlone) {
  // down_proj's input is rotated online: a SmoothQuant / AWQ scale cannot be folded around it. With
  // near-lossless int8 weights, smoothing must not change the rotated model's quality.
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  QuantizeOptions rot = base("rot_int8", "int8-channel", QuantMethod::RTN);
  rot.rotate = RotationOptions{true, 3};
  quantize_model(rot);
  QuantizeOptions smooth = base("rot_int8_smooth", "int8-channel", QuantMethod::RTN);
  smooth.rotate = rot.rotate;
  smooth.smooth_alpha = 0.5;
  quantize_model(smooth);
  QuantizeOptions awq = base("rot_int8_awq", "int8-channel", QuantMethod::RTN);
  awq.rotate = rot.rotate;
  awq.awq = true;
  awq.awq_options.grid = 4;
  const QuantizeReport r = quantize_model(awq);
  for (const auto& a : r.awq) {
    if (a.group == LinearGroup::MlpAct) {
      EXPECT_EQ(a.alpha, -1);
    }
  }
  const double base_kld = compare_to_original(rot.output).kld_mean;
  EXPECT_LT(base_kld, 1e-3);
  EXPECT_LT(compare_to_original(smooth.output).kld_mean, 2 * base_kld + 1e-4);
  EXPECT_LT(compare_to_original(awq.output).kld_mean, 2 * base_kld + 1e-4);
}

TEST(QuantizeTransforms, KvCacheFormatTravelsWithTheModel) {
  QuantizeOptions o = base("kv", "int8-channel", QuantMethod::RTN);
  o.kv = {formats::KvType::Int4, true, true, 32};
  quantize_model(o);
  const LoadedModel q = load_model(o.output);
  EXPECT_EQ(q.inference.kv.type, formats::KvType::Int4);
  EXPECT_TRUE(q.inference.kv.keys_per_channel);
  EXPECT_TRUE(q.inference.kv.keys_pre_rope);
  EXPECT_EQ(q.inference.kv.group, 32);
  EXPECT_EQ(config_of(o.output)["quantization_config"]["qforge"]["kv_cache"]["type"], "int4");
}

TEST(QuantizeTransforms, EmbeddingIsQuantizedOnlyWhenNamed) {
  QuantizeOptions o = base("embed", "int8-channel", QuantMethod::RTN);
  o.tensor_formats = {{"embed_tokens", "q8_0"}};
  quantize_model(o);
  const auto st = SafetensorsFile::open(o.output / "model.safetensors");
  EXPECT_NE(st->find("model.embed_tokens.weight.packed"), nullptr);
  EXPECT_EQ(st->find("model.embed_tokens.weight"), nullptr);
  const ComparisonResult r = compare_to_original(o.output);
  EXPECT_LT(r.kld_mean, 2e-3);
  EXPECT_EQ(config_of(o.output)["quantization_config"]["quant_method"], "qforge");

  QuantizeOptions plain = base("embed_plain", "int8-channel", QuantMethod::RTN);
  quantize_model(plain);
  EXPECT_NE(
      SafetensorsFile::open(plain.output / "model.safetensors")->find("model.embed_tokens.weight"),
      nullptr);
}

// The embedded model's table (tied: embedding and head) as written, decoded, and the original.
struct Table {
  std::vector<float> got, original;
  std::vector<std::byte> packed;
  int64_t rows = 0, cols = 0;
};
Table table_of(const fs::path& dir) {
  const LoadedModel q = load_model(dir), ref = load_model(testing::embedded_model_dir());
  Table t{q.weights.embedding.to_f32(),
          ref.weights.embedding.to_f32(),
          {},
          q.weights.embedding.rows,
          q.weights.embedding.cols};
  t.packed.assign(q.weights.embedding.data,
                  q.weights.embedding.data + q.weights.embedding.nbytes());
  return t;
}

TEST(QuantizeHead, GptqQuantizesATiedTableAsTheHeadWithTheFinalNormedHessian) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  QuantizeOptions o = base("head_gptq", "q4_k", QuantMethod::GPTQ);
  o.tensor_formats = {{"embed_tokens", "q4_k"}};
  quantize_model(o);
  const auto rec =
      config_of(o.output)["quantization_config"]["tensors"]["model.embed_tokens.weight"];
  EXPECT_EQ(rec["method"], "gptq");
  EXPECT_LT(rec["objective"].get<double>(), 0.9 * rec["objective_rtn"].get<double>());
  // The head's values are the ones written: the model runs and stays close to the original.
  EXPECT_LT(compare_to_original(o.output).kld_mean, 0.05);
}

TEST(QuantizeHead, EmbeddingRowsOfUnseenTokensKeepTheirRtnBytesAndSeenRowsGetNoWorse) {
  // SmoothQuant + RTN: calibrated, but the table is quantized as an embedding (no GPTQ head).
  QuantizeOptions o = base("embed_seen", "q4_k", QuantMethod::RTN);
  o.smooth_alpha = 0.5;
  o.tensor_formats = {{"embed_tokens", "q4_k"}};
  quantize_model(o);
  const Table t = table_of(o.output);
  const formats::Format& f = formats::find_format("q4_k");
  const std::vector<std::byte> rtn = f.encode(t.original.data(), t.rows, t.cols);
  std::vector<float> rtn_values(t.original.size());
  f.decode(rtn.data(), t.rows, t.cols, rtn_values.data());
  const LoadedModel m = load_model(testing::embedded_model_dir());
  std::vector<uint8_t> seen(static_cast<size_t>(t.rows), 0);
  const std::vector<int32_t> ids = sample_ids(m);
  for (size_t i = 0; i < 384 && i < ids.size(); ++i) seen[static_cast<size_t>(ids[i])] = 1;
  const size_t rb = f.row_bytes(t.cols);
  int64_t better = 0, n_seen = 0;
  for (int64_t r = 0; r < t.rows; ++r) {
    if (!seen[r]) {
      ASSERT_TRUE(
          std::equal(rtn.begin() + r * rb, rtn.begin() + (r + 1) * rb, t.packed.begin() + r * rb))
          << "row " << r;
      continue;
    }
    double e_rtn = 0, e_got = 0;
    for (int64_t c = 0; c < t.cols; ++c) {
      const double x = t.original[r * t.cols + c];
      e_rtn += (rtn_values[r * t.cols + c] - x) * (rtn_values[r * t.cols + c] - x);
      e_got += (t.got[r * t.cols + c] - x) * (t.got[r * t.cols + c] - x);
    }
    EXPECT_LE(e_got, e_rtn * (1 + 1e-9)) << "row " << r;
    better += e_got < e_rtn;
    ++n_seen;
  }
  EXPECT_GT(n_seen, 50);
  EXPECT_GT(better, n_seen / 4) << "the weighted search improved too few rows";
}

// A model directory whose safetensors metadata carries `record` as its quantization record.
fs::path model_with_record(const std::string& name, const std::string& record) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("qforge_record_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path src = testing::embedded_model_dir();
  for (const char* f : {"config.json", "tokenizer.json"}) fs::copy_file(src / f, dir / f);
  const auto st = SafetensorsFile::open(src / "model.safetensors");
  std::vector<TensorToWrite> tensors;
  for (const TensorView& t : st->tensors())
    tensors.push_back({t.name, t.dtype, t.shape, {t.data, t.data + t.nbytes()}});
  write_safetensors(dir / "model.safetensors", tensors, {{"qforge.quantization", record}});
  return dir;
}

TEST(QuantizeTransforms, MalformedInferenceRecordsAreRefusedNamingTheModel) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"tensors": {}, "kv_cache": {"type": "int5", "keys": "token", "keys_pre_rope": false, "group": 64}})",
       "unknown KV cache type 'int5'"},
      {R"({"tensors": {}, "kv_cache": {"type": "int4", "keys": "token", "keys_pre_rope": false, "group": 48}})",
       "does not divide head_dim 64"},
      {R"({"tensors": {}, "kv_cache": {"type": "int4"}})", "malformed"},
      {R"({"tensors": {}, "activations": {"format": "int3"}})", "unknown activation format"},
      {R"({"tensors": {}, "activations": {"format": 8}})", "malformed"}};
  int i = 0;
  for (const auto& [record, needle] : cases) {
    const fs::path dir = model_with_record(std::to_string(i++), record);
    try {
      load_model(dir);
      ADD_FAILURE() << record;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
    }
  }
  // A well-formed record is applied.
  const fs::path ok = model_with_record(
      "ok",
      R"({"tensors": {}, "kv_cache": {"type": "fp8", "keys": "token", "keys_pre_rope": false, "group": 32}})");
  EXPECT_EQ(load_model(ok).inference.kv.type, formats::KvType::Fp8E4M3);
}

TEST(QuantizeTransforms, MethodsThatNeedCalibrationRefuseWithoutIt) {
  QuantizeOptions o = base("nocalib", "int8-channel", QuantMethod::RTN);
  o.calib.clear();
  o.smooth_alpha = 0.5;
  try {
    quantize_model(o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SmoothQuant needs calibration text"), std::string::npos)
        << e.what();
  }
  o.smooth_alpha.reset();
  o.awq = true;
  EXPECT_THROW(quantize_model(o), Error);
  EXPECT_FALSE(fs::exists(o.output));
}

}  // namespace
}  // namespace qforge
