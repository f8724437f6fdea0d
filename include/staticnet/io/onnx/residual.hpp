#pragma once
/// @file
/// ONNX mapping of `residual` (layers/residual.hpp): the inner layers' own mappings, then `Add`.

#include "../../layers/layer_list.hpp"
#include "../../layers/residual.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

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
    /// Follows the graph: the block's input feeds two paths that meet at an `Add`. Which path
    /// is the body is found by matching, not by the order of the file's nodes (a block whose
    /// `forward` computes the shortcut first exports it first): the body's layers are read
    /// along one path, the shortcut's along the other, and each path must end at the same
    /// `Add`; if they do not fit, the paths are tried the other way round. Body and shortcut
    /// can only both fit either way when they are the same layers, and then either
    /// assignment computes the same sum.
    static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float> state) {
        const std::string x = r.walk_to_fork();
        const auto starts = r.consumers(x);
        auto import_path = [&]<std::size_t First, std::size_t... K>(std::index_sequence<K...>) {
            (layer_mapping<inner<First + K>>::import_layer(r, parameters_of<First + K>(parameters),
                                                           state_of<First + K>(state)),
             ...);
        };
        if constexpr (shortcut_count == 0 && staticnet::detail::composite_layer<inner<0>>) {
            // The body starts with a block (a concat), whose own paths read the input too: the
            // identity shortcut's `Add` is set aside while the body finds them.
            const auto add = std::ranges::find_if(starts, [&](const node* n) { return r.is_join(*n); });
            if (add == starts.end())
                r.fail("expects a residual block, whose identity shortcut reads its input '" + x +
                       "' into its 'Add', but no 'Add' reads it");
            const node& shortcut = **add;
            r.set_aside(shortcut);
            import_path.template operator()<0>(std::make_index_sequence<body_count>{});
            r.bring_back(shortcut);
            const node& join = r.walk_to_join();
            if (&join != &shortcut)
                r.fail("the block's body ends at " + r.describe(join) + ", but the identity shortcut goes from '" + x +
                       "' to " + r.describe(shortcut));
            r.take_join(join);
            return;
        }
        if (starts.size() != 2)
            r.fail("expects a residual block, whose input '" + x + "' feeds two paths (the body and the " +
                   (shortcut_count == 0 ? std::string("identity shortcut") : std::string("projection")) +
                   "), but it is read by " + std::to_string(starts.size()) + " node(s)");
        auto try_assignment = [&](const node& body_start, const node& shortcut_start) {
            r.enter(body_start);
            import_path.template operator()<0>(std::make_index_sequence<body_count>{});
            const node& join = r.walk_to_join();
            if constexpr (shortcut_count == 0) {
                if (&join != &shortcut_start)
                    r.fail("the block's body ends at " + r.describe(join) + ", but the identity shortcut goes from '" + x +
                           "' to " + r.describe(shortcut_start));
            } else {
                r.go_to(x);
                r.enter(shortcut_start);
                import_path.template operator()<body_count>(std::make_index_sequence<shortcut_count>{});
                const node& shortcut_join = r.walk_to_join();
                if (&shortcut_join != &join)
                    r.fail("the block's body ends at " + r.describe(join) + ", its projection at " +
                           r.describe(shortcut_join) + ": they must meet at one 'Add'");
            }
            r.take_join(join);
        };
        if constexpr (shortcut_count == 0) {
            // The identity shortcut reads the input straight into the `Add`.
            const bool first_is_join = r.is_join(*starts[0]);
            try_assignment(first_is_join ? *starts[1] : *starts[0], first_is_join ? *starts[0] : *starts[1]);
        } else {
            const auto before = r.save();
            try {
                try_assignment(*starts[0], *starts[1]);
            } catch (const error& first) {
                r.restore(before);
                try {
                    try_assignment(*starts[1], *starts[0]);
                } catch (const error&) {
                    throw first;  // the body-first reading's problem: the file's order is the likelier intent
                }
            }
        }
    }
};

}  // namespace onnx
}  // namespace staticnet
