#pragma once
/// @file
/// `concat<branch<Layers...>...>`: a block that runs several chains of layers on the same
/// input and concatenates their outputs along the channels (Inception, DenseNet). One layer
/// of a `sequential`.
///
/// @code
/// // An Inception-style block: a 1x1 convolution beside a 3x3 one; 8 + 16 output channels.
/// sn::concat<sn::branch<sn::conv2d<8, 1, sn::relu>>,
///            sn::branch<sn::conv2d<16, 3, sn::identity, 1, sn::padding::same>, sn::batch_norm<>, sn::relu>>,
/// // A DenseNet layer: the input itself (an empty branch is the identity), then new features.
/// sn::concat<sn::branch<>, sn::branch<sn::batch_norm<>, sn::relu, sn::conv2d<12, 3, sn::identity, 1, sn::padding::same>>>,
/// @endcode
///
/// Every branch starts from the block's input. Their outputs must have the same height and
/// width (or all be vectors); the block's output has the sum of their channels, branch 0's
/// first. Tensors are channels-last, so each output pixel holds branch 0's channels, then
/// branch 1's, and so on. A branch that does not fit is a compile error naming the block's
/// position and every branch's output shape.
///
/// As with `residual`, the block is one layer to the network: its parameters are branch 0's
/// layers' in order, then branch 1's, and so on, each in its own (Keras) layout and packed
/// without gaps; the same for the non-trainable state. Shapes, counts, FLOPs (the inner
/// layers'; the copies are not arithmetic) and memory are `constexpr`, the architecture
/// fingerprint hashes every inner layer branch by branch, and the summary lists them
/// indented under the block. Inner layers are bound with the block's position. An
/// activation layer after the block is folded into it.
///
/// Backward splits the output gradient into each branch's channels, runs the branches in
/// order, and sums their input gradients in branch order: the same bits for any number of
/// threads. Memory: the branches' outputs and caches live in the block's `cache`; backward
/// uses two gradient buffers in `ctx.scratch` after the scratch the inner layers share.
/// Blocks nest (a branch may hold a `residual` or a `concat`, and a `residual` a `concat`).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
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

namespace detail {
template <typename...>
inline constexpr bool concat_never = false;  // a false that waits for instantiation
}  // namespace detail

/// One path of a `concat` block: `Specs` in sequence from the block's input; no layers is
/// the identity (the input itself joins the concatenation). Only as an argument of `concat`.
template <typename... Specs>
struct branch {
    template <shape In, std::size_t Position>
    struct bind {
        static_assert(detail::concat_never<Specs...>, "staticnet wiring error: branch<...> is allowed only as an argument of "
                                                      "concat<...>");
    };
};

namespace detail {

template <shape In, std::size_t Position, typename... Branches>
class concat_layer;

/// The identity branch, with the interface of the `layer_chain` it stands in for: no
/// layers, no memory, its output is its input.
template <shape In>
struct identity_chain {
    using layers_type = std::tuple<>;
    static constexpr std::size_t size = 0;
    static constexpr shape input_shape = In;
    static constexpr shape output_shape = In;
    static constexpr std::array<std::size_t, 1> parameter_offsets{};
    static constexpr std::array<std::size_t, 1> state_offsets{};
    static constexpr std::size_t flops_per_sample = 0;
    static constexpr bool batch_statistics = false;
    static constexpr bool replays_state = true;
    static constexpr std::size_t widest = In.size();
    struct activation_layout {
        std::size_t total = 0;
    };
    static constexpr activation_layout activations(std::size_t) noexcept { return {}; }
    static constexpr std::size_t scratch_floats(std::size_t) noexcept { return 0; }
};

/// A branch bound to the block's input: its layers and the chain that runs them.
template <std::size_t Position, shape In, typename Branch>
struct bound_branch {
    static_assert(concat_never<Branch>, "staticnet wiring error: every argument of concat<...> must be a branch<...>");
};
template <std::size_t Position, shape In, typename... Specs>
struct bound_branch<Position, In, branch<Specs...>> {
    using binding = bind_layers<Position, In, Specs...>;
    using layers = typename binding::type;
    using chain = std::conditional_t<(sizeof...(Specs) > 0), typename chain_of<chain_packing::packed, layers>::type,
                                     identity_chain<In>>;
};

template <std::size_t layer_position, std::size_t branch_count, bool same_rank, bool same_image_size,
          shape... branch_outputs>
constexpr bool check_concat_wiring() {
    STATICNET_WIRING_CHECK(branch_count >= 1, "concat needs at least one branch<...>");
    STATICNET_WIRING_CHECK(same_rank, "concat's branches must all give images or all give vectors");
    STATICNET_WIRING_CHECK(same_image_size, "concat's branches give images of different heights or widths; every branch "
                                            "must keep the same H x W (the same strides and padding), since only the "
                                            "channels are concatenated");
    return true;
}

}  // namespace detail

/// A block that runs each `branch<...>` on its input and concatenates their outputs along
/// the channels, branch 0's first.
template <typename... Branches>
struct concat {
    template <shape In, std::size_t Position>
    using bind = detail::concat_layer<In, Position, Branches...>;
};

namespace detail {

template <shape In, std::size_t Position, typename... Branches>
class concat_layer {
    template <typename B>
    using branch_of = bound_branch<Position, In, B>;
    static constexpr std::size_t branch_count = sizeof...(Branches);
    static constexpr std::array<shape, branch_count> branch_outputs{branch_of<Branches>::chain::output_shape...};
    /// Branch 0's output, whose height and width every branch must give (the input without branches).
    static constexpr shape first_output = [] {
        if constexpr (branch_count > 0) return branch_outputs[0];
        else return In;
    }();
    static constexpr bool same_rank = [] {
        for (const shape& s : branch_outputs)
            if (s.rank != first_output.rank) return false;
        return true;
    }();
    static constexpr bool same_image_size = [] {
        for (const shape& s : branch_outputs)
            if (s.height() != first_output.height() || s.width() != first_output.width()) return false;
        return true;
    }();
    static_assert(check_concat_wiring<Position, branch_count, same_rank, same_image_size,
                                      branch_of<Branches>::chain::output_shape...>());

public:
    /// Each branch's bound layers (a tuple per branch, empty for the identity), and all of
    /// them in parameter order (what code that walks a block's layers reads; no shortcut).
    using branch_layers = std::tuple<typename branch_of<Branches>::layers...>;
    using body_layers = decltype(std::tuple_cat(std::declval<typename branch_of<Branches>::layers>()...));
    using shortcut_layers = std::tuple<>;

private:
    using chains = std::tuple<typename branch_of<Branches>::chain...>;
    template <std::size_t B>
    using chain = std::tuple_element_t<B, chains>;
    static constexpr std::size_t inner_count = std::tuple_size_v<body_layers>;
    static constexpr std::array<std::size_t, branch_count> branch_sizes{branch_of<Branches>::chain::size...};
    static constexpr std::array<std::size_t, branch_count> branch_channels{branch_of<Branches>::chain::output_shape.channels()...};
    static constexpr std::size_t pixels = first_output.size() / first_output.channels();
    static constexpr std::size_t channels = (std::size_t{0} + ... + branch_of<Branches>::chain::output_shape.channels());

    /// The branches' offsets joined: branch B's layers start after all of branch B - 1's.
    template <typename Member>
    static constexpr auto joined_offsets(Member member) {
        std::array<std::size_t, inner_count + 1> offsets{};
        std::size_t k = 0, base = 0;
        const auto one = [&](const auto& branch_offsets) {
            for (std::size_t i = 1; i < branch_offsets.size(); ++i) offsets[++k] = base + branch_offsets[i];
            base += branch_offsets.back();
        };
        (one(member(static_cast<typename branch_of<Branches>::chain*>(nullptr))), ...);
        return offsets;
    }

public:
    static constexpr std::string_view name = "concat";
    /// An activation layer after the block is folded into its copy (layer.hpp); batch
    /// statistics in any branch make the block compute across samples too; it replays state
    /// updates when every inner layer does.
    static constexpr layer_traits traits{.batch_statistics = (false || ... || branch_of<Branches>::chain::batch_statistics),
                                         .applies_output_activation = true,
                                         .replays_state_updates = (true && ... && branch_of<Branches>::chain::replays_state),
                                         .composite = true};
    static constexpr shape input_shape = In;
    static constexpr shape output_shape =
        first_output.is_image() ? shape{first_output.height(), first_output.width(), channels} : shape{channels};
    /// Start of each inner layer's parameters (and state) in the block's, in `body_layers`' order.
    static constexpr auto parameter_offsets = joined_offsets([]<typename C>(C*) { return C::parameter_offsets; });
    static constexpr auto state_offsets = joined_offsets([]<typename C>(C*) { return C::state_offsets; });
    static constexpr std::size_t parameter_count = parameter_offsets.back();
    static constexpr std::size_t state_count = state_offsets.back();
    static constexpr std::size_t flops_per_sample = (std::size_t{0} + ... + branch_of<Branches>::chain::flops_per_sample);

    /// The branches' outputs and caches, branch 0's first.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept {
        return (std::size_t{0} + ... + branch_of<Branches>::chain::activations(batch).total);
    }
    /// The scratch the inner layers share, then the two gradient buffers of backward.
    static constexpr std::size_t scratch_floats(std::size_t batch) noexcept {
        return inner_scratch(batch) + 2 * align_floats(batch * widest);
    }

    void initialize(std::span<float> parameters, std::span<float> state, rng& g) const {
        // One stream per inner layer, derived from the block's and the layer's index in the block.
        const std::uint64_t seed = g();
        for_each_branch([&]<std::size_t B>() {
            if constexpr (branch_sizes[B] > 0)
                std::get<B>(chains_).initialize(parameters.subspan(parameter_offsets[first_layer<B>()]),
                                                state.subspan(state_offsets[first_layer<B>()]), seed, first_layer<B>());
        });
    }

    /// Replays a recorded micro-batch's state updates in the inner layers that have state
    /// (see `layer_context::state_record`).
    void update_state(const float* record, float* state) const noexcept
        requires(traits.replays_state_updates)
    {
        for_each_branch([&]<std::size_t B>() {
            if constexpr (branch_sizes[B] > 0 && chain<B>::state_offsets.back() > 0)
                std::get<B>(chains_).update_state(record + state_offsets[first_layer<B>()], state + state_offsets[first_layer<B>()]);
        });
    }

    void forward(const layer_context& outer, const forward_buffers& b) const {
        layer_context ctx = outer;
        ctx.gradient_is_pre_activation = false;
        ctx.output_rows_read = ctx.output_columns_read = 0;  // inner outputs are read whole (the copy)
        ctx.input_activation_backward = nullptr;
        ctx.output_activation = nullptr;
        std::array<const float*, branch_count> outputs{};
        for_each_branch([&]<std::size_t B>() {
            if constexpr (branch_sizes[B] > 0)
                outputs[B] = std::get<B>(chains_).forward(ctx, b.input, memory<B>(b.cache, b.parameters, b.state, ctx.batch));
            else outputs[B] = b.input.data();
        });
        float* out = b.output;
        const auto activation = outer.output_activation;
        ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
            // Image by image, so that a folded activation meets each copy in cache.
            for (std::size_t n = begin; n < end; ++n) {
                float* image = out + n * output_shape.size();
                std::size_t at = 0;
                for (std::size_t k = 0; k < branch_count; ++k) {
                    const float* from = outputs[k] + n * pixels * branch_channels[k];
                    for (std::size_t p = 0; p < pixels; ++p)
                        std::memcpy(image + p * channels + at, from + p * branch_channels[k], branch_channels[k] * sizeof(float));
                    at += branch_channels[k];
                }
                if (activation != nullptr) activation(image, pixels, channels);
            }
        });
    }

    void backward(const layer_context& outer, const backward_buffers& b) const {
        layer_context ctx = outer;
        ctx.gradient_is_pre_activation = false;
        ctx.output_rows_read = ctx.output_columns_read = 0;
        ctx.input_activation_backward = nullptr;
        ctx.output_activation_backward = nullptr;
        float* const gradients[2] = {ctx.scratch + inner_scratch(ctx.batch),
                                     ctx.scratch + inner_scratch(ctx.batch) + align_floats(ctx.batch * widest)};
        float* dout = b.output_gradient;
        float* din = b.input_gradient;
        // The derivative of an activation folded into the block comes first: every branch starts from it.
        if (outer.output_activation_backward != nullptr)
            ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                const std::size_t at = begin * output_shape.size();
                outer.output_activation_backward(b.output + at, dout + at, (end - begin) * pixels, channels);
            });
        const auto nothing = [](std::size_t) {};
        for_each_branch([&]<std::size_t B>() {
            constexpr std::size_t c = branch_channels[B], first_channel = channel_offset<B>();
            // Branch 0 writes the input gradient, the others are added to it, in branch order.
            if constexpr (branch_sizes[B] == 0) {
                if (din == nullptr) return;
                ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                    for (std::size_t p = begin * pixels; p < end * pixels; ++p) {
                        float* to = din + p * c;
                        const float* from = dout + p * channels + first_channel;
                        if constexpr (B == 0) std::memcpy(to, from, c * sizeof(float));
                        else kernels::map(c, [](auto a, auto g) { return a + g; }, to, to, from);
                    }
                });
            } else {
                // The branch's channels of the output gradient, contiguous, where its chain expects its top.
                float* top = gradients[chain<B>::gradient_buffer[branch_sizes[B] - 1]];
                ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                    for (std::size_t p = begin * pixels; p < end * pixels; ++p)
                        std::memcpy(top + p * c, dout + p * channels + first_channel, c * sizeof(float));
                });
                // A later branch's chain writes its input gradient to gradients[0] (its first
                // layer reads gradients[1] or `top`), added to `din` after.
                float* bottom = din == nullptr ? nullptr : B == 0 ? din : gradients[0];
                std::get<B>(chains_).backward(ctx, b.input, memory<B>(b.cache, b.parameters, nullptr, ctx.batch),
                                              b.parameter_gradients + parameter_offsets[first_layer<B>()], gradients, top,
                                              bottom, nothing);
                if (B == 0 || din == nullptr) return;
                ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                    const std::size_t at = begin * In.size();
                    kernels::map((end - begin) * In.size(), [](auto a, auto g) { return a + g; }, din + at, din + at,
                                 bottom + at);
                });
            }
        });
    }

private:
    /// The widest tensor a gradient buffer holds: the block's input or any inner output.
    static constexpr std::size_t widest = std::max({In.size(), branch_of<Branches>::chain::widest...});

    static constexpr std::size_t inner_scratch(std::size_t batch) noexcept {
        return align_floats(std::max({std::size_t{0}, branch_of<Branches>::chain::scratch_floats(batch)...}));
    }

    /// Index (in `body_layers`) of branch B's first layer, and its first output channel.
    template <std::size_t B>
    static constexpr std::size_t first_layer() noexcept {
        std::size_t k = 0;
        for (std::size_t i = 0; i < B; ++i) k += branch_sizes[i];
        return k;
    }
    template <std::size_t B>
    static constexpr std::size_t channel_offset() noexcept {
        std::size_t c = 0;
        for (std::size_t i = 0; i < B; ++i) c += branch_channels[i];
        return c;
    }

    template <typename F>
    static void for_each_branch(F&& f) {
        [&]<std::size_t... B>(std::index_sequence<B...>) { (f.template operator()<B>(), ...); }(std::make_index_sequence<branch_count>{});
    }

    /// Branch B's activations follow those of the branches before it in the block's cache;
    /// its parameters and state start at its first layer's offsets.
    template <std::size_t B>
    static auto memory(float* cache, const float* parameters, float* state, std::size_t batch) noexcept {
        std::size_t at = 0;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((at += chain<I>::activations(batch).total), ...);
        }(std::make_index_sequence<B>{});
        return typename chain<B>::pass_memory{.activations = cache + at,
                                              .parameters = parameters + parameter_offsets[first_layer<B>()],
                                              .state = state == nullptr ? nullptr : state + state_offsets[first_layer<B>()]};
    }

    [[no_unique_address]] chains chains_{};
};

}  // namespace detail
}  // namespace staticnet
