#pragma once
/// @file
/// `local_communicator`: one process, nothing to synchronise. Every collective is a no-op,
/// so a model built with it compiles to plain single-process code. Its placement is the
/// process's own: all the CPUs of its affinity mask, shared with no one.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string_view>

#include "../core/cpu_mask.hpp"
#include "communicator.hpp"
#include "placement.hpp"

namespace staticnet {

struct local_communicator {
    [[nodiscard]] constexpr int rank() const noexcept { return 0; }
    [[nodiscard]] constexpr int size() const noexcept { return 1; }
    template <typename T>
    constexpr void allreduce_sum(std::span<T>) const noexcept {}
    template <typename T>
    constexpr void broadcast(std::span<T>, int) const noexcept {}
    constexpr void barrier() const noexcept {}
    [[nodiscard]] rank_placement placement() const noexcept {
        const cpu_mask own = cpu_mask::of_this_process();
        return rank_placement::from_masks(own, std::span<const cpu_mask>(&own, 1));
    }
    [[noreturn]] void abort(std::string_view message) const {
        std::cerr << "staticnet: " << message << std::endl;
        std::exit(EXIT_FAILURE);
    }
};

static_assert(communicator<local_communicator>);

}  // namespace staticnet
