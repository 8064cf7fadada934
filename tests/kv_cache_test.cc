// The KV cache in every format: a query reads exactly what token-by-token decoding would have read
// (per-channel keys: complete groups quantized, the query's own group in f32), pre-RoPE storage is
// exact for an f32 cache, and quantized caches stay close to the f32 one on the embedded model.
#include <algorithm>
#include <cmath>
#include <random>

#include "qforge/core/error.h"
#include "qforge/io/model_loader.h"
#include "qforge/model/transformer.h"
#include "test_util.h"

namespace qforge {
namespace {

using formats::KvType;

struct Case {
  const char* name;
  KvCacheFormat format;
};

std::vector<Case> cases() {
  return {{"f32", {}},
          {"f32-pre-rope", {KvType::F32, false, true, 64}},
          {"int8-token", {KvType::Int8, false, false, 64}},
          {"int4-token-g32", {KvType::Int4, false, false, 32}},
          {"fp8-token", {KvType::Fp8E4M3, false, false, 64}},
          {"int4-channel-pre-rope-g16", {KvType::Int4, true, true, 16}},
          {"int4-channel-post-rope-g16", {KvType::Int4, true, false, 16}},
          {"int8-channel-pre-rope-g8", {KvType::Int8, true, true, 8}}};
}

std::vector<int32_t> some_tokens(const LoadedModel& m, int n) {
  std::vector<int32_t> ids = m.tokenizer->encode(
      "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
      "age of foolishness, it was the epoch of belief, it was the epoch of incredulity.",
      false);
  ids.resize(static_cast<size_t>(n));
  return ids;
}

// Logits of every position, computing the tokens in chunks of `chunk`.
std::vector<float> run_in_chunks(Transformer& model, const std::vector<int32_t>& ids, int chunk) {
  const int n = static_cast<int>(ids.size()), vocab = model.config().vocab_size;
  KVCache cache = model.new_cache(n);
  std::vector<float> logits(static_cast<size_t>(n) * vocab);
  for (int pos = 0; pos < n; pos += chunk) {
    const int len = std::min(chunk, n - pos);
    model.forward(std::span(ids).subspan(pos, len), pos, cache, &logits[pos * vocab], true);
  }
  return logits;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  return worst;
}

// What a query at position p reads: keys() for [0, p], with its own per-channel group read in f32
// from recent_keys().
std::vector<float> keys_seen(const KVCache& cache, int p, int ctx, int hd) {
  std::vector<float> all(static_cast<size_t>(ctx) * hd), recent(all.size());
  const float* base = cache.keys(0, 0, ctx, all.data());
  std::vector<float> seen(base, base + static_cast<size_t>(p + 1) * hd);
  const int first = cache.recent_keys(0, 0, ctx, recent.data());
  if (first >= 0) {
    const int start = p / cache.format().group * cache.format().group;
    EXPECT_GE(start, first);
    std::copy_n(recent.data() + (start - first) * hd, (p + 1 - start) * hd,
                seen.data() + start * hd);
  }
  return seen;
}

// Exact semantics, without matmul noise: storing a sequence in chunks of any size, every query
// reads bit-identical keys and values — those a token-by-token decode reads — in every format.
TEST(KvCache, EveryQueryReadsWhatTokenByTokenDecodingReads) {
  ModelConfig c;
  c.num_layers = c.num_heads = c.num_kv_heads = 1;
  c.hidden_size = c.head_dim = 16;
  const int n = 37, hd = 16;
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> k(n * hd), v(n * hd);
  for (float& x : k) x = dist(rng) * (1 + (&x - k.data()) % hd);  // channels of different scale
  for (float& x : v) x = dist(rng);
  for (const Case& f : cases()) {
    if (!f.format.quantized()) continue;
    std::vector<std::vector<float>> decode_keys, decode_values;
    KVCache one(c, n, f.format);
    for (int p = 0; p < n; ++p) {
      one.store(0, p, 1, &k[p * hd], &v[p * hd]);
      decode_keys.push_back(keys_seen(one, p, p + 1, hd));
      std::vector<float> vals(static_cast<size_t>(p + 1) * hd);
      const float* got = one.values(0, 0, p + 1, vals.data());
      decode_values.emplace_back(got, got + (p + 1) * hd);
    }
    if (f.format.keys_per_channel) {  // complete groups read quantized, a query's own in f32
      const int G = f.format.group, last = n - 1, start = last / G * G;
      EXPECT_FALSE(std::equal(k.begin(), k.begin() + G * hd, decode_keys[last].begin())) << f.name;
      EXPECT_TRUE(std::equal(k.begin() + start * hd, k.begin() + n * hd,
                             decode_keys[last].begin() + start * hd))
          << f.name;
    }
    for (int chunk : {2, 5, 16, 37}) {
      KVCache cache(c, n, f.format);
      for (int pos = 0; pos < n; pos += chunk) {
        const int len = std::min(chunk, n - pos);
        cache.store(0, pos, len, &k[pos * hd], &v[pos * hd]);
        std::vector<float> vals(static_cast<size_t>(pos + len) * hd);
        const float* got = cache.values(0, 0, pos + len, vals.data());
        for (int p = pos; p < pos + len; ++p) {
          ASSERT_EQ(keys_seen(cache, p, pos + len, hd), decode_keys[p])
              << f.name << " chunk " << chunk << " query " << p;
          ASSERT_TRUE(std::equal(got, got + (p + 1) * hd, decode_values[p].begin()))
              << f.name << " chunk " << chunk << " query " << p;
        }
      }
    }
  }
}

TEST(KvCache, F32CachesGiveTheSameLogitsInChunksAndBeforeOrAfterRoPE) {
  const LoadedModel m = load_model(testing::embedded_model_dir());
  const std::vector<int32_t> ids = some_tokens(m, 37);
  ThreadPool pool(2);
  Transformer post(m.config, m.weights, pool);
  const std::vector<float> exact = run_in_chunks(post, ids, 37);
  InferenceOptions o;
  o.kv.keys_pre_rope = true;
  Transformer pre(m.config, m.weights, pool, o);
  // fp32 summation order differs between a GEMM over many tokens and a GEMV over one.
  EXPECT_LT(max_abs_diff(exact, run_in_chunks(post, ids, 1)), 2e-4);
  EXPECT_LT(max_abs_diff(exact, run_in_chunks(pre, ids, 37)), 2e-4);
  EXPECT_LT(max_abs_diff(exact, run_in_chunks(pre, ids, 5)), 2e-4);
}

// Quantized caches change the logits (they really are quantized), by an amount that orders as
// their precision does. (Chunked and decoded runs are not compared here: a quantizer turns fp32
// summation noise of 1e-7 into code flips worth ~5e-4 in mean logit, for every format.)
TEST(KvCache, QuantizedCachesStayCloseToF32InOrderOfPrecision) {
  const LoadedModel m = load_model(testing::embedded_model_dir());
  const std::vector<int32_t> ids = some_tokens(m, 37);
  ThreadPool pool(2);
  Transformer f32(m.config, m.weights, pool);
  const std::vector<float> exact = run_in_chunks(f32, ids, 37);
  auto mean_diff = [&](KvCacheFormat f) {
    InferenceOptions o;
    o.kv = f;
    Transformer model(m.config, m.weights, pool, o);
    const std::vector<float> got = run_in_chunks(model, ids, 37);
    double s = 0;
    for (size_t i = 0; i < got.size(); ++i) s += std::fabs(got[i] - exact[i]);
    return s / static_cast<double>(got.size());
  };
  const double int8 = mean_diff({KvType::Int8, false, false, 64});
  const double fp8 = mean_diff({KvType::Fp8E4M3, false, false, 64});
  const double int4 = mean_diff({KvType::Int4, false, false, 64});
  EXPECT_GT(int8, 1e-4);
  EXPECT_LT(int8, fp8);  // 8 bits on a uniform grid beat 3 mantissa bits here
  EXPECT_LT(fp8, int4);
  EXPECT_LT(int4, 0.5);
}

TEST(KvCache, QuantizedCachesAreSmallAndWindowsRestartAtZero) {
  const LoadedModel m = load_model(testing::embedded_model_dir());
  ThreadPool pool(1);
  const std::vector<int32_t> ids = some_tokens(m, 24);
  InferenceOptions o;
  o.kv = {KvType::Int4, true, true, 8};
  Transformer model(m.config, m.weights, pool, o);
  KVCache cache = model.new_cache(64);
  // int4 with fp16 parameters per 64 values: 4.5 bits instead of 32.
  const size_t f32_bytes = KVCache(m.config, 64).bytes();
  EXPECT_LT(KVCache(m.config, 64, {KvType::Int4, true, true, 64}).bytes(), f32_bytes * 4.6 / 32);
  std::vector<float> a(m.config.vocab_size), b(m.config.vocab_size);
  model.forward(ids, 0, cache, a.data(), false);
  model.forward(ids, 0, cache, b.data(), false);  // a new window over the same cache
  EXPECT_EQ(a, b);
  // Continuing inside a packed group would need keys that are no longer stored in fp32 (the next
  // token packs the complete groups [0, 8) and [8, 16)).
  int32_t next = ids.back();
  model.forward({&next, 1}, 24, cache, b.data(), false);
  try {
    model.forward(std::span(ids).first(4), 3, cache, b.data(), false);
    ADD_FAILURE() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of the group size 8"), std::string::npos)
        << e.what();
  }
}

TEST(KvCache, GroupsMustDivideTheHeadDimension) {
  const LoadedModel m = load_model(testing::embedded_model_dir());  // head_dim 64
  KvCacheFormat f{KvType::Int8, false, false, 48};
  EXPECT_THROW(f.validate(m.config), Error);
  f.group = 128;  // larger than a head: one group per head and token
  EXPECT_NO_THROW(f.validate(m.config));
  EXPECT_EQ(KvCacheFormat({KvType::Int4, true, true, 64}).describe(),
            "int4 (keys per channel, pre-RoPE; values per token; group 64; 4.50 bits/value)");
}

TEST(ActivationQuantInForward, EveryQuantizedLinearSeesAnInt8GridPerToken) {
  const LoadedModel m = load_model(testing::embedded_model_dir());
  ThreadPool pool(1);
  InferenceOptions o;
  o.activations = formats::ActivationFormat::Int8;
  o.activation_groups.assign(m.config.num_layers, {true, true, true, true});
  o.activation_groups[1][static_cast<int>(LinearGroup::MlpAct)] = false;  // one group left alone
  Transformer model(m.config, m.weights, pool, o);
  const std::vector<int32_t> ids = some_tokens(m, 9);
  std::vector<float> x(ids.size() * m.config.hidden_size);
  KVCache cache = model.new_cache(9);
  int checked = 0;
  ForwardHooks hooks;
  hooks.on_input = [&](int layer, LinearGroup g, const float* in, int n, int dim) {
    bool all_on_grid = true;
    for (int t = 0; t < n; ++t) {
      float amax = 0;
      for (int i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(in[t * dim + i]));
      for (int i = 0; i < dim; ++i) {
        const double code = in[t * dim + i] / (amax / 127.0);
        all_on_grid = all_on_grid && std::fabs(code - std::nearbyint(code)) < 1e-3;
      }
    }
    EXPECT_EQ(all_on_grid, o.quantizes_input(layer, g)) << layer << " " << static_cast<int>(g);
    ++checked;
  };
  model.embed(ids, x.data());
  for (int l = 0; l < m.config.num_layers; ++l)
    model.run_layer(l, x.data(), static_cast<int>(ids.size()), 0, cache, &hooks);
  EXPECT_EQ(checked, 4 * m.config.num_layers);
}

}  // namespace
}  // namespace qforge
