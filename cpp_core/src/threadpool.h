// threadpool.h -- a persistent pool of worker threads for the kernels.
//
// Threads are created once. parallel_for hands out [begin, end) chunks of 0..n from a shared atomic
// counter (so a thread slowed by a busy core just takes fewer chunks); the calling thread works too.
// Between calls the workers spin for a short while (the next call usually comes within microseconds
// during decoding), then sleep on a condition variable so an idle model costs no CPU.
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
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

private:
    void worker_loop();
    void run_chunks();

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex call_mutex_;  // one parallel_for at a time

    std::mutex mutex_;       // guards the sleeping and the job fields below
    std::condition_variable wake_cv_, done_cv_;
    bool stop_ = false;
    std::atomic<uint64_t> generation_{0};  // bumped once per job
    std::atomic<int> busy_{0};             // workers not yet finished with the current job

    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0, chunk_ = 1;
    std::atomic<int64_t> next_{0};
    std::exception_ptr error_;
};

}  // namespace ll
