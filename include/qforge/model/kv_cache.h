// The keys and values of every layer, fp32 or quantized (formats/kv_quant.h).
//
// Layout: [layer][kv_head][position][head_dim], so one head's keys are contiguous for attention.
// Quantized caches group values for their scales in one of two ways:
//   per token:   the channels of one position, `group` at a time (values always; keys optionally)
//   per channel: keys only, one channel over `group` consecutive positions (KIVI, KVQuant), which
//                follows the large per-channel magnitudes of keys; optionally stored before RoPE
//                (KVQuant: RoPE mixes channel pairs at a position-dependent angle, which smears
//                those magnitudes) and rotated when read.
// Attention always reads the quantized cache, in prefill too. Per-channel key groups are quantized
// once complete; a query at position p reads the keys of its own, incomplete group [p's group
// start, p] in f32 (KIVI's full-precision residual) — exactly what token-by-token decoding reads.
// A chunked prefill therefore computes what a decode of the same tokens computes (up to fp32
// summation order), and nothing is quantized twice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qforge/formats/kv_quant.h"
#include "qforge/model/config.h"

namespace qforge {

struct KvCacheFormat {
  formats::KvType type = formats::KvType::F32;
  bool keys_per_channel = false;  // else keys per token, like values
  bool keys_pre_rope = false;     // store keys before RoPE and rotate them when read
  int group = 64;                 // values sharing parameters (channels, or positions per channel)

  bool quantized() const { return type != formats::KvType::F32; }
  // "int4 (keys per channel, pre-RoPE; values per token; group 64; 4.50 bits/value)"
  std::string describe() const;
  // Refuses a group the model's head_dim cannot take, naming the rule.
  void validate(const ModelConfig& config) const;
};

class KVCache {
 public:
  // shared_layers: one slot that every layer uses in turn, for layer-at-a-time passes that run a
  // whole sequence through one layer before the next (calibration); memory does not grow with
  // depth then.
  KVCache(const ModelConfig& config, int capacity, const KvCacheFormat& format = {},
          bool shared_layers = false);
  int capacity() const { return capacity_; }
  const KvCacheFormat& format() const { return format_; }

  // Stores positions [pos, pos + n) of one layer; k and v are [n, kv_dim]. Earlier positions stay,
  // later ones are forgotten (a new window may start again at 0). With per-channel keys, `pos`
  // must lie in the newest open group or start a group; the keys of the group holding `pos` and
  // of the new positions stay in fp32 until the next store (their queries read their own groups
  // unquantized), complete groups before them are packed.
  void store(int layer, int pos, int n, const float* k, const float* v);

  // Keys / values of positions [0, ctx) of one kv head as f32 [ctx, head_dim]: for an f32 cache a
  // pointer into it, else dequantized into `scratch` (ctx * head_dim floats). Keys are as stored
  // (pre-RoPE when keys_pre_rope). With per-channel keys every group complete within ctx is
  // quantized (as packing quantizes it) and an incomplete last group is in f32.
  const float* keys(int layer, int kv_head, int ctx, float* scratch) const;
  const float* values(int layer, int kv_head, int ctx, float* scratch) const;

  // Per-channel keys: the f32 keys of positions [first, ctx) into out [(ctx - first), head_dim],
  // for queries at p >= first to read their own group [p / group * group, p] unquantized. Returns
  // first (a group boundary at or before the first position of the last store), or -1 when keys
  // are not per channel.
  int recent_keys(int layer, int kv_head, int ctx, float* out) const;

  // Bytes held for cached positions (codes, parameters, open groups).
  size_t bytes() const;

 private:
  struct Head {               // one (layer slot, kv head)
    std::vector<float> k, v;  // f32 caches
    std::vector<uint8_t> k_codes, v_codes;
    std::vector<formats::KvGroupParams> k_params, v_params;
    // Per-channel keys: f32 keys of positions [open_start, open_end) not yet packed into codes.
    std::vector<float> open;
    int open_start = 0, open_end = 0;
  };
  Head& head(int layer, int kv_head);
  const Head& head(int layer, int kv_head) const;
  void put_code(std::vector<uint8_t>& codes, size_t index, uint8_t code) const;
  void store_per_token(std::vector<uint8_t>& codes, std::vector<formats::KvGroupParams>& params,
                       int pos, const float* x);
  void dequantize_per_token(const std::vector<uint8_t>& codes,
                            const std::vector<formats::KvGroupParams>& params, int begin, int end,
                            float* out) const;
  void encode_key_group(const float* x, std::vector<uint8_t>& codes, size_t first,
                        formats::KvGroupParams* params) const;
  void channel_affine(const formats::KvGroupParams* params, float* scale, float* offset) const;
  void pack_key_group(Head& h, int start);
  void open_keys_as_read(const Head& h, int end, float* out) const;
  void dequantize_key_row(const uint8_t* codes, int j, const float* scale, const float* offset,
                          float* out) const;

  int capacity_, kv_heads_, head_dim_, slots_;
  KvCacheFormat format_;
  int token_group_;  // channels per parameter set for per-token grouping
  std::vector<Head> heads_;
};

}  // namespace qforge
