#pragma once
/// @file
/// The `layer` concept: what every layer of a `sequential` model provides.
///
/// A layer comes in two steps. The *spec* is what users write in the model type
/// (`conv2d<32, 3, relu>`); it knows its hyper-parameters but not its input. `sequential`
/// binds each spec to the output shape of the layer before it (`Spec::bind<InputShape,
/// Position>`), which gives the *layer*: a class that knows every size at compile time and
/// satisfies `layer` below. Shape errors are found while binding and reported by
/// `static_assert` with the layer position and the shapes (each layer's `detail::check_*_wiring()`, through
/// `STATICNET_WIRING_CHECK` below).
///
/// A layer owns no memory. The model hands it, per call, named buffers into its arenas
/// (`layer_buffers.hpp`; each buffer's role is part of its type, so two cannot be swapped):
///  - `parameters`: `parameter_count` trainable floats (their gradients have the same layout),
///  - `state`: `state_count` non-trainable floats (e.g. batch_norm's moving statistics),
///  - `cache`: `cache_floats(batch)` floats kept from forward to backward,
///  - `ctx.scratch`: temporary floats, shared by all layers, `scratch_floats(batch)`.
/// Neither size may shrink as the batch grows: a workspace prepared for a batch also serves
/// every smaller one (a last micro-batch, a short thread part).
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
/// A layer whose backward, told that its output gradient is already with respect to its
/// activation's input (`gradient_is_pre_activation`), would only copy it to its input gradient
/// says `static constexpr bool passes_pre_activation_gradient = true;` (activation layers):
/// where the next layer applies the derivative, the model skips the layer's backward and the
/// layers around it share the gradient buffer.
///
/// A layer that never writes to `b.output_gradient` (unless `ctx.output_activation_backward`
/// is set, see below) may say so with `static constexpr bool keeps_output_gradient = true;`:
/// a residual block whose body ends in it hands the body its own output gradient instead of
/// a copy.
///
/// A layer that can apply an elementwise activation to its own output declares
/// `static constexpr bool applies_output_activation = true;` (batch_norm, residual). An
/// activation layer right after it is then *folded* into it: the model runs neither pass of
/// the activation layer, whose output is the same buffer as this layer's, and sets
/// `ctx.output_activation` in forward (apply it in place to the output, e.g. block by block
/// while in cache) and `ctx.output_activation_backward` in backward (apply it in place to
/// the output gradient, given the output, before anything else; null when the gradient is
/// already with respect to the activation's input). The values are those of the two layers
/// run apart, one pass over memory fewer each way.
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
/// A layer that never reads the last rows or columns of its image input (max pooling whose
/// windows do not tile it: 2x2 windows on 11x11 read 10x10) declares
/// `static constexpr std::size_t input_rows_read, input_columns_read`; the model passes them
/// to the layer before it as `layer_context::output_rows_read` / `output_columns_read`, and
/// a layer may then skip that part of its output (see there).
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
    /// Set when the output gradient is already with respect to the activation's input, so the
    /// layer skips its activation's derivative: for the last layer when the loss is fused with
    /// softmax, and for a layer whose next layer applied the derivative (see below).
    bool gradient_is_pre_activation = false;
    /// Set for a layer that applies the derivative of the activation before it
    /// (`applies_input_activation_derivative`, max pooling) when that layer ends in a monotone
    /// elementwise activation (relu, tanh, sigmoid): max commutes with it, so its derivative at
    /// each window's maximum follows from the pooled output, a quarter of the values the layer
    /// before would have gone through. Applied in place to the output gradient, given the output.
    void (*input_activation_backward)(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept = nullptr;
    /// The activation folded into this layer (see `applies_output_activation`): applied in
    /// place to the output in forward...
    void (*output_activation)(float* x, std::size_t rows, std::size_t cols) noexcept = nullptr;
    /// ... and its derivative, in place to the output gradient given the output, in backward.
    void (*output_activation_backward)(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept = nullptr;
    /// Set when batch statistics must cover the whole global batch (synchronised batch_norm).
    const rank_reducer* batch_statistics = nullptr;
    /// Deterministic training: the state buffers of this forward pass point into a *record*
    /// of this micro-batch, not at the state. A layer with state writes there what it would
    /// have blended into its state (batch_norm: the batch's mean and unbiased variance), and
    /// its `update_state(record, state)` applies it later, when the model replays every
    /// micro-batch's record in global order on every rank: the state then does not depend on
    /// how the micro-batches were spread over ranks. Null otherwise (update in place).
    float* state_record = nullptr;
    /// How much of this layer's output image the next layer reads: the first
    /// `output_rows_read` rows and `output_columns_read` columns (0: all of them). A layer may
    /// compute only that part (conv2d's im2col path does: with an 11x11 output before 2x2 max pooling it
    /// skips 21 of 121 pixels, before a 3x3 -> 1x1 pooling 5 of 9); it then writes zeros to the
    /// rest in forward, and in backward it may assume the output gradient there is zero.
    std::size_t output_rows_read = 0;
    std::size_t output_columns_read = 0;
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

/// Whether a layer's backward is a copy when its gradient is pre-activation
/// (`passes_pre_activation_gradient`; false if absent).
template <typename L>
constexpr bool passes_pre_activation_gradient() {
    if constexpr (requires { L::passes_pre_activation_gradient; }) return L::passes_pre_activation_gradient;
    else return false;
}

/// Whether activation layer A folds into layer L before it (see `applies_output_activation`).
template <typename L, typename A>
constexpr bool folds_into() {
    if constexpr (requires { L::applies_output_activation; typename A::activation_type; })
        return L::applies_output_activation && passes_pre_activation_gradient<A>();
    else return false;
}

/// Whether a layer leaves its output gradient as it found it (`keeps_output_gradient`; false
/// if absent).
template <typename L>
constexpr bool keeps_output_gradient() {
    if constexpr (requires { L::keeps_output_gradient; }) return L::keeps_output_gradient;
    else return false;
}

/// Whether a layer can record its state updates and replay them (`update_state`); true for
/// layers without state.
template <typename L>
constexpr bool replays_state_updates() {
    return L::state_count == 0 || requires(const L l, const float* r, float* s) { l.update_state(r, s); };
}

/// The rows and columns (from the top left) of its image input that layer L reads; 0 when it
/// reads all of them or declares nothing (see `layer_context::output_rows_read`).
template <typename L>
constexpr std::size_t input_rows_read() {
    if constexpr (requires { L::input_rows_read; }) return L::input_rows_read < L::input_shape.height() ? L::input_rows_read : 0;
    else return 0;
}
template <typename L>
constexpr std::size_t input_columns_read() {
    if constexpr (requires { L::input_columns_read; })
        return L::input_columns_read < L::input_shape.width() ? L::input_columns_read : 0;
    else return 0;
}

/// Whether layer L can apply the derivative of the activation of the layer before it
/// (`static constexpr bool applies_input_activation_derivative = true;`, see
/// `layer_context::input_activation_backward`).
template <typename L>
constexpr bool applies_input_activation_derivative() {
    if constexpr (requires { L::applies_input_activation_derivative; }) return L::applies_input_activation_derivative;
    else return false;
}

/// Whether layer L ends in an activation that is monotone and elementwise (its policy says
/// `static constexpr bool monotone = true;`), so a later max pooling may apply its derivative.
template <typename L>
constexpr bool ends_in_monotone_activation() {
    if constexpr (requires { L::activation_type::monotone; }) return L::activation_type::monotone;
    else return false;
}

/// Fails to compile, with `message`, when `ok` is false. Called with the layer position
/// and the sizes involved as template arguments, so the compiler's "in instantiation of"
/// note prints them by name next to the message.
#define STATICNET_WIRING_CHECK(ok, message) static_assert(ok, "staticnet wiring error: " message)

}  // namespace detail
}  // namespace staticnet
