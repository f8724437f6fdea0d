#pragma once
/// @file
/// `average_pool2d<Pool, Stride = Pool, Padding = padding::valid>`: the mean over Pool x Pool
/// windows of each channel. Backward spreads each output gradient evenly over its window; it
/// needs nothing from forward but the shapes.
///
/// Padding counts as zeros in the mean: every window divides by Pool * Pool, the padded
/// pixels included (PyTorch's `count_include_pad=True`, its default, and ONNX's
/// `count_include_pad=1`). `padding::same` is refused, since TensorFlow's same-padded
/// average leaves the padding out of the count: a network ported from Keras would differ.
///
/// Channels are innermost (NHWC), so a window is Pool * Pool contiguous channel vectors and
/// every step is a SIMD loop over the channels. Threads split the batch; each value is
/// summed in the same order whatever the split, so results do not depend on the thread count.

#include <cstddef>
#include <cstring>
#include <string_view>

#include "../kernels/elementwise.hpp"
#include "layer.hpp"
#include "padding.hpp"
#include "pool_window.hpp"

namespace staticnet {

namespace detail {
template <std::size_t Pool, std::size_t Stride, padding_rule Padding, shape In, std::size_t Position>
class average_pool2d_layer;

template <std::size_t layer_position, std::size_t input_rank, std::size_t pool_size, std::size_t stride,
          bool window_fits, bool padding_fits, bool same_padding>
constexpr bool check_average_pool2d_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 3, "average_pool2d needs an image input (height, width, channels); the layer "
                                            "before it gives a vector");
    STATICNET_WIRING_CHECK(pool_size >= 1 && stride >= 1, "average_pool2d needs pool_size >= 1 and stride >= 1");
    STATICNET_WIRING_CHECK(window_fits,
                           "average_pool2d window does not fit its input image (pool_size > input height or width)");
    STATICNET_WIRING_CHECK(!same_padding, "average_pool2d takes padding::valid, padding::symmetric<P> or "
                                          "padding::explicit_<T, B, L, R> (zeros counted in the mean, as PyTorch), "
                                          "not padding::same");
    STATICNET_WIRING_CHECK(padding_fits, "average_pool2d padding is wider than half its window (PyTorch's limit)");
    return true;
}
}  // namespace detail

/// Average pooling over `Pool` x `Pool` windows moved by `Stride`, the image padded with
/// zeros by `Padding` (`padding::valid`, `padding::symmetric<P>`, `padding::explicit_<T, B, L, R>`).
template <std::size_t Pool, std::size_t Stride = Pool, padding_rule Padding = padding::valid>
struct average_pool2d {
    template <shape In, std::size_t Position>
    using bind = detail::average_pool2d_layer<Pool, Stride, Padding, In, Position>;
};

namespace detail {

template <std::size_t Pool, std::size_t Stride, padding_rule Padding, shape In, std::size_t Position>
class average_pool2d_layer : public layer_defaults {
    using windows = pool_windows<In, Pool, Stride, Padding>;
    static_assert(check_average_pool2d_wiring<Position, In.rank, Pool, Stride,
                                              In.rank != 3 || windows::out_height * windows::out_width != 0,
                                              In.rank != 3 || windows::padding_fits, Padding.same>());
    static constexpr std::size_t H = In.height(), W = In.width(), C = In.channels();
    static constexpr std::size_t OH = windows::out_height, OW = windows::out_width;
    static constexpr float scale = 1.0f / static_cast<float>(Pool * Pool);

public:
    static constexpr std::string_view name = "average_pool2d";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{OH, OW, C};
    static constexpr std::size_t pool_size = Pool, stride = Stride;
    /// The pixels added on each side (ONNX's `pads`).
    static constexpr padding_pixels pads = windows::pads;
    static constexpr std::size_t flops_per_sample = OH * OW * C * Pool * Pool;

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* in = b.input;
        float* out = b.output;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            for (std::size_t n = begin; n < end; ++n) pool_image(in + n * In.size(), out + n * output_shape.size());
        });
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        if (!b.input_gradient) return;
        float* din = b.input_gradient;
        const float* dout = b.output_gradient;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            for (std::size_t n = begin; n < end; ++n) spread_image(dout + n * output_shape.size(), din + n * In.size());
        });
    }

private:
    static void pool_image(const float* image, float* out) noexcept {
        const simd::float_batch s(scale);
        for (std::size_t oy = 0; oy < OH; ++oy)
            for (std::size_t ox = 0; ox < OW; ++ox) {
                float* o = out + (oy * OW + ox) * C;
                const auto win = windows::at(oy, ox);
                std::memcpy(o, image + win.first_pixel() * C, C * sizeof(float));
                for (std::size_t y = win.y0; y < win.y1; ++y)
                    for (std::size_t x = (y == win.y0 ? win.x0 + 1 : win.x0); x < win.x1; ++x) {
                        const float* v = image + (y * W + x) * C;
                        kernels::map(C, [](auto sum, auto value) { return sum + value; }, o, o, v);
                    }
                kernels::map(C, [&](auto a) { return a * s; }, o, o);
            }
    }

    // Overlapping windows (Stride < Pool) add into the same input pixels, so the image is
    // zeroed first and every window adds its share.
    static void spread_image(const float* g, float* image) noexcept {
        const simd::float_batch s(scale);
        std::memset(image, 0, In.size() * sizeof(float));
        for (std::size_t oy = 0; oy < OH; ++oy)
            for (std::size_t ox = 0; ox < OW; ++ox) {
                const float* go = g + (oy * OW + ox) * C;
                const auto win = windows::at(oy, ox);
                for (std::size_t y = win.y0; y < win.y1; ++y)
                    for (std::size_t x = win.x0; x < win.x1; ++x) {
                        float* v = image + (y * W + x) * C;
                        kernels::map(C, [&](auto sum, auto gradient) { return sum + gradient * s; }, v, v, go);
                    }
            }
    }
};

}  // namespace detail
}  // namespace staticnet
