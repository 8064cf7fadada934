#include "qforge/eval/statistics.h"

#include <cmath>

namespace qforge {

double clustered_stderr(std::span<const ClusterSum> clusters) {
  int64_t tokens = 0;
  double sum = 0;
  for (const ClusterSum& c : clusters) {
    tokens += c.tokens;
    sum += c.sum;
  }
  if (clusters.size() < 2 || tokens == 0) return 0;
  const double n = static_cast<double>(tokens), mean = sum / n;
  // n_c / N * (mean_c - mean) = (sum_c - n_c * mean) / N: no division by an empty cluster.
  double variance = 0;
  for (const ClusterSum& c : clusters) {
    const double deviation = (c.sum - static_cast<double>(c.tokens) * mean) / n;
    variance += deviation * deviation;
  }
  const double count = static_cast<double>(clusters.size());
  return std::sqrt(count / (count - 1) * variance);
}

}  // namespace qforge
