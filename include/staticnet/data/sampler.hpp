#pragma once
/// @file
/// `distributed_sampler`: which samples each rank trains on in each epoch, when every rank
/// holds the whole data set in memory.
///
/// All ranks draw the same seeded permutation of the N samples for an epoch (the seed and
/// the epoch number fix it, so no communication is needed) and each takes every R-th entry
/// of it, starting at its rank. The parts are disjoint and together cover the data set.
/// When R does not divide N, either the tail is dropped (`drop_last`: every rank gets
/// floor(N / R)) or the permutation is padded by repeating its first entries (every rank
/// gets ceil(N / R)), as PyTorch's DistributedSampler does, so all ranks run the same number
/// of steps and no collective waits forever.
///
/// Why strided and not contiguous parts: with a per-rank batch b, step t of the R ranks
/// together covers exactly entries [t*b*R, (t+1)*b*R) of the permutation, the same samples
/// one rank sees in step t with a global batch of b*R. So R ranks reproduce one rank.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/random.hpp"

namespace staticnet::data {

// ===================================================================== public API

class distributed_sampler {
public:
    /// A sampler over `n` samples for rank `rank` of `ranks`. `shuffle = false` keeps the
    /// data set order (for evaluation); the parts are still disjoint and padded alike.
    distributed_sampler(std::size_t n, std::size_t rank, std::size_t ranks, std::uint64_t seed, bool drop_last = false,
                        bool shuffle = true);

    /// Samples this rank gets per epoch; the same on every rank.
    [[nodiscard]] std::size_t size() const noexcept { return per_rank_; }
    /// Samples all ranks get per epoch together (N rounded down or up to a multiple of R).
    [[nodiscard]] std::size_t total_size() const noexcept { return per_rank_ * ranks_; }
    [[nodiscard]] std::size_t dataset_size() const noexcept { return n_; }
    [[nodiscard]] std::size_t rank() const noexcept { return rank_; }
    [[nodiscard]] std::size_t ranks() const noexcept { return ranks_; }
    [[nodiscard]] bool drop_last() const noexcept { return drop_last_; }

    /// This rank's sample indices for `epoch`, in training order. `out` is resized to
    /// `size()`; its capacity is kept between epochs (it grows once, to N), so a reused
    /// vector costs no allocation.
    void indices(std::size_t epoch, std::vector<std::size_t>& out) const;
    /// Convenience: the indices in a new vector.
    [[nodiscard]] std::vector<std::size_t> indices(std::size_t epoch) const {
        std::vector<std::size_t> out;
        indices(epoch, out);
        return out;
    }

private:
    std::size_t n_, rank_, ranks_;
    std::uint64_t seed_;
    bool drop_last_, shuffle_;
    std::size_t per_rank_ = 0;
};

// ===================================================================== implementation

inline distributed_sampler::distributed_sampler(std::size_t n, std::size_t rank, std::size_t ranks, std::uint64_t seed,
                                                bool drop_last, bool shuffle)
    : n_(n), rank_(rank), ranks_(ranks), seed_(seed), drop_last_(drop_last), shuffle_(shuffle) {
    if (ranks == 0) throw std::invalid_argument("distributed_sampler: the number of ranks must be at least 1");
    if (rank >= ranks)
        throw std::invalid_argument("distributed_sampler: rank " + std::to_string(rank) + " is out of range for " +
                                    std::to_string(ranks) + " ranks");
    // Padding an empty data set has nothing to repeat: zero samples either way.
    per_rank_ = drop_last || n == 0 ? n / ranks : (n + ranks - 1) / ranks;
}

inline void distributed_sampler::indices(std::size_t epoch, std::vector<std::size_t>& out) const {
    const std::size_t total = total_size();
    // Build the whole (padded) permutation in `out`, then compact this rank's stride in
    // place: entry i comes from position i*R + rank >= i, so nothing is overwritten early.
    out.resize(std::max(n_, total));
    std::iota(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n_), std::size_t{0});
    if (shuffle_) {
        rng g = rng::derived(seed_, epoch);
        staticnet::shuffle(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n_), g);
    }
    // Padding repeats the permutation from its start (cyclically when R > N).
    for (std::size_t i = n_; i < total; ++i) out[i] = out[i - n_];
    for (std::size_t i = 0; i < per_rank_; ++i) out[i] = out[i * ranks_ + rank_];
    out.resize(per_rank_);
}

}  // namespace staticnet::data
