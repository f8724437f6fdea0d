#pragma once
/// @file
/// `accuracy`: the share of samples whose largest output is their label.

#include <cstddef>
#include <cstdint>

namespace staticnet {

/// Index of the largest of `n` values (the first one on ties, like numpy's argmax).
inline std::size_t argmax(const float* values, std::size_t n) noexcept {
    std::size_t best = 0;
    for (std::size_t i = 1; i < n; ++i)
        if (values[i] > values[best]) best = i;
    return best;
}

/// Number of rows of `out` [batch x classes] whose argmax equals the label.
inline std::size_t count_correct(const float* out, const std::int32_t* labels, std::size_t batch,
                                 std::size_t classes) noexcept {
    std::size_t correct = 0;
    for (std::size_t s = 0; s < batch; ++s)
        correct += argmax(out + s * classes, classes) == static_cast<std::size_t>(labels[s]);
    return correct;
}

}  // namespace staticnet
