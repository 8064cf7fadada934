#include "qforge/core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <memory>

namespace qforge {

std::pair<size_t, size_t> split_range(size_t n, int parts, int i, size_t grain) {
  const size_t blocks = (n + grain - 1) / grain;
  const size_t per = blocks / parts, extra = blocks % parts;
  const size_t b0 = i * per + std::min<size_t>(i, extra);
  const size_t b1 = b0 + per + (static_cast<size_t>(i) < extra ? 1 : 0);
  return {std::min(n, b0 * grain), std::min(n, b1 * grain)};
}

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

namespace {
// How long a waiting thread spins before it sleeps: long enough to bridge the gaps between the
// matmuls of one token, short enough not to burn a core that another process (or our own other
// thread, on an oversubscribed machine) could use. Measured in time, not iterations: a `pause`
// takes ~10 cycles on some CPUs and ~140 on others.
constexpr auto kSpinTime = std::chrono::microseconds(100);

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
}  // namespace

void ThreadPool::worker_loop(int index) {
  unsigned long seen = 0;
  for (;;) {
    // Spin first, then sleep until the generation changes.
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return generation_.load() != seen; });
    }
    const std::function<void(size_t, size_t, int)>* job;
    size_t n, grain;
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      seen = generation_.load();
      job = job_;
      n = job_n_;
      grain = job_grain_;
    }
    const auto [b, e] = split_range(n, size(), index, grain);
    try {
      if (b < e) (*job)(b, e, index);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);
      done_cv_.notify_one();
    }
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
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    pending_.store(static_cast<int>(workers_.size()));
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  std::exception_ptr mine;
  const auto [b, e] = split_range(n, size(), 0, grain);
  try {
    if (b < e) fn(b, e, 0);
  } catch (...) {
    mine = std::current_exception();
  }
  if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, [&] { return pending_.load() == 0; });
  }
  std::lock_guard lock(mutex_);
  job_ = nullptr;
  if (mine) std::rethrow_exception(mine);
  if (error_) std::rethrow_exception(error_);
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
