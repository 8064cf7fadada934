#include "qforge/plan/knapsack.h"

#include <algorithm>
#include <limits>

#include "qforge/core/error.h"

namespace qforge::plan {
namespace {

struct State {
  uint64_t cost = 0;
  double loss = 0;
  uint32_t parent = 0;  // index into the previous item's front
  uint32_t option = 0;  // this item's option
};

// The cheapest cost of items [i, end), for every i (entry end is 0).
std::vector<uint64_t> cheapest_completion(const std::vector<std::vector<KnapsackOption>>& items) {
  std::vector<uint64_t> rest(items.size() + 1, 0);
  for (size_t i = items.size(); i-- > 0;) {
    check(!items[i].empty(), "knapsack: item {} has no option", i);
    uint64_t cheapest = std::numeric_limits<uint64_t>::max();
    for (const KnapsackOption& o : items[i]) cheapest = std::min(cheapest, o.cost);
    rest[i] = rest[i + 1] + cheapest;
  }
  return rest;
}

// Keeps the states no other state beats in both cost and loss (sorted by cost, loss falling).
std::vector<State> pareto_front(std::vector<State> states) {
  std::sort(states.begin(), states.end(), [](const State& a, const State& b) {
    return a.cost != b.cost ? a.cost < b.cost : a.loss < b.loss;
  });
  std::vector<State> front;
  for (const State& s : states)
    if (front.empty() || s.loss < front.back().loss) front.push_back(s);
  return front;
}

}  // namespace

std::optional<KnapsackSolution> solve_knapsack(
    const std::vector<std::vector<KnapsackOption>>& items, uint64_t capacity) {
  const std::vector<uint64_t> rest = cheapest_completion(items);
  if (rest[0] > capacity) return std::nullopt;
  std::vector<std::vector<State>> fronts;  // per item, for the way back
  std::vector<State> front = {State{}};
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<State> next;
    next.reserve(front.size() * items[i].size());
    for (uint32_t p = 0; p < front.size(); ++p)
      for (uint32_t o = 0; o < items[i].size(); ++o) {
        const uint64_t cost = front[p].cost + items[i][o].cost;
        if (cost + rest[i + 1] <= capacity)
          next.push_back({cost, front[p].loss + items[i][o].loss, p, o});
      }
    fronts.push_back(pareto_front(std::move(next)));
    front = fronts.back();
  }
  // The front's last state has the smallest loss (loss falls as cost grows).
  KnapsackSolution best;
  best.choice.resize(items.size());
  uint32_t at = static_cast<uint32_t>(front.size() - 1);
  best.cost = front[at].cost;
  best.loss = front[at].loss;
  for (size_t i = items.size(); i-- > 0;) {
    best.choice[i] = static_cast<int>(fronts[i][at].option);
    at = fronts[i][at].parent;
  }
  return best;
}

}  // namespace qforge::plan
