#pragma once
/// @file
/// `shape`: the compile-time shape of one sample flowing between layers.
///
/// A sample is either a feature vector (rank 1, `shape{10}`) or an image in channels-last
/// order (rank 3, `shape{height, width, channels}`). The batch dimension is never part of a
/// shape: it is chosen at run time. `shape` is a structural type, so it can be a template
/// argument and every layer resolves its output shape from its input shape at compile time.

#include <array>
#include <cstddef>
#include <ostream>
#include <string>

namespace staticnet {

struct shape {
    std::size_t rank = 0;
    std::array<std::size_t, 3> dims{};

    constexpr shape() = default;
    /// A feature vector of `n` values.
    constexpr explicit shape(std::size_t n) : rank(1), dims{n, 0, 0} {}
    /// An image of `h` x `w` pixels with `c` channels (NHWC without the N).
    constexpr shape(std::size_t h, std::size_t w, std::size_t c) : rank(3), dims{h, w, c} {}

    /// Number of floats in one sample of this shape.
    [[nodiscard]] constexpr std::size_t size() const noexcept {
        std::size_t n = rank == 0 ? 0 : 1;
        for (std::size_t i = 0; i < rank; ++i) n *= dims[i];
        return n;
    }
    [[nodiscard]] constexpr std::size_t height() const noexcept { return rank == 3 ? dims[0] : 1; }
    [[nodiscard]] constexpr std::size_t width() const noexcept { return rank == 3 ? dims[1] : 1; }
    /// The innermost dimension: channels of an image, features of a vector.
    [[nodiscard]] constexpr std::size_t channels() const noexcept {
        return rank == 3 ? dims[2] : dims[0];
    }
    [[nodiscard]] constexpr bool is_image() const noexcept { return rank == 3; }
    [[nodiscard]] constexpr bool is_vector() const noexcept { return rank == 1; }

    friend constexpr bool operator==(const shape&, const shape&) = default;
};

/// Keras-like rendering: `(None, 26, 26, 32)` or `(None, 10)`.
[[nodiscard]] inline std::string to_string(const shape& s) {
    std::string text = "(None";
    for (std::size_t i = 0; i < s.rank; ++i) text += ", " + std::to_string(s.dims[i]);
    return text + ')';
}
inline std::ostream& operator<<(std::ostream& os, const shape& s) { return os << to_string(s); }

}  // namespace staticnet
