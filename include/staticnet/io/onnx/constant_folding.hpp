#pragma once
/// @file
/// `graph_reader::constant_ints` (part of io/onnx/graph_reader.hpp, which includes it): the
/// small integer tensors an exporter computes from constants (PyTorch's pads of a `Pad`),
/// evaluated with the few operators that build them, to a bounded depth.

#include "graph_reader.hpp"

namespace staticnet::onnx {

inline auto graph_reader::constant_ints(const std::string& tensor_name, std::size_t depth) const
    -> std::optional<int_tensor> {
    if (depth > 64) return std::nullopt;
    if (const auto it = constants_.find(tensor_name); it != constants_.end()) {
        const tensor& t = *it->second;
        if (t.external || t.data_type == float_type) return std::nullopt;
        if (t.ints.size() != t.element_count()) return std::nullopt;
        return int_tensor{t.dims, t.ints};
    }
    const node* n = producer(tensor_name);
    if (n == nullptr) return std::nullopt;
    std::vector<int_tensor> in;
    for (const auto& name : n->inputs) {
        if (name.empty()) break;  // optional inputs left out (Slice's axes and steps)
        auto v = constant_ints(name, depth + 1);
        if (!v) return std::nullopt;
        in.push_back(std::move(*v));
    }
    auto count = [](const std::vector<std::int64_t>& dims) {
        std::int64_t c = 1;
        for (auto d : dims) c = d < 0 ? -1 : c * d;
        return c;
    };
    const std::string& op = n->op_type;
    if ((op == "Cast" || op == "Identity") && in.size() == 1) return in[0];
    if (op == "ConstantOfShape" && in.size() == 1) {
        std::int64_t fill = 0;
        if (const attribute* v = n->find("value"); v != nullptr && v->t) {
            if (!v->t->ints.empty()) fill = v->t->ints[0];
            else if (!v->t->floats.empty()) fill = static_cast<std::int64_t>(v->t->floats[0]);
        }
        const std::int64_t c = count(in[0].values);
        if (c < 0 || c > 4096) return std::nullopt;
        return int_tensor{in[0].values, std::vector<std::int64_t>(static_cast<std::size_t>(c), fill)};
    }
    if (op == "Concat" && !in.empty()) {  // vectors only
        int_tensor out{{0}, {}};
        for (const auto& t : in) {
            if (t.dims.size() != 1) return std::nullopt;
            out.values.insert(out.values.end(), t.values.begin(), t.values.end());
        }
        out.dims[0] = static_cast<std::int64_t>(out.values.size());
        return out;
    }
    if (op == "Reshape" && in.size() == 2) {
        std::vector<std::int64_t> dims = in[1].values;
        std::int64_t known = 1, unknown = -1;
        for (std::size_t i = 0; i < dims.size(); ++i) {
            if (dims[i] == 0 && i < in[0].dims.size()) dims[i] = in[0].dims[i];
            if (dims[i] == -1) {
                if (unknown >= 0) return std::nullopt;
                unknown = static_cast<std::int64_t>(i);
            } else if (dims[i] <= 0) {
                return std::nullopt;
            } else {
                known *= dims[i];
            }
        }
        const auto size = static_cast<std::int64_t>(in[0].values.size());
        if (unknown >= 0) {
            if (known == 0 || size % known != 0) return std::nullopt;
            dims[static_cast<std::size_t>(unknown)] = size / known;
        }
        if (count(dims) != size) return std::nullopt;
        return int_tensor{dims, in[0].values};
    }
    // Element (i0, i1, ...) of a row-major tensor of `dims`.
    auto strides_of = [](const std::vector<std::int64_t>& dims) {
        std::vector<std::int64_t> strides(dims.size(), 1);
        for (std::size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
        return strides;
    };
    // Visits every index of `dims` in row-major order (false: too large to fold).
    auto for_each_index = [](const std::vector<std::int64_t>& dims, auto&& visit) {
        std::int64_t total = 1;
        for (auto d : dims) total *= d;
        std::array<std::int64_t, 8> index{};
        if (total > 4096 || dims.size() > index.size()) return false;
        for (std::int64_t k = 0; k < total; ++k) {
            std::int64_t rest = k;
            for (std::size_t i = dims.size(); i-- > 0;) {
                index[i] = rest % dims[i];
                rest /= dims[i];
            }
            visit(std::span<const std::int64_t>(index.data(), dims.size()));
        }
        return true;
    };
    if (op == "Transpose" && in.size() == 1) {
        const auto& d = in[0].dims;
        std::vector<std::int64_t> perm = ints_attribute(*n, "perm", {});
        if (perm.empty())
            for (std::size_t i = d.size(); i-- > 0;) perm.push_back(static_cast<std::int64_t>(i));
        if (perm.size() != d.size()) return std::nullopt;
        std::vector<std::int64_t> dims;
        for (auto p : perm) {
            if (p < 0 || p >= static_cast<std::int64_t>(d.size())) return std::nullopt;
            dims.push_back(d[static_cast<std::size_t>(p)]);
        }
        const auto from = strides_of(d);
        int_tensor out{dims, {}};
        const bool folded = for_each_index(dims, [&](std::span<const std::int64_t> index) {
            std::int64_t at = 0;
            for (std::size_t i = 0; i < index.size(); ++i) at += index[i] * from[static_cast<std::size_t>(perm[i])];
            out.values.push_back(in[0].values[static_cast<std::size_t>(at)]);
        });
        if (!folded) return std::nullopt;
        return out;
    }
    if (op == "Slice" && in.size() >= 3) {
        const auto& d = in[0].dims;
        const std::size_t rank = d.size();
        std::vector<std::int64_t> begin(rank, 0), step(rank, 1), dims = d;
        for (std::size_t k = 0; k < in[1].values.size(); ++k) {
            if (k >= in[2].values.size() || (in.size() > 3 && k >= in[3].values.size()) ||
                (in.size() > 4 && k >= in[4].values.size()))
                return std::nullopt;
            std::int64_t axis = in.size() > 3 ? in[3].values[k] : static_cast<std::int64_t>(k);
            if (axis < 0) axis += static_cast<std::int64_t>(rank);
            if (axis < 0 || axis >= static_cast<std::int64_t>(rank)) return std::nullopt;
            const auto a = static_cast<std::size_t>(axis);
            const std::int64_t size = d[a], st = in.size() > 4 ? in[4].values[k] : 1;
            if (st == 0) return std::nullopt;
            // ONNX's clamping: [0, size] going forward, [-1, size - 1] going backward.
            auto clamp = [&](std::int64_t v) {
                if (v < 0) v += size;
                return st > 0 ? std::clamp<std::int64_t>(v, 0, size) : std::clamp<std::int64_t>(v, -1, size - 1);
            };
            const std::int64_t first = clamp(in[1].values[k]), last = clamp(in[2].values[k]);
            const std::int64_t n_out = st > 0 ? std::max<std::int64_t>(0, (last - first + st - 1) / st)
                                              : std::max<std::int64_t>(0, (first - last - st - 1) / -st);
            begin[a] = first;
            step[a] = st;
            dims[a] = n_out;
        }
        const auto from = strides_of(d);
        int_tensor out{dims, {}};
        bool inside = true;
        const bool folded = for_each_index(dims, [&](std::span<const std::int64_t> index) {
            std::int64_t at = 0;
            for (std::size_t i = 0; i < rank; ++i) at += (begin[i] + index[i] * step[i]) * from[i];
            inside &= at >= 0 && at < static_cast<std::int64_t>(in[0].values.size());
            out.values.push_back(inside ? in[0].values[static_cast<std::size_t>(at)] : 0);
        });
        if (!folded || !inside) return std::nullopt;
        return out;
    }
    return std::nullopt;
}

}  // namespace staticnet::onnx
