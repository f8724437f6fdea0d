#pragma once
/// @file
/// Binding a list of layer specs, left to right, hashing bound layers and finding their
/// weights: what `sequential` and the layers that hold other layers (`residual`) share.
///
/// `detail::bind_layers<Position, In, Specs...>` binds each spec to the output shape of the
/// one before it; `type` is the `std::tuple` of bound layers and `output` the last output
/// shape (`In` for an empty list). It is one recursion step per spec, so instantiation is
/// linear in the number of layers.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <utility>

#include "../core/fingerprint.hpp"
#include "../core/parameter_range.hpp"
#include "../core/shape.hpp"
#include "layer.hpp"

namespace staticnet::detail {

template <std::size_t Position, shape In, typename... Specs>
struct bind_layers {
    using type = std::tuple<>;
    static constexpr shape output = In;
};
template <std::size_t Position, shape In, typename Spec, typename... Rest>
struct bind_layers<Position, In, Spec, Rest...> {
    static_assert(layer_spec<Spec>, "staticnet wiring error: an argument of sequential (or residual) is not a layer spec");
    using bound = typename Spec::template bind<In, Position>;
    static_assert(layer<bound>, "staticnet: a bound layer does not satisfy the layer concept");
    using next = bind_layers<Position + 1, bound::output_shape, Rest...>;
    using type = decltype(std::tuple_cat(std::declval<std::tuple<bound>>(), std::declval<typename next::type>()));
    static constexpr shape output = next::output;
};

/// The name of a layer's activation ("relu" for `conv2d<8, 3, relu>`), empty if it has none.
template <typename L>
constexpr std::string_view activation_name() { return traits_of<L>().activation.name; }

/// A layer that holds other layers (`residual`, `concat`: `traits.composite`) names them as
/// tuples of bound layers: the main path `body_layers`, and `shortcut_layers` (empty for the
/// identity). A block of parallel paths (`concat`) also names `branch_layers`, a tuple of
/// one such tuple per branch; its `body_layers` are all of them in order.
template <typename L>
concept composite_layer = traits_of<L>().composite;
template <typename L>
concept branching_layer = composite_layer<L> && requires { typename L::branch_layers; };

/// Adds a bound layer to an architecture fingerprint: its name, activation, output shape and
/// counts, and for a composite layer each inner layer the same way.
template <typename L>
constexpr std::uint64_t hash_layer(std::uint64_t h) noexcept {
    h = fnv1a(h, L::name);
    h = fnv1a(h, activation_name<L>());
    h = fnv1a(h, L::output_shape.rank);
    for (auto d : L::output_shape.dims) h = fnv1a(h, d);
    h = fnv1a(h, L::parameter_count);
    h = fnv1a(h, L::state_count);
    if constexpr (requires { L::hyperparameters; })  // e.g. a dilation that keeps the shapes and counts
        for (auto v : L::hyperparameters) h = fnv1a(h, v);
    if constexpr (composite_layer<L>) {
        auto hash_all = [&]<typename... Inner>(std::tuple<Inner...>*) { ((h = hash_layer<Inner>(h)), ...); };
        if constexpr (branching_layer<L>) {
            // Branch by branch: moving a layer from one branch to the next changes the hash.
            [&]<typename... Branch>(std::tuple<Branch...>*) {
                ((h = fnv1a(h, std::string_view{"branch"}), hash_all(static_cast<Branch*>(nullptr))), ...);
            }(static_cast<typename L::branch_layers*>(nullptr));
        } else {
            h = fnv1a(h, std::string_view{"body"});
            hash_all(static_cast<typename L::body_layers*>(nullptr));
            h = fnv1a(h, std::string_view{"shortcut"});
            hash_all(static_cast<typename L::shortcut_layers*>(nullptr));
        }
    }
    return h;
}

/// Calls `f(parameter_range)` for each block of weights (`layer_traits::weight_count`) of a
/// bound layer whose parameters start at `offset`, in order; a composite layer's inner layers
/// start at its `parameter_offsets` (the body's, then the shortcut's).
template <typename L, typename F>
void for_each_weight_range(std::size_t offset, F&& f) {
    if constexpr (composite_layer<L>) {
        using inner = decltype(std::tuple_cat(std::declval<typename L::body_layers>(), std::declval<typename L::shortcut_layers>()));
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (for_each_weight_range<std::tuple_element_t<K, inner>>(offset + L::parameter_offsets[K], f), ...);
        }(std::make_index_sequence<std::tuple_size_v<inner>>{});
    } else if constexpr (traits_of<L>().weight_count != 0) {
        f(parameter_range{offset, traits_of<L>().weight_count});
    }
}

}  // namespace staticnet::detail
