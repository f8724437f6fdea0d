#pragma once
/// @file
/// `rank_placement`: the CPUs a rank may use, and how many ranks on its node compete for them.
/// It decides how many threads a model takes when `model_settings::threads` is 0.
///
/// Every communicator reports one (`communicator::placement()`): a `local_communicator`
/// sees one process and its affinity mask; an `mpi_communicator` exchanges the masks of the
/// ranks that share its node when it is constructed. The rule:
///
///     threads = max(1, cpus / sharing_ranks)
///
/// where `cpus` counts the CPUs of this rank's affinity mask (the machine's when unknown) and
/// `sharing_ranks` counts the ranks of its node, itself included, whose masks overlap its
/// own. Ranks that `mpirun` bound to separate cores or sockets do not share; ranks left
/// unbound (`--bind-to none`) share the whole machine; a rank whose mask is unknown is
/// assumed to share. So `mpirun -np 2` on a 2-core machine (Open MPI binds each rank to a
/// core) gives 1 thread each, and `mpirun --bind-to none -np 4` on 16 CPUs gives 4 each.
///
/// A count asked for is taken as it is up to `max_threads_per_cpu` threads per CPU of the
/// rank, and capped there (with a warning): threads beyond the CPUs only take turns, and each
/// holds a workspace, so `--threads 999` on 2 CPUs would cost memory and time for nothing.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <iostream>
#include <span>
#include <thread>

#include "../core/cpu_mask.hpp"

namespace staticnet {

struct rank_placement {
    std::size_t cpus = 1;           ///< CPUs this rank may run on
    std::size_t sharing_ranks = 1;  ///< ranks of this node, this one included, that may run on some of them
    std::size_t local_ranks = 1;    ///< ranks of this node, this one included
    std::size_t node_cpus = 1;      ///< CPUs the ranks of this node may run on, together

    /// The placement of a rank with affinity mask `own` among the ranks of its node, whose
    /// masks are `node` (`own` included; empty masks are unknown ones). `hardware_cpus`
    /// stands in for an unknown mask.
    [[nodiscard]] static rank_placement from_masks(const cpu_mask& own, std::span<const cpu_mask> node,
                                                   std::size_t hardware_cpus = std::thread::hardware_concurrency()) noexcept;

    /// The threads of this rank when none are asked for: its CPUs shared out among the ranks
    /// that compete for them, at least 1.
    [[nodiscard]] constexpr std::size_t default_threads() const noexcept {
        return std::max<std::size_t>(1, cpus / std::max<std::size_t>(1, sharing_ranks));
    }
    /// Whether `threads` threads on every rank of the node would need more CPUs than it has.
    [[nodiscard]] constexpr bool oversubscribed(std::size_t threads) const noexcept {
        return threads * local_ranks > node_cpus;
    }
};

/// The most threads a model takes per CPU its rank may run on (more are capped to this).
inline constexpr std::size_t max_threads_per_cpu = 4;

namespace detail {
/// The threads a rank's model takes: `requested` (at most `max_threads_per_cpu` per CPU), or
/// its placement's default when 0. With `report` (rank 0), warns once per process when the
/// count was capped or the node would be oversubscribed.
inline std::size_t model_threads(std::size_t requested, const rank_placement& placement, bool report);
}  // namespace detail

// ------------------------------------------------------------------ implementation

inline rank_placement rank_placement::from_masks(const cpu_mask& own, std::span<const cpu_mask> node,
                                                 std::size_t hardware_cpus) noexcept {
    const std::size_t hardware = std::max<std::size_t>(1, hardware_cpus);
    rank_placement p;
    p.cpus = own.empty() ? hardware : own.count();
    p.local_ranks = std::max<std::size_t>(1, node.size());
    std::size_t sharing = 0;
    bool all_known = !own.empty();
    cpu_mask together = own;
    for (const cpu_mask& other : node) {
        // An unknown mask, ours or theirs, may hide a shared CPU: count it as shared.
        if (own.empty() || other.empty() || other.overlaps(own)) ++sharing;
        all_known = all_known && !other.empty();
        together |= other;
    }
    p.sharing_ranks = std::max<std::size_t>(1, sharing);
    p.node_cpus = all_known ? together.count() : hardware;
    return p;
}

namespace detail {
inline std::atomic<bool> oversubscription_reported{false};
inline std::atomic<bool> thread_cap_reported{false};

inline std::size_t model_threads(std::size_t requested, const rank_placement& placement, bool report) {
    const std::size_t cap = max_threads_per_cpu * std::max<std::size_t>(1, placement.cpus);
    if (requested > cap) {
        if (report && !thread_cap_reported.exchange(true))
            std::cerr << "staticnet: warning: " << requested << " threads asked for, but this rank may run on "
                      << placement.cpus << (placement.cpus == 1 ? " CPU" : " CPUs") << ": using " << cap << " (at most "
                      << max_threads_per_cpu << " per CPU; more would only take turns)" << std::endl;
        requested = cap;
    }
    const std::size_t threads = requested != 0 ? requested : placement.default_threads();
    if (report && placement.oversubscribed(threads) && !oversubscription_reported.exchange(true)) {
        std::cerr << "staticnet: warning: " << placement.local_ranks << (placement.local_ranks == 1 ? " rank" : " ranks")
                  << " x " << threads << (threads == 1 ? " thread" : " threads") << " on this node exceed its "
                  << placement.node_cpus << " CPUs, so they take turns on them; "
                  << (requested != 0 ? "leave the thread count at 0 (the default) to fit it to the CPUs, or start fewer ranks"
                                     : "start fewer ranks")
                  << " (docs/distributed.md, \"Threads and binding\")" << std::endl;
    }
    return threads;
}
}  // namespace detail

}  // namespace staticnet
