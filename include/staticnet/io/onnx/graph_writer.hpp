#pragma once
/// @file
/// `onnx::graph_writer`: builds the graph of an export; each layer's `layer_mapping` adds its
/// nodes and initializers through it, named after the layer ("layer3_conv2d/Conv").

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "messages.hpp"

namespace staticnet::onnx {

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
    /// Adds an int64 initializer (a `Pad`'s pads, a shape) called after `role`; returns its name.
    std::string add_int_initializer(std::string_view role, std::vector<std::int64_t> dims, std::vector<std::int64_t> values);

    [[nodiscard]] model& result() noexcept { return model_; }

private:
    std::string unique(std::string name);
    /// Names `t` after `role` and adds it as an initializer; returns its name.
    std::string add_tensor(std::string_view role, tensor t);

    model model_;
    std::string prefix_;
    std::map<std::string, std::size_t, std::less<>> used_;
};

// ------------------------------------------------------------------ implementation

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
    t.dims = std::move(dims);
    t.floats = std::move(values);
    return add_tensor(role, std::move(t));
}

inline std::string graph_writer::add_int_initializer(std::string_view role, std::vector<std::int64_t> dims,
                                                     std::vector<std::int64_t> values) {
    tensor t;
    t.dims = std::move(dims);
    t.data_type = int64_type;
    t.ints = std::move(values);
    return add_tensor(role, std::move(t));
}

inline std::string graph_writer::add_tensor(std::string_view role, tensor t) {
    t.name = unique(prefix_ + std::string(role));
    model_.initializers.push_back(std::move(t));
    return model_.initializers.back().name;
}

}  // namespace staticnet::onnx
