// io/quantization_record: the typed record `qforge quantize` writes and every reader reads. Its
// JSON round-trips exactly, and a record with a missing or ill-typed key is refused naming the
// key's path.
#include "qforge/io/quantization_record.h"

#include <gtest/gtest.h>

#include "qforge/core/error.h"

namespace qforge {
namespace {

using json = nlohmann::json;

// A record with every field set to something other than its default.
QuantizationRecord full_record() {
  QuantizationRecord r;
  r.format = "q4_k_m";
  r.method = "awq+gptq";
  r.tool_version = "0.9.1";
  r.calibration = CalibrationRecord{"calib.txt", 65536, "0123456789abcdef", 512};
  r.gptq = GptqRecord{0.01, 128, true, 2};
  r.smooth_alpha = 0.5;
  r.rotation = RotationRecord{"hadamard", 18446744073709551615ull, true};
  r.activations = ActivationsRecord{"int8", "token", true};
  r.kv_cache = KvCacheRecord{"int4", "channel", true, 32};
  r.fallbacks = {{"model.layers.0.mlp.down_proj.weight", "q4_k", "q5_0"}};
  TensorRecord& q = r.tensors["model.layers.0.self_attn.q_proj.weight"] =
      TensorRecord::stored_as("int4-g128-bf16", 64, 256);
  q.layout = "compressed-tensors";
  q.ct_format = "pack-quantized";
  q.input_activations = "int8";
  q.predicted_kld = 0.0125;
  q.objective = 1.5;
  q.objective_rtn = 2.25;
  TensorRecord& head = r.tensors["lm_head.weight"] = TensorRecord::stored_as("q6_k", 32000, 512);
  head.method = "gptq";
  head.objective = 3.0;
  head.objective_rtn = 4.0;
  head.seconds = 12.5;
  r.plan = {{"predicted_kld", 0.031}, {"bpw", 4.5}, {"file", "plan.json"}};
  r.awq = {{"grid", 20}, {"groups", json::array({{{"layer", 0}, {"alpha", 0.5}}})}};
  return r;
}

void expect_refused(const std::string& text, const std::string& needle) {
  try {
    parse_quantization_record(text);
    ADD_FAILURE() << "accepted " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << e.what() << " (wanted: " << needle << ")";
  }
}

TEST(QuantizationRecord, EveryFieldSurvivesTheJsonRoundTrip) {
  const QuantizationRecord r = full_record();
  const json j = to_json(r);
  const QuantizationRecord back = parse_quantization_record(j.dump());
  EXPECT_EQ(to_json(back), j);
  // Field by field, so that a key both sides drop would not pass unseen.
  EXPECT_EQ(back.format, "q4_k_m");
  EXPECT_EQ(back.method, "awq+gptq");
  EXPECT_EQ(back.tool_version, "0.9.1");
  ASSERT_TRUE(back.calibration && back.gptq && back.rotation && back.activations && back.kv_cache);
  EXPECT_EQ(back.calibration->tokens, 65536);
  EXPECT_EQ(back.calibration->fnv1a64, "0123456789abcdef");
  EXPECT_EQ(back.gptq->refit_rounds, 2);
  EXPECT_TRUE(back.gptq->act_order);
  EXPECT_EQ(back.smooth_alpha, 0.5);
  EXPECT_EQ(back.rotation->seed, 18446744073709551615ull);  // the whole uint64 range
  EXPECT_EQ(back.kv_cache->group, 32);
  EXPECT_EQ(back.kv_cache->keys, "channel");
  ASSERT_EQ(back.fallbacks.size(), 1u);
  EXPECT_EQ(back.fallbacks[0].fallback, "q5_0");
  const TensorRecord* q = back.find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->rows, 64);
  EXPECT_EQ(q->cols, 256);
  EXPECT_EQ(q->layout, "compressed-tensors");
  EXPECT_EQ(q->ct_format, "pack-quantized");
  EXPECT_EQ(q->input_activations, "int8");
  EXPECT_EQ(q->predicted_kld, 0.0125);
  EXPECT_EQ(q->objective_rtn, 2.25);
  EXPECT_FALSE(q->seconds);
  const TensorRecord* head = back.find("lm_head.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->method, "gptq");
  EXPECT_EQ(head->seconds, 12.5);
  EXPECT_EQ(head->layout, "qforge");
  EXPECT_EQ(back.find("model.norm.weight"), nullptr);
  EXPECT_EQ(back.planned_kld(), 0.031);
  EXPECT_EQ(back.awq["groups"][0]["alpha"], 0.5);
}

TEST(QuantizationRecord, AMinimalRecordReadsWithDefaults) {
  // What a GGUF source or a compressed-tensors config gives: tensors and their formats only.
  const QuantizationRecord r = parse_quantization_record(
      R"({"tensors": {"w": {"format": "q4_k"}}, "smooth": null, "kv_cache": null})");
  EXPECT_EQ(r.quant_method, "qforge");
  EXPECT_FALSE(r.calibration || r.gptq || r.smooth_alpha || r.rotation || r.activations ||
               r.kv_cache);
  ASSERT_NE(r.find("w"), nullptr);
  EXPECT_EQ(r.find("w")->layout, "qforge");
  EXPECT_EQ(r.find("w")->rows, 0);
  EXPECT_EQ(r.planned_kld(), 0.0);
  EXPECT_EQ(to_json(parse_quantization_record(to_json(r).dump())), to_json(r));
}

TEST(QuantizationRecord, AMissingRequiredKeyIsRefusedByName) {
  expect_refused(R"({"method": "gptq"})", "key 'tensors' is missing");
  expect_refused(R"({"tensors": {"lm_head.weight": {"layout": "qforge"}}})",
                 "key 'tensors.lm_head.weight.format' is missing");
  expect_refused(R"({"tensors": {}, "kv_cache": {"type": "int4", "keys": "token"}})",
                 "key 'kv_cache.group' is missing");
  expect_refused(R"({"tensors": {}, "activations": {"strategy": "token"}})",
                 "key 'activations.format' is missing");
}

TEST(QuantizationRecord, AnIllTypedKeyIsRefusedByName) {
  expect_refused(R"([1, 2])", "'the record' must be an object");
  expect_refused(R"({"tensors": []})", "'tensors' must be an object");
  expect_refused(R"({"tensors": {"w": {"format": 4}}})", "key 'tensors.w.format' must be a string");
  expect_refused(R"({"tensors": {"w": {"format": "q4_k", "shape": [3]}}})",
                 "key 'tensors.w.shape' must be [rows, cols]");
  expect_refused(R"({"tensors": {"w": {"format": "q4_k", "objective": "low"}}})",
                 "key 'tensors.w.objective' must be a number");
  expect_refused(R"({"tensors": {"w": {"format": "q4_k", "layout": "gguf"}}})",
                 "key 'tensors.w.layout' is 'gguf'");
  expect_refused(R"({"tensors": {}, "kv_cache": {"type": "int4", "group": 1.5}})",
                 "key 'kv_cache.group' must be an integer");
  expect_refused(R"({"tensors": {}, "gptq": {"act_order": "yes"}})",
                 "key 'gptq.act_order' must be true or false");
  expect_refused(R"({"tensors": {}, "rotation": {"seed": -1}})",
                 "key 'rotation.seed' must be an integer >= 0");
  expect_refused(R"({"tensors": {}, "calibration": "calib.txt"})",
                 "'calibration' must be an object");
  expect_refused(R"({"tensors": {}, "fallbacks": [{"tensor": 1}]})",
                 "key 'fallbacks.0.tensor' must be a string");
  expect_refused(R"({"tensors": )", "malformed JSON");
}

}  // namespace
}  // namespace qforge
