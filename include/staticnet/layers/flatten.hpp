#pragma once
/// @file
/// `flatten`: an image (H, W, C) becomes a vector of H*W*C features in the same (NHWC)
/// order, as Keras's Flatten does for channels-last data.

#include <cstddef>
#include <cstring>
#include <string_view>

#include "layer.hpp"

namespace staticnet {

namespace detail {
template <shape In, std::size_t Position>
class flatten_layer : public layer_defaults {
public:
    static constexpr std::string_view name = "flatten";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{In.size()};
    static constexpr std::size_t flops_per_sample = 0;

    void forward(const layer_context& ctx, const forward_buffers& b) const noexcept {
        std::memcpy(b.output, b.input, ctx.batch * In.size() * sizeof(float));
    }
    void backward(const layer_context& ctx, const backward_buffers& b) const noexcept {
        if (b.input_gradient) std::memcpy(b.input_gradient, b.output_gradient, ctx.batch * In.size() * sizeof(float));
    }
};
}  // namespace detail

/// Reshapes each sample to a vector; no parameters.
struct flatten {
    template <shape In, std::size_t Position>
    using bind = detail::flatten_layer<In, Position>;
};

}  // namespace staticnet
