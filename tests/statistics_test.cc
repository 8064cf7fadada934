// clustered_stderr: the standard error of a per-token mean whose tokens come in correlated clusters
// (evaluation windows), checked against hand-computed values and against the actual spread of the
// mean over many simulated texts.
#include "qforge/eval/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace qforge {
namespace {

TEST(ClusteredStderr, EqualClustersGiveTheSpreadOfTheClusterMeansOverSqrtCount) {
  // Cluster means 1, 2, 3, 6 (4 tokens each): sample variance 14/3, SE = sqrt(14/3 / 4).
  const std::vector<ClusterSum> clusters = {{4, 4.0}, {4, 8.0}, {4, 12.0}, {4, 24.0}};
  EXPECT_NEAR(clustered_stderr(clusters), std::sqrt(14.0 / 3.0 / 4.0), 1e-12);
}

TEST(ClusteredStderr, UnequalClustersAreWeightedByTheirTokens) {
  // Overall mean 1/4; (n_c / N)(mean_c - mean) = +-3/16; SE^2 = 2/1 * 2 * (3/16)^2 = 9/64.
  const std::vector<ClusterSum> clusters = {{1, 1.0}, {3, 0.0}};
  EXPECT_NEAR(clustered_stderr(clusters), 0.375, 1e-12);
}

TEST(ClusteredStderr, IsZeroWhenEveryClusterHasTheSameMeanOrThereIsOnlyOne) {
  EXPECT_EQ(clustered_stderr(std::vector<ClusterSum>{{2, 1.0}, {6, 3.0}, {4, 2.0}}), 0.0);
  EXPECT_EQ(clustered_stderr(std::vector<ClusterSum>{{512, 7.0}}), 0.0);
  EXPECT_EQ(clustered_stderr(std::vector<ClusterSum>{}), 0.0);
}

// Tokens whose values share a per-cluster offset, as tokens of one window share context.
std::vector<ClusterSum> simulated_text(std::mt19937_64& rng, int clusters, int tokens) {
  std::normal_distribution<double> cluster_offset(0.0, 1.0), token_noise(0.0, 1.0);
  std::vector<ClusterSum> text;
  for (int c = 0; c < clusters; ++c) {
    ClusterSum s{.tokens = tokens};
    const double offset = cluster_offset(rng);
    for (int t = 0; t < tokens; ++t) s.sum += offset + token_noise(rng);
    text.push_back(s);
  }
  return text;
}

TEST(ClusteredStderr, MatchesTheSpreadOfTheMeanOverRepeatedCorrelatedTexts) {
  // 2,000 texts of 32 clusters x 64 tokens. The mean's true standard deviation is
  // sqrt((1 + 1/64) / 32) = 0.1782; its empirical estimate from 2,000 texts is within 1/sqrt(2 *
  // 2000) = 1.6% (one sigma), and the average SE estimate is within ~1% of the truth (its
  // downward bias is about 1/(4 * 31)), so 6% leaves room for ~3 sigma. A token-level SE, which
  // ignores the clusters, would be sqrt(2 / 2048) = 0.031, ~6x too small: the test tells them
  // apart.
  std::mt19937_64 rng(14);
  const int texts = 2000, clusters = 32, tokens = 64;
  double mean_of_means = 0, mean_sq = 0, average_se = 0;
  for (int i = 0; i < texts; ++i) {
    const std::vector<ClusterSum> text = simulated_text(rng, clusters, tokens);
    double sum = 0;
    for (const ClusterSum& c : text) sum += c.sum;
    const double mean = sum / (clusters * tokens);
    mean_of_means += mean / texts;
    mean_sq += mean * mean / texts;
    average_se += clustered_stderr(text) / texts;
  }
  const double empirical_sd = std::sqrt(mean_sq - mean_of_means * mean_of_means);
  const double true_sd = std::sqrt((1.0 + 1.0 / tokens) / clusters);
  EXPECT_NEAR(empirical_sd / true_sd, 1.0, 0.06);
  EXPECT_NEAR(average_se / empirical_sd, 1.0, 0.06);
}

}  // namespace
}  // namespace qforge
