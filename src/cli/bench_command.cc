#include "cli/commands.h"

namespace qforge::cli {

void add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "(not implemented yet)");
  cmd->callback([] {});
}

}  // namespace qforge::cli
