// A fixed-size fork-join thread pool. The calling thread takes part in the work, so a pool of N
// threads starts N-1 workers. Work is cut into a few contiguous chunks per thread that the threads
// claim from one atomic counter: a worker that the OS has descheduled (a shared or oversubscribed
// machine) delays nothing, because the running threads take its chunks, and a worker that wakes
// after the work is gone simply goes back to waiting.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
  // `grain` (the last may be short); a thread may get several ranges, and which thread gets which
  // depends on timing, so fn must not depend on it (beyond per-thread scratch). Blocks until all
  // are done. Exceptions from fn are rethrown on the calling thread (the first one wins). Not
  // re-entrant: do not call from inside fn.
  void parallel_for(size_t n, const std::function<void(size_t, size_t, int)>& fn, size_t grain = 1);

  // Calls fn(thread_index) exactly once on every thread of the pool, all at the same time (for
  // probes that measure what all cores do together). Blocks until all are done.
  void on_every_thread(const std::function<void(int)>& fn);

  // The process-wide pool used by the CLI and the forward pass unless told otherwise.
  static ThreadPool& global();
  // Recreates the global pool with `threads` threads (call before any work starts).
  static void set_global_threads(int threads);

 private:
  // One published job: chunk c covers [c * chunk, min(n, (c + 1) * chunk)).
  struct Job {
    const std::function<void(size_t, size_t, int)>* fn = nullptr;
    size_t n = 0, chunk = 1, chunks = 0;
    uint32_t generation = 0;
  };

  void worker_loop(int index);
  // Claims and runs chunks of `job` until none is left; records the first exception.
  void run_chunks(const Job& job, int thread_index);
  void record_error(std::exception_ptr e);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  Job job_;  // guarded by mutex_; job_.fn is null between jobs
  // Workers spin briefly on generation_ before sleeping: decode issues ~100 small jobs per token,
  // and a futex wake-up per job would cost more than the work itself.
  std::atomic<uint32_t> generation_{0};
  // The next unclaimed chunk, tagged with its job's generation in the high half so that a worker
  // still holding an older job can never claim (and run with a dead fn) a chunk of a newer one.
  std::atomic<uint64_t> next_chunk_{0};
  std::atomic<size_t> chunks_done_{0};
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace qforge
