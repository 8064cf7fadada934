#include "cli/commands.h"

namespace qforge::cli {

void add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "(not implemented yet)");
  cmd->callback([] {});
}

}  // namespace qforge::cli
