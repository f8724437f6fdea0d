#pragma once
/// @file
/// ONNX mapping of `concat` (layers/concat.hpp): each branch's layers' own mappings from the
/// block's input, then `Concat` along the channels (axis 1 of NCHW).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../../core/error.hpp"
#include "../../layers/concat.hpp"
#include "../../layers/layer_list.hpp"
#include "graph.hpp"

namespace staticnet {
namespace onnx {

/// concat: each branch's nodes from the block's input (an empty branch is the input itself),
/// then one `Concat` with axis 1, its inputs in branch order. Inner layers map as they would
/// in a `sequential`, branch 0's first (the order of their parameters in the block).
template <shape In, std::size_t Position, typename... Branches>
struct layer_mapping<staticnet::detail::concat_layer<In, Position, Branches...>> {
    using block = staticnet::detail::concat_layer<In, Position, Branches...>;
    static constexpr std::size_t branch_count = sizeof...(Branches);
    template <std::size_t K>
    using inner = std::tuple_element_t<K, typename block::body_layers>;
    template <std::size_t B>
    static constexpr std::size_t size_of = std::tuple_size_v<std::tuple_element_t<B, typename block::branch_layers>>;
    /// Index of branch B's first layer among the block's inner layers.
    template <std::size_t B>
    static constexpr std::size_t first_of = [] {
        std::size_t k = 0;
        [&]<std::size_t... I>(std::index_sequence<I...>) { ((k += size_of<I>), ...); }(std::make_index_sequence<B>{});
        return k;
    }();

    /// Whether branch B's first layer is a block (it finds its own paths in the file).
    template <std::size_t B>
    static constexpr bool starts_with_block = [] {
        if constexpr (size_of<B> == 0) return false;
        else return staticnet::detail::composite_layer<inner<first_of<B>>>;
    }();

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
        std::vector<std::string> outputs;
        [&]<std::size_t... B>(std::index_sequence<B...>) {
            (outputs.push_back(export_branch<B>(g, x, parameters, state)), ...);
        }(std::make_index_sequence<branch_count>{});
        return g.add_node("Concat", std::move(outputs), {attribute::integer("axis", 1)});
    }

    /// Follows the graph: the block's input feeds the branches, which meet at one `Concat`.
    /// Branch B is the path that ends at the `Concat`'s input B (the channel order), whatever
    /// the order of the file's nodes: each branch's layers are read along each path not yet
    /// taken until one fits and ends there. A branch that starts with a block (a `residual`)
    /// is read last, from the block's input, when the other branches' paths are taken: the
    /// nested block then finds its own paths (one such branch per block).
    static void import_layer(graph_reader& r, std::span<float> parameters, std::span<float> state) {
        const std::string x = r.walk_to_fork();
        // A Concat reading the input itself (an identity branch) is set aside while the branches are read.
        const node* reads_input = nullptr;
        for (const node* n : r.consumers(x))
            if (r.is_join(*n, join_kind::concat)) reads_input = n;
        const node* join = nullptr;
        // The Concat where a path that fits branch B ends: at input B, and the same for every branch.
        auto check_join = [&](const node& n, std::size_t b, const std::string& from) {
            if (join != nullptr && &n != join)
                r.fail("the block's branches end at two nodes, " + r.describe(*join) + " and " + r.describe(n) +
                       ": they must meet at one 'Concat'");
            if (n.inputs.size() != branch_count)
                r.fail("expects a 'Concat' of " + std::to_string(branch_count) + " branches, but " + r.describe(n) +
                       " joins " + std::to_string(n.inputs.size()));
            if (n.inputs[b] != from)
                r.fail("the block's branch " + std::to_string(b) + " should be input " + std::to_string(b) + " of " +
                       r.describe(n) + ", but '" + from + "' is not");
            join = &n;
        };
        // Reads branch B from `start` (from the input itself when null) to the Concat.
        auto read_branch = [&]<std::size_t B>(const node* start) {
            r.go_to(x);
            if (start != nullptr) r.enter(*start);
            if (reads_input != nullptr) r.set_aside(*reads_input);
            [&]<std::size_t... K>(std::index_sequence<K...>) {
                (layer_mapping<inner<first_of<B> + K>>::import_layer(r, parameters_of<first_of<B> + K>(parameters),
                                                                      state_of<first_of<B> + K>(state)),
                 ...);
            }(std::make_index_sequence<size_of<B>>{});
            if (reads_input != nullptr) r.bring_back(*reads_input);
            const node& n = r.walk_to_join(join_kind::concat);
            check_join(n, B, r.position());
        };
        auto import_branch = [&]<std::size_t B, bool Nested>() {
            if constexpr (size_of<B> == 0 || Nested != starts_with_block<B>) {
                return;  // an identity's Concat input is checked once the Concat is known
            } else if constexpr (Nested) {
                read_branch.template operator()<B>(nullptr);
            } else {
                std::vector<const node*> starts;
                for (const node* n : r.consumers(x))
                    if (!r.is_join(*n, join_kind::concat)) starts.push_back(n);
                if (starts.empty())
                    r.fail("expects the block's branch " + std::to_string(B) + " to start from '" + x +
                           "', but no path from it is left");
                std::optional<error> first;
                for (const node* start : starts) {
                    const auto before = r.save();
                    const node* const join_before = join;
                    try {
                        read_branch.template operator()<B>(start);
                        return;
                    } catch (const error& e) {
                        if (!first) first = e;
                        r.restore(before);
                        join = join_before;
                    }
                }
                throw *first;  // the first path's problem: the file's order is the likelier intent
            }
        };
        [&]<std::size_t... B>(std::index_sequence<B...>) {
            (import_branch.template operator()<B, false>(), ...);
            (import_branch.template operator()<B, true>(), ...);
        }(std::make_index_sequence<branch_count>{});
        if (join == nullptr) join = reads_input;  // identity branches only
        if (join == nullptr) r.fail("expects a 'Concat' reading '" + x + "', the block's input");
        [&]<std::size_t... B>(std::index_sequence<B...>) {
            ((size_of<B> == 0 ? check_join(*join, B, x) : void()), ...);
        }(std::make_index_sequence<branch_count>{});
        const std::int64_t axis = r.int_attribute(*join, "axis", 1);
        const std::int64_t rank = block::output_shape.is_image() ? 4 : 2;
        if (axis != 1 && axis != 1 - rank)
            r.fail(r.describe(*join) + " concatenates along axis " + std::to_string(axis) +
                   "; a concat block joins the channels (axis 1)");
        r.take_join(*join);
    }

private:
    template <std::size_t B>
    static std::string export_branch(graph_writer& g, std::string y, std::span<const float> parameters,
                                     std::span<const float> state) {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            ((y = layer_mapping<inner<first_of<B> + K>>::export_layer(g, y, parameters_of<first_of<B> + K>(parameters),
                                                                      state_of<first_of<B> + K>(state))),
             ...);
        }(std::make_index_sequence<size_of<B>>{});
        return y;
    }
};

}  // namespace onnx
}  // namespace staticnet
