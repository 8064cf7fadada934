// A fixed-size fork-join thread pool. The calling thread takes part in the work, so a pool of N
// threads starts N-1 workers. Work is split statically into contiguous ranges, which keeps each
// thread on its own slice of a weight matrix (good for caches and NUMA-free machines alike).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qforge {

class ThreadPool {
 public:
  // threads <= 0 means "all hardware threads".
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end, thread_index) on disjoint ranges covering [0, n), ranges aligned to
  // `grain` (the last may be short). Blocks until all are done. Exceptions from fn are rethrown
  // on the calling thread (the first one wins). Not re-entrant: do not call from inside fn.
  void parallel_for(size_t n, const std::function<void(size_t, size_t, int)>& fn, size_t grain = 1);

  // The process-wide pool used by the CLI and the forward pass unless told otherwise.
  static ThreadPool& global();
  // Recreates the global pool with `threads` threads (call before any work starts).
  static void set_global_threads(int threads);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(size_t, size_t, int)>* job_ = nullptr;
  size_t job_n_ = 0;
  size_t job_grain_ = 1;
  // Workers spin briefly on generation_ before sleeping: decode issues ~100 small jobs per token,
  // and a futex wake-up per job would cost more than the work itself.
  std::atomic<unsigned long> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
  std::exception_ptr error_;
};

// Splits [0, n) in `parts` grain-aligned ranges; returns the range of part `i`.
std::pair<size_t, size_t> split_range(size_t n, int parts, int i, size_t grain = 1);

}  // namespace qforge
