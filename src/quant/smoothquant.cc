#include "qforge/quant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "qforge/core/error.h"

namespace qforge {

std::vector<float> smoothquant_scales(std::span<const double> act_max,
                                      std::span<const double> weight_max, double alpha) {
  check(act_max.size() == weight_max.size(), "SmoothQuant: {} activation and {} weight maxima",
        act_max.size(), weight_max.size());
  check(alpha >= 0 && alpha <= 1, "SmoothQuant: alpha must be in [0, 1] (got {})", alpha);
  std::vector<float> s(act_max.size(), 1.0f);
  for (size_t j = 0; j < s.size(); ++j) {
    if (!(act_max[j] > 0) || !(weight_max[j] > 0)) continue;
    const double v = std::pow(act_max[j], alpha) / std::pow(weight_max[j], 1 - alpha);
    s[j] = static_cast<float>(std::clamp(v, 1e-5, 1e5));
  }
  return s;
}

}  // namespace qforge
