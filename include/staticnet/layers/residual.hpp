#pragma once
/// @file
/// `residual<Layers...>`: a residual block, one layer of a `sequential` whose output is its
/// layers' output plus a shortcut of its input, y = F(x) + S(x) (He et al., 2015).
///
/// @code
/// // ResNet v1 basic block (the activation after the sum is the next layer of the network):
/// sn::residual<sn::conv2d<64, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::relu,
///              sn::conv2d<64, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>>, sn::relu,
/// // Halving the image and doubling the channels: the shapes differ, so the shortcut is a
/// // projection, named as the first argument:
/// sn::residual<sn::projection<sn::conv2d<128, 1, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
///              sn::conv2d<128, 3, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::relu,
///              sn::conv2d<128, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>>, sn::relu,
/// // Pre-activation (v2) basic block: normalisation and activation first, nothing after the sum:
/// sn::residual<sn::batch_norm<>, sn::relu, sn::conv2d<64, 3, sn::identity, 1, sn::padding::same>,
///              sn::batch_norm<>, sn::relu, sn::conv2d<64, 3, sn::identity, 1, sn::padding::same>>,
/// @endcode
///
/// The shortcut is the identity when F keeps the shape of its input. When it does not, the
/// block must name its projection (`projection<Specs...>`, a short chain of layers from the
/// block's input to F's output shape): a missing or mis-shaped projection is a compile error
/// that says so, never a silent broadcast or a hidden layer.
///
/// To the network the block is one layer: its parameters are those of its layers in order,
/// then those of the projection, each in its own (Keras) layout and packed without gaps; the
/// same for the non-trainable state. Shapes, counts, FLOPs (the layers' plus the sum) and
/// memory are `constexpr`, the architecture fingerprint hashes every inner layer, and the
/// summary lists them indented under the block. Inner layers are bound with the block's
/// position, so a wiring error inside names the block's position in the network.
///
/// Memory: the inner layers' outputs and caches live in the block's `cache` (kept for
/// backward); its backward pass runs its layers with two gradient buffers in `ctx.scratch`,
/// after the scratch its layers share. Blocks nest (a `residual` may hold a `residual`).

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>
#include <tuple>
#include <utility>

#include "../core/aligned_buffer.hpp"
#include "../core/random.hpp"
#include "../kernels/elementwise.hpp"
#include "layer.hpp"
#include "layer_chain.hpp"
#include "layer_list.hpp"

namespace staticnet {

/// The shortcut of a `residual` block whose layers change the shape: these layers, applied
/// to the block's input, must give the shape of the block's output (typically a 1x1
/// convolution with the stride of the block, then a batch_norm). Only as the first argument
/// of `residual`.
namespace detail {
template <std::size_t>
inline constexpr bool never = false;  // a false that waits for instantiation
}  // namespace detail

template <typename... Specs>
struct projection {
    template <shape In, std::size_t Position>
    struct bind {
        static_assert(detail::never<Position>, "staticnet wiring error: projection<...> is allowed only as the first argument of "
                                       "residual<...>");
    };
};

namespace detail {
template <typename... Specs>
struct spec_list {};

template <typename Shortcut, typename Body, shape In, std::size_t Position>
class residual_layer;

template <std::size_t layer_position, std::size_t body_layers, std::size_t input_height, std::size_t input_width,
          std::size_t input_channels, std::size_t output_height, std::size_t output_width, std::size_t output_channels,
          bool has_projection, bool shortcut_matches>
constexpr bool check_residual_wiring() {
    STATICNET_WIRING_CHECK(body_layers >= 1, "residual needs at least one layer besides its projection");
    STATICNET_WIRING_CHECK(has_projection || (input_height == output_height && input_width == output_width &&
                                              input_channels == output_channels),
                           "residual block changes the shape of its input, so the identity cannot be its shortcut: "
                           "name a projection as its first argument, e.g. residual<projection<conv2d<C, 1, identity, "
                           "S, padding::same>, batch_norm<>>, ...>");
    STATICNET_WIRING_CHECK(!has_projection || shortcut_matches,
                           "residual block's projection gives a shape that differs from the output of its layers");
    return true;
}
}  // namespace detail

/// A residual block: `Specs` in sequence plus the identity shortcut, or, when the first
/// argument is `projection<P...>`, plus the projection `P...` of the input.
template <typename... Specs>
struct residual {
    template <shape In, std::size_t Position>
    using bind = detail::residual_layer<detail::spec_list<>, detail::spec_list<Specs...>, In, Position>;
};
template <typename... Projection, typename... Specs>
struct residual<projection<Projection...>, Specs...> {
    static_assert(sizeof...(Projection) > 0, "residual: projection<> needs at least one layer");
    template <shape In, std::size_t Position>
    using bind = detail::residual_layer<detail::spec_list<Projection...>, detail::spec_list<Specs...>, In, Position>;
};

namespace detail {

template <typename... ShortcutSpecs, typename... BodySpecs, shape In, std::size_t Position>
class residual_layer<spec_list<ShortcutSpecs...>, spec_list<BodySpecs...>, In, Position> {
    using body_binding = bind_layers<Position, In, BodySpecs...>;
    using shortcut_binding = bind_layers<Position, In, ShortcutSpecs...>;
    static constexpr shape body_output = body_binding::output;
    static constexpr shape shortcut_output = shortcut_binding::output;
    static_assert(check_residual_wiring<Position, sizeof...(BodySpecs), In.height(), In.width(), In.channels(),
                                        body_output.height(), body_output.width(), body_output.channels(),
                                        (sizeof...(ShortcutSpecs) > 0), shortcut_output == body_output>());
    static_assert(In.rank == body_output.rank || sizeof...(ShortcutSpecs) > 0,
                  "staticnet wiring error: residual block turns an image into a vector; name a projection");

public:
    /// The main path F and the shortcut S (empty: the identity), as tuples of bound layers.
    using body_layers = typename body_binding::type;
    using shortcut_layers = typename shortcut_binding::type;

    /// The two paths as chains, packed (each inner layer's parameters in its own layout, without gaps).
    using body_chain = typename chain_of<chain_packing::packed, body_layers>::type;
    using shortcut_chain = std::conditional_t<(sizeof...(ShortcutSpecs) > 0),
                                              typename chain_of<chain_packing::packed, shortcut_layers>::type, void>;

private:
    static constexpr bool has_projection = sizeof...(ShortcutSpecs) > 0;
    static constexpr std::size_t body_count = sizeof...(BodySpecs);
    static constexpr std::size_t shortcut_count = sizeof...(ShortcutSpecs);
    static constexpr std::size_t inner_count = body_count + shortcut_count;

    /// `Chain::member` of the shortcut, or `none` for the identity.
    template <typename F, typename T>
    static constexpr auto of_shortcut(F f, T none) {
        if constexpr (has_projection) return f.template operator()<shortcut_chain>();
        else return none;
    }
    /// The body's offsets, then the shortcut's after the body's block.
    template <auto BodyOffsets, auto ShortcutOffsets>
    static constexpr auto joined_offsets() {
        std::array<std::size_t, inner_count + 1> offsets{};
        for (std::size_t k = 0; k <= body_count; ++k) offsets[k] = BodyOffsets[k];
        for (std::size_t k = 1; k <= shortcut_count; ++k) offsets[body_count + k] = BodyOffsets.back() + ShortcutOffsets[k];
        return offsets;
    }
    static constexpr std::array<std::size_t, 1> no_offsets{};

public:
    static constexpr std::string_view name = "residual";
    /// An activation layer after the block is folded into its sum (layer.hpp); batch
    /// statistics anywhere inside make the block compute across samples too; it replays state
    /// updates when every inner layer does; it names its inner layers (`body_layers`,
    /// `shortcut_layers`).
    static constexpr layer_traits traits{
        .batch_statistics = body_chain::batch_statistics || of_shortcut([]<typename C>() { return C::batch_statistics; }, false),
        .applies_output_activation = true,
        .replays_state_updates = body_chain::replays_state && of_shortcut([]<typename C>() { return C::replays_state; }, true),
        .composite = true};
    static constexpr shape input_shape = In;
    static constexpr shape output_shape = body_output;
    /// Start of each inner layer's parameters (and state) in the block's: the body's layers,
    /// then the projection's.
    static constexpr auto parameter_offsets =
        joined_offsets<body_chain::parameter_offsets, of_shortcut([]<typename C>() { return C::parameter_offsets; }, no_offsets)>();
    static constexpr auto state_offsets =
        joined_offsets<body_chain::state_offsets, of_shortcut([]<typename C>() { return C::state_offsets; }, no_offsets)>();
    static constexpr std::size_t parameter_count = parameter_offsets.back();
    static constexpr std::size_t state_count = state_offsets.back();
    static constexpr std::size_t flops_per_sample =
        body_chain::flops_per_sample + of_shortcut([]<typename C>() { return C::flops_per_sample; }, std::size_t{0}) +
        output_shape.size();

    /// The inner layers' outputs and caches (the body's, then the projection's).
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept {
        return body_chain::activations(batch).total +
               of_shortcut([&]<typename C>() { return C::activations(batch).total; }, std::size_t{0});
    }
    /// The scratch the inner layers share, then the two gradient buffers of backward.
    static constexpr std::size_t scratch_floats(std::size_t batch) noexcept {
        return inner_scratch(batch) + 2 * align_floats(batch * widest);
    }

    void initialize(std::span<float> parameters, std::span<float> state, rng& g) const {
        // One stream per inner layer, derived from the block's: adding a layer leaves the others alone.
        const std::uint64_t seed = g();
        body_.initialize(parameters.first(body_chain::parameter_offsets.back()), state.first(body_chain::state_offsets.back()), seed);
        if constexpr (has_projection)
            shortcut_.initialize(parameters.subspan(parameter_offsets[body_count]), state.subspan(state_offsets[body_count]), seed,
                                 body_count);
    }

    /// Replays a recorded micro-batch's state updates in the inner layers that have state
    /// (see `layer_context::state_record`).
    void update_state(const float* record, float* state) const noexcept
        requires(traits.replays_state_updates)
    {
        body_.update_state(record, state);
        if constexpr (has_projection)
            shortcut_.update_state(record + state_offsets[body_count], state + state_offsets[body_count]);
    }

    void forward(const layer_context& outer, const forward_buffers& b) const {
        layer_context ctx = outer;
        ctx.gradient_is_pre_activation = false;
        ctx.output_rows_read = ctx.output_columns_read = 0;  // inner outputs are read whole (the sum)
        ctx.input_activation_backward = nullptr;
        ctx.output_activation = nullptr;
        const float* body = body_.forward(ctx, b.input, body_memory(b.cache, b.parameters, b.state, ctx.batch));
        const float* shortcut = b.input.data();
        if constexpr (has_projection)
            shortcut = shortcut_.forward(ctx, b.input, shortcut_memory(b.cache, b.parameters, b.state, ctx.batch));
        float* out = b.output;
        const auto activation = outer.output_activation;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            // Image by image, so that a folded activation meets each sum in cache.
            for (std::size_t n = begin; n < end; ++n) {
                const std::size_t at = n * output_shape.size();
                kernels::map(output_shape.size(), [](auto f, auto s) { return f + s; }, out + at, body + at, shortcut + at);
                if (activation != nullptr) activation(out + at, output_shape.size() / output_shape.channels(), output_shape.channels());
            }
        });
    }

    void backward(const layer_context& outer, const backward_buffers& b) const {
        layer_context ctx = outer;
        ctx.gradient_is_pre_activation = false;
        ctx.output_rows_read = ctx.output_columns_read = 0;  // inner outputs are read whole (the sum)
        ctx.input_activation_backward = nullptr;
        ctx.output_activation_backward = nullptr;
        float* const gradients[2] = {ctx.scratch + inner_scratch(ctx.batch),
                                     ctx.scratch + inner_scratch(ctx.batch) + align_floats(ctx.batch * widest)};
        float* dout = b.output_gradient;
        float* din = b.input_gradient;
        // The derivative of an activation folded into the sum comes first: both paths start from it.
        if (outer.output_activation_backward != nullptr)
            ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                const std::size_t at = begin * output_shape.size();
                outer.output_activation_backward(b.output + at, dout + at, (end - begin) * (output_shape.size() / output_shape.channels()),
                                                 output_shape.channels());
            });
        // The body may overwrite its output gradient, and the shortcut needs it too: the body
        // starts from a copy, in the buffer its last layer does not write, unless that layer
        // leaves its output gradient alone (batch_norm).
        float* body_top = dout;
        if constexpr (!keeps_output_gradient<typename body_chain::template layer_type<body_count - 1>>()) {
            body_top = gradients[body_chain::gradient_buffer[body_count - 1]];
            ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                const std::size_t at = begin * output_shape.size();
                std::memcpy(body_top + at, dout + at, (end - begin) * output_shape.size() * sizeof(float));
            });
        }
        const auto nothing = [](std::size_t) {};
        body_.backward(ctx, b.input, body_memory(b.cache, b.parameters, nullptr, ctx.batch),
                       b.parameter_gradients, gradients, body_top, din, nothing);
        if constexpr (shortcut_count == 0) {
            if (din == nullptr) return;
            ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                const std::size_t at = begin * In.size();
                kernels::map((end - begin) * In.size(), [](auto a, auto g) { return a + g; }, din + at, din + at, dout + at);
            });
        } else {
            // The projection starts from `dout` itself (the body is done with it); its first
            // layer writes to gradients[0] (it reads gradients[1] or `dout`), added to `din` after.
            float* projected = din == nullptr ? nullptr : gradients[0];
            shortcut_.backward(ctx, b.input, shortcut_memory(b.cache, b.parameters, nullptr, ctx.batch),
                               b.parameter_gradients + parameter_offsets[body_count], gradients, dout, projected, nothing);
            if (din == nullptr) return;
            ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                const std::size_t at = begin * In.size();
                kernels::map((end - begin) * In.size(), [](auto a, auto g) { return a + g; }, din + at, din + at,
                             projected + at);
            });
        }
    }

private:
    /// The widest tensor a gradient buffer holds: the block's input or any inner output.
    static constexpr std::size_t widest =
        std::max(body_chain::widest, of_shortcut([]<typename C>() { return C::widest; }, std::size_t{0}));

    static constexpr std::size_t inner_scratch(std::size_t batch) noexcept {
        return align_floats(std::max(body_chain::scratch_floats(batch),
                                     of_shortcut([&]<typename C>() { return C::scratch_floats(batch); }, std::size_t{0})));
    }

    /// The body's activations start the block's cache, the projection's follow; parameters
    /// and state likewise (`parameter_offsets`, `state_offsets`).
    static typename body_chain::pass_memory body_memory(float* cache, const float* parameters, float* state, std::size_t) noexcept {
        return {.activations = cache, .parameters = parameters, .state = state};
    }
    template <bool P = has_projection>
    static auto shortcut_memory(float* cache, const float* parameters, float* state, std::size_t batch) noexcept
        requires P
    {
        return typename shortcut_chain::pass_memory{.activations = cache + body_chain::activations(batch).total,
                                                    .parameters = parameters + parameter_offsets[body_count],
                                                    .state = state == nullptr ? nullptr : state + state_offsets[body_count]};
    }

    body_chain body_{};
    [[no_unique_address]] std::conditional_t<has_projection, shortcut_chain, std::tuple<>> shortcut_{};
};

}  // namespace detail
}  // namespace staticnet
