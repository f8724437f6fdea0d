#pragma once
/// @file
/// Kernels of batch normalisation over the innermost dimension of a row-major
/// [rows x channels] matrix (an image batch in NHWC is rows = N*H*W).
///
/// Plain functions of the channel count, not templates of it: the network's batch_norm
/// layers of every width share one copy of this code (it is most of what such a layer
/// compiles to). Statistics are sums in double, each channel's rows added in row order, so
/// they do not depend on how threads share the channels; the element-wise passes run every
/// element through the same vector operations (`detail::map_channels`), wherever it sits.

#include <array>
#include <cstddef>
#include <numeric>
#include <utility>

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
/// Per-channel values are repeated over lcm(channels, SIMD width) floats, up to this many,
/// so that a matrix with fewer channels than a register (or a width that does not divide
/// it) still runs in whole registers.
inline constexpr std::size_t max_channel_period = 16 * simd::float_lanes;

/// out[r, c] = f(elements[r, c]..., per_channel[c]...) over a [rows x channels] matrix, `f`
/// taking and returning float batches. Rows of whole registers go register by register;
/// otherwise the matrix is read flat against the per-channel values repeated over a period
/// of whole registers, and rows that do not fill a period go one by one through `map`.
/// Every path runs the same vector code on each element.
template <std::size_t E, std::size_t P, typename F>
void map_channels(std::size_t rows, std::size_t channels, F&& f, float* out, std::array<const float*, E> elements,
                  std::array<const float*, P> per_channel) noexcept {
    constexpr std::size_t width = simd::float_lanes;
    using batch = simd::float_batch;
    constexpr auto e = std::make_index_sequence<E>{};
    constexpr auto k = std::make_index_sequence<P>{};
    // The matrix as [count x period], `values` the per-channel values over one period.
    auto whole_registers = [&](std::size_t count, std::size_t period, const std::array<const float*, P>& values) {
        for (std::size_t i = 0, at = 0; i < count; ++i)
            for (std::size_t c = 0; c < period; c += width, at += width)
                [&]<std::size_t... I, std::size_t... K>(std::index_sequence<I...>, std::index_sequence<K...>) {
                    f(batch::load_unaligned(elements[I] + at)..., batch::load_unaligned(values[K] + c)...)
                        .store_unaligned(out + at);
                }(e, k);
    };
    if (channels % width == 0) return whole_registers(rows, channels, per_channel);
    std::size_t first_row = 0;
    if (const std::size_t period = std::lcm(channels, width); period <= max_channel_period) {
        alignas(64) float repeated[P][max_channel_period];
        std::array<const float*, P> values{};
        for (std::size_t j = 0; j < P; ++j) {
            for (std::size_t i = 0; i < period; ++i) repeated[j][i] = per_channel[j][i % channels];
            values[j] = repeated[j];
        }
        const std::size_t count = rows * channels / period;
        whole_registers(count, period, values);
        first_row = count * (period / channels);
    }
    for (std::size_t r = first_row; r < rows; ++r)
        [&]<std::size_t... I, std::size_t... K>(std::index_sequence<I...>, std::index_sequence<K...>) {
            map(channels, f, out + r * channels, (elements[I] + r * channels)..., per_channel[K]...);
        }(e, k);
}
}  // namespace detail

inline void normalize(const float* x, std::size_t rows, std::size_t channels, const float* mean, const float* inv_std,
                      const float* gamma, const float* beta, float* y) noexcept {
    detail::map_channels(
        rows, channels, [](auto v, auto m, auto s, auto g, auto b) { return simd::fma(g, (v - m) * s, b); }, y,
        std::array{x}, std::array{mean, inv_std, gamma, beta});
}

inline void scale_and_shift(const float* x, std::size_t rows, std::size_t channels, const float* scale,
                            const float* shift, float* y) noexcept {
    detail::map_channels(
        rows, channels, [](auto v, auto s, auto t) { return simd::fma(v, s, t); }, y, std::array{x},
        std::array{scale, shift});
}

inline void normalization_input_gradient(const float* dy, const float* x, std::size_t rows, std::size_t channels,
                                         const float* mean, const float* inv_std, const float* scale,
                                         const float* mean_dy, const float* mean_dy_x_hat, float* dx) noexcept {
    detail::map_channels(
        rows, channels,
        [](auto g, auto v, auto m, auto is, auto s, auto mg, auto mgx) {
            return s * simd::fnma((v - m) * is, mgx, g - mg);
        },
        dx, std::array{dy, x}, std::array{mean, inv_std, scale, mean_dy, mean_dy_x_hat});
}

}  // namespace staticnet::kernels
