#pragma once
/// @file
/// Kernels of batch normalisation over the innermost dimension of a row-major
/// [rows x channels] matrix (an image batch in NHWC is rows = N*H*W).
///
/// Plain functions of the channel count, not templates of it: the network's batch_norm
/// layers of every width share one copy of this code (it is most of what such a layer
/// compiles to). Statistics are sums in double, each channel's rows added in row order, so
/// they do not depend on how threads share the channels; the element-wise passes run every
/// element through the same SIMD code (kernels::map), wherever it sits in a row.

#include <cstddef>

#include "elementwise.hpp"

namespace staticnet::kernels {

/// sums[c] += x[r, c] over all rows, for channels [first, last).
inline void add_channel_sums(const float* x, std::size_t rows, std::size_t channels, std::size_t first, std::size_t last,
                             double* sums) noexcept;

/// sums[c] += (x[r, c] - mean[c])^2 over all rows, for channels [first, last).
inline void add_squared_deviations(const float* x, std::size_t rows, std::size_t channels, std::size_t first,
                                   std::size_t last, const double* mean, double* sums) noexcept;

/// sum_dy[c] += dy[r, c] and sum_dy_x_hat[c] += dy[r, c] * x_hat[r, c] over all rows, for
/// channels [first, last), where x_hat = (x - mean) * inv_std: the sums of batch
/// normalisation's backward pass.
inline void add_gradient_sums(const float* dy, const float* x, std::size_t rows, std::size_t channels,
                              std::size_t first, std::size_t last, const float* mean, const float* inv_std,
                              double* sum_dy, double* sum_dy_x_hat) noexcept;

/// Training's forward pass: y = gamma * x_hat + beta, x_hat = (x - mean) * inv_std.
inline void normalize(const float* x, std::size_t rows, std::size_t channels, const float* mean, const float* inv_std,
                      const float* gamma, const float* beta, float* y) noexcept;

/// Inference: y = x * scale + shift per channel.
inline void scale_and_shift(const float* x, std::size_t rows, std::size_t channels, const float* scale,
                            const float* shift, float* y) noexcept;

/// Training's input gradient: dx = scale * (dy - mean_dy - x_hat * mean_dy_x_hat) per channel,
/// x_hat = (x - mean) * inv_std.
inline void normalization_input_gradient(const float* dy, const float* x, std::size_t rows, std::size_t channels,
                                         const float* mean, const float* inv_std, const float* scale,
                                         const float* mean_dy, const float* mean_dy_x_hat, float* dx) noexcept;

// ------------------------------------------------------------------ implementation
//
// x_hat is never stored: forward and backward compute it the same way from x (a subtraction
// and a multiplication, each rounded to float), which costs less than writing and reading
// it back. The statistics loops are left to the compiler's vectoriser (over the channels of
// a row, which keeps each channel's additions in row order); it contracts d * d + sum and the
// like into fused multiply-adds where the target has them, as it did when these loops were
// inline in the layer, so the sums are bitwise those of earlier releases. The element-wise
// passes spell the same operations out with explicit fused multiply-adds.

inline void add_channel_sums(const float* x, std::size_t rows, std::size_t channels, std::size_t first, std::size_t last,
                             double* sums) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = x + r * channels;
        for (std::size_t c = first; c < last; ++c) sums[c] += row[c];
    }
}

inline void add_squared_deviations(const float* x, std::size_t rows, std::size_t channels, std::size_t first,
                                   std::size_t last, const double* mean, double* sums) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = x + r * channels;
        for (std::size_t c = first; c < last; ++c) {
            const double d = row[c] - mean[c];
            sums[c] += d * d;
        }
    }
}

inline void add_gradient_sums(const float* dy, const float* x, std::size_t rows, std::size_t channels,
                              std::size_t first, std::size_t last, const float* mean, const float* inv_std,
                              double* sum_dy, double* sum_dy_x_hat) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* g = dy + r * channels;
        const float* row = x + r * channels;
        for (std::size_t c = first; c < last; ++c) {
            const float x_hat = (row[c] - mean[c]) * inv_std[c];
            sum_dy[c] += g[c];
            sum_dy_x_hat[c] += static_cast<double>(g[c]) * x_hat;
        }
    }
}

namespace detail {
/// Calls `block(at, c)` for every SIMD register's worth of a [rows x channels] matrix (`at`
/// its offset, `c` its first channel) when whole registers tile a row and returns true;
/// returns false (and calls nothing) otherwise, for the caller's row-by-row `map`. Both
/// paths run the same vector code on every element.
template <typename Block>
bool for_channel_blocks(std::size_t rows, std::size_t channels, Block&& block) noexcept {
    constexpr std::size_t width = simd::float_lanes;
    if (channels % width != 0) return false;
    for (std::size_t r = 0, at = 0; r < rows; ++r)
        for (std::size_t c = 0; c < channels; c += width, at += width) block(at, c);
    return true;
}
inline simd::float_batch load(const float* p) noexcept { return simd::float_batch::load_unaligned(p); }
}  // namespace detail

inline void normalize(const float* x, std::size_t rows, std::size_t channels, const float* mean, const float* inv_std,
                      const float* gamma, const float* beta, float* y) noexcept {
    auto f = [](auto v, auto m, auto s, auto g, auto b) { return xsimd::fma(g, (v - m) * s, b); };
    using detail::load;
    if (detail::for_channel_blocks(rows, channels, [&](std::size_t at, std::size_t c) {
            f(load(x + at), load(mean + c), load(inv_std + c), load(gamma + c), load(beta + c)).store_unaligned(y + at);
        }))
        return;
    for (std::size_t r = 0, at = 0; r < rows; ++r, at += channels) map(channels, f, y + at, x + at, mean, inv_std, gamma, beta);
}

inline void scale_and_shift(const float* x, std::size_t rows, std::size_t channels, const float* scale,
                            const float* shift, float* y) noexcept {
    auto f = [](auto v, auto s, auto t) { return xsimd::fma(v, s, t); };
    using detail::load;
    if (detail::for_channel_blocks(rows, channels, [&](std::size_t at, std::size_t c) {
            f(load(x + at), load(scale + c), load(shift + c)).store_unaligned(y + at);
        }))
        return;
    for (std::size_t r = 0, at = 0; r < rows; ++r, at += channels) map(channels, f, y + at, x + at, scale, shift);
}

inline void normalization_input_gradient(const float* dy, const float* x, std::size_t rows, std::size_t channels,
                                         const float* mean, const float* inv_std, const float* scale,
                                         const float* mean_dy, const float* mean_dy_x_hat, float* dx) noexcept {
    auto f = [](auto g, auto v, auto m, auto is, auto s, auto mg, auto mgx) {
        return s * xsimd::fnma((v - m) * is, mgx, g - mg);
    };
    using detail::load;
    if (detail::for_channel_blocks(rows, channels, [&](std::size_t at, std::size_t c) {
            f(load(dy + at), load(x + at), load(mean + c), load(inv_std + c), load(scale + c), load(mean_dy + c),
              load(mean_dy_x_hat + c))
                .store_unaligned(dx + at);
        }))
        return;
    for (std::size_t r = 0, at = 0; r < rows; ++r, at += channels)
        map(channels, f, dx + at, dy + at, x + at, mean, inv_std, scale, mean_dy, mean_dy_x_hat);
}

}  // namespace staticnet::kernels
