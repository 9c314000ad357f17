// model/thread_pool.h -- a persistent pool of worker threads for the kernels.
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
    // True on a thread that is running a pool task or a team (where a parallel_for runs inline).
    static bool inside_task();

    // Calls fn(begin, end) on disjoint chunks covering [0, n), in parallel; returns when all are done.
    // An exception thrown by fn is rethrown here (the first one). Calls from inside fn run inline.
    // One parallel_for at a time per pool (concurrent callers are serialized).
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

    // Runs fn(thread, n_threads) once on every thread of the pool at the same time (the caller is thread 0)
    // and returns when all have returned. Inside, the threads split the work by their index and wait for
    // each other with barrier(): a whole token's steps for the price of one wake-up, the way llama.cpp
    // runs its graph. fn must not throw: a thread that left early would leave the others at a barrier.
    // Calls of parallel_for inside fn run inline, on the calling thread.
    void run_team(const std::function<void(int thread, int n_threads)>& fn);
    // Inside run_team: returns once every thread of the team has called it.
    void barrier();

private:
    void worker_loop(int index);
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

    // The team job (run_team): which job id it is, its function, how many workers have finished it.
    std::atomic<uint32_t> team_job_{0};
    const std::function<void(int, int)>* team_fn_ = nullptr;
    std::atomic<int> team_done_{0};
    int team_size_ = 1;  // threads in the running team (1 outside run_team: barrier() is then a no-op)
    // barrier(): threads arrived, and a generation count that the last one to arrive moves on.
    std::atomic<int> barrier_arrived_{0};
    std::atomic<uint32_t> barrier_gen_{0};

    std::mutex mutex_;  // sleeping, waking, errors
    std::condition_variable wake_cv_, done_cv_;
    int sleepers_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
};

}  // namespace ll
