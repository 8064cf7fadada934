// qforge formats [--json] [--format NAME]: every numeric format with its exact bits per weight.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "qforge/formats/format.h"

namespace qforge::cli {

namespace {

std::string block_text(int64_t block) {
  return block > 0 ? std::to_string(block) : block == 0 ? "row" : "tensor";
}

nlohmann::json to_json(const formats::FormatInfo& i) {
  return {{"name", i.name},
          {"bits_per_weight", i.bits_per_weight},
          {"element", i.element},
          {"element_bits", i.element_bits},
          {"block_size", block_text(i.block)},
          {"scale", i.scale},
          {"tensor_overhead_bits", i.tensor_overhead_bits},
          {"row_multiple", i.row_multiple},
          {"family", i.family}};
}

}  // namespace

void add_formats_command(CLI::App& app) {
  struct Opts {
    bool json = false;
    std::string format;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("formats", "List every numeric format and its exact bits/weight");
  cmd->add_flag("--json", o->json, "Print a JSON array instead of a table");
  cmd->add_option("-f,--format", o->format, "Show only this format (any valid name)");
  cmd->callback([o] {
    std::vector<const formats::Format*> list;
    if (o->format.empty())
      list = formats::all_formats();
    else
      list.push_back(&formats::find_format(o->format));
    if (o->json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto* f : list) arr.push_back(to_json(f->info()));
      fmt::print("{}\n", arr.dump(1));
      return;
    }
    fmt::print("{:<18} {:>8}  {:<34} {:>7}  {:<24} {}\n", "format", "bits/w", "element grid",
               "block", "scale", "row length");
    for (const auto* f : list) {
      const auto& i = f->info();
      std::string bpw = fmt::format("{:.4f}", i.bits_per_weight);
      if (i.block == 0) bpw += "+";  // plus one scale per row
      std::string rule = i.row_multiple > 1 ? fmt::format("multiple of {}", i.row_multiple) : "any";
      std::string scale = i.scale;
      if (i.tensor_overhead_bits > 0)
        scale += fmt::format(" (+{} bits/tensor)", i.tensor_overhead_bits);
      fmt::print("{:<18} {:>8}  {:<34} {:>7}  {:<24} {}\n", i.name, bpw, i.element,
                 block_text(i.block), scale, rule);
    }
  });
}

}  // namespace qforge::cli
