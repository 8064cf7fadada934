// Sampling error of a per-token mean (KLD, NLL) measured on one text. Tokens of one evaluation
// window share their context, so they are correlated and a plain standard deviation / sqrt(tokens)
// would understate the error; the windows themselves are disjoint stretches of text and are treated
// as independent clusters (the cluster-robust, or "batch means", standard error).
#pragma once

#include <cstdint>
#include <span>

namespace qforge {

// The sum of a per-token quantity over one cluster (an evaluation window) and its token count.
struct ClusterSum {
  int64_t tokens = 0;
  double sum = 0;
};

// Standard error of the token-weighted mean sum(sums) / sum(tokens), clusters independent:
//   SE^2 = C / (C - 1) * sum_c (n_c / N)^2 (mean_c - mean)^2
// (for C equal clusters this is the sample variance of the cluster means / C). 0 for fewer than
// two clusters or no tokens: there is nothing to estimate it from.
double clustered_stderr(std::span<const ClusterSum> clusters);

}  // namespace qforge
