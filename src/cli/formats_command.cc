#include "cli/commands.h"

namespace qforge::cli {

void add_formats_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("formats", "(not implemented yet)");
  cmd->callback([] {});
}

}  // namespace qforge::cli
