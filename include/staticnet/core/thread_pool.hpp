#pragma once
/// @file
/// `thread_pool`: the threads of one rank, persistent for the life of a model.
///
/// A training step runs a few dozen short parallel regions (one per GEMM, per pooling
/// layer...), each a few microseconds to a millisecond long, so waking threads must be cheap:
/// workers spin briefly on an atomic generation counter before they sleep on it
/// (`std::atomic::wait`). Work is split statically (worker i always gets the same part of
/// the same region), which keeps results independent of scheduling, and the calling thread
/// does a share of the work itself. Dispatch allocates nothing: the task is passed as a
/// function pointer and a context pointer.
///
/// The pool runs one region at a time. A `run` or `parallel_for` called while the pool is
/// busy, from inside one of its own tasks (nested) or from another thread, does not wait
/// for it: it runs the whole region on the calling thread, as one worker. Results are right
/// either way; only the split differs (nested calls are always serial, so that split is
/// still independent of timing; a second thread's is not).
///
/// Workers flush subnormal floats to zero (core/denormals.hpp), as the model's calls do on
/// the calling thread.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu_mask.hpp"
#include "denormals.hpp"

namespace staticnet {

class thread_pool {
public:
    /// The most threads a pool can have (the worker count of a region travels in 16 bits).
    static constexpr std::size_t max_threads = 0xFFFF;

    /// `threads` counts the caller too; 0 means the CPUs this process may run on
    /// (`available_cpus()`, core/cpu_mask.hpp). Throws `std::invalid_argument` above `max_threads`.
    explicit thread_pool(std::size_t threads = 0) {
        if (threads == 0) threads = available_cpus();
        if (threads > max_threads)
            throw std::invalid_argument("thread_pool: " + std::to_string(threads) + " threads, at most " +
                                        std::to_string(max_threads));
        size_ = threads;
        workers_.reserve(threads - 1);
        for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() {
        stop_.store(true, std::memory_order_relaxed);
        generation_.fetch_add(1 << 16, std::memory_order_release);
        generation_.notify_all();
        for (auto& t : workers_) t.join();
    }

    /// Number of threads that share the work (the caller included).
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    /// Calls `f(worker, workers)` once on each of `workers = min(size(), max_workers)`
    /// threads and returns when all are done (`workers` is 1 while the pool is busy: see
    /// above). An exception thrown by any call is rethrown here; the pool stays usable.
    template <typename F>
    void run(F&& f, std::size_t max_workers = ~std::size_t{0}) {
        // Type-erased at once: the dispatch below is compiled once for every region of the
        // program, and `f` once (in `call`) instead of also inline in a serial path.
        using fn_type = std::remove_reference_t<F>;
        run_task(&call<fn_type>, const_cast<void*>(static_cast<const void*>(std::addressof(f))), max_workers);
    }

    /// Splits [0, n) into contiguous chunks, one per worker, and calls `f(begin, end)` on each.
    /// The split depends only on `n` and `size()`, never on timing.
    template <typename F>
    void parallel_for(std::size_t n, F&& f, std::size_t min_chunk = 1) {
        if (n == 0) return;
        const std::size_t max_workers = std::max<std::size_t>(1, n / std::max<std::size_t>(1, min_chunk));
        run([&](std::size_t worker, std::size_t workers) {
            const std::size_t begin = n * worker / workers;
            const std::size_t end = n * (worker + 1) / workers;
            if (begin < end) f(begin, end);
        }, max_workers);
    }

private:
    struct idle_on_exit {
        std::atomic<bool>& busy;
        ~idle_on_exit() { busy.store(false, std::memory_order_release); }
    };

    template <typename Fn>
    static void call(void* context, std::size_t worker, std::size_t workers) {
        (*static_cast<Fn*>(context))(worker, workers);
    }

    void run_task(void (*task)(void*, std::size_t, std::size_t), void* context, std::size_t max_workers) {
        const std::size_t n = std::min(size_, std::max<std::size_t>(1, max_workers));
        // A busy pool's task, count and generation belong to the region in flight: a second
        // region dispatched over them would deadlock (nested) or mix the two (concurrent).
        if (n == 1 || busy_.exchange(true, std::memory_order_acquire)) {
            task(context, 0, 1);
            return;
        }
        const idle_on_exit idle{busy_};
        task_ = task;
        context_ = context;
        pending_.store(n - 1, std::memory_order_relaxed);
        // One word carries the generation and its worker count, so a worker that wakes late
        // never pairs an old generation with a new count.
        const std::uint64_t next = ((generation_.load(std::memory_order_relaxed) >> 16) + 1) << 16 | n;
        generation_.store(next, std::memory_order_release);
        generation_.notify_all();
        execute(0, n);
        // Spin briefly (the others usually finish within microseconds), then sleep: on an
        // oversubscribed machine a descheduled worker must not cost us our time slice.
        for (int i = 0; i < spin_limit && pending_.load(std::memory_order_acquire) != 0; ++i) spin_pause();
        for (std::size_t left; (left = pending_.load(std::memory_order_acquire)) != 0;)
            pending_.wait(left, std::memory_order_acquire);
        if (error_) {
            auto e = std::exchange(error_, nullptr);
            std::rethrow_exception(e);
        }
    }

    static void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#else
        std::this_thread::yield();
#endif
    }

    void execute(std::size_t w, std::size_t workers) {
        try {
            task_(context_, w, workers);
        } catch (...) {
            std::lock_guard lock(error_mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }

    void worker_loop(std::size_t index) {
        // Workers compute in the trainer's floating-point mode (see denormals.hpp).
        flush_denormals::set_for_this_thread();
        std::uint64_t seen = 0;
        for (;;) {
            // Spin a little: the next region usually starts within microseconds.
            std::uint64_t now = generation_.load(std::memory_order_acquire);
            for (int i = 0; i < spin_limit && now == seen; ++i) {
                spin_pause();
                now = generation_.load(std::memory_order_acquire);
            }
            if (now == seen) {
                generation_.wait(seen, std::memory_order_acquire);
                now = generation_.load(std::memory_order_acquire);
            }
            seen = now;
            if (stop_.load(std::memory_order_relaxed)) return;
            const std::size_t workers = static_cast<std::size_t>(now & 0xFFFF);
            if (index < workers) {
                execute(index, workers);
                if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
            }
        }
    }

    /// About 50-200 microseconds of pause instructions before a thread sleeps.
    static constexpr int spin_limit = 4000;

    std::size_t size_ = 1;
    std::vector<std::thread> workers_;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<std::size_t> pending_{0};
    std::atomic<bool> stop_{false};
    std::atomic<bool> busy_{false};  ///< a region is in flight
    void (*task_)(void*, std::size_t, std::size_t) = nullptr;
    void* context_ = nullptr;
    std::mutex error_mutex_;
    std::exception_ptr error_;
};

}  // namespace staticnet
