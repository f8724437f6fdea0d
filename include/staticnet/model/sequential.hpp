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
#include <vector>

#include "../core/aligned_buffer.hpp"
#include "../core/fingerprint.hpp"
#include "../core/parameter_range.hpp"
#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "../layers/input.hpp"
#include "../layers/layer.hpp"
#include "../layers/layer_chain.hpp"
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

    /// The engine: offsets, folding, skipped passes, activation memory, gradient buffers.
    using chain_type = typename detail::chain_of<detail::chain_packing::aligned, layers_type>::type;

private:
    using chain = chain_type;

public:
    /// Trainable parameters of every layer.
    static constexpr std::size_t trainable_parameter_count = chain::parameter_count;
    /// Non-trainable values (moving statistics).
    static constexpr std::size_t state_count = chain::state_count;
    /// All parameters, as Keras's "Total params".
    static constexpr std::size_t parameter_count = trainable_parameter_count + state_count;
    /// Forward FLOPs of one sample (a multiply-add counts 2).
    static constexpr std::size_t flops_per_sample = chain::flops_per_sample;
    /// Bytes of activations kept for backward per sample: every layer's output and cache (an
    /// activation layer folded into the layer before shares that layer's output).
    static constexpr std::size_t activation_bytes_per_sample = chain::activation_floats_per_sample * sizeof(float);
    /// Start of each layer's parameters in the parameter (and gradient) arena.
    static constexpr auto parameter_offsets = chain::parameter_offsets;
    static constexpr auto state_offsets = chain::state_offsets;
    /// Whether every sample's forward and backward pass is independent of the other samples
    /// of its batch (no batch statistics): the gradient of a batch is then the sum of the
    /// gradients of its parts.
    static constexpr bool samples_independent = !chain::batch_statistics;
    /// Whether training can record each micro-batch's state updates (`layer_context::state_record`)
    /// and replay them with `update_state`: every layer with state can.
    static constexpr bool replays_state_updates = chain::replays_state;
    /// Floats in the state arena, and so in one micro-batch's record of state updates.
    static constexpr std::size_t state_size = state_offsets.back();
    /// Floats in the parameter arena (parameters plus alignment padding, which stays zero).
    static constexpr std::size_t arena_size = parameter_offsets.back();
    /// A hash of the layer list and shapes: equal for equal architectures.
    static constexpr std::uint64_t fingerprint = []<typename... L>(std::tuple<L...>*) {
        std::uint64_t h = detail::fnv1a(detail::fnv_offset, std::string_view{"staticnet.sequential.v1"});
        auto shape_hash = [&](shape s) {
            h = detail::fnv1a(h, s.rank);
            for (auto d : s.dims) h = detail::fnv1a(h, d);
        };
        shape_hash(input_shape);
        ((h = detail::hash_layer<L>(h)), ...);
        return h;
    }(static_cast<layers_type*>(nullptr));

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
    void initialize(std::uint64_t seed) { chain_.initialize(params_.span(), state_.span(), seed); }

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
        ctx.output_activation = nullptr;
        float* state = ctx.state_record != nullptr ? ctx.state_record : state_.data();  // a record has the state's layout
        return chain_.forward(ctx, input, {.activations = base, .parameters = params_.data(), .state = state});
    }

    /// Applies the state updates that a training forward pass with `layer_context::state_record
    /// = record` wrote there (`state_size` floats), as that pass would have applied them.
    void update_state(const float* record) noexcept requires replays_state_updates { chain_.update_state(record, state_.data()); }

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
        float* base = ws.floats_.data();
        ctx.scratch = base + w.scratch;
        float* const buffers[2] = {base + w.gradient[0], base + w.gradient[1]};
        chain_.backward(ctx, input, {.activations = base, .parameters = params_.data(), .state = state_.data()},
                        gradients.data(), buffers, buffers[gradient_buffer[layer_count - 1]], input_gradient, on_layer_done);
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

    /// The weights in the parameter arena (`layer_traits::weight_count`: kernels of conv2d and
    /// dense, inside residual blocks too), in order: what weight decay shrinks by default.
    [[nodiscard]] static std::vector<parameter_range> weight_ranges() {
        std::vector<parameter_range> ranges;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (detail::for_each_weight_range<layer_type<I>>(parameter_offsets[I], [&](parameter_range r) { ranges.push_back(r); }), ...);
        }(std::make_index_sequence<layer_count>{});
        return ranges;
    }

private:
    /// The workspace: the chain's activations (outputs and caches), the shared scratch, then
    /// the two gradient buffers.
    struct layout {
        std::size_t scratch = 0;
        std::array<std::size_t, 2> gradient{};
        std::size_t total = 0;
    };
    static constexpr layout workspace_layout(std::size_t batch) noexcept {
        layout w;
        std::size_t at = chain::activations(batch).total;
        w.scratch = at;
        at += align_floats(chain::scratch_floats(batch));
        for (auto& g : w.gradient) {
            g = at;
            at += align_floats(batch * chain::widest);
        }
        w.total = at;
        return w;
    }

public:
    /// Which of the two gradient buffers of the workspace holds layer I's output gradient in
    /// backward (the loss writes into the last layer's): they alternate, except across a
    /// skipped layer (`layer_chain::skips_backward`), whose neighbours share one.
    static constexpr auto gradient_buffer = chain::gradient_buffer;

private:
    chain chain_{};
    aligned_buffer<float> params_, grads_, state_;
    workspace workspace_;
};

}  // namespace staticnet
