#include "qforge/plan/candidates.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "qforge/core/error.h"

namespace qforge::plan {
namespace {

// Each family spans 2 to 8 bits in steps a knapsack can use; formats that another of the same
// bits dominates in practice (e.g. int4-channel, asymmetric variants) are left to explicit lists.
// The integer ladder is dense (a group-size step between bit widths, int7 between int6 and int8):
// a plan at the size of any uniform format can then move single tensors a small step up or down
// instead of only a whole bit, which is where it gains over that format (docs/RESULTS.md, issue
// 13). g64 variants also serve rows that 128 does not divide (Qwen's 576). GGUF: the k-quants
// need rows of 256; for other rows (Qwen's 576) the 32-blocks are the only types, so all of them
// (q4_0, iq4_nl, q4_1, q5_0, q5_1, q8_0: 4.5 to 8.5 bits in half-bit steps up to 6) are candidates.
const std::map<std::string, std::vector<std::string>>& families() {
  static const std::map<std::string, std::vector<std::string>> f = {
      {"int",
       {"int2-g64", "int3-g64", "int3-g128", "int4-g32", "int4-g64", "int4-g128", "int5-g64",
        "int5-g128", "int6-g64", "int6-g128", "int7-g64", "int7-g128", "int8-channel"}},
      {"fp",
       {"fp4-g16", "mxfp4", "nvfp4", "nf4", "mxfp6-e2m3", "fp6-e2m3-g32", "mxfp8", "fp8-e4m3"}},
      {"gguf",
       {"q2_k", "q3_k", "iq4_xs", "q4_0", "iq4_nl", "q4_k", "q4_1", "q5_0", "q5_k", "q5_1", "q6_k",
        "q8_0"}},
  };
  return f;
}

}  // namespace

std::vector<const formats::Format*> candidate_formats(const std::string& spec) {
  std::vector<std::string> names;
  if (spec == "all") {
    for (const auto& [family, list] : families())
      names.insert(names.end(), list.begin(), list.end());
  } else if (auto it = families().find(spec); it != families().end()) {
    names = it->second;
  } else {
    std::stringstream ss(spec);
    for (std::string name; std::getline(ss, name, ',');)
      if (!name.empty()) names.push_back(name);
    check(!names.empty(), "--formats: no format named in '{}'", spec);
  }
  std::set<std::string> seen;
  std::vector<const formats::Format*> out;
  for (const std::string& name : names)
    if (seen.insert(name).second) out.push_back(&formats::find_format(name));
  std::sort(out.begin(), out.end(), [](const formats::Format* a, const formats::Format* b) {
    if (a->info().bits_per_weight != b->info().bits_per_weight)
      return a->info().bits_per_weight < b->info().bits_per_weight;
    return a->name() < b->name();
  });
  return out;
}

}  // namespace qforge::plan
