// The multiple-choice knapsack behind `qforge plan`, solved exactly: one option per item (a format
// per tensor), total cost (bytes) within a capacity, total loss (predicted KLD) smallest.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace qforge::plan {

struct KnapsackOption {
  uint64_t cost = 0;
  double loss = 0;
};

struct KnapsackSolution {
  std::vector<int> choice;  // per item, the index of its option
  uint64_t cost = 0;
  double loss = 0;
};

// Dynamic programming over Pareto-optimal partial solutions: after each item only the (cost, loss)
// pairs that no other pair beats in both are kept, and a pair whose cost plus the cheapest
// completion exceeds the capacity is dropped. Every optimal solution survives both prunings, so
// the result is optimal, as by DP over every byte count, without a table as large as the capacity.
// Ties in loss go to the cheaper solution. nullopt when even the cheapest options do not fit.
std::optional<KnapsackSolution> solve_knapsack(
    const std::vector<std::vector<KnapsackOption>>& items, uint64_t capacity);

}  // namespace qforge::plan
