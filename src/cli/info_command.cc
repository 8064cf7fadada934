#include "cli/commands.h"

namespace qforge::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "(not implemented yet)");
  cmd->callback([] {});
}

}  // namespace qforge::cli
