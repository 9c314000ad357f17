// threadpool.h -- a persistent pool of worker threads for the kernels.
//
// Threads are created once. parallel_for cuts 0..n into a few chunks per thread and every thread,
// the caller included, claims chunks from one shared atomic word until none are left, so a thread
// slowed down by a busy core simply takes fewer chunks. The caller waits only for chunks that were
// claimed, never for a worker that has not woken up yet: on a shared machine a descheduled worker
// costs nothing. Between calls the workers spin briefly (the next matrix product of a token comes
// within microseconds), then sleep on a condition variable so an idle model costs no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ll {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // n_threads includes the caller; < 1 means 1
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int n_threads() const { return n_threads_; }

    // Calls fn(begin, end) on disjoint chunks covering [0, n), in parallel; returns when all are done.
    // An exception thrown by fn is rethrown here (the first one). Calls from inside fn run inline.
    // One parallel_for at a time per pool (concurrent callers are serialized).
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

private:
    void worker_loop();
    bool run_one_chunk(uint32_t job);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex call_mutex_;  // one parallel_for at a time

    // The claim word: job id (32 bits) | chunk count (16 bits) | next chunk (16 bits). Claiming is a
    // compare-and-swap that fails once the job changes, so a late worker can never run a stale job.
    std::atomic<uint64_t> claim_{0};
    std::atomic<int64_t> done_{0};  // chunks finished in the current job

    // The job; written before claim_ publishes it, stable until all its chunks are done.
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0, chunk_ = 1;

    std::mutex mutex_;  // sleeping, waking, errors
    std::condition_variable wake_cv_, done_cv_;
    int sleepers_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
};

}  // namespace ll
