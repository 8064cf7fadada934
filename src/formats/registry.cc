// The format registry: canonical names listed by `qforge formats`, plus a parser that accepts
// any sensible combination (e.g. "int5-asym-g64-bf16", "fp8-e5m2-g128").
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <mutex>
#include <regex>

#include "formats/block_formats.h"
#include "formats/gguf_formats.h"
#include "qforge/core/error.h"

namespace qforge::formats {
namespace {

const char* const kCanonical[] = {
    "int8-channel",  "int8-tensor",  "int8-g128",       "int6-g128",      "int5-g128",
    "int4-g32",      "int4-g64",     "int4-g128",       "int4-channel",   "int4-asym-g128",
    "int4-asym-g32", "int3-g64",     "int3-g128",       "int3-asym-g128", "int2-g64",
    "int2-asym-g64", "fp8-e4m3",     "fp8-e4m3-tensor", "fp8-e4m3-g128",  "fp8-e5m2",
    "fp6-e3m2-g32",  "fp6-e2m3-g32", "fp4-g32",         "fp4-g16",        "mxfp8",
    "mxfp8-e5m2",    "mxfp6-e3m2",   "mxfp6-e2m3",      "mxfp4",          "mxint8",
    "nvfp4",         "nf4"};

// Parses "gN" / "channel" / "tensor" and an optional scale dtype suffix.
bool parse_granularity(const std::string& g, BlockSpec& s) {
  if (g == "channel" || g == "row") {
    s.granularity = Granularity::Row;
  } else if (g == "tensor") {
    s.granularity = Granularity::Tensor;
  } else if (g.size() > 1 && g[0] == 'g' &&
             g.find_first_not_of("0123456789", 1) == std::string::npos) {
    s.granularity = Granularity::Block;
    s.block = std::stoll(g.substr(1));
    if (s.block < 8 || s.block > 4096 || s.block % 8 != 0) return false;
  } else {
    return false;
  }
  return true;
}

bool parse_scale_type(const std::string& t, BlockSpec& s) {
  if (t.empty()) return true;
  if (t == "fp16")
    s.scale = ScaleType::F16;
  else if (t == "bf16")
    s.scale = ScaleType::BF16;
  else if (t == "fp32")
    s.scale = ScaleType::F32;
  else
    return false;
  return true;
}

std::unique_ptr<Format> parse(const std::string& name) {
  if (auto g = make_gguf_format(name)) return g;
  std::smatch m;
  BlockSpec s;
  s.name = name;
  static const std::regex int_re(
      R"(int([2-8])(-asym)?-(g\d+|channel|tensor)(?:-(fp16|bf16|fp32))?)");
  static const std::regex fp_re(
      R"(fp(8-e4m3|8-e5m2|6-e3m2|6-e2m3|4)(?:-(g\d+|channel|tensor))?(?:-(fp16|bf16|fp32))?)");
  static const std::regex mx_re(R"(mx(fp8|fp8-e4m3|fp8-e5m2|fp6-e3m2|fp6-e2m3|fp4|int8))");
  if (std::regex_match(name, m, int_re)) {
    s.element = m[2].matched ? Element::IntAsym : Element::IntSym;
    s.bits = std::stoi(m[1]);
    if (!parse_granularity(m[3], s)) return nullptr;
    s.scale = s.granularity == Granularity::Block ? ScaleType::F16 : ScaleType::F32;
    if (!parse_scale_type(m[4], s)) return nullptr;
    return make_block_format(s);
  }
  if (std::regex_match(name, m, fp_re)) {
    const std::string t = m[1];
    s.element = Element::Mini;
    s.mini = t == "8-e4m3"   ? &kE4M3
             : t == "8-e5m2" ? &kE5M2
             : t == "6-e3m2" ? &kE3M2
             : t == "6-e2m3" ? &kE2M3
                             : &kE2M1;
    s.bits = s.mini->bits();
    // Defaults: FP8 per output channel (as vLLM serves it), FP6/FP4 in groups of 32.
    s.granularity = s.bits == 8 ? Granularity::Row : Granularity::Block;
    if (m[2].matched && !parse_granularity(m[2], s)) return nullptr;
    s.scale = s.granularity == Granularity::Block ? ScaleType::F16 : ScaleType::F32;
    if (!parse_scale_type(m[3], s)) return nullptr;
    return make_block_format(s);
  }
  if (std::regex_match(name, m, mx_re)) {
    const std::string t = m[1];
    s.granularity = Granularity::Block;
    s.block = 32;
    s.scale = ScaleType::E8M0;
    if (t == "int8") {
      s.element = Element::MxInt8;
      s.bits = 8;
    } else {
      s.element = Element::Mini;
      s.mini = (t == "fp8" || t == "fp8-e4m3") ? &kE4M3
               : t == "fp8-e5m2"               ? &kE5M2
               : t == "fp6-e3m2"               ? &kE3M2
               : t == "fp6-e2m3"               ? &kE2M3
                                               : &kE2M1;
      s.bits = s.mini->bits();
    }
    return make_block_format(s);
  }
  if (name == "nvfp4") {
    s.element = Element::Mini;
    s.mini = &kE2M1;
    s.bits = 4;
    s.block = 16;
    s.scale = ScaleType::NvFp4;
    return make_block_format(s);
  }
  if (name == "nf4" || std::regex_match(name, m, std::regex(R"(nf4-(g\d+))"))) {
    s.element = Element::NF4;
    s.bits = 4;
    s.block = 64;
    if (m.size() > 1 && m[1].matched && !parse_granularity(m[1], s)) return nullptr;
    s.scale = ScaleType::F16;
    return make_block_format(s);
  }
  return nullptr;
}

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<Format>> by_name;
};
Registry& registry() {
  static Registry r;
  return r;
}

std::vector<std::string> canonical_names() {
  std::vector<std::string> names(std::begin(kCanonical), std::end(kCanonical));
  for (const auto& g : gguf_format_names()) names.push_back(g);
  return names;
}

}  // namespace

const Format& find_format(std::string_view name_view) {
  const std::string name(name_view);
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.by_name.find(name);
  if (it != r.by_name.end()) return *it->second;
  auto f = parse(name);
  check(f != nullptr,
        "unknown format '{}' (known: {}; integers take "
        "int<2-8>[-asym]-<gN|channel|tensor>[-fp16|-bf16|-fp32])",
        name, fmt::join(canonical_names(), ", "));
  return *r.by_name.emplace(name, std::move(f)).first->second;
}

std::vector<const Format*> all_formats() {
  std::vector<const Format*> out;
  for (const std::string& n : canonical_names()) out.push_back(&find_format(n));
  return out;
}

}  // namespace qforge::formats
