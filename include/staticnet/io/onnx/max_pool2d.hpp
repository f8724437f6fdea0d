#pragma once
/// @file
/// ONNX mapping of `max_pool2d` (layers/max_pool2d.hpp): `MaxPool`.

#include "../../layers/max_pool2d.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// max_pool2d: `MaxPool`, the padding as -infinity, as ONNX pads `MaxPool`.
template <std::size_t Pool, std::size_t Stride, padding_rule Padding, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::max_pool2d_layer<Pool, Stride, Padding, In, Position>> {
    using layer = staticnet::detail::max_pool2d_layer<Pool, Stride, Padding, In, Position>;
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        const auto p = static_cast<std::int64_t>(Pool), s = static_cast<std::int64_t>(Stride);
        return g.add_node("MaxPool", {x}, {attribute::integers("kernel_shape", {p, p}), attribute::integers("strides", {s, s}),
                                    attribute::integers("pads", pads_of(layer::pads))});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

}  // namespace onnx
}  // namespace staticnet
