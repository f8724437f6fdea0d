#pragma once
/// @file
/// `parameter_range`: a run of floats in a network's flat parameter arena (and, at the same
/// offsets, in its gradient arena and an optimizer's state). Weight decay is told which
/// parameters it shrinks as a sorted list of them (`sequential::weight_ranges()`).

#include <cstddef>

namespace staticnet {

/// Floats [offset, offset + count) of the parameter arena.
struct parameter_range {
    std::size_t offset = 0;
    std::size_t count = 0;
    friend constexpr bool operator==(const parameter_range&, const parameter_range&) = default;
};

}  // namespace staticnet
