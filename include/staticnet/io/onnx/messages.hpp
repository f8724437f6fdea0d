#pragma once
/// @file
/// The part of the ONNX file format (onnx.proto, IR version 7 and later) that staticnet
/// reads and writes, as plain structs: a `model` holds one graph of `node`s, its float
/// `tensor` initializers, and the declared inputs and outputs. `encode` turns a model into
/// the bytes of a `.onnx` file and `decode` reads them back, with no protobuf library
/// (`core/protobuf.hpp` does the wire format).
///
/// `decode` reads untrusted bytes: a malformed message, a tensor whose data does not match
/// its dimensions, or data stored outside the file throws `staticnet::error` naming the
/// byte offset or the tensor. Fields staticnet does not use (doc strings, subgraphs of
/// control-flow operators, training information) are skipped, so newer files still load.
///
/// These types are what a `layer_mapping` (io/onnx/graph.hpp) builds and inspects.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/protobuf.hpp"

namespace staticnet::onnx {

/// The element types of TensorProto.DataType that staticnet handles.
inline constexpr std::int32_t float_type = 1;
inline constexpr std::int32_t int64_type = 7;

/// A tensor: an initializer, or the value of a `Constant` node.
struct tensor {
    std::string name;
    std::vector<std::int64_t> dims;
    std::int32_t data_type = float_type;
    std::vector<float> floats;       ///< the values of a float tensor (row-major)
    std::vector<std::int64_t> ints;  ///< the values of an int64 tensor
    bool external = false;           ///< its data lives in another file (not supported)

    /// The product of the dimensions (1 for a scalar).
    [[nodiscard]] std::size_t element_count() const noexcept;
};

/// A node attribute; `type` is AttributeProto.AttributeType and says which value is set.
struct attribute {
    enum kind : std::int32_t { undefined = 0, float_kind = 1, int_kind = 2, string_kind = 3, tensor_kind = 4,
                               floats_kind = 6, ints_kind = 7 };
    std::string name;
    std::int32_t type = undefined;
    float f = 0.0f;
    std::int64_t i = 0;
    std::string s;
    std::vector<float> floats;
    std::vector<std::int64_t> ints;
    std::optional<tensor> t;

    [[nodiscard]] static attribute integer(std::string name, std::int64_t value);
    [[nodiscard]] static attribute integers(std::string name, std::vector<std::int64_t> values);
    [[nodiscard]] static attribute real(std::string name, float value);
};

/// One operator application.
struct node {
    std::string name;
    std::string op_type;
    std::string domain;  ///< empty: the default ONNX domain
    std::vector<std::string> inputs, outputs;
    std::vector<attribute> attributes;

    /// The attribute called `key`, or null.
    [[nodiscard]] const attribute* find(std::string_view key) const noexcept;
};

/// One dimension of a declared input or output: a size, or a symbolic name (the batch).
struct dimension {
    std::int64_t value = 0;
    std::string param;  ///< non-empty for a symbolic dimension
};

/// A declared graph input or output (a float tensor).
struct value_info {
    std::string name;
    std::int32_t elem_type = float_type;
    std::vector<dimension> dims;
};

/// An operator set the model uses.
struct opset {
    std::string domain;
    std::int64_t version = 0;
};

/// A model: one graph and what it was made by.
struct model {
    std::int64_t ir_version = 7;
    std::string producer_name, producer_version;
    std::vector<opset> opsets;
    std::string graph_name;
    std::vector<node> nodes;  ///< in topological order, as ONNX requires
    std::vector<tensor> initializers;
    std::vector<value_info> inputs, outputs;
};

/// The bytes of a `.onnx` file holding `m`.
[[nodiscard]] inline std::vector<std::uint8_t> encode(const model& m);

/// Reads the bytes of a `.onnx` file. Throws `staticnet::error` (a `detail::protobuf_error`
/// for a malformed message) naming the byte offset or the tensor at fault.
[[nodiscard]] inline model decode(std::span<const std::uint8_t> bytes);

// ------------------------------------------------------------------ implementation

inline std::size_t tensor::element_count() const noexcept {
    std::size_t n = 1;
    for (const std::int64_t d : dims) n *= static_cast<std::size_t>(d);  // decode bounds the product
    return n;
}

inline attribute attribute::integer(std::string name, std::int64_t value) {
    attribute a;
    a.name = std::move(name);
    a.type = int_kind;
    a.i = value;
    return a;
}

inline attribute attribute::integers(std::string name, std::vector<std::int64_t> values) {
    attribute a;
    a.name = std::move(name);
    a.type = ints_kind;
    a.ints = std::move(values);
    return a;
}

inline attribute attribute::real(std::string name, float value) {
    attribute a;
    a.name = std::move(name);
    a.type = float_kind;
    a.f = value;
    return a;
}

inline const attribute* node::find(std::string_view key) const noexcept {
    for (const auto& a : attributes)
        if (a.name == key) return &a;
    return nullptr;
}

namespace detail {

using staticnet::detail::protobuf_field;
using staticnet::detail::protobuf_reader;
using staticnet::detail::protobuf_writer;
using staticnet::detail::wire_type;

// Field numbers of onnx.proto.
namespace field {
inline constexpr std::uint32_t model_ir_version = 1, model_producer_name = 2, model_producer_version = 3,
                               model_graph = 7, model_opset_import = 8;
inline constexpr std::uint32_t opset_domain = 1, opset_version = 2;
inline constexpr std::uint32_t graph_node = 1, graph_name = 2, graph_initializer = 5, graph_input = 11,
                               graph_output = 12;
inline constexpr std::uint32_t node_input = 1, node_output = 2, node_name = 3, node_op_type = 4, node_attribute = 5,
                               node_domain = 7;
inline constexpr std::uint32_t attribute_name = 1, attribute_f = 2, attribute_i = 3, attribute_s = 4,
                               attribute_t = 5, attribute_floats = 7, attribute_ints = 8, attribute_type = 20;
inline constexpr std::uint32_t tensor_dims = 1, tensor_data_type = 2, tensor_float_data = 4, tensor_int64_data = 7,
                               tensor_name = 8, tensor_raw_data = 9, tensor_data_location = 14;
inline constexpr std::uint32_t value_info_name = 1, value_info_type = 2;
inline constexpr std::uint32_t type_tensor_type = 1, type_tensor_elem_type = 1, type_tensor_shape = 2;
inline constexpr std::uint32_t shape_dim = 1, dim_value = 1, dim_param = 2;
}  // namespace field

inline void encode_tensor(protobuf_writer& w, const tensor& t) {
    w.packed_varints(field::tensor_dims, t.dims);
    w.varint_field(field::tensor_data_type, t.data_type);
    w.string_field(field::tensor_name, t.name);
    if (t.external) {
        w.varint_field(field::tensor_data_location, 1);
        return;
    }
    // raw_data, little-endian, as PyTorch writes it.
    staticnet::detail::byte_writer raw;
    if (t.data_type == float_type) raw.put_floats(t.floats);
    else
        for (const std::int64_t v : t.ints) raw.put(v);
    w.bytes_field(field::tensor_raw_data, raw.bytes());
}

inline void encode_attribute(protobuf_writer& w, const attribute& a) {
    w.string_field(field::attribute_name, a.name);
    switch (a.type) {
    case attribute::float_kind: w.float_field(field::attribute_f, a.f); break;
    case attribute::int_kind: w.varint_field(field::attribute_i, a.i); break;
    case attribute::string_kind: w.string_field(field::attribute_s, a.s); break;
    case attribute::tensor_kind:
        if (a.t) {
            protobuf_writer t;
            encode_tensor(t, *a.t);
            w.message_field(field::attribute_t, t);
        }
        break;
    case attribute::floats_kind:
        for (const float v : a.floats) w.float_field(field::attribute_floats, v);
        break;
    case attribute::ints_kind:
        for (const std::int64_t v : a.ints) w.varint_field(field::attribute_ints, v);
        break;
    default: break;
    }
    w.varint_field(field::attribute_type, a.type);
}

inline void encode_value_info(protobuf_writer& w, const value_info& v) {
    protobuf_writer shape;
    for (const auto& d : v.dims) {
        protobuf_writer dim;
        if (d.param.empty()) dim.varint_field(field::dim_value, d.value);
        else dim.string_field(field::dim_param, d.param);
        shape.message_field(field::shape_dim, dim);
    }
    protobuf_writer tensor_type;
    tensor_type.varint_field(field::type_tensor_elem_type, v.elem_type);
    tensor_type.message_field(field::type_tensor_shape, shape);
    protobuf_writer type;
    type.message_field(field::type_tensor_type, tensor_type);
    w.string_field(field::value_info_name, v.name);
    w.message_field(field::value_info_type, type);
}

/// A tensor's dimensions must be non-negative and their product small enough to index.
inline void check_dims(const tensor& t, std::size_t offset) {
    std::size_t n = 1;
    for (const std::int64_t d : t.dims) {
        if (d < 0)
            throw error("tensor '" + t.name + "' (byte " + std::to_string(offset) + ") has a negative dimension " +
                        std::to_string(d));
        if (d != 0 && n > (std::size_t{1} << 48) / static_cast<std::size_t>(d))
            throw error("tensor '" + t.name + "' (byte " + std::to_string(offset) + ") has dimensions " +
                        staticnet::detail::shape_text(t.dims) + ": too many elements");
        n *= static_cast<std::size_t>(d);
    }
}

inline tensor decode_tensor(protobuf_reader r, std::size_t offset) {
    tensor t;
    t.data_type = 0;  // UNDEFINED unless the message says
    std::span<const std::uint8_t> raw;
    bool has_raw = false;
    protobuf_field f;
    while (r.next(f)) {
        switch (f.field) {
        case field::tensor_dims: protobuf_reader::append_varints(f, t.dims); break;
        case field::tensor_data_type: t.data_type = static_cast<std::int32_t>(f.number); break;
        case field::tensor_float_data: protobuf_reader::append_floats(f, t.floats); break;
        case field::tensor_int64_data: protobuf_reader::append_varints(f, t.ints); break;
        case field::tensor_name: t.name = std::string(f.as_string()); break;
        case field::tensor_raw_data:
            raw = f.bytes;
            has_raw = f.type == wire_type::length_delimited;
            break;
        case field::tensor_data_location: t.external = f.number == 1; break;
        default: break;
        }
    }
    if (t.dims.size() > 8)
        throw error("tensor '" + t.name + "' (byte " + std::to_string(offset) + ") has " + std::to_string(t.dims.size()) +
                    " dimensions; staticnet reads at most 8");
    check_dims(t, offset);
    if (t.external) return t;
    if (has_raw) {
        const std::size_t width = t.data_type == float_type ? 4 : t.data_type == int64_type ? 8 : 0;
        if (width != 0 && raw.size() != t.element_count() * width)
            throw error("tensor '" + t.name + "' (byte " + std::to_string(offset) + ") has dimensions " +
                        staticnet::detail::shape_text(t.dims) + " but " + std::to_string(raw.size()) + " bytes of data, not " +
                        std::to_string(t.element_count() * width));
        staticnet::detail::byte_reader data(raw);
        if (t.data_type == float_type) {
            t.floats.resize(t.element_count());
            data.get_floats(t.floats);
        } else if (t.data_type == int64_type) {
            t.ints.resize(t.element_count());
            for (auto& v : t.ints) v = data.get<std::int64_t>();
        }
        return t;
    }
    const std::size_t held = t.data_type == float_type ? t.floats.size() : t.data_type == int64_type ? t.ints.size() : 0;
    if ((t.data_type == float_type || t.data_type == int64_type) && held != t.element_count())
        throw error("tensor '" + t.name + "' (byte " + std::to_string(offset) + ") has dimensions " +
                    staticnet::detail::shape_text(t.dims) + " but " + std::to_string(held) + " values");
    return t;
}

inline attribute decode_attribute(protobuf_reader r) {
    attribute a;
    protobuf_field f;
    bool has_type = false;
    while (r.next(f)) {
        switch (f.field) {
        case field::attribute_name: a.name = std::string(f.as_string()); break;
        case field::attribute_f:
            a.f = f.as_float();
            if (!has_type) a.type = attribute::float_kind;
            break;
        case field::attribute_i:
            a.i = f.as_int();
            if (!has_type) a.type = attribute::int_kind;
            break;
        case field::attribute_s:
            a.s = std::string(f.as_string());
            if (!has_type) a.type = attribute::string_kind;
            break;
        case field::attribute_t:
            a.t = decode_tensor(protobuf_reader::nested(f), f.offset);
            if (!has_type) a.type = attribute::tensor_kind;
            break;
        case field::attribute_floats:
            protobuf_reader::append_floats(f, a.floats);
            if (!has_type) a.type = attribute::floats_kind;
            break;
        case field::attribute_ints:
            protobuf_reader::append_varints(f, a.ints);
            if (!has_type) a.type = attribute::ints_kind;
            break;
        case field::attribute_type:
            a.type = static_cast<std::int32_t>(f.number);
            has_type = true;
            break;
        default: break;
        }
    }
    return a;
}

inline node decode_node(protobuf_reader r) {
    node n;
    protobuf_field f;
    while (r.next(f)) {
        switch (f.field) {
        case field::node_input: n.inputs.emplace_back(f.as_string()); break;
        case field::node_output: n.outputs.emplace_back(f.as_string()); break;
        case field::node_name: n.name = std::string(f.as_string()); break;
        case field::node_op_type: n.op_type = std::string(f.as_string()); break;
        case field::node_domain: n.domain = std::string(f.as_string()); break;
        case field::node_attribute: n.attributes.push_back(decode_attribute(protobuf_reader::nested(f))); break;
        default: break;
        }
    }
    return n;
}

inline value_info decode_value_info(protobuf_reader r) {
    value_info v;
    protobuf_field f, g, h, d, e;
    while (r.next(f)) {
        if (f.field == field::value_info_name) v.name = std::string(f.as_string());
        if (f.field != field::value_info_type) continue;
        auto type = protobuf_reader::nested(f);
        while (type.next(g)) {
            if (g.field != field::type_tensor_type) continue;  // sequences, maps: not for staticnet
            auto tensor_type = protobuf_reader::nested(g);
            while (tensor_type.next(h)) {
                if (h.field == field::type_tensor_elem_type) v.elem_type = static_cast<std::int32_t>(h.number);
                if (h.field != field::type_tensor_shape) continue;
                auto shape = protobuf_reader::nested(h);
                while (shape.next(d)) {
                    if (d.field != field::shape_dim) continue;
                    dimension dim;
                    auto dim_reader = protobuf_reader::nested(d);
                    while (dim_reader.next(e)) {
                        if (e.field == field::dim_value) dim.value = e.as_int();
                        if (e.field == field::dim_param) dim.param = std::string(e.as_string());
                    }
                    v.dims.push_back(std::move(dim));
                }
            }
        }
    }
    return v;
}

}  // namespace detail

inline std::vector<std::uint8_t> encode(const model& m) {
    using namespace detail;
    protobuf_writer graph;
    for (const auto& n : m.nodes) {
        protobuf_writer w;
        for (const auto& in : n.inputs) w.string_field(field::node_input, in);
        for (const auto& out : n.outputs) w.string_field(field::node_output, out);
        w.string_field(field::node_name, n.name);
        w.string_field(field::node_op_type, n.op_type);
        if (!n.domain.empty()) w.string_field(field::node_domain, n.domain);
        for (const auto& a : n.attributes) {
            protobuf_writer aw;
            encode_attribute(aw, a);
            w.message_field(field::node_attribute, aw);
        }
        graph.message_field(field::graph_node, w);
    }
    graph.string_field(field::graph_name, m.graph_name);
    for (const auto& t : m.initializers) {
        protobuf_writer w;
        encode_tensor(w, t);
        graph.message_field(field::graph_initializer, w);
    }
    for (const auto& v : m.inputs) {
        protobuf_writer w;
        encode_value_info(w, v);
        graph.message_field(field::graph_input, w);
    }
    for (const auto& v : m.outputs) {
        protobuf_writer w;
        encode_value_info(w, v);
        graph.message_field(field::graph_output, w);
    }
    protobuf_writer file;
    file.varint_field(field::model_ir_version, m.ir_version);
    file.string_field(field::model_producer_name, m.producer_name);
    file.string_field(field::model_producer_version, m.producer_version);
    file.message_field(field::model_graph, graph);
    for (const auto& o : m.opsets) {
        protobuf_writer w;
        w.string_field(field::opset_domain, o.domain);
        w.varint_field(field::opset_version, o.version);
        file.message_field(field::model_opset_import, w);
    }
    return file.bytes();
}

inline model decode(std::span<const std::uint8_t> bytes) {
    using namespace detail;
    model m;
    m.ir_version = 0;
    bool has_graph = false;
    protobuf_reader file(bytes);
    protobuf_field f, g;
    while (file.next(f)) {
        switch (f.field) {
        case field::model_ir_version: m.ir_version = f.as_int(); break;
        case field::model_producer_name: m.producer_name = std::string(f.as_string()); break;
        case field::model_producer_version: m.producer_version = std::string(f.as_string()); break;
        case field::model_opset_import: {
            opset o;
            auto r = protobuf_reader::nested(f);
            while (r.next(g)) {
                if (g.field == field::opset_domain) o.domain = std::string(g.as_string());
                if (g.field == field::opset_version) o.version = g.as_int();
            }
            m.opsets.push_back(std::move(o));
            break;
        }
        case field::model_graph: {
            has_graph = true;
            auto r = protobuf_reader::nested(f);
            while (r.next(g)) {
                switch (g.field) {
                case field::graph_node: m.nodes.push_back(decode_node(protobuf_reader::nested(g))); break;
                case field::graph_name: m.graph_name = std::string(g.as_string()); break;
                case field::graph_initializer:
                    m.initializers.push_back(decode_tensor(protobuf_reader::nested(g), g.offset));
                    break;
                case field::graph_input: m.inputs.push_back(decode_value_info(protobuf_reader::nested(g))); break;
                case field::graph_output: m.outputs.push_back(decode_value_info(protobuf_reader::nested(g))); break;
                default: break;
                }
            }
            break;
        }
        default: break;
        }
    }
    if (!has_graph) throw error("no graph: not an ONNX model (ModelProto field 7 is missing)");
    return m;
}

}  // namespace staticnet::onnx
