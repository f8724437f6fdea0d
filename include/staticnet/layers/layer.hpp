#pragma once
/// @file
/// The `layer` concept: what every layer of a `sequential` model provides.
///
/// A layer comes in two steps. The *spec* is what users write in the model type
/// (`conv2d<32, 3, relu>`); it knows its hyper-parameters but not its input. `sequential`
/// binds each spec to the output shape of the layer before it (`Spec::bind<InputShape,
/// Position>`), which gives the *layer*: a class that knows every size at compile time and
/// satisfies `layer` below. Shape errors are found while binding and reported by
/// `static_assert` with the layer position and the shapes (see `detail::wiring` below).
///
/// A layer owns no memory. The model hands it, per call, named buffers into its arenas
/// (`layer_buffers.hpp`; each buffer's role is part of its type, so two cannot be swapped):
///  - `parameters`: `parameter_count` trainable floats (their gradients have the same layout),
///  - `state`: `state_count` non-trainable floats (e.g. batch_norm's moving statistics),
///  - `cache`: `cache_floats(batch)` floats kept from forward to backward,
///  - `ctx.scratch`: temporary floats, shared by all layers, `scratch_floats(batch)`.
///
/// @code
/// void initialize(std::span<float> parameters, std::span<float> state, rng& g) const;
/// void forward(const layer_context& ctx, const forward_buffers& b) const;
/// void backward(const layer_context& ctx, const backward_buffers& b) const;
/// @endcode
///
/// Backward *adds* this batch's parameter gradients to `b.parameter_gradients` (so
/// micro-batches accumulate) and writes the input gradient to `b.input_gradient` unless it
/// is null (the first layer needs none). It may overwrite `b.output_gradient`.
///
/// A layer whose training pass computes across the samples of a batch (batch statistics)
/// declares `static constexpr bool uses_batch_statistics = true;`: the trainer then never
/// cuts a batch into parts that run apart (see `sequential::samples_independent`).
///
/// A layer with state (`state_count` > 0) that the trainer should keep bitwise the same across
/// rank counts in deterministic mode also provides
/// `void update_state(const float* record, float* state) const` (see
/// `layer_context::state_record`); without it, each rank updates its own state in forward.
///
/// A layer without parameters, state, cache or scratch inherits those parts from
/// `layer_defaults`. `check_gradients` (gradient_check.hpp) tests a backward pass against
/// finite differences in one call.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "../core/thread_pool.hpp"
#include "layer_buffers.hpp"

namespace staticnet {

/// Sums values over the ranks of a data-parallel job, in place (type-erased communicator:
/// a function pointer, so layers stay independent of the communicator type).
struct rank_reducer {
    void* communicator = nullptr;
    void (*sum)(void* communicator, std::span<double> values) = nullptr;
    void operator()(std::span<double> values) const { sum(communicator, values); }
};

/// Per-call information a layer needs beyond its tensors.
struct layer_context {
    std::size_t batch = 0;          ///< samples in this call
    bool training = false;          ///< training (dropout active, batch statistics) or inference
    thread_pool* pool = nullptr;    ///< threads of this rank; never null inside a model
    float* scratch = nullptr;       ///< shared temporary memory, see `scratch_floats`
    std::uint64_t step_seed = 0;    ///< seed of this training step (dropout masks)
    std::uint64_t first_sample = 0; ///< global index of this call's first sample in its batch
    /// Set for the last layer when the loss already gave the gradient with respect to the
    /// activation's input (softmax fused with cross-entropy): skip the activation backward.
    bool gradient_is_pre_activation = false;
    /// Set when batch statistics must cover the whole global batch (synchronised batch_norm).
    const rank_reducer* batch_statistics = nullptr;
    /// Deterministic training: the state buffers of this forward pass point into a *record*
    /// of this micro-batch, not at the state. A layer with state writes there what it would
    /// have blended into its state (batch_norm: the batch's mean and unbiased variance), and
    /// its `update_state(record, state)` applies it later, when the model replays every
    /// micro-batch's record in global order on every rank: the state then does not depend on
    /// how the micro-batches were spread over ranks. Null otherwise (update in place).
    float* state_record = nullptr;
};

/// What a bound layer provides. Sizes are per sample unless they take `batch`.
template <typename L>
concept layer = requires(L l, const L cl, const layer_context& ctx, std::span<float> span, rng& g,
                         const forward_buffers& fb, const backward_buffers& bb, std::size_t batch) {
    { L::input_shape } -> std::convertible_to<shape>;
    { L::output_shape } -> std::convertible_to<shape>;
    { L::name } -> std::convertible_to<std::string_view>;
    { L::parameter_count } -> std::convertible_to<std::size_t>;
    { L::state_count } -> std::convertible_to<std::size_t>;
    { L::flops_per_sample } -> std::convertible_to<std::size_t>;
    { L::cache_floats(batch) } -> std::convertible_to<std::size_t>;
    { L::scratch_floats(batch) } -> std::convertible_to<std::size_t>;
    l.initialize(span, span, g);
    cl.forward(ctx, fb);
    cl.backward(ctx, bb);
};

/// A layer spec: something `sequential` can bind to an input shape.
template <typename Spec>
concept layer_spec = requires { typename Spec::template bind<shape{1}, 1>; };

/// The parts of a layer that has no parameters, no state, no cache and no scratch: inherit
/// from it and declare only what differs (a member of the same name hides the default).
struct layer_defaults {
    static constexpr std::size_t parameter_count = 0;
    static constexpr std::size_t state_count = 0;
    static constexpr std::size_t cache_floats(std::size_t) noexcept { return 0; }
    static constexpr std::size_t scratch_floats(std::size_t) noexcept { return 0; }
    void initialize(std::span<float>, std::span<float>, rng&) const noexcept {}
};

namespace detail {

/// Whether a layer computes across the samples of a batch in training (batch statistics):
/// then a batch cannot be cut into independent parts. Layers say so with
/// `static constexpr bool uses_batch_statistics = true;` (false if absent).
template <typename L>
constexpr bool uses_batch_statistics() {
    if constexpr (requires { L::uses_batch_statistics; }) return L::uses_batch_statistics;
    else return false;
}

/// Whether a layer can record its state updates and replay them (`update_state`); true for
/// layers without state.
template <typename L>
constexpr bool replays_state_updates() {
    return L::state_count == 0 || requires(const L l, const float* r, float* s) { l.update_state(r, s); };
}

/// Fails to compile, with `message`, when `ok` is false. Called with the layer position
/// and the sizes involved as template arguments, so the compiler's "in instantiation of"
/// note prints them by name next to the message.
#define STATICNET_WIRING_CHECK(ok, message) static_assert(ok, "staticnet wiring error: " message)

}  // namespace detail
}  // namespace staticnet
