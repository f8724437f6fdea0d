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
/// **Import** (`load_onnx_weights`) matches the file's nodes that carry parameters (those
/// reading a float initializer: `Conv`, `Gemm` or `MatMul` + `Add`, `BatchNormalization`) to
/// the network's layers with parameters, in order; nodes without parameters (activations,
/// pooling, flatten, reshapes) are not compared, since exporters write them in many forms
/// (PyTorch ends without the softmax that its loss holds). Each layer checks its operator,
/// its attributes (kernel, stride, padding, epsilon) and the shape of every tensor, and
/// converts from ONNX's layouts: OIHW kernels to [K, K, C, F], `Gemm`'s [out, in] to
/// [in, out], and, for the first `dense` after a `flatten`, PyTorch's channels-first
/// feature order to staticnet's channels-last one (unless the file transposed to NHWC
/// before flattening, as `save_onnx` does). A mismatch throws `staticnet::error` naming the
/// file, the layer, the node and both shapes; the network changes only when everything fit.
///
/// **Extending** to a new layer: specialize `onnx::layer_mapping<BoundLayer>` with
/// `export_layer` and `import_layer` (see the built-in mappings at the end of this file), and
/// `onnx::activation_mapping<Activation>` for a new activation.

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/shape.hpp"
#include "../layers/activations.hpp"
#include "../layers/average_pool2d.hpp"
#include "../layers/batch_norm.hpp"
#include "../layers/conv2d.hpp"
#include "../layers/dense.hpp"
#include "../layers/dropout.hpp"
#include "../layers/flatten.hpp"
#include "../layers/global_average_pool2d.hpp"
#include "../layers/max_pool2d.hpp"
#include "../layers/residual.hpp"
#include "../comm/communicator.hpp"
#include "../train/losses.hpp"
#include "../train/optimizers.hpp"
#include "onnx_model.hpp"

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

namespace onnx {

/// The opset `save_onnx` writes (the first with `Softmax` over one axis).
inline constexpr std::int64_t export_opset = 13;

/// Builds the graph of an export; a `layer_mapping` adds its layer's nodes through it.
class graph_writer {
public:
    /// Starts the nodes of layer `position` (1-based; 0 for the input's) called `name`: what
    /// is added next is named "layer<position>_<name>/...".
    void begin_layer(std::size_t position, std::string_view name);
    /// Adds a node reading `inputs`; returns the name of its output.
    std::string add_node(std::string_view op_type, std::vector<std::string> inputs, std::vector<attribute> attributes = {});
    /// Adds a float initializer called after `role` ("kernel", "bias"); returns its name.
    std::string add_initializer(std::string_view role, std::vector<std::int64_t> dims, std::vector<float> values);

    [[nodiscard]] model& result() noexcept { return model_; }

private:
    std::string unique(std::string name);

    model model_;
    std::string prefix_;
    std::map<std::string, std::size_t, std::less<>> used_;
};

/// Walks a parsed file during an import; a `layer_mapping` takes its layer's nodes from it.
class graph_reader {
public:
    graph_reader(model m, std::filesystem::path file);
    // It points into its own model: not copied, not moved.
    graph_reader(const graph_reader&) = delete;
    graph_reader& operator=(const graph_reader&) = delete;

    /// Starts layer `position` (1-based) called `name`: errors from here on name it.
    void begin_layer(std::size_t position, std::string_view name);
    /// The next node that carries parameters; its operator must be one of `op_types`.
    const node& next_parameter_node(std::initializer_list<std::string_view> op_types);
    /// Whether `tensor_name` is a float initializer or `Constant` (a parameter, not data).
    [[nodiscard]] bool is_parameter(const std::string& tensor_name) const;
    /// Whether input `index` of `n` is given.
    [[nodiscard]] static bool has_input(const node& n, std::size_t index) noexcept {
        return index < n.inputs.size() && !n.inputs[index].empty();
    }
    /// The float tensor (initializer or `Constant`) at input `index` of `n`, checked to have
    /// the dimensions `expected`; `role` ("kernel") names it in errors.
    const tensor& parameter(const node& n, std::size_t index, std::string_view role,
                            std::initializer_list<std::int64_t> expected);
    /// Attributes of `n`, or `fallback` when absent; the wrong attribute type is an error.
    [[nodiscard]] std::int64_t int_attribute(const node& n, std::string_view name, std::int64_t fallback) const;
    [[nodiscard]] float float_attribute(const node& n, std::string_view name, float fallback) const;
    [[nodiscard]] std::vector<std::int64_t> ints_attribute(const node& n, std::string_view name,
                                                           std::vector<std::int64_t> fallback) const;
    [[nodiscard]] std::string string_attribute(const node& n, std::string_view name, std::string fallback) const;
    /// The only node reading `tensor_name` (null if none or several).
    [[nodiscard]] const node* sole_consumer(const std::string& tensor_name) const;
    /// Marks `n` as taken by the current layer (e.g. the `Add` of a `MatMul` + `Add`).
    void take(const node& n);

    /// `flatten` of `image`: the vector after it may be channels-first in the file.
    void flattened(std::optional<shape> image) noexcept { flattened_ = image; }
    /// For a node reading a flattened vector: the image whose channels-first (C, H, W) order
    /// the file's features follow, or nothing when they already follow staticnet's order.
    [[nodiscard]] std::optional<shape> channels_first_features(const node& n) const;

    /// Throws `staticnet::error`: "ONNX file '<file>', layer <i> (<name>): <problem>".
    [[noreturn]] void fail(std::string_view problem) const;
    /// Names a node in messages: "'Conv' node 'conv1' (#3)".
    [[nodiscard]] std::string describe(const node& n) const;
    /// After the last layer: fails if the file has parameter nodes left.
    void finish();

private:
    [[nodiscard]] bool carries_parameters(const node& n) const;
    [[nodiscard]] const node* producer(const std::string& tensor_name) const;

    model model_;
    std::filesystem::path file_;
    std::string layer_;
    std::unordered_map<std::string, const tensor*> constants_;
    std::unordered_map<std::string, std::size_t> producers_;
    std::vector<bool> taken_;
    std::size_t next_ = 0;
    std::optional<shape> flattened_;
};

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

/// A layer that `save_onnx` and `load_onnx_weights` can handle.
template <typename Layer>
concept mapped_layer = requires(graph_writer& g, graph_reader& r, const std::string& x, std::span<const float> c,
                                std::span<float> m) {
    { layer_mapping<Layer>::export_layer(g, x, c, c) } -> std::convertible_to<std::string>;
    layer_mapping<Layer>::import_layer(r, m, m);
};

}  // namespace onnx

// ------------------------------------------------------------------ implementation

namespace onnx {

inline void graph_writer::begin_layer(std::size_t position, std::string_view name) {
    prefix_ = "layer" + std::to_string(position) + "_" + std::string(name) + "/";
}

inline std::string graph_writer::unique(std::string name) {
    const std::size_t seen = used_[name]++;
    if (seen != 0) name += "_" + std::to_string(seen + 1);
    return name;
}

inline std::string graph_writer::add_node(std::string_view op_type, std::vector<std::string> inputs,
                                          std::vector<attribute> attributes) {
    node n;
    n.name = unique(prefix_ + std::string(op_type));
    n.op_type = std::string(op_type);
    n.inputs = std::move(inputs);
    n.outputs = {n.name};
    n.attributes = std::move(attributes);
    model_.nodes.push_back(std::move(n));
    return model_.nodes.back().outputs[0];
}

inline std::string graph_writer::add_initializer(std::string_view role, std::vector<std::int64_t> dims,
                                                 std::vector<float> values) {
    tensor t;
    t.name = unique(prefix_ + std::string(role));
    t.dims = std::move(dims);
    t.floats = std::move(values);
    model_.initializers.push_back(std::move(t));
    return model_.initializers.back().name;
}

inline graph_reader::graph_reader(model m, std::filesystem::path file) : model_(std::move(m)), file_(std::move(file)) {
    for (const auto& t : model_.initializers) constants_[t.name] = &t;
    for (std::size_t i = 0; i < model_.nodes.size(); ++i) {
        const node& n = model_.nodes[i];
        for (const auto& out : n.outputs) producers_.emplace(out, i);
        if (n.op_type == "Constant" && !n.outputs.empty())
            if (const attribute* value = n.find("value"); value != nullptr && value->t) constants_[n.outputs[0]] = &*value->t;
        // PyTorch stores equal tensors once and names the copies with Identity nodes (a fresh
        // batch norm's running variance is its weight).
        if (n.op_type == "Identity" && n.inputs.size() == 1 && n.outputs.size() == 1)
            if (const auto it = constants_.find(n.inputs[0]); it != constants_.end()) constants_[n.outputs[0]] = it->second;
    }
    taken_.assign(model_.nodes.size(), false);
}

inline void graph_reader::begin_layer(std::size_t position, std::string_view name) {
    layer_ = "layer " + std::to_string(position) + " (" + std::string(name) + ")";
}

inline void graph_reader::fail(std::string_view problem) const {
    std::string where = "ONNX file '" + file_.string() + "'";
    if (!layer_.empty()) where += ", " + layer_;
    throw error(where + ": " + std::string(problem));
}

inline std::string graph_reader::describe(const node& n) const {
    const auto index = static_cast<std::size_t>(&n - model_.nodes.data());
    return "'" + n.op_type + "' node '" + n.name + "' (#" + std::to_string(index + 1) + ")";
}

inline bool graph_reader::carries_parameters(const node& n) const {
    if (n.op_type == "Constant" || n.op_type == "Identity") return false;
    return std::any_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& in) { return is_parameter(in); });
}

inline bool graph_reader::is_parameter(const std::string& tensor_name) const {
    const auto it = constants_.find(tensor_name);
    return it != constants_.end() && it->second->data_type == float_type;
}

inline const node& graph_reader::next_parameter_node(std::initializer_list<std::string_view> op_types) {
    std::string wanted;
    for (const auto op : op_types) wanted += (wanted.empty() ? "'" : " or '") + std::string(op) + "'";
    while (next_ < model_.nodes.size() && (taken_[next_] || !carries_parameters(model_.nodes[next_]))) ++next_;
    if (next_ == model_.nodes.size())
        fail("expects a " + wanted + " node with parameters, but the file has no more nodes with parameters "
             "(it describes a network with fewer layers)");
    const node& n = model_.nodes[next_];
    if (std::find(op_types.begin(), op_types.end(), std::string_view(n.op_type)) == op_types.end())
        fail("expects a " + wanted + " node, but the file's next node with parameters is " + describe(n));
    if (!n.domain.empty() && n.domain != "ai.onnx") fail(describe(n) + " is of domain '" + n.domain + "', not ONNX's");
    taken_[next_++] = true;
    return n;
}

inline const tensor& graph_reader::parameter(const node& n, std::size_t index, std::string_view role,
                                             std::initializer_list<std::int64_t> expected) {
    if (!has_input(n, index)) fail(describe(n) + " has no " + std::string(role) + " (input " + std::to_string(index) + ")");
    const auto it = constants_.find(n.inputs[index]);
    if (it == constants_.end())
        fail("the " + std::string(role) + " of " + describe(n) + ", '" + n.inputs[index] +
             "', is computed in the graph, not stored as an initializer");
    const tensor& t = *it->second;
    if (t.external) fail("the " + std::string(role) + " '" + t.name + "' is stored outside the file (external data)");
    if (t.data_type != float_type)
        fail("the " + std::string(role) + " '" + t.name + "' has data type " + std::to_string(t.data_type) +
             "; staticnet reads float (1)");
    if (!std::equal(t.dims.begin(), t.dims.end(), expected.begin(), expected.end()))
        fail("the " + std::string(role) + " '" + t.name + "' of " + describe(n) + " is " +
             staticnet::detail::shape_text(t.dims) + " in the file, this layer needs " +
             staticnet::detail::shape_text(expected));
    return t;
}

inline std::int64_t graph_reader::int_attribute(const node& n, std::string_view name, std::int64_t fallback) const {
    const attribute* a = n.find(name);
    if (a == nullptr) return fallback;
    if (a->type != attribute::int_kind) fail("attribute '" + std::string(name) + "' of " + describe(n) + " is not an integer");
    return a->i;
}

inline float graph_reader::float_attribute(const node& n, std::string_view name, float fallback) const {
    const attribute* a = n.find(name);
    if (a == nullptr) return fallback;
    if (a->type != attribute::float_kind) fail("attribute '" + std::string(name) + "' of " + describe(n) + " is not a float");
    return a->f;
}

inline std::vector<std::int64_t> graph_reader::ints_attribute(const node& n, std::string_view name,
                                                              std::vector<std::int64_t> fallback) const {
    const attribute* a = n.find(name);
    if (a == nullptr) return fallback;
    if (a->type != attribute::ints_kind)
        fail("attribute '" + std::string(name) + "' of " + describe(n) + " is not a list of integers");
    return a->ints;
}

inline std::string graph_reader::string_attribute(const node& n, std::string_view name, std::string fallback) const {
    const attribute* a = n.find(name);
    if (a == nullptr) return fallback;
    if (a->type != attribute::string_kind) fail("attribute '" + std::string(name) + "' of " + describe(n) + " is not a string");
    return a->s;
}

inline const node* graph_reader::sole_consumer(const std::string& tensor_name) const {
    const node* found = nullptr;
    for (const auto& n : model_.nodes)
        for (const auto& in : n.inputs)
            if (in == tensor_name) {
                if (found != nullptr && found != &n) return nullptr;
                found = &n;
            }
    return found;
}

inline void graph_reader::take(const node& n) { taken_[static_cast<std::size_t>(&n - model_.nodes.data())] = true; }

inline const node* graph_reader::producer(const std::string& tensor_name) const {
    const auto it = producers_.find(tensor_name);
    return it == producers_.end() ? nullptr : &model_.nodes[it->second];
}

inline std::optional<shape> graph_reader::channels_first_features(const node& n) const {
    if (!flattened_) return std::nullopt;
    // Up the data path: a Transpose to NHWC before the flatten means channels-last features
    // (save_onnx); reaching a layer with weights, or the graph input, first means the
    // flatten saw NCHW data (PyTorch).
    const node* at = &n;
    for (std::size_t steps = 0; steps <= model_.nodes.size(); ++steps) {
        if (at->inputs.empty()) return flattened_;
        const node* p = producer(at->inputs[0]);
        if (p == nullptr || p->op_type == "Conv" || p->op_type == "Gemm" || p->op_type == "MatMul") return flattened_;
        if (p->op_type == "Transpose") {
            const attribute* perm = p->find("perm");
            const bool to_nhwc = perm != nullptr && perm->ints == std::vector<std::int64_t>{0, 2, 3, 1};
            return to_nhwc ? std::nullopt : flattened_;
        }
        at = p;
    }
    return flattened_;
}

inline void graph_reader::finish() {
    layer_.clear();
    for (std::size_t i = 0; i < model_.nodes.size(); ++i)
        if (!taken_[i] && carries_parameters(model_.nodes[i]))
            fail("the network's layers are all filled, but " + describe(model_.nodes[i]) +
                 " has parameters left (the file describes a network with more layers)");
}

// -------------------------------------------------------------- activations

template <>
struct activation_mapping<identity> {
    static std::string export_activation(graph_writer&, const std::string& x) { return x; }
};
template <>
struct activation_mapping<relu> {
    static std::string export_activation(graph_writer& g, const std::string& x) { return g.add_node("Relu", {x}); }
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

}  // namespace onnx

namespace detail {

/// [K, K, C, F] (Keras, staticnet) to [F, C, K, K] (ONNX's OIHW).
inline std::vector<float> kernel_to_oihw(std::span<const float> kernel, std::size_t k, std::size_t c, std::size_t f) {
    std::vector<float> out(kernel.size());
    for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
            for (std::size_t ci = 0; ci < c; ++ci)
                for (std::size_t fi = 0; fi < f; ++fi)
                    out[((fi * c + ci) * k + ky) * k + kx] = kernel[((ky * k + kx) * c + ci) * f + fi];
    return out;
}

inline void kernel_from_oihw(std::span<const float> oihw, std::size_t k, std::size_t c, std::size_t f,
                             std::span<float> kernel) {
    for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
            for (std::size_t ci = 0; ci < c; ++ci)
                for (std::size_t fi = 0; fi < f; ++fi)
                    kernel[((ky * k + kx) * c + ci) * f + fi] = oihw[((fi * c + ci) * k + ky) * k + kx];
}

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

template <typename Net, std::size_t I>
std::string export_layer(onnx::graph_writer& g, const Net& net, const std::string& x) {
    using L = typename Net::template layer_type<I>;
    static_assert(onnx::mapped_layer<L>, "staticnet: this layer has no ONNX mapping: specialize "
                                         "staticnet::onnx::layer_mapping for it (see io/onnx.hpp)");
    g.begin_layer(I + 1, L::name);
    return onnx::layer_mapping<L>::export_layer(g, x, net.parameters().subspan(Net::parameter_offsets[I], L::parameter_count),
                                                net.state().subspan(Net::state_offsets[I], L::state_count));
}

template <typename Net, std::size_t I>
void import_layer(onnx::graph_reader& r, std::span<float> parameters, std::span<float> state) {
    using L = typename Net::template layer_type<I>;
    static_assert(onnx::mapped_layer<L>, "staticnet: this layer has no ONNX mapping: specialize "
                                         "staticnet::onnx::layer_mapping for it (see io/onnx.hpp)");
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

// ------------------------------------------------------------------ the built-in layers
//
// One mapping per bound layer type. A new layer adds a specialization here, or in its own
// header: average pooling one like max_pool2d's (`AveragePool`, `GlobalAveragePool`), a
// convolution without bias one line deriving from `conv2d_mapping`, a residual block one
// that calls its inner layers' mappings and adds an `Add`.

namespace onnx {

/// A convolution layer `L` (`conv2d`, or one like it) as `Conv` with an OIHW kernel, a bias
/// if `L` has one (parameters beyond the kernel), then `L`'s activation. It reads only `L`'s
/// public members (`geometry`, `kernel_count`, `activation_type`...), so a convolution with
/// other template parameters maps with one line: `struct layer_mapping<my_conv<...>> :
/// conv2d_mapping<my_conv<...>> {};`.
template <typename L>
struct conv2d_mapping {
    static constexpr auto geometry = L::geometry;
    static constexpr std::size_t filters = L::output_shape.channels();
    static constexpr bool has_bias = L::parameter_count > L::kernel_count;
    static constexpr auto k = static_cast<std::int64_t>(geometry.kernel), s = static_cast<std::int64_t>(geometry.stride);
    static constexpr auto c = static_cast<std::int64_t>(geometry.channels), f = static_cast<std::int64_t>(filters);

    /// ONNX's pads: top, left, bottom, right. "Same" puts the odd pixel at the end, as TensorFlow.
    static std::vector<std::int64_t> pads() {
        auto end = [](std::size_t in, std::size_t out, std::size_t before) -> std::int64_t {
            const std::size_t covered = (out - 1) * geometry.stride + geometry.kernel;
            return covered > in + before ? static_cast<std::int64_t>(covered - in - before) : 0;
        };
        return {static_cast<std::int64_t>(geometry.pad_top), static_cast<std::int64_t>(geometry.pad_left),
                end(geometry.height, geometry.out_height, geometry.pad_top),
                end(geometry.width, geometry.out_width, geometry.pad_left)};
    }

    /// The explicit pads that ONNX's `auto_pad` stands for on this input, or nothing when its
    /// output size differs from this layer's.
    static std::optional<std::vector<std::int64_t>> auto_pads(std::string_view mode) {
        std::vector<std::int64_t> before, after;
        const std::array<std::pair<std::size_t, std::size_t>, 2> sizes{
            {{geometry.height, geometry.out_height}, {geometry.width, geometry.out_width}}};
        for (const auto& [in, out] : sizes) {
            const std::size_t stride = geometry.stride, kernel = geometry.kernel;
            if (mode == "VALID") {
                if (in < kernel || (in - kernel) / stride + 1 != out) return std::nullopt;
                before.push_back(0);
                after.push_back(0);
                continue;
            }
            if ((in + stride - 1) / stride != out) return std::nullopt;  // SAME_UPPER, SAME_LOWER
            const std::size_t covered = (out - 1) * stride + kernel, total = covered > in ? covered - in : 0;
            const std::size_t small = total / 2, large = total - small;
            before.push_back(static_cast<std::int64_t>(mode == "SAME_LOWER" ? large : small));
            after.push_back(static_cast<std::int64_t>(mode == "SAME_LOWER" ? small : large));
        }
        return std::vector<std::int64_t>{before[0], before[1], after[0], after[1]};
    }

    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float> parameters,
                                    std::span<const float>) {
        std::vector<std::string> inputs{x, g.add_initializer("kernel", {f, c, k, k},
                                                             staticnet::detail::kernel_to_oihw(
                                                                 parameters.first(L::kernel_count), geometry.kernel,
                                                                 geometry.channels, filters))};
        if constexpr (has_bias)
            inputs.push_back(g.add_initializer("bias", {f}, {parameters.begin() + L::kernel_count, parameters.end()}));
        const auto y = g.add_node("Conv", std::move(inputs),
                                  {attribute::integers("kernel_shape", {k, k}), attribute::integers("strides", {s, s}),
                                   attribute::integers("pads", pads()), attribute::integers("dilations", {1, 1}),
                                   attribute::integer("group", 1)});
        return activation_mapping<typename L::activation_type>::export_activation(g, y);
    }

    static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float>) {
        const node& n = r.next_parameter_node({"Conv"});
        const tensor& kernel = r.parameter(n, 1, "kernel", {f, c, k, k});
        check_ints(r, n, "strides", r.ints_attribute(n, "strides", {1, 1}), {s, s});
        check_ints(r, n, "dilations", r.ints_attribute(n, "dilations", {1, 1}), {1, 1});
        if (r.int_attribute(n, "group", 1) != 1) r.fail(r.describe(n) + " is a grouped convolution; " + std::string(L::name) + " is not");
        if (const attribute* shape = n.find("kernel_shape")) check_ints(r, n, "kernel_shape", shape->ints, {k, k});
        const std::string auto_pad = r.string_attribute(n, "auto_pad", "NOTSET");
        if (auto_pad == "NOTSET") {
            check_ints(r, n, "pads", r.ints_attribute(n, "pads", {0, 0, 0, 0}), pads());
        } else {
            const auto same = auto_pads(auto_pad);
            if (!same || *same != pads())
                r.fail(r.describe(n) + " has auto_pad '" + auto_pad + "', which does not pad as this layer does (pads " +
                       staticnet::detail::shape_text(pads()) + ")");
        }
        staticnet::detail::kernel_from_oihw(kernel.floats, geometry.kernel, geometry.channels, filters,
                                            parameters.first(L::kernel_count));
        if constexpr (has_bias) {
            auto bias = parameters.subspan(L::kernel_count);
            if (graph_reader::has_input(n, 2)) std::ranges::copy(r.parameter(n, 2, "bias", {f}).floats, bias.begin());
            else std::ranges::fill(bias, 0.0f);
        } else if (graph_reader::has_input(n, 2)) {
            r.fail(r.describe(n) + " adds a bias, this layer has none");
        }
        r.flattened(std::nullopt);
    }

    static void check_ints(graph_reader& r, const node& n, std::string_view what, const std::vector<std::int64_t>& found,
                           const std::vector<std::int64_t>& expected) {
        if (found != expected)
            r.fail(r.describe(n) + " has " + std::string(what) + " " + staticnet::detail::shape_text(found) +
                   ", this layer needs " + staticnet::detail::shape_text(expected) + " (kernel " +
                   std::to_string(geometry.kernel) + ", stride " + std::to_string(geometry.stride) + ", input " +
                   to_string(L::input_shape) + ")");
    }
};

/// conv2d.
template <std::size_t Filters, std::size_t Kernel, typename Activation, std::size_t Stride, padding Padding,
          bias Bias, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, In, Position>>
    : conv2d_mapping<staticnet::detail::conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, In, Position>> {};

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

/// max_pool2d: `MaxPool`, no padding.
template <std::size_t Pool, std::size_t Stride, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::max_pool2d_layer<Pool, Stride, In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        const auto p = static_cast<std::int64_t>(Pool), s = static_cast<std::int64_t>(Stride);
        return g.add_node("MaxPool", {x}, {attribute::integers("kernel_shape", {p, p}), attribute::integers("strides", {s, s}),
                                           attribute::integers("pads", {0, 0, 0, 0})});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

/// average_pool2d: `AveragePool`, no padding.
template <std::size_t Pool, std::size_t Stride, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::average_pool2d_layer<Pool, Stride, In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        const auto p = static_cast<std::int64_t>(Pool), s = static_cast<std::int64_t>(Stride);
        return g.add_node("AveragePool", {x}, {attribute::integers("kernel_shape", {p, p}),
                                               attribute::integers("strides", {s, s}),
                                               attribute::integers("pads", {0, 0, 0, 0})});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

/// global_average_pool2d: `GlobalAveragePool` ([N, C, 1, 1]), then `Flatten` to staticnet's
/// [N, C] (one pixel: the channel order is the same either way).
template <shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::global_average_pool2d_layer<In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        return g.add_node("Flatten", {g.add_node("GlobalAveragePool", {x})}, {attribute::integer("axis", 1)});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

/// residual: the body's nodes from the block's input, the shortcut's (or the input itself),
/// then `Add`. Inner layers map as they would in a `sequential`, body first (the order of
/// their parameters in the block, and the order an import takes them in).
template <typename Shortcut, typename Body, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::residual_layer<Shortcut, Body, In, Position>> {
    using block = staticnet::detail::residual_layer<Shortcut, Body, In, Position>;
    static constexpr std::size_t body_count = std::tuple_size_v<typename block::body_layers>;
    static constexpr std::size_t shortcut_count = std::tuple_size_v<typename block::shortcut_layers>;
    template <std::size_t K>
    static auto inner_type() {
        if constexpr (K < body_count) return std::tuple_element_t<K, typename block::body_layers>{};
        else return std::tuple_element_t<K - body_count, typename block::shortcut_layers>{};
    }
    template <std::size_t K>
    using inner = decltype(inner_type<K>());

    template <std::size_t K, typename T>
    static std::span<T> parameters_of(std::span<T> parameters) {
        return parameters.subspan(block::parameter_offsets[K], inner<K>::parameter_count);
    }
    template <std::size_t K, typename T>
    static std::span<T> state_of(std::span<T> state) {
        return state.subspan(block::state_offsets[K], inner<K>::state_count);
    }

    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float> parameters,
                                    std::span<const float> state) {
        std::string body = x, shortcut = x;
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            ((body = layer_mapping<inner<K>>::export_layer(g, body, parameters_of<K>(parameters), state_of<K>(state))), ...);
        }(std::make_index_sequence<body_count>{});
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            ((shortcut = layer_mapping<inner<body_count + K>>::export_layer(
                  g, shortcut, parameters_of<body_count + K>(parameters), state_of<body_count + K>(state))),
             ...);
        }(std::make_index_sequence<shortcut_count>{});
        return g.add_node("Add", {body, shortcut});
    }
    static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float> state) {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (layer_mapping<inner<K>>::import_layer(r, parameters_of<K>(parameters), state_of<K>(state)), ...);
        }(std::make_index_sequence<body_count + shortcut_count>{});
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

/// dropout: the identity at inference.
template <template_float Rate, shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::dropout_layer<Rate, In, Position>> {
    static std::string export_layer(graph_writer& g, const std::string& x, std::span<const float>, std::span<const float>) {
        return g.add_node("Identity", {x});
    }
    static void import_layer(graph_reader&, std::span<float>, std::span<float>) {}
};

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
