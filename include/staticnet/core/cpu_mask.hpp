#pragma once
/// @file
/// `cpu_mask`: the set of CPUs a process may run on (its affinity mask).
///
///     const sn::cpu_mask mine = sn::cpu_mask::of_this_process();   // e.g. {0, 1} under `taskset -c 0,1`
///     std::size_t n = sn::available_cpus();                         // 2 there; all CPUs when unknown
///
/// The mask is what the operating system will actually let this process use: it reflects
/// `taskset`, the binding chosen by `mpirun` and cpuset cgroups (containers, batch systems),
/// which `std::thread::hardware_concurrency()` does not. (A CPU *quota*, such as Docker's
/// `--cpus`, is not a mask and is not seen.) An empty mask means "unknown": not Linux, more
/// than `cpu_mask::max_cpus` CPUs, or a failed query. The mask is a fixed array of words so
/// that ranks can exchange theirs in one collective.

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace staticnet {

class cpu_mask {
public:
    /// CPUs 0 .. max_cpus - 1 (glibc's `CPU_SETSIZE`).
    static constexpr std::size_t max_cpus = 1024;
    static constexpr std::size_t word_count = max_cpus / 64;

    /// The empty (unknown) mask.
    constexpr cpu_mask() = default;
    /// The mask made of these words (bit i of word w is CPU 64 w + i), as `words()` gives them.
    static constexpr cpu_mask from_words(std::span<const std::uint64_t, word_count> words) noexcept;
    /// The CPUs the calling thread may run on now, and so the threads it starts (`sched_getaffinity`); empty when unknown.
    static cpu_mask of_this_process() noexcept;

    constexpr void insert(std::size_t cpu) noexcept;
    [[nodiscard]] constexpr bool contains(std::size_t cpu) const noexcept;
    [[nodiscard]] constexpr std::size_t count() const noexcept;
    [[nodiscard]] constexpr bool empty() const noexcept { return count() == 0; }
    /// Whether the two masks have a CPU in common.
    [[nodiscard]] constexpr bool overlaps(const cpu_mask& other) const noexcept;
    constexpr cpu_mask& operator|=(const cpu_mask& other) noexcept;
    [[nodiscard]] constexpr std::span<const std::uint64_t, word_count> words() const noexcept { return words_; }
    friend constexpr bool operator==(const cpu_mask&, const cpu_mask&) = default;

private:
    std::array<std::uint64_t, word_count> words_{};
};

/// How many CPUs this process may run on: its mask's count, or the hardware concurrency
/// when the mask is unknown; at least 1.
[[nodiscard]] inline std::size_t available_cpus() noexcept {
    const std::size_t mine = cpu_mask::of_this_process().count();
    return std::max<std::size_t>(1, mine != 0 ? mine : std::thread::hardware_concurrency());
}

// ------------------------------------------------------------------ implementation

constexpr cpu_mask cpu_mask::from_words(std::span<const std::uint64_t, word_count> words) noexcept {
    cpu_mask m;
    std::copy(words.begin(), words.end(), m.words_.begin());
    return m;
}

inline cpu_mask cpu_mask::of_this_process() noexcept {
    cpu_mask m;
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof(set), &set) != 0) return m;  // e.g. more CPUs than CPU_SETSIZE
    for (std::size_t cpu = 0; cpu < max_cpus && cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set)) m.insert(cpu);
#endif
    return m;
}

constexpr void cpu_mask::insert(std::size_t cpu) noexcept {
    if (cpu < max_cpus) words_[cpu / 64] |= std::uint64_t{1} << (cpu % 64);
}

constexpr bool cpu_mask::contains(std::size_t cpu) const noexcept {
    return cpu < max_cpus && (words_[cpu / 64] >> (cpu % 64) & 1) != 0;
}

constexpr std::size_t cpu_mask::count() const noexcept {
    std::size_t n = 0;
    for (const std::uint64_t w : words_) n += static_cast<std::size_t>(std::popcount(w));
    return n;
}

constexpr bool cpu_mask::overlaps(const cpu_mask& other) const noexcept {
    for (std::size_t i = 0; i < word_count; ++i)
        if ((words_[i] & other.words_[i]) != 0) return true;
    return false;
}

constexpr cpu_mask& cpu_mask::operator|=(const cpu_mask& other) noexcept {
    for (std::size_t i = 0; i < word_count; ++i) words_[i] |= other.words_[i];
    return *this;
}

}  // namespace staticnet
