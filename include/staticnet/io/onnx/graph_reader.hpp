#pragma once
/// @file
/// `onnx::graph_reader`: walks a parsed ONNX file along its data path during an import;
/// each layer's `layer_mapping` takes its nodes from it and checks them.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/shape.hpp"
#include "messages.hpp"

namespace staticnet::onnx {

/// How a block's paths meet: summed (`Add` or `Sum`, a residual block) or concatenated
/// (`Concat`, a concat block).
enum class join_kind { sum, concat };

/// Walks a parsed file during an import, along the data path from the graph's input; a
/// `layer_mapping` takes its layer's nodes from it.
///
/// The walk follows the graph, not the order of the file's nodes: from the tensor the last
/// layer produced (`position()`), through the one node that reads it, past nodes without
/// parameters (activations, pooling, reshapes, `Identity`, `Dropout`; a zero `Pad` is kept
/// for the convolution after it), to the next node with parameters. Where the path forks (a
/// residual or concat block), the block's mapping chooses each path with `enter` and finds
/// where they meet with `walk_to_join`, trying the other assignment of its paths after a mismatch
/// (`save`, `restore`), so a block exported shortcut first loads as one exported body first.
class graph_reader {
public:
    graph_reader(model m, std::filesystem::path file);
    // It points into its own model: not copied, not moved.
    graph_reader(const graph_reader&) = delete;
    graph_reader& operator=(const graph_reader&) = delete;

    /// Starts layer `position` (1-based) called `name`: errors from here on name it.
    void begin_layer(std::size_t position, std::string_view name);
    /// The next node with parameters on the path; its operator must be one of `op_types`.
    const node& next_parameter_node(std::initializer_list<std::string_view> op_types);
    /// The zero padding of `Pad` nodes right before the node the last `next_parameter_node`
    /// returned, as ONNX's pads [top, left, bottom, right] (all 0 without one): PyTorch's
    /// `ZeroPad2d` before an unpadded convolution. Only a convolution may take it; any other
    /// layer leaving it untaken is an error.
    [[nodiscard]] std::array<std::int64_t, 4> take_padding() noexcept;

    /// The tensor the next layer reads: the graph's input, then the output of the last node
    /// a layer took.
    [[nodiscard]] const std::string& position() const noexcept { return current_; }
    /// The nodes not yet taken that read `tensor_name` as data (`Shape` only reads its size).
    [[nodiscard]] std::vector<const node*> consumers(const std::string& tensor_name) const;
    /// Continues the walk with `n` (a consumer of `position()`): the first node of one path
    /// of a block.
    void enter(const node& n) noexcept { entry_ = &n; }
    /// Sets `n` aside while a block's path is read (no longer listed by `consumers`), and
    /// brings it back: the join of a block that reads the block's input itself (an identity
    /// shortcut or branch), while a nested block at the start of another path finds its own.
    void set_aside(const node& n) noexcept { taken_[index_of(n)] = true; }
    void bring_back(const node& n) noexcept { taken_[index_of(n)] = false; }
    /// Moves the walk back to `tensor_name` (a block's input, for its second path).
    void go_to(std::string tensor_name) { current_ = std::move(tensor_name); entry_ = nullptr; }
    /// Walks from `position()` past nodes without parameters (the activations and pooling
    /// before a block, which import nothing) to the first tensor read by more than one node:
    /// where a block's paths begin. Returns that tensor, the new `position()`.
    const std::string& walk_to_fork();
    /// Walks from `position()` past nodes without parameters to where paths meet (an `Add`
    /// or `Sum` of two data tensors, or a `Concat` of data tensors for `join_kind::concat`)
    /// and returns it, not taken; fails on a node with parameters first (the file's path has
    /// more layers than the declared one).
    const node& walk_to_join(join_kind kind = join_kind::sum);
    /// Takes the join of a block: the walk goes on from its output.
    void take_join(const node& join);
    /// Whether `n` joins paths: an `Add` or `Sum` of tensors none of which is a parameter
    /// (`join_kind::concat`: a `Concat` of such tensors).
    [[nodiscard]] bool is_join(const node& n, join_kind kind = join_kind::sum) const;
    /// Where `tensor_name` is read by several nodes that compute an elementwise function of it
    /// alone, an activation written as several operators (SiLU's x * Sigmoid(x), GELU's
    /// x * (1 + Erf(x / sqrt 2)) / 2): those nodes, in the order they may run. That is, the
    /// nodes without parameters (scalar constants aside) whose data inputs are `tensor_name` or
    /// each other's outputs, with exactly one output read by any other node. Empty where the
    /// fork is not one (a residual block's paths reach a node with parameters first).
    [[nodiscard]] std::vector<const node*> elementwise_region(const std::string& tensor_name) const;
    /// The walk's state, to try one assignment of a block's paths and go back after a mismatch.
    struct mark {
        std::vector<bool> taken;
        std::string current;
        const node* entry;
        std::optional<shape> flattened;
        std::array<std::int64_t, 4> padding;
    };
    [[nodiscard]] mark save() const { return {taken_, current_, entry_, flattened_, padding_}; }
    void restore(const mark& m);
    /// Whether `tensor_name` is a float initializer or `Constant` (a parameter, not data).
    [[nodiscard]] bool is_parameter(const std::string& tensor_name) const;
    /// The initializer or `Constant` (through `Identity` copies) called `tensor_name`, or null.
    [[nodiscard]] const tensor* constant(const std::string& tensor_name) const {
        const auto it = constants_.find(tensor_name);
        return it == constants_.end() ? nullptr : it->second;
    }
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
    /// Takes `n` for the current layer (e.g. the `Add` of a `MatMul` + `Add`): the walk goes
    /// on from its output.
    void take(const node& n);

    /// `flatten` of `image`: the vector after it may be channels-first in the file.
    void flattened(std::optional<shape> image) noexcept { flattened_ = image; }
    /// For a node reading a flattened vector: the image whose channels-first (C, H, W) order
    /// the file's features follow, or nothing when they already follow staticnet's order.
    [[nodiscard]] std::optional<shape> channels_first_features(const node& n) const;

    /// An integer tensor computed from constants only.
    struct int_tensor {
        std::vector<std::int64_t> dims, values;
    };
    /// The value of `tensor_name` if the graph computes it from constants alone, with the
    /// few operators exporters build small integer tensors with (PyTorch's pads of a `Pad`:
    /// `ConstantOfShape`, `Concat`, `Reshape`, `Slice`, `Transpose`, `Cast`); nothing otherwise.
    [[nodiscard]] std::optional<int_tensor> constant_ints(const std::string& tensor_name, std::size_t depth = 0) const;
    /// Throws `staticnet::error`: "ONNX file '<file>', layer <i> (<name>): <problem>".
    [[noreturn]] void fail(std::string_view problem) const;
    /// Names a node in messages: "'Conv' node 'conv1' (#3)".
    [[nodiscard]] std::string describe(const node& n) const;
    /// After the last layer: fails if the file has parameter nodes left.
    void finish();

private:
    [[nodiscard]] bool carries_parameters(const node& n) const;
    [[nodiscard]] const node* producer(const std::string& tensor_name) const;
    [[nodiscard]] std::size_t index_of(const node& n) const noexcept {
        return static_cast<std::size_t>(&n - model_.nodes.data());
    }
    /// The node the walk reaches next from `position()` (the one `enter` named, or the only
    /// consumer); `wanted` says what the layer looks for, in errors.
    const node& step(std::string_view wanted);
    /// Records the zero padding of a `Pad` node for the convolution after it.
    void add_padding(const node& pad);
    /// Takes `n`, a node without parameters on the path (a `Pad`'s zeros are kept for the
    /// node after it, which must take them).
    void pass(const node& n);
    /// Where `position()` is read by an elementwise region, takes it and goes on from its
    /// output; false otherwise.
    bool pass_elementwise_region();

    model model_;
    std::filesystem::path file_;
    std::string layer_;
    std::unordered_map<std::string, const tensor*> constants_;
    std::unordered_map<std::string, std::size_t> producers_;
    std::vector<bool> taken_;
    std::string current_;
    const node* entry_ = nullptr;
    std::optional<shape> flattened_;
    std::array<std::int64_t, 4> padding_{};  // of Pad nodes not yet taken by a convolution
};

// ------------------------------------------------------------------ implementation

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
    for (const auto& in : model_.inputs)  // older files also list their initializers as inputs
        if (!constants_.contains(in.name)) {
            current_ = in.name;
            break;
        }
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
    // Clip's bounds (relu6) are constants, not trainable parameters; so are the scalars of an
    // activation written as several operators (GELU's 1 / sqrt 2).
    if (n.op_type == "Constant" || n.op_type == "Identity" || n.op_type == "Clip") return false;
    return std::any_of(n.inputs.begin(), n.inputs.end(),
                       [&](const std::string& in) { return is_parameter(in) && !constant(in)->dims.empty(); });
}

inline std::vector<const node*> graph_reader::elementwise_region(const std::string& tensor_name) const {
    std::vector<const node*> region;
    std::vector<std::string> available{tensor_name};  // the input and the region's outputs
    auto is_available = [&](const std::string& t) { return std::ranges::find(available, t) != available.end(); };
    auto in_region = [&](const node* n) { return std::ranges::find(region, n) != region.end(); };
    for (std::size_t steps = 0; steps < 64; ++steps) {
        std::vector<const node*> waiting;  // read an available tensor, not in the region
        std::size_t open = 0;              // available tensors read outside the region
        std::string exit;                  // the last of them
        for (const auto& t : available) {
            bool read_outside = false;
            for (const node* n : consumers(t))
                if (!in_region(n)) {
                    read_outside = true;
                    if (std::ranges::find(waiting, n) == waiting.end()) waiting.push_back(n);
                }
            open += read_outside;
            if (read_outside) exit = t;
        }
        if (open == 1 && !region.empty() && std::ranges::all_of(consumers(tensor_name), in_region)) {
            // A scaling of the result by a scalar belongs to it (GELU's final * 0.5).
            for (const node* after = sole_consumer(exit); after != nullptr && region.size() < 64;
                 after = sole_consumer(exit)) {
                const bool scales = (after->op_type == "Mul" || after->op_type == "Div") && after->inputs.size() == 2 &&
                                    after->outputs.size() == 1 && std::ranges::count(after->inputs, exit) == 1 &&
                                    std::ranges::all_of(after->inputs, [&](const std::string& in) {
                                        return in == exit || (is_parameter(in) && constant(in)->dims.empty());
                                    });
                if (!scales || in_region(after)) break;
                region.push_back(after);
                exit = after->outputs[0];
            }
            return region;
        }
        const auto ready = std::ranges::find_if(waiting, [&](const node* n) {
            return std::ranges::all_of(n->inputs, [&](const std::string& in) { return in.empty() || is_parameter(in) || is_available(in); });
        });
        if (ready == waiting.end()) return {};
        const node& n = **ready;
        if (carries_parameters(n) || n.op_type == "Pad" || n.outputs.size() != 1) return {};
        region.push_back(&n);
        available.push_back(n.outputs[0]);
    }
    return {};
}

inline bool graph_reader::is_parameter(const std::string& tensor_name) const {
    const auto it = constants_.find(tensor_name);
    return it != constants_.end() && it->second->data_type == float_type;
}

inline std::vector<const node*> graph_reader::consumers(const std::string& tensor_name) const {
    std::vector<const node*> found;
    for (const auto& n : model_.nodes)
        if (!taken_[index_of(n)] && n.op_type != "Shape" && std::ranges::find(n.inputs, tensor_name) != n.inputs.end())
            found.push_back(&n);
    return found;
}

inline bool graph_reader::is_join(const node& n, join_kind kind) const {
    if (kind == join_kind::sum ? n.op_type != "Add" && n.op_type != "Sum" : n.op_type != "Concat") return false;
    const auto data = std::ranges::count_if(n.inputs, [&](const std::string& in) { return !in.empty() && !is_parameter(in); });
    // A concat block of one branch is a Concat of one tensor.
    return data >= (kind == join_kind::sum ? 2 : 1) && data == static_cast<std::ptrdiff_t>(n.inputs.size());
}

inline bool graph_reader::pass_elementwise_region() {
    const auto region = elementwise_region(current_);
    if (region.empty()) return false;
    if (padding_ != std::array<std::int64_t, 4>{}) fail("a 'Pad' node pads the input of " + describe(*region.front()));
    for (const node* n : region) taken_[index_of(*n)] = true;
    for (const node* n : region)
        if (!consumers(n->outputs[0]).empty()) current_ = n->outputs[0];
    return true;
}

inline const node& graph_reader::step(std::string_view wanted) {
    if (entry_ != nullptr) return *std::exchange(entry_, nullptr);
    while (consumers(current_).size() > 1 && pass_elementwise_region()) {
    }
    const auto next = consumers(current_);
    if (next.empty())
        fail("expects " + std::string(wanted) + ", but the file has no more nodes with parameters: nothing reads '" +
             current_ + "' (the file describes a network with fewer layers)");
    if (next.size() > 1)
        fail("expects " + std::string(wanted) + ", but '" + current_ + "' is read by " + describe(*next[0]) + " and " +
             describe(*next[1]) + ": the file's graph branches where the declared network does not");
    return *next[0];
}

inline void graph_reader::add_padding(const node& pad) {
    const std::string mode = string_attribute(pad, "mode", "constant");
    if (mode != "constant") fail(describe(pad) + " pads in mode '" + mode + "'; staticnet pads with zeros only");
    if (has_input(pad, 2)) {
        const auto it = constants_.find(pad.inputs[2]);
        if (it == constants_.end() || it->second->element_count() != 1 ||
            (it->second->data_type == float_type && !it->second->floats.empty() && it->second->floats[0] != 0.0f))
            fail(describe(pad) + " pads with a value other than 0; staticnet pads with zeros only");
    }
    std::vector<std::int64_t> pads = ints_attribute(pad, "pads", {});  // before opset 11
    if (has_input(pad, 1)) {
        const auto folded = constant_ints(pad.inputs[1]);
        if (!folded) fail("the pads of " + describe(pad) + " are computed from the data, not from constants");
        pads = folded->values;
    }
    // [N, C, H, W begins, then their ends]: only H and W may be padded, never by a negative amount.
    if (pads.size() != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 ||
        std::ranges::any_of(pads, [](std::int64_t p) { return p < 0; }))
        fail(describe(pad) + " has pads " + staticnet::detail::shape_text(pads) +
             "; staticnet takes zero padding of the height and width of an NCHW image only");
    padding_[0] += pads[2];
    padding_[1] += pads[3];
    padding_[2] += pads[6];
    padding_[3] += pads[7];
}

inline const node& graph_reader::next_parameter_node(std::initializer_list<std::string_view> op_types) {
    std::string wanted;
    for (const auto op : op_types) wanted += (wanted.empty() ? "a '" : " or '") + std::string(op) + "'";
    wanted += " node";
    for (std::size_t steps = 0; steps <= model_.nodes.size(); ++steps) {
        const node& n = step(wanted);
        if (is_join(n))
            fail("expects " + wanted + ", but the path reaches " + describe(n) +
                 " first, where a residual block's paths meet (the file's block has fewer layers than the declared one)");
        if (is_join(n, join_kind::concat))
            fail("expects " + wanted + ", but the path reaches " + describe(n) +
                 " first, where a concat block's branches meet (the file's branch has fewer layers than the declared one)");
        if (n.op_type == "Pad" || !carries_parameters(n)) {
            pass(n);
            continue;
        }
        if (std::find(op_types.begin(), op_types.end(), std::string_view(n.op_type)) == op_types.end()) {
            std::string hint;
            if (n.op_type == "Conv" && std::find(op_types.begin(), op_types.end(), "BatchNormalization") != op_types.end())
                hint = " (if the file was exported in eval mode, torch.onnx.export folded the batch_norm into the "
                       "convolution before it: export with training=torch.onnx.TrainingMode.PRESERVE, or declare that "
                       "convolution with a bias and no batch_norm)";
            fail("expects " + wanted + ", but the next node with parameters on the path is " + describe(n) + hint);
        }
        if (!n.domain.empty() && n.domain != "ai.onnx") fail(describe(n) + " is of domain '" + n.domain + "', not ONNX's");
        if (padding_ != std::array<std::int64_t, 4>{} && n.op_type != "Conv")
            fail("a 'Pad' node pads the input of " + describe(n) + "; staticnet takes zero padding only into a convolution");
        take(n);
        return n;
    }
    fail("expects " + wanted + ", but the file's graph has a cycle");
}

inline std::array<std::int64_t, 4> graph_reader::take_padding() noexcept { return std::exchange(padding_, {}); }

inline void graph_reader::pass(const node& n) {
    if (n.op_type == "Pad") {
        add_padding(n);
    } else if (padding_ != std::array<std::int64_t, 4>{}) {
        // Zeros before an unpadded average are average pooling's padding counted in the mean
        // (save_onnx writes padded average pooling so); anywhere else they change the result.
        if (n.op_type != "AveragePool")
            fail("a 'Pad' node pads the input of " + describe(n) +
                 "; staticnet takes zero padding only into the convolution or average pooling right after it "
                 "(declare the padding in the layer instead)");
        padding_ = {};
    }
    take(n);
}

inline const node& graph_reader::walk_to_join(join_kind kind) {
    const std::string_view wanted =
        kind == join_kind::sum ? "the 'Add' that ends the residual block" : "the 'Concat' that ends the concat block";
    for (std::size_t steps = 0; steps <= model_.nodes.size(); ++steps) {
        const node& n = step(wanted);
        if (is_join(n, kind)) {
            if (padding_ != std::array<std::int64_t, 4>{}) fail("a 'Pad' node pads the input of " + describe(n));
            return n;
        }
        if ((n.op_type != "Pad" && carries_parameters(n)) || is_join(n, kind == join_kind::sum ? join_kind::concat : join_kind::sum))
            fail("the block's path is complete, but it goes on to " + describe(n) + " before its '" +
                 (kind == join_kind::sum ? "Add" : "Concat") + "' (the file's block has more layers than the declared one)");
        pass(n);
    }
    fail("expects " + std::string(wanted) + ", but the file's graph has a cycle");
}

inline const std::string& graph_reader::walk_to_fork() {
    for (std::size_t steps = 0; steps <= model_.nodes.size(); ++steps) {
        const auto next = consumers(current_);
        if (next.size() > 1 && pass_elementwise_region()) continue;
        if (next.size() != 1 || is_join(*next[0]) || is_join(*next[0], join_kind::concat) ||
            (next[0]->op_type != "Pad" && carries_parameters(*next[0])))
            return current_;
        pass(*next[0]);
    }
    fail("expects a residual block, but the file's graph has a cycle");
}

inline void graph_reader::take_join(const node& join) {
    taken_[index_of(join)] = true;
    current_ = join.outputs.empty() ? std::string{} : join.outputs[0];
}

inline void graph_reader::restore(const mark& m) {
    taken_ = m.taken;
    current_ = m.current;
    entry_ = m.entry;
    flattened_ = m.flattened;
    padding_ = m.padding;
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

inline void graph_reader::take(const node& n) {
    taken_[index_of(n)] = true;
    if (!n.outputs.empty()) current_ = n.outputs[0];
}

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
    if (padding_ != std::array<std::int64_t, 4>{}) fail("a 'Pad' node after the last layer pads nothing staticnet has");
    for (std::size_t i = 0; i < model_.nodes.size(); ++i)
        if (!taken_[i] && carries_parameters(model_.nodes[i]))
            fail("the network's layers are all filled, but " + describe(model_.nodes[i]) +
                 " has parameters left (the file describes a network with more layers)");
}

}  // namespace staticnet::onnx

#include "constant_folding.hpp"  // graph_reader::constant_ints
