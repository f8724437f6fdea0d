#pragma once
/// @file
/// ONNX in and out: export a network for any ONNX runtime, import weights trained elsewhere
/// (PyTorch's `torch.onnx.export`). docs/onnx.md walks through both directions.
///
///     sn::save_onnx(model.network(), "cnn.onnx");          // or sn::save_onnx(model, "cnn.onnx")
///     sn::load_onnx_weights(model.network(), "torch.onnx");
///
/// **Export** writes opset 13 (IR version 7) for inference, atomically (`core/file_io.hpp`):
/// - the input is declared as staticnet takes it, `input` [N, H, W, C] (or [N, F]) with a
///   symbolic batch N; the graph turns it into NCHW with a `Transpose` and works in NCHW, as
///   ONNX operators do; the output is `output` [N, outputs] (an image output is turned back
///   into NHWC);
/// - `conv2d` is `Conv` (OIHW kernel, explicit pads, TensorFlow's split of "same" padding),
///   `dense` is `Gemm` with `transB = 1` (an [out, in] weight, the form OpenCV accepts),
///   `max_pool2d` `MaxPool`, `batch_norm` `BatchNormalization` with its moving statistics,
///   `dropout` `Identity`, activations `Relu`, `Sigmoid`, `Tanh`, `Softmax` (axis 1);
/// - `flatten` of an image transposes back to NHWC before `Flatten`, so the features keep
///   staticnet's channels-last order and a `dense` after it keeps its weights' row order.
///
/// **Import** (`load_onnx_weights`) follows the graph from its input (`onnx::graph_reader`):
/// each layer with parameters takes the next node on the data path that carries parameters
/// (one reading a float initializer: `Conv`, `Gemm` or `MatMul` + `Add`,
/// `BatchNormalization`), and a residual block matches its body and shortcut to the two
/// paths that meet at its `Add`, whatever their order in the file. Nodes without parameters
/// (activations, pooling, flatten, reshapes) are not compared, since exporters write them in
/// many forms (PyTorch ends without the softmax that its loss holds); a zero `Pad` before a
/// `Conv` (PyTorch's `ZeroPad2d`) counts as that convolution's padding. Each layer checks its operator,
/// its attributes (kernel, stride, padding, epsilon) and the shape of every tensor, and
/// converts from ONNX's layouts: OIHW kernels to [K, K, C, F], `Gemm`'s [out, in] to
/// [in, out], and, for the first `dense` after a `flatten`, PyTorch's channels-first
/// feature order to staticnet's channels-last one (unless the file transposed to NHWC
/// before flattening, as `save_onnx` does). A mismatch throws `staticnet::error` naming the
/// file, the layer, the node and both shapes; the network changes only when everything fit.
///
/// **Extending** to a new layer: specialize `onnx::layer_mapping<BoundLayer>` with
/// `export_layer` and `import_layer` (the built-in mappings are in io/onnx/, one file per layer), and
/// `onnx::activation_mapping<Activation>` for a new activation.

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../comm/communicator.hpp"
#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/shape.hpp"
#include "../train/losses.hpp"
#include "../train/optimizers.hpp"
#include "onnx/graph.hpp"
// The built-in layers' mappings, one file per layer (a new built-in layer adds its own).
#include "onnx/activations.hpp"
#include "onnx/average_pool2d.hpp"
#include "onnx/batch_norm.hpp"
#include "onnx/concat.hpp"
#include "onnx/conv2d.hpp"
#include "onnx/depthwise_conv2d.hpp"
#include "onnx/dense.hpp"
#include "onnx/dropout.hpp"
#include "onnx/flatten.hpp"
#include "onnx/global_average_pool2d.hpp"
#include "onnx/max_pool2d.hpp"
#include "onnx/residual.hpp"

namespace staticnet {

// The trainer (train/model.hpp): this header uses it, it never includes this one, so a
// program that trains without writing ONNX does not compile the writer.
template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
class model;

/// Writes `net` (a `sequential`) as an ONNX model for inference to `file`, atomically.
/// Throws `staticnet::error` naming the file when it cannot be written.
template <typename Net>
void save_onnx(const Net& net, const std::filesystem::path& file);

/// The same for a model's network; under MPI only rank 0 writes.
template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void save_onnx(model<Net, Optimizer, Loss, Communicator>& m, const std::filesystem::path& file) {
    if (m.comm().rank() == 0) save_onnx(m.network(), file);
}

/// Fills `net`'s parameters and batch_norm statistics from the ONNX model `file` of an
/// equivalent network (written by `save_onnx` or `torch.onnx.export`). Throws
/// `staticnet::error` naming the file, the layer and the node when the file is unreadable or
/// does not fit the network; `net` is then unchanged.
template <typename Net>
void load_onnx_weights(Net& net, const std::filesystem::path& file);

/// The model `save_onnx` writes, before encoding (tests and tools inspect it).
template <typename Net>
[[nodiscard]] onnx::model to_onnx_model(const Net& net);

namespace detail {

template <typename Net, std::size_t I>
std::string export_layer(onnx::graph_writer& g, const Net& net, const std::string& x) {
    using L = typename Net::template layer_type<I>;
    static_assert(onnx::mapped_layer<L>, "staticnet: this layer has no ONNX mapping: specialize "
                                         "staticnet::onnx::layer_mapping for it (see io/onnx/graph.hpp)");
    g.begin_layer(I + 1, L::name);
    return onnx::layer_mapping<L>::export_layer(g, x, net.parameters().subspan(Net::parameter_offsets[I], L::parameter_count),
                                                net.state().subspan(Net::state_offsets[I], L::state_count));
}

template <typename Net, std::size_t I>
void import_layer(onnx::graph_reader& r, std::span<float> parameters, std::span<float> state) {
    using L = typename Net::template layer_type<I>;
    static_assert(onnx::mapped_layer<L>, "staticnet: this layer has no ONNX mapping: specialize "
                                         "staticnet::onnx::layer_mapping for it (see io/onnx/graph.hpp)");
    r.begin_layer(I + 1, L::name);
    onnx::layer_mapping<L>::import_layer(r, parameters.subspan(Net::parameter_offsets[I], L::parameter_count),
                                         state.subspan(Net::state_offsets[I], L::state_count));
}

}  // namespace detail

template <typename Net>
onnx::model to_onnx_model(const Net& net) {
    onnx::graph_writer g;
    auto& m = g.result();
    m.ir_version = 7;
    m.producer_name = "staticnet";
    m.producer_version = "0.1.0";
    m.opsets = {{.domain = "", .version = onnx::export_opset}};
    m.graph_name = "staticnet_sequential";
    m.inputs = {{.name = "input", .elem_type = onnx::float_type, .dims = detail::declared_dims(Net::input_shape)}};
    std::string x = "input";
    g.begin_layer(0, "input");
    if constexpr (Net::input_shape.is_image()) x = g.add_node("Transpose", {x}, {onnx::attribute::integers("perm", {0, 3, 1, 2})});
    [&]<std::size_t... I>(std::index_sequence<I...>) { ((x = detail::export_layer<Net, I>(g, net, x)), ...); }
    (std::make_index_sequence<Net::layer_count>{});
    g.begin_layer(Net::layer_count + 1, "output");
    if constexpr (Net::output_shape.is_image()) x = g.add_node("Transpose", {x}, {onnx::attribute::integers("perm", {0, 2, 3, 1})});
    // The last node's output is the graph's output; an Identity when the last layer added
    // no node of its own (e.g. a network ending in dropout after the input).
    if (m.nodes.empty() || m.nodes.back().outputs[0] != x) x = g.add_node("Identity", {x});
    m.nodes.back().outputs[0] = "output";
    m.outputs = {{.name = "output", .elem_type = onnx::float_type, .dims = detail::declared_dims(Net::output_shape)}};
    return std::move(m);
}

template <typename Net>
void save_onnx(const Net& net, const std::filesystem::path& file) {
    const auto bytes = onnx::encode(to_onnx_model(net));
    detail::write_file_atomically<error>(file, "cannot write ONNX file '" + file.string() + "'",
                                         [&](detail::output_file& out) { out.write(bytes); });
}

template <typename Net>
void load_onnx_weights(Net& net, const std::filesystem::path& file) {
    const auto bytes = detail::read_file_bytes<error>(file);
    onnx::model m;
    try {
        m = onnx::decode(bytes);
    } catch (const error& e) {
        throw error("ONNX file '" + file.string() + "': " + e.what());
    }
    onnx::graph_reader r(std::move(m), file);
    // Into copies: the network changes only once every layer has fit.
    std::vector<float> parameters(net.parameters().begin(), net.parameters().end());
    std::vector<float> state(net.state().begin(), net.state().end());
    [&]<std::size_t... I>(std::index_sequence<I...>) { (detail::import_layer<Net, I>(r, parameters, state), ...); }
    (std::make_index_sequence<Net::layer_count>{});
    r.finish();
    std::copy(parameters.begin(), parameters.end(), net.parameters().begin());
    std::copy(state.begin(), state.end(), net.state().begin());
}

}  // namespace staticnet
