#pragma once
/// @file
/// `labelled_data`: the data sets `fit` and `evaluate` take (a float `dataset` or a
/// `byte_dataset`), and `dataset_ref`, a reference to either or to none, which is what
/// `fit_options::validation` holds. Static dispatch only: the pixel type is known at compile
/// time wherever a batch is assembled.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "byte_dataset.hpp"
#include "dataset.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// A data set held in memory: `dataset` (float pixels in [0, 1]) or `byte_dataset`.
template <typename D>
concept labelled_data = std::same_as<D, dataset> || std::same_as<D, byte_dataset>;

/// A non-owning reference to a `dataset`, a `byte_dataset` or nothing. It converts from a
/// pointer to either (so `.validation = &test` works for both) and compares with nullptr.
class dataset_ref {
public:
    constexpr dataset_ref() noexcept = default;
    constexpr dataset_ref(std::nullptr_t) noexcept {}
    constexpr dataset_ref(const dataset* d) noexcept : floats_(d) {}
    constexpr dataset_ref(const byte_dataset* d) noexcept : bytes_(d) {}

    [[nodiscard]] constexpr bool empty() const noexcept { return floats_ == nullptr && bytes_ == nullptr; }
    constexpr explicit operator bool() const noexcept { return !empty(); }
    friend constexpr bool operator==(const dataset_ref& r, std::nullptr_t) noexcept { return r.empty(); }

    /// The float data set, or null when this refers to bytes or to nothing.
    [[nodiscard]] constexpr const dataset* floats() const noexcept { return floats_; }
    /// The byte data set, or null when this refers to floats or to nothing.
    [[nodiscard]] constexpr const byte_dataset* bytes() const noexcept { return bytes_; }

    /// Calls `f` with the referenced data set (`const dataset&` or `const byte_dataset&`);
    /// it must not be empty.
    template <typename F>
    decltype(auto) visit(F&& f) const {
        if (bytes_ != nullptr) return std::forward<F>(f)(*bytes_);
        return std::forward<F>(f)(*floats_);
    }

private:
    const dataset* floats_ = nullptr;
    const byte_dataset* bytes_ = nullptr;
};

namespace detail {

/// Pixel `i` of `d`'s image data as a float.
[[nodiscard]] inline float pixel_at(const dataset& d, std::size_t i) noexcept { return d.images.data()[i]; }
[[nodiscard]] inline float pixel_at(const byte_dataset& d, std::size_t i) noexcept {
    return pixel_value(d.images.data()[i]);
}

/// Copies `n` pixels starting at pixel `first` of `d` to `dst` as floats.
inline void copy_pixels(const dataset& d, std::size_t first, std::size_t n, float* dst) noexcept {
    const float* src = d.images.data() + first;
    std::copy_n(src, n, dst);
}
inline void copy_pixels(const byte_dataset& d, std::size_t first, std::size_t n, float* dst) noexcept {
    const std::uint8_t* src = d.images.data() + first;
    for (std::size_t i = 0; i < n; ++i) dst[i] = pixel_value(src[i]);
}

}  // namespace detail

}  // namespace staticnet::data
