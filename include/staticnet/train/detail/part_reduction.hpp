#pragma once
/// @file
/// `detail::part_reduction`: the batch statistics of a step cut into thread parts, summed
/// over the parts in part order (part of train/model.hpp).
///
/// A network with batch statistics (batch_norm) normalises with the statistics of the whole
/// batch, so the parts of a step cannot run one after another: every part computes its share
/// of a statistic's sums and waits until all parts have theirs; then they are added up in
/// part order (and over ranks, with synchronised batch_norm) and every part goes on with the
/// total. This is what the rank reducer does between ranks, here between the parts of one
/// rank. The parts are fixed by the batch, not by the threads, and the order of the sum is
/// fixed, so a step gives the same bits for any number of threads.
///
/// All parts must be in flight together, each on a thread of its own. With fewer CPUs than
/// parts they take turns: a part computes only while it holds one of `cpus` tokens and hands
/// its token on while it waits, so that waiting parts never crowd out the computing ones.
/// The last part to arrive adds the parts' sums; with synchronised batch_norm part 0 does,
/// on the thread that called the step: with MPI's "funneled" threading only that thread may
/// call the ranks' allreduce.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <span>
#include <stdexcept>
#include <vector>

#include "../../core/thread_pool.hpp"
#include "../../layers/layer.hpp"

namespace staticnet::detail {

class part_reduction {
public:
    /// `cpus`: how many parts may compute at once.
    explicit part_reduction(std::size_t cpus) : cpus_(std::max<std::size_t>(1, cpus)) {}
    part_reduction(const part_reduction&) = delete;
    part_reduction& operator=(const part_reduction&) = delete;

    /// Begins a step of `parts` parts. `ranks`: the sum over ranks that follows the sum over
    /// the parts (null: none).
    void start(std::size_t parts, const rank_reducer* ranks) {
        parts_ = parts;
        ranks_ = ranks;
        taking_turns_ = parts > cpus_;
        // Spinning pays while every waiting part has a CPU of its own.
        spin_limit_ = taking_turns_ || parts > available_cpus() ? 0 : thread_pool::spin_limit;
        if (slots_.size() < parts) slots_.resize(parts);
        part_reducers_.resize(parts);
        for (std::size_t p = 0; p < parts; ++p) part_reducers_[p] = {this, p};
        reducers_.resize(parts);
        for (std::size_t p = 0; p < parts; ++p) reducers_[p] = {&part_reducers_[p], &sum_of_part};
        arrived_.store(0, std::memory_order_relaxed);
        failed_.store(false, std::memory_order_relaxed);
        error_ = nullptr;
    }
    /// What part `p`'s layers sum their statistics with (`layer_context::batch_statistics`).
    [[nodiscard]] const rank_reducer* reducer(std::size_t p) const noexcept { return &reducers_[p]; }

    /// Runs `f()`, a part's passes, while it holds a token. If it throws, the other parts stop
    /// waiting for it and throw the same exception at their next sum.
    template <typename F>
    void run_part(F&& f) {
        if (taking_turns_) take_token();
        try {
            f();
        } catch (...) {
            if (taking_turns_) give_token();
            fail(std::current_exception());
            throw;
        }
        if (taking_turns_) give_token();
    }

private:
    struct part_handle {
        part_reduction* shared = nullptr;
        std::size_t part = 0;
    };
    static void sum_of_part(void* handle, std::span<double> values) {
        const auto* h = static_cast<const part_handle*>(handle);
        h->shared->sum(h->part, values);
    }

    void sum(std::size_t p, std::span<double> values) {
        if (failed_.load(std::memory_order_acquire)) rethrow();
        if (ranks_ != nullptr) return sum_over_ranks(p, values);
        // The last part to arrive adds them up and goes straight on: with fewer CPUs than
        // parts that saves a hand-over of the CPU at every statistic.
        slots_[p].assign(values.begin(), values.end());
        const std::uint32_t generation = generation_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == parts_) {  // sees every slot
            arrived_.store(0, std::memory_order_relaxed);
            add_slots(values.size());
            generation_.fetch_add(1, std::memory_order_release);  // publishes the total
            generation_.notify_all();
        } else {
            wait_while(generation_, generation);
        }
        if (failed_.load(std::memory_order_acquire)) rethrow();
        std::copy_n(total_.begin(), values.size(), values.begin());
    }

    /// The same, then summed over the ranks: always by part 0, on the thread that called the step.
    void sum_over_ranks(std::size_t p, std::span<double> values) {
        if (p != 0) {
            slots_[p].assign(values.begin(), values.end());
            const std::uint32_t generation = generation_.load(std::memory_order_acquire);
            arrived_.fetch_add(1, std::memory_order_release);  // publishes the slot to part 0
            arrived_.notify_one();
            wait_while(generation_, generation);
            if (failed_.load(std::memory_order_acquire)) rethrow();
            std::copy_n(total_.begin(), values.size(), values.begin());
            return;
        }
        const auto others = static_cast<std::uint32_t>(parts_ - 1);
        for (std::uint32_t now; (now = arrived_.load(std::memory_order_acquire)) < others;) {
            if (failed_.load(std::memory_order_acquire)) rethrow();
            wait_while(arrived_, now);
        }
        if (failed_.load(std::memory_order_acquire)) rethrow();  // a failure counts as an arrival
        arrived_.fetch_sub(others, std::memory_order_relaxed);
        slots_[0].assign(values.begin(), values.end());
        add_slots(values.size());
        try {
            (*ranks_)(std::span<double>(total_.data(), values.size()));
        } catch (...) {
            fail(std::current_exception());
            throw;
        }
        std::copy_n(total_.begin(), values.size(), values.begin());
        generation_.fetch_add(1, std::memory_order_release);  // publishes the total
        generation_.notify_all();
    }

    /// total = slot 0 + slot 1 + ... in part order: the same bits whoever adds them.
    void add_slots(std::size_t n) {
        total_.assign(slots_[0].begin(), slots_[0].begin() + static_cast<std::ptrdiff_t>(n));
        for (std::size_t other = 1; other < parts_; ++other)
            for (std::size_t i = 0; i < n; ++i) total_[i] += slots_[other][i];
    }

    /// Waits until `word` differs from `seen` (or a part failed), handing on its token meanwhile.
    void wait_while(std::atomic<std::uint32_t>& word, std::uint32_t seen) {
        if (taking_turns_) {
            give_token();
            yield_while(word, seen);
            take_token();
            return;
        }
        for (int spun = 0; spun < spin_limit_ && word.load(std::memory_order_acquire) == seen; ++spun)
            thread_pool::spin_pause();
        sleep_while(word, seen);
    }
    /// (`until_failure`: a part's failure ends the wait too; the words it bumps are woken.)
    void sleep_while(std::atomic<std::uint32_t>& word, std::uint32_t seen, bool until_failure = true) {
        while (word.load(std::memory_order_acquire) == seen && !(until_failure && failed_.load(std::memory_order_acquire)))
            word.wait(seen, std::memory_order_acquire);
    }
    /// While parts take turns, a waiting part yields its CPU for up to `yield_time` before it
    /// sleeps: a thread woken from sleep took tens of microseconds to run again on the
    /// development VM, at every statistic (ResNet-20 on one thread ran 16% slower with sleeping
    /// waits than with yielding ones), while a yielding thread runs again at once. The bound
    /// keeps a part that waits through a long layer from holding a spare CPU busy with yields
    /// (ResNet-20 on one thread of two CPUs: 1.25 CPUs busy; 1.5 with 500 us, 1.8 unbounded).
    void yield_while(std::atomic<std::uint32_t>& word, std::uint32_t seen, bool until_failure = true) {
        const auto start = std::chrono::steady_clock::now();
        for (unsigned polls = 1; word.load(std::memory_order_acquire) == seen &&
                                 !(until_failure && failed_.load(std::memory_order_acquire));
             ++polls) {
            if (polls % 16 == 0 && std::chrono::steady_clock::now() - start > yield_time)
                return sleep_while(word, seen, until_failure);
            std::this_thread::yield();
        }
    }
    void take_token() {
        for (;;) {
            for (std::uint32_t left = tokens_.load(std::memory_order_relaxed); left != 0;)
                if (tokens_.compare_exchange_weak(left, left - 1, std::memory_order_acquire)) return;
            yield_while(tokens_, 0, false);  // a failed part still hands its token on
        }
    }
    void give_token() noexcept {
        tokens_.fetch_add(1, std::memory_order_release);
        tokens_.notify_one();
    }

    void fail(std::exception_ptr e) noexcept {
        {
            const std::lock_guard lock(error_mutex_);
            if (!error_) error_ = e;
        }
        failed_.store(true, std::memory_order_release);
        // Wakes every waiter: part 0 waits on the arrivals, the others on the generation.
        arrived_.fetch_add(1, std::memory_order_release);
        arrived_.notify_all();
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
    }
    [[noreturn]] void rethrow() {
        std::exception_ptr e;
        {
            const std::lock_guard lock(error_mutex_);
            e = error_;
        }
        std::rethrow_exception(e);
    }

    static constexpr std::chrono::microseconds yield_time{200};
    std::size_t cpus_;
    std::atomic<std::uint32_t> tokens_{static_cast<std::uint32_t>(cpus_)};  ///< CPUs free for a part, while parts take turns
    std::size_t parts_ = 0;
    const rank_reducer* ranks_ = nullptr;
    bool taking_turns_ = false;
    int spin_limit_ = 0;
    std::vector<std::vector<double>> slots_;  ///< slot p: part p's sums of the statistic in flight
    std::vector<double> total_;               ///< their total
    std::vector<part_handle> part_reducers_;
    std::vector<rank_reducer> reducers_;
    std::atomic<std::uint32_t> arrived_{0};     ///< parts at the statistic in flight (other than 0's, over ranks)
    std::atomic<std::uint32_t> generation_{0};  ///< bumped when a total is ready
    std::atomic<bool> failed_{false};
    std::mutex error_mutex_;
    std::exception_ptr error_;
};

}  // namespace staticnet::detail
