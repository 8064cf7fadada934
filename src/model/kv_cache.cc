#include "qforge/model/kv_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "qforge/core/dtype.h"
#include "qforge/core/error.h"
#include "qforge/formats/minifloat.h"
#include "qforge/kernels/kernels.h"

namespace qforge {

using formats::KvGroupParams;
using formats::KvType;

namespace {

float scale_of(KvGroupParams p) {
  return f16_to_f32(p.scale);
}
float offset_of(KvType t, KvGroupParams p) {
  return t == KvType::Fp8E4M3 ? 0.0f : f16_to_f32(p.offset);
}

}  // namespace

std::string KvCacheFormat::describe() const {
  if (!quantized()) return "f32";
  const std::string keys = keys_per_channel ? "per channel" : "per token";
  return fmt::format("{} (keys {}, {}-RoPE; values per token; group {}; {:.2f} bits/value)",
                     formats::kv_type_name(type), keys, keys_pre_rope ? "pre" : "post", group,
                     formats::kv_bits_per_value(type, group));
}

void KvCacheFormat::validate(const ModelConfig& c) const {
  if (!quantized()) return;
  check(group >= 1, "KV cache group size must be positive (got {})", group);
  const int token_group = std::min(group, c.head_dim);
  check(c.head_dim % token_group == 0,
        "KV cache group size {} does not divide head_dim {}: per-token groups split a head's "
        "channels evenly",
        group, c.head_dim);
}

KVCache::KVCache(const ModelConfig& c, int capacity, const KvCacheFormat& format,
                 bool shared_layers)
    : capacity_(capacity),
      kv_heads_(c.num_kv_heads),
      head_dim_(c.head_dim),
      slots_(shared_layers ? 1 : c.num_layers),
      format_(format),
      token_group_(std::min(format.group, c.head_dim)) {
  check(capacity > 0, "KV cache capacity must be positive (got {})", capacity);
  format.validate(c);
  heads_.resize(static_cast<size_t>(slots_) * kv_heads_);
  const size_t elems = static_cast<size_t>(capacity) * head_dim_;
  for (Head& h : heads_) {
    if (!format_.quantized()) {
      h.k.assign(elems, 0.0f);
      h.v.assign(elems, 0.0f);
      continue;
    }
    const size_t code_bytes = elems * formats::kv_bits(format_.type) / 8;
    h.k_codes.assign(code_bytes, 0);
    h.v_codes.assign(code_bytes, 0);
    h.v_params.resize(elems / token_group_);
    if (format_.keys_per_channel)
      h.k_params.resize(static_cast<size_t>((capacity + format_.group - 1) / format_.group) *
                        head_dim_);
    else
      h.k_params.resize(elems / token_group_);
  }
}

KVCache::Head& KVCache::head(int layer, int kv_head) {
  return heads_[static_cast<size_t>(slots_ == 1 ? 0 : layer) * kv_heads_ + kv_head];
}
const KVCache::Head& KVCache::head(int layer, int kv_head) const {
  return heads_[static_cast<size_t>(slots_ == 1 ? 0 : layer) * kv_heads_ + kv_head];
}

void KVCache::put_code(std::vector<uint8_t>& codes, size_t i, uint8_t code) const {
  if (format_.type != KvType::Int4) {
    codes[i] = code;
    return;
  }
  uint8_t& b = codes[i / 2];  // two codes per byte, the even index in the low nibble
  b = (i & 1) ? static_cast<uint8_t>((b & 0x0f) | (code << 4))
              : static_cast<uint8_t>((b & 0xf0) | code);
}

void KVCache::store_per_token(std::vector<uint8_t>& codes, std::vector<KvGroupParams>& params,
                              int pos, const float* x) {
  const int groups = head_dim_ / token_group_;
  for (int g = 0; g < groups; ++g) {
    const float* xg = x + g * token_group_;
    const KvGroupParams p = formats::kv_choose_params(format_.type, xg, token_group_, 1);
    params[static_cast<size_t>(pos) * groups + g] = p;
    const size_t base = static_cast<size_t>(pos) * head_dim_ + g * token_group_;
    for (int i = 0; i < token_group_; ++i)
      put_code(codes, base + i, formats::kv_encode(format_.type, xg[i], p));
  }
}

void KVCache::dequantize_per_token(const std::vector<uint8_t>& codes,
                                   const std::vector<KvGroupParams>& params, int begin, int end,
                                   float* out) const {
  const int groups = head_dim_ / token_group_;
  for (int j = begin; j < end; ++j)
    for (int g = 0; g < groups; ++g) {
      const KvGroupParams p = params[static_cast<size_t>(j) * groups + g];
      const size_t first = static_cast<size_t>(j) * head_dim_ + g * token_group_;
      kernels::kv_dequantize(format_.type, codes.data(), first, token_group_, scale_of(p),
                             offset_of(format_.type, p), out + first);
    }
}

// Row j of per-channel key codes, with each channel's scale and offset.
void KVCache::dequantize_key_row(const uint8_t* codes, int j, const float* scale,
                                 const float* offset, float* out) const {
  kernels::kv_dequantize_channels(format_.type, codes, static_cast<size_t>(j) * head_dim_,
                                  static_cast<size_t>(head_dim_), scale, offset, out);
}

// Encodes the keys x[j * head_dim + d] of one group (G positions) per channel d: params[d] and the
// codes at code index first + j * head_dim + d.
void KVCache::encode_key_group(const float* x, std::vector<uint8_t>& codes, size_t first,
                               KvGroupParams* params) const {
  const int G = format_.group;
  for (int d = 0; d < head_dim_; ++d) {
    const KvGroupParams p = formats::kv_choose_params(format_.type, x + d, G, head_dim_);
    params[d] = p;
    for (int j = 0; j < G; ++j)
      put_code(codes, first + static_cast<size_t>(j) * head_dim_ + d,
               formats::kv_encode(format_.type, x[static_cast<size_t>(j) * head_dim_ + d], p));
  }
}

// Each channel's scale and offset from its group parameters.
void KVCache::channel_affine(const KvGroupParams* params, float* scale, float* offset) const {
  for (int d = 0; d < head_dim_; ++d) {
    scale[d] = scale_of(params[d]);
    offset[d] = offset_of(format_.type, params[d]);
  }
}

// Packs the complete key group starting at `start` (the oldest in the open region) into codes.
void KVCache::pack_key_group(Head& h, int start) {
  encode_key_group(h.open.data() + static_cast<size_t>(start - h.open_start) * head_dim_, h.k_codes,
                   static_cast<size_t>(start) * head_dim_,
                   &h.k_params[static_cast<size_t>(start / format_.group) * head_dim_]);
}

// Open keys of [open_start, end) as keys() returns them: each group complete within end quantized
// with parameters over its positions (what pack_key_group will store), an incomplete last group in
// f32.
void KVCache::open_keys_as_read(const Head& h, int end, float* out) const {
  const int G = format_.group;
  // Encoded and decoded by the same code as a packed group, so both read bit-identically.
  std::vector<uint8_t> codes(static_cast<size_t>(G) * head_dim_ * formats::kv_bits(format_.type) /
                             8);
  std::vector<KvGroupParams> params(static_cast<size_t>(head_dim_));
  std::vector<float> scale(params.size()), offset(params.size());
  for (int s = h.open_start; s < end; s += G) {
    const float* x = h.open.data() + static_cast<size_t>(s - h.open_start) * head_dim_;
    float* o = out + static_cast<size_t>(s - h.open_start) * head_dim_;
    if (s + G > end) {
      std::copy_n(x, static_cast<size_t>(end - s) * head_dim_, o);
      break;
    }
    encode_key_group(x, codes, 0, params.data());
    channel_affine(params.data(), scale.data(), offset.data());
    for (int j = 0; j < G; ++j)
      dequantize_key_row(codes.data(), j, scale.data(), offset.data(),
                         o + static_cast<size_t>(j) * head_dim_);
  }
}

void KVCache::store(int layer, int pos, int n, const float* k, const float* v) {
  check(pos >= 0 && n >= 0 && pos + n <= capacity_,
        "KV cache: positions [{}, {}) exceed its capacity {}", pos, pos + n, capacity_);
  const int kvd = kv_heads_ * head_dim_;
  const size_t hd = static_cast<size_t>(head_dim_);
  for (int hi = 0; hi < kv_heads_; ++hi) {
    Head& h = head(layer, hi);
    if (!format_.quantized()) {
      for (int t = 0; t < n; ++t) {
        std::memcpy(&h.k[(pos + t) * hd], k + t * kvd + hi * hd, hd * sizeof(float));
        std::memcpy(&h.v[(pos + t) * hd], v + t * kvd + hi * hd, hd * sizeof(float));
      }
      continue;
    }
    for (int t = 0; t < n; ++t)
      store_per_token(h.v_codes, h.v_params, pos + t, v + t * kvd + hi * hd);
    if (!format_.keys_per_channel) {
      for (int t = 0; t < n; ++t)
        store_per_token(h.k_codes, h.k_params, pos + t, k + t * kvd + hi * hd);
      continue;
    }
    const int G = format_.group;
    check(pos <= h.open_end, "KV cache: position {} stored before position {}", pos, h.open_end);
    if (pos < h.open_start) {  // a new window: restart at a group boundary
      check(pos % G == 0,
            "KV cache: cannot restart per-channel key groups at position {} (not a multiple of "
            "the group size {})",
            pos, G);
      h.open_start = pos;
      h.open.clear();
    }
    h.open_end = pos;
    // Groups that end before pos's group are complete: pack them, keep the rest open.
    const int keep_from = pos / G * G;
    for (; h.open_start + G <= keep_from; h.open_start += G) {
      pack_key_group(h, h.open_start);
      h.open.erase(h.open.begin(), h.open.begin() + static_cast<ptrdiff_t>(G * hd));
    }
    h.open.resize(static_cast<size_t>(pos + n - h.open_start) * hd);
    for (int t = 0; t < n; ++t)
      std::memcpy(&h.open[(pos + t - h.open_start) * hd], k + t * kvd + hi * hd,
                  hd * sizeof(float));
    h.open_end = pos + n;
  }
}

const float* KVCache::keys(int layer, int kv_head, int ctx, float* scratch) const {
  const Head& h = head(layer, kv_head);
  if (!format_.quantized()) return h.k.data();
  if (!format_.keys_per_channel) {
    dequantize_per_token(h.k_codes, h.k_params, 0, ctx, scratch);
    return scratch;
  }
  check(ctx <= h.open_end, "KV cache: reading {} positions but {} are stored", ctx, h.open_end);
  const int packed = std::min(ctx, h.open_start);
  std::vector<float> scale(static_cast<size_t>(head_dim_)), offset(scale.size());
  for (int j = 0; j < packed; ++j) {
    if (j % format_.group == 0)  // a new group of positions: its per-channel parameters
      channel_affine(&h.k_params[static_cast<size_t>(j / format_.group) * head_dim_], scale.data(),
                     offset.data());
    dequantize_key_row(h.k_codes.data(), j, scale.data(), offset.data(),
                       scratch + static_cast<size_t>(j) * head_dim_);
  }
  if (ctx > h.open_start)
    open_keys_as_read(h, ctx, scratch + static_cast<size_t>(h.open_start) * head_dim_);
  return scratch;
}

const float* KVCache::values(int layer, int kv_head, int ctx, float* scratch) const {
  const Head& h = head(layer, kv_head);
  if (!format_.quantized()) return h.v.data();
  dequantize_per_token(h.v_codes, h.v_params, 0, ctx, scratch);
  return scratch;
}

int KVCache::recent_keys(int layer, int kv_head, int ctx, float* out) const {
  if (!format_.quantized() || !format_.keys_per_channel) return -1;
  const Head& h = head(layer, kv_head);
  check(ctx <= h.open_end, "KV cache: reading {} positions but {} are stored", ctx, h.open_end);
  if (ctx > h.open_start)
    std::copy_n(h.open.data(), static_cast<size_t>(ctx - h.open_start) * head_dim_, out);
  return h.open_start;
}

size_t KVCache::bytes() const {
  size_t n = 0;
  for (const Head& h : heads_)
    n += (h.k.size() + h.v.size() + h.open.size()) * sizeof(float) + h.k_codes.size() +
         h.v_codes.size() + (h.k_params.size() + h.v_params.size()) * sizeof(KvGroupParams);
  return n;
}

}  // namespace qforge
