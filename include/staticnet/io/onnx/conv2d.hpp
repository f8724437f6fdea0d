#pragma once
/// @file
/// ONNX mapping of `conv2d` (layers/conv2d.hpp): `Conv` with an OIHW kernel.

#include "../../layers/conv2d.hpp"
#include "activations.hpp"
#include "graph.hpp"

namespace staticnet {
namespace detail {

/// [K, K, C, F] (Keras, staticnet) to [F, C, K, K] (ONNX's OIHW).
inline std::vector<float> kernel_to_oihw(std::span<const float> kernel, std::size_t k, std::size_t c, std::size_t f) {
    std::vector<float> out(kernel.size());
    for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
            for (std::size_t ci = 0; ci < c; ++ci)
                for (std::size_t fi = 0; fi < f; ++fi)
                    out[((fi * c + ci) * k + ky) * k + kx] = kernel[((ky * k + kx) * c + ci) * f + fi];
    return out;
}

inline void kernel_from_oihw(std::span<const float> oihw, std::size_t k, std::size_t c, std::size_t f,
                             std::span<float> kernel) {
    for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
            for (std::size_t ci = 0; ci < c; ++ci)
                for (std::size_t fi = 0; fi < f; ++fi)
                    kernel[((ky * k + kx) * c + ci) * f + fi] = oihw[((fi * c + ci) * k + ky) * k + kx];
}

}  // namespace detail

namespace onnx {

/// A convolution layer `L` (`conv2d`, `depthwise_conv2d`, or one like them) as `Conv` with an
/// OIHW kernel, a bias if `L` has one (parameters beyond the kernel), then `L`'s activation.
/// It reads only `L`'s public members (`geometry`, `pads`, `kernel_count`, `activation_type`,
/// and `groups` where the channels are convolved in groups: the input channels for a depthwise
/// convolution), so a convolution with other template parameters maps with one line:
/// `struct layer_mapping<my_conv<...>> : conv2d_mapping<my_conv<...>> {};`.
template <typename L>
struct conv2d_mapping {
    static constexpr auto geometry = L::geometry;
    static constexpr std::size_t filters = L::output_shape.channels();
    static constexpr bool has_bias = L::parameter_count > L::kernel_count;
    static constexpr auto k = static_cast<std::int64_t>(geometry.kernel), s = static_cast<std::int64_t>(geometry.stride);
    static constexpr auto f = static_cast<std::int64_t>(filters);
    static constexpr std::int64_t groups = [] {
        if constexpr (requires { L::groups; }) return static_cast<std::int64_t>(L::groups);
        else return std::int64_t{1};
    }();
    /// The taps' spacing (ONNX's `dilations`), where the layer declares one.
    static constexpr std::int64_t dilation = [] {
        if constexpr (requires { L::dilation; }) return static_cast<std::int64_t>(L::dilation);
        else return std::int64_t{1};
    }();
    /// Input channels per group: the kernel is [f, c, k, k]. (A depthwise kernel, Keras's
    /// [k, k, channels, multiplier], is then [k, k, 1, f] as a convolution's, output innermost.)
    static constexpr auto c = static_cast<std::int64_t>(geometry.channels) / groups;

    /// ONNX's pads: top, left, bottom, right, as the layer declares them (`same` puts the odd
    /// pixel at the end, as TensorFlow). A pad the windows never reach (PyTorch's padding=1 of
    /// a stride-2 convolution on an even size, at the bottom and right) is still written.
    static std::vector<std::int64_t> pads() { return pads_of(L::pads); }

    /// The explicit pads that ONNX's `auto_pad` stands for on this input, or nothing when its
    /// output size differs from this layer's.
    static std::optional<std::vector<std::int64_t>> auto_pads(std::string_view mode) {
        std::vector<std::int64_t> before, after;
        const std::array<std::pair<std::size_t, std::size_t>, 2> sizes{
            {{geometry.height, geometry.out_height}, {geometry.width, geometry.out_width}}};
        for (const auto& [in, out] : sizes) {
            const std::size_t stride = geometry.stride;
            const std::size_t kernel = static_cast<std::size_t>(dilation) * (geometry.kernel - 1) + 1;  // the span
            if (mode == "VALID") {
                if (in < kernel || (in - kernel) / stride + 1 != out) return std::nullopt;
                before.push_back(0);
                after.push_back(0);
                continue;
            }
            if ((in + stride - 1) / stride != out) return std::nullopt;  // SAME_UPPER, SAME_LOWER
            const std::size_t covered = (out - 1) * stride + kernel, total = covered > in ? covered - in : 0;
            const std::size_t small = total / 2, large = total - small;
            before.push_back(static_cast<std::int64_t>(mode == "SAME_LOWER" ? large : small));
            after.push_back(static_cast<std::int64_t>(mode == "SAME_LOWER" ? small : large));
        }
        return std::vector<std::int64_t>{before[0], before[1], after[0], after[1]};
    }

    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float> parameters,
                                    std::span<const float>) {
        std::vector<std::string> inputs{x, g.add_initializer("kernel", {f, c, k, k},
                                                             staticnet::detail::kernel_to_oihw(
                                                                 parameters.first(L::kernel_count), geometry.kernel,
                                                                 static_cast<std::size_t>(c), filters))};
        if constexpr (has_bias)
            inputs.push_back(g.add_initializer("bias", {f}, {parameters.begin() + L::kernel_count, parameters.end()}));
        const auto y = g.add_node("Conv", std::move(inputs),
                                  {attribute::integers("kernel_shape", {k, k}), attribute::integers("strides", {s, s}),
                                   attribute::integers("pads", pads()), attribute::integers("dilations", {dilation, dilation}),
                                   attribute::integer("group", groups)});
        return activation_mapping<typename L::activation_type>::export_activation(g, y);
    }

    static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float>) {
        const node& n = r.next_parameter_node({"Conv"});
        const tensor& kernel = r.parameter(n, 1, "kernel", {f, c, k, k});
        check_ints(r, n, "strides", r.ints_attribute(n, "strides", {1, 1}), {s, s});
        check_ints(r, n, "dilations", r.ints_attribute(n, "dilations", {1, 1}), {dilation, dilation});
        if (const std::int64_t group = r.int_attribute(n, "group", 1); group != groups)
            r.fail(r.describe(n) + " convolves its channels in " + std::to_string(group) + (group == 1 ? " group; " : " groups; ") +
                   std::string(L::name) + " on " + std::to_string(geometry.channels) + " channels in " + std::to_string(groups));
        if (const attribute* shape = n.find("kernel_shape")) check_ints(r, n, "kernel_shape", shape->ints, {k, k});
        // A `Pad` node right before the convolution (PyTorch's ZeroPad2d) adds to its pads.
        const auto padded = r.take_padding();
        auto plus_padding = [&](std::vector<std::int64_t> own) {
            for (std::size_t i = 0; i < own.size() && i < padded.size(); ++i) own[i] += padded[i];
            return own;
        };
        const std::string auto_pad = r.string_attribute(n, "auto_pad", "NOTSET");
        if (auto_pad == "NOTSET") {
            check_ints(r, n, "pads", plus_padding(r.ints_attribute(n, "pads", {0, 0, 0, 0})), pads());
        } else {
            const auto same = auto_pads(auto_pad);
            if (!same || plus_padding(*same) != pads())
                r.fail(r.describe(n) + " has auto_pad '" + auto_pad + "', which does not pad as this layer does (pads " +
                       staticnet::detail::shape_text(pads()) + ")");
        }
        staticnet::detail::kernel_from_oihw(kernel.floats, geometry.kernel, static_cast<std::size_t>(c), filters,
                                            parameters.first(L::kernel_count));
        if constexpr (has_bias) {
            auto bias = parameters.subspan(L::kernel_count);
            if (graph_reader::has_input(n, 2)) std::ranges::copy(r.parameter(n, 2, "bias", {f}).floats, bias.begin());
            else std::ranges::fill(bias, 0.0f);
        } else if (graph_reader::has_input(n, 2)) {
            r.fail(r.describe(n) + " adds a bias, this layer has none (if the file was exported in eval mode, "
                   "torch.onnx.export folded the batch_norm after it into it: export with "
                   "training=torch.onnx.TrainingMode.PRESERVE, or declare the convolution with a bias and no batch_norm)");
        }
        r.flattened(std::nullopt);
    }

    static void check_ints(graph_reader& r, const node& n, std::string_view what, const std::vector<std::int64_t>& found,
                           const std::vector<std::int64_t>& expected) {
        if (found != expected)
            r.fail(r.describe(n) + " has " + std::string(what) + " " + staticnet::detail::shape_text(found) +
                   ", this layer needs " + staticnet::detail::shape_text(expected) + " (kernel " +
                   std::to_string(geometry.kernel) + ", stride " + std::to_string(geometry.stride) + ", input " +
                   to_string(L::input_shape) + ")");
    }
};

/// conv2d.
template <std::size_t Filters, std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding,
          bias Bias, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, In, Position>>
    : conv2d_mapping<staticnet::detail::conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, In, Position>> {};

/// conv2d with groups or dilation.
template <std::size_t Filters, std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding,
          bias Bias, std::size_t Groups, std::size_t Dilation, shape In, std::size_t Position>
struct layer_mapping<
    staticnet::detail::grouped_conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, Groups, Dilation, In, Position>>
    : conv2d_mapping<staticnet::detail::grouped_conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, Groups,
                                                             Dilation, In, Position>> {};

}  // namespace onnx
}  // namespace staticnet
