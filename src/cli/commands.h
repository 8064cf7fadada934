// Each `qforge` subcommand lives in its own <name>_command.cc and registers itself on the app.
// The callback runs the command; library errors (qforge::Error) propagate to main(), which prints
// one line "qforge: error: ..." and exits 1.
#pragma once

#include <CLI/CLI.hpp>

namespace qforge::cli {

void add_info_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_formats_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_convert_command(CLI::App& app);

}  // namespace qforge::cli
