#pragma once
/// @file
/// Weight initialisation as Keras does it by default: Glorot-uniform kernels, zero biases.

#include <cmath>
#include <cstddef>
#include <span>

#include "../core/random.hpp"

namespace staticnet {

/// Fills `weights` uniformly in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)).
inline void glorot_uniform(std::span<float> weights, std::size_t fan_in, std::size_t fan_out, rng& g) noexcept {
    const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
    for (auto& w : weights) w = g.uniform(-limit, limit);
}

}  // namespace staticnet
