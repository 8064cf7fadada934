// Machine probes for rooflines: sustained fp32 FMA throughput and memory read bandwidth, measured
// with the same SIMD target and thread pool the kernels use.
#pragma once

#include <cstddef>

#include "qforge/core/thread_pool.h"

namespace qforge::kernels {

// Peak fp32 FLOP/s (an FMA counts 2) over all threads of `pool`: independent FMA chains on
// registers, no memory traffic. Runs for about `seconds`.
double measure_fma_peak(ThreadPool& pool, double seconds = 0.3);

// Sustained read bandwidth in bytes/s over all threads of `pool`, streaming a buffer of `bytes`
// (much larger than the caches) several times; the best of the repeats.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 29, int repeats = 5);

}  // namespace qforge::kernels
