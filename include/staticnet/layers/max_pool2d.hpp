#pragma once
/// @file
/// `max_pool2d<Pool, Stride = Pool>`: maximum over Pool x Pool windows of each channel
/// (valid padding, like Keras's default). Forward remembers where each maximum came from, so
/// backward routes each gradient to that one input (ties go to the first position).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "layer.hpp"

namespace staticnet {

namespace detail {
template <std::size_t Pool, std::size_t Stride, shape In, std::size_t Position>
class max_pool2d_layer;

template <std::size_t layer_position, std::size_t input_rank, std::size_t input_height, std::size_t input_width,
          std::size_t pool_size, std::size_t stride>
constexpr bool check_max_pool2d_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 3,
                           "max_pool2d needs an image input (height, width, channels); the layer before it gives a vector");
    STATICNET_WIRING_CHECK(pool_size >= 1 && stride >= 1, "max_pool2d needs pool_size >= 1 and stride >= 1");
    STATICNET_WIRING_CHECK(pool_size <= input_height && pool_size <= input_width,
                           "max_pool2d window does not fit its input image (pool_size > input height or width)");
    return true;
}
}  // namespace detail

/// Max pooling over `Pool` x `Pool` windows moved by `Stride`.
template <std::size_t Pool, std::size_t Stride = Pool>
struct max_pool2d {
    template <shape In, std::size_t Position>
    using bind = detail::max_pool2d_layer<Pool, Stride, In, Position>;
};

namespace detail {

template <std::size_t Pool, std::size_t Stride, shape In, std::size_t Position>
class max_pool2d_layer : public layer_defaults {
    static_assert(check_max_pool2d_wiring<Position, In.rank, In.height(), In.width(), Pool, Stride>());
    static constexpr std::size_t H = In.height(), W = In.width(), C = In.channels();
    static constexpr std::size_t OH = H >= Pool ? (H - Pool) / Stride + 1 : 0;
    static constexpr std::size_t OW = W >= Pool ? (W - Pool) / Stride + 1 : 0;

public:
    static constexpr std::string_view name = "max_pool2d";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{OH, OW, C};
    static constexpr std::size_t flops_per_sample = OH * OW * C * Pool * Pool;
    /// The position of each maximum inside its image.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept { return batch * output_shape.size(); }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* in = b.input;
        float* out = b.output;
        auto* where = reinterpret_cast<std::uint32_t*>(b.cache.data());
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            for (std::size_t n = begin; n < end; ++n)
                pool_image(in + n * In.size(), out + n * output_shape.size(), where + n * output_shape.size());
        });
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        if (!b.input_gradient) return;
        float* din = b.input_gradient;
        const float* dout = b.output_gradient;
        const auto* where = reinterpret_cast<const std::uint32_t*>(b.cache.data());
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            std::memset(din + begin * In.size(), 0, (end - begin) * In.size() * sizeof(float));
            for (std::size_t n = begin; n < end; ++n) {
                float* image = din + n * In.size();
                const float* g = dout + n * output_shape.size();
                const std::uint32_t* w = where + n * output_shape.size();
                for (std::size_t i = 0; i < output_shape.size(); ++i) image[w[i]] += g[i];
            }
        });
    }

private:
    static_assert(In.size() <= UINT32_MAX, "max_pool2d: images of more than 2^32 values are not supported");

    static void pool_image(const float* image, float* out, std::uint32_t* where) noexcept {
        for (std::size_t oy = 0; oy < OH; ++oy)
            for (std::size_t ox = 0; ox < OW; ++ox) {
                float* best = out + (oy * OW + ox) * C;
                std::uint32_t* best_at = where + (oy * OW + ox) * C;
                const std::size_t first = (oy * Stride * W + ox * Stride) * C;
                for (std::size_t c = 0; c < C; ++c) {
                    best[c] = image[first + c];
                    best_at[c] = static_cast<std::uint32_t>(first + c);
                }
                for (std::size_t ky = 0; ky < Pool; ++ky)
                    for (std::size_t kx = (ky == 0 ? 1 : 0); kx < Pool; ++kx) {
                        const std::size_t at = ((oy * Stride + ky) * W + ox * Stride + kx) * C;
                        for (std::size_t c = 0; c < C; ++c) {
                            const float v = image[at + c];
                            const bool larger = v > best[c];
                            best[c] = larger ? v : best[c];
                            best_at[c] = larger ? static_cast<std::uint32_t>(at + c) : best_at[c];
                        }
                    }
            }
    }
};

}  // namespace detail
}  // namespace staticnet
