#pragma once
/// @file
/// ONNX mapping of `flatten` (layers/flatten.hpp): `Flatten` of the NHWC features.

#include "../../layers/flatten.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// flatten: back to NHWC first, so the features keep staticnet's channels-last order.
template <shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::flatten_layer<In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        std::string y = x;
        if constexpr (In.is_image()) y = g.add_node("Transpose", {y}, {attribute::integers("perm", {0, 2, 3, 1})});
        return g.add_node("Flatten", {y}, {attribute::integer("axis", 1)});
    }
    static void import_layer(graph_reader& r, std::span<float>, std::span<float>) {
        if constexpr (In.is_image()) r.flattened(In);
    }
};

}  // namespace onnx
}  // namespace staticnet
