// Reading other tools' compressed-tensors configs (io/compressed_tensors_config.h): the schemes
// qforge honours become its record, everything else is refused naming the tensor, random damage
// to a valid config never escapes as anything but qforge::Error, and a qforge checkpoint stripped
// of its own record loads from config.json alone to the same weights.
#include "qforge/io/compressed_tensors_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "qforge/core/error.h"
#include "qforge/formats/format.h"
#include "qforge/io/model_loader.h"
#include "qforge/io/safetensors.h"
#include "qforge/quant/quantize_model.h"
#include "quantize_test_util.h"
#include "test_util.h"

namespace qforge {
namespace {

using nlohmann::json;
const std::string kQ = "model.layers.0.self_attn.q_proj";
const std::string kDown = "model.layers.0.mlp.down_proj";

// What llm-compressor writes for W4A16 (GPTQModifier, scheme "W4A16").
json w4a16() {
  return json::parse(R"({
    "quant_method": "compressed-tensors", "format": "pack-quantized",
    "quantization_status": "compressed", "ignore": ["lm_head"], "kv_cache_scheme": null,
    "config_groups": {"group_0": {"targets": ["Linear"], "format": "pack-quantized",
      "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group",
                  "group_size": 128, "dynamic": false, "actorder": "static", "observer": "minmax"},
      "input_activations": null, "output_activations": null}}})");
}

std::map<std::string, DType> packed_tensors(DType scale = DType::BF16) {
  std::map<std::string, DType> t;
  for (const std::string& m : {kQ, kDown}) {
    t[m + ".weight_packed"] = DType::I32;
    t[m + ".weight_scale"] = scale;
    t[m + ".weight_shape"] = DType::I64;
  }
  t["model.embed_tokens.weight"] = DType::BF16;
  t["lm_head.weight"] = DType::BF16;
  return t;
}

json read(const json& config, const std::map<std::string, DType>& tensors) {
  return to_json(record_from_compressed_tensors_config(config.dump(), tensors));
}

void expect_refused(const json& config, const std::map<std::string, DType>& tensors,
                    const std::vector<std::string>& needles) {
  try {
    read(config, tensors);
    ADD_FAILURE() << "accepted " << config.dump();
  } catch (const Error& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " lacks " << n;
  }
}

TEST(CompressedTensorsConfig, W4A16BecomesPackedInt4WithTheCheckpointsScaleType) {
  const json r = read(w4a16(), packed_tensors());
  ASSERT_EQ(r["tensors"].size(), 2u);
  const json& q = r["tensors"][kQ + ".weight"];
  EXPECT_EQ(q["format"], "int4-g128-bf16");
  EXPECT_EQ(q["layout"], "compressed-tensors");
  EXPECT_EQ(q["ct_format"], "pack-quantized");
  EXPECT_TRUE(r.value("activations", json()).is_null());
  EXPECT_EQ(read(w4a16(), packed_tensors(DType::F16))["tensors"][kQ + ".weight"]["format"],
            "int4-g128-fp16");
}

TEST(CompressedTensorsConfig, W8A8IntAndFp8DynamicAndNvfp4) {
  json c = w4a16();
  json& g = c["config_groups"]["group_0"];
  g["format"] = c["format"] = "int-quantized";
  g["weights"].update({{"num_bits", 8}, {"strategy", "channel"}, {"group_size", nullptr}});
  g["input_activations"] = {{"num_bits", 8},
                            {"type", "int"},
                            {"symmetric", true},
                            {"strategy", "token"},
                            {"dynamic", true}};
  std::map<std::string, DType> t = {{kQ + ".weight", DType::I8},
                                    {kQ + ".weight_scale", DType::F32}};
  json r = read(c, t);
  EXPECT_EQ(r["tensors"][kQ + ".weight"]["format"], "int8-channel-fp32");
  EXPECT_EQ(r["tensors"][kQ + ".weight"]["input_activations"], "int8");
  EXPECT_EQ(r["activations"]["format"], "int8");

  g["format"] = "float-quantized";
  g["weights"]["type"] = g["input_activations"]["type"] = "float";
  t = {{kQ + ".weight", DType::F8_E4M3}, {kQ + ".weight_scale", DType::BF16}};
  r = read(c, t);
  EXPECT_EQ(r["tensors"][kQ + ".weight"]["format"], "fp8-e4m3-channel-bf16");
  EXPECT_EQ(r["activations"]["format"], "fp8-e4m3");

  g["format"] = "nvfp4-pack-quantized";
  g["weights"].update({{"num_bits", 4}, {"strategy", "tensor_group"}, {"group_size", 16}});
  g["input_activations"] = nullptr;
  t = {{kQ + ".weight_packed", DType::U8},
       {kQ + ".weight_scale", DType::F8_E4M3},
       {kQ + ".weight_global_scale", DType::F32}};
  EXPECT_EQ(read(c, t)["tensors"][kQ + ".weight"]["format"], "nvfp4");
}

TEST(CompressedTensorsConfig, RefusesWhatItCannotHonourNamingTheTensor) {
  // Modules are read in name order: a config-wide problem is reported at down_proj.
  const std::string q = "'" + kQ + ".weight'", d = "'" + kDown + ".weight'";
  json c = w4a16();
  c["config_groups"]["group_0"]["format"] = "marlin-24";
  expect_refused(c, packed_tensors(), {d, "marlin-24", "not supported"});

  c = w4a16();
  c["config_groups"]["group_0"]["weights"]["symmetric"] = false;
  expect_refused(c, packed_tensors(), {d, "asymmetric"});
  auto t = packed_tensors();
  t[kQ + ".weight_zero_point"] = DType::I32;
  expect_refused(w4a16(), t, {q, "weight_zero_point"});

  t = packed_tensors();
  t.erase(kDown + ".weight_scale");
  expect_refused(w4a16(), t, {"'" + kDown + ".weight'", "missing", "weight_scale"});

  c = w4a16();
  c["config_groups"]["group_0"]["weights"]["actorder"] = "group";
  expect_refused(c, packed_tensors(), {d, "actorder"});
  t = packed_tensors();
  t[kQ + ".weight_g_idx"] = DType::I32;
  expect_refused(w4a16(), t, {q, "weight_g_idx"});

  c = w4a16();
  c["config_groups"]["group_0"]["input_activations"] = {{"num_bits", 8},
                                                        {"type", "int"},
                                                        {"symmetric", true},
                                                        {"strategy", "tensor"},
                                                        {"dynamic", false}};
  expect_refused(c, packed_tensors(), {d, "input activations"});

  c = w4a16();
  c["config_groups"]["group_0"]["weights"]["num_bits"] = 3;
  expect_refused(c, packed_tensors(), {d, "3-bit"});

  c = w4a16();
  c["config_groups"]["group_0"]["targets"] = {"re:.*mlp.*"};
  expect_refused(c, packed_tensors(), {q, "no config group"});  // down_proj is targeted
  c["config_groups"]["group_0"]["targets"] = {"re:(("};
  expect_refused(c, packed_tensors(), {"regex"});
  // Patterns whose backtracking explodes are refused before matching (they hung the loader).
  c["config_groups"]["group_0"]["targets"] = {"re:(m*)*x"};
  expect_refused(c, packed_tensors(), {"(m*)*x", "exponential"});
  c["config_groups"]["group_0"]["targets"] = {"re:(model|mode)+x"};
  expect_refused(c, packed_tensors(), {"exponential"});
  c["config_groups"]["group_0"]["targets"] = {"re:.*.*.*.*.*x"};
  expect_refused(c, packed_tensors(), {"5 repetitions"});
  c["config_groups"]["group_0"]["targets"] = {"re:model\\.layers\\.\\d+\\.(self_attn|mlp)\\..*"};
  EXPECT_NO_THROW(record_from_compressed_tensors_config(c.dump(), packed_tensors()));

  c = w4a16();
  c["ignore"].push_back(kDown);
  expect_refused(c, packed_tensors(), {"'" + kDown + ".weight'", "ignore"});

  c = w4a16();
  c["kv_cache_scheme"] = {{"num_bits", 8}, {"type", "float"}};
  expect_refused(c, packed_tensors(), {"kv_cache_scheme"});

  c = w4a16();
  c["transform_config"] = {{"config_groups", {{"R1", {{"type", "hadamard"}}}}}};
  expect_refused(c, packed_tensors(), {"transform_config"});
  c = w4a16();
  c["sparsity_config"] = {{"format", "sparse-24-bitmask"}};
  expect_refused(c, packed_tensors(), {"sparsity_config"});

  expect_refused(json::parse(R"({"quant_method": "compressed-tensors"})"), packed_tensors(),
                 {"malformed"});
}

// Property: any damage to a valid config (a value replaced by another of any JSON type, a key
// removed) gives a record whose formats all exist, or qforge::Error; never anything else.
TEST(CompressedTensorsConfig, DamagedConfigsGiveARecordOrAnError) {
  std::mt19937 rng(14);
  const std::vector<json> values = {nullptr,
                                    true,
                                    false,
                                    0,
                                    3,
                                    8,
                                    16,
                                    128,
                                    -1,
                                    1e9,
                                    "int",
                                    "float",
                                    "group",
                                    "channel",
                                    "tensor",
                                    "token",
                                    "pack-quantized",
                                    "int-quantized",
                                    "re:.*",
                                    "Linear",
                                    "",
                                    json::array(),
                                    json::object(),
                                    json::array({"Linear"})};
  const json base = w4a16();
  const json flat = base.flatten();
  std::vector<std::string> paths;
  for (const auto& [k, v] : flat.items()) paths.push_back(k);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    json f = flat;
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      const std::string& p = paths[rng() % paths.size()];
      if (rng() % 4 == 0)
        f.erase(p);
      else
        f[p] = values[rng() % values.size()];
    }
    json c;
    try {
      c = f.unflatten();
    } catch (const json::exception&) {
      continue;  // not a config any more
    }
    try {
      const json r = read(c, packed_tensors());
      for (const auto& [name, e] : r["tensors"].items())
        EXPECT_NO_THROW(formats::find_format(e["format"].get<std::string>())) << c.dump();
      ++accepted;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "escaped as " << e.what() << " for " << c.dump();
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_GT(refused, 0);
}

// A qforge checkpoint without its own record (the safetensors metadata) is what another tool
// writing compressed-tensors would give: it loads from config.json alone to the same weights.
TEST(CompressedTensorsConfig, QforgeCheckpointLoadsFromConfigJsonAlone) {
  namespace fs = std::filesystem;
  QuantizeOptions o = testing::embedded_quantize_options("ct_config", "int4-g64", QuantMethod::RTN);
  quantize_model(o);
  const fs::path bare = o.output.string() + "_bare";
  fs::remove_all(bare);
  fs::create_directories(bare);
  for (const auto& e : fs::directory_iterator(o.output))
    if (e.path().extension() != ".safetensors") fs::copy(e.path(), bare / e.path().filename());
  auto rewrite = [&](const std::string& drop) {
    const auto file = SafetensorsFile::open(o.output / "model.safetensors");
    std::vector<TensorToWrite> out;
    for (const TensorView& tv : file->tensors())
      if (tv.name != drop)
        out.push_back({tv.name, tv.dtype, tv.shape, {tv.data, tv.data + tv.nbytes()}});
    write_safetensors(bare / "model.safetensors", out);  // no metadata
  };
  rewrite("");
  const LoadedModel a = load_model(o.output), b = load_model(bare);
  ASSERT_EQ(a.weights.layers.size(), b.weights.layers.size());
  const Matrix &wa = a.weights.layers[1].w_down, &wb = b.weights.layers[1].w_down;
  ASSERT_EQ(wa.rows * wa.cols, wb.rows * wb.cols);
  EXPECT_EQ(std::memcmp(wa.data, wb.data, wa.nbytes()), 0);

  const std::string module = "model.layers.1.mlp.down_proj";
  rewrite(module + ".weight_scale");
  try {
    load_model(bare);
    ADD_FAILURE() << "a missing weight_scale was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(module + ".weight_scale"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qforge
