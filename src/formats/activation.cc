#include "qforge/formats/activation.h"

#include <algorithm>
#include <cmath>

#include "qforge/core/error.h"
#include "qforge/formats/minifloat.h"

namespace qforge::formats {

ActivationFormat parse_activation_format(std::string_view name) {
  if (name == "none") return ActivationFormat::None;
  if (name == "int8") return ActivationFormat::Int8;
  if (name == "fp8-e4m3" || name == "fp8") return ActivationFormat::Fp8E4M3;
  fail("unknown activation format '{}' (known: none, int8, fp8-e4m3)", name);
}

std::string activation_format_name(ActivationFormat f) {
  switch (f) {
    case ActivationFormat::None:
      return "none";
    case ActivationFormat::Int8:
      return "int8";
    case ActivationFormat::Fp8E4M3:
      return "fp8-e4m3";
  }
  return "?";
}

void fake_quantize_activations(ActivationFormat f, float* x, int64_t n, int64_t dim) {
  if (f == ActivationFormat::None) return;
  for (int64_t t = 0; t < n; ++t) {
    float* row = x + t * dim;
    float amax = 0.0f;
    for (int64_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(row[i]));
    if (amax == 0.0f || !std::isfinite(amax)) continue;
    if (f == ActivationFormat::Int8) {
      const float scale = amax / 127.0f;
      for (int64_t i = 0; i < dim; ++i)
        row[i] = std::clamp(std::nearbyint(row[i] / scale), -127.0f, 127.0f) * scale;
    } else {
      const float scale = amax / kE4M3.max_finite();
      for (int64_t i = 0; i < dim; ++i)
        row[i] = kE4M3.decode(kE4M3.encode(row[i] / scale, /*saturate=*/true)) * scale;
    }
  }
}

}  // namespace qforge::formats
