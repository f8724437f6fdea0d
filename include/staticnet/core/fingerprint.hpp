#pragma once
/// @file
/// Compile-time FNV-1a hashing, used for the architecture fingerprint of a model: a 64-bit
/// number computed from the layer list and shapes, stored in checkpoints and weight files so
/// that weights are never loaded into a network they were not trained for.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace staticnet::detail {

inline constexpr std::uint64_t fnv_offset = 0xcbf29ce484222325ULL;

constexpr std::uint64_t fnv1a(std::uint64_t h, std::string_view text) noexcept {
    for (char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    return h;
}

constexpr std::uint64_t fnv1a(std::uint64_t h, std::uint64_t value) noexcept {
    for (int i = 0; i < 8; ++i) {
        h ^= (value >> (8 * i)) & 0xFF;
        h *= 0x100000001b3ULL;
    }
    return h;
}

}  // namespace staticnet::detail
