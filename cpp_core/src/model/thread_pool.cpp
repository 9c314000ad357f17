// model/thread_pool.cpp -- see model/thread_pool.h.
#include "model/thread_pool.h"

#include <algorithm>
#include <stdexcept>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ll {

static inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

// Tens of microseconds of polling: enough to bridge the gap between two matrix products of one
// token, short enough not to hold a shared core for long once the model is idle.
static constexpr int kSpinIterations = 1 << 12;
static constexpr int64_t kMaxChunks = 0xFFFF;

// Waits until done() is true: polls while the others are close behind, then yields each time, in case
// the thread we wait for lost its core (an oversubscribed machine). For team joins and barriers only:
// inside a team no thread ever sleeps.
template <class Done>
static void spin_until(Done done) {
    for (int i = 0; !done(); i++) {
        if (i < kSpinIterations) cpu_relax();
        else std::this_thread::yield();
    }
}

static inline uint32_t job_of(uint64_t claim) { return uint32_t(claim >> 32); }
static inline int64_t count_of(uint64_t claim) { return int64_t((claim >> 16) & 0xFFFF); }
static inline int64_t next_of(uint64_t claim) { return int64_t(claim & 0xFFFF); }

static thread_local bool tls_in_pool = false;

bool ThreadPool::inside_task() { return tls_in_pool; }

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; i++) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_cv_.notify_all();
    for (auto& t : workers_) t.join();
}

// Claims and runs one chunk of `job`; false when the job has no chunk left (or is no longer current).
bool ThreadPool::run_one_chunk(uint32_t job) {
    uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
        if (job_of(c) != job || next_of(c) >= count_of(c)) return false;
        if (claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
    }
    const int64_t count = count_of(c), begin = next_of(c) * chunk_;
    const int64_t end = std::min(n_, begin + chunk_);
    try {
        (*fn_)(begin, end);
    } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
    }
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == count) {
        std::lock_guard<std::mutex> lock(mutex_);  // the caller may be about to sleep: notify under the lock
        done_cv_.notify_one();
    }
    return true;
}

void ThreadPool::worker_loop(int index) {
    tls_in_pool = true;
    uint32_t seen = 0;
    for (;;) {
        uint32_t job = job_of(claim_.load(std::memory_order_acquire));
        for (int i = 0; i < kSpinIterations && job == seen; i++) {
            cpu_relax();
            job = job_of(claim_.load(std::memory_order_acquire));
        }
        if (job == seen) {
            std::unique_lock<std::mutex> lock(mutex_);
            sleepers_++;
            wake_cv_.wait(lock, [&] { return stop_ || job_of(claim_.load(std::memory_order_acquire)) != seen; });
            sleepers_--;
            if (stop_) return;
            job = job_of(claim_.load(std::memory_order_acquire));
        }
        seen = job;
        if (team_job_.load(std::memory_order_acquire) == job) {  // a team job: run it as thread `index`
            (*team_fn_)(index, n_threads_);
            team_done_.fetch_add(1, std::memory_order_acq_rel);
            continue;
        }
        while (run_one_chunk(job)) {
        }
    }
}

// --8<-- [start:run_team]
void ThreadPool::run_team(const std::function<void(int, int)>& fn) {
    if (tls_in_pool) throw std::logic_error("run_team inside a pool task");
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    std::lock_guard<std::mutex> call_lock(call_mutex_);
    bool wake;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        team_fn_ = &fn;
        team_size_ = n_threads_;
        team_done_.store(0, std::memory_order_relaxed);
        const uint32_t job = job_of(claim_.load(std::memory_order_relaxed)) + 1;
        team_job_.store(job, std::memory_order_relaxed);
        claim_.store(uint64_t(job) << 32, std::memory_order_release);  // no chunks: workers see team_job_
        wake = sleepers_ > 0;
    }
    if (wake) wake_cv_.notify_all();
    tls_in_pool = true;
    fn(0, n_threads_);
    tls_in_pool = false;
    spin_until([&] { return team_done_.load(std::memory_order_acquire) == n_threads_ - 1; });
    team_size_ = 1;
}

void ThreadPool::barrier() {
    const int n = team_size_;
    if (n <= 1) return;
    const uint32_t gen = barrier_gen_.load(std::memory_order_acquire);
    if (barrier_arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {  // the last to arrive
        barrier_arrived_.store(0, std::memory_order_relaxed);
        barrier_gen_.store(gen + 1, std::memory_order_release);
        return;
    }
    spin_until([&] { return barrier_gen_.load(std::memory_order_acquire) != gen; });
}
// --8<-- [end:run_team]

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1 || tls_in_pool) {
        fn(0, n);
        return;
    }
    std::lock_guard<std::mutex> call_lock(call_mutex_);
    // A few chunks per thread balance the load when a core is shared.
    const int64_t chunk = std::max<int64_t>({1, (n + 4 * n_threads_ - 1) / (4 * n_threads_), (n + kMaxChunks - 1) / kMaxChunks});
    const int64_t count = (n + chunk - 1) / chunk;
    uint32_t job;
    bool wake;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        fn_ = &fn;
        n_ = n;
        chunk_ = chunk;
        error_ = nullptr;
        done_.store(0, std::memory_order_relaxed);
        job = job_of(claim_.load(std::memory_order_relaxed)) + 1;
        claim_.store((uint64_t(job) << 32) | (uint64_t(count) << 16), std::memory_order_release);
        wake = sleepers_ > 0;
    }
    if (wake) wake_cv_.notify_all();

    tls_in_pool = true;
    while (run_one_chunk(job)) {
    }
    tls_in_pool = false;

    // Every chunk is claimed; wait for the ones other threads are still running.
    for (int i = 0; i < kSpinIterations && done_.load(std::memory_order_acquire) != count; i++) cpu_relax();
    if (done_.load(std::memory_order_acquire) != count) {
        std::unique_lock<std::mutex> lock(mutex_);
        done_cv_.wait(lock, [&] { return done_.load(std::memory_order_acquire) == count; });
    }
    std::exception_ptr error;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        error = error_;
        error_ = nullptr;
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace ll
