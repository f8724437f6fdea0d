#pragma once
/// @file
/// `thread_pool`: the threads of one rank, persistent for the life of a model.
///
/// A training step runs a few dozen short parallel regions (one per GEMM, per pooling
/// layer...), each a few microseconds to a millisecond long, so waking threads must be cheap.
/// Each worker waits on a word of its own, and a region wakes only the workers that have a
/// part in it: a region of 2 costs the same in a pool of 2 and in a pool of 64, the idle
/// workers sleep through it. When the pool has no more threads than the CPUs the process
/// may run on, a thread spins briefly (about 50-200 microseconds of pause instructions)
/// before it sleeps, since the next region usually starts within microseconds; in a larger
/// pool nobody spins, because a spinning thread would hold the CPU that the thread it waits
/// for needs (`spins()`). Work is split statically (worker i always gets the same part of
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
    /// The most threads a pool can have.
    static constexpr std::size_t max_threads = 0xFFFF;

    /// What the pool's threads did since it was made (`activity()`), for tests and benchmarks.
    struct activity_counts {
        std::uint64_t regions = 0;  ///< regions dispatched to more than one thread
        std::uint64_t wakeups = 0;  ///< times a worker stopped waiting to take a part
        std::uint64_t pauses = 0;   ///< pause instructions spent spinning, by every thread
    };

    /// `threads` counts the caller too; 0 means the CPUs this process may run on
    /// (`available_cpus()`, core/cpu_mask.hpp). Throws `std::invalid_argument` above `max_threads`.
    explicit thread_pool(std::size_t threads = 0);
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool();

    /// Number of threads that share the work (the caller included).
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    /// Whether threads spin before they sleep: only while the pool has no more threads than
    /// the CPUs the process may run on.
    [[nodiscard]] bool spins() const noexcept { return spin_limit_ != 0; }

    /// The counts so far (each read on its own, so a region in flight may be half counted).
    [[nodiscard]] activity_counts activity() const noexcept;

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

    /// One pause of a thread spinning on a word: yields the core's pipeline to its other
    /// hardware thread and saves power where a bare loop would hammer the cache line.
    static void spin_pause() noexcept;
    /// Pauses a thread spins for before it sleeps: about 50-200 microseconds.
    static constexpr int spin_limit = 4000;

private:
    /// One worker's wake-up word and counters, on a cache line of its own so that waking one
    /// worker does not disturb the others. The word is 32 bits: `std::atomic::wait` on it is
    /// a futex on Linux, not a shared table of waiters.
    struct alignas(64) worker_slot {
        std::atomic<std::uint32_t> signal{0};  ///< bumped once per region the worker has a part in
        std::atomic<std::uint64_t> wakeups{0};
        std::atomic<std::uint64_t> pauses{0};
    };

    struct idle_on_exit {
        std::atomic<bool>& busy;
        ~idle_on_exit() { busy.store(false, std::memory_order_release); }
    };

    template <typename Fn>
    static void call(void* context, std::size_t worker, std::size_t workers) {
        (*static_cast<Fn*>(context))(worker, workers);
    }

    void run_task(void (*task)(void*, std::size_t, std::size_t), void* context, std::size_t max_workers);
    void execute(std::size_t w, std::size_t workers);
    void worker_loop(std::size_t index);


    std::size_t size_ = 1;
    int spin_limit_ = 0;  ///< `spin_limit`, or 0 in a pool larger than the CPUs
    std::unique_ptr<worker_slot[]> slots_;  ///< slot i belongs to worker i (slot 0 is unused)
    std::vector<std::thread> workers_;
    std::atomic<std::uint32_t> pending_{0};  ///< workers of the region in flight not done yet
    std::atomic<bool> stop_{false};
    std::atomic<bool> busy_{false};  ///< a region is in flight
    // The region in flight: written before the workers' signals (release), read after (acquire).
    void (*task_)(void*, std::size_t, std::size_t) = nullptr;
    void* context_ = nullptr;
    std::size_t region_workers_ = 1;
    std::atomic<std::uint64_t> regions_{0};
    std::atomic<std::uint64_t> caller_pauses_{0};
    std::mutex error_mutex_;
    std::exception_ptr error_;
};

// ------------------------------------------------------------------ implementation

inline thread_pool::thread_pool(std::size_t threads) {
    if (threads == 0) threads = available_cpus();
    if (threads > max_threads)
        throw std::invalid_argument("thread_pool: " + std::to_string(threads) + " threads, at most " +
                                    std::to_string(max_threads));
    size_ = threads;
    spin_limit_ = threads <= available_cpus() ? spin_limit : 0;
    slots_ = std::make_unique<worker_slot[]>(threads);
    workers_.reserve(threads - 1);
    for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

inline thread_pool::~thread_pool() {
    stop_.store(true, std::memory_order_release);
    for (std::size_t i = 1; i < size_; ++i) {
        slots_[i].signal.fetch_add(1, std::memory_order_release);
        slots_[i].signal.notify_one();
    }
    for (auto& t : workers_) t.join();
}

inline auto thread_pool::activity() const noexcept -> activity_counts {
    activity_counts a{.regions = regions_.load(std::memory_order_relaxed),
                      .wakeups = 0,
                      .pauses = caller_pauses_.load(std::memory_order_relaxed)};
    for (std::size_t i = 1; i < size_; ++i) {
        a.wakeups += slots_[i].wakeups.load(std::memory_order_relaxed);
        a.pauses += slots_[i].pauses.load(std::memory_order_relaxed);
    }
    return a;
}

inline void thread_pool::run_task(void (*task)(void*, std::size_t, std::size_t), void* context,
                                  std::size_t max_workers) {
    const std::size_t n = std::min(size_, std::max<std::size_t>(1, max_workers));
    // A busy pool's task and count belong to the region in flight: a second region dispatched
    // over them would deadlock (nested) or mix the two (concurrent).
    if (n == 1 || busy_.exchange(true, std::memory_order_acquire)) {
        task(context, 0, 1);
        return;
    }
    const idle_on_exit idle{busy_};
    task_ = task;
    context_ = context;
    region_workers_ = n;
    pending_.store(static_cast<std::uint32_t>(n - 1), std::memory_order_relaxed);
    regions_.fetch_add(1, std::memory_order_relaxed);
    // Only the workers with a part are woken; the release publishes the region to each.
    for (std::size_t i = 1; i < n; ++i) {
        slots_[i].signal.fetch_add(1, std::memory_order_release);
        slots_[i].signal.notify_one();
    }
    execute(0, n);
    int spun = 0;
    for (; spun < spin_limit_ && pending_.load(std::memory_order_acquire) != 0; ++spun) spin_pause();
    if (spun != 0) caller_pauses_.fetch_add(static_cast<std::uint64_t>(spun), std::memory_order_relaxed);
    for (std::uint32_t left; (left = pending_.load(std::memory_order_acquire)) != 0;)
        pending_.wait(left, std::memory_order_acquire);
    if (error_) {
        auto e = std::exchange(error_, nullptr);
        std::rethrow_exception(e);
    }
}

inline void thread_pool::spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    // ARM's spin-wait hint: `isb` stalls for about as long as x86's pause does, where `yield`
    // is a no-op on most cores (Rust's spin-loop hint emits isb on AArch64 for this reason).
    __asm__ __volatile__("isb" ::: "memory");
#else
    std::this_thread::yield();  // a system call: portable, if slow
#endif
}

inline void thread_pool::execute(std::size_t w, std::size_t workers) {
    try {
        task_(context_, w, workers);
    } catch (...) {
        std::lock_guard lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
    }
}

inline void thread_pool::worker_loop(std::size_t index) {
    // Workers compute in the trainer's floating-point mode (see denormals.hpp).
    flush_denormals::set_for_this_thread();
    worker_slot& slot = slots_[index];
    std::uint32_t seen = 0;
    for (;;) {
        std::uint32_t now = slot.signal.load(std::memory_order_acquire);
        int spun = 0;
        for (; spun < spin_limit_ && now == seen; ++spun) {
            spin_pause();
            now = slot.signal.load(std::memory_order_acquire);
        }
        if (spun != 0) slot.pauses.fetch_add(static_cast<std::uint64_t>(spun), std::memory_order_relaxed);
        while (now == seen) {
            slot.signal.wait(seen, std::memory_order_acquire);
            now = slot.signal.load(std::memory_order_acquire);
        }
        seen = now;
        if (stop_.load(std::memory_order_acquire)) return;
        slot.wakeups.fetch_add(1, std::memory_order_relaxed);
        execute(index, region_workers_);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
}

}  // namespace staticnet
