#pragma once
/// @file
/// ONNX mapping of `average_pool2d` (layers/average_pool2d.hpp): `AveragePool`.

#include "../../layers/average_pool2d.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// average_pool2d: `AveragePool`. Padding is written as a zero `Pad` before an unpadded
/// `AveragePool`: the same mean as `count_include_pad=1`, which not every runtime honours
/// (OpenCV 4.6 leaves the padding out of the count whatever the attribute says).
template <std::size_t Pool, std::size_t Stride, padding_rule Padding, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::average_pool2d_layer<Pool, Stride, Padding, In, Position>> {
    using layer = staticnet::detail::average_pool2d_layer<Pool, Stride, Padding, In, Position>;
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        const auto p = static_cast<std::int64_t>(Pool), s = static_cast<std::int64_t>(Stride);
        std::string in = x;
        if constexpr (!layer::pads.none()) {
            const auto pads = pads_of(layer::pads);  // [top, left, bottom, right] -> NCHW begins, then ends
            in = g.add_node("Pad", {x, g.add_int_initializer("pads", {8}, {0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]})},
                            {});  // mode "constant", value 0: the defaults
        }
        return g.add_node("AveragePool", {in}, {attribute::integers("kernel_shape", {p, p}),
                                                attribute::integers("strides", {s, s}),
                                                attribute::integers("pads", {0, 0, 0, 0})});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

}  // namespace onnx
}  // namespace staticnet
