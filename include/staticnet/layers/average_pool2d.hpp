#pragma once
/// @file
/// `average_pool2d<Pool, Stride = Pool>`: the mean over Pool x Pool windows of each channel
/// (valid padding, like Keras's `AveragePooling2D` default). Backward spreads each output
/// gradient evenly over its window; it needs nothing from forward but the shapes.
///
/// Channels are innermost (NHWC), so a window is Pool * Pool contiguous channel vectors and
/// every step is a SIMD loop over the channels. Threads split the batch; each value is
/// summed in the same order whatever the split, so results do not depend on the thread count.

#include <cstddef>
#include <cstring>
#include <string_view>

#include "../kernels/elementwise.hpp"
#include "layer.hpp"

namespace staticnet {

namespace detail {
template <std::size_t Pool, std::size_t Stride, shape In, std::size_t Position>
class average_pool2d_layer;

template <std::size_t layer_position, std::size_t input_rank, std::size_t input_height, std::size_t input_width,
          std::size_t pool_size, std::size_t stride>
constexpr bool check_average_pool2d_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 3, "average_pool2d needs an image input (height, width, channels); the layer "
                                            "before it gives a vector");
    STATICNET_WIRING_CHECK(pool_size >= 1 && stride >= 1, "average_pool2d needs pool_size >= 1 and stride >= 1");
    STATICNET_WIRING_CHECK(pool_size <= input_height && pool_size <= input_width,
                           "average_pool2d window does not fit its input image (pool_size > input height or width)");
    return true;
}
}  // namespace detail

/// Average pooling over `Pool` x `Pool` windows moved by `Stride`.
template <std::size_t Pool, std::size_t Stride = Pool>
struct average_pool2d {
    template <shape In, std::size_t Position>
    using bind = detail::average_pool2d_layer<Pool, Stride, In, Position>;
};

namespace detail {

template <std::size_t Pool, std::size_t Stride, shape In, std::size_t Position>
class average_pool2d_layer : public layer_defaults {
    static_assert(check_average_pool2d_wiring<Position, In.rank, In.height(), In.width(), Pool, Stride>());
    static constexpr std::size_t H = In.height(), W = In.width(), C = In.channels();
    static constexpr std::size_t OH = H >= Pool ? (H - Pool) / Stride + 1 : 0;
    static constexpr std::size_t OW = W >= Pool ? (W - Pool) / Stride + 1 : 0;
    static constexpr float scale = 1.0f / static_cast<float>(Pool * Pool);

public:
    static constexpr std::string_view name = "average_pool2d";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{OH, OW, C};
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
                std::memcpy(o, image + (oy * Stride * W + ox * Stride) * C, C * sizeof(float));
                for (std::size_t ky = 0; ky < Pool; ++ky)
                    for (std::size_t kx = (ky == 0 ? 1 : 0); kx < Pool; ++kx) {
                        const float* v = image + ((oy * Stride + ky) * W + ox * Stride + kx) * C;
                        kernels::map(C, [](auto a, auto x) { return a + x; }, o, o, v);
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
                for (std::size_t ky = 0; ky < Pool; ++ky)
                    for (std::size_t kx = 0; kx < Pool; ++kx) {
                        float* v = image + ((oy * Stride + ky) * W + ox * Stride + kx) * C;
                        kernels::map(C, [&](auto a, auto x) { return a + x * s; }, v, v, go);
                    }
            }
    }
};

}  // namespace detail
}  // namespace staticnet
