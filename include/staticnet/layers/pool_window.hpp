#pragma once
/// @file
/// The windows of a pooling layer (`max_pool2d`, `average_pool2d`): where each one lies in
/// the input image, padding included, and what the layer's shape follows from. The pooling
/// layers differ only in what they compute over a window; this is the geometry they share.

#include <algorithm>
#include <cstddef>

#include "../core/shape.hpp"
#include "padding.hpp"

namespace staticnet::detail {

/// `Pool` x `Pool` windows moved by `Stride` over an `In` image (height, width, channels)
/// padded by `Padding`. Padded pixels are never read: a window is cut to the part of it
/// inside the image, and the layer decides what the padding stands for.
template <shape In, std::size_t Pool, std::size_t Stride, padding_rule Padding>
struct pool_windows {
    static constexpr std::size_t height = In.height(), width = In.width(), channels = In.channels();
    static constexpr padding_pixels pads = pad_image(Padding, height, width, Pool, Stride);
    static constexpr std::size_t out_height = pad_axis(Padding, height, Pool, Stride, true).out;
    static constexpr std::size_t out_width = pad_axis(Padding, width, Pool, Stride, false).out;
    /// Every input pixel lies in at most one window and every window in the image: backward
    /// can write each window's gradient in place instead of adding into a zeroed image.
    static constexpr bool tiles = Stride == Pool && pads.none();
    /// Whether the padding of every side is narrower than a window (PyTorch's rule: at most
    /// half of it), so that each window holds at least one pixel of the image.
    static constexpr bool padding_fits = Padding.same || (2 * std::max({pads.top, pads.bottom, pads.left, pads.right}) <= Pool);

    /// The part of the window of output pixel (oy, ox) inside the image: rows [y0, y1) and
    /// columns [x0, x1).
    struct window {
        std::size_t y0, y1, x0, x1;
        [[nodiscard]] constexpr std::size_t first_pixel() const noexcept { return y0 * width + x0; }
    };
    [[nodiscard]] static constexpr window at(std::size_t oy, std::size_t ox) noexcept {
        const std::size_t y = oy * Stride, x = ox * Stride;  // in padded coordinates
        return {y > pads.top ? y - pads.top : 0, std::min(height, y + Pool > pads.top ? y + Pool - pads.top : 0),
                x > pads.left ? x - pads.left : 0, std::min(width, x + Pool > pads.left ? x + Pool - pads.left : 0)};
    }

    /// The input rows and columns some window reads: windows that do not reach the end of the
    /// image leave its last rows and columns unread (`layer_traits::input_rows_read`).
    static constexpr std::size_t rows_read = out_height == 0 ? height : at(out_height - 1, 0).y1;
    static constexpr std::size_t columns_read = out_width == 0 ? width : at(0, out_width - 1).x1;
};

}  // namespace staticnet::detail
