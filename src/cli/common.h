// Helpers shared by the subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace qforge::cli {

// Adds --threads to a subcommand; 0 means all hardware threads.
void add_threads_option(CLI::App* cmd, int& threads);
// Recreates the global pool when --threads was given.
void apply_threads(int threads);
// "1.23 MiB"
std::string human_bytes(double bytes);

}  // namespace qforge::cli
