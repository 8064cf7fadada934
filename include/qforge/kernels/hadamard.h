// Orthonormal Hadamard transforms, for rotating the residual stream and activations (QuaRot,
// Ashkboos et al. 2024; SpinQuant) so that outlier features are spread over all channels.
//
// A Hadamard matrix of order n = m · 2^k is built as the Kronecker product H_m ⊗ H_{2^k}: the power
// of two by Sylvester's construction (applied as a fast Walsh–Hadamard transform, O(n log n)), the
// factor m (1, or 12, 20, 28, 36, 44, ... and products of them) by Paley's constructions, applied
// as a small dense matrix. That covers every width of the supported models (e.g. 576 = 36 · 16,
// 1536 = 12 · 128), which a pure power-of-two transform would not.
#pragma once

#include <cstdint>
#include <vector>

namespace qforge::kernels {

class HadamardTransform {
 public:
  // Throws Error when no construction is known for n (e.g. n odd, or 4·p for some m without a
  // Paley factorisation). Use exists() to ask first.
  explicit HadamardTransform(int64_t n);
  static bool exists(int64_t n);

  int64_t size() const { return n_; }
  // The order of the dense (Paley) factor; 1 for a power of two.
  int64_t dense_order() const { return m_; }

  // x ← x · H / √n for `count` row vectors of n floats (stride n). Orthonormal: preserves norms.
  void apply(float* x, int64_t count) const;
  // x ← x · Hᵀ / √n, the inverse of apply() (Paley factors are not symmetric).
  void apply_transposed(float* x, int64_t count) const;
  // The normalised matrix H / √n, row-major [n, n], in double (tests, small dense uses).
  std::vector<double> matrix() const;

 private:
  void transform(float* x, int64_t count, bool transposed) const;
  int64_t n_ = 0, m_ = 1, pow2_ = 1;
  std::vector<float> dense_;  // H_m (entries ±1), row-major [m, m]
};

}  // namespace qforge::kernels
