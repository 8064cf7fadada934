// GGUF block codecs. Dequantization follows llama.cpp's ggml-quants.c operation for operation
// (float arithmetic in the same order) so that results match bit for bit; quantization implements
// the reference quantizers' algorithms (make_qkx2_quants, make_q3_quants, make_qx_quants, the
// IQ4 scale search) from their descriptions.
#include "formats/gguf_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qforge/core/dtype.h"
#include "qforge/formats/gguf_blocks.h"

namespace qforge::formats::gguf {

void q3_scales(const uint8_t* packed, int8_t* scales) {
  constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  uint32_t aux[4];
  std::memcpy(aux, packed, 12);
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  std::memcpy(scales, aux, 16);
}

namespace {

constexpr float kGroupMaxEps = 1e-15f;

float h2f(uint16_t h) {
  return f16_to_f32(h);
}
uint16_t f2h(float f) {
  return f32_to_f16(f);
}

// Round to nearest, ties to even (llama.cpp's nearest_int, valid for |x| < 2^22).
int nearest_int(float x) {
  return static_cast<int>(std::nearbyint(x));
}

// The value of largest magnitude (with its sign), and optionally that magnitude.
float signed_absmax(const float* x, int n, float* amax_out = nullptr) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  if (amax_out) *amax_out = amax;
  return max;
}

template <typename B>
B* as(uint8_t* p) {
  return reinterpret_cast<B*>(p);
}
template <typename B>
const B* as(const uint8_t* p) {
  return reinterpret_cast<const B*>(p);
}

// ---------------------------------------------------------------- Q4_0, Q4_1, Q5_0, Q5_1, Q8_0

void deq_q4_0(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ4_0>(p);
  const float d = h2f(b->d);
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = (b->qs[j] & 0x0F) - 8, x1 = (b->qs[j] >> 4) - 8;
    y[j] = x0 * d;
    y[j + kQK / 2] = x1 * d;
  }
}
void q_q4_0(const float* x, uint8_t* p) {
  auto* b = as<BlockQ4_0>(p);
  const float max = signed_absmax(x, kQK);
  const float d = max / -8;
  b->d = f2h(d);
  const float id = d ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK / 2; ++j) {
    const auto x0 =
        static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f))));
    const auto x1 = static_cast<uint8_t>(
        std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f))));
    b->qs[j] = x0 | (x1 << 4);
  }
}
void rq_q4_0(const float* x, uint8_t* p) {
  auto* b = as<BlockQ4_0>(p);
  const float d = h2f(b->d);
  auto code = [&](float v) { return d ? std::clamp(nearest_int(v / d) + 8, 0, 15) : 8; };
  for (int j = 0; j < kQK / 2; ++j)
    b->qs[j] = static_cast<uint8_t>(code(x[j]) | (code(x[j + 16]) << 4));
}

void deq_q4_1(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ4_1>(p);
  const float d = h2f(b->d), m = h2f(b->m);
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = b->qs[j] & 0x0F, x1 = b->qs[j] >> 4;
    y[j] = x0 * d + m;
    y[j + kQK / 2] = x1 * d + m;
  }
}
void q_q4_1(const float* x, uint8_t* p) {
  auto* b = as<BlockQ4_1>(p);
  float mn = x[0], mx = x[0];
  for (int j = 1; j < kQK; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
  const float d = (mx - mn) / 15;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = f2h(d);
  b->m = f2h(mn);
  for (int j = 0; j < kQK / 2; ++j) {
    const auto x0 = static_cast<uint8_t>(
        std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - mn) * id + 0.5f))));
    const auto x1 = static_cast<uint8_t>(
        std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - mn) * id + 0.5f))));
    b->qs[j] = x0 | (x1 << 4);
  }
}
void rq_q4_1(const float* x, uint8_t* p) {
  auto* b = as<BlockQ4_1>(p);
  const float d = h2f(b->d), m = h2f(b->m);
  auto code = [&](float v) { return d ? std::clamp(nearest_int((v - m) / d), 0, 15) : 0; };
  for (int j = 0; j < kQK / 2; ++j)
    b->qs[j] = static_cast<uint8_t>(code(x[j]) | (code(x[j + 16]) << 4));
}

void deq_q5_0(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ5_0>(p);
  const float d = h2f(b->d);
  uint32_t qh;
  std::memcpy(&qh, b->qh, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t xh0 = ((qh >> j) << 4) & 0x10, xh1 = ((qh >> (j + 12))) & 0x10;
    const int x0 = ((b->qs[j] & 0x0F) | xh0) - 16, x1 = ((b->qs[j] >> 4) | xh1) - 16;
    y[j] = x0 * d;
    y[j + kQK / 2] = x1 * d;
  }
}
void pack_q5(const int* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    qh |= ((q[j] & 0x10u) >> 4) << j;
    qh |= ((q[j + 16] & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(qh_bytes, &qh, 4);
}
void q_q5_0(const float* x, uint8_t* p) {
  auto* b = as<BlockQ5_0>(p);
  const float max = signed_absmax(x, kQK);
  const float d = max / -16;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = f2h(d);
  int q[kQK];
  for (int j = 0; j < kQK; ++j)
    q[j] = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
  pack_q5(q, b->qs, b->qh);
}
void rq_q5_0(const float* x, uint8_t* p) {
  auto* b = as<BlockQ5_0>(p);
  const float d = h2f(b->d);
  int q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = d ? std::clamp(nearest_int(x[j] / d) + 16, 0, 31) : 16;
  pack_q5(q, b->qs, b->qh);
}

void deq_q5_1(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ5_1>(p);
  const float d = h2f(b->d), m = h2f(b->m);
  uint32_t qh;
  std::memcpy(&qh, b->qh, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t xh0 = ((qh >> j) << 4) & 0x10, xh1 = ((qh >> (j + 12))) & 0x10;
    const int x0 = (b->qs[j] & 0x0F) | xh0, x1 = (b->qs[j] >> 4) | xh1;
    y[j] = x0 * d + m;
    y[j + kQK / 2] = x1 * d + m;
  }
}
void q_q5_1(const float* x, uint8_t* p) {
  auto* b = as<BlockQ5_1>(p);
  float mn = x[0], mx = x[0];
  for (int j = 1; j < kQK; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
  const float d = (mx - mn) / 31;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = f2h(d);
  b->m = f2h(mn);
  int q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>((x[j] - mn) * id + 0.5f);
  pack_q5(q, b->qs, b->qh);
}
void rq_q5_1(const float* x, uint8_t* p) {
  auto* b = as<BlockQ5_1>(p);
  const float d = h2f(b->d), m = h2f(b->m);
  int q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = d ? std::clamp(nearest_int((x[j] - m) / d), 0, 31) : 0;
  pack_q5(q, b->qs, b->qh);
}

void deq_q8_0(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ8_0>(p);
  const float d = h2f(b->d);
  for (int j = 0; j < kQK; ++j) y[j] = b->qs[j] * d;
}
void q_q8_0(const float* x, uint8_t* p) {
  auto* b = as<BlockQ8_0>(p);
  float amax = 0;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = f2h(d);
  for (int j = 0; j < kQK; ++j) b->qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}
void rq_q8_0(const float* x, uint8_t* p) {
  auto* b = as<BlockQ8_0>(p);
  const float d = h2f(b->d);
  for (int j = 0; j < kQK; ++j)
    b->qs[j] = static_cast<int8_t>(d ? std::clamp(nearest_int(x[j] / d), -128, 127) : 0);
}

// Scale fields of the 32-weight types from a sub-block scale a and offset m (fp16 each).
template <typename B>
void set_d(const float* a, const float*, uint8_t* p) {
  as<B>(p)->d = f2h(a[0]);
}
template <typename B>
void set_d_m(const float* a, const float* m, uint8_t* p) {
  as<B>(p)->d = f2h(a[0]);
  as<B>(p)->m = f2h(m[0]);
}

// ---------------------------------------------------------------- scale searches

// Fits x ≈ scale * L + min with L in [0, nmax], min <= 0, minimising the weighted error
// (absolute with use_mad, else squared) over a few candidate scales (llama.cpp make_qkx2_quants).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
  float mn = x[0], mx = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    std::fill(L, L + n, 0);
    *the_min = -mn;
    return 0.0f;
  }
  float iscale = nmax / (mx - mn);
  float scale = 1 / iscale;
  float best_mad = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax);
    L[i] = static_cast<uint8_t>(l);
    float diff = scale * L[i] + mn - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_mad += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -mn;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        mad += weights[i] * diff;
      }
      if (mad < best_mad) {
        std::copy(Laux, Laux + n, L);
        best_mad = mad;
        scale = this_scale;
        mn = this_min;
      }
    }
  }
  *the_min = -mn;
  return scale;
}

// Symmetric scale for L in [-nmax, nmax - 1] with x²-weighted refinement (make_q3_quants).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        const int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return sumlx / suml2;
}

// Symmetric scale for L in [-nmax, nmax - 1], weighted by qw (x² when null), trying 18 nearby
// scales (make_qx_quants with rmse_type 1).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw = nullptr) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(nmax + l);
    const float w = qw ? qw[i] : x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = qw ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = static_cast<int8_t>(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// quantize_row_q4_0_impl / quantize_row_q5_0_impl with quant_weights: per-element weights
// qw * sqrt(sigma2 + x²), then make_qx_quants' weighted scale search; L in [0, 2 nmax). llama.cpp
// takes sigma2, the mean x², over the whole row; a block here sees only its own 32 values, so it is
// the block's (encode_block keeps the plain encoding wherever that is better under qw anyway).
float weighted_q_0(const float* x, const float* qw, int nmax, int8_t* L) {
  float sum_x2 = 0;
  for (int j = 0; j < kQK; ++j) sum_x2 += x[j] * x[j];
  const float sigma2 = sum_x2 / kQK;
  float weight[kQK];
  for (int j = 0; j < kQK; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
  return make_qx_quants(kQK, nmax, x, L, weight);
}
void qw_q4_0(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockQ4_0>(p);
  int8_t L[kQK];
  b->d = f2h(weighted_q_0(x, qw, 8, L));
  for (int j = 0; j < kQK / 2; ++j) b->qs[j] = static_cast<uint8_t>(L[j] | (L[j + kQK / 2] << 4));
}
void qw_q5_0(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockQ5_0>(p);
  int8_t L[kQK];
  b->d = f2h(weighted_q_0(x, qw, 16, L));
  int q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = L[j];
  pack_q5(q, b->qs, b->qh);
}

// Fits x ≈ scale * L + min as make_qkx2_quants with finer steps; weights null means x²
// (llama.cpp make_qkx3_quants, used by the importance-weighted Q4_K / Q5_K searches).
float make_qkx3_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep) {
  auto wt = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
  float mn = x[0], mx = x[0], sum_w = wt(0), sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
    sum_w += wt(i);
    sum_x += wt(i) * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx <= mn) {
    std::fill(L, L + n, 0);
    *the_min = -mn;
    return 0.0f;
  }
  float iscale = nmax / (mx - mn);
  float scale = 1 / iscale;
  float best_mad = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax));
    const float diff = scale * L[i] + mn - x[i];
    best_mad += wt(i) * diff * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      sum_l += wt(i) * l;
      sum_l2 += wt(i) * l * l;
      sum_xl += wt(i) * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * Laux[i] + this_min - x[i];
        mad += wt(i) * diff * diff;
      }
      if (mad < best_mad) {
        std::copy(Laux, Laux + n, L);
        best_mad = mad;
        scale = this_scale;
        mn = this_min;
      }
    }
  }
  *the_min = -mn;
  return scale;
}

// Non-negative scale for L in [0, nmax] under weights (llama.cpp make_qp_quants): the super-block
// quantization of the sub-block scales and mins in the weighted K-quant searches.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  float scale = 1 / iscale, best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    best_mse += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * is + nmax) / max, scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
      const float diff = x[i] - scale_is * l;
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = static_cast<uint8_t>(l);
    sumlx += w[i] * x[i] * l;
    suml2 += w[i] * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sumlx - w[i] * x[i] * L[i], sl2 = suml2 - w[i] * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        const int new_l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (new_l != L[i]) {
          slx += w[i] * x[i] * new_l;
          sl2 += w[i] * new_l * new_l;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// llama.cpp's element weights for an imatrix row: qw · sqrt(σ² + x²), σ² = 2·mean(x²) over the
// super-block of n weights.
void imatrix_weights(const float* x, const float* qw, int n, int first, int count, float* out) {
  float sum_x2 = 0;
  for (int l = 0; l < n; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2 * sum_x2 / n;
  for (int l = 0; l < count; ++l)
    out[l] = qw[first + l] * std::sqrt(sigma2 + x[first + l] * x[first + l]);
}

// ---------------------------------------------------------------- Q2_K

void deq_q2_k(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ2_K>(p);
  const float d = h2f(b->d), mn = h2f(b->dmin);
  const uint8_t* q = b->qs;
  int is = 0;
  for (int n = 0; n < kQKK; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc = b->scales[is++];
      float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<int8_t>((q[l] >> shift) & 3) - ml;
      sc = b->scales[is++];
      dl = d * (sc & 0xF);
      ml = mn * (sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<int8_t>((q[l + 16] >> shift) & 3) - ml;
      shift += 2;
    }
    q += 32;
  }
}
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQKK; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                           (L[j + l + 96] << 6));
}
void rq_q2_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ2_K>(p);
  uint8_t L[kQKK] = {};
  const float d0 = h2f(b->d), dmin = h2f(b->dmin);
  for (int j = 0; j < kQKK / 16; ++j) {
    const float d = d0 * (b->scales[j] & 0xF);
    if (!d) continue;
    const float dm = dmin * (b->scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] =
          static_cast<uint8_t>(std::clamp(nearest_int((x[16 * j + ii] + dm) / d), 0, 3));
  }
  pack_2bit(L, b->qs);
}
void q_q2_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ2_K>(p);
  uint8_t L[kQKK], Laux[16];
  float weights[16], mins[kQKK / 16], scales[kQKK / 16];
  const float q4scale = 15.f;
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQKK / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                 0.1f, 15, true);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < kQKK / 16; ++j)
      b->scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    b->d = f2h(max_scale / q4scale);
  } else {
    std::fill(b->scales, b->scales + 16, 0);
    b->d = f2h(0.f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < kQKK / 16; ++j)
      b->scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
    b->dmin = f2h(max_min / q4scale);
  } else {
    b->dmin = f2h(0.f);
  }
  rq_q2_k(x, p);
}

// ---------------------------------------------------------------- Q3_K

void deq_q3_k(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ3_K>(p);
  const float d_all = h2f(b->d);
  int8_t scales[16];
  q3_scales(b->scales, scales);
  const uint8_t* q = b->qs;
  const uint8_t* hm = b->hmask;
  uint8_t m = 1;
  int is = 0;
  for (int n = 0; n < kQKK; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      float dl = d_all * (scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * (static_cast<int8_t>((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
      dl = d_all * (scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * (static_cast<int8_t>((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
      shift += 2;
      m <<= 1;
    }
    q += 32;
  }
}
void rq_q3_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ3_K>(p);
  int8_t sc[16];
  q3_scales(b->scales, sc);
  uint8_t L[kQKK];
  for (int j = 0; j < kQKK / 16; ++j) {
    const float d = h2f(b->d) * (sc[j] - 32);
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] =
          static_cast<uint8_t>(d ? std::clamp(nearest_int(x[16 * j + ii] / d), -4, 3) + 4 : 4);
  }
  std::memset(b->hmask, 0, sizeof b->hmask);
  int m = 0;
  uint8_t hm = 1;
  for (int j = 0; j < kQKK; ++j) {
    if (L[j] > 3) {
      b->hmask[m] |= hm;
      L[j] -= 4;
    }
    if (++m == kQKK / 8) {
      m = 0;
      hm <<= 1;
    }
  }
  pack_2bit(L, b->qs);
}
// The 16 six-bit scale levels (0..63, the scale is d * (level - 32)) into Q3_K's 12 bytes.
void pack_q3_k_levels(const int* l, uint8_t* packed) {
  std::memset(packed, 0, 12);
  for (int j = 0; j < 16; ++j) {
    if (j < 8)
      packed[j] = static_cast<uint8_t>(l[j] & 0xF);
    else
      packed[j - 8] |= static_cast<uint8_t>((l[j] & 0xF) << 4);
    packed[j % 4 + 8] |= static_cast<uint8_t>((l[j] >> 4) << (2 * (j / 4)));
  }
}
// Sub-block scales -> d and levels, d = max_scale / -32 (the scale of largest magnitude, signed).
// All zero when every scale is (as llama.cpp's quantize_row_q3_K_ref writes it).
void pack_q3_k_scales(const float* scales, float max_scale, BlockQ3_K* b) {
  int l[16] = {};
  const float iscale = max_scale ? -32.f / max_scale : 0.f;
  if (max_scale)
    for (int j = 0; j < 16; ++j) l[j] = std::clamp(nearest_int(iscale * scales[j]), -32, 31) + 32;
  pack_q3_k_levels(l, b->scales);
  b->d = f2h(max_scale ? 1 / iscale : 0.f);
}
void levels_q3_k(const uint8_t* p, int j, int* ls, int* lm) {
  int8_t sc[16];
  q3_scales(as<BlockQ3_K>(p)->scales, sc);
  *ls = sc[j] - 32;
  *lm = 0;
}
void set_levels_q3_k(uint8_t* p, int j, int ls, int) {
  auto* b = as<BlockQ3_K>(p);
  int8_t sc[16];
  q3_scales(b->scales, sc);
  int l[16];
  for (int k = 0; k < 16; ++k) l[k] = sc[k];
  l[j] = std::clamp(ls, -32, 31) + 32;
  pack_q3_k_levels(l, b->scales);
}
void set_q3_k(const float* a, const float*, uint8_t* p) {
  pack_q3_k_scales(a, signed_absmax(a, kQKK / 16), as<BlockQ3_K>(p));
}
void q_q3_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ3_K>(p);
  int8_t L[kQKK];
  float scales[kQKK / 16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < kQKK / 16; ++j) {
    scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  pack_q3_k_scales(scales, max_scale, b);
  rq_q3_k(x, p);
}

// quantize_row_q3_K_impl with quant_weights: weighted sub-block scales, then the 16 scales
// quantized to 6 bits by a search weighted by each sub-block's total weight.
void qw_q3_k(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockQ3_K>(p);
  int8_t L[kQKK], Ls[kQKK / 16];
  float scales[kQKK / 16], sw[kQKK / 16], weight[16];
  for (int j = 0; j < kQKK / 16; ++j) {
    imatrix_weights(x, qw, kQKK, 16 * j, 16, weight);
    sw[j] = 0;
    for (int l = 0; l < 16; ++l) sw[j] += weight[l];
    scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
  }
  const float d_block = make_qx_quants(kQKK / 16, 32, scales, Ls, sw);
  int l[kQKK / 16];
  for (int j = 0; j < kQKK / 16; ++j) l[j] = Ls[j];
  pack_q3_k_levels(l, b->scales);
  b->d = f2h(d_block);
  rq_q3_k(x, p);
}

// ---------------------------------------------------------------- Q4_K, Q5_K

void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}
void pack_scales_k4(const float* scales, const float* mins, uint8_t* out, uint16_t* d,
                    uint16_t* dmin) {
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = static_cast<uint8_t>(std::min(63, nearest_int(inv_scale * scales[j])));
    const uint8_t lm = static_cast<uint8_t>(std::min(63, nearest_int(inv_min * mins[j])));
    if (j < 4) {
      out[j] = ls;
      out[j + 4] = lm;
    } else {
      out[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      out[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      out[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  *d = f2h(max_scale / 63.f);
  *dmin = f2h(max_min / 63.f);
}

// Sub-block scales and mins (clamped at 0: both are unsigned 6-bit levels) into the fields.
template <typename B>
void set_k4(const float* a, const float* m, uint8_t* p) {
  float scales[8], mins[8];
  for (int j = 0; j < 8; ++j) {
    scales[j] = std::max(a[j], 0.f);
    mins[j] = std::max(m[j], 0.f);
  }
  auto* b = as<B>(p);
  std::memset(b->scales, 0, 12);
  pack_scales_k4(scales, mins, b->scales, &b->d, &b->dmin);
}

// Sub-block j's 6-bit levels in the packed scales (the layout scale_min_k4 reads).
template <typename B>
void levels_k4(const uint8_t* p, int j, int* ls, int* lm) {
  uint8_t s, m;
  scale_min_k4(j, as<B>(p)->scales, &s, &m);
  *ls = s;
  *lm = m;
}
template <typename B>
void set_levels_k4(uint8_t* p, int j, int ls, int lm) {
  uint8_t* q = as<B>(p)->scales;
  const auto s = static_cast<uint8_t>(ls & 63), m = static_cast<uint8_t>(lm & 63);
  if (j < 4) {
    q[j] = static_cast<uint8_t>((q[j] & 0xC0) | s);
    q[j + 4] = static_cast<uint8_t>((q[j + 4] & 0xC0) | m);
  } else {
    q[j + 4] = static_cast<uint8_t>((s & 0xF) | ((m & 0xF) << 4));
    q[j - 4] = static_cast<uint8_t>((q[j - 4] & 0x3F) | ((s >> 4) << 6));
    q[j] = static_cast<uint8_t>((q[j] & 0x3F) | ((m >> 4) << 6));
  }
}

void deq_q4_k(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ4_K>(p);
  const uint8_t* q = b->qs;
  const float d = h2f(b->d), mn = h2f(b->dmin);
  int is = 0;
  uint8_t sc, m;
  for (int j = 0; j < kQKK; j += 64) {
    scale_min_k4(is + 0, b->scales, &sc, &m);
    const float d1 = d * sc, m1 = mn * m;
    scale_min_k4(is + 1, b->scales, &sc, &m);
    const float d2 = d * sc, m2 = mn * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}
void requant_k(const float* x, const uint8_t* scales, float d0, float dmin0, int nmax, uint8_t* L) {
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, scales, &sc, &m);
    const float d = d0 * sc;
    const float dm = dmin0 * m;
    for (int ii = 0; ii < 32; ++ii)
      L[32 * j + ii] =
          static_cast<uint8_t>(d ? std::clamp(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax) : 0);
  }
}
void rq_q4_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ4_K>(p);
  uint8_t L[kQKK];
  requant_k(x, b->scales, h2f(b->d), h2f(b->dmin), 15, L);
  uint8_t* q = b->qs;
  for (int j = 0; j < kQKK; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}
void q_k_scales(const float* x, int nmax, float rmin, float rdelta, int nstep, float* scales,
                float* mins) {
  uint8_t L[32], Laux[32];
  float weights[32];
  float sum_x2 = 0;
  for (int l = 0; l < kQKK; ++l) sum_x2 += x[l] * x[l];
  const float av_x = std::sqrt(sum_x2 / kQKK);
  for (int j = 0; j < kQKK / 32; ++j) {
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L, &mins[j], Laux, rmin, rdelta,
                                 nstep, false);
  }
}
void q_q4_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ4_K>(p);
  float scales[8], mins[8];
  q_k_scales(x, 15, -1.f, 0.1f, 20, scales, mins);
  std::memset(b->scales, 0, 12);
  pack_scales_k4(scales, mins, b->scales, &b->d, &b->dmin);
  rq_q4_k(x, p);
}

// quantize_row_q4_K_impl / q5_K_impl with quant_weights: weighted (scale, min) per sub-block of 32,
// then scales and mins each quantized to 6 bits by a weighted search.
void qw_k4(const float* x, const float* qw, int nmax, uint8_t* scales_out, uint16_t* d,
           uint16_t* dmin) {
  uint8_t L[32], Laux[32], Ls[kQKK / 32], Lm[kQKK / 32];
  float weights[32], sw[kQKK / 32], mins[kQKK / 32], scales[kQKK / 32];
  for (int j = 0; j < kQKK / 32; ++j) {
    imatrix_weights(x, qw, kQKK, 32 * j, 32, weights);
    sw[j] = 0;
    for (int l = 0; l < 32; ++l) sw[j] += weights[l];
    scales[j] =
        make_qkx3_quants(32, nmax, x + 32 * j, weights, L, &mins[j], Laux, -0.9f, 0.05f, 36);
  }
  const float d_block = make_qp_quants(kQKK / 32, 63, scales, Ls, sw);
  const float m_block = make_qp_quants(kQKK / 32, 63, mins, Lm, sw);
  std::memset(scales_out, 0, 12);
  for (int j = 0; j < kQKK / 32; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, Ls[j]), lm = std::min<uint8_t>(63, Lm[j]);
    if (j < 4) {
      scales_out[j] = ls;
      scales_out[j + 4] = lm;
    } else {
      scales_out[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      scales_out[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      scales_out[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  *d = f2h(d_block);
  *dmin = f2h(m_block);
}
void qw_q4_k(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockQ4_K>(p);
  qw_k4(x, qw, 15, b->scales, &b->d, &b->dmin);
  rq_q4_k(x, p);
}

void deq_q5_k(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ5_K>(p);
  const uint8_t* ql = b->qs;
  const uint8_t* qh = b->qh;
  const float d = h2f(b->d), mn = h2f(b->dmin);
  int is = 0;
  uint8_t sc, m, u1 = 1, u2 = 2;
  for (int j = 0; j < kQKK; j += 64) {
    scale_min_k4(is + 0, b->scales, &sc, &m);
    const float d1 = d * sc, m1 = mn * m;
    scale_min_k4(is + 1, b->scales, &sc, &m);
    const float d2 = d * sc, m2 = mn * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 <<= 2;
    u2 <<= 2;
  }
}
void rq_q5_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ5_K>(p);
  uint8_t L[kQKK];
  requant_k(x, b->scales, h2f(b->d), h2f(b->dmin), 31, L);
  uint8_t* qh = b->qh;
  uint8_t* ql = b->qs;
  std::memset(qh, 0, kQKK / 8);
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQKK; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        qh[j] |= m2;
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
    m1 <<= 2;
    m2 <<= 2;
    ql += 32;
  }
}
void q_q5_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ5_K>(p);
  float scales[8], mins[8];
  q_k_scales(x, 31, -0.5f, 0.1f, 15, scales, mins);
  std::memset(b->scales, 0, 12);
  pack_scales_k4(scales, mins, b->scales, &b->d, &b->dmin);
  rq_q5_k(x, p);
}

void qw_q5_k(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockQ5_K>(p);
  qw_k4(x, qw, 31, b->scales, &b->d, &b->dmin);
  rq_q5_k(x, p);
}

// ---------------------------------------------------------------- Q6_K

void deq_q6_k(const uint8_t* p, float* y) {
  const auto* b = as<BlockQ6_K>(p);
  const float d = h2f(b->d);
  const uint8_t* ql = b->ql;
  const uint8_t* qh = b->qh;
  const int8_t* sc = b->scales;
  for (int n = 0; n < kQKK; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int8_t q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int8_t q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}
void rq_q6_k(const float* x, uint8_t* p) {
  auto* b = as<BlockQ6_K>(p);
  uint8_t L[kQKK];
  for (int j = 0; j < kQKK / 16; ++j) {
    const float d = h2f(b->d) * b->scales[j];
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] =
          static_cast<uint8_t>(d ? std::clamp(nearest_int(x[16 * j + ii] / d), -32, 31) + 32 : 32);
  }
  uint8_t* ql = b->ql;
  uint8_t* qh = b->qh;
  for (int j = 0; j < kQKK; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF,
                    q4 = L[j + l + 96] & 0xF;
      ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                   ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}
// Sub-block scales -> d and int8 levels, d = max_scale / -128 (max_scale signed, nonzero).
void pack_q6_k_scales(const float* scales, float max_scale, BlockQ6_K* b) {
  const float iscale = -128.f / max_scale;
  b->d = f2h(1 / iscale);
  for (int ib = 0; ib < kQKK / 16; ++ib)
    b->scales[ib] = static_cast<int8_t>(std::clamp(nearest_int(iscale * scales[ib]), -128, 127));
}
void levels_q6_k(const uint8_t* p, int j, int* ls, int* lm) {
  *ls = as<BlockQ6_K>(p)->scales[j];
  *lm = 0;
}
void set_levels_q6_k(uint8_t* p, int j, int ls, int) {
  as<BlockQ6_K>(p)->scales[j] = static_cast<int8_t>(std::clamp(ls, -128, 127));
}
void set_q6_k(const float* a, const float*, uint8_t* p) {
  auto* b = as<BlockQ6_K>(p);
  const float max_scale = signed_absmax(a, kQKK / 16);
  if (max_scale == 0.f) {
    b->d = f2h(0.f);
    std::memset(b->scales, 0, sizeof b->scales);
    return;
  }
  pack_q6_k_scales(a, max_scale, b);
}
// quantize_row_q6_K_impl: sub-block scales weighted by qw itself (x² when null).
void q6_k_block(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockQ6_K>(p);
  int8_t L[kQKK];
  float scales[kQKK / 16];
  float max_scale = 0, max_abs = 0;
  for (int ib = 0; ib < kQKK / 16; ++ib) {
    scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
    if (std::fabs(scales[ib]) > max_abs) {
      max_abs = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (max_abs < kGroupMaxEps) {
    std::memset(p, 0, sizeof(BlockQ6_K));
    return;
  }
  pack_q6_k_scales(scales, max_scale, b);
  rq_q6_k(x, p);
}

void q_q6_k(const float* x, uint8_t* p) {
  q6_k_block(x, nullptr, p);
}
void qw_q6_k(const float* x, const float* qw, uint8_t* p) {
  q6_k_block(x, qw, p);
}

// ---------------------------------------------------------------- IQ4_NL, IQ4_XS

int best_index_iq4(float x) {
  const int8_t* v = kIq4nlValues;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int ml = 0, mu = 15;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < v[mav])
      mu = mav;
    else
      ml = mav;
  }
  return x - v[mu - 1] < v[mu] - x ? mu - 1 : mu;
}

// Best scale of one block of 32 for the IQ4 grid: start from max/values[0] and try 2*ntry+1
// neighbours, keeping the weighted least-squares optimum (quantize_row_iq4_nl_impl; weights x²
// when null).
float iq4_block_scale(const float* xb, int ntry, const float* weight = nullptr) {
  float amax;
  const float max = signed_absmax(xb, 32, &amax);
  if (amax < kGroupMaxEps) return 0;
  const int8_t* v = kIq4nlValues;
  float d = ntry > 0 ? -max / v[0] : max / v[0];
  float id = 1 / d, sumqx = 0, sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    const float q = v[best_index_iq4(id * xb[j])], w = weight ? weight[j] : xb[j] * xb[j];
    sumqx += w * q * xb[j];
    sumq2 += w * q * q;
  }
  d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
  float best = d * sumqx;
  for (int itry = -ntry; itry <= ntry; ++itry) {
    id = (itry + v[0]) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = v[best_index_iq4(id * xb[j])], w = weight ? weight[j] : xb[j] * xb[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

void pack_iq4(const uint8_t* L, uint8_t* qs, int n) {
  for (int i = 0; i < n / 32; ++i)
    for (int j = 0; j < 16; ++j)
      qs[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

void deq_iq4_nl(const uint8_t* p, float* y) {
  const auto* b = as<BlockIQ4_NL>(p);
  const float d = h2f(b->d);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * kIq4nlValues[b->qs[j] & 0xf];
    y[j + kQK / 2] = d * kIq4nlValues[b->qs[j] >> 4];
  }
}
void rq_iq4_nl(const float* x, uint8_t* p) {
  auto* b = as<BlockIQ4_NL>(p);
  const float d = h2f(b->d), id = d ? 1 / d : 0;
  uint8_t L[kQK];
  for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>(best_index_iq4(id * x[j]));
  pack_iq4(L, b->qs, kQK);
}
void iq4_nl_block(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockIQ4_NL>(p);
  float weight[kQK];
  if (qw) imatrix_weights(x, qw, kQK, 0, kQK, weight);
  const float d = iq4_block_scale(x, 7, qw ? weight : nullptr);
  b->d = f2h(d);
  // llama.cpp assigns the codes with the unrounded scale.
  const float id = d ? 1 / d : 0;
  uint8_t L[kQK];
  for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>(d ? best_index_iq4(id * x[j]) : 0);
  pack_iq4(L, b->qs, kQK);
}

void q_iq4_nl(const float* x, uint8_t* p) {
  iq4_nl_block(x, nullptr, p);
}
void qw_iq4_nl(const float* x, const float* qw, uint8_t* p) {
  iq4_nl_block(x, qw, p);
}

int iq4_xs_scale(const BlockIQ4_XS* b, int ib) {
  return (((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((b->scales_h >> 2 * ib) & 3) << 4)) -
         32;
}
void deq_iq4_xs(const uint8_t* p, float* y) {
  const auto* b = as<BlockIQ4_XS>(p);
  const float d = h2f(b->d);
  const uint8_t* qs = b->qs;
  for (int ib = 0; ib < kQKK / 32; ++ib) {
    const float dl = d * iq4_xs_scale(b, ib);
    for (int j = 0; j < 16; ++j) {
      y[j + 0] = dl * kIq4nlValues[qs[j] & 0xf];
      y[j + 16] = dl * kIq4nlValues[qs[j] >> 4];
    }
    y += 32;
    qs += 16;
  }
}
void rq_iq4_xs(const float* x, uint8_t* p) {
  auto* b = as<BlockIQ4_XS>(p);
  const float d = h2f(b->d);
  uint8_t L[kQKK];
  for (int ib = 0; ib < kQKK / 32; ++ib) {
    const float dl = d * iq4_xs_scale(b, ib), idl = dl ? 1 / dl : 0;
    for (int j = 0; j < 32; ++j)
      L[32 * ib + j] = static_cast<uint8_t>(best_index_iq4(idl * x[32 * ib + j]));
  }
  pack_iq4(L, b->qs, kQKK);
}
// Sub-block scales -> d = max_scale / -32 and 6-bit levels; returns the unrounded d.
float pack_iq4_xs_scales(const float* scales, float max_scale, BlockIQ4_XS* b) {
  const float d = -max_scale / 32;
  b->d = f2h(d);
  b->scales_h = 0;
  std::memset(b->scales_l, 0, sizeof b->scales_l);
  const float id = d ? 1 / d : 0;
  for (int ib = 0; ib < kQKK / 32; ++ib) {
    const int l = std::clamp(nearest_int(id * scales[ib]), -32, 31) + 32;
    if (ib % 2 == 0)
      b->scales_l[ib / 2] = static_cast<uint8_t>(l & 0xf);
    else
      b->scales_l[ib / 2] |= static_cast<uint8_t>((l & 0xf) << 4);
    b->scales_h |= static_cast<uint16_t>((l >> 4) << 2 * (ib % 8));
  }
  return d;
}
void set_iq4_xs(const float* a, const float*, uint8_t* p) {
  pack_iq4_xs_scales(a, signed_absmax(a, kQKK / 32), as<BlockIQ4_XS>(p));
}
void iq4_xs_block(const float* x, const float* qw, uint8_t* p) {
  auto* b = as<BlockIQ4_XS>(p);
  float scales[kQKK / 32];
  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < kQKK / 32; ++ib) {
    float weight[32];
    if (qw) imatrix_weights(x, qw, kQKK, 32 * ib, 32, weight);
    scales[ib] = iq4_block_scale(x + 32 * ib, 7, qw ? weight : nullptr);
    if (std::fabs(scales[ib]) > amax_scale) {
      amax_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  const float d = pack_iq4_xs_scales(scales, max_scale, b);
  // llama.cpp assigns the codes with the unrounded super-block scale d.
  uint8_t L[kQKK];
  for (int ib = 0; ib < kQKK / 32; ++ib) {
    const float dl = d * iq4_xs_scale(b, ib), idl = dl ? 1 / dl : 0;
    for (int j = 0; j < 32; ++j)
      L[32 * ib + j] = static_cast<uint8_t>(best_index_iq4(idl * x[32 * ib + j]));
  }
  pack_iq4(L, b->qs, kQKK);
}

void q_iq4_xs(const float* x, uint8_t* p) {
  iq4_xs_block(x, nullptr, p);
}
void qw_iq4_xs(const float* x, const float* qw, uint8_t* p) {
  iq4_xs_block(x, qw, p);
}

// ---------------------------------------------------------------- per-element rounding

void ss_q4_0(const uint8_t* p, float* a, float* m) {
  a[0] = h2f(as<BlockQ4_0>(p)->d);
  m[0] = 0;
}
void ss_q4_1(const uint8_t* p, float* a, float* m) {
  a[0] = h2f(as<BlockQ4_1>(p)->d);
  m[0] = h2f(as<BlockQ4_1>(p)->m);
}
void ss_q5_0(const uint8_t* p, float* a, float* m) {
  a[0] = h2f(as<BlockQ5_0>(p)->d);
  m[0] = 0;
}
void ss_q5_1(const uint8_t* p, float* a, float* m) {
  a[0] = h2f(as<BlockQ5_1>(p)->d);
  m[0] = h2f(as<BlockQ5_1>(p)->m);
}
void ss_q8_0(const uint8_t* p, float* a, float* m) {
  a[0] = h2f(as<BlockQ8_0>(p)->d);
  m[0] = 0;
}
void ss_q2_k(const uint8_t* p, float* a, float* m) {
  const auto* b = as<BlockQ2_K>(p);
  const float d0 = h2f(b->d), dmin = h2f(b->dmin);
  for (int j = 0; j < kQKK / 16; ++j) {
    a[j] = d0 * (b->scales[j] & 0xF);
    m[j] = dmin * (b->scales[j] >> 4);
  }
}
void ss_q3_k(const uint8_t* p, float* a, float* m) {
  const auto* b = as<BlockQ3_K>(p);
  int8_t sc[16];
  q3_scales(b->scales, sc);
  for (int j = 0; j < kQKK / 16; ++j) {
    a[j] = h2f(b->d) * (sc[j] - 32);
    m[j] = 0;
  }
}
template <typename B>
void ss_k4(const uint8_t* p, float* a, float* m) {
  const auto* b = as<B>(p);
  const float d0 = h2f(b->d), dmin = h2f(b->dmin);
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t sc, mn;
    scale_min_k4(j, b->scales, &sc, &mn);
    a[j] = d0 * sc;
    m[j] = dmin * mn;
  }
}
void ss_q6_k(const uint8_t* p, float* a, float* m) {
  const auto* b = as<BlockQ6_K>(p);
  for (int j = 0; j < kQKK / 16; ++j) {
    a[j] = h2f(b->d) * b->scales[j];
    m[j] = 0;
  }
}
void ss_iq4_nl(const uint8_t* p, float* a, float* m) {
  a[0] = h2f(as<BlockIQ4_NL>(p)->d);
  m[0] = 0;
}
void ss_iq4_xs(const uint8_t* p, float* a, float* m) {
  const auto* b = as<BlockIQ4_XS>(p);
  const float d = h2f(b->d);
  for (int ib = 0; ib < kQKK / 32; ++ib) {
    a[ib] = d * iq4_xs_scale(b, ib);
    m[ib] = 0;
  }
}

// The spacing of representable sub-block scales and offsets (the super-block's d and dmin).
void steps_q3_k(const uint8_t* p, float* a_step, float* m_step) {
  *a_step = h2f(as<BlockQ3_K>(p)->d);
  *m_step = 0;
}
template <typename B>
void steps_k4(const uint8_t* p, float* a_step, float* m_step) {
  *a_step = h2f(as<B>(p)->d);
  *m_step = h2f(as<B>(p)->dmin);
}
void steps_q6_k(const uint8_t* p, float* a_step, float* m_step) {
  *a_step = h2f(as<BlockQ6_K>(p)->d);
  *m_step = 0;
}
void steps_iq4_xs(const uint8_t* p, float* a_step, float* m_step) {
  *a_step = h2f(as<BlockIQ4_XS>(p)->d);
  *m_step = 0;
}

constexpr Offset kNone = Offset::None, kPlus = Offset::Plus, kMinus = Offset::Minus;

const TypeCodec kCodecs[] = {
    {"q4_0", kQK, sizeof(BlockQ4_0), deq_q4_0, q_q4_0, rq_q4_0, 32, -8, 7, kNone, false, ss_q4_0,
     qw_q4_0, set_d<BlockQ4_0>, nullptr, nullptr, nullptr, 0, 0},
    {"q4_1", kQK, sizeof(BlockQ4_1), deq_q4_1, q_q4_1, rq_q4_1, 32, 0, 15, kPlus, false, ss_q4_1,
     nullptr, set_d_m<BlockQ4_1>, nullptr, nullptr, nullptr, 0, 0},
    {"q5_0", kQK, sizeof(BlockQ5_0), deq_q5_0, q_q5_0, rq_q5_0, 32, -16, 15, kNone, false, ss_q5_0,
     qw_q5_0, set_d<BlockQ5_0>, nullptr, nullptr, nullptr, 0, 0},
    {"q5_1", kQK, sizeof(BlockQ5_1), deq_q5_1, q_q5_1, rq_q5_1, 32, 0, 31, kPlus, false, ss_q5_1,
     nullptr, set_d_m<BlockQ5_1>, nullptr, nullptr, nullptr, 0, 0},
    {"q8_0", kQK, sizeof(BlockQ8_0), deq_q8_0, q_q8_0, rq_q8_0, 32, -128, 127, kNone, false,
     ss_q8_0, nullptr, set_d<BlockQ8_0>, nullptr, nullptr, nullptr, 0, 0},
    {"q2_k", kQKK, sizeof(BlockQ2_K), deq_q2_k, q_q2_k, rq_q2_k, 16, 0, 3, kMinus, false, ss_q2_k,
     nullptr, nullptr, nullptr, nullptr, nullptr, 0, 0},
    {"q3_k", kQKK, sizeof(BlockQ3_K), deq_q3_k, q_q3_k, rq_q3_k, 16, -4, 3, kNone, false, ss_q3_k,
     qw_q3_k, set_q3_k, steps_q3_k, levels_q3_k, set_levels_q3_k, -32, 31},
    {"q4_k", kQKK, sizeof(BlockQ4_K), deq_q4_k, q_q4_k, rq_q4_k, 32, 0, 15, kMinus, false,
     ss_k4<BlockQ4_K>, qw_q4_k, set_k4<BlockQ4_K>, steps_k4<BlockQ4_K>, levels_k4<BlockQ4_K>,
     set_levels_k4<BlockQ4_K>, 0, 63},
    {"q5_k", kQKK, sizeof(BlockQ5_K), deq_q5_k, q_q5_k, rq_q5_k, 32, 0, 31, kMinus, false,
     ss_k4<BlockQ5_K>, qw_q5_k, set_k4<BlockQ5_K>, steps_k4<BlockQ5_K>, levels_k4<BlockQ5_K>,
     set_levels_k4<BlockQ5_K>, 0, 63},
    {"q6_k", kQKK, sizeof(BlockQ6_K), deq_q6_k, q_q6_k, rq_q6_k, 16, -32, 31, kNone, false, ss_q6_k,
     qw_q6_k, set_q6_k, steps_q6_k, levels_q6_k, set_levels_q6_k, -128, 127},
    {"iq4_nl", kQK, sizeof(BlockIQ4_NL), deq_iq4_nl, q_iq4_nl, rq_iq4_nl, 32, 0, 15, kNone, true,
     ss_iq4_nl, qw_iq4_nl, set_d<BlockIQ4_NL>, nullptr, nullptr, nullptr, 0, 0},
    {"iq4_xs", kQKK, sizeof(BlockIQ4_XS), deq_iq4_xs, q_iq4_xs, rq_iq4_xs, 32, 0, 15, kNone, true,
     ss_iq4_xs, qw_iq4_xs, set_iq4_xs, steps_iq4_xs, nullptr, nullptr, 0, 0},
};
const TypeCodec* const kCodecPtrs[] = {&kCodecs[0], &kCodecs[1], &kCodecs[2],  &kCodecs[3],
                                       &kCodecs[4], &kCodecs[5], &kCodecs[6],  &kCodecs[7],
                                       &kCodecs[8], &kCodecs[9], &kCodecs[10], &kCodecs[11]};

}  // namespace

float round_element(const TypeCodec& c, float a, float m, float x) {
  if (c.codebook) {
    const float ia = a ? 1 / a : 0;
    return a * kIq4nlValues[best_index_iq4(ia * x)];
  }
  int L = 0;
  if (a != 0.0f) {
    const float t = c.offset == Offset::Plus    ? (x - m) / a
                    : c.offset == Offset::Minus ? (x + m) / a
                                                : x / a;
    // nearest_int(t) clamped, by the 1.5 * 2^23 trick in float (as llama.cpp's nearest_int): the
    // same level for |t| < 2^22, and a larger |t| stays large, so it clamps to the same end.
    // nearbyint is a libm call on the baseline x86-64 target, and GPTQ rounds every weight here.
    constexpr float kMagic = 12582912.0f;
    L = static_cast<int>(
        std::clamp((t + kMagic) - kMagic, static_cast<float>(c.lo), static_cast<float>(c.hi)));
  }
  switch (c.offset) {
    case Offset::Plus:
      return L * a + m;
    case Offset::Minus:
      return a * L - m;
    case Offset::None:
      break;
  }
  return L * a;
}

const TypeCodec* find_codec(const std::string& name) {
  for (const TypeCodec& c : kCodecs)
    if (name == c.name) return &c;
  return nullptr;
}

const TypeCodec* const* all_codecs(int* count) {
  *count = static_cast<int>(std::size(kCodecPtrs));
  return kCodecPtrs;
}

}  // namespace qforge::formats::gguf
