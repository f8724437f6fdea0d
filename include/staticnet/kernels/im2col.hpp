#pragma once
/// @file
/// `im2col` / `col2im` for channels-last (NHWC) images: the data movement that turns a
/// convolution into one matrix product.
///
/// Row `(n, oy, ox)` of the column matrix holds the receptive field of that output pixel,
/// ordered (ky, kx, c), which is the row order of a Keras kernel [K, K, C, F]. So
///     output[N*OH*OW x F] = columns[N*OH*OW x K*K*C] * kernel[K*K*C x F]
/// and the output is already NHWC. Padding positions read as zeros.

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace staticnet::kernels {

/// Geometry of one convolution or pooling window sweep.
struct window_geometry {
    std::size_t height, width, channels;   ///< input image
    std::size_t kernel, stride;
    std::size_t pad_top, pad_left;
    std::size_t out_height, out_width;

    [[nodiscard]] constexpr std::size_t column_width() const noexcept { return kernel * kernel * channels; }
    [[nodiscard]] constexpr std::size_t rows_per_image() const noexcept { return out_height * out_width; }
    [[nodiscard]] constexpr std::size_t image_size() const noexcept { return height * width * channels; }
};

/// Writes rows [first, last) of the column matrix of the images starting at `in` (row
/// `(n, oy, ox)` is number `(n * out_height + oy) * out_width + ox`) to their places in
/// `columns`, which points at row 0. Threads may take a range of rows each: a chunk of one
/// large image (a ResNet's 7x7 stem) then splits as evenly as one of many small ones.
inline void im2col_rows(const window_geometry& g, const float* in, std::size_t first, std::size_t last,
                        float* columns) noexcept {
    const std::size_t row_width = g.column_width();
    const std::size_t span = g.kernel * g.channels;
    const std::size_t per_image = g.rows_per_image();
    for (std::size_t r = first; r < last; ++r) {
        const std::size_t n = r / per_image, oy = r % per_image / g.out_width, ox = r % g.out_width;
        const float* image = in + n * g.image_size();
        float* row = columns + r * row_width;
        // Input columns [x0, x0 + kernel) may stick out on either side by the padding.
        const auto x0 = static_cast<std::ptrdiff_t>(ox * g.stride) - static_cast<std::ptrdiff_t>(g.pad_left);
        const std::size_t kx_begin = x0 < 0 ? static_cast<std::size_t>(-x0) : 0;
        const std::size_t kx_end = std::min<std::ptrdiff_t>(g.kernel, static_cast<std::ptrdiff_t>(g.width) - x0);
        for (std::size_t ky = 0; ky < g.kernel; ++ky) {
            float* dst = row + ky * span;
            const auto iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad_top);
            if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.height) || kx_begin >= kx_end) {
                std::memset(dst, 0, span * sizeof(float));
                continue;
            }
            const float* src = image + (static_cast<std::size_t>(iy) * g.width) * g.channels;
            if (kx_begin > 0) std::memset(dst, 0, kx_begin * g.channels * sizeof(float));
            std::memcpy(dst + kx_begin * g.channels,
                        src + static_cast<std::size_t>(x0 + static_cast<std::ptrdiff_t>(kx_begin)) * g.channels,
                        (kx_end - kx_begin) * g.channels * sizeof(float));
            if (kx_end < g.kernel)
                std::memset(dst + kx_end * g.channels, 0, (g.kernel - kx_end) * g.channels * sizeof(float));
        }
    }
}

/// Writes the column matrix of `images` consecutive images starting at `in`.
inline void im2col(const window_geometry& g, const float* in, std::size_t images, float* columns) noexcept {
    im2col_rows(g, in, 0, images * g.rows_per_image(), columns);
}

/// The adjoint of `im2col`: sums every column entry back into the image it was read from.
/// Overwrites `images` images starting at `out`.
inline void col2im(const window_geometry& g, const float* columns, std::size_t images, float* out) noexcept {
    const std::size_t row_width = g.column_width();
    std::memset(out, 0, images * g.image_size() * sizeof(float));
    for (std::size_t n = 0; n < images; ++n) {
        float* image = out + n * g.image_size();
        for (std::size_t oy = 0; oy < g.out_height; ++oy)
            for (std::size_t ox = 0; ox < g.out_width; ++ox) {
                const float* row = columns + ((n * g.out_height + oy) * g.out_width + ox) * row_width;
                for (std::size_t ky = 0; ky < g.kernel; ++ky) {
                    const auto iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad_top);
                    if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.height)) continue;
                    for (std::size_t kx = 0; kx < g.kernel; ++kx) {
                        const auto ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx) - static_cast<std::ptrdiff_t>(g.pad_left);
                        if (ix < 0 || ix >= static_cast<std::ptrdiff_t>(g.width)) continue;
                        const float* src = row + (ky * g.kernel + kx) * g.channels;
                        float* dst = image + (static_cast<std::size_t>(iy) * g.width + static_cast<std::size_t>(ix)) * g.channels;
                        for (std::size_t c = 0; c < g.channels; ++c) dst[c] += src[c];
                    }
                }
            }
    }
}

/// `im2col` of one group of channels, [channel, channel + count), with windows of `dilation`
/// (a kernel tap every `dilation` pixels): rows of K * K * count values, ordered (ky, kx, c).
/// The grouped and dilated convolutions' path; `im2col` above keeps the contiguous copies of
/// the common case.
inline void im2col_group(const window_geometry& g, std::size_t dilation, std::size_t channel, std::size_t count,
                         const float* in, std::size_t images, float* columns) noexcept {
    const std::size_t row_width = g.kernel * g.kernel * count;
    for (std::size_t n = 0; n < images; ++n) {
        const float* image = in + n * g.image_size() + channel;
        for (std::size_t oy = 0; oy < g.out_height; ++oy)
            for (std::size_t ox = 0; ox < g.out_width; ++ox) {
                float* dst = columns + ((n * g.out_height + oy) * g.out_width + ox) * row_width;
                for (std::size_t ky = 0; ky < g.kernel; ++ky) {
                    const auto iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky * dilation) -
                                    static_cast<std::ptrdiff_t>(g.pad_top);
                    const bool row_inside = iy >= 0 && iy < static_cast<std::ptrdiff_t>(g.height);
                    for (std::size_t kx = 0; kx < g.kernel; ++kx, dst += count) {
                        const auto ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx * dilation) -
                                        static_cast<std::ptrdiff_t>(g.pad_left);
                        if (!row_inside || ix < 0 || ix >= static_cast<std::ptrdiff_t>(g.width)) {
                            std::memset(dst, 0, count * sizeof(float));
                            continue;
                        }
                        std::memcpy(dst,
                                    image + (static_cast<std::size_t>(iy) * g.width + static_cast<std::size_t>(ix)) * g.channels,
                                    count * sizeof(float));
                    }
                }
            }
    }
}

/// The adjoint of `im2col_group`: adds every column entry into the channel group of the
/// image it was read from (the other channels are left as they are).
inline void col2im_group_add(const window_geometry& g, std::size_t dilation, std::size_t channel, std::size_t count,
                             const float* columns, std::size_t images, float* out) noexcept {
    const std::size_t row_width = g.kernel * g.kernel * count;
    for (std::size_t n = 0; n < images; ++n) {
        float* image = out + n * g.image_size() + channel;
        for (std::size_t oy = 0; oy < g.out_height; ++oy)
            for (std::size_t ox = 0; ox < g.out_width; ++ox) {
                const float* src = columns + ((n * g.out_height + oy) * g.out_width + ox) * row_width;
                for (std::size_t ky = 0; ky < g.kernel; ++ky) {
                    const auto iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky * dilation) -
                                    static_cast<std::ptrdiff_t>(g.pad_top);
                    const bool row_inside = iy >= 0 && iy < static_cast<std::ptrdiff_t>(g.height);
                    for (std::size_t kx = 0; kx < g.kernel; ++kx, src += count) {
                        const auto ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx * dilation) -
                                        static_cast<std::ptrdiff_t>(g.pad_left);
                        if (!row_inside || ix < 0 || ix >= static_cast<std::ptrdiff_t>(g.width)) continue;
                        float* dst = image + (static_cast<std::size_t>(iy) * g.width + static_cast<std::size_t>(ix)) * g.channels;
                        for (std::size_t c = 0; c < count; ++c) dst[c] += src[c];
                    }
                }
            }
    }
}

}  // namespace staticnet::kernels
