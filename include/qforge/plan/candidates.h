// The formats a plan may choose from: a family name or an explicit comma-separated list.
#pragma once

#include <string>
#include <vector>

#include "qforge/formats/format.h"

namespace qforge::plan {

// "int", "fp" (minifloats, MX, NVFP4, NF4), "gguf" (types llama.cpp runs), "all" (the three), or
// a list such as "int4-g128,q4_k,nvfp4". Unknown names throw Error naming them; duplicates are
// dropped. The order is by bits per weight, then name.
std::vector<const formats::Format*> candidate_formats(const std::string& spec);

}  // namespace qforge::plan
