#pragma once
/// @file
/// `local_communicator`: one process, nothing to synchronise. Every collective is a no-op,
/// so a model built with it compiles to plain single-process code.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string_view>

#include "communicator.hpp"

namespace staticnet {

struct local_communicator {
    [[nodiscard]] constexpr int rank() const noexcept { return 0; }
    [[nodiscard]] constexpr int size() const noexcept { return 1; }
    template <typename T>
    constexpr void allreduce_sum(std::span<T>) const noexcept {}
    template <typename T>
    constexpr void broadcast(std::span<T>, int) const noexcept {}
    constexpr void barrier() const noexcept {}
    [[noreturn]] void abort(std::string_view message) const {
        std::cerr << "staticnet: " << message << std::endl;
        std::exit(EXIT_FAILURE);
    }
};

static_assert(communicator<local_communicator>);

}  // namespace staticnet
