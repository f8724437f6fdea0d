#pragma once
/// @file
/// ONNX mapping of `global_average_pool2d` (layers/global_average_pool2d.hpp).

#include "../../layers/global_average_pool2d.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// global_average_pool2d: `GlobalAveragePool` ([N, C, 1, 1]), then `Flatten` to staticnet's
/// [N, C] (one pixel: the channel order is the same either way).
template <shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::global_average_pool2d_layer<In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        return g.add_node("Flatten", {g.add_node("GlobalAveragePool", {x})}, {attribute::integer("axis", 1)});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

}  // namespace onnx
}  // namespace staticnet
