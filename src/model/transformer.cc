#include "qforge/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "qforge/core/error.h"
#include "qforge/kernels/kernels.h"

namespace qforge {

namespace kn = kernels;

namespace {

// Query rows per attention task in prefill: a block's scores ([64, ctx] f32, 128 KiB at 512
// positions) stay in L2 between its two products, and a block stops at the keys its last row
// sees (causal), which halves the products of a long prompt.
constexpr int kQueryBlock = 64;

// Per-thread attention buffers: decoded keys and values, per-channel keys still in f32, and a
// block's scores. Reached through a function so that every thread constructs (and at its exit
// frees) its own; attention's tasks run on whichever thread claims them.
struct AttentionScratch {
  std::vector<float> kbuf, vbuf, rbuf, scores;
};
AttentionScratch& attention_scratch() {
  thread_local AttentionScratch scratch;
  return scratch;
}
// Prompts of at least this many tokens run their per-token work on the pool, kTokenGrain tokens
// a chunk (a token's norm or residual add is ~100 ns: fewer would not pay for the fork-join).
constexpr int kParallelTokens = 32;
constexpr size_t kTokenGrain = 8;

// The members behind both overloads of linears_of_group (Layer: LayerWeights, const or not).
template <class Layer>
auto group_members(Layer& lw, LinearGroup group) -> std::vector<decltype(&lw.wq)> {
  switch (group) {
    case LinearGroup::AttnIn:
      return {&lw.wq, &lw.wk, &lw.wv};
    case LinearGroup::AttnOut:
      return {&lw.wo};
    case LinearGroup::MlpIn:
      return {&lw.w_gate, &lw.w_up};
    case LinearGroup::MlpAct:
      return {&lw.w_down};
  }
  return {};
}

}  // namespace

std::vector<const Matrix*> linears_of_group(const LayerWeights& lw, LinearGroup group) {
  return group_members(lw, group);
}

std::vector<Matrix*> linears_of_group(LayerWeights& lw, LinearGroup group) {
  return group_members(lw, group);
}

namespace {

std::vector<float> widen(const Vector& v, float add = 0.0f) {
  if (!v.present()) return {};
  std::vector<float> out(static_cast<size_t>(v.size));
  convert_to_f32(v.dtype, v.data, out.data(), out.size());
  if (add != 0.0f)
    for (float& f : out) f += add;
  return out;
}

}  // namespace

std::string InferenceOptions::describe() const {
  std::vector<std::string> parts;
  if (activations != formats::ActivationFormat::None)
    parts.push_back("activations " + formats::activation_format_name(activations) + " per token");
  if (kv.quantized()) parts.push_back("KV " + kv.describe());
  if (activations != formats::ActivationFormat::None && !integer_activations)
    parts.push_back("activation quantization simulated in f32");
  if (online_hadamard_down) parts.push_back("online Hadamard before down_proj");
  if (parts.empty()) return "none";
  std::string s = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) s += "; " + parts[i];
  return s;
}

Transformer::LayerParams Transformer::widen_layer(const LayerWeights& lw) const {
  // Gemma's RMSNorm multiplies by (1 + w); folding the +1 in once is exact in fp32.
  const float norm_add = config_.norm_plus_one ? 1.0f : 0.0f;
  LayerParams p;
  p.attn_norm = widen(lw.attn_norm, norm_add);
  p.ffn_norm = widen(lw.ffn_norm, norm_add);
  p.q_norm = widen(lw.q_norm, norm_add);
  p.k_norm = widen(lw.k_norm, norm_add);
  p.bq = widen(lw.bq);
  p.bk = widen(lw.bk);
  p.bv = widen(lw.bv);
  p.bo = widen(lw.bo);
  p.b_gate = widen(lw.b_gate);
  p.b_up = widen(lw.b_up);
  p.b_down = widen(lw.b_down);
  return p;
}

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, ThreadPool& pool,
                         InferenceOptions options)
    : config_(config), w_(weights), pool_(pool), options_(std::move(options)) {
  check(static_cast<int>(weights.layers.size()) == config.num_layers,
        "model has {} layers of weights but config says {}", weights.layers.size(),
        config.num_layers);
  check(options_.activation_groups.empty() ||
            static_cast<int>(options_.activation_groups.size()) == config.num_layers,
        "activation quantization is given for {} layers but the model has {}",
        options_.activation_groups.size(), config.num_layers);
  options_.kv.validate(config);
  if (options_.online_hadamard_down) down_rotation_.emplace(config.intermediate_size);
  for (const LayerWeights& lw : weights.layers) layer_params_.push_back(widen_layer(lw));
  final_norm_ = widen(weights.final_norm, config.norm_plus_one ? 1.0f : 0.0f);
  // inv_freq[i] = theta^(-2i/d), as Hugging Face computes it (in float32 there; double here).
  const int rd = config.rotary_dim();
  for (int i = 0; i < rd / 2; ++i)
    inv_freq_.push_back(static_cast<double>(static_cast<float>(
        1.0 / std::pow(static_cast<double>(config.rope_theta), (2.0 * i) / rd))));
}

KVCache Transformer::new_cache(int capacity, bool shared_layers) const {
  return KVCache(config_, capacity, options_.kv, shared_layers);
}

void Transformer::refresh_layer(int layer) {
  layer_params_.at(static_cast<size_t>(layer)) =
      widen_layer(w_.layers.at(static_cast<size_t>(layer)));
}

void Transformer::ensure_scratch(int n) {
  if (n <= scratch_n_) return;
  scratch_n_ = n;
  const size_t d = config_.hidden_size, qd = config_.q_dim(), kvd = config_.kv_dim(),
               ff = config_.intermediate_size;
  x_.resize(n * d);
  xn_.resize(n * d);
  q_.resize(n * qd);
  k_.resize(n * kvd);
  v_.resize(n * kvd);
  attn_out_.resize(n * std::max(qd, d));
  gate_.resize(n * ff);
  up_.resize(n * ff);
}

void Transformer::ensure_rope(int end) {
  if (end <= rope_end_) return;
  const size_t half = inv_freq_.size();
  cos_.resize(static_cast<size_t>(end) * half);
  sin_.resize(static_cast<size_t>(end) * half);
  for (int p = rope_end_; p < end; ++p) {
    for (size_t i = 0; i < half; ++i) {
      // Position times frequency in float32 (as the reference does), then cos/sin in double.
      const float angle = static_cast<float>(p) * static_cast<float>(inv_freq_[i]);
      cos_[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  rope_end_ = end;
}

// RoPE on `count` keys of one head (stride head_dim) at positions first_pos, first_pos + 1, ...
void Transformer::rope_keys(float* keys, int first_pos, int count) const {
  const size_t half = inv_freq_.size();
  const bool interleaved = config_.rope_layout == RopeLayout::Interleaved;
  for (int j = 0; j < count; ++j)
    kn::rope(keys + static_cast<size_t>(j) * config_.head_dim, 1, config_.head_dim,
             config_.rotary_dim(), &cos_[(first_pos + j) * half], &sin_[(first_pos + j) * half],
             interleaved);
}

void Transformer::attention(int layer, int n, int pos, KVCache& cache) {
  const ModelConfig& c = config_;
  const int hd = c.head_dim, qd = c.q_dim();
  const int group = c.num_heads / c.num_kv_heads;
  const int ctx = pos + n;
  const bool pre_rope = cache.format().keys_pre_rope;
  // Quantized or pre-RoPE keys and values are decoded into scratch, a KV head at a time.
  const bool decoded = cache.format().quantized() || pre_rope;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int blocks = (n + kQueryBlock - 1) / kQueryBlock;

  // The keys and values of one KV head as the products read them: in place, or decoded into the
  // running thread's buffers (attention_scratch). recent >= 0: per-channel keys, rbuf holds the f32
  // keys of [recent, ctx).
  struct KvHead {
    const float *keys = nullptr, *values = nullptr;
    int recent = -1;
  };
  auto load_kv_head = [&](int kvh) {
    AttentionScratch& scratch = attention_scratch();  // the running thread's
    std::vector<float>& kbuf = scratch.kbuf;
    std::vector<float>& vbuf = scratch.vbuf;
    std::vector<float>& rbuf = scratch.rbuf;
    if (decoded) {
      kbuf.resize(static_cast<size_t>(ctx) * hd);
      vbuf.resize(static_cast<size_t>(ctx) * hd);
      rbuf.resize(static_cast<size_t>(ctx) * hd);
    }
    KvHead kv;
    kv.keys = cache.keys(layer, kvh, ctx, kbuf.data());
    kv.recent = cache.recent_keys(layer, kvh, ctx, rbuf.data());
    if (pre_rope) {  // stored before RoPE: rotate now, at each key's own position
      if (kv.keys != kbuf.data()) std::copy_n(kv.keys, static_cast<size_t>(ctx) * hd, kbuf.data());
      rope_keys(kbuf.data(), 0, ctx);
      kv.keys = kbuf.data();
      if (kv.recent >= 0) rope_keys(rbuf.data(), kv.recent, ctx - kv.recent);
    }
    kv.values = cache.values(layer, kvh, ctx, vbuf.data());
    return kv;
  };
  // Query rows [t0, t1) of head h. Causal: the block's last row sees positions [0, pos + t1), so
  // the products stop there.
  auto attend_rows = [&](int h, int t0, int t1, const KvHead& kv) {
    const int rows = t1 - t0, width = pos + t1;
    const float* qh = &q_[static_cast<size_t>(t0) * qd + static_cast<size_t>(h) * hd];
    AttentionScratch& scratch = attention_scratch();  // the running thread's
    std::vector<float>& scores = scratch.scores;
    scores.resize(static_cast<size_t>(rows) * width);
    // scores = scale * Q_h K_hᵀ, [rows, width]
    kn::sgemm_nt(rows, width, hd, scale, qh, qd, kv.keys, hd, 0.0f, scores.data(), width);
    for (int t = 0; t < rows; ++t) {
      float* row = &scores[static_cast<size_t>(t) * width];
      const int visible = pos + t0 + t + 1;  // causal: positions [0, pos + t0 + t]
      if (kv.recent >= 0) {  // per-channel keys: this query's own group, unquantized
        const int start = (visible - 1) / cache.format().group * cache.format().group;
        check(start >= kv.recent, "internal: the keys of position {} are not in f32", start);
        for (int j = start; j < visible; ++j)
          row[j] = scale * kn::dot_row(DType::F32,
                                       reinterpret_cast<const std::byte*>(
                                           &scratch.rbuf[static_cast<size_t>(j - kv.recent) * hd]),
                                       &qh[static_cast<size_t>(t) * qd], hd);
      }
      kn::softmax(row, visible);
      std::fill(row + visible, row + width, 0.0f);
    }
    // out_h = P V_h, [rows, hd], written into its head's slice of attn_out
    kn::sgemm_nn(rows, hd, width, scores.data(), width, kv.values, hd,
                 &attn_out_[static_cast<size_t>(t0) * qd + static_cast<size_t>(h) * hd], qd);
  };

  if (decoded) {
    // Chunks of whole KV groups, so that each KV head's cache is decoded by one thread, once.
    pool_.parallel_for(
        c.num_heads,
        [&](size_t h0, size_t h1, int) {
          int loaded = -1;  // query heads of one KV head are adjacent
          KvHead kv;
          for (size_t h = h0; h < h1; ++h) {
            const int kvh = static_cast<int>(h) / group;
            if (kvh != loaded) kv = load_kv_head(kvh), loaded = kvh;
            for (int b = 0; b < blocks; ++b)
              attend_rows(static_cast<int>(h), b * kQueryBlock, std::min(n, (b + 1) * kQueryBlock),
                          kv);
          }
        },
        static_cast<size_t>(group));
    return;
  }
  // Read in place: every (head, query block) is a task of its own, which balances the threads
  // better than whole KV groups (qwen-bpe-31m has 3 for 2 threads).
  pool_.parallel_for(static_cast<size_t>(c.num_heads) * blocks, [&](size_t i0, size_t i1, int) {
    for (size_t i = i0; i < i1; ++i) {
      const int h = static_cast<int>(i) / blocks, b = static_cast<int>(i) % blocks;
      attend_rows(h, b * kQueryBlock, std::min(n, (b + 1) * kQueryBlock), load_kv_head(h / group));
    }
  });
}

void Transformer::forward(std::span<const int32_t> tokens, int pos, KVCache& cache, float* logits,
                          bool all_logits) {
  const int n = static_cast<int>(tokens.size());
  check(n > 0, "forward: no tokens");
  check(pos >= 0 && pos + n <= cache.capacity(),
        "forward: positions [{}, {}) exceed the KV cache capacity {}", pos, pos + n,
        cache.capacity());
  ensure_scratch(n);
  embed(tokens, x_.data());
  for (int l = 0; l < config_.num_layers; ++l) run_layer(l, x_.data(), n, pos, cache);
  const int first = all_logits ? 0 : n - 1;
  output(x_.data() + static_cast<size_t>(first) * config_.hidden_size, n - first, logits);
}

void Transformer::embed(std::span<const int32_t> tokens, float* x) {
  const int d = config_.hidden_size;
  // Gemma scales embeddings by sqrt(hidden), rounded to f32 as the reference does.
  const float scale = config_.scale_embeddings ? std::sqrt(static_cast<float>(d)) : 1.0f;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int32_t id = tokens[t];
    check(id >= 0 && id < w_.embedding.rows, "token id {} out of range [0, {})", id,
          w_.embedding.rows);
    float* xt = x + t * d;
    if (w_.embedding.packed())
      w_.embedding.rows_to_f32(id, 1, xt);  // a packed embedding is decoded row by row
    else
      kn::widen_row(w_.embedding.dtype, w_.embedding.row(id), xt, d);
    if (scale != 1.0f)
      for (int i = 0; i < d; ++i) xt[i] *= scale;
  }
}

void Transformer::run_layer(int l, float* x, int n, int pos, KVCache& cache,
                            const ForwardHooks* hooks) {
  const ModelConfig& c = config_;
  ensure_scratch(n);
  ensure_rope(pos + n);
  const int d = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.intermediate_size,
            hd = c.head_dim;
  const float eps = c.rms_norm_eps;
  const size_t half = inv_freq_.size();
  const LayerWeights& lw = w_.layers[l];
  const LayerParams& lp = layer_params_[l];
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  // Per-token work between the products (norms, RoPE, residual adds, the gated activation) runs on
  // the pool in prefill. Each token is computed on its own, so the split changes no result.
  auto per_token = [&](const std::function<void(int, int)>& fn) {
    if (n < kParallelTokens) return fn(0, n);
    pool_.parallel_for(
        static_cast<size_t>(n),
        [&](size_t t0, size_t t1, int) { fn(static_cast<int>(t0), static_cast<int>(t1)); },
        kTokenGrain);
  };
  // A group's input as its linears see it (activation-quantized when asked), reported to the
  // hooks; returns true when the hooks ask to stop after it.
  auto linear_input = [&](LinearGroup g, float* in, int dim, kn::InputQuant integer) {
    if (options_.quantizes_input(l, g) && integer == kn::InputQuant::None)
      formats::fake_quantize_activations(options_.activations, in, n, dim);
    if (hooks == nullptr) return false;
    if (hooks->on_input) hooks->on_input(l, g, in, n, dim);
    return hooks->stop_after == g;
  };

  // W8A8 / W4A8 when decoding: a group's int8 activations go to the integer kernels as they are
  // (int8 x int -> int32, per-token and per-channel scales); elsewhere (prefill, formats without an
  // integer kernel, calibration hooks) they are simulated in f32 with the same rounding.
  const bool watched = hooks != nullptr && hooks->on_input;
  auto integer_input = [&](LinearGroup g, std::initializer_list<const Matrix*> linears) {
    if (!options_.quantizes_input(l, g) || watched || !options_.integer_activations ||
        options_.activations != formats::ActivationFormat::Int8)
      return kn::InputQuant::None;
    for (const Matrix* m : linears)
      if (!kn::runs_int8_activations(*m, n)) return kn::InputQuant::None;
    return kn::InputQuant::Int8PerToken;
  };
  // Calibration resumes a layer where its last partial run stopped (ForwardHooks::start_at):
  // the steps before that group are skipped, and a stored input replaces the one they made.
  const int start = hooks != nullptr && hooks->start_at ? static_cast<int>(*hooks->start_at) : 0;
  auto runs = [&](LinearGroup g) { return start <= static_cast<int>(g); };
  auto resume_input = [&](LinearGroup g, float* in, int dim) {
    if (start != static_cast<int>(g)) return false;
    check(hooks->start_input != nullptr, "run_layer: resuming at a group needs its input");
    std::copy_n(hooks->start_input, static_cast<size_t>(n) * dim, in);
    return true;
  };

  // --- attention block
  if (runs(LinearGroup::AttnIn)) {
    per_token([&](int t0, int t1) {
      for (int t = t0; t < t1; ++t)
        kn::rmsnorm(&x[t * d], lp.attn_norm.data(), eps, d, &xn_[t * d]);
    });
    const kn::InputQuant attn_in = integer_input(LinearGroup::AttnIn, {&lw.wq, &lw.wk, &lw.wv});
    if (linear_input(LinearGroup::AttnIn, xn_.data(), d, attn_in)) return;
    const kn::LinearTarget qkv[] = {{&lw.wq, q_.data(), qd, bias(lp.bq)},
                                    {&lw.wk, k_.data(), kvd, bias(lp.bk)},
                                    {&lw.wv, v_.data(), kvd, bias(lp.bv)}};
    kn::matmul_group(qkv, xn_.data(), n, pool_, attn_in);
    const bool interleaved = c.rope_layout == RopeLayout::Interleaved;
    const bool pre_rope = cache.format().keys_pre_rope;
    per_token([&](int t0, int t1) {
      for (int t = t0; t < t1; ++t) {
        float* qt = &q_[t * qd];
        float* kt = &k_[t * kvd];
        if (c.qk_norm) {  // Qwen3: RMSNorm over each head before RoPE
          for (int h = 0; h < c.num_heads; ++h)
            kn::rmsnorm(qt + h * hd, lp.q_norm.data(), eps, hd, qt + h * hd);
          for (int h = 0; h < c.num_kv_heads; ++h)
            kn::rmsnorm(kt + h * hd, lp.k_norm.data(), eps, hd, kt + h * hd);
        }
        const float* cs = &cos_[(pos + t) * half];
        const float* sn = &sin_[(pos + t) * half];
        kn::rope(qt, c.num_heads, hd, c.rotary_dim(), cs, sn, interleaved);
        if (!pre_rope) kn::rope(kt, c.num_kv_heads, hd, c.rotary_dim(), cs, sn, interleaved);
      }
    });
    cache.store(l, pos, n, k_.data(), v_.data());
    attention(l, n, pos, cache);
  }
  if (runs(LinearGroup::AttnOut)) {
    kn::InputQuant attn_out = kn::InputQuant::None;
    if (!resume_input(LinearGroup::AttnOut, attn_out_.data(), qd)) {
      attn_out = integer_input(LinearGroup::AttnOut, {&lw.wo});
      if (linear_input(LinearGroup::AttnOut, attn_out_.data(), qd, attn_out)) return;
    }
    kn::matmul(lw.wo, attn_out_.data(), n, xn_.data(), d, pool_, bias(lp.bo), attn_out);
    per_token([&](int t0, int t1) {
      for (int i = t0 * d; i < t1 * d; ++i) x[i] += xn_[i];
    });
  }

  // --- MLP block
  if (runs(LinearGroup::MlpIn)) {
    per_token([&](int t0, int t1) {
      for (int t = t0; t < t1; ++t) kn::rmsnorm(&x[t * d], lp.ffn_norm.data(), eps, d, &xn_[t * d]);
    });
    const kn::InputQuant mlp_in = integer_input(LinearGroup::MlpIn, {&lw.w_gate, &lw.w_up});
    if (linear_input(LinearGroup::MlpIn, xn_.data(), d, mlp_in)) return;
    const kn::LinearTarget gate_up[] = {{&lw.w_gate, gate_.data(), ff, bias(lp.b_gate)},
                                        {&lw.w_up, up_.data(), ff, bias(lp.b_up)}};
    kn::matmul_group(gate_up, xn_.data(), n, pool_, mlp_in);
    per_token([&](int t0, int t1) {
      const size_t at = static_cast<size_t>(t0) * ff;
      const int64_t count = static_cast<int64_t>(t1 - t0) * ff;
      if (c.activation == Activation::GeluTanh)
        kn::gelu_tanh_mul(gate_.data() + at, up_.data() + at, count);
      else
        kn::silu_mul(gate_.data() + at, up_.data() + at, count);
    });
    if (down_rotation_) down_rotation_->apply(gate_.data(), n);
  }
  kn::InputQuant mlp_act = kn::InputQuant::None;
  if (!resume_input(LinearGroup::MlpAct, gate_.data(), ff)) {
    mlp_act = integer_input(LinearGroup::MlpAct, {&lw.w_down});
    if (linear_input(LinearGroup::MlpAct, gate_.data(), ff, mlp_act)) return;
  }
  kn::matmul(lw.w_down, gate_.data(), n, xn_.data(), d, pool_, bias(lp.b_down), mlp_act);
  per_token([&](int t0, int t1) {
    for (int i = t0 * d; i < t1 * d; ++i) x[i] += xn_[i];
  });
}

void Transformer::output(const float* x, int n, float* logits) {
  const int d = config_.hidden_size;
  ensure_scratch(n);
  for (int t = 0; t < n; ++t)
    kn::rmsnorm(&x[t * d], final_norm_.data(), config_.rms_norm_eps, d, &xn_[t * d]);
  kn::matmul(w_.lm_head, xn_.data(), n, logits, config_.vocab_size, pool_);
}

void Transformer::final_norm(const float* x, int n, float* out) const {
  const int d = config_.hidden_size;
  for (int t = 0; t < n; ++t)
    kn::rmsnorm(&x[t * d], final_norm_.data(), config_.rms_norm_eps, d, &out[t * d]);
}

size_t Transformer::weight_bytes_per_token() const {
  size_t bytes = w_.embedding.row_bytes() + w_.lm_head.nbytes();
  auto vec = [](const Vector& v) { return v.present() ? v.size * dtype_size(v.dtype) : 0; };
  for (const LayerWeights& lw : w_.layers) {
    for (const Matrix* m : {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down})
      bytes += m->nbytes();
    for (const Vector* v : {&lw.attn_norm, &lw.ffn_norm, &lw.q_norm, &lw.k_norm, &lw.bq, &lw.bk,
                            &lw.bv, &lw.bo, &lw.b_gate, &lw.b_up, &lw.b_down})
      bytes += vec(*v);
  }
  return bytes + vec(w_.final_norm);
}

int64_t Transformer::parameter_count() const {
  int64_t n = w_.embedding.rows * w_.embedding.cols;
  if (w_.lm_head.data != w_.embedding.data) n += w_.lm_head.rows * w_.lm_head.cols;
  auto vec = [](const Vector& v) { return v.present() ? v.size : 0; };
  for (const LayerWeights& lw : w_.layers) {
    for (const Matrix* m : {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down})
      n += m->rows * m->cols;
    for (const Vector* v : {&lw.attn_norm, &lw.ffn_norm, &lw.q_norm, &lw.k_norm, &lw.bq, &lw.bk,
                            &lw.bv, &lw.bo, &lw.b_gate, &lw.b_up, &lw.b_down})
      n += vec(*v);
  }
  return n + vec(w_.final_norm);
}

}  // namespace qforge
