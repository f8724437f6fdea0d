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

private:
    static constexpr std::size_t body_count = sizeof...(BodySpecs);
    static constexpr std::size_t shortcut_count = sizeof...(ShortcutSpecs);
    static constexpr std::size_t inner_count = body_count + shortcut_count;
    using inner_layers = decltype(std::tuple_cat(std::declval<body_layers>(), std::declval<shortcut_layers>()));
    template <std::size_t K>
    using inner = std::tuple_element_t<K, inner_layers>;

    /// f.template operator()<L...>() over the inner layers, body first.
    template <typename F>
    static constexpr auto for_inner(F&& f) {
        return [&]<std::size_t... K>(std::index_sequence<K...>) { return f.template operator()<inner<K>...>(); }
        (std::make_index_sequence<inner_count>{});
    }
    /// Start of each inner layer's block in a packed array of the given per-layer sizes.
    static constexpr std::array<std::size_t, inner_count + 1> packed_offsets(std::array<std::size_t, inner_count> sizes) {
        std::array<std::size_t, inner_count + 1> offsets{};
        for (std::size_t k = 0; k < inner_count; ++k) offsets[k + 1] = offsets[k] + sizes[k];
        return offsets;
    }

public:
    static constexpr std::string_view name = "residual";
    /// An activation layer after the block is folded into its sum (layer.hpp).
    static constexpr bool applies_output_activation = true;
    /// Batch statistics anywhere inside make the block compute across samples too.
    static constexpr bool uses_batch_statistics =
        for_inner([]<typename... L>() { return (false || ... || detail::uses_batch_statistics<L>()); });
    static constexpr shape input_shape = In;
    static constexpr shape output_shape = body_output;
    static constexpr auto parameter_offsets = packed_offsets(
        for_inner([]<typename... L>() { return std::array<std::size_t, inner_count>{L::parameter_count...}; }));
    static constexpr auto state_offsets =
        packed_offsets(for_inner([]<typename... L>() { return std::array<std::size_t, inner_count>{L::state_count...}; }));
    static constexpr std::size_t parameter_count = parameter_offsets.back();
    static constexpr std::size_t state_count = state_offsets.back();
    static constexpr std::size_t flops_per_sample =
        for_inner([]<typename... L>() { return (std::size_t{0} + ... + L::flops_per_sample); }) + output_shape.size();

    /// The inner layers' outputs and caches, each block 64-byte aligned.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept { return cache_layout(batch).total; }
    /// The scratch the inner layers share, then the two gradient buffers of backward.
    static constexpr std::size_t scratch_floats(std::size_t batch) noexcept {
        return inner_scratch(batch) + 2 * align_floats(batch * widest);
    }

    void initialize(std::span<float> parameters, std::span<float> state, rng& g) const {
        // One stream per inner layer, derived from the block's: adding a layer leaves the others alone.
        const std::uint64_t seed = g();
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (initialize_inner<K>(parameters, state, seed), ...);
        }(std::make_index_sequence<inner_count>{});
    }

    /// Replays a recorded micro-batch's state updates in the inner layers that have state
    /// (see `layer_context::state_record`).
    void update_state(const float* record, float* state) const noexcept
        requires(for_inner([]<typename... L>() { return (true && ... && detail::replays_state_updates<L>()); }))
    {
        const auto one = [&]<std::size_t K>() {
            if constexpr (inner<K>::state_count != 0)
                std::get<K>(layers_).update_state(record + state_offsets[K], state + state_offsets[K]);
        };
        [&]<std::size_t... K>(std::index_sequence<K...>) { (one.template operator()<K>(), ...); }(std::make_index_sequence<inner_count>{});
    }

    void forward(const layer_context& outer, const forward_buffers& b) const {
        layer_context ctx = outer;
        ctx.gradient_is_pre_activation = false;
        ctx.output_rows_read = ctx.output_columns_read = 0;  // inner outputs are read whole (the sum)
        ctx.input_activation_backward = nullptr;
        ctx.output_activation = nullptr;
        const auto w = cache_layout(ctx.batch);
        float* cache = b.cache;
        const auto forward_inner = [&]<std::size_t K>() {
            if constexpr (!folded<K>()) {
                layer_context inner_ctx = ctx;
                if constexpr (folded<K + 1>()) inner_ctx.output_activation = &inner<K + 1>::activation_type::forward;
                std::get<K>(layers_).forward(
                    inner_ctx, forward_buffers{.input = buffer<role::input, const float>(inner_input<K>(b.input, cache, w)),
                                               .output = buffer<role::output, float>(cache + w.output[K]),
                                               .parameters = buffer<role::parameters, const float>(b.parameters + parameter_offsets[K]),
                                               .state = buffer<role::state, float>(b.state + state_offsets[K]),
                                               .cache = buffer<role::cache, float>(cache + w.cache[K])});
            }
        };
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (forward_inner.template operator()<K>(), ...);
        }(std::make_index_sequence<inner_count>{});
        const float* body = cache + w.output[body_count - 1];
        const float* shortcut = shortcut_count == 0 ? b.input.data() : cache + w.output[inner_count - 1];
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
        const auto w = cache_layout(ctx.batch);
        float* cache = b.cache;
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
        if constexpr (!keeps_output_gradient<inner<body_count - 1>>()) {
            body_top = gradients[gradient_buffer[body_count - 1]];
            ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                const std::size_t at = begin * output_shape.size();
                std::memcpy(body_top + at, dout + at, (end - begin) * output_shape.size() * sizeof(float));
            });
        }
        // Layer k reads its output gradient from gradients[gradient_buffer[k]] (from `top` when it
        // is the chain's last layer that runs) and writes its input gradient to the buffer of the
        // layer before (the chain's first layer to `bottom`).
        auto backward_chain = [&]<std::size_t First, std::size_t... J>(std::integral_constant<std::size_t, First>,
                                                                      std::index_sequence<J...>, float* top, float* bottom) {
            constexpr std::size_t count = sizeof...(J);
            (backward_inner<First + count - 1 - J, First, First + count>(ctx, b, w, cache, gradients, top, bottom), ...);
        };
        backward_chain(std::integral_constant<std::size_t, 0>{}, std::make_index_sequence<body_count>{}, body_top, din);
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
            backward_chain(std::integral_constant<std::size_t, body_count>{}, std::make_index_sequence<shortcut_count>{},
                           dout, projected);
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
        for_inner([]<typename... L>() { return std::max({In.size(), L::output_shape.size()...}); });

    static constexpr std::size_t inner_scratch(std::size_t batch) noexcept {
        return align_floats(for_inner([&]<typename... L>() { return std::max({std::size_t{0}, L::scratch_floats(batch)...}); }));
    }

    struct layout {
        std::array<std::size_t, inner_count> output{}, cache{};
        std::size_t total = 0;
    };
    static constexpr layout cache_layout(std::size_t batch) noexcept {
        layout w;
        std::size_t at = 0;
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            // A folded activation layer's output is the output of the layer before it.
            ((w.output[K] = folded<K>() ? w.output[K == 0 ? 0 : K - 1] : at,
              at += folded<K>() ? 0 : align_floats(batch * inner<K>::output_shape.size()), w.cache[K] = at,
              at += align_floats(inner<K>::cache_floats(batch))),
             ...);
        }(std::make_index_sequence<inner_count>{});
        w.total = at;
        return w;
    }

    /// Inner layer K reads the block's input if it is the first of the body or of the
    /// shortcut, else the output of the layer before it.
    template <std::size_t K>
    static const float* inner_input(const float* input, const float* cache, const layout& w) noexcept {
        if constexpr (K == 0 || K == body_count) return input;
        else return cache + w.output[K - 1];
    }

    /// Whether inner layer K is an activation layer folded into the layer before it in its
    /// chain (layer.hpp, `applies_output_activation`): it runs neither pass, and its output is
    /// that layer's.
    template <std::size_t K>
    static constexpr bool folded() noexcept {
        if constexpr (K == 0 || K == body_count || K >= inner_count) return false;  // a chain's first layer
        else return folds_into<inner<K - 1>, inner<K>>();
    }
    /// Whether every layer of the chain after K (up to End) is folded away: K then reads `top`.
    template <std::size_t K, std::size_t End>
    static constexpr bool reads_top() noexcept {
        return [&]<std::size_t... J>(std::index_sequence<J...>) { return (true && ... && folded<K + 1 + J>()); }
        (std::make_index_sequence<End - K - 1>{});
    }
    /// Which of the two gradient buffers holds inner layer K's output gradient: each chain's
    /// first layer reads buffer 1 (the projection's writes buffer 0), and they alternate up
    /// the chain except across a folded layer, which shares its neighbours' buffer.
    static constexpr auto gradient_buffer = [] {
        constexpr auto folds = []<std::size_t... K>(std::index_sequence<K...>) {
            return std::array<bool, inner_count>{folded<K>()...};
        }(std::make_index_sequence<inner_count>{});
        std::array<std::size_t, inner_count> buffer{};
        for (std::size_t k = 0; k < inner_count; ++k)
            buffer[k] = k == 0 || k == body_count ? 1 : folds[k] ? buffer[k - 1] : 1 - buffer[k - 1];
        return buffer;
    }();

    /// Backward of inner layer K of the chain [First, End).
    template <std::size_t K, std::size_t First, std::size_t End>
    void backward_inner(layer_context ctx, const backward_buffers& b, const layout& w, float* cache,
                        float* const (&gradients)[2], float* top, float* bottom) const {
        if constexpr (folded<K>()) return;
        float* output_gradient = reads_top<K, End>() ? top : gradients[gradient_buffer[K]];
        float* input_gradient = K == First ? bottom : gradients[gradient_buffer[K == First ? K : K - 1]];
        if constexpr (folded<K + 1>()) ctx.output_activation_backward = &inner<K + 1>::activation_type::backward;
        std::get<K>(layers_).backward(
            ctx, backward_buffers{
                     .input = buffer<role::input, const float>(inner_input<K>(b.input, cache, w)),
                     .output = buffer<role::output, const float>(cache + w.output[K]),
                     .output_gradient = buffer<role::output_gradient, float>(output_gradient),
                     .input_gradient = buffer<role::input_gradient, float>(input_gradient),
                     .parameters = buffer<role::parameters, const float>(b.parameters + parameter_offsets[K]),
                     .parameter_gradients = buffer<role::parameter_gradients, float>(b.parameter_gradients +
                                                                                     parameter_offsets[K]),
                     .cache = buffer<role::cache, float>(cache + w.cache[K])});
    }

    template <std::size_t K>
    void initialize_inner(std::span<float> parameters, std::span<float> state, std::uint64_t seed) const {
        rng g = rng::derived(seed, K);
        std::get<K>(layers_).initialize(parameters.subspan(parameter_offsets[K], inner<K>::parameter_count),
                                        state.subspan(state_offsets[K], inner<K>::state_count), g);
    }

    inner_layers layers_{};
};

}  // namespace detail
}  // namespace staticnet
