#pragma once
/// @file
/// `depthwise_conv2d<Kernel, Activation, Stride, Padding, Multiplier, Bias>`: each input
/// channel convolved with `Multiplier` kernels of its own (Keras's `DepthwiseConv2D`,
/// PyTorch's `Conv2d(C, C * Multiplier, Kernel, groups=C)`), the spatial half of MobileNet's
/// depthwise-separable convolution (a 1x1 `conv2d` after it mixes the channels).
///
/// Parameters as Keras stores them: the kernel [Kernel, Kernel, C, Multiplier], then the bias
/// [C * Multiplier]. Output channel c * Multiplier + m is input channel c through kernel m,
/// PyTorch's order too.
///
/// The arithmetic is kernels/depthwise_conv.hpp's, SIMD over channels. With a multiplier
/// above 1 each input pixel's channels are first repeated (c, c, ..., c + 1, ...) in scratch,
/// which makes it a multiplier-1 convolution over C * Multiplier channels with the same kernel
/// memory, and the input gradient's repeats are summed back. Threads take groups of 4 images;
/// each group adds its kernel gradient into a block of its own and the blocks are added in
/// group order, so the result is the same for any number of threads.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

#include "../core/aligned_buffer.hpp"
#include "../kernels/depthwise_conv.hpp"
#include "../kernels/elementwise.hpp"
#include "activations.hpp"
#include "conv2d.hpp"  // bias
#include "initializers.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace staticnet {

namespace detail {
template <std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding, std::size_t Multiplier, bias Bias,
          shape In, std::size_t Position>
class depthwise_conv2d_layer;

template <std::size_t layer_position, std::size_t input_rank, std::size_t kernel_size, std::size_t stride,
          std::size_t multiplier, bool kernel_fits, bool padding_fits>
constexpr bool check_depthwise_conv2d_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 3, "depthwise_conv2d needs an image input (height, width, channels); the layer "
                                            "before it gives a vector");
    STATICNET_WIRING_CHECK(kernel_size >= 1 && stride >= 1 && multiplier >= 1,
                           "depthwise_conv2d needs kernel_size >= 1, stride >= 1 and a multiplier >= 1");
    STATICNET_WIRING_CHECK(kernel_fits, "depthwise_conv2d kernel is larger than its (padded) input image (use "
                                        "padding::same or a smaller kernel)");
    STATICNET_WIRING_CHECK(padding_fits, "depthwise_conv2d padding is as wide as its kernel or wider: a window would "
                                         "read only padding (pad each side by less than the kernel size)");
    return true;
}
}  // namespace detail

/// A `Kernel` x `Kernel` convolution of each channel on its own, `Multiplier` outputs per channel.
template <std::size_t Kernel, typename Activation = identity, std::size_t Stride = 1, padding_rule Padding = padding::valid,
          std::size_t Multiplier = 1, bias Bias = bias::use>
struct depthwise_conv2d {
    static_assert(activation<Activation> || input_derivative_activation<Activation>,
                  "depthwise_conv2d: the second argument must be an activation (relu6, hard_swish, ...)");
    template <shape In, std::size_t Position>
    using bind = detail::depthwise_conv2d_layer<Kernel, Activation, Stride, Padding, Multiplier, Bias, In, Position>;
};

namespace detail {

template <std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding, std::size_t Multiplier, bias Bias,
          shape In, std::size_t Position>
class depthwise_conv2d_layer : public layer_defaults {
    static constexpr padded_axis vertical = pad_axis(Padding, In.height(), Kernel, Stride, true);
    static constexpr padded_axis horizontal = pad_axis(Padding, In.width(), Kernel, Stride, false);
    static_assert(check_depthwise_conv2d_wiring<Position, In.rank, Kernel, Stride, Multiplier,
                                                In.rank != 3 || vertical.out * horizontal.out != 0,
                                                In.rank != 3 || Padding.same ||
                                                    (vertical.before < Kernel && vertical.after < Kernel &&
                                                     horizontal.before < Kernel && horizontal.after < Kernel)>());
    static constexpr std::size_t C = In.channels(), outputs = C * Multiplier;

public:
    using activation_type = Activation;
    static constexpr std::string_view name = "depthwise_conv2d";
    static constexpr std::size_t multiplier = Multiplier;
    /// One group per input channel (ONNX's and PyTorch's `group`).
    static constexpr std::size_t groups = C;
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{vertical.out, horizontal.out, outputs};
    /// The zeros added on each side (ONNX's `pads`).
    static constexpr padding_pixels pads{vertical.before, vertical.after, horizontal.before, horizontal.after};
    /// The windows over the input (`channels` is the input's: C).
    static constexpr kernels::window_geometry geometry{In.height(), In.width(), C, Kernel, Stride,
                                                       pads.top, pads.left, output_shape.height(), output_shape.width()};
    static constexpr std::size_t kernel_count = Kernel * Kernel * outputs;
    static constexpr bool has_bias = Bias == bias::use;
    static constexpr std::size_t parameter_count = kernel_count + (has_bias ? outputs : 0);
    static constexpr layer_traits traits{.weight_count = kernel_count, .activation = activation_info_of<Activation>};
    static constexpr std::size_t flops_per_sample = 2 * geometry.rows_per_image() * Kernel * Kernel * outputs;
    /// How it is computed (`summary()` shows it): SIMD over each pixel's channels.
    static constexpr std::string_view algorithm = "direct (SIMD channels)";
    /// With silu, gelu or hard_swish: the pre-activation output, which their derivative needs.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept {
        return batch * output_shape.size() * folded_activation<Activation>::kept_floats;
    }

    /// Images per thread task, and so per block of kernel gradient.
    static constexpr std::size_t image_group = 4;
    static constexpr std::size_t image_groups(std::size_t batch) noexcept { return (batch + image_group - 1) / image_group; }
    /// Per image group: its kernel-gradient block, and with a multiplier above 1 the repeated
    /// input image and its gradient.
    static constexpr std::size_t group_floats =
        align_floats(parameter_count) + (Multiplier > 1 ? 2 * align_floats(In.height() * In.width() * outputs) : 0);
    static constexpr std::size_t scratch_floats(std::size_t batch) noexcept { return image_groups(batch) * group_floats; }

    void initialize(std::span<float> params, std::span<float>, rng& g) const noexcept {
        // Keras's fans for a [K, K, C, M] kernel: K * K * C in, K * K * M out.
        glorot_uniform(params.first(kernel_count), Kernel * Kernel * C, Kernel * Kernel * Multiplier, g);
        std::fill(params.begin() + kernel_count, params.end(), 0.0f);
    }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* kernel = b.parameters;
        const float* bias = has_bias ? kernel + kernel_count : nullptr;
        for_groups(ctx, [&](std::size_t first, std::size_t last, float* scratch) {
            for (std::size_t n = first; n < last; ++n) {
                float* out = b.output + n * output_shape.size();
                kernels::depthwise_forward(repeated, image(b.input + n * In.size(), scratch), kernel, bias, out);
                folded_activation<Activation>::forward(b.output, b.cache, n * output_shape.size(),
                                                       geometry.rows_per_image(), outputs);
            }
        });
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        const float* kernel = b.parameters;
        const std::size_t blocks = image_groups(ctx.batch);
        for_groups(ctx, [&](std::size_t first, std::size_t last, float* scratch) {
            float* block = scratch;
            std::fill_n(block, parameter_count, 0.0f);
            for (std::size_t n = first; n < last; ++n) {
                float* dz = b.output_gradient + n * output_shape.size();
                if (!ctx.gradient_is_pre_activation)
                    folded_activation<Activation>::backward(b.output, b.cache, n * output_shape.size(), dz,
                                                            geometry.rows_per_image(), outputs);
                kernels::depthwise_kernel_gradient(repeated, image(b.input + n * In.size(), scratch), dz, block,
                                                   has_bias ? block + kernel_count : nullptr);
                if (b.input_gradient) input_gradient(dz, kernel, b.input_gradient + n * In.size(), scratch);
            }
        });
        // The groups' blocks, added in group order (elementwise: the threads' ranges change nothing).
        float* scratch = ctx.scratch;
        kernels::for_simd_ranges(parameter_count, ctx.pool, [&](std::size_t begin, std::size_t end) {
            for (std::size_t k = 0; k < blocks; ++k) {
                float* g = b.parameter_gradients + begin;
                kernels::map(end - begin, [](auto x, auto y) { return x + y; }, g, static_cast<const float*>(g),
                             static_cast<const float*>(scratch + k * group_floats + begin));
            }
        });
    }

private:
    /// The multiplier-1 convolution that runs: over the input's channels, each repeated
    /// `Multiplier` times.
    static constexpr kernels::window_geometry repeated{In.height(), In.width(), outputs, Kernel, Stride,
                                                       pads.top, pads.left, output_shape.height(), output_shape.width()};
    static constexpr std::size_t repeated_floats = In.height() * In.width() * outputs;

    /// Runs `f(first, last, scratch)` for each group of images, on the pool's threads, with
    /// the group's own scratch.
    template <typename F>
    static void for_groups(const layer_context& ctx, F&& f) {
        ctx.pool->parallel_for(image_groups(ctx.batch), [&](std::size_t begin, std::size_t end) {
            for (std::size_t k = begin; k < end; ++k)
                f(k * image_group, std::min(ctx.batch, (k + 1) * image_group), ctx.scratch + k * group_floats);
        });
    }
    /// The image as the kernels read it: itself, or its channels repeated into the group's scratch.
    static const float* image(const float* x, float* scratch) noexcept {
        if constexpr (Multiplier == 1) {
            (void)scratch;
            return x;
        } else {
            float* r = scratch + align_floats(parameter_count);
            for (std::size_t p = 0; p < In.height() * In.width(); ++p)
                for (std::size_t c = 0; c < C; ++c) std::fill_n(r + (p * C + c) * Multiplier, Multiplier, x[p * C + c]);
            return r;
        }
    }
    /// One image's input gradient; with a multiplier above 1, the repeats' gradients summed.
    static void input_gradient(const float* dz, const float* kernel, float* din, float* scratch) noexcept {
        if constexpr (Multiplier == 1) {
            (void)scratch;
            kernels::depthwise_input_gradient(repeated, dz, kernel, din);
        } else {
            float* r = scratch + align_floats(parameter_count) + align_floats(repeated_floats);
            kernels::depthwise_input_gradient(repeated, dz, kernel, r);
            for (std::size_t i = 0; i < In.size(); ++i) {
                float sum = 0.0f;
                for (std::size_t m = 0; m < Multiplier; ++m) sum += r[i * Multiplier + m];
                din[i] = sum;
            }
        }
    }
};

}  // namespace detail
}  // namespace staticnet
