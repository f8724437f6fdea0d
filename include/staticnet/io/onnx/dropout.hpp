#pragma once
/// @file
/// ONNX mapping of `dropout` (layers/dropout.hpp): the identity at inference.

#include "../../layers/dropout.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// dropout: the identity at inference.
template <template_float Rate, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::dropout_layer<Rate, In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        return g.add_node("Identity", {x});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

}  // namespace onnx
}  // namespace staticnet
