#pragma once
/// @file
/// `max_pool2d<Pool, Stride = Pool, Padding = padding::valid>`: maximum over Pool x Pool
/// windows of each channel. Forward remembers where each maximum came from, so backward
/// routes each gradient to that one input (ties go to the first position in the window,
/// row by row). Padding stands for -infinity, as PyTorch's: a padded pixel is never the
/// maximum (each window keeps at least one pixel of the image, `pool_windows::padding_fits`).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "../core/compat.hpp"
#include "layer.hpp"
#include "padding.hpp"
#include "pool_window.hpp"

namespace staticnet {

namespace detail {
template <std::size_t Pool, std::size_t Stride, padding_rule Padding, shape In, std::size_t Position>
class max_pool2d_layer;

template <std::size_t layer_position, std::size_t input_rank, std::size_t pool_size, std::size_t stride,
          bool window_fits, bool padding_fits>
constexpr bool check_max_pool2d_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 3,
                           "max_pool2d needs an image input (height, width, channels); the layer before it gives a vector");
    STATICNET_WIRING_CHECK(pool_size >= 1 && stride >= 1, "max_pool2d needs pool_size >= 1 and stride >= 1");
    STATICNET_WIRING_CHECK(window_fits,
                           "max_pool2d window does not fit its input image (pool_size > input height or width)");
    STATICNET_WIRING_CHECK(padding_fits, "max_pool2d padding is wider than half its window (PyTorch's limit)");
    return true;
}
}  // namespace detail

/// Max pooling over `Pool` x `Pool` windows moved by `Stride`, the image padded by `Padding`
/// (`padding::valid`, `padding::same`, `padding::symmetric<P>`, `padding::explicit_<T, B, L, R>`).
template <std::size_t Pool, std::size_t Stride = Pool, padding_rule Padding = padding::valid>
struct max_pool2d {
    template <shape In, std::size_t Position>
    using bind = detail::max_pool2d_layer<Pool, Stride, Padding, In, Position>;
};

namespace detail {

template <std::size_t Pool, std::size_t Stride, padding_rule Padding, shape In, std::size_t Position>
class max_pool2d_layer : public layer_defaults {
    using windows = pool_windows<In, Pool, Stride, Padding>;
    static_assert(check_max_pool2d_wiring<Position, In.rank, Pool, Stride, In.rank != 3 || windows::out_height * windows::out_width != 0,
                                          In.rank != 3 || windows::padding_fits>());
    static constexpr std::size_t H = In.height(), W = In.width(), C = In.channels();
    static constexpr std::size_t OH = windows::out_height, OW = windows::out_width;

public:
    static constexpr std::string_view name = "max_pool2d";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{OH, OW, C};
    static constexpr std::size_t pool_size = Pool, stride = Stride;
    /// The pixels added on each side (ONNX's `pads`).
    static constexpr padding_pixels pads = windows::pads;
    static constexpr std::size_t flops_per_sample = OH * OW * C * Pool * Pool;
    /// Windows that do not reach the end of the input leave its last rows and columns unread; a
    /// monotone activation before the pooling has its derivative applied here, on the pooled values.
    static constexpr layer_traits traits{.applies_input_activation_derivative = true,
                                         .input_rows_read = windows::rows_read,
                                         .input_columns_read = windows::columns_read};
    /// The position of each maximum inside its image.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept { return batch * output_shape.size(); }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* in = b.input;
        float* out = b.output;
        float* where = b.cache;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            for (std::size_t n = begin; n < end; ++n)
                pool_image(in + n * In.size(), out + n * output_shape.size(), where + n * output_shape.size());
        });
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        if (!b.input_gradient) return;
        float* din = b.input_gradient;
        float* dout = b.output_gradient;
        const float* where = b.cache;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            if (ctx.input_activation_backward != nullptr)
                ctx.input_activation_backward(b.output + begin * output_shape.size(), dout + begin * output_shape.size(),
                                              (end - begin) * OH * OW, C);
            for (std::size_t n = begin; n < end; ++n) {
                float* image = din + n * In.size();
                const float* g = dout + n * output_shape.size();
                const float* w = where + n * output_shape.size();
                if constexpr (windows::tiles) {
                    unpool_image(g, w, image);
                } else {
                    std::memset(image, 0, In.size() * sizeof(float));
                    for (std::size_t i = 0; i < output_shape.size(); ++i) image[static_cast<std::size_t>(w[i])] += g[i];
                }
            }
        });
    }

private:
    // The position of a maximum inside its image is kept as a float, exact up to 2^24: the
    // comparison that picks the maximum then picks its position with the same SIMD mask.
    static_assert(In.size() <= (std::size_t{1} << 24),
                  "max_pool2d: images of more than 2^24 values are not supported");
    using batch = simd::float_batch;
    static constexpr std::size_t lanes = simd::float_lanes;

    static void pool_image(const float* image, float* out, float* where) noexcept {
        for (std::size_t oy = 0; oy < OH; ++oy)
            for (std::size_t ox = 0; ox < OW; ++ox) {
                float* best = out + (oy * OW + ox) * C;
                float* best_at = where + (oy * OW + ox) * C;
                const auto win = windows::at(oy, ox);
                const std::size_t first = win.first_pixel() * C;
                std::size_t c = 0;
                // A register of channels at a time; strict '>' keeps the first of equal values.
                for (; c + lanes <= C; c += lanes) {
                    batch value = batch::load_unaligned(image + first + c);
                    batch at = channel_offsets() + batch(static_cast<float>(first + c));
                    for (std::size_t y = win.y0; y < win.y1; ++y)
                        for (std::size_t x = (y == win.y0 ? win.x0 + 1 : win.x0); x < win.x1; ++x) {
                            const std::size_t here = (y * W + x) * C + c;
                            const batch v = batch::load_unaligned(image + here);
                            const auto larger = v > value;
                            value = xsimd::select(larger, v, value);
                            at = xsimd::select(larger, channel_offsets() + batch(static_cast<float>(here)), at);
                        }
                    value.store_unaligned(best + c);
                    at.store_unaligned(best_at + c);
                }
                for (; c < C; ++c) {
                    best[c] = image[first + c];
                    best_at[c] = static_cast<float>(first + c);
                    for (std::size_t y = win.y0; y < win.y1; ++y)
                        for (std::size_t x = (y == win.y0 ? win.x0 + 1 : win.x0); x < win.x1; ++x) {
                            const std::size_t at = (y * W + x) * C + c;
                            if (image[at] > best[c]) {
                                best[c] = image[at];
                                best_at[c] = static_cast<float>(at);
                            }
                        }
                }
            }
    }

    /// Backward of one image when the windows tile it (Stride == Pool, no padding): every input pixel lies
    /// in at most one window, so one pass writes each window's gradient at its maximum and
    /// zeros beside it, instead of zeroing the image and scattering into it. (0 + g, as the
    /// scatter added, so that -0 gradients become +0 there too.)
    static void unpool_image(const float* g, const float* where, float* image) noexcept {
        const batch zero(0.0f);
        for (std::size_t oy = 0; oy < OH; ++oy)
            for (std::size_t ox = 0; ox < OW; ++ox) {
                const float* window_gradient = g + (oy * OW + ox) * C;
                const float* window_best = where + (oy * OW + ox) * C;
                std::size_t c = 0;
                for (; c + lanes <= C; c += lanes) {
                    const batch gradient = batch::load_unaligned(window_gradient + c) + zero;
                    const batch best = batch::load_unaligned(window_best + c);
                    for (std::size_t ky = 0; ky < Pool; ++ky)
                        for (std::size_t kx = 0; kx < Pool; ++kx) {
                            const std::size_t here = ((oy * Stride + ky) * W + ox * Stride + kx) * C + c;
                            const batch at = channel_offsets() + batch(static_cast<float>(here));
                            xsimd::select(best == at, gradient, zero).store_unaligned(image + here);
                        }
                }
                for (; c < C; ++c)
                    for (std::size_t ky = 0; ky < Pool; ++ky)
                        for (std::size_t kx = 0; kx < Pool; ++kx) {
                            const std::size_t here = ((oy * Stride + ky) * W + ox * Stride + kx) * C + c;
                            image[here] = static_cast<std::size_t>(window_best[c]) == here ? 0.0f + window_gradient[c] : 0.0f;
                        }
            }
        // Rows and columns no window covers (2x2 windows on an odd size) get no gradient.
        for (std::size_t y = 0; y < H; ++y) {
            const std::size_t first_x = y < OH * Pool ? OW * Pool : 0;
            std::fill(image + (y * W + first_x) * C, image + (y + 1) * W * C, 0.0f);
        }
    }

    /// {0, 1, ..., lanes - 1}.
    static batch channel_offsets() noexcept {
        alignas(64) float lane[lanes];
        for (std::size_t l = 0; l < lanes; ++l) lane[l] = static_cast<float>(l);
        return batch::load_aligned(lane);
    }
};

}  // namespace detail
}  // namespace staticnet
