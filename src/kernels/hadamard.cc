#include "qforge/kernels/hadamard.h"

#include <bit>
#include <cmath>
#include <optional>

#include "qforge/core/error.h"

namespace qforge::kernels {
namespace {

bool is_prime(int64_t q) {
  if (q < 2) return false;
  for (int64_t d = 2; d * d <= q; ++d)
    if (q % d == 0) return false;
  return true;
}

// Legendre symbol (a | q) for an odd prime q: 0, 1 (a is a square mod q) or -1.
int legendre(int64_t a, int64_t q) {
  a = ((a % q) + q) % q;
  if (a == 0) return 0;
  int64_t r = 1, base = a, e = (q - 1) / 2;  // Euler's criterion: a^((q-1)/2) mod q
  while (e > 0) {
    if (e & 1) r = r * base % q;
    base = base * base % q;
    e >>= 1;
  }
  return r == 1 ? 1 : -1;
}

// Paley I (q prime, q ≡ 3 mod 4): order q + 1, H = I + S with S = [[0, 1ᵀ], [-1, Q]] skew-symmetric
// (Q the Jacobsthal matrix Q_ij = χ(j - i)).
std::vector<float> paley1(int64_t q) {
  const int64_t n = q + 1;
  std::vector<float> h(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int s;
      if (i == 0)
        s = j == 0 ? 0 : 1;
      else if (j == 0)
        s = -1;
      else
        s = legendre(j - i, q);
      h[i * n + j] = static_cast<float>(s + (i == j ? 1 : 0));
    }
  return h;
}

// Paley II (q prime, q ≡ 1 mod 4): order 2(q + 1). C = [[0, 1ᵀ], [1, Q]] is symmetric; each 0 of C
// becomes [[1, -1], [-1, -1]] and each ±1 becomes ±[[1, 1], [1, -1]].
std::vector<float> paley2(int64_t q) {
  const int64_t c = q + 1, n = 2 * c;
  std::vector<float> h(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = 0; j < c; ++j) {
      int v;
      if (i == 0 || j == 0)
        v = (i == 0 && j == 0) ? 0 : 1;
      else
        v = legendre(j - i, q);
      const int blk[2][2] = {{v == 0 ? 1 : v, v == 0 ? -1 : v},
                             {v == 0 ? -1 : v, v == 0 ? -1 : -v}};
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) h[(2 * i + a) * n + 2 * j + b] = static_cast<float>(blk[a][b]);
    }
  return h;
}

struct Paley {
  int64_t order = 0;
  std::vector<float> (*build)(int64_t) = nullptr;
  int64_t q = 0;
};

// Paley orders up to `limit` that are not powers of two (those come from Sylvester).
std::vector<Paley> paley_orders(int64_t limit) {
  std::vector<Paley> out;
  for (int64_t q = 3; q < limit; q += 2) {
    if (!is_prime(q)) continue;
    const Paley p = q % 4 == 3 ? Paley{q + 1, paley1, q} : Paley{2 * (q + 1), paley2, q};
    if (p.order <= limit && !std::has_single_bit(static_cast<uint64_t>(p.order))) out.push_back(p);
  }
  return out;
}

std::vector<float> kron(const std::vector<float>& a, int64_t na, const std::vector<float>& b,
                        int64_t nb) {
  const int64_t n = na * nb;
  std::vector<float> k(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < na; ++i)
    for (int64_t j = 0; j < na; ++j)
      for (int64_t r = 0; r < nb; ++r)
        for (int64_t c = 0; c < nb; ++c)
          k[(i * nb + r) * n + j * nb + c] = a[i * na + j] * b[r * nb + c];
  return k;
}

struct Plan {
  int64_t m = 1;
  std::vector<float> dense{1.0f};
};

bool power_of_two(int64_t n) {
  return n > 0 && std::has_single_bit(static_cast<uint64_t>(n));
}

// The smallest dense factor m (one Paley matrix or the product of two) with n / m a power of two.
std::optional<Plan> plan_for(int64_t n) {
  if (n <= 0) return std::nullopt;
  if (power_of_two(n)) return Plan{};
  std::optional<Plan> best;
  auto consider = [&](int64_t m, auto&& build) {
    if (n % m != 0 || !power_of_two(n / m) || (best && best->m <= m)) return;
    best = Plan{m, build()};
  };
  const std::vector<Paley> ps = paley_orders(std::min<int64_t>(n, 4096));
  for (const Paley& a : ps) {
    consider(a.order, [&] { return a.build(a.q); });
    for (const Paley& b : ps)
      if (a.order * b.order <= n)
        consider(a.order * b.order,
                 [&] { return kron(a.build(a.q), a.order, b.build(b.q), b.order); });
  }
  return best;
}

// Unnormalised in-place Walsh–Hadamard transform of length p (a power of two): x ← x · H_p.
void fwht(float* x, int64_t p) {
  for (int64_t h = 1; h < p; h *= 2)
    for (int64_t i = 0; i < p; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

}  // namespace

bool HadamardTransform::exists(int64_t n) {
  return plan_for(n).has_value();
}

HadamardTransform::HadamardTransform(int64_t n) : n_(n) {
  std::optional<Plan> plan = plan_for(n);
  check(plan.has_value(),
        "no Hadamard matrix of order {} can be built here (need m * 2^k with m a Paley order such "
        "as 12, 20, 28, 36, ... or a product of two)",
        n);
  m_ = plan->m;
  pow2_ = n / m_;
  dense_ = std::move(plan->dense);
  // The construction must be a Hadamard matrix: H Hᵀ = m I (cheap for the small dense factor).
  for (int64_t i = 0; i < m_; ++i)
    for (int64_t j = 0; j < m_; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < m_; ++k) dot += dense_[i * m_ + k] * dense_[j * m_ + k];
      check(dot == (i == j ? static_cast<double>(m_) : 0.0),
            "internal: Hadamard factor of order {} is not orthogonal", m_);
    }
}

void HadamardTransform::apply(float* x, int64_t count) const {
  transform(x, count, false);
}

void HadamardTransform::apply_transposed(float* x, int64_t count) const {
  transform(x, count, true);
}

void HadamardTransform::transform(float* x, int64_t count, bool transposed) const {
  // With x viewed as X [m, 2^k]: x · (A ⊗ B) = vec(Aᵀ X B) and x · (A ⊗ B)ᵀ = vec(A X B)
  // (B, Sylvester's matrix, is symmetric).
  const float norm = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n_)));
  std::vector<float> tmp(m_ > 1 ? static_cast<size_t>(n_) : 0);
  for (int64_t v = 0; v < count; ++v) {
    float* xv = x + v * n_;
    for (int64_t i = 0; i < m_; ++i) fwht(xv + i * pow2_, pow2_);
    if (m_ > 1) {
      std::fill(tmp.begin(), tmp.end(), 0.0f);
      for (int64_t k = 0; k < m_; ++k)
        for (int64_t i = 0; i < m_; ++i) {
          const float a = transposed ? dense_[k * m_ + i] : dense_[i * m_ + k];
          float* out = &tmp[k * pow2_];
          const float* in = xv + i * pow2_;
          for (int64_t j = 0; j < pow2_; ++j) out[j] += a * in[j];
        }
      std::copy(tmp.begin(), tmp.end(), xv);
    }
    for (int64_t i = 0; i < n_; ++i) xv[i] *= norm;
  }
}

std::vector<double> HadamardTransform::matrix() const {
  std::vector<double> h(static_cast<size_t>(n_ * n_));
  const double norm = 1.0 / std::sqrt(static_cast<double>(n_));
  for (int64_t r = 0; r < n_; ++r)
    for (int64_t c = 0; c < n_; ++c) {
      const int64_t i = r / pow2_, j = r % pow2_, k = c / pow2_, l = c % pow2_;
      const double sylvester = (std::popcount(static_cast<uint64_t>(j & l)) & 1) ? -1.0 : 1.0;
      h[r * n_ + c] = dense_[i * m_ + k] * sylvester * norm;
    }
  return h;
}

}  // namespace qforge::kernels
