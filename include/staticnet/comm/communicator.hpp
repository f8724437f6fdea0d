#pragma once
/// @file
/// The `communicator` concept: how the ranks of a data-parallel job talk to each other.
///
/// A model takes its communicator as a template parameter, so synchronisation compiles to
/// direct calls (no virtual dispatch) and the single-process build never sees MPI. All
/// collectives are called by every rank in the same order; they operate in place.
///
/// `placement()` is not a collective: it reports what the communicator learnt about the CPUs
/// of this rank and the ranks that compete for them (comm/placement.hpp), from which a model
/// chooses its default number of threads.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "placement.hpp"

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
    { std::as_const(c).placement() } -> std::convertible_to<rank_placement>;
};

}  // namespace staticnet
