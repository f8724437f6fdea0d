#pragma once
/// @file
/// `rng`: the one random number generator of staticnet (xoshiro256**, seeded by splitmix64).
///
/// The standard distributions are implementation-defined, so a seed would give different
/// weights with libstdc++ and libc++. staticnet draws everything (initial weights, shuffles,
/// dropout masks) from this generator with its own distributions, so the same seed gives the
/// same numbers on every platform, and its whole state fits in a checkpoint.

#include <array>
#include <bit>
#include <cstdint>

namespace staticnet {

class rng {
public:
    using result_type = std::uint64_t;
    using state_type = std::array<std::uint64_t, 4>;

    explicit constexpr rng(std::uint64_t seed = 0) noexcept { reseed(seed); }

    constexpr void reseed(std::uint64_t seed) noexcept {
        for (auto& word : state_) word = splitmix64(seed);
    }
    /// A generator for one stream derived from a seed and a stream id (epoch, rank, layer...).
    [[nodiscard]] static constexpr rng derived(std::uint64_t seed, std::uint64_t stream) noexcept {
        std::uint64_t s = seed ^ (0x9E3779B97F4A7C15ULL * (stream + 1));
        return rng{splitmix64(s)};
    }

    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return ~result_type{0}; }

    constexpr result_type operator()() noexcept {
        const std::uint64_t result = std::rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = std::rotl(state_[3], 45);
        return result;
    }

    /// Uniform float in [0, 1) with 24 random bits.
    constexpr float uniform() noexcept { return static_cast<float>((*this)() >> 40) * 0x1.0p-24f; }
    /// Uniform float in [lo, hi).
    constexpr float uniform(float lo, float hi) noexcept { return lo + (hi - lo) * uniform(); }
    /// Uniform integer in [0, n), without modulo bias (Lemire's method).
    constexpr std::uint64_t below(std::uint64_t n) noexcept {
        std::uint64_t x = (*this)();
        __uint128_t m = static_cast<__uint128_t>(x) * n;
        auto low = static_cast<std::uint64_t>(m);
        if (low < n) {
            const std::uint64_t threshold = (0 - n) % n;
            while (low < threshold) {
                x = (*this)();
                m = static_cast<__uint128_t>(x) * n;
                low = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }

    [[nodiscard]] constexpr const state_type& state() const noexcept { return state_; }

private:
    static constexpr std::uint64_t splitmix64(std::uint64_t& x) noexcept {
        std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    state_type state_{};
};

/// Fisher-Yates shuffle driven by `rng` (std::shuffle's draws are implementation-defined).
template <typename RandomIt>
constexpr void shuffle(RandomIt first, RandomIt last, rng& g) noexcept {
    const auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
        const auto j = g.below(i);
        auto tmp = first[i - 1];
        first[i - 1] = first[j];
        first[j] = tmp;
    }
}

}  // namespace staticnet
