// main() for the Google Benchmark executables: picks OpenBLAS's AVX-512 kernels like the CLI does.
#include <benchmark/benchmark.h>

#include "qforge/kernels/kernels.h"

int main(int argc, char** argv) {
  qforge::kernels::prefer_avx512_blas(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("blas_core", qforge::kernels::blas_core_name());
  benchmark::AddCustomContext("simd_target", qforge::kernels::simd_target_name());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
