// GGUF: the strict reader and the streaming writer (io/gguf.h), and models through it
// (io/gguf_model.h): names, the llama q/k permutation, convert -> load giving the same logits
// and tokens as the Hugging Face original.
#include "qforge/io/gguf.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "qforge/core/thread_pool.h"
#include "qforge/eval/perplexity.h"
#include "qforge/formats/format.h"
#include "qforge/io/gguf_model.h"
#include "qforge/io/model_loader.h"
#include "qforge/model/kv_cache.h"
#include "qforge/model/transformer.h"
#include "qforge/quant/llamacpp_presets.h"
#include "qforge/quant/quantize_model.h"
#include "quantize_test_util.h"
#include "test_util.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

// Unique per process: ctest runs the tests of this file in parallel processes.
fs::path temp_path(const std::string& name) {
  return fs::path(::testing::TempDir()) / ("qforge_gguf_" + std::to_string(getpid()) + "_" + name);
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string error_of(const std::string& bytes) {
  try {
    gguf::File::parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "bad.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A small file with metadata of every kind and two tensors (f32 [3, 4] and q8_0 [2, 64]: 2 rows of
// 2 blocks of 34 bytes).
std::string sample_file() {
  gguf::MetadataWriter md;
  md.add_string("general.architecture", "llama");
  md.add_u32("test.u32", 7);
  md.add_i32("test.i32", -5);
  md.add_f32("test.f32", 0.25f);
  md.add_bool("test.bool", true);
  md.add_strings("test.strings", {"a", "", "ccc"});
  md.add_f32s("test.f32s", {1.5f, -2.0f});
  md.add_i32s("test.i32s", {3, -4, 5});
  const fs::path p = temp_path("sample.gguf");
  gguf::Writer w(p, md,
                 {{"x", gguf::type_of_dtype(DType::F32), {4, 3}},
                  {"q", gguf::type_of_format("q8_0"), {64, 2}}});
  std::vector<float> x(12);
  for (int i = 0; i < 12; ++i) x[i] = static_cast<float>(i);
  w.write("q", std::string(136, '\x01').data(), 136);  // any order
  w.write("x", x.data(), 24);
  w.write("x", x.data() + 6, 24, 24);  // in pieces
  w.commit();
  return read_bytes(p);
}

// Offset of tensor `name`'s info (its name string's length field) in a file's bytes.
size_t tensor_info_at(const std::string& bytes, const std::string& name) {
  std::string key(8, '\0');
  key[0] = static_cast<char>(name.size());
  key += name;
  const size_t at = bytes.rfind(key);
  EXPECT_NE(at, std::string::npos);
  return at;
}

TEST(GgufFile, WriterOutputReadsBackWithEveryValueType) {
  const std::string bytes = sample_file();
  auto f = gguf::File::parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "s");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->string("general.architecture"), "llama");
  EXPECT_EQ(f->integer("test.u32"), 7);
  EXPECT_EQ(f->integer("test.i32"), -5);
  EXPECT_EQ(f->number("test.f32"), 0.25);
  EXPECT_EQ(f->optional_bool("test.bool"), true);
  EXPECT_EQ(f->strings("test.strings"), (std::vector<std::string_view>{"a", "", "ccc"}));
  EXPECT_EQ(f->numbers("test.f32s"), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(f->integers("test.i32s"), (std::vector<int64_t>{3, -4, 5}));
  EXPECT_FALSE(f->optional_integer("absent").has_value());
  ASSERT_EQ(f->tensors().size(), 2u);
  const gguf::TensorInfo* x = f->find_tensor("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->shape(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(x->nbytes, 48u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x->data) % 32,
            reinterpret_cast<uintptr_t>(bytes.data()) % 32);
  float v[12];
  std::memcpy(v, x->data, 48);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(v[i], static_cast<float>(i));
  const gguf::TensorInfo* q = f->find_tensor("q");
  EXPECT_EQ(q->type->format, "q8_0");
  EXPECT_EQ(q->nbytes, 136u);
  EXPECT_EQ(q->offset % 32, 0u);
}

// fuzz/seeds/gguf/ holds files written by llama.cpp's `gguf` Python package (an independent
// writer): f32_and_f16.gguf has token_embd.weight = arange(32) as [4, 8] f32 and an f16 norm of
// ones, q8_0.gguf one q8_0 tensor [2, 32] of linspace(-1, 1) quantized by gguf.quants.
TEST(GgufFile, ReadsFilesTheGgufPackageWrote) {
  const fs::path seeds = testing::source_dir() / "fuzz/seeds/gguf";
  auto f = gguf::File::open(seeds / "f32_and_f16.gguf");
  EXPECT_EQ(f->string("general.architecture"), "llama");
  EXPECT_EQ(f->integer("llama.block_count"), 1);
  EXPECT_EQ(f->number("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(f->strings("tokenizer.ggml.tokens"),
            (std::vector<std::string_view>{"<unk>", "<s>", "a b", "\xc3\xbc"}));
  EXPECT_EQ(f->numbers("tokenizer.ggml.scores"), (std::vector<double>{0, -1, -2.5, -3}));
  EXPECT_EQ(f->integers("test.i64s"), (std::vector<int64_t>{1, -2, 3}));
  const gguf::TensorInfo* e = f->find_tensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->shape(), (std::vector<int64_t>{4, 8}));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(reinterpret_cast<const float*>(e->data)[i], i);
  const gguf::TensorInfo* n = f->find_tensor("blk.0.attn_norm.weight");
  EXPECT_EQ(n->type->dtype, DType::F16);
  EXPECT_EQ(n->nbytes, 16u);
  for (const char* name : {"q8_0.gguf", "q8_0_v2.gguf"}) {
    auto q = gguf::File::open(seeds / name);
    EXPECT_EQ(q->version(), std::string(name) == "q8_0.gguf" ? 3u : 2u);
    const gguf::TensorInfo* t = q->find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type->format, "q8_0");
    EXPECT_EQ(t->shape(), (std::vector<int64_t>{2, 32}));
    EXPECT_EQ(t->nbytes, 68u);
  }
}

TEST(GgufFile, WrongTypesAndMissingKeysNameTheKey) {
  const std::string bytes = sample_file();
  auto f = gguf::File::parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "s");
  EXPECT_THROW(f->string("test.u32"), Error);
  EXPECT_THROW(f->integer("test.f32"), Error);
  EXPECT_THROW(f->strings("test.f32s"), Error);
  try {
    f->integer("general.nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "s: missing metadata 'general.nope'");
  }
}

// Where the last tensor's data ends (the writer pads the file to the alignment after it).
size_t data_end(const std::string& bytes) {
  auto f = gguf::File::parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "s");
  const gguf::TensorInfo* q = f->find_tensor("q");
  return static_cast<size_t>(q->data - reinterpret_cast<const std::byte*>(bytes.data())) +
         q->nbytes;
}

TEST(GgufFile, EveryTruncationIsRefusedCleanly) {
  const std::string bytes = sample_file();
  for (size_t n = 0; n < data_end(bytes); ++n) {
    const std::string e = error_of(bytes.substr(0, n));
    ASSERT_FALSE(e.empty()) << "a file cut at " << n << " bytes parsed";
    EXPECT_EQ(e.rfind("bad.gguf: ", 0), 0u) << e;
  }
}

TEST(GgufFile, MalformedHeadersGiveOneClearError) {
  const std::string good = sample_file();
  auto patched = [&](size_t at, const void* v, size_t n) {
    std::string b = good;
    std::memcpy(b.data() + at, v, n);
    return error_of(b);
  };
  EXPECT_EQ(patched(0, "GGML", 4), "bad.gguf: not a GGUF file (bad magic)");
  const uint32_t v1 = 1, v4 = 4, big_endian = 0x03000000;
  EXPECT_EQ(patched(4, &v1, 4), "bad.gguf: unsupported GGUF version 1 (2 and 3 are)");
  EXPECT_EQ(patched(4, &v4, 4), "bad.gguf: unsupported GGUF version 4 (2 and 3 are)");
  EXPECT_EQ(patched(4, &big_endian, 4), "bad.gguf: big-endian GGUF is not supported");
  const uint32_t v2 = 2;
  EXPECT_EQ(patched(4, &v2, 4), "");  // v2 has the same layout
  const uint64_t huge = uint64_t{1} << 60;
  EXPECT_EQ(patched(8, &huge, 8),
            "bad.gguf: the tensor count is 1152921504606846976, more than the " +
                std::to_string(good.size() - 16) +
                " remaining bytes can hold (truncated or corrupt file)");
  EXPECT_EQ(patched(16, &huge, 8),
            "bad.gguf: the metadata count is 1152921504606846976, more than the " +
                std::to_string(good.size() - 24) +
                " remaining bytes can hold (truncated or corrupt file)");
  // The first key's length.
  EXPECT_NE(patched(24, &huge, 8).find("has length 1152921504606846976 but only"),
            std::string::npos);
}

TEST(GgufFile, BadTensorInfosGiveOneClearError) {
  const std::string good = sample_file();
  const size_t x =
      tensor_info_at(good, "x") + 8 + 1;  // after the name: n_dims, ne[2], type, offset
  auto patched = [&](size_t at, const void* v, size_t n) {
    std::string b = good;
    std::memcpy(b.data() + at, v, n);
    return error_of(b);
  };
  const uint32_t five = 5, unknown = 99, removed = 4;
  EXPECT_EQ(patched(x, &five, 4), "bad.gguf: tensor 'x' has 5 dimensions (1 to 4 allowed)");
  EXPECT_EQ(patched(x + 20, &unknown, 4), "bad.gguf: tensor 'x' has unknown tensor type 99");
  EXPECT_EQ(patched(x + 20, &removed, 4), "bad.gguf: tensor 'x' has unknown tensor type 4");
  const uint64_t big[2] = {uint64_t{1} << 40, uint64_t{1} << 40};
  EXPECT_EQ(patched(x + 4, big, 16), "bad.gguf: tensor 'x': dimensions overflow");
  const uint64_t huge_row = uint64_t{1} << 62;  // x 4 bytes: past 2^63 within the first dimension
  EXPECT_EQ(patched(x + 4, &huge_row, 8), "bad.gguf: tensor 'x': dimensions overflow");
  const uint64_t past = 1 << 20, odd = 8;
  EXPECT_EQ(patched(x + 24, &past, 8),
            "bad.gguf: tensor 'x' (48 bytes at data offset 1048576) extends past the end of the "
            "file");
  EXPECT_EQ(patched(x + 24, &odd, 8), "bad.gguf: tensor 'x' has offset 8, not a multiple of 32");
  const uint64_t q_offset = 64;  // where q lives: x would overlap it
  const std::string e = patched(x + 24, &q_offset, 8);
  EXPECT_NE(e.find("overlap"), std::string::npos) << e;
  // Data cut off at the end of the file.
  EXPECT_NE(error_of(good.substr(0, data_end(good) - 1))
                .find("'q' (136 bytes at data offset 64) "
                      "extends past the end"),
            std::string::npos);
  const size_t q = tensor_info_at(good, "q") + 8 + 1;
  const uint64_t not_blocks = 65;
  EXPECT_EQ(patched(q + 4, &not_blocks, 8),
            "bad.gguf: tensor 'q': q8_0 rows of 65 are not whole q8_0 blocks of 32");
}

TEST(GgufWriter, AbandonedOrIncompleteWritesLeaveNothing) {
  const fs::path p = temp_path("incomplete.gguf");
  fs::remove(p);
  {
    gguf::Writer w(p, {}, {{"x", gguf::type_of_dtype(DType::F32), {4}}});
    float v[2] = {1, 2};
    w.write("x", v, 8);
    EXPECT_THROW(w.commit(), Error);
    EXPECT_THROW(w.write("x", v, 8, 12), Error);
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p.string() + ".tmp-qforge"));
}

TEST(GgufNames, EveryHuggingFaceNameMapsBothWays) {
  for (const std::string arch : {"llama", "qwen2", "qwen3", "gemma", "phi3"}) {
    for (const std::string hf :
         {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
          "model.layers.11.input_layernorm.weight", "model.layers.0.self_attn.k_proj.bias",
          "model.layers.3.mlp.down_proj.weight", "model.layers.2.self_attn.q_norm.weight"})
      EXPECT_EQ(hf_tensor_name(gguf_tensor_name(hf, arch), arch), hf);
  }
  EXPECT_EQ(gguf_tensor_name("model.layers.3.self_attn.o_proj.weight", "llama"),
            "blk.3.attn_output.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.1.mlp.gate_up_proj.weight", "phi3"),
            "blk.1.ffn_up.weight");
  EXPECT_EQ(hf_tensor_name("blk.1.ffn_up.weight", "llama"), "model.layers.1.mlp.up_proj.weight");
  EXPECT_THROW(hf_tensor_name("rope_freqs.weight", "llama"), Error);
  EXPECT_THROW(gguf_tensor_name("model.layers.x.mlp.up_proj.weight", "llama"), Error);
}

TEST(GgufNames, QkPermutationMatchesTheConverterAndInverts) {
  // 2 heads of dim 4: HF rows (h0: a0 a1 | b0 b1) become (a0 b0 a1 b1), as
  // convert_hf_to_gguf.py's permute (reshape(heads, 2, d/2, ...).swapaxes(1, 2)).
  std::vector<std::byte> rows(8);
  for (int i = 0; i < 8; ++i) rows[i] = std::byte(i);
  const auto g = permute_qk_rows(rows.data(), 8, 1, 2, true);
  const std::vector<std::byte> expected = {std::byte(0), std::byte(2), std::byte(1), std::byte(3),
                                           std::byte(4), std::byte(6), std::byte(5), std::byte(7)};
  EXPECT_EQ(g, expected);
  EXPECT_EQ(permute_qk_rows(g.data(), 8, 1, 2, false), rows);
}

// Logits of `m` for a fixed token sequence.
std::vector<float> logits_of(const LoadedModel& m, const std::vector<int32_t>& tokens) {
  ThreadPool pool(2);
  Transformer model(m.config, m.weights, pool);
  KVCache cache(m.config, static_cast<int>(tokens.size()));
  std::vector<float> logits(tokens.size() * m.config.vocab_size);
  model.forward(tokens, 0, cache, logits.data(), true);
  return logits;
}

// Converts `dir` to GGUF in its own dtype and checks the file loads with the same config,
// bit-identical logits and (when it has one) the same tokenizer.
void expect_round_trip(const fs::path& dir, const std::string& name) {
  LoadOptions lo;
  lo.require_tokenizer = false;
  const LoadedModel hf = load_model(dir, lo);
  const fs::path out = temp_path(name + ".gguf");
  write_gguf_model(hf, out, std::nullopt);
  const LoadedModel gg = load_model(out, lo);
  EXPECT_EQ(gg.config.num_layers, hf.config.num_layers);
  EXPECT_EQ(gg.config.head_dim, hf.config.head_dim);
  EXPECT_EQ(gg.config.tie_word_embeddings, hf.config.tie_word_embeddings);
  EXPECT_EQ(gg.config.rope_theta, hf.config.rope_theta);
  EXPECT_EQ(gg.config.rms_norm_eps, hf.config.rms_norm_eps);
  const std::vector<int32_t> tokens = {1, 17, 300, 42, 5, 99, 7, 250, 3, 64};
  EXPECT_EQ(logits_of(gg, tokens), logits_of(hf, tokens)) << name;
  if (hf.tokenizer) {
    ASSERT_NE(gg.tokenizer, nullptr);
    const std::string text = "Hello world,  it's 2026!\n\n  The   quick brown fox; ünïcödé 12345.";
    EXPECT_EQ(gg.tokenizer->encode(text, true), hf.tokenizer->encode(text, true)) << name;
    EXPECT_EQ(gg.tokenizer->bos_id(), hf.tokenizer->bos_id());
    EXPECT_EQ(gg.tokenizer->eos_id(), hf.tokenizer->eos_id());
    EXPECT_EQ(gg.tokenizer->decode(gg.tokenizer->encode(text, false)), text);
  }
  fs::remove(out);
}

TEST(GgufModel, EmbeddedModelRoundTripsWithIdenticalLogitsAndTokens) {
  expect_round_trip(testing::embedded_model_dir(), "embedded");
}

TEST(GgufModel, EveryZooArchitectureRoundTripsWithIdenticalLogits) {
  QFORGE_REQUIRE_SHARED(shared);
  for (const char* arch : {"llama", "mistral", "qwen2", "qwen3", "gemma", "phi3"}) {
    SCOPED_TRACE(arch);
    expect_round_trip(shared / "zoo" / arch, std::string("zoo_") + arch);
  }
}

TEST(GgufModel, SharedModelsRoundTripWithTheirTokenizers) {
  QFORGE_REQUIRE_SHARED(shared);
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  for (const char* m : {"llama-sp-58m", "qwen-bpe-31m"}) {
    SCOPED_TRACE(m);
    expect_round_trip(shared / "models" / m, m);
  }
}

TEST(GgufModel, ConvertedTypesAreTheOnesAskedFor) {
  const LoadedModel hf = load_model(testing::embedded_model_dir());
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const fs::path out = temp_path("typed.gguf");
    write_gguf_model(hf, out, t);
    auto f = gguf::File::open(out);
    EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type->dtype, t);
    EXPECT_EQ(f->find_tensor("blk.0.attn_norm.weight")->type->dtype, DType::F32);
    EXPECT_EQ(f->string("general.architecture"), "llama");
    EXPECT_EQ(f->string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(f->string("tokenizer.ggml.pre"), "qwen2");
    EXPECT_EQ(f->integer("llama.attention.head_count_kv"), 2);
    EXPECT_EQ(f->integer("general.file_type"), t == DType::F32 ? 0 : t == DType::F16 ? 1 : 32);
    fs::remove(out);
  }
}

// What a --size budget for a .gguf leaves to everything but the matrices: never less than the
// file's own header, vocabulary, norms and padding, at most 32 bytes a tensor more, and the name
// it is given counted byte for byte.
TEST(GgufModel, OverheadBoundsTheFileBesidesItsMatrices) {
  const LoadedModel hf = load_model(testing::embedded_model_dir());
  const fs::path out = temp_path("overhead.gguf");
  write_gguf_model(hf, out, DType::F16);
  uint64_t matrices = 0, tensors = 0;
  {
    auto f = gguf::File::open(out);
    for (const gguf::TensorInfo& t : f->tensors()) {
      ++tensors;
      if (t.ne.size() == 2) matrices += t.nbytes;
    }
  }
  const uint64_t actual = fs::file_size(out) - matrices;
  const std::string name = hf.source.filename().replace_extension().string();
  const uint64_t bound = gguf_overhead_bytes(hf, name);
  EXPECT_GE(bound, actual);
  EXPECT_LE(bound, actual + 32 * (tensors + 1));
  EXPECT_EQ(gguf_overhead_bytes(hf, name + "-longer"), bound + 7);
  fs::remove(out);
}

TEST(GgufModel, UnsupportedArchitectureAndTypesAreRefusedByName) {
  auto write = [](const std::string& arch, uint32_t type_id,
                  const std::string& extra = "blk.0.attn_norm.weight") {
    gguf::MetadataWriter md;
    md.add_string("general.architecture", arch);
    md.add_u32(arch + ".embedding_length", 64);
    md.add_u32(arch + ".feed_forward_length", 128);
    md.add_u32(arch + ".block_count", 1);
    md.add_u32(arch + ".attention.head_count", 2);
    const fs::path p = temp_path("unsupported.gguf");
    const gguf::TypeTraits* t = gguf::find_type(type_id);
    gguf::Writer w(p, md, {{"token_embd.weight", t, {256, 4}}, {extra, gguf::find_type(0), {64}}});
    const std::string zeros(gguf::tensor_bytes(*t, {256, 4}, "x"), '\0');
    w.write("token_embd.weight", zeros.data(), zeros.size());
    w.write(extra, zeros.data(), 256);
    w.commit();
    return p;
  };
  try {
    load_model(write("gpt2", 0));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported architecture 'gpt2'"), std::string::npos)
        << e.what();
  }
  try {
    load_model(write("llama", 0, "rope_freqs.weight"));  // llama-3 rope scaling: not supported
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported.gguf: tensor 'rope_freqs.weight' is not "
                                         "part of a llama model"),
              std::string::npos)
        << e.what();
  }
  try {
    load_model(write("llama", 16));  // iq2_xxs: a valid GGUF type qforge does not decode
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'token_embd.weight' has type iq2_xxs"),
              std::string::npos)
        << e.what();
  }
}

// The same quantization written natively and as GGUF holds the same packed bytes: the models
// give identical logits (the GGUF's q/k rows permuted on write and back on load).
TEST(GgufQuantize, GgufOutputRunsExactlyAsTheNativeOutput) {
  const std::vector<std::string> formats = testing::sanitized()
                                               ? std::vector<std::string>{"q4_k"}
                                               : std::vector<std::string>{"q4_k", "iq4_xs"};
  for (const std::string& format : formats) {
    SCOPED_TRACE(format);
    QuantizeOptions o = testing::embedded_quantize_options(std::string("native_") + format, format,
                                                           QuantMethod::RTN);
    o.tensor_formats = {{"embed_tokens", "q6_k"}};  // the embedding (and tied head) packed too
    quantize_model(o);
    QuantizeOptions g = o;
    g.output = temp_path(format + ".gguf");
    fs::remove(g.output);
    const QuantizeReport r = quantize_model_to_gguf(g);
    EXPECT_EQ(r.output_bytes, fs::file_size(g.output));
    EXPECT_FALSE(fs::exists(g.output.string() + ".native-tmp-qforge"));
    auto f = gguf::File::open(g.output);
    EXPECT_EQ(f->find_tensor("blk.1.attn_k.weight")->type->format, format);
    EXPECT_EQ(f->find_tensor("token_embd.weight")->type->format, "q6_k");
    EXPECT_EQ(f->find_tensor("output.weight"), nullptr);  // tied
    const std::vector<int32_t> tokens = {1, 17, 300, 42, 5, 99, 7, 250};
    EXPECT_EQ(logits_of(load_model(g.output), tokens), logits_of(load_model(o.output), tokens));
    fs::remove_all(o.output);
    fs::remove(g.output);
  }
}

TEST(GgufQuantize, FormatsWithoutAGgufTypeAreRefusedBeforeAnyWork) {
  QuantizeOptions o = testing::embedded_quantize_options("refused", "q4_k", QuantMethod::RTN);
  o.output = temp_path("refused.gguf");
  o.tensor_formats = {{"layers\\.2\\.mlp\\.up_proj", "int4-g64"}};
  fs::remove(o.output);
  try {
    quantize_model_to_gguf(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("model.layers.2.mlp.up_proj.weight: format int4-g64 has "
                                          "no GGUF type",
                                          0),
              0u)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(o.output));
  EXPECT_FALSE(fs::exists(o.output.string() + ".native-tmp-qforge"));
}

// Quantizes the embedded model (its directory, or `source` instead) into `dir`/q.gguf: q4_k, the
// embedding (and tied head) q6_k. The same file name makes the same general.name.
QuantizeReport quantize_to_gguf(const fs::path& dir, QuantMethod method,
                                const fs::path& source = {}) {
  QuantizeOptions o = testing::embedded_quantize_options("from_gguf", "q4_k", method);
  if (!source.empty()) o.model = source;
  o.tensor_formats = {{"embed_tokens", "q6_k"}};
  fs::create_directories(dir);
  o.output = dir / "q.gguf";
  o.overwrite = true;
  return quantize_model_to_gguf(o);
}

// Two GGUF files hold the same tensors (names, types, bytes) and the same bytes overall.
void expect_same_gguf(const fs::path& a, const fs::path& b) {
  auto fa = gguf::File::open(a), fb = gguf::File::open(b);
  ASSERT_EQ(fa->tensors().size(), fb->tensors().size());
  for (const gguf::TensorInfo& t : fa->tensors()) {
    SCOPED_TRACE(t.name);
    const gguf::TensorInfo* u = fb->find_tensor(t.name);
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(t.type, u->type);
    ASSERT_EQ(t.nbytes, u->nbytes);
    EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0);
  }
  EXPECT_EQ(read_bytes(a), read_bytes(b));  // metadata too: the GGUF's config and vocabulary
}

// A GGUF converted from the original (bf16 as stored, or f32) quantizes to the very file that
// the original directory quantizes to: the loader undoes llama's q/k permutation, so the
// quantizer sees the same values, and the output takes the config and vocabulary from the GGUF.
TEST(GgufQuantize, RtnFromAConvertedGgufIsBitIdenticalToRtnFromTheDirectory) {
  const fs::path dir = temp_path("from_dir"), src = temp_path("src.gguf");
  quantize_to_gguf(dir, QuantMethod::RTN);
  const LoadedModel hf = load_model(testing::embedded_model_dir());
  for (DType t : {DType::BF16, DType::F32}) {
    SCOPED_TRACE(dtype_name(t));
    write_gguf_model(hf, src, t);
    const fs::path out = temp_path("from_gguf_" + std::string(dtype_name(t)));
    const QuantizeReport r = quantize_to_gguf(out, QuantMethod::RTN, src);
    EXPECT_TRUE(r.requantized.empty());
    expect_same_gguf(dir / "q.gguf", out / "q.gguf");
    EXPECT_FALSE(fs::exists(out / "q.gguf.native-tmp-qforge"));
    fs::remove_all(out);
  }
  fs::remove(src);
  fs::remove_all(dir);
}

// Calibration reads the GGUF's own tokenizer: GPTQ from the converted file runs on the same
// tokens and gives the same file as GPTQ from the directory.
TEST(GgufQuantize, GptqCalibratesFromAGgufSource) {
  const fs::path dir = temp_path("gptq_dir"), out = temp_path("gptq_gguf");
  const fs::path src = temp_path("gptq_src.gguf");
  write_gguf_model(load_model(testing::embedded_model_dir()), src, DType::BF16);
  const QuantizeReport from_dir = quantize_to_gguf(dir, QuantMethod::GPTQ);
  const QuantizeReport r = quantize_to_gguf(out, QuantMethod::GPTQ, src);
  EXPECT_EQ(r.calib_tokens, 384);
  EXPECT_EQ(r.calib_hash, from_dir.calib_hash);
  double gptq = 0, rtn = 0;
  for (const LinearResult& l : r.linears) {
    gptq += l.objective;
    rtn += l.objective_rtn;
  }
  EXPECT_LT(gptq, rtn);  // the calibration did something
  expect_same_gguf(dir / "q.gguf", out / "q.gguf");
  fs::remove(src);
  fs::remove_all(dir);
  fs::remove_all(out);
}

// llama-quantize refuses to quantize quantized weights again unless told to; so does qforge,
// naming the tensor (GGUF and Hugging Face names) and its type. Told to, it decodes them.
TEST(GgufQuantize, AQuantizedSourceIsRefusedUnlessRequantizingIsAllowed) {
  QuantizeOptions q8 = testing::embedded_quantize_options("q8_src", "q8_0", QuantMethod::RTN);
  q8.output = temp_path("q8_src.gguf");
  q8.overwrite = true;
  quantize_model_to_gguf(q8);
  QuantizeOptions o = testing::embedded_quantize_options("requant", "q4_k", QuantMethod::RTN);
  o.model = q8.output;
  o.output = temp_path("requant.gguf");
  o.overwrite = true;
  try {
    quantize_model_to_gguf(o);
    FAIL() << "a q8_0 source was quantized without --allow-requantize";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              q8.output.string() +
                  ": tensor blk.0.attn_q.weight (model.layers.0.self_attn.q_proj.weight) is "
                  "already quantized (q8_0); quantizing it again loses quality: pass "
                  "--allow-requantize to dequantize and requantize it anyway");
  }
  EXPECT_FALSE(fs::exists(o.output));
  o.allow_requantize = true;
  const QuantizeReport r = quantize_model_to_gguf(o);
  const LoadedModel src = load_model(q8.output);
  EXPECT_EQ(r.requantized.size(), 7u * src.weights.layers.size());
  EXPECT_EQ(r.requantized.front(),
            "blk.0.attn_q.weight (model.layers.0.self_attn.q_proj.weight) (q8_0)");
  auto f = gguf::File::open(o.output);
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type->format, "q4_k");
  // Requantized from q8_0's decoding: the q4_k of those values, bit for bit.
  const Matrix& wq = src.weights.layers[0].wq;
  const std::vector<float> decoded = wq.to_f32();
  const formats::Format& q4k = formats::find_format("q4_k");
  const std::vector<std::byte> expect =
      permute_qk_rows(q4k.encode(decoded.data(), wq.rows, wq.cols).data(), wq.rows,
                      q4k.row_bytes(wq.cols), src.config.num_heads, true);
  const gguf::TensorInfo* t = f->find_tensor("blk.0.attn_q.weight");
  ASSERT_EQ(t->nbytes, expect.size());
  EXPECT_EQ(std::memcmp(t->data, expect.data(), expect.size()), 0);
  fs::remove(q8.output);
  fs::remove(o.output);
}

TEST(GgufQuantize, AGgufSourceIsRefusedForADirectoryOutput) {
  const fs::path src = temp_path("dir_out_src.gguf");
  write_gguf_model(load_model(testing::embedded_model_dir()), src, DType::BF16);
  QuantizeOptions o = testing::embedded_quantize_options("dir_from_gguf", "q4_k", QuantMethod::RTN);
  o.model = src;
  try {
    quantize_model(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dir_out_src.gguf: a .gguf model quantizes into a .gguf "
                                         "(-o NAME.gguf)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(o.output));
  fs::remove(src);
}

// llama-perplexity's protocol: whole chunks only, half of each scored, BOS in place of the first.
TEST(LlamaCppPerplexity, ScoresTheSecondHalfOfWholeChunks) {
  const LoadedModel m = load_model(testing::embedded_model_dir());
  ThreadPool pool(2);
  Transformer model(m.config, m.weights, pool);
  std::vector<int32_t> ids = testing::sample_ids(m);
  ids.resize(64 * 5 + 10);  // 5 whole chunks of 64 and a partial one, dropped
  const PerplexityResult all = evaluate_perplexity_llamacpp(model, ids, 64, 0, -1);
  EXPECT_EQ(all.windows, 5);
  EXPECT_EQ(all.tokens, 5 * 31);
  // One chunk by hand: positions 32..62 predict tokens 33..63.
  const PerplexityResult one = evaluate_perplexity_llamacpp(model, ids, 64, 1, 0);
  KVCache cache = model.new_cache(64);
  std::vector<int32_t> chunk(ids.begin(), ids.begin() + 64);
  chunk[0] = 0;  // BOS
  std::vector<float> logits(64 * m.config.vocab_size);
  model.forward(chunk, 0, cache, logits.data(), true);
  double nll = 0;
  for (int j = 32; j < 63; ++j)
    nll += token_nll(
        {logits.data() + j * m.config.vocab_size, static_cast<size_t>(m.config.vocab_size)},
        ids[j + 1]);
  EXPECT_EQ(one.tokens, 31);
  EXPECT_NEAR(one.mean_nll, nll / 31, 1e-12);
  EXPECT_THROW(evaluate_perplexity_llamacpp(model, std::vector<int32_t>(100, 1), 64, 0, -1),
               Error);  // fewer than 2 x ctx tokens, as llama-perplexity
}

// llama-quantize's choices (src/llama-quant.cpp), worked out by hand for two shapes.
TEST(LlamaCppPresets, Q4KMGivesMoreBitsWhereLlamaQuantizeDoes) {
  ModelConfig c;
  c.model_type = "llama";
  c.num_layers = 8;
  c.hidden_size = 512;
  c.intermediate_size = 1536;
  c.num_heads = 8;
  c.num_kv_heads = 4;
  c.head_dim = 64;
  c.tie_word_embeddings = false;
  const auto p = llamacpp_preset("q4_k_m", c, true);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->base, "q4_k");
  std::map<std::string, std::string> t(p->tensors.begin(), p->tensors.end());
  EXPECT_EQ(t.size(), 2u + 8u * 7u);
  EXPECT_EQ(t["model.embed_tokens.weight"], "q4_k");  // token_embd keeps the base type
  EXPECT_EQ(t["lm_head.weight"], "q6_k");
  // use_more_bits for 8 layers: 0, 3, 6, 7 (first and last eighth, every third between).
  for (int l = 0; l < 8; ++l) {
    const std::string more = (l == 0 || l == 3 || l == 6 || l == 7) ? "q6_k" : "q4_k";
    EXPECT_EQ(t[fmt::format("model.layers.{}.self_attn.v_proj.weight", l)], more) << l;
    EXPECT_EQ(t[fmt::format("model.layers.{}.mlp.down_proj.weight", l)], more) << l;
    EXPECT_EQ(t[fmt::format("model.layers.{}.self_attn.q_proj.weight", l)], "q4_k");
  }
  const auto q3 = llamacpp_preset("q3_k_m", c, true);
  std::map<std::string, std::string> t3(q3->tensors.begin(), q3->tensors.end());
  EXPECT_EQ(t3["model.layers.1.self_attn.v_proj.weight"], "q5_k");
  EXPECT_EQ(t3["model.layers.2.self_attn.v_proj.weight"], "q4_k");
  EXPECT_EQ(t3["model.layers.5.self_attn.o_proj.weight"], "q4_k");
  EXPECT_EQ(t3["model.layers.5.mlp.down_proj.weight"], "q4_k");
  EXPECT_EQ(t3["model.layers.5.mlp.up_proj.weight"], "q3_k");
  EXPECT_FALSE(llamacpp_preset("int4-g64", c, true).has_value());
}

TEST(LlamaCppPresets, RowsNotMultiplesOf256FallBackAsLlamaQuantize) {
  ModelConfig c;  // qwen-bpe-31m's widths: hidden 576, tied
  c.model_type = "qwen2";
  c.num_layers = 4;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.tie_word_embeddings = true;
  const auto p = llamacpp_preset("q4_k_m", c, true);
  std::map<std::string, std::string> t(p->tensors.begin(), p->tensors.end());
  EXPECT_EQ(t["model.embed_tokens.weight"], "q8_0");  // tied head of 576 columns
  EXPECT_FALSE(t.contains("lm_head.weight"));
  EXPECT_EQ(t["model.layers.1.self_attn.q_proj.weight"], "q5_0");  // q4_k -> q5_0
  EXPECT_EQ(t["model.layers.1.self_attn.v_proj.weight"], "q5_0");
  EXPECT_EQ(t["model.layers.0.self_attn.v_proj.weight"], "q5_0");  // n/8 = 0: not "more bits"
  EXPECT_EQ(t["model.layers.3.self_attn.v_proj.weight"], "q8_0");  // the last eighth: q6_k -> q8_0
  EXPECT_EQ(t["model.layers.1.mlp.down_proj.weight"], "q4_k");     // 1536 columns fit
  const auto xs = llamacpp_preset("iq4_xs", c, false);
  std::map<std::string, std::string> tx(xs->tensors.begin(), xs->tensors.end());
  EXPECT_EQ(tx["model.layers.1.self_attn.q_proj.weight"], "iq4_nl");
  EXPECT_EQ(tx["model.layers.0.mlp.down_proj.weight"], "iq4_xs");  // n/8 = 0 layers get q5_k
}

}  // namespace
}  // namespace qforge
