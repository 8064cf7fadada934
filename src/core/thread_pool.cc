#include "qforge/core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

namespace qforge {

namespace {
// How long a waiting thread spins before it sleeps: long enough to bridge the gaps between the
// matmuls of one token, short enough not to burn a core that another process (or our own other
// thread, on an oversubscribed machine) could use. Measured in time, not iterations: a `pause`
// takes ~10 cycles on some CPUs and ~140 on others.
constexpr auto kSpinTime = std::chrono::microseconds(100);

// Chunks per thread: enough that the running threads can take over the share of one that is
// descheduled, few enough that claiming a chunk (one atomic add) stays negligible.
constexpr size_t kChunksPerThread = 8;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpinTime has passed; returns done().
template <class Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

uint64_t tagged(uint32_t generation, uint64_t chunk) {
  return (static_cast<uint64_t>(generation) << 32) | chunk;
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::record_error(std::exception_ptr e) {
  std::lock_guard lock(mutex_);
  if (!error_) error_ = e;
}

void ThreadPool::run_chunks(const Job& job, int thread_index) {
  uint64_t claim = next_chunk_.load(std::memory_order_relaxed);
  for (;;) {
    if (claim >> 32 != job.generation || (claim & 0xffffffffu) >= job.chunks) return;
    if (!next_chunk_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel)) continue;
    const size_t begin = (claim & 0xffffffffu) * job.chunk;
    try {
      (*job.fn)(begin, std::min(job.n, begin + job.chunk), thread_index);
    } catch (...) {
      record_error(std::current_exception());
    }
    if (chunks_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == job.chunks) {
      std::lock_guard lock(mutex_);  // the caller may be asleep on done_cv_
      done_cv_.notify_one();
    }
    claim = next_chunk_.load(std::memory_order_relaxed);
  }
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;
  for (;;) {
    // Spin first, then sleep until the generation changes.
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return generation_.load() != seen; });
    }
    Job job;
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      seen = generation_.load();
      job = job_;
    }
    if (job.fn != nullptr && job.generation == seen) run_chunks(job, index);
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t, int)>& fn,
                              size_t grain) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  if (workers_.empty() || n <= grain) {
    fn(0, n, 0);
    return;
  }
  const size_t grains = (n + grain - 1) / grain;
  const size_t chunks = std::min(grains, static_cast<size_t>(size()) * kChunksPerThread);
  const size_t chunk = (grains + chunks - 1) / chunks * grain;
  Job job{&fn, n, chunk, (n + chunk - 1) / chunk, 0};
  {
    std::lock_guard lock(mutex_);
    error_ = nullptr;
    job.generation = generation_.load() + 1;
    job_ = job;
    chunks_done_.store(0, std::memory_order_relaxed);
    next_chunk_.store(tagged(job.generation, 0), std::memory_order_relaxed);
    generation_.store(job.generation, std::memory_order_release);
  }
  start_cv_.notify_all();
  run_chunks(job, 0);
  auto all_done = [&] { return chunks_done_.load(std::memory_order_acquire) == job.chunks; };
  if (!spin_until(all_done)) {
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, all_done);
  }
  std::lock_guard lock(mutex_);
  job_.fn = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void ThreadPool::on_every_thread(const std::function<void(int)>& fn) {
  // One chunk per thread, and every thread waits at a start line until all have arrived, so no
  // thread can take a second chunk.
  std::atomic<int> arrived{0};
  const int threads = size();
  parallel_for(static_cast<size_t>(threads), [&](size_t, size_t, int thread_index) {
    arrived.fetch_add(1);
    while (arrived.load() < threads) cpu_relax();
    fn(thread_index);
  });
}

namespace {
std::unique_ptr<ThreadPool>& global_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
}  // namespace

ThreadPool& ThreadPool::global() {
  auto& p = global_slot();
  if (!p) p = std::make_unique<ThreadPool>(0);
  return *p;
}

void ThreadPool::set_global_threads(int threads) {
  global_slot() = std::make_unique<ThreadPool>(threads);
}

}  // namespace qforge
