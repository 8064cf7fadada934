// io: safetensors validation and round trips, sharded stores, config.json parsing, model loading.
// Every bad input must raise one qforge::Error whose one-line message names the file and problem.
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/io/config_json.h"
#include "qforge/io/model_loader.h"
#include "qforge/io/safetensors.h"
#include "test_util.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / ("qforge_io_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A safetensors file from a header (as JSON text) and a data buffer, written raw.
std::string raw_file(const std::string& header, const std::string& data,
                     uint64_t len_override = 0) {
  std::string out(8, '\0');
  const uint64_t len = len_override ? len_override : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

template <typename F>
void expect_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning " << needles[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

void expect_parse_error(const std::string& bytes, const std::vector<std::string>& needles) {
  expect_error(
      [&] {
        SafetensorsFile::parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(),
                               "bad.safetensors");
      },
      [&] {
        auto n = needles;
        n.push_back("bad.safetensors");
        return n;
      }());
}

TEST(Safetensors, RoundTripsEveryFloatDtypeAndMetadata) {
  const fs::path dir = temp_dir("roundtrip");
  std::vector<TensorToWrite> ts;
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    TensorToWrite w{std::string(dtype_name(t)), t, {2, 3}, {}};
    w.bytes.resize(6 * dtype_size(t));
    for (size_t i = 0; i < w.bytes.size(); ++i) w.bytes[i] = static_cast<std::byte>(i * 7 + 1);
    ts.push_back(w);
  }
  write_safetensors(dir / "m.safetensors", ts, {{"format", "pt"}, {"tool", "qforge"}});
  auto f = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->metadata().at("tool"), "qforge");
  for (const auto& w : ts) {
    const TensorView* t = f->find(w.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, w.dtype);
    EXPECT_EQ(t->shape, w.shape);
    EXPECT_EQ(std::memcmp(t->data, w.bytes.data(), w.bytes.size()), 0);
  }
  EXPECT_FALSE(fs::exists(dir / "m.safetensors.tmp-qforge"));
}

TEST(SafetensorsWriter, TensorsArriveInAnyOrderAndInPieces) {
  const fs::path dir = temp_dir("writer");
  const fs::path path = dir / "w.safetensors";
  std::vector<int32_t> a(10), b(6);
  for (int i = 0; i < 10; ++i) a[i] = i * 3;
  for (int i = 0; i < 6; ++i) b[i] = -i;
  {
    SafetensorsWriter w(path,
                        {{"a", DType::I32, {2, 5}}, {"b", DType::I32, {6}}, {"e", DType::U8, {0}}},
                        {{"k", "v"}});
    w.write("b", b.data(), b.size() * 4);
    w.write("a", a.data() + 4, 6 * 4, 4 * 4);  // second piece first
    w.write("a", a.data(), 4 * 4);
    EXPECT_FALSE(fs::exists(path));  // nothing visible before commit
    w.commit();
  }
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("k"), "v");
  EXPECT_EQ(std::memcmp(f->find("a")->data, a.data(), 40), 0);
  EXPECT_EQ(std::memcmp(f->find("b")->data, b.data(), 24), 0);
  EXPECT_EQ(f->find("e")->nbytes(), 0u);
}

TEST(SafetensorsWriter, IncompleteOrWrongWritesLeaveNothingBehind) {
  const fs::path dir = temp_dir("writer_bad");
  const fs::path path = dir / "w.safetensors";
  const std::vector<std::byte> bytes(64);
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {4}}, {"b", DType::F32, {4}}});
    EXPECT_THROW(w.write("zzz", bytes.data(), 4), Error);  // not in the header
    EXPECT_THROW(w.write("a", bytes.data(), 20), Error);   // overflows its 16 bytes
    w.write("a", bytes.data(), 16);
    try {
      w.commit();  // "b" never written
      ADD_FAILURE() << "commit must refuse";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'b': 0 of 16 bytes written"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp-qforge"));
}

TEST(Safetensors, RejectsMalformedFilesNamingTheProblem) {
  const std::string ok_entry = R"("t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::string data8(8, '\0');
  expect_parse_error("abc", {"truncated"});
  expect_parse_error(raw_file("{}", "", 1000), {"header length 1000", "past the end"});
  expect_parse_error(raw_file("{}", "", 1ull << 40), {"implausibly large"});
  expect_parse_error(raw_file("{not json", ""), {"malformed JSON"});
  expect_parse_error(raw_file("[1, 2]", ""), {"not a JSON object"});
  expect_parse_error(raw_file(R"({"t": {"dtype": "F32", "shape": [2]}})", data8),
                     {"'t'", "data_offsets"});
  expect_parse_error(
      raw_file(R"({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})", data8),
      {"'t'", "unsupported dtype 'Q4'"});
  expect_parse_error(
      raw_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", data8),
      {"'t'", "end past the data buffer"});
  expect_parse_error(
      raw_file(R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data8),
      {"'t'", "needs 12"});
  expect_parse_error(
      raw_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", data8),
      {"reversed"});
  expect_parse_error(
      raw_file(R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data8),
      {"non-negative"});
  expect_parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                              std::string(12, '\0')),
                     {"overlap", "'a'", "'b'"});
  expect_parse_error(raw_file(R"({"__metadata__": {"k": 1}, )" + ok_entry + "}", data8),
                     {"__metadata__"});
}

TEST(Safetensors, TruncatedFileOnDiskIsRefused) {
  const fs::path dir = temp_dir("trunc");
  const std::string full = raw_file(
      R"({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::string(16, '\1'));
  std::ofstream(dir / "t.safetensors", std::ios::binary) << full.substr(0, full.size() - 5);
  expect_error([&] { SafetensorsFile::open(dir / "t.safetensors"); },
               {"t.safetensors", "end past the data buffer"});
}

TEST(TensorStore, ReadsShardsThroughTheIndex) {
  const fs::path dir = temp_dir("shards");
  auto tensor = [](const std::string& name, float v) {
    TensorToWrite t{name, DType::F32, {2}, std::vector<std::byte>(8)};
    std::memcpy(t.bytes.data(), &v, 4);
    return t;
  };
  write_safetensors(dir / "model-00001-of-00002.safetensors", {tensor("a", 1), tensor("b", 2)});
  write_safetensors(dir / "model-00002-of-00002.safetensors", {tensor("c", 3)});
  nlohmann::json index = {{"weight_map",
                           {{"a", "model-00001-of-00002.safetensors"},
                            {"b", "model-00001-of-00002.safetensors"},
                            {"c", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  const TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(store.files().size(), 2u);
  float v;
  std::memcpy(&v, store.get("c").data, 4);
  EXPECT_EQ(v, 3.0f);
  expect_error([&] { store.get("zzz"); }, {"missing tensor 'zzz'"});
  // An index naming a tensor its shard does not hold is refused.
  index["weight_map"]["d"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  expect_error([&] { TensorStore::open(dir); }, {"'d'", "missing from model-00002-of-00002"});
}

TEST(ConfigJson, EveryZooAndModelConfigLoadsWithItsFamilyFlags) {
  QFORGE_REQUIRE_SHARED(shared);
  const ModelConfig gemma = load_config_json(shared / "zoo/gemma/config.json");
  EXPECT_TRUE(gemma.norm_plus_one && gemma.scale_embeddings && gemma.tie_word_embeddings);
  EXPECT_EQ(gemma.activation, Activation::GeluTanh);
  EXPECT_EQ(gemma.head_dim, 32);
  EXPECT_TRUE(load_config_json(shared / "zoo/qwen2/config.json").qkv_bias);
  EXPECT_TRUE(load_config_json(shared / "zoo/qwen3/config.json").qk_norm);
  const ModelConfig llama =
      load_config_json(shared / "models/llama-sp-58m/config.json");  // new style
  EXPECT_EQ(llama.rope_theta, 10000.0f);
  EXPECT_EQ(llama.num_kv_heads, 4);
  const ModelConfig qwen = load_config_json(shared / "models/qwen-bpe-31m/config.json");  // classic
  EXPECT_EQ(qwen.rope_theta, 1000000.0f);
  EXPECT_EQ(qwen.torch_dtype, "bfloat16");
  EXPECT_TRUE(qwen.tie_word_embeddings);
}

TEST(ConfigJson, ClassicAndNewRopeStylesAgree) {
  const std::string base =
      R"("model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
         "num_attention_heads": 4, "vocab_size": 10)";
  const ModelConfig a = parse_config_json("{" + base + R"(, "rope_theta": 500000.0})", "a");
  const ModelConfig b = parse_config_json(
      "{" + base + R"(, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}})",
      "b");
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.head_dim, 16);
  EXPECT_EQ(a.num_kv_heads, 4);
}

TEST(ConfigJson, RefusesUnsupportedModelsByName) {
  const std::string base =
      R"("hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
         "num_attention_heads": 4, "vocab_size": 10)";
  expect_error([&] { parse_config_json(R"({"model_type": "mamba", )" + base + "}", "c.json"); },
               {"c.json", "unsupported model_type 'mamba'"});
  expect_error(
      [&] {
        parse_config_json(
            R"({"model_type": "llama", "rope_scaling": {"rope_type": "yarn"}, )" + base + "}",
            "c.json");
      },
      {"c.json", "'yarn'"});
  expect_error(
      [&] {
        parse_config_json(
            R"({"model_type": "llama", "rope_parameters": {"rope_type": "llama3", "rope_theta": 1.0}, )" +
                base + "}",
            "c.json");
      },
      {"'llama3'"});
  expect_error([&] { parse_config_json(R"({"model_type": "llama"})", "c.json"); },
               {"c.json", "missing 'hidden_size'"});
  expect_error([&] { parse_config_json("{", "c.json"); }, {"c.json", "malformed JSON"});
  expect_error(
      [&] {
        parse_config_json(R"({"model_type": "llama", "num_key_value_heads": 3, )" + base + "}",
                          "c.json");
      },
      {"not a multiple"});
}

TEST(ModelLoader, EmbeddedModelLoadsWithTiedHead) {
  LoadedModel m = load_model(testing::embedded_model_dir());
  EXPECT_EQ(m.config.num_layers, 4);
  EXPECT_EQ(m.weights.lm_head.data, m.weights.embedding.data);
  ASSERT_NE(m.tokenizer, nullptr);
  EXPECT_EQ(m.tokenizer->vocab_size(), m.config.vocab_size);
}

// Copies the embedded model's config and a rewritten safetensors into a temp dir.
fs::path model_with(const std::string& name,
                    const std::function<void(std::vector<TensorToWrite>&)>& edit) {
  const fs::path dir = temp_dir(name);
  const fs::path src = testing::embedded_model_dir();
  fs::copy_file(src / "config.json", dir / "config.json");
  auto f = SafetensorsFile::open(src / "model.safetensors");
  std::vector<TensorToWrite> ts;
  for (const auto& t : f->tensors())
    ts.push_back({t.name, t.dtype, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes())});
  edit(ts);
  write_safetensors(dir / "model.safetensors", ts);
  return dir;
}

TEST(ModelLoader, RefusesMissingAndMisshapedTensors) {
  LoadOptions lo;
  lo.require_tokenizer = false;
  const fs::path missing = model_with("missing", [](auto& ts) {
    std::erase_if(
        ts, [](const TensorToWrite& t) { return t.name == "model.layers.2.mlp.up_proj.weight"; });
  });
  expect_error([&] { load_model(missing, lo); },
               {"missing tensor 'model.layers.2.mlp.up_proj.weight'"});
  const fs::path misshaped = model_with("misshaped", [](auto& ts) {
    for (auto& t : ts)
      if (t.name == "model.layers.0.self_attn.k_proj.weight") {
        t.shape = {t.shape[0] / 2, t.shape[1] * 2};
      }
  });
  expect_error([&] { load_model(misshaped, lo); }, {"model.layers.0.self_attn.k_proj.weight",
                                                    "has shape [64, 512], expected [128, 256]"});
  const fs::path wrong_dtype = model_with("dtype", [](auto& ts) {
    for (auto& t : ts)
      if (t.name == "model.norm.weight") {
        t.dtype = DType::I16;
      }
  });
  expect_error([&] { load_model(wrong_dtype, lo); }, {"model.norm.weight", "dtype I16"});
}

TEST(ModelLoader, Llama2cCheckpointLoadsAndTruncationIsRefused) {
  QFORGE_REQUIRE_SHARED(shared);
  const fs::path bin = shared / "models/stories260K/stories260K.bin";
  LoadedModel m = load_model(bin);
  EXPECT_EQ(m.config.model_type, "llama2c");
  EXPECT_EQ(m.config.rope_layout, RopeLayout::Interleaved);
  EXPECT_EQ(m.config.vocab_size, 512);
  const fs::path dir = temp_dir("l2c");
  const MappedFile f(bin);
  std::ofstream(dir / "s.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size() - 100));
  LoadOptions lo;
  lo.require_tokenizer = false;
  expect_error([&] { load_model(dir / "s.bin", lo); }, {"s.bin", "does not match the header"});
}

}  // namespace
}  // namespace qforge
