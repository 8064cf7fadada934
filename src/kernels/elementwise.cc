// Norms, RoPE, softmax and gated activations: cheap next to the matmuls, written plainly so the
// compiler vectorises them. All in fp32, matching the Hugging Face reference implementations.
#include <algorithm>
#include <cmath>

#include "qforge/kernels/kernels.h"

namespace qforge::kernels {

void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  // Accumulate in double: the reference (PyTorch) reduces in fp32 with pairwise summation, whose
  // error is far below a naive fp32 loop's; double is closer to it than a sequential float sum.
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * inv) * w[i];
}

void rope(float* x, int n_heads, int head_dim, int rotary_dim, const float* cos, const float* sin,
          bool interleaved) {
  const int half = rotary_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    if (interleaved) {
      for (int i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * cos[i] - b * sin[i];
        v[2 * i + 1] = a * sin[i] + b * cos[i];
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos[i] - b * sin[i];
        v[i + half] = b * cos[i] + a * sin[i];
      }
    }
  }
}

// softmax and silu_mul: SIMD, in simd_activations.cc.

void gelu_tanh_mul(float* gate, const float* up, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float t = std::tanh(kSqrt2OverPi * (g + 0.044715f * g * g * g));
    gate[i] = 0.5f * g * (1.0f + t) * up[i];
  }
}

}  // namespace qforge::kernels
