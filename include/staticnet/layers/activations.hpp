#pragma once
/// @file
/// Activations: `relu`, `leaky_relu<Slope>`, `relu6`, `sigmoid`, `tanh`, `softmax`, `identity`,
/// and `silu`, `gelu<Approximation>`, `hard_swish`.
///
/// Each of the first kind is a policy used inside `conv2d`/`dense` (`dense<10, softmax>`) and,
/// on its own, a layer spec (`sequential<..., dense<128>, relu, ...>`). Its derivative is
/// computed from the activation's *output*, so a layer keeps only its output for backward.
/// `softmax` acts on the innermost dimension (the channels of an image, the features of a
/// vector).
///
/// `silu`, `gelu` and `hard_swish` are not invertible (the same output comes from two
/// inputs), so their derivative needs the *input* (`input_derivative_activation`). They are
/// layers of their own, `sequential<..., conv2d<64, 1>, batch_norm<>, silu, ...>`, which read
/// the output of the layer before them in backward, kept anyway: no memory is added. A layer
/// that folds its activation in (`conv2d<64, 1, silu>`) would have to keep its pre-activation
/// output as well, so that is a compile error that says how to write it.

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

/// An activation whose derivative needs its input: `forward(x, rows, cols)` in place,
/// `forward(x, y, rows, cols)`, and `backward_from_input(x, dy, dx, rows, cols)`, which turns
/// the output gradient into the input gradient given the input (dx may be dy).
template <typename A>
concept input_derivative_activation = requires(float* p, const float* cp, std::size_t n) {
    { A::name } -> std::convertible_to<std::string_view>;
    A::forward(p, n, n);
    A::forward(cp, p, n, n);
    A::backward_from_input(cp, cp, p, n, n);
};

/// An activation policy as data (layer.hpp): what a layer that ends in it declares as its
/// `traits.activation`. `monotone` is false unless the policy says otherwise.
template <typename A>
    requires activation<A> || input_derivative_activation<A>
inline constexpr activation_info activation_info_of = [] {
    activation_info info{.name = A::name};
    if constexpr (requires { A::monotone; }) info.monotone = A::monotone;
    info.forward = &A::forward;
    if constexpr (activation<A>) info.backward = &A::backward;
    else {  // no backward from the output: folded only where the input can be recomputed
        info.derivative_from_input = true;
        info.backward_from_input = &A::backward_from_input;
    }
    return info;
}();


namespace detail {

/// A layer's own activation, folded into it (`conv2d<64, 3, relu>`, `dense<128, gelu<>>`).
/// One whose derivative needs its input (silu, gelu, hard_swish) has the layer keep that
/// input, its pre-activation output, in the layer's cache: `kept_floats` per output value.
template <typename A>
struct folded_activation {
    static constexpr bool keeps_input = input_derivative_activation<A>;
    static constexpr std::size_t kept_floats = keeps_input ? 1 : 0;
    /// In place on the [rows x cols] values at `output + at`; the same place in `cache` gets
    /// their input (the cache is touched only when kept: without it, it has no memory).
    static void forward(float* output, float* cache, std::size_t at, std::size_t rows, std::size_t cols) noexcept {
        if constexpr (keeps_input) std::memcpy(cache + at, output + at, rows * cols * sizeof(float));
        A::forward(output + at, rows, cols);
    }
    /// The output gradient `dy` (of the values at `at`) becomes the pre-activation gradient, in place.
    static void backward(const float* output, const float* cache, std::size_t at, float* dy, std::size_t rows,
                         std::size_t cols) noexcept {
        if constexpr (keeps_input) A::backward_from_input(cache + at, dy, dy, rows, cols);
        else A::backward(output + at, dy, rows, cols);
    }
};

}  // namespace detail

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

/// x * sigmoid(x) (SiLU, swish; PyTorch's `SiLU`, MobileNetV3's and EfficientNet's).
struct silu {
    static constexpr std::string_view name = "silu";
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch one(1.0f);
        kernels::map(rows * cols, [&](auto v) { return v / (one + xsimd::exp(-v)); }, y, x);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    /// d/dx = s (1 + x (1 - s)), s = sigmoid(x).
    static void backward_from_input(const float* x, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch one(1.0f);
        kernels::map(rows * cols, [&](auto g, auto v) {
            const auto s = one / (one + xsimd::exp(-v));
            return g * s * xsimd::fma(v, one - s, one);
        }, dx, dy, x);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<silu, In, Position>;
};

/// x * relu6(x + 3) / 6 (MobileNetV3's hard swish; PyTorch's `Hardswish`).
struct hard_swish {
    static constexpr std::string_view name = "hard_swish";
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f), three(3.0f), six(6.0f), sixth(1.0f / 6.0f);
        kernels::map(rows * cols, [&](auto v) { return v * xsimd::min(xsimd::max(v + three, zero), six) * sixth; }, y, x);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    /// d/dx = 0 below -3, 1 above 3, (2x + 3) / 6 between (PyTorch's choice at the two kinks:
    /// the inner formula at -3, 1 at 3).
    static void backward_from_input(const float* x, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        const simd::float_batch zero(0.0f), one(1.0f), two(2.0f), three(3.0f), sixth(1.0f / 6.0f);
        kernels::map(rows * cols, [&](auto g, auto v) {
            const auto inner = xsimd::fma(two, v, three) * sixth;
            return g * xsimd::select(v < -three, zero, xsimd::select(v >= three, one, inner));
        }, dx, dy, x);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<hard_swish, In, Position>;
};

/// How `gelu` computes the Gaussian's distribution function (PyTorch's `approximate`).
enum class gelu_approximation {
    none,  ///< x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, exact
    tanh,  ///< x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2 (BERT's, GPT-2's)
};

/// x Phi(x), Phi the standard normal distribution function (PyTorch's `GELU(approximate=...)`).
template <gelu_approximation Approximation = gelu_approximation::none>
struct gelu {
    static constexpr std::string_view name = Approximation == gelu_approximation::none ? "gelu" : "gelu_tanh";
    static constexpr gelu_approximation approximation = Approximation;
    static void forward(const float* x, float* y, std::size_t rows, std::size_t cols) noexcept {
        kernels::map(rows * cols, [&](auto v) { return v * phi(v); }, y, x);
    }
    static void forward(float* x, std::size_t rows, std::size_t cols) noexcept { forward(x, x, rows, cols); }
    /// d/dx = Phi(x) + x Phi'(x).
    static void backward_from_input(const float* x, const float* dy, float* dx, std::size_t rows, std::size_t cols) noexcept {
        kernels::map(rows * cols, [&](auto g, auto v) { return g * xsimd::fma(v, phi_derivative(v), phi(v)); }, dx, dy, x);
    }
    template <shape In, std::size_t Position>
    using bind = activation_layer<gelu, In, Position>;

private:
    using batch = simd::float_batch;
    static constexpr float root_half = 0.70710678118654752f;        // 1 / sqrt(2)
    static constexpr float density_scale = 0.39894228040143268f;    // 1 / sqrt(2 pi)
    static constexpr float tanh_scale = 0.79788456080286536f;       // sqrt(2 / pi)
    static constexpr float cubic = 0.044715f;
    static batch phi(batch v) noexcept {
        const batch half(0.5f), one(1.0f);
        if constexpr (Approximation == gelu_approximation::none) return half * (one + xsimd::erf(v * batch(root_half)));
        else return half * (one + xsimd::tanh(batch(tanh_scale) * xsimd::fma(batch(cubic) * v, v * v, v)));
    }
    static batch phi_derivative(batch v) noexcept {
        const batch half(0.5f), one(1.0f);
        if constexpr (Approximation == gelu_approximation::none) {
            return batch(density_scale) * xsimd::exp(-half * v * v);
        } else {
            const batch t = xsimd::tanh(batch(tanh_scale) * xsimd::fma(batch(cubic) * v, v * v, v));
            return half * (one - t * t) * batch(tanh_scale) * xsimd::fma(batch(3.0f * cubic) * v, v, one);
        }
    }
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
            if constexpr (out_of_place_activation<Activation> || input_derivative_activation<Activation>) {
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
            if constexpr (input_derivative_activation<Activation>) {
                if (!ctx.gradient_is_pre_activation)
                    return Activation::backward_from_input(b.input + at, b.output_gradient + at, b.input_gradient + at,
                                                           end - begin, In.channels());
            } else if constexpr (out_of_place_activation<Activation>) {
                if (!ctx.gradient_is_pre_activation)
                    return Activation::backward(b.output + at, b.output_gradient + at, b.input_gradient + at,
                                                end - begin, In.channels());
            }
            std::memcpy(b.input_gradient + at, b.output_gradient + at, (end - begin) * In.channels() * sizeof(float));
            if constexpr (activation<Activation>)
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
