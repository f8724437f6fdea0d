#pragma once
/// @file
/// How the activations are written (`Relu`, `LeakyRelu`, `Clip` for relu6, `Sigmoid`, `Tanh`,
/// `Softmax`; silu, hard_swish and gelu as the operators PyTorch writes them at opset 13), and
/// an activation layer on its own.

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
// Written as torch.onnx.export writes them at opset 13 (HardSwish and Gelu are single
// operators only from opsets 14 and 20), scalars as rank-0 initializers: the import passes
// such a group of nodes as one activation (graph_reader::elementwise_region).
template <>
struct activation_mapping<silu> {
    static std::string export_activation(graph_writer& g, const std::string& x) {
        return g.add_node("Mul", {x, g.add_node("Sigmoid", {x})});
    }
};
template <>
struct activation_mapping<hard_swish> {
    static std::string export_activation(graph_writer& g, const std::string& x) {
        const auto gate = g.add_node("HardSigmoid", {x}, {attribute::real("alpha", 1.0f / 6.0f), attribute::real("beta", 0.5f)});
        return g.add_node("Mul", {x, gate});
    }
};
template <gelu_approximation Approximation>
struct activation_mapping<gelu<Approximation>> {
    static std::string export_activation(graph_writer& g, const std::string& x) {
        auto scalar = [&](const char* name, float v) { return g.add_initializer(name, {}, {v}); };
        std::string phi;  // 2 Phi(x) - 1
        if constexpr (Approximation == gelu_approximation::none) {
            phi = g.add_node("Erf", {g.add_node("Div", {x, scalar("root_2", 1.41421356237f)})});
        } else {
            const auto cube = g.add_node("Mul", {x, g.add_node("Mul", {x, x})});
            const auto inner = g.add_node("Add", {x, g.add_node("Mul", {scalar("cubic", 0.044715f), cube})});
            phi = g.add_node("Tanh", {g.add_node("Mul", {scalar("scale", 0.79788456080f), inner})});
        }
        const auto x_phi = g.add_node("Mul", {x, g.add_node("Add", {phi, scalar("one", 1.0f)})});
        return g.add_node("Mul", {x_phi, scalar("half", 0.5f)});
    }
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
