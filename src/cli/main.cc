// qforge: quantize, evaluate, run and benchmark language models.
#include <malloc.h>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "qforge/core/error.h"
#include "qforge/kernels/kernels.h"

int main(int argc, char** argv) {
  // Buffers of 1 MiB and more are mapped and unmapped directly: glibc's default adaptive threshold
  // would keep freed multi-megabyte buffers (GPTQ's Hessians, activations) in the heap, so peak
  // memory of layer-by-layer work would grow with the largest buffer ever freed.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  qforge::kernels::prefer_avx512_blas(argv);
  CLI::App app{"qforge — quantize, evaluate, run and benchmark language models", "qforge"};
  app.set_version_flag("--version", QFORGE_VERSION);
  app.require_subcommand(1);
  qforge::cli::add_info_command(app);
  qforge::cli::add_run_command(app);
  qforge::cli::add_eval_command(app);
  qforge::cli::add_bench_command(app);
  qforge::cli::add_formats_command(app);
  qforge::cli::add_quantize_command(app);
  qforge::cli::add_plan_command(app);
  qforge::cli::add_convert_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const qforge::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qforge: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
