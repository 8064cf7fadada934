#include "cli/commands.h"

namespace qforge::cli {

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "(not implemented yet)");
  cmd->callback([] {});
}

}  // namespace qforge::cli
