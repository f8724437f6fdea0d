#pragma once
/// @file
/// The grouped and dilated forms of `conv2d` (layers/conv2d.hpp): what
/// `conv2d<Filters, Kernel, Activation, Stride, Padding, Bias, Groups, Dilation>` binds to when
/// `Groups` or `Dilation` is above 1. PyTorch's `Conv2d(C, Filters, Kernel, groups=Groups,
/// dilation=Dilation)`, Keras's `Conv2D(groups=, dilation_rate=)`.
///
/// Groups: the C input channels and the filters are cut into `Groups` equal, consecutive parts;
/// filter part g sees only channel part g (ResNeXt's cardinality, ShuffleNet's grouped 1x1
/// convolutions). The kernel is Keras's [Kernel, Kernel, C / Groups, Filters]. Dilation: the
/// window's taps are `Dilation` pixels apart, so a 3x3 kernel of dilation 2 covers 5x5 pixels
/// with 9 weights (DeepLab's atrous convolution); padding is reckoned on that span
/// (`padding::same` keeps the size at stride 1, `padding::symmetric<Dilation>` is PyTorch's
/// `padding=dilation` for a 3x3).
///
/// Computed as im2col + GEMM per group, in chunks of images as `conv2d` does: a group's
/// columns are the K * K * C / Groups values of its channels, and its product writes the
/// group's filters in place in the output (the row stride is all the filters), so no
/// reordering pass follows. Depthwise convolution (one channel per group) has its own layer,
/// `depthwise_conv2d`, whose direct kernel is faster there than products of one channel.
/// The chunks and products do not depend on the thread count, so the results do not either.

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <string_view>
#include <type_traits>

#include "../kernels/elementwise.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/im2col.hpp"
#include "activations.hpp"
#include "conv2d.hpp"
#include "initializers.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace staticnet::detail {

template <std::size_t layer_position, std::size_t channels, std::size_t filters, std::size_t groups,
          std::size_t dilation, bool kernel_fits, bool padding_fits>
constexpr bool check_grouped_conv2d_wiring() {
    STATICNET_WIRING_CHECK(groups >= 1 && dilation >= 1, "conv2d needs Groups >= 1 and Dilation >= 1");
    STATICNET_WIRING_CHECK(channels % groups == 0,
                           "conv2d with Groups: the input channels must divide into the groups (C % Groups == 0)");
    STATICNET_WIRING_CHECK(filters % groups == 0,
                           "conv2d with Groups: the filters must divide into the groups (Filters % Groups == 0)");
    STATICNET_WIRING_CHECK(kernel_fits, "conv2d kernel (its dilated span) is larger than its (padded) input image "
                                        "(use padding::same, a smaller kernel or a smaller dilation)");
    STATICNET_WIRING_CHECK(padding_fits, "conv2d padding is as wide as its dilated kernel or wider: a window would "
                                         "read only padding");
    return true;
}

template <std::size_t Filters, std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding,
          bias Bias, std::size_t Groups, std::size_t Dilation, shape In, std::size_t Position>
class grouped_conv2d_layer : public layer_defaults {
    static_assert(check_conv2d_wiring<Position, In.rank, Kernel, Stride, true, true>());
    /// The pixels a window spans.
    static constexpr std::size_t span = Dilation * (Kernel - 1) + 1;
    static constexpr padded_axis vertical = pad_axis(Padding, In.height(), span, Stride, true);
    static constexpr padded_axis horizontal = pad_axis(Padding, In.width(), span, Stride, false);
    static_assert(check_grouped_conv2d_wiring<Position, In.channels(), Filters, Groups, Dilation,
                                              vertical.out * horizontal.out != 0,
                                              Padding.same || (vertical.before < span && vertical.after < span &&
                                                               horizontal.before < span && horizontal.after < span)>());

public:
    using activation_type = Activation;
    static constexpr std::string_view name = "conv2d";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{vertical.out, horizontal.out, Filters};
    static constexpr std::size_t groups = Groups;
    static constexpr std::size_t dilation = Dilation;
    /// Input channels and filters of one group.
    static constexpr std::size_t group_channels = In.channels() / Groups, group_filters = Filters / Groups;
    /// The zeros added on each side (ONNX's `pads`).
    static constexpr padding_pixels pads{vertical.before, vertical.after, horizontal.before, horizontal.after};
    static constexpr kernels::window_geometry geometry{In.height(), In.width(), In.channels(), Kernel, Stride,
                                                       pads.top, pads.left, output_shape.height(), output_shape.width()};
    static constexpr std::size_t kernel_count = Kernel * Kernel * group_channels * Filters;
    static constexpr bool has_bias = Bias == bias::use;
    static constexpr std::size_t parameter_count = kernel_count + (has_bias ? Filters : 0);
    static constexpr layer_traits traits{.weight_count = kernel_count, .activation = activation_info_of<Activation>};
    /// What tells two such layers apart beyond shapes and counts (the architecture fingerprint).
    static constexpr std::array<std::size_t, 3> hyperparameters{Kernel, Groups, Dilation};
    /// One group's im2col row: its channels under the K x K taps.
    static constexpr std::size_t column_width = Kernel * Kernel * group_channels;
    static constexpr std::size_t flops_per_sample = 2 * geometry.rows_per_image() * column_width * Filters;
    /// With silu, gelu or hard_swish: the pre-activation output, which their derivative needs.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept {
        return batch * output_shape.size() * folded_activation<Activation>::kept_floats;
    }
    /// How this shape is computed (`summary()` shows it).
    static constexpr std::string_view algorithm = Groups > 1 ? "im2col + gemm per group" : "dilated im2col + gemm";

    /// Images per chunk: about 1 MiB of one group's columns, as `conv2d`.
    static constexpr std::size_t max_chunk_images =
        std::max<std::size_t>(1, (std::size_t{1} << 18) / (geometry.rows_per_image() * column_width));
    static constexpr std::size_t chunk_images(std::size_t batch) noexcept {
        const std::size_t chunks = (batch + max_chunk_images - 1) / max_chunk_images;
        return chunks == 0 ? 0 : (batch + chunks - 1) / chunks;
    }
    static constexpr std::size_t scratch_floats(std::size_t batch) noexcept {
        return std::min(batch, max_chunk_images) * geometry.rows_per_image() * column_width;
    }

    void initialize(std::span<float> params, std::span<float>, rng& g) const noexcept {
        // Keras's fans of the kernel [K, K, C / Groups, Filters].
        glorot_uniform(params.first(kernel_count), column_width, Kernel * Kernel * Filters, g);
        std::fill(params.begin() + kernel_count, params.end(), 0.0f);
    }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* kernel = b.parameters;
        for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
            for (std::size_t g = 0; g < Groups; ++g) {
                const float* columns = group_columns(ctx, g, b.input + first * In.size(), images);
                kernels::gemm(images * geometry.rows_per_image(), group_filters, column_width, columns, column_width,
                              kernels::op::none, kernel + g * group_filters, Filters, kernels::op::none,
                              b.output + first * output_shape.size() + g * group_filters, Filters, false, ctx.pool);
            }
        });
        if constexpr (!has_pointwise_pass) return;
        const float* bias = kernel + kernel_count;
        const std::size_t rows = ctx.batch * geometry.rows_per_image();
        ctx.pool->parallel_for(rows, [&](std::size_t begin, std::size_t end) {
            if constexpr (has_bias) kernels::add_bias(b.output + begin * Filters, bias, end - begin, Filters);
            folded_activation<Activation>::forward(b.output, b.cache, begin * Filters, end - begin, Filters);
        }, 64);
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        float* dout = b.output_gradient;
        float* din = b.input_gradient;
        float* dparams = b.parameter_gradients;
        const std::size_t rows = ctx.batch * geometry.rows_per_image();
        if constexpr (has_pointwise_pass) {
            if (!ctx.gradient_is_pre_activation)
                ctx.pool->parallel_for(rows, [&](std::size_t begin, std::size_t end) {
                    folded_activation<Activation>::backward(b.output, b.cache, begin * Filters, dout + begin * Filters,
                                                            end - begin, Filters);
                }, 64);
            // Summed in row order on one thread: the same bits for any thread count.
            if constexpr (has_bias) kernels::accumulate_column_sums(dout, rows, Filters, dparams + kernel_count);
        }
        if (din != nullptr) std::fill_n(din, ctx.batch * In.size(), 0.0f);
        for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
            const std::size_t chunk_rows = images * geometry.rows_per_image();
            const float* dz = dout + first * output_shape.size();
            for (std::size_t g = 0; g < Groups; ++g) {
                const float* columns = group_columns(ctx, g, b.input + first * In.size(), images);
                kernels::gemm(column_width, group_filters, chunk_rows, columns, column_width, kernels::op::transpose,
                              dz + g * group_filters, Filters, kernels::op::none, dparams + g * group_filters, Filters,
                              true, ctx.pool);
                if (din == nullptr) continue;
                // The group's column gradient replaces its columns (their last reader was the
                // product above), then goes back into the group's input channels.
                float* dcolumns = ctx.scratch;
                kernels::gemm(chunk_rows, column_width, group_filters, dz + g * group_filters, Filters, kernels::op::none,
                              b.parameters + g * group_filters, Filters, kernels::op::transpose, dcolumns, column_width,
                              false, ctx.pool);
                float* din_chunk = din + first * In.size();
                ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                    kernels::col2im_group_add(geometry, Dilation, g * group_channels, group_channels,
                                              dcolumns + begin * geometry.rows_per_image() * column_width, end - begin,
                                              din_chunk + begin * In.size());
                });
            }
        });
    }

private:
    static constexpr bool has_pointwise_pass = has_bias || !std::is_same_v<Activation, identity>;

    template <typename F>
    static void for_each_chunk(const layer_context& ctx, F&& f) {
        const std::size_t chunk = chunk_images(ctx.batch);
        for (std::size_t first = 0; first < ctx.batch; first += chunk) f(first, std::min(chunk, ctx.batch - first));
    }

    /// Group g's columns of `images` images at `in`, in the scratch (threads split the images).
    static const float* group_columns(const layer_context& ctx, std::size_t g, const float* in, std::size_t images) {
        ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
            kernels::im2col_group(geometry, Dilation, g * group_channels, group_channels, in + begin * In.size(),
                                  end - begin, ctx.scratch + begin * geometry.rows_per_image() * column_width);
        });
        return ctx.scratch;
    }
};

}  // namespace staticnet::detail
