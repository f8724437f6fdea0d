#pragma once
/// @file
/// `sequential<input<...>, Layers...>`: a network whose architecture is a type.
///
/// Each layer spec is bound to the output shape of the layer before it, at compile time, so
/// a mis-wired network does not compile (the message names the layer position and shapes).
/// Everything that follows from the architecture is a `constexpr` member: shapes, parameter
/// counts, the offset of every layer in the arenas, FLOPs and activation bytes per sample,
/// and an architecture fingerprint.
///
/// A `sequential` object owns the memory of the network:
///  - the parameter arena: every trainable parameter, one 64-byte aligned block per layer,
///  - the gradient arena: the same layout, so an optimizer or an allreduce is one flat loop,
///  - the state arena: non-trainable values (batch_norm's moving statistics),
///  - the workspace: activations, per-layer caches, shared scratch and two gradient buffers,
///    sized by `prepare(batch)` once; forward and backward then allocate nothing.
///
/// The layers themselves hold nothing, so several passes may run at once, each in its own
/// `workspace` and adding to its own gradient block (a trainer's threads, each on its own
/// part of a batch): the overloads of `forward` and `backward` that take them.

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
#include "../core/fingerprint.hpp"
#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "../layers/input.hpp"
#include "../layers/layer.hpp"
#include "../layers/layer_list.hpp"

namespace staticnet {

template <typename Input, typename... Specs>
class sequential {
    static_assert(detail::is_input<Input>,
                  "staticnet wiring error: the first argument of sequential must be input<H, W, C> or input<N>");
    static_assert(sizeof...(Specs) > 0, "staticnet wiring error: sequential needs at least one layer after input");
    using binding = detail::bind_layers<1, Input::value, Specs...>;

public:
    using layers_type = typename binding::type;
    template <std::size_t I>
    using layer_type = std::tuple_element_t<I, layers_type>;

    static constexpr std::size_t layer_count = sizeof...(Specs);
    static constexpr shape input_shape = Input::value;
    static constexpr shape output_shape = binding::output;

private:
    template <typename F>
    static constexpr auto for_layers(F&& f) {
        return [&]<std::size_t... I>(std::index_sequence<I...>) { return f.template operator()<layer_type<I>...>(); }
        (std::make_index_sequence<layer_count>{});
    }
    /// Offsets of consecutive blocks of the given sizes, each block 64-byte aligned.
    static constexpr std::array<std::size_t, layer_count + 1> aligned_offsets(std::array<std::size_t, layer_count> sizes) {
        std::array<std::size_t, layer_count + 1> offsets{};
        for (std::size_t i = 0; i < layer_count; ++i) offsets[i + 1] = offsets[i] + align_floats(sizes[i]);
        return offsets;
    }

    /// Whether layer I + 1 applies the derivative of layer I's activation.
    template <std::size_t I>
    static constexpr bool next_applies_derivative() noexcept {
        if constexpr (I + 1 < layer_count)
            return detail::ends_in_monotone_activation<layer_type<I>>() &&
                   detail::applies_input_activation_derivative<layer_type<I + 1>>();
        else return false;
    }

    /// Whether layer I is an activation layer folded into layer I - 1 (`applies_output_activation`
    /// in layer.hpp): it runs neither pass, and its output is layer I - 1's.
    template <std::size_t I>
    static constexpr bool folded() noexcept {
        if constexpr (I > 0 && I < layer_count) return detail::folds_into<layer_type<I - 1>, layer_type<I>>();
        else return false;
    }
    /// Whether layer I's backward is skipped: folded, or it would copy its output gradient
    /// unchanged (an activation layer whose derivative the next layer applies, e.g. relu before
    /// max pooling). Layers I - 1 and I + 1 then share the buffer. The first layer always runs
    /// (it writes the caller's input gradient).
    template <std::size_t I>
    static constexpr bool skips_backward() noexcept {
        if constexpr (I > 0)
            return folded<I>() || (detail::passes_pre_activation_gradient<layer_type<I>>() && next_applies_derivative<I>());
        else return false;
    }

public:
    /// Trainable parameters of every layer.
    static constexpr std::size_t trainable_parameter_count =
        for_layers([]<typename... L>() { return (std::size_t{0} + ... + L::parameter_count); });
    /// Non-trainable values (moving statistics).
    static constexpr std::size_t state_count =
        for_layers([]<typename... L>() { return (std::size_t{0} + ... + L::state_count); });
    /// All parameters, as Keras's "Total params".
    static constexpr std::size_t parameter_count = trainable_parameter_count + state_count;
    /// Forward FLOPs of one sample (a multiply-add counts 2).
    static constexpr std::size_t flops_per_sample =
        for_layers([]<typename... L>() { return (std::size_t{0} + ... + L::flops_per_sample); });
    /// Bytes of activations kept for backward per sample: every layer's output and cache (an
    /// activation layer folded into the layer before shares that layer's output).
    static constexpr std::size_t activation_bytes_per_sample = []<std::size_t... I>(std::index_sequence<I...>) {
        return (std::size_t{0} + ... +
                ((folded<I>() ? 0 : layer_type<I>::output_shape.size()) + layer_type<I>::cache_floats(1))) *
               sizeof(float);
    }(std::make_index_sequence<layer_count>{});
    /// Start of each layer's parameters in the parameter (and gradient) arena.
    static constexpr auto parameter_offsets =
        aligned_offsets(for_layers([]<typename... L>() { return std::array<std::size_t, layer_count>{L::parameter_count...}; }));
    static constexpr auto state_offsets =
        aligned_offsets(for_layers([]<typename... L>() { return std::array<std::size_t, layer_count>{L::state_count...}; }));
    /// Whether every sample's forward and backward pass is independent of the other samples
    /// of its batch (no batch statistics): the gradient of a batch is then the sum of the
    /// gradients of its parts.
    static constexpr bool samples_independent =
        for_layers([]<typename... L>() { return !(false || ... || detail::uses_batch_statistics<L>()); });
    /// Whether training can record each micro-batch's state updates (`layer_context::state_record`)
    /// and replay them with `update_state`: every layer with state can.
    static constexpr bool replays_state_updates =
        for_layers([]<typename... L>() { return (true && ... && detail::replays_state_updates<L>()); });
    /// Floats in the state arena, and so in one micro-batch's record of state updates.
    static constexpr std::size_t state_size = state_offsets.back();
    /// Floats in the parameter arena (parameters plus alignment padding, which stays zero).
    static constexpr std::size_t arena_size = parameter_offsets.back();
    /// A hash of the layer list and shapes: equal for equal architectures.
    static constexpr std::uint64_t fingerprint = for_layers([]<typename... L>() {
        std::uint64_t h = detail::fnv1a(detail::fnv_offset, std::string_view{"staticnet.sequential.v1"});
        auto shape_hash = [&](shape s) {
            h = detail::fnv1a(h, s.rank);
            for (auto d : s.dims) h = detail::fnv1a(h, d);
        };
        shape_hash(input_shape);
        ((h = detail::hash_layer<L>(h)), ...);
        return h;
    });

    /// Floats of workspace (activations, caches, scratch, gradient buffers) for a batch size.
    static constexpr std::size_t workspace_floats(std::size_t batch) noexcept {
        const auto w = workspace_layout(batch);
        return w.total;
    }
    /// The memory of a `sequential` object prepared for `batch`, in bytes: the parameter,
    /// gradient and state arenas and the workspace. A trainer adds the optimizer state (Adam:
    /// two more arenas) and its batch buffers (inputs and targets of one rank's batch part).
    static constexpr std::size_t memory_bytes(std::size_t batch) noexcept {
        return (2 * arena_size + state_offsets.back() + workspace_floats(batch)) * sizeof(float);
    }

    /// Memory of one forward/backward pass of up to `prepared_batch()` samples: activations,
    /// caches, scratch and the two gradient buffers (`workspace_floats`).
    class workspace {
    public:
        /// Sizes it for batches of up to `batch` samples (allocates only when it grows).
        void prepare(std::size_t batch) {
            if (batch <= batch_) return;
            floats_.resize(workspace_floats(batch));
            batch_ = batch;
        }
        [[nodiscard]] std::size_t prepared_batch() const noexcept { return batch_; }

    private:
        friend class sequential;
        aligned_buffer<float> floats_;
        std::size_t batch_ = 0;
    };

    sequential() : params_(arena_size), grads_(arena_size), state_(state_offsets.back()) {}

    /// Glorot-uniform kernels, zero biases (Keras's defaults), from `seed`.
    void initialize(std::uint64_t seed) {
        [&]<std::size_t... I>(std::index_sequence<I...>) { (initialize_layer<I>(seed), ...); }
        (std::make_index_sequence<layer_count>{});
    }

    /// Sizes the workspace for batches of up to `batch` samples (allocates only when it grows).
    void prepare(std::size_t batch) { workspace_.prepare(batch); }
    [[nodiscard]] std::size_t prepared_batch() const noexcept { return workspace_.prepared_batch(); }

    /// Runs the layers on `ctx.batch` samples at `input`; returns the output [batch x output].
    /// `ctx.scratch` is set here.
    const float* forward(const float* input, layer_context ctx) { return forward(input, ctx, workspace_); }

    /// The same in `ws` (prepared for at least `ctx.batch`): concurrent calls with distinct
    /// workspaces are safe in inference, and in training for layers without state updates
    /// (see `samples_independent`).
    const float* forward(const float* input, layer_context ctx, workspace& ws) {
        const auto w = workspace_layout(ctx.batch);
        float* base = ws.floats_.data();
        ctx.scratch = base + w.scratch;
        float* state = ctx.state_record != nullptr ? ctx.state_record : state_.data();  // a record has the state's layout
        const auto forward_layer = [&]<std::size_t I>() {
            if constexpr (!folded<I>()) {
                layer_context layer_ctx = context_for<I>(ctx);
                layer_ctx.output_activation = nullptr;
                if constexpr (folded<I + 1>()) layer_ctx.output_activation = &layer_type<I + 1>::activation_type::forward;
                std::get<I>(layers_).forward(
                    layer_ctx, forward_buffers{
                        .input = buffer<role::input, const float>(I == 0 ? input : base + w.output[I == 0 ? 0 : I - 1]),
                        .output = buffer<role::output, float>(base + w.output[I]),
                        .parameters = buffer<role::parameters, const float>(params_.data() + parameter_offsets[I]),
                        .state = buffer<role::state, float>(state + state_offsets[I]),
                        .cache = buffer<role::cache, float>(base + w.cache[I])});
            }
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (forward_layer.template operator()<I>(), ...);
        }(std::make_index_sequence<layer_count>{});
        return base + w.output[layer_count - 1];
    }

    /// Applies the state updates that a training forward pass with `layer_context::state_record
    /// = record` wrote there (`state_size` floats), as that pass would have applied them.
    void update_state(const float* record) noexcept requires replays_state_updates {
        const auto one = [&]<std::size_t I>() {
            if constexpr (layer_type<I>::state_count != 0)
                std::get<I>(layers_).update_state(record + state_offsets[I], state_.data() + state_offsets[I]);
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) { (one.template operator()<I>(), ...); }(std::make_index_sequence<layer_count>{});
    }

    /// The gradient buffer the loss writes d(loss)/d(output) into before `backward`.
    float* output_gradient(std::size_t batch) noexcept { return output_gradient(batch, workspace_); }
    float* output_gradient(std::size_t batch, workspace& ws) noexcept {
        return ws.floats_.data() + workspace_layout(batch).gradient[gradient_buffer[layer_count - 1]];
    }

    /// Backpropagates from `output_gradient(ctx.batch)` (overwritten) after `forward` on the
    /// same input; adds the parameter gradients to the gradient arena. With `input_gradient`
    /// non-null, also writes d(loss)/d(input) there. `on_layer_done(i)` is called as soon as
    /// layer i's parameter gradients are final (last layer first), so a communicator can start
    /// reducing them while the layers below are still running.
    template <typename OnLayerDone = void (*)(std::size_t)>
    void backward(const float* input, layer_context ctx, float* input_gradient = nullptr,
                  OnLayerDone&& on_layer_done = [](std::size_t) {}) {
        backward(input, ctx, workspace_, grads_.span(), input_gradient, on_layer_done);
    }

    /// The same after `forward` in `ws`, adding the parameter gradients to `gradients` (a
    /// block laid out as the gradient arena, `arena_size` floats) instead of the arena.
    template <typename OnLayerDone = void (*)(std::size_t)>
    void backward(const float* input, layer_context ctx, workspace& ws, std::span<float> gradients,
                  float* input_gradient = nullptr, OnLayerDone&& on_layer_done = [](std::size_t) {}) {
        const auto w = workspace_layout(ctx.batch);
        ctx.scratch = ws.floats_.data() + w.scratch;
        const bool last_pre_activation = ctx.gradient_is_pre_activation;
        [&]<std::size_t... J>(std::index_sequence<J...>) {
            ((backward_layer<layer_count - 1 - J>(input, ctx, ws.floats_.data(), gradients.data(), w,
                                                  last_pre_activation, input_gradient),
              on_layer_done(layer_count - 1 - J)),
             ...);
        }(std::make_index_sequence<layer_count>{});
    }

    [[nodiscard]] std::span<float> parameters() noexcept { return params_.span(); }
    [[nodiscard]] std::span<const float> parameters() const noexcept { return params_.span(); }
    [[nodiscard]] std::span<float> gradients() noexcept { return grads_.span(); }
    [[nodiscard]] std::span<const float> gradients() const noexcept { return grads_.span(); }
    [[nodiscard]] std::span<float> state() noexcept { return state_.span(); }
    [[nodiscard]] std::span<const float> state() const noexcept { return state_.span(); }

    template <std::size_t I>
    [[nodiscard]] std::span<float> layer_parameters() noexcept {
        return {params_.data() + parameter_offsets[I], layer_type<I>::parameter_count};
    }
    template <std::size_t I>
    [[nodiscard]] std::span<float> layer_gradients() noexcept {
        return {grads_.data() + parameter_offsets[I], layer_type<I>::parameter_count};
    }
    /// Layer i's block of the parameter (and gradient) arena, padding included.
    [[nodiscard]] static constexpr std::size_t layer_offset(std::size_t i) noexcept { return parameter_offsets[i]; }
    [[nodiscard]] static constexpr std::size_t layer_block(std::size_t i) noexcept {
        return parameter_offsets[i + 1] - parameter_offsets[i];
    }

    template <std::size_t I>
    [[nodiscard]] std::span<float> layer_state() noexcept {
        return {state_.data() + state_offsets[I], layer_type<I>::state_count};
    }

private:
    struct layout {
        std::array<std::size_t, layer_count> output{}, cache{};
        std::size_t scratch = 0;
        std::array<std::size_t, 2> gradient{};
        std::size_t total = 0;
    };
    static constexpr layout workspace_layout(std::size_t batch) noexcept {
        layout w;
        std::size_t at = 0, scratch = 0, widest = input_shape.size();
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            // A folded activation layer's output is the output of the layer before it.
            ((w.output[I] = folded<I>() ? w.output[I == 0 ? 0 : I - 1] : at,
              at += folded<I>() ? 0 : align_floats(batch * layer_type<I>::output_shape.size()), w.cache[I] = at,
              at += align_floats(layer_type<I>::cache_floats(batch)),
              scratch = std::max(scratch, layer_type<I>::scratch_floats(batch)),
              widest = std::max(widest, layer_type<I>::output_shape.size())),
             ...);
        }(std::make_index_sequence<layer_count>{});
        w.scratch = at;
        at += align_floats(scratch);
        for (auto& g : w.gradient) {
            g = at;
            at += align_floats(batch * widest);
        }
        w.total = at;
        return w;
    }

    template <std::size_t I>
    void initialize_layer(std::uint64_t seed) {
        rng g = rng::derived(seed, I);  // one stream per layer: adding a layer leaves the others' weights alone
        std::get<I>(layers_).initialize(layer_parameters<I>(), layer_state<I>(), g);
    }

public:
    /// Which of the two gradient buffers of the workspace holds layer I's output gradient in
    /// backward: they alternate from the loss's (layer_count % 2) down, except across a
    /// skipped layer (`skips_backward`), whose neighbours share one.
    static constexpr auto gradient_buffer = [] {
        constexpr auto skips = []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<bool, layer_count>{skips_backward<I>()...};
        }(std::make_index_sequence<layer_count>{});
        std::array<std::size_t, layer_count> buffer{};
        buffer[layer_count - 1] = layer_count % 2;
        for (std::size_t i = layer_count - 1; i > 0; --i) buffer[i - 1] = skips[i] ? buffer[i] : 1 - buffer[i];
        return buffer;
    }();

private:
    /// `ctx` for layer I: how much of its output the next layer reads.
    template <std::size_t I>
    static layer_context context_for(layer_context ctx) noexcept {
        if constexpr (I + 1 < layer_count) {
            ctx.output_rows_read = detail::input_rows_read<layer_type<I + 1>>();
            ctx.output_columns_read = detail::input_columns_read<layer_type<I + 1>>();
        } else {
            ctx.output_rows_read = ctx.output_columns_read = 0;
        }
        return ctx;
    }

    // Layer I reads its output gradient from buffer `gradient_buffer[I]` and writes its input
    // gradient to `gradient_buffer[I - 1]`, the output gradient of the layer before.
    template <std::size_t I>
    void backward_layer(const float* input, layer_context ctx, float* base, float* gradients, const layout& w,
                        bool last_pre_activation, float* input_gradient) {
        if constexpr (skips_backward<I>()) return;
        ctx.output_activation_backward = nullptr;
        if constexpr (folded<I + 1>()) {
            // The folded activation's derivative, unless its gradient is already pre-activation.
            if (!((I + 1 == layer_count - 1 && last_pre_activation) || next_applies_derivative<I + 1>()))
                ctx.output_activation_backward = &layer_type<I + 1>::activation_type::backward;
        }
        ctx.gradient_is_pre_activation = (I == layer_count - 1 && last_pre_activation) || next_applies_derivative<I>();
        ctx.input_activation_backward = nullptr;
        if constexpr (I > 0) {
            if constexpr (next_applies_derivative<I - 1>())
                ctx.input_activation_backward = &layer_type<I - 1>::activation_type::backward;
        }
        float* output_gradient = base + w.gradient[gradient_buffer[I]];
        float* gradient_to_input = I == 0 ? input_gradient : base + w.gradient[gradient_buffer[I == 0 ? 0 : I - 1]];
        std::get<I>(layers_).backward(
            context_for<I>(ctx), backward_buffers{
                     .input = buffer<role::input, const float>(I == 0 ? input : base + w.output[I == 0 ? 0 : I - 1]),
                     .output = buffer<role::output, const float>(base + w.output[I]),
                     .output_gradient = buffer<role::output_gradient, float>(output_gradient),
                     .input_gradient = buffer<role::input_gradient, float>(gradient_to_input),
                     .parameters = buffer<role::parameters, const float>(params_.data() + parameter_offsets[I]),
                     .parameter_gradients = buffer<role::parameter_gradients, float>(gradients + parameter_offsets[I]),
                     .cache = buffer<role::cache, float>(base + w.cache[I])});
    }

    layers_type layers_{};
    aligned_buffer<float> params_, grads_, state_;
    workspace workspace_;
};

}  // namespace staticnet
