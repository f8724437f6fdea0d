#pragma once
/// @file
/// The `communicator` concept: how the ranks of a data-parallel job talk to each other.
///
/// A model takes its communicator as a template parameter, so synchronisation compiles to
/// direct calls (no virtual dispatch) and the single-process build never sees MPI. All
/// collectives are called by every rank in the same order; they operate in place.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace staticnet {

template <typename C>
concept communicator = requires(C& c, std::span<float> f, std::span<double> d, std::span<std::int64_t> i,
                                std::span<std::uint64_t> u, std::string_view message) {
    { c.rank() } -> std::convertible_to<int>;
    { c.size() } -> std::convertible_to<int>;
    c.allreduce_sum(f);       // every rank ends with the element-wise sum over ranks
    c.allreduce_sum(d);
    c.allreduce_sum(i);       // exact (integer) sums: the deterministic mode relies on them
    c.broadcast(f, 0);        // rank 0's values everywhere
    c.broadcast(u, 0);
    c.barrier();
    c.abort(message);         // end the job on every rank (a rank that throws calls it)
};

}  // namespace staticnet
