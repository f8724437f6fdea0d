#pragma once
/// @file
/// What the launcher of this process says about the job, from the environment it sets:
/// `launched_by_mpirun()` and `launch_info`. Needs no MPI header.
///
/// A program built with MPI support can then run as a plain single process when started on
/// its own (no MPI initialisation at all, a `local_communicator`) and data-parallel under
/// `mpirun` or Slurm's `srun`, from the same binary. `launch_info` gives the rank and the
/// node-local rank count where the launcher sets them; `mpi_communicator` falls back on it
/// when MPI cannot tell which ranks share a node (docs/distributed.md, "Slurm").

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace staticnet {

/// True under Open MPI's, MPICH's/Hydra's or a PMIx launcher, or in a task of an `srun` step
/// of more than one task (they set these variables; a Slurm batch script itself is not one).
inline bool launched_by_mpirun() noexcept;

/// The job as the launcher describes it; 0 for what it does not say.
struct launch_info {
    std::size_t rank = 0;        ///< in the job (valid when `size` != 0)
    std::size_t size = 0;        ///< ranks in the job
    std::size_t local_rank = 0;  ///< on this node (valid when `local_size` != 0)
    std::size_t local_size = 0;  ///< ranks on this node

    /// From this process's environment.
    [[nodiscard]] static launch_info from_environment() {
        return from([](const char* name) { return std::getenv(name); });
    }
    /// From `lookup(name)`, which returns a variable's value or null (tests pass their own).
    /// Open MPI's variables first, then MPICH's Hydra, then Slurm's.
    template <typename Lookup>
    [[nodiscard]] static launch_info from(Lookup&& lookup);
};

namespace detail {

inline std::optional<std::size_t> parse_count(const char* text) {
    if (text == nullptr) return std::nullopt;
    const std::string_view s(text);
    std::size_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

/// The tasks on node `node` of a Slurm step, from `SLURM_STEP_TASKS_PER_NODE`: a list such
/// as "2(x3),1" (three nodes with 2 tasks, then one with 1).
inline std::optional<std::size_t> slurm_tasks_on_node(std::string_view list, std::size_t node) {
    while (!list.empty()) {
        const std::size_t comma = std::min(list.find(','), list.size());
        std::string_view item = list.substr(0, comma);
        list.remove_prefix(std::min(comma + 1, list.size()));
        std::size_t tasks = 0, repeat = 1;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), tasks);
        if (ec != std::errc{}) return std::nullopt;
        item.remove_prefix(static_cast<std::size_t>(end - item.data()));
        if (!item.empty()) {  // "(xN)"
            if (!item.starts_with("(x") || !item.ends_with(")")) return std::nullopt;
            item = item.substr(2, item.size() - 3);
            const auto [e2, ec2] = std::from_chars(item.data(), item.data() + item.size(), repeat);
            if (ec2 != std::errc{} || e2 != item.data() + item.size()) return std::nullopt;
        }
        if (node < repeat) return tasks;
        node -= repeat;
    }
    return std::nullopt;
}

}  // namespace detail

// ------------------------------------------------------------------ implementation

inline bool launched_by_mpirun() noexcept {
    for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
        if (std::getenv(variable) != nullptr) return true;
    const auto slurm_tasks = detail::parse_count(std::getenv("SLURM_STEP_NUM_TASKS"));
    return std::getenv("SLURM_STEP_ID") != nullptr && slurm_tasks && *slurm_tasks > 1;
}

template <typename Lookup>
launch_info launch_info::from(Lookup&& lookup) {
    launch_info info;
    const auto take = [&](const char* rank, const char* size, const char* local_rank, const char* local_size) {
        if (info.size == 0)
            if (const auto s = detail::parse_count(lookup(size)), r = detail::parse_count(lookup(rank)); s && r && *r < *s) {
                info.size = *s;
                info.rank = *r;
            }
        if (info.local_size == 0)
            if (const auto s = detail::parse_count(lookup(local_size)), r = detail::parse_count(lookup(local_rank));
                s && r && *r < *s) {
                info.local_size = *s;
                info.local_rank = *r;
            }
    };
    take("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE");
    take("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS");  // Hydra
    // Slurm gives the node's task count only as the step's list of tasks per node.
    if (lookup("SLURM_STEP_ID") != nullptr) {
        if (info.size == 0)
            if (const auto s = detail::parse_count(lookup("SLURM_STEP_NUM_TASKS")), r = detail::parse_count(lookup("SLURM_PROCID"));
                s && r && *r < *s) {
                info.size = *s;
                info.rank = *r;
            }
        const char* per_node = lookup("SLURM_STEP_TASKS_PER_NODE");
        const auto node = detail::parse_count(lookup("SLURM_NODEID"));
        const auto local_rank = detail::parse_count(lookup("SLURM_LOCALID"));
        if (info.local_size == 0 && per_node != nullptr && node && local_rank)
            if (const auto tasks = detail::slurm_tasks_on_node(per_node, *node); tasks && *local_rank < *tasks) {
                info.local_size = *tasks;
                info.local_rank = *local_rank;
            }
    }
    return info;
}

}  // namespace staticnet
