#pragma once
/// @file
/// `dense<Units, Activation>`: fully connected layer, y = activation(x W + b).
///
/// Parameters as Keras stores them: the kernel [inputs, Units] then the bias [Units]. The
/// input must be a vector: an image must pass through `flatten` first (Keras would flatten
/// silently only the last axis; we refuse rather than guess).

#include <algorithm>
#include <cstddef>
#include <span>
#include <string_view>

#include "../kernels/elementwise.hpp"
#include "../kernels/gemm.hpp"
#include "activations.hpp"
#include "initializers.hpp"
#include "layer.hpp"

namespace staticnet {

namespace detail {
template <std::size_t Units, typename Activation, shape In, std::size_t Position>
class dense_layer;

template <std::size_t layer_position, std::size_t input_rank, std::size_t input_height, std::size_t input_width,
          std::size_t input_channels, std::size_t units>
constexpr bool check_dense_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 1,
                           "dense needs a vector input but the layer before it gives an image: add flatten before dense");
    STATICNET_WIRING_CHECK(units >= 1, "dense needs at least one unit");
    return true;
}
}  // namespace detail

/// A fully connected layer with `Units` outputs.
template <std::size_t Units, typename Activation = identity>
struct dense {
    static_assert(activation<Activation> || input_derivative_activation<Activation>,
                  "dense: the second argument must be an activation (relu, softmax, gelu<>, ...)");
    template <shape In, std::size_t Position>
    using bind = detail::dense_layer<Units, Activation, In, Position>;
};

namespace detail {

template <std::size_t Units, typename Activation, shape In, std::size_t Position>
class dense_layer : public layer_defaults {
    static_assert(check_dense_wiring<Position, In.rank, In.height(), In.width(), In.channels(), Units>());
    static constexpr std::size_t inputs = In.size();

public:
    using activation_type = Activation;
    static constexpr std::string_view name = "dense";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{Units};
    static constexpr std::size_t kernel_count = inputs * Units;
    static constexpr std::size_t parameter_count = kernel_count + Units;
    static constexpr layer_traits traits{.weight_count = kernel_count, .activation = activation_info_of<Activation>};
    static constexpr std::size_t flops_per_sample = 2 * inputs * Units;
    /// With silu, gelu or hard_swish: the pre-activation output, which their derivative needs.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept {
        return batch * Units * folded_activation<Activation>::kept_floats;
    }

    void initialize(std::span<float> params, std::span<float>, rng& g) const noexcept {
        glorot_uniform(params.first(kernel_count), inputs, Units, g);
        std::fill(params.begin() + kernel_count, params.end(), 0.0f);
    }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* kernel = b.parameters;
        kernels::gemm(ctx.batch, Units, inputs, b.input, inputs, kernels::op::none, kernel, Units, kernels::op::none,
                      b.output, Units, false, ctx.pool);
        kernels::add_bias(b.output, kernel + kernel_count, ctx.batch, Units);
        folded_activation<Activation>::forward(b.output, b.cache, 0, ctx.batch, Units);
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        float* dout = b.output_gradient;
        if (!ctx.gradient_is_pre_activation)
            folded_activation<Activation>::backward(b.output, b.cache, 0, dout, ctx.batch, Units);
        kernels::gemm(inputs, Units, ctx.batch, b.input, inputs, kernels::op::transpose, dout, Units, kernels::op::none,
                      b.parameter_gradients, Units, true, ctx.pool);
        kernels::accumulate_column_sums(dout, ctx.batch, Units, b.parameter_gradients + kernel_count);
        if (b.input_gradient)
            kernels::gemm(ctx.batch, inputs, Units, dout, Units, kernels::op::none, b.parameters, Units,
                          kernels::op::transpose, b.input_gradient, inputs, false, ctx.pool);
    }
};

}  // namespace detail
}  // namespace staticnet
