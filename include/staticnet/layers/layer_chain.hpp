#pragma once
/// @file
/// `detail::layer_chain<Packing, Layers...>`: bound layers run one after the other, the engine
/// that `sequential` (one chain plus the arenas) and `residual` (a body chain and a shortcut
/// chain plus the sum) share, and that the ONNX writer reads offsets from.
///
/// The chain decides, once, at compile time, everything that follows from which layer comes
/// after which (layer.hpp's traits):
///  - the offset of every layer's parameters and state: each block 64-byte aligned
///    (`chain_packing::aligned`, the network's arenas) or packed without gaps
///    (`chain_packing::packed`, a composite layer's own blocks, in its Keras layout);
///  - folding: an activation layer after a layer that applies its output activation runs
///    neither pass, and its output is that layer's;
///  - skipped backward passes: a folded layer, or an activation whose derivative the next
///    layer applies (relu before max pooling); the layers around it share a gradient buffer;
///  - how much of each output the next layer reads (`layer_context::output_rows_read`);
///  - the activation memory (outputs and caches) and which of two gradient buffers holds each
///    layer's output gradient in backward.
/// It owns no memory: callers hand it the activation memory, the two gradient buffers and
/// the parameter, gradient and state blocks.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <tuple>
#include <utility>

#include "../core/aligned_buffer.hpp"
#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "layer.hpp"
#include "layer_buffers.hpp"

namespace staticnet::detail {

/// How a chain lays out its layers' parameter and state blocks.
enum class chain_packing {
    aligned,  ///< each layer's block starts on 64 bytes (the network's arenas)
    packed,   ///< blocks follow each other without gaps (inside a composite layer)
};

template <chain_packing Packing, typename... Layers>
class layer_chain {
    static_assert(sizeof...(Layers) > 0, "a layer chain needs at least one layer");

public:
    using layers_type = std::tuple<Layers...>;
    template <std::size_t I>
    using layer_type = std::tuple_element_t<I, layers_type>;
    static constexpr std::size_t size = sizeof...(Layers);
    static constexpr shape input_shape = layer_type<0>::input_shape;
    static constexpr shape output_shape = layer_type<size - 1>::output_shape;

    // ------------------------------------------------------------ the rules between neighbours

    /// Whether layer I + 1 applies the derivative of layer I's activation (max pooling after a
    /// layer that ends in a monotone activation).
    template <std::size_t I>
    static constexpr bool next_applies_derivative() noexcept {
        if constexpr (I + 1 < size)
            return ends_in_monotone_activation<layer_type<I>>() && applies_input_activation_derivative<layer_type<I + 1>>();
        else return false;
    }
    /// Whether layer I is an activation layer folded into layer I - 1: it runs neither pass,
    /// and its output is layer I - 1's.
    template <std::size_t I>
    static constexpr bool folded() noexcept {
        if constexpr (I > 0 && I < size) return folds_into<layer_type<I - 1>, layer_type<I>>();
        else return false;
    }
    /// Whether layer I's backward is skipped: folded, or it would copy its output gradient
    /// unchanged (an activation layer whose derivative the next layer applies). The first
    /// layer always runs: it writes the chain's input gradient.
    template <std::size_t I>
    static constexpr bool skips_backward() noexcept {
        if constexpr (I > 0 && I < size)
            return folded<I>() || (passes_pre_activation_gradient<layer_type<I>>() && next_applies_derivative<I>());
        else return false;
    }

    // ------------------------------------------------------------ sizes and offsets

    /// Start of each layer's block of `sizes`, laid out as `Packing` says.
    static constexpr std::array<std::size_t, size + 1> offsets_of(std::array<std::size_t, size> sizes) {
        std::array<std::size_t, size + 1> offsets{};
        for (std::size_t i = 0; i < size; ++i)
            offsets[i + 1] = offsets[i] + (Packing == chain_packing::aligned ? align_floats(sizes[i]) : sizes[i]);
        return offsets;
    }
    static constexpr auto parameter_offsets = offsets_of({Layers::parameter_count...});
    static constexpr auto state_offsets = offsets_of({Layers::state_count...});
    /// Parameters and state of every layer, without padding.
    static constexpr std::size_t parameter_count = (std::size_t{0} + ... + Layers::parameter_count);
    static constexpr std::size_t state_count = (std::size_t{0} + ... + Layers::state_count);
    static constexpr std::size_t flops_per_sample = (std::size_t{0} + ... + Layers::flops_per_sample);
    /// Whether any layer computes across the samples of a batch.
    static constexpr bool batch_statistics = (false || ... || uses_batch_statistics<Layers>());
    /// Whether every layer with state can record its updates and replay them.
    static constexpr bool replays_state = (true && ... && replays_state_updates<Layers>());
    /// The widest tensor a gradient buffer holds: the chain's input or any layer's output.
    static constexpr std::size_t widest = std::max({input_shape.size(), Layers::output_shape.size()...});
    /// Floats kept for backward per sample: every output that is not a folded layer's, and
    /// every cache.
    static constexpr std::size_t activation_floats_per_sample = []<std::size_t... I>(std::index_sequence<I...>) {
        return (std::size_t{0} + ... + ((folded<I>() ? 0 : layer_type<I>::output_shape.size()) + layer_type<I>::cache_floats(1)));
    }(std::make_index_sequence<size>{});

    /// Where each layer's output and cache lie in the chain's activation memory.
    struct activation_layout {
        std::array<std::size_t, size> output{}, cache{};
        std::size_t total = 0;
    };
    static constexpr activation_layout activations(std::size_t batch) noexcept {
        activation_layout w;
        std::size_t at = 0;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((w.output[I] = folded<I>() ? w.output[I == 0 ? 0 : I - 1] : at,
              at += folded<I>() ? 0 : align_floats(batch * layer_type<I>::output_shape.size()), w.cache[I] = at,
              at += align_floats(layer_type<I>::cache_floats(batch))),
             ...);
        }(std::make_index_sequence<size>{});
        w.total = at;
        return w;
    }
    /// The scratch the layers share (the largest any of them asks for).
    static constexpr std::size_t scratch_floats(std::size_t batch) noexcept {
        return std::max({std::size_t{0}, Layers::scratch_floats(batch)...});
    }

    /// Which of the two gradient buffers holds layer I's output gradient in backward: the
    /// first layer's is buffer 1 (a caller may use buffer 0 for the chain's input gradient),
    /// and they alternate up the chain except across a skipped layer, whose neighbours share
    /// one.
    static constexpr auto gradient_buffer = [] {
        constexpr auto skips = []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<bool, size>{skips_backward<I>()...};
        }(std::make_index_sequence<size>{});
        std::array<std::size_t, size> buffer{};
        buffer[0] = 1;
        for (std::size_t i = 1; i < size; ++i) buffer[i] = skips[i] ? buffer[i - 1] : 1 - buffer[i - 1];
        return buffer;
    }();

    // ------------------------------------------------------------ running the layers

    /// The memory of one pass, handed in by the caller.
    struct pass_memory {
        float* activations;         ///< `activations(batch).total` floats
        const float* parameters;    ///< the chain's parameter block (offsets: `parameter_offsets`)
        float* state;               ///< the chain's state block, or a record of it (`state_offsets`)
    };

    /// One stream per layer, derived from `seed` and the layer's index plus `first_index`
    /// (adding a layer leaves the others' initial weights alone).
    void initialize(std::span<float> parameters, std::span<float> state, std::uint64_t seed, std::size_t first_index = 0) const {
        const auto one = [&]<std::size_t I>() {
            rng g = rng::derived(seed, first_index + I);
            std::get<I>(layers_).initialize(parameters.subspan(parameter_offsets[I], layer_type<I>::parameter_count),
                                            state.subspan(state_offsets[I], layer_type<I>::state_count), g);
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) { (one.template operator()<I>(), ...); }(std::make_index_sequence<size>{});
    }

    /// Runs the layers on `ctx.batch` samples at `input`; returns the last output (in the
    /// activation memory). `ctx.scratch` must be set. (An activation after the chain is not
    /// its business: a block applies one folded into it after its sum.)
    const float* forward(const layer_context& ctx, const float* input, const pass_memory& m) const {
        const auto w = activations(ctx.batch);
        const auto forward_layer = [&]<std::size_t I>() {
            if constexpr (!folded<I>()) {
                layer_context c = context_for<I>(ctx);
                c.output_activation = nullptr;
                if constexpr (folded<I + 1>()) c.output_activation = traits_of<layer_type<I + 1>>().activation.forward;
                std::get<I>(layers_).forward(
                    c, forward_buffers{.input = buffer<role::input, const float>(input_of<I>(input, m.activations, w)),
                                       .output = buffer<role::output, float>(m.activations + w.output[I]),
                                       .parameters = buffer<role::parameters, const float>(m.parameters + parameter_offsets[I]),
                                       .state = buffer<role::state, float>(m.state + state_offsets[I]),
                                       .cache = buffer<role::cache, float>(m.activations + w.cache[I])});
            }
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) { (forward_layer.template operator()<I>(), ...); }(std::make_index_sequence<size>{});
        return m.activations + w.output[size - 1];
    }

    /// Applies recorded state updates (see `layer_context::state_record`).
    void update_state(const float* record, float* state) const noexcept requires replays_state {
        const auto one = [&]<std::size_t I>() {
            if constexpr (layer_type<I>::state_count != 0)
                std::get<I>(layers_).update_state(record + state_offsets[I], state + state_offsets[I]);
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) { (one.template operator()<I>(), ...); }(std::make_index_sequence<size>{});
    }

    /// Backpropagates after `forward` with the same input and memory. The last layer's output
    /// gradient is at `top` (it may be overwritten; `ctx.gradient_is_pre_activation` says
    /// whether it is already with respect to the last activation's input); the chain's input
    /// gradient goes to `bottom` (nothing when null). `gradients` are two buffers of
    /// `batch * widest` floats (`top` may be one of them, at `gradient_buffer[size - 1]`).
    /// Parameter gradients are added at `parameter_gradients` (offsets: `parameter_offsets`).
    /// `on_layer_done(i)` is called when layer i's parameter gradients are final, last layer
    /// first.
    template <typename OnLayerDone>
    void backward(const layer_context& ctx, const float* input, const pass_memory& m, float* parameter_gradients,
                  float* const (&gradients)[2], float* top, float* bottom, OnLayerDone&& on_layer_done) const {
        const auto w = activations(ctx.batch);
        const bool top_pre_activation = ctx.gradient_is_pre_activation;
        const auto backward_layer = [&]<std::size_t I>() {
            if constexpr (!skips_backward<I>()) {
                layer_context c = context_for<I>(ctx);
                c.output_activation_backward = nullptr;
                c.output_activation_backward_from_input = nullptr;
                if constexpr (folded<I + 1>()) {
                    // The folded activation's derivative, unless its gradient is already pre-activation.
                    if (!((I + 2 == size && top_pre_activation) || next_applies_derivative<I + 1>())) {
                        constexpr activation_info act = traits_of<layer_type<I + 1>>().activation;
                        if constexpr (act.derivative_from_input)
                            c.output_activation_backward_from_input = act.backward_from_input;
                        else
                            c.output_activation_backward = act.backward;
                    }
                }
                c.gradient_is_pre_activation = (I + 1 == size && top_pre_activation) || next_applies_derivative<I>();
                c.input_activation_backward = nullptr;
                if constexpr (I > 0) {
                    if constexpr (next_applies_derivative<I - 1>())
                        c.input_activation_backward = traits_of<layer_type<I - 1>>().activation.backward;
                }
                float* output_gradient = reads_top<I>() ? top : gradients[gradient_buffer[I]];
                float* input_gradient = I == 0 ? bottom : gradients[gradient_buffer[I == 0 ? 0 : I - 1]];
                std::get<I>(layers_).backward(
                    c, backward_buffers{
                           .input = buffer<role::input, const float>(input_of<I>(input, m.activations, w)),
                           .output = buffer<role::output, const float>(m.activations + w.output[I]),
                           .output_gradient = buffer<role::output_gradient, float>(output_gradient),
                           .input_gradient = buffer<role::input_gradient, float>(input_gradient),
                           .parameters = buffer<role::parameters, const float>(m.parameters + parameter_offsets[I]),
                           .parameter_gradients =
                               buffer<role::parameter_gradients, float>(parameter_gradients + parameter_offsets[I]),
                           .cache = buffer<role::cache, float>(m.activations + w.cache[I])});
            }
            on_layer_done(I);
        };
        [&]<std::size_t... J>(std::index_sequence<J...>) {
            (backward_layer.template operator()<size - 1 - J>(), ...);
        }(std::make_index_sequence<size>{});
    }

    /// The bound layers (they hold no data; for code that walks the chain, e.g. the summary).
    [[nodiscard]] const layers_type& layers() const noexcept { return layers_; }

private:
    /// Layer I reads the chain's input if it is the first, else the output of the layer before.
    template <std::size_t I>
    static const float* input_of(const float* input, const float* activations, const activation_layout& w) noexcept {
        if constexpr (I == 0) return input;
        else return activations + w.output[I - 1];
    }
    /// Whether every layer after I skips its backward pass: I then reads the chain's `top`.
    template <std::size_t I>
    static constexpr bool reads_top() noexcept {
        return [&]<std::size_t... J>(std::index_sequence<J...>) { return (true && ... && skips_backward<I + 1 + J>()); }
        (std::make_index_sequence<size - I - 1>{});
    }
    /// `ctx` for layer I: how much of its output the next layer reads (the last layer's output
    /// is read whole: by the loss, the next layer of the network, or a block's sum).
    template <std::size_t I>
    static layer_context context_for(layer_context ctx) noexcept {
        if constexpr (I + 1 < size) {
            ctx.output_rows_read = input_rows_read<layer_type<I + 1>>();
            ctx.output_columns_read = input_columns_read<layer_type<I + 1>>();
        } else {
            ctx.output_rows_read = ctx.output_columns_read = 0;
        }
        return ctx;
    }

    layers_type layers_{};
};

/// The chain of a tuple of bound layers.
template <chain_packing Packing, typename Tuple>
struct chain_of;
template <chain_packing Packing, typename... Layers>
struct chain_of<Packing, std::tuple<Layers...>> {
    using type = layer_chain<Packing, Layers...>;
};

}  // namespace staticnet::detail
