#pragma once
/// @file
/// `global_average_pool2d`: the mean of each channel over the whole image, (H, W, C) -> (C),
/// like Keras's `GlobalAveragePooling2D`. It replaces `flatten` before the classifier of
/// modern CNNs: the classifier then has C inputs instead of H * W * C, and the network
/// accepts what the convolutions learned wherever in the image it appears.
///
/// Channels are innermost (NHWC): the mean is a SIMD sum of H * W channel vectors, in pixel
/// order; backward writes each channel's gradient / (H * W) to every pixel. Threads split the
/// batch, so results do not depend on the thread count.

#include <cstddef>
#include <cstring>
#include <string_view>

#include "../kernels/elementwise.hpp"
#include "layer.hpp"

namespace staticnet {

namespace detail {
template <shape In, std::size_t Position>
class global_average_pool2d_layer;

template <std::size_t layer_position, std::size_t input_rank, std::size_t input_height, std::size_t input_width>
constexpr bool check_global_average_pool2d_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 3, "global_average_pool2d needs an image input (height, width, channels); "
                                            "the layer before it gives a vector");
    STATICNET_WIRING_CHECK(input_height >= 1 && input_width >= 1, "global_average_pool2d needs a non-empty image");
    return true;
}
}  // namespace detail

/// The mean of each channel over all pixels: an image becomes a vector of its channels.
struct global_average_pool2d {
    template <shape In, std::size_t Position>
    using bind = detail::global_average_pool2d_layer<In, Position>;
};

namespace detail {

template <shape In, std::size_t Position>
class global_average_pool2d_layer : public layer_defaults {
    static_assert(check_global_average_pool2d_wiring<Position, In.rank, In.height(), In.width()>());
    static constexpr std::size_t pixels = In.height() * In.width(), C = In.channels();
    static constexpr float scale = 1.0f / static_cast<float>(pixels);

public:
    static constexpr std::string_view name = "global_average_pool2d";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{C};
    static constexpr std::size_t flops_per_sample = In.size();

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* in = b.input;
        float* out = b.output;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            const simd::float_batch s(scale);
            for (std::size_t n = begin; n < end; ++n) {
                const float* image = in + n * In.size();
                float* o = out + n * C;
                std::memcpy(o, image, C * sizeof(float));
                for (std::size_t p = 1; p < pixels; ++p)
                    kernels::map(C, [](auto a, auto x) { return a + x; }, o, o, image + p * C);
                kernels::map(C, [&](auto a) { return a * s; }, o, o);
            }
        });
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        if (!b.input_gradient) return;
        float* din = b.input_gradient;
        const float* dout = b.output_gradient;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            const simd::float_batch s(scale);
            for (std::size_t n = begin; n < end; ++n) {
                float* image = din + n * In.size();
                kernels::map(C, [&](auto g) { return g * s; }, image, dout + n * C);
                for (std::size_t p = 1; p < pixels; ++p) std::memcpy(image + p * C, image, C * sizeof(float));
            }
        });
    }
};

}  // namespace detail
}  // namespace staticnet
