#pragma once
/// @file
/// Activations: `relu`, `leaky_relu<Slope>`, `relu6`, `sigmoid`, `tanh`, `softmax`, `identity`.
///
/// Each is a policy used inside `conv2d`/`dense` (`dense<10, softmax>`) and, on its own, a
/// layer spec (`sequential<..., dense<128>, relu, ...>`). The derivative is computed from the
/// activation's *output*, so a layer keeps only its output for backward. `softmax` acts on
/// the innermost dimension (the channels of an image, the features of a vector).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

#include "../core/template_float.hpp"
#include "../kernels/elementwise.hpp"
#include "layer.hpp"

namespace staticnet {

template <typename Activation, shape In, std::size_t Position>
class activation_layer;

/// An activation policy: `forward` in place on [rows x cols], `backward` turns the gradient
/// with respect to the output into the gradient with respect to the input, given the output.
template <typename A>
concept activation = requires(float* p, const float* cp, std::size_t n) {
    { A::name } -> std::convertible_to<std::string_view>;
    A::forward(p, n, n);
    A::backward(cp, p, n, n);
};

/// An activation that can also write its result elsewhere: `forward(x, y, rows, cols)` and
/// `backward(y, dy, dx, rows, cols)`. As a layer of its own it then reads its input once
/// instead of copying it and working in place.
template <typename A>
concept out_of_place_activation = activation<A> && requires(float* p, const float* cp, std::size_t n) {
    A::forward(cp, p, n, n);
    A::backward(cp, cp, p, n, n);
};

/// An activation policy as data (layer.hpp): what a layer that ends in it declares as its
/// `traits.activation`. `monotone` is false unless the policy says otherwise.
template <activation A>
inline constexpr activation_info activation_info_of = [] {
    activation_info info{.name = A::name};
    if constexpr (requires { A::monotone; }) info.monotone = A::monotone;
    info.forward = &A::forward;
    info.backward = &A::backward;
    return info;
}();

/// max(x, 0).
struct relu {
    static constexpr std::string_view name = "relu";
    static constexpr bool monotone = true;  ///< see layer_context::input_activation_backward
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f);
        kernels::map(rows * cols, [&](auto v) { return xsimd::max(v, zero); }, y, x);
    }
    static void backward(const float* y, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f);
        kernels::map(rows * cols, [&](auto g, auto v) { return xsimd::select(v > zero, g, zero); }, dx, dy, y);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    static void backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept {
        backward(y, dy, dy, rows, cols);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<relu, In, Position>;
};

/// x where x > 0, `Slope` * x elsewhere (PyTorch's `LeakyReLU(negative_slope=Slope)`, Keras's
/// `LeakyReLU(alpha=Slope)`): `leaky_relu<0.1f>`. The slope is not negative, so the sign of
/// the output tells the side of the input and backward needs only the output.
template <template_float Slope>
struct leaky_relu {
    static_assert(Slope >= 0.0f && Slope < 1.0f, "leaky_relu: Slope must be in [0, 1)");
    static constexpr std::string_view name = "leaky_relu";
    static constexpr float slope = Slope;
    static constexpr bool monotone = true;
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f), a(slope);
        kernels::map(rows * cols, [&](auto v) { return xsimd::select(v > zero, v, v * a); }, y, x);
    }
    static void backward(const float* y, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f), a(slope);
        kernels::map(rows * cols, [&](auto g, auto v) { return xsimd::select(v > zero, g, g * a); }, dx, dy, y);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    static void backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept {
        backward(y, dy, dy, rows, cols);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<leaky_relu, In, Position>;
};

/// min(max(x, 0), 6) (MobileNet's, PyTorch's `ReLU6`).
struct relu6 {
    static constexpr std::string_view name = "relu6";
    static constexpr bool monotone = true;
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f), six(6.0f);
        kernels::map(rows * cols, [&](auto v) { return xsimd::min(xsimd::max(v, zero), six); }, y, x);
    }
    static void backward(const float* y, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f), six(6.0f);
        kernels::map(rows * cols, [&](auto g, auto v) { return xsimd::select((v > zero) & (v < six), g, zero); }, dx,
                     dy, y);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    static void backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept {
        backward(y, dy, dy, rows, cols);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<relu6, In, Position>;
};

/// 1 / (1 + exp(-x)).
struct sigmoid {
    static constexpr std::string_view name = "sigmoid";
    static constexpr bool monotone = true;
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch one(1.0f);
        kernels::map(rows * cols, [&](auto v) { return one / (one + xsimd::exp(-v)); }, y, x);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    static void backward(const float* y, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch one(1.0f);
        kernels::map(rows * cols, [&](auto g, auto v) { return g * v * (one - v); }, dx, dy, y);
    }
    static void backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept {
        backward(y, dy, dy, rows, cols);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<sigmoid, In, Position>;
};

/// Hyperbolic tangent.
struct tanh {
    static constexpr std::string_view name = "tanh";
    static constexpr bool monotone = true;
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        kernels::map(rows * cols, [](auto v) { return xsimd::tanh(v); }, y, x);
    }
    static void backward(const float* y, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch one(1.0f);
        kernels::map(rows * cols, [&](auto g, auto v) { return g * (one - v * v); }, dx, dy, y);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    static void backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept {
        backward(y, dy, dy, rows, cols);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<tanh, In, Position>;
};

/// Softmax over the innermost dimension.
struct softmax {
    static constexpr std::string_view name = "softmax";
    static constexpr bool monotone = false;  // not elementwise
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { kernels::softmax_rows(x, rows, cols); }
    static void backward(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept {
        kernels::softmax_rows_backward(y, dy, rows, cols);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<softmax, In, Position>;
};

/// f(x) = x (a dense or conv layer without activation).
struct identity {
    static constexpr std::string_view name = "linear";
    static constexpr bool monotone = false;  // nothing to apply
    static void forward(float*, std::size_t, std::size_t) noexcept {}
    static void backward(const float*, float*, std::size_t, std::size_t) noexcept {}
    template <shape In, std::size_t Position>
    using bind = activation_layer<identity, In, Position>;
};
/// Keras's name for `identity`.
using linear = identity;

/// An activation used as a layer of its own; shape-preserving.
template <typename Activation, shape In, std::size_t Position>
class activation_layer : public layer_defaults {
public:
    using activation_type = Activation;
    static constexpr shape input_shape = In;
    static constexpr shape output_shape = In;
    static constexpr std::string_view name = Activation::name;
    static constexpr std::size_t flops_per_sample = In.size();
    static constexpr layer_traits traits{.passes_pre_activation_gradient = true, .activation = activation_info_of<Activation>};

    // Threads split the rows. An activation that cannot write elsewhere gets each chunk
    // copied and works on it in place while it is in cache.
    void forward(const layer_context& ctx, const forward_buffers& b) const {
        for_rows(ctx, [&](std::size_t begin, std::size_t end) {
            const std::size_t at = begin * In.channels();
            if constexpr (out_of_place_activation<Activation>) {
                Activation::forward(b.input + at, b.output + at, end - begin, In.channels());
            } else {
                std::memcpy(b.output + at, b.input + at, (end - begin) * In.channels() * sizeof(float));
                Activation::forward(b.output + at, end - begin, In.channels());
            }
        });
    }
    void backward(const layer_context& ctx, const backward_buffers& b) const {
        if (!b.input_gradient) return;
        for_rows(ctx, [&](std::size_t begin, std::size_t end) {
            const std::size_t at = begin * In.channels();
            if constexpr (out_of_place_activation<Activation>) {
                if (!ctx.gradient_is_pre_activation)
                    return Activation::backward(b.output + at, b.output_gradient + at, b.input_gradient + at,
                                                end - begin, In.channels());
            }
            std::memcpy(b.input_gradient + at, b.output_gradient + at, (end - begin) * In.channels() * sizeof(float));
            if (!ctx.gradient_is_pre_activation)
                Activation::backward(b.output + at, b.input_gradient + at, end - begin, In.channels());
        });
    }

private:
    template <typename F>
    static void for_rows(const layer_context& ctx, F&& f) {
        const std::size_t rows = ctx.batch * (In.size() / In.channels());
        if (ctx.pool == nullptr) return f(std::size_t{0}, rows);
        ctx.pool->parallel_for(rows, f, std::max<std::size_t>(1, 8192 / In.channels()));
    }
};

}  // namespace staticnet
