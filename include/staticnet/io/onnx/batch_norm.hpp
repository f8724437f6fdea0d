#pragma once
/// @file
/// ONNX mapping of `batch_norm` (layers/batch_norm.hpp): `BatchNormalization` with its moving statistics.

#include "../../layers/batch_norm.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// batch_norm: `BatchNormalization` over axis 1 (channels of NCHW, features of [N, F]),
/// with the moving statistics.
template <template_float Momentum, template_float Epsilon, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::batch_norm_layer<Momentum, Epsilon, In, Position>> {
    using layer_type = staticnet::detail::batch_norm_layer<Momentum, Epsilon, In, Position>;
    static constexpr std::size_t channels = In.channels();
    static constexpr auto ch = static_cast<std::int64_t>(channels);

    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float> parameters,
                                    std::span<const float> state) {
        const auto gamma = g.add_initializer("gamma", {ch}, {parameters.begin(), parameters.begin() + ch});
        const auto beta = g.add_initializer("beta", {ch}, {parameters.begin() + ch, parameters.end()});
        const auto mean = g.add_initializer("moving_mean", {ch}, {state.begin(), state.begin() + ch});
        const auto var = g.add_initializer("moving_variance", {ch}, {state.begin() + ch, state.end()});
        return g.add_node("BatchNormalization", {x, gamma, beta, mean, var},
                          {attribute::real("epsilon", layer_type::epsilon), attribute::real("momentum", layer_type::momentum)});
    }

    static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float> state) {
        const node& n = r.next_parameter_node({"BatchNormalization"});
        const float epsilon = r.float_attribute(n, "epsilon", 1e-5f);
        if (!(std::abs(epsilon - layer_type::epsilon) <= 1e-6f * layer_type::epsilon))
            r.fail(r.describe(n) + " has epsilon " + staticnet::detail::float_text(epsilon) + ", this layer " +
                   staticnet::detail::float_text(layer_type::epsilon) + " (batch_norm<Momentum, Epsilon>)");
        if (n.outputs.size() > 1 && !n.outputs[1].empty())
            r.fail(r.describe(n) + " is in training mode (it outputs running statistics); export for inference");
        // A batch_norm on the features after a flatten follows the file's feature order too.
        const auto image = In.is_image() ? std::nullopt : r.channels_first_features(n);
        auto put = [&](std::size_t index, std::string_view role, std::span<float> to) {
            const auto& from = r.parameter(n, index, role, {ch}).floats;
            for (std::size_t i = 0; i < channels; ++i)
                to[i] = from[image ? staticnet::detail::channels_first_index(*image, i) : i];
        };
        put(1, "scale", parameters.first(channels));
        put(2, "bias", parameters.subspan(channels));
        put(3, "mean", state.first(channels));
        put(4, "variance", state.subspan(channels));
    }
};

}  // namespace onnx
}  // namespace staticnet
