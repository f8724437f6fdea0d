#pragma once
/// @file
/// How the activations are written (`Relu`, `LeakyRelu`, `Clip` for relu6, `Sigmoid`, `Tanh`,
/// `Softmax`), and an activation layer on its own.

#include "../../layers/activations.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

// -------------------------------------------------------------- activations

template <>
struct activation_mapping<identity> {
    static std::string export_activation(graph_writer&, const std::string& x) { return x; }
};
template <>
struct activation_mapping<relu> {
    static std::string export_activation(graph_writer& g, const std::string& x) { return g.add_node("Relu", {x}); }
};
template <template_float Slope>
struct activation_mapping<leaky_relu<Slope>> {
    static std::string export_activation(graph_writer& g, const std::string& x) {
        return g.add_node("LeakyRelu", {x}, {attribute::real("alpha", Slope)});
    }
};
template <>
struct activation_mapping<relu6> {
    // Opset 11 and later take Clip's bounds as inputs.
    static std::string export_activation(graph_writer& g, const std::string& x) {
        return g.add_node("Clip", {x, g.add_initializer("min", {}, {0.0f}), g.add_initializer("max", {}, {6.0f})});
    }
};
template <>
struct activation_mapping<sigmoid> {
    static std::string export_activation(graph_writer& g, const std::string& x) { return g.add_node("Sigmoid", {x}); }
};
template <>
struct activation_mapping<tanh> {
    static std::string export_activation(graph_writer& g, const std::string& x) { return g.add_node("Tanh", {x}); }
};
template <>
struct activation_mapping<softmax> {
    // Axis 1 is the innermost dimension of staticnet's: the features of a vector [N, F],
    // the channels of an image, which the graph holds as NCHW.
    static std::string export_activation(graph_writer& g, const std::string& x) {
        return g.add_node("Softmax", {x}, {attribute::integer("axis", 1)});
    }
};

/// An activation on its own.
template <typename Activation, shape In, std::size_t Position>
struct layer_mapping<activation_layer<Activation, In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        return activation_mapping<Activation>::export_activation(g, x);
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

}  // namespace onnx
}  // namespace staticnet
