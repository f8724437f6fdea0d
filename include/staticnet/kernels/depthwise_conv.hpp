#pragma once
/// @file
/// Depthwise convolution of one channels-last image: every channel convolved with its own
/// K x K kernel, `out[oy, ox, c] = bias[c] + sum over the window of in[iy, ix, c] * w[ky, kx, c]`.
///
/// Channels are innermost in the image and in the kernel ([K, K, C], Keras's layout with a
/// multiplier of 1), so each output pixel is a handful of SIMD multiply-adds over whole channel
/// vectors: no im2col, whose column matrix would be K * K times the image for one multiply-add
/// per element, and no per-channel GEMM, whose matrices would be one column wide. Windows are
/// clipped to the image, so padding costs nothing. Every loop runs in a fixed order, the
/// channels beyond the last whole SIMD vector in a scalar loop of the same order: results
/// depend on the shapes alone.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "../core/compat.hpp"
#include "im2col.hpp"

namespace staticnet::kernels {

namespace detail {

/// The kernel rows (or columns) [begin, end) whose input row (column) o * stride + k - pad
/// lies inside [0, size).
struct window_span {
    std::size_t begin = 0, end = 0;
    std::ptrdiff_t origin = 0;  ///< input index of kernel row (column) 0
};
inline window_span window_at(std::size_t o, std::size_t stride, std::size_t pad, std::size_t kernel, std::size_t size) noexcept {
    const auto origin = static_cast<std::ptrdiff_t>(o * stride) - static_cast<std::ptrdiff_t>(pad);
    const std::size_t begin = origin < 0 ? static_cast<std::size_t>(-origin) : 0;
    const auto end = std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(kernel), static_cast<std::ptrdiff_t>(size) - origin);
    return {begin, end > static_cast<std::ptrdiff_t>(begin) ? static_cast<std::size_t>(end) : begin, origin};
}

/// Calls `f(output pixel, kernel tap, input pixel)` (indices in pixels, not floats) for every
/// tap of every window that falls inside the image, in output-pixel then tap order.
template <typename F>
void for_each_tap(const window_geometry& g, F&& f) {
    for (std::size_t oy = 0; oy < g.out_height; ++oy) {
        const window_span rows = window_at(oy, g.stride, g.pad_top, g.kernel, g.height);
        for (std::size_t ox = 0; ox < g.out_width; ++ox) {
            const window_span cols = window_at(ox, g.stride, g.pad_left, g.kernel, g.width);
            const std::size_t pixel = oy * g.out_width + ox;
            for (std::size_t ky = rows.begin; ky < rows.end; ++ky)
                for (std::size_t kx = cols.begin; kx < cols.end; ++kx)
                    f(pixel, ky * g.kernel + kx,
                      static_cast<std::size_t>(rows.origin + static_cast<std::ptrdiff_t>(ky)) * g.width +
                          static_cast<std::size_t>(cols.origin + static_cast<std::ptrdiff_t>(kx)));
        }
    }
}

/// Calls `f(c, width)` for each SIMD vector of channels [c, c + width), then `f(c, 1)` for
/// each channel left over; `f` is a generic lambda told the width as a compile-time value.
template <typename F>
void for_channel_vectors(std::size_t channels, F&& f) {
    constexpr std::size_t vector = simd::float_lanes;
    std::size_t c = 0;
    for (; c + vector <= channels; c += vector) f(c, std::integral_constant<std::size_t, vector>{});
    for (; c < channels; ++c) f(c, std::integral_constant<std::size_t, 1>{});
}

template <std::size_t Width>
auto load(const float* p) noexcept {
    if constexpr (Width == 1) return *p;
    else return simd::float_batch::load_unaligned(p);
}
template <typename V>
void store(float* p, V v) noexcept {
    if constexpr (std::is_same_v<V, float>) *p = v;
    else v.store_unaligned(p);
}
template <typename V>
V multiply_add(V a, V b, V c) noexcept {
    if constexpr (std::is_same_v<V, float>) return a * b + c;
    else return xsimd::fma(a, b, c);
}

}  // namespace detail

/// One image forward: `out` [out_height, out_width, C] from `in` [height, width, C], kernel
/// `w` [K, K, C] and `bias` [C] (or null).
inline void depthwise_forward(const window_geometry& g, const float* in, const float* w, const float* bias,
                              float* out) noexcept {
    const std::size_t C = g.channels;
    for (std::size_t p = 0; p < g.rows_per_image(); ++p) {
        if (bias != nullptr) std::memcpy(out + p * C, bias, C * sizeof(float));
        else std::fill_n(out + p * C, C, 0.0f);
    }
    // One output pixel's channel vectors at a time, in registers over its taps.
    for (std::size_t oy = 0; oy < g.out_height; ++oy) {
        const detail::window_span rows = detail::window_at(oy, g.stride, g.pad_top, g.kernel, g.height);
        for (std::size_t ox = 0; ox < g.out_width; ++ox) {
            const detail::window_span cols = detail::window_at(ox, g.stride, g.pad_left, g.kernel, g.width);
            float* o = out + (oy * g.out_width + ox) * C;
            detail::for_channel_vectors(C, [&](std::size_t c, auto width) {
                auto acc = detail::load<width()>(o + c);
                for (std::size_t ky = rows.begin; ky < rows.end; ++ky) {
                    const auto iy = static_cast<std::size_t>(rows.origin + static_cast<std::ptrdiff_t>(ky));
                    for (std::size_t kx = cols.begin; kx < cols.end; ++kx) {
                        const auto ix = static_cast<std::size_t>(cols.origin + static_cast<std::ptrdiff_t>(kx));
                        acc = detail::multiply_add(detail::load<width()>(in + (iy * g.width + ix) * C + c),
                                                   detail::load<width()>(w + (ky * g.kernel + kx) * C + c), acc);
                    }
                }
                detail::store(o + c, acc);
            });
        }
    }
}

/// One image's input gradient: `din` [height, width, C] (overwritten) from the gradient `dz`
/// with respect to the output before its activation.
inline void depthwise_input_gradient(const window_geometry& g, const float* dz, const float* w, float* din) noexcept {
    const std::size_t C = g.channels;
    std::fill_n(din, g.image_size(), 0.0f);
    detail::for_each_tap(g, [&](std::size_t out_pixel, std::size_t tap, std::size_t in_pixel) {
        float* d = din + in_pixel * C;
        detail::for_channel_vectors(C, [&](std::size_t c, auto width) {
            detail::store(d + c, detail::multiply_add(detail::load<width()>(w + tap * C + c),
                                                      detail::load<width()>(dz + out_pixel * C + c),
                                                      detail::load<width()>(d + c)));
        });
    });
}

/// Adds one image's kernel gradient to `dw` [K, K, C] and its bias gradient to `dbias` [C]
/// (unless null).
inline void depthwise_kernel_gradient(const window_geometry& g, const float* in, const float* dz, float* dw,
                                      float* dbias) noexcept {
    const std::size_t C = g.channels;
    detail::for_each_tap(g, [&](std::size_t out_pixel, std::size_t tap, std::size_t in_pixel) {
        float* d = dw + tap * C;
        detail::for_channel_vectors(C, [&](std::size_t c, auto width) {
            detail::store(d + c, detail::multiply_add(detail::load<width()>(in + in_pixel * C + c),
                                                      detail::load<width()>(dz + out_pixel * C + c),
                                                      detail::load<width()>(d + c)));
        });
    });
    if (dbias == nullptr) return;
    for (std::size_t p = 0; p < g.rows_per_image(); ++p)
        detail::for_channel_vectors(C, [&](std::size_t c, auto width) {
            detail::store(dbias + c, detail::load<width()>(dbias + c) + detail::load<width()>(dz + p * C + c));
        });
}

}  // namespace staticnet::kernels
