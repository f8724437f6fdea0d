#pragma once
/// @file
/// The ONNX graph as layers see it: `graph_writer` (an export adds each layer's nodes
/// through it, `graph_writer.hpp`), `graph_reader` (an import takes each layer's nodes from
/// it, `graph_reader.hpp`), and `layer_mapping<BoundLayer>` / `activation_mapping<Activation>`,
/// which a layer specializes to be written and read. The built-in layers' mappings are in
/// the files of this folder named after them (`conv2d.hpp` maps `layers/conv2d.hpp`);
/// `io/onnx.hpp` includes them all.

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "../../core/shape.hpp"
#include "../../layers/padding.hpp"
#include "graph_reader.hpp"
#include "graph_writer.hpp"
#include "messages.hpp"

namespace staticnet {
namespace onnx {

/// How a bound layer type is written to and read from ONNX. Specialize it for a new layer:
///
///     template <...> struct layer_mapping<my_layer<...>> {
///         // Adds the nodes computing the layer from tensor `x` (NCHW for images); returns
///         // the name of the output tensor.
///         static std::string export_layer(graph_writer& g, const std::string& x,
///                                         std::span<const float> parameters, std::span<const float> state);
///         // Reads the layer's parameters and state (staticnet's layouts) from the file.
///         static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float> state);
///     };
template <typename Layer>
struct layer_mapping;

/// How an activation policy is written: `export_activation(g, x)` returns the output tensor.
template <typename Activation>
struct activation_mapping;

/// ONNX's `pads` of a window layer: [top, left, bottom, right].
inline std::vector<std::int64_t> pads_of(const padding_pixels& p) {
    return {static_cast<std::int64_t>(p.top), static_cast<std::int64_t>(p.left), static_cast<std::int64_t>(p.bottom),
            static_cast<std::int64_t>(p.right)};
}

/// A layer that `save_onnx` and `load_onnx_weights` can handle.
template <typename Layer>
concept mapped_layer = requires(graph_writer& g, graph_reader& r, const std::string& x, std::span<const float> c,
                                std::span<float> m) {
    { layer_mapping<Layer>::export_layer(g, x, c, c) } -> std::convertible_to<std::string>;
    layer_mapping<Layer>::import_layer(r, m, m);
};

}  // namespace onnx

namespace detail {

/// A float as printf's %g writes it: "0.001", "1e-05".
inline std::string float_text(float value) {
    std::array<char, 32> text{};
    std::snprintf(text.data(), text.size(), "%g", static_cast<double>(value));
    return text.data();
}

/// Where feature i of a flattened `image` in staticnet's (y, x, c) order sits in the
/// channels-first (c, y, x) order of a flattened NCHW tensor.
inline std::size_t channels_first_index(const shape& image, std::size_t i) noexcept {
    const std::size_t channels = image.channels(), pixel = i / channels;
    return (i % channels) * image.height() * image.width() + pixel;
}

/// The dimensions of a declared tensor: the symbolic batch, then `s`'s (NHWC or features).
inline std::vector<onnx::dimension> declared_dims(const shape& s) {
    std::vector<onnx::dimension> dims{{.value = 0, .param = "N"}};
    for (std::size_t i = 0; i < s.rank; ++i) dims.push_back({.value = static_cast<std::int64_t>(s.dims[i]), .param = {}});
    return dims;
}

}  // namespace detail
}  // namespace staticnet
