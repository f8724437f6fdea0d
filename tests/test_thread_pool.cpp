// thread_pool: what its header promises (core/thread_pool.hpp), checked directly; and the
// part reduction that thread parts with batch statistics meet at (train/detail/part_reduction.hpp).
#include <catch2/catch.hpp>

#include <staticnet/core/thread_pool.hpp>
#include <staticnet/train/detail/part_reduction.hpp>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <cstddef>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sn = staticnet;

namespace {

std::size_t cores() { return std::max(1u, std::thread::hardware_concurrency()); }

/// Pool sizes worth testing: alone, two, an odd count, and more threads than cores.
std::vector<std::size_t> pool_sizes() { return {1, 2, 3, 2 * cores() + 1}; }

/// Runs parallel_for(n) and returns its chunks in order of `begin`, after checking that
/// every index was visited exactly once.
std::vector<std::pair<std::size_t, std::size_t>> chunks_of(sn::thread_pool& pool, std::size_t n, std::size_t grain) {
    std::vector<std::atomic<int>> visits(n);
    std::mutex m;
    std::vector<std::pair<std::size_t, std::size_t>> chunks;
    pool.parallel_for(n, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) visits[i].fetch_add(1, std::memory_order_relaxed);
        const std::lock_guard lock(m);
        chunks.emplace_back(begin, end);
    }, grain);
    std::size_t wrong = 0;
    for (const auto& v : visits) wrong += v.load() != 1;
    CHECK(wrong == 0);
    std::sort(chunks.begin(), chunks.end());
    return chunks;
}

}  // namespace

TEST_CASE("thread_pool: size counts the caller, and 0 means one thread per core", "[thread_pool]") {
    CHECK(sn::thread_pool(1).size() == 1);
    CHECK(sn::thread_pool(2).size() == 2);
    CHECK(sn::thread_pool(2 * cores() + 1).size() == 2 * cores() + 1);
    CHECK(sn::thread_pool(0).size() == cores());
    CHECK(sn::thread_pool().size() == cores());
    // The worker count of a region travels in 16 bits: more threads would never finish a region.
    CHECK_THROWS_AS(sn::thread_pool(sn::thread_pool::max_threads + 1), std::invalid_argument);
}

TEST_CASE("thread_pool: run calls every worker once, each on its own thread", "[thread_pool]") {
    for (const std::size_t size : pool_sizes()) {
        sn::thread_pool pool(size);
        for (const std::size_t max_workers : {std::size_t{0}, std::size_t{1}, std::size_t{2}, size, size + 5}) {
            INFO("size " << size << ", max_workers " << max_workers);
            const std::size_t expected = std::min(size, std::max<std::size_t>(1, max_workers));
            std::vector<std::atomic<int>> calls(expected);
            std::vector<std::thread::id> ids(expected);
            std::atomic<std::size_t> wrong_count{0};
            pool.run([&](std::size_t worker, std::size_t workers) {
                if (workers != expected || worker >= expected) {
                    wrong_count.fetch_add(1);
                    return;
                }
                calls[worker].fetch_add(1);
                ids[worker] = std::this_thread::get_id();
            }, max_workers);
            CHECK(wrong_count.load() == 0);
            for (const auto& c : calls) CHECK(c.load() == 1);
            CHECK(ids[0] == std::this_thread::get_id());  // the caller takes a share
            std::sort(ids.begin(), ids.end());
            CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
        }
    }
}

TEST_CASE("thread_pool: parallel_for covers every index exactly once, in a split fixed by n and size",
          "[thread_pool]") {
    for (const std::size_t size : pool_sizes()) {
        sn::thread_pool pool(size);
        for (const std::size_t n : {0, 1, 2, 5, 63, 64, 1000, 1001})
            for (const std::size_t grain : {0, 1, 3, 64, 5000}) {
                INFO("size " << size << ", n " << n << ", grain " << grain);
                const auto chunks = chunks_of(pool, n, grain);
                // Contiguous, non-empty, and no more chunks than threads or than n / grain allows.
                std::size_t next = 0;
                for (const auto& [begin, end] : chunks) {
                    CHECK(begin == next);
                    CHECK(begin < end);
                    next = end;
                }
                CHECK(next == n);
                CHECK(chunks.size() <= size);
                CHECK(chunks.size() <= std::max<std::size_t>(1, n / std::max<std::size_t>(1, grain)));
                // The same call splits the same way again: results cannot depend on timing.
                CHECK(chunks_of(pool, n, grain) == chunks);
            }
    }
}

TEST_CASE("thread_pool: an exception in a task reaches the caller, and the pool stays usable", "[thread_pool]") {
    for (const std::size_t size : pool_sizes()) {
        sn::thread_pool pool(size);
        INFO("size " << size);
        // Thrown by the caller's own share, by another worker (when there is one), by all.
        for (const std::size_t thrower : {std::size_t{0}, size - 1}) {
            std::atomic<std::size_t> finished{0};
            CHECK_THROWS_WITH(pool.run([&](std::size_t worker, std::size_t) {
                if (worker == thrower) throw std::runtime_error("task " + std::to_string(worker) + " failed");
                finished.fetch_add(1);
            }), "task " + std::to_string(thrower) + " failed");
            CHECK(finished.load() == size - 1);  // the other workers still ran to the end
        }
        CHECK_THROWS_AS(pool.run([](std::size_t, std::size_t) { throw std::logic_error("every one"); }), std::logic_error);
        CHECK_THROWS_AS(pool.parallel_for(100, [](std::size_t begin, std::size_t) {
            if (begin == 0) throw std::out_of_range("first chunk");
        }), std::out_of_range);
        // The error was consumed: later regions run and succeed.
        CHECK(chunks_of(pool, 1000, 1).size() == size);
        CHECK_NOTHROW(pool.run([](std::size_t, std::size_t) {}));
    }
}

TEST_CASE("thread_pool: many short regions in a row all complete", "[thread_pool]") {
    // The wake-up path (spin, then sleep on the generation) must not lose a region.
    sn::thread_pool pool(3);
    std::atomic<std::size_t> total{0};
    for (int region = 0; region < 2000; ++region)
        pool.parallel_for(7, [&](std::size_t begin, std::size_t end) { total.fetch_add(end - begin); });
    CHECK(total.load() == 2000 * 7);
}

TEST_CASE("thread_pool: a region started inside a task runs whole on that task's thread", "[thread_pool]") {
    // As documented: nested calls do not wait for the busy pool (which would deadlock), they
    // run serially on the calling thread.
    for (const std::size_t size : pool_sizes()) {
        sn::thread_pool pool(size);
        INFO("size " << size);
        std::vector<std::atomic<int>> visits(64 * size);
        std::atomic<std::size_t> nested_regions{0}, serial_on_own_thread{0};
        pool.parallel_for(size, [&](std::size_t begin, std::size_t end) {
            for (std::size_t outer = begin; outer < end; ++outer) {
                const auto me = std::this_thread::get_id();
                pool.run([&](std::size_t worker, std::size_t workers) {
                    nested_regions.fetch_add(1);
                    if (worker == 0 && workers == 1 && std::this_thread::get_id() == me) serial_on_own_thread.fetch_add(1);
                });
                pool.parallel_for(64, [&](std::size_t b, std::size_t e) {
                    for (std::size_t i = b; i < e; ++i) visits[outer * 64 + i].fetch_add(1);
                });
            }
        });
        CHECK(nested_regions.load() == size);
        CHECK(serial_on_own_thread.load() == size);
        std::size_t wrong = 0;
        for (const auto& v : visits) wrong += v.load() != 1;
        CHECK(wrong == 0);
        CHECK(chunks_of(pool, 1000, 1).size() == size);  // still parallel afterwards
    }
}

TEST_CASE("thread_pool: two threads may share a pool, and the one that finds it busy runs alone", "[thread_pool]") {
    sn::thread_pool pool(2);
    SECTION("a call while a region is in flight runs serially on its own thread") {
        std::atomic<bool> in_flight{false}, second_done{false};
        std::size_t second_workers = 0;
        std::thread::id second_ran_on;
        std::thread second([&] {
            while (!in_flight.load()) std::this_thread::yield();
            pool.run([&](std::size_t, std::size_t workers) {
                second_workers = workers;
                second_ran_on = std::this_thread::get_id();
            });
            second_done.store(true);
        });
        const auto second_id = second.get_id();
        pool.run([&](std::size_t worker, std::size_t) {
            if (worker != 0) return;
            in_flight.store(true);  // the region is dispatched: hold it until the other call is done
            while (!second_done.load()) std::this_thread::yield();
        });
        second.join();
        CHECK(second_workers == 1);
        CHECK(second_ran_on == second_id);
    }
    SECTION("both callers' regions are complete and correct") {
        auto hammer = [&](std::size_t& wrong) {
            for (int region = 0; region < 300; ++region) {
                std::vector<std::atomic<int>> visits(257);
                pool.parallel_for(visits.size(), [&](std::size_t b, std::size_t e) {
                    for (std::size_t i = b; i < e; ++i) visits[i].fetch_add(1);
                });
                for (const auto& v : visits) wrong += v.load() != 1;
            }
        };
        std::size_t wrong_here = 0, wrong_there = 0;
        std::thread other(hammer, std::ref(wrong_there));
        hammer(wrong_here);
        other.join();
        CHECK(wrong_here == 0);
        CHECK(wrong_there == 0);
    }
}

TEST_CASE("thread_pool: a region wakes only the workers that have a part in it", "[thread_pool]") {
    // The cost of a region must not grow with idle workers: in a pool of 64, regions of 2
    // wake one worker each, never the other 62 (the old pool woke all of them every time).
    sn::thread_pool pool(64);
    std::atomic<std::size_t> calls{0};
    for (int region = 0; region < 500; ++region)
        pool.run([&](std::size_t, std::size_t) { calls.fetch_add(1); }, 2);
    const auto a = pool.activity();
    CHECK(calls.load() == 1000);
    CHECK(a.regions == 500);
    CHECK(a.wakeups == 500);
    // A region of the whole pool wakes every worker exactly once.
    pool.run([](std::size_t, std::size_t) {});
    CHECK(pool.activity().wakeups == 500 + 63);
}

TEST_CASE("thread_pool: more threads than CPUs never spin, as many as the CPUs may", "[thread_pool]") {
    const std::size_t cpus = sn::available_cpus();
    sn::thread_pool over(4 * cpus + 1);
    CHECK_FALSE(over.spins());
    for (int region = 0; region < 200; ++region) over.parallel_for(over.size(), [](std::size_t, std::size_t) {});
    CHECK(over.activity().regions == 200);
    CHECK(over.activity().pauses == 0);  // a spinning thread would hold the CPU its peer needs
    CHECK(sn::thread_pool(cpus).spins() == (cpus > 1));  // a pool of one has no one to spin for
}

TEST_CASE("thread_pool: 64 threads on few CPUs finish the work of 2 within a small factor", "[thread_pool]") {
    // The stall (a job of seconds ran for minutes with 999 threads on 2 cores): every
    // worker spun before sleeping, on CPUs the working threads needed. The same regions, each
    // split over every thread of the pool, run with 2 and with 64 threads, and the CPU time
    // of the process is compared: spinning burns CPU time, sleeping does not, and unlike
    // wall time it hardly depends on what else the machine runs (under a load of 37 on 2
    // cores the wall time of the 64 threads varied from 1.2x to 5.7x that of 2, their CPU
    // time from 1.8x to 2.7x; the old pool's CPU time was 17-20x). Each region holds about a
    // millisecond of work, so 64 threads pay for their wake-ups, but not for spinning.
    // (benchmarks/thread_counts.sh times the whole job.)
    auto cpu_seconds_for = [](std::size_t threads) {
        sn::thread_pool pool(threads);
        std::vector<double> sink(threads * 8, 0.0);
        const std::clock_t start = std::clock();  // CPU time of every thread of the process
        for (int region = 0; region < 1000; ++region)
            pool.parallel_for(4096, [&](std::size_t begin, std::size_t end) {
                double x = 0;
                for (std::size_t i = begin; i < end; ++i)
                    for (int k = 0; k < 64; ++k) x += static_cast<double>(i ^ static_cast<std::size_t>(k)) * 1e-9;
                sink[begin * threads / 4096 * 8] += x;  // a line per worker: no false sharing
            });
        return static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
    };
    const double two = cpu_seconds_for(2);
    const double many = cpu_seconds_for(64);
    INFO("CPU time: 2 threads " << two << " s, 64 threads " << many << " s");
    CHECK(many <= 4 * two + 0.25);
}

namespace {

/// Part p's values for statistic s: large and small magnitudes mixed, so that any other order
/// of the sum would round differently.
double part_value(std::size_t p, std::size_t s, std::size_t i) {
    const double big = (p + s + i) % 3 == 0 ? 1e16 : -1e16;
    return p % 2 == 0 ? big : 1.0 + static_cast<double>(p * 7 + s * 3 + i) * 0.1;
}

}  // namespace

TEST_CASE("part_reduction: every part gets the sum of all parts, added in part order", "[thread_pool][parts]") {
    for (std::size_t parts : {2, 3, 5}) {
        for (std::size_t cpus : {std::size_t{1}, std::size_t{2}, parts}) {
            INFO(parts << " parts, " << cpus << " CPUs");
            sn::detail::part_reduction reduction(cpus);
            sn::thread_pool pool(parts);
            reduction.start(parts, nullptr);
            constexpr std::size_t statistics = 6;
            // results[p][s]: what part p got back for statistic s (statistics of 1 to 6 values)
            std::vector<std::vector<std::vector<double>>> results(parts, std::vector<std::vector<double>>(statistics));
            std::atomic<std::size_t> threads{0};  // (Catch's assertions belong on the test's thread)
            pool.run([&](std::size_t p, std::size_t workers) {
                threads.store(workers);
                reduction.run_part([&] {
                    for (std::size_t s = 0; s < statistics; ++s) {
                        std::vector<double> values(s + 1);
                        for (std::size_t i = 0; i < values.size(); ++i) values[i] = part_value(p, s, i);
                        (*reduction.reducer(p))(values);
                        results[p][s] = values;
                    }
                });
            }, parts);
            REQUIRE(threads.load() == parts);
            for (std::size_t s = 0; s < statistics; ++s)
                for (std::size_t i = 0; i <= s; ++i) {
                    double expected = 0.0;
                    for (std::size_t p = 0; p < parts; ++p) expected += part_value(p, s, i);
                    for (std::size_t p = 0; p < parts; ++p) CHECK(results[p][s][i] == expected);
                }
        }
    }
}

TEST_CASE("part_reduction: the sum over ranks follows the parts' sum, on the thread that started the step",
          "[thread_pool][parts]") {
    // With MPI's "funneled" threading only that thread may call the ranks' allreduce.
    struct fake_ranks {
        std::thread::id caller;
        int calls = 0;
        bool on_caller = true;
    } ranks{std::this_thread::get_id()};
    const sn::rank_reducer doubling{&ranks, [](void* r, std::span<double> v) {
        auto* f = static_cast<fake_ranks*>(r);
        ++f->calls;
        f->on_caller = f->on_caller && std::this_thread::get_id() == f->caller;
        for (double& x : v) x *= 2;  // two ranks with the same values
    }};
    for (std::size_t cpus : {1, 4}) {
        INFO(cpus << " CPUs");
        ranks.calls = 0;
        sn::detail::part_reduction reduction(cpus);
        sn::thread_pool pool(4);
        reduction.start(4, &doubling);
        std::vector<double> got(4);
        pool.run([&](std::size_t p, std::size_t) {
            reduction.run_part([&] {
                for (int s = 0; s < 3; ++s) {
                    std::vector<double> v{static_cast<double>(p + 1)};
                    (*reduction.reducer(p))(v);
                    got[p] = v[0];
                }
            });
        }, 4);
        CHECK(ranks.calls == 3);
        CHECK(ranks.on_caller);
        CHECK(got == std::vector<double>(4, 20.0));  // (1 + 2 + 3 + 4) * 2
    }
}

TEST_CASE("part_reduction: a part that throws stops the others waiting, with its exception", "[thread_pool][parts]") {
    for (std::size_t cpus : {1, 3}) {
        INFO(cpus << " CPUs");
        sn::detail::part_reduction reduction(cpus);
        sn::thread_pool pool(3);
        reduction.start(3, nullptr);
        std::atomic<int> second_sums{0};
        CHECK_THROWS_WITH(pool.run([&](std::size_t p, std::size_t) {
            reduction.run_part([&] {
                std::vector<double> v{1.0};
                (*reduction.reducer(p))(v);  // all three meet once
                if (p == 1) throw std::runtime_error("part 1 failed");
                (*reduction.reducer(p))(v);  // parts 0 and 2 would wait here for part 1 forever
                second_sums.fetch_add(1);
            });
        }, 3), "part 1 failed");
        CHECK(second_sums.load() == 0);
    }
}
