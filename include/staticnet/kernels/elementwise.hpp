#pragma once
/// @file
/// Element-wise SIMD kernels: activations and their derivatives, bias addition, column sums.
///
/// Every kernel runs on raw float pointers. The tail that does not fill a whole SIMD register
/// goes through the same vector code on a padded copy, so an element gets bitwise the same
/// result wherever it sits in an array.

#include <algorithm>
#include <cstddef>

#include "../core/compat.hpp"
#include "../core/thread_pool.hpp"

namespace staticnet::kernels {

/// out[i] = f(in0[i], in1[i], ...) for i < n, with `f` taking and returning `float_batch`.
template <typename F, typename... In>
void map(std::size_t n, F&& f, float* out, const In*... in) noexcept;

/// y[r, c] += bias[c] for a row-major [rows x cols] matrix.
inline void add_bias(float* y, const float* bias, std::size_t rows, std::size_t cols) noexcept;

/// sums[c] += sum over rows of x[r, c] (in row order, so the result is reproducible).
inline void accumulate_column_sums(const float* x, std::size_t rows, std::size_t cols, float* sums) noexcept;

/// Softmax of each row of a [rows x cols] matrix, in place, shifted by the row maximum.
inline void softmax_rows(float* x, std::size_t rows, std::size_t cols) noexcept;

/// dy[r, :] = y[r, :] * (dy[r, :] - <dy[r, :], y[r, :]>): the softmax Jacobian applied to dy.
inline void softmax_rows_backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept;

/// Calls `f(begin, end)` on ranges of [0, n) that start at multiples of the SIMD width, on the
/// pool's threads when n is large enough to be worth waking them (64k floats with AVX-512),
/// else once on [0, n). An elementwise pass split this way gives every element the same code
/// path (vector body, scalar tail only at the end), so its result does not depend on the
/// thread count. `pool` may be null.
template <typename F>
void for_simd_ranges(std::size_t n, thread_pool* pool, F&& f) {
    constexpr std::size_t lanes = simd::float_lanes, min_blocks = 2048;
    const std::size_t blocks = n / lanes;
    if (pool == nullptr || pool->size() < 2 || blocks < 2 * min_blocks) return f(std::size_t{0}, n);
    pool->parallel_for(blocks, [&](std::size_t first, std::size_t last) { f(first * lanes, last == blocks ? n : last * lanes); },
                       min_blocks);
}

// ------------------------------------------------------------------ implementation

template <typename F, typename... In>
void map(std::size_t n, F&& f, float* out, const In*... in) noexcept {
    using batch = simd::float_batch;
    constexpr std::size_t lanes = simd::float_lanes;
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) f(batch::load_unaligned(in + i)...).store_unaligned(out + i);
    if (i < n) {
        const std::size_t rest = n - i;
        auto padded = [&](const float* p) {
            alignas(64) float tmp[lanes] = {};
            std::copy_n(p + i, rest, tmp);
            return batch::load_aligned(tmp);
        };
        alignas(64) float result[lanes];
        f(padded(in)...).store_aligned(result);
        std::copy_n(result, rest, out + i);
    }
}

inline void add_bias(float* y, const float* bias, std::size_t rows, std::size_t cols) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        float* row = y + r * cols;
        map(cols, [](auto v, auto b) { return v + b; }, row, row, bias);
    }
}

inline void accumulate_column_sums(const float* x, std::size_t rows, std::size_t cols, float* sums) noexcept {
    for (std::size_t r = 0; r < rows; ++r) map(cols, [](auto s, auto v) { return s + v; }, sums, sums, x + r * cols);
}

inline void softmax_rows(float* x, std::size_t rows, std::size_t cols) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        float* row = x + r * cols;
        const float top = *std::max_element(row, row + cols);
        const simd::float_batch shift(top);
        map(cols, [&](auto v) { return xsimd::exp(v - shift); }, row, row);
        float total = 0.0f;
        for (std::size_t c = 0; c < cols; ++c) total += row[c];
        const simd::float_batch inv(1.0f / total);
        map(cols, [&](auto v) { return v * inv; }, row, row);
    }
}

inline void softmax_rows_backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* yr = y + r * cols;
        float* dr = dy + r * cols;
        float dot = 0.0f;
        for (std::size_t c = 0; c < cols; ++c) dot += yr[c] * dr[c];
        const simd::float_batch d(dot);
        map(cols, [&](auto g, auto p) { return p * (g - d); }, dr, dr, yr);
    }
}

}  // namespace staticnet::kernels
