#pragma once
/// @file
/// ONNX mapping of `dense` (layers/dense.hpp): `Gemm`, or PyTorch's `MatMul` + `Add` on import.

#include "../../layers/dense.hpp"
#include "activations.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// dense: `Gemm` with transB = 1 ([out, in] weight, as PyTorch and OpenCV take it); reads
/// `Gemm` either way and `MatMul` + `Add`.
template <std::size_t Units, typename Activation, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::dense_layer<Units, Activation, In, Position>> {
    using layer_type = staticnet::detail::dense_layer<Units, Activation, In, Position>;
    static constexpr std::size_t inputs = In.size();
    static constexpr auto in = static_cast<std::int64_t>(inputs), out = static_cast<std::int64_t>(Units);

    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float> parameters,
                                    std::span<const float>) {
        std::vector<float> weight(layer_type::kernel_count);  // [out, in]
        for (std::size_t i = 0; i < inputs; ++i)
            for (std::size_t o = 0; o < Units; ++o) weight[o * inputs + i] = parameters[i * Units + o];
        const auto w = g.add_initializer("kernel", {out, in}, std::move(weight));
        const auto b = g.add_initializer("bias", {out}, {parameters.begin() + layer_type::kernel_count, parameters.end()});
        const auto y = g.add_node("Gemm", {x, w, b},
                                  {attribute::real("alpha", 1.0f), attribute::real("beta", 1.0f),
                                   attribute::integer("transA", 0), attribute::integer("transB", 1)});
        return activation_mapping<Activation>::export_activation(g, y);
    }

    static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float>) {
        const node& n = r.next_parameter_node({"Gemm", "MatMul"});
        std::vector<float> weight;  // [in, out], in the file's feature order
        std::optional<std::span<const float>> bias;
        if (n.op_type == "Gemm") {
            if (r.int_attribute(n, "transA", 0) != 0) r.fail(r.describe(n) + " transposes its input (transA = 1)");
            if (r.float_attribute(n, "alpha", 1.0f) != 1.0f || r.float_attribute(n, "beta", 1.0f) != 1.0f)
                r.fail(r.describe(n) + " scales by alpha or beta other than 1");
            const bool transposed = r.int_attribute(n, "transB", 0) != 0;
            const tensor& w = transposed ? r.parameter(n, 1, "weight", {out, in}) : r.parameter(n, 1, "weight", {in, out});
            weight = w.floats;
            if (transposed)
                for (std::size_t i = 0; i < inputs; ++i)
                    for (std::size_t o = 0; o < Units; ++o) weight[i * Units + o] = w.floats[o * inputs + i];
            if (graph_reader::has_input(n, 2)) {
                const tensor& b = r.parameter(n, 2, "bias", {out});
                bias = std::span<const float>(b.floats);
            }
        } else {
            weight = r.parameter(n, 1, "weight", {in, out}).floats;
            // The bias, if any, is the Add of a parameter that alone reads the product.
            if (const node* add = r.sole_consumer(n.outputs.empty() ? std::string{} : n.outputs[0]);
                add != nullptr && add->op_type == "Add" && add->inputs.size() == 2) {
                const std::size_t at = add->inputs[0] == n.outputs[0] ? 1 : 0;
                if (r.is_parameter(add->inputs[at])) {
                    bias = std::span<const float>(r.parameter(*add, at, "bias", {out}).floats);
                    r.take(*add);
                }
            }
        }
        // PyTorch flattens NCHW: feature (c, y, x) of the file is staticnet's (y, x, c).
        const auto image = r.channels_first_features(n);
        auto kernel = parameters.first(layer_type::kernel_count);
        for (std::size_t i = 0; i < inputs; ++i) {
            const std::size_t from = image ? staticnet::detail::channels_first_index(*image, i) : i;
            std::copy_n(weight.begin() + static_cast<std::ptrdiff_t>(from * Units), Units,
                        kernel.begin() + static_cast<std::ptrdiff_t>(i * Units));
        }
        auto b = parameters.subspan(layer_type::kernel_count);
        if (bias) std::ranges::copy(*bias, b.begin());
        else std::ranges::fill(b, 0.0f);
        r.flattened(std::nullopt);
    }
};

}  // namespace onnx
}  // namespace staticnet
