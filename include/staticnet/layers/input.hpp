#pragma once
/// @file
/// `input<H, W, C>` (an image) or `input<N>` (a vector): the first argument of
/// `sequential`, the shape of one sample fed to the model.

#include <cstddef>

#include "../core/shape.hpp"

namespace staticnet {

template <std::size_t... Dims>
struct input {
    static_assert(sizeof...(Dims) == 1 || sizeof...(Dims) == 3,
                  "input takes one size (a vector) or three (height, width, channels)");
    static_assert(((Dims > 0) && ...), "input sizes must be positive");
    static constexpr shape value{Dims...};
};

namespace detail {
template <typename T>
inline constexpr bool is_input = false;
template <std::size_t... Dims>
inline constexpr bool is_input<input<Dims...>> = true;
}  // namespace detail

}  // namespace staticnet
