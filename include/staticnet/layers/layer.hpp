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
/// How a layer is coordinated with its neighbours (folding an activation into it, skipping
/// a backward pass, computing only what the next layer reads, batch statistics, state
/// replay) it declares in one `static constexpr layer_traits traits{...}` with named fields,
/// so that a misspelled trait does not compile (see `layer_traits` below and
/// docs/layers.md, "Layer traits"). The chain that runs the layers (`layer_chain.hpp`) reads
/// them; nothing else about a layer is detected by name.
///
/// A layer without parameters, state, cache or scratch inherits those parts from
/// `layer_defaults`. `check_gradients` (gradient_check.hpp) tests a backward pass against
/// finite differences in one call.

#include <concepts>
#include <type_traits>
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
    /// ... and its derivative, in place to the output gradient given the output, in backward;
    void (*output_activation_backward)(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept = nullptr;
    /// or, for an activation whose derivative needs its input (silu, gelu, hard_swish) folded
    /// into a layer that `recomputes_pre_activation`, given that input (dx may be dy).
    void (*output_activation_backward_from_input)(const float* x, const float* dy, float* dx, std::size_t rows,
                                                  std::size_t cols) noexcept = nullptr;
    /// Set when this call holds only a share of the batch whose statistics a layer needs: a
    /// thread part of the step (the parts' shares are added in part order) or a rank's part
    /// with synchronised batch_norm (summed over ranks). A layer passes each of its sums over
    /// samples through it and goes on with the total.
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

/// An elementwise activation as data: what a chain needs to fold it into the layer before it
/// or to have the layer after it apply its derivative. Made from an activation policy by
/// `activation_info_of<A>` (activations.hpp).
struct activation_info {
    std::string_view name{};  ///< empty: the layer ends in no activation
    /// Monotone and elementwise (relu, tanh, sigmoid): max commutes with it.
    bool monotone = false;
    /// Its derivative needs its input (silu, gelu, hard_swish): `backward` is null and
    /// `backward_from_input` is set; as a layer it folds only into a layer that
    /// `recomputes_pre_activation` (batch_norm).
    bool derivative_from_input = false;
    /// In place on [rows x cols] ...
    void (*forward)(float* x, std::size_t rows, std::size_t cols) noexcept = nullptr;
    /// ... and its derivative, in place on the output gradient, given the output ...
    void (*backward)(const float* y, float* dy, std::size_t rows, std::size_t cols) noexcept = nullptr;
    /// ... or, when `derivative_from_input`, given the input (dx may be dy).
    void (*backward_from_input)(const float* x, const float* dy, float* dx, std::size_t rows,
                                std::size_t cols) noexcept = nullptr;
};

/// What a layer declares about itself so that the chain that runs it (`sequential`, a
/// `residual` block) can coordinate it with its neighbours. A layer declares the ones that
/// differ from the defaults, by name:
///
/// @code
/// static constexpr layer_traits traits{.batch_statistics = true, .keeps_output_gradient = true};
/// @endcode
///
/// A misspelled name does not compile. `layer_defaults` declares the defaults. Each trait is
/// documented in docs/layers.md ("Layer traits").
struct layer_traits {
    /// Its training pass computes across the samples of a batch (batch_norm). It must then
    /// take every such sum through `ctx.batch_statistics` when that is set (the same calls in
    /// every part of a batch): the trainer's thread parts meet there and add their shares in
    /// part order, and so do ranks with synchronised statistics. The network is then not
    /// `sequential::samples_independent`.
    bool batch_statistics = false;
    /// Its backward, told that its output gradient is already with respect to its
    /// activation's input (`layer_context::gradient_is_pre_activation`), would only copy it
    /// (activation layers): where the next layer applies the derivative, the chain skips it and
    /// the layers around it share the gradient buffer.
    bool passes_pre_activation_gradient = false;
    /// It never writes to its output gradient (unless `ctx.output_activation_backward` is
    /// set): a block whose body ends in it hands the body its own output gradient, no copy.
    bool keeps_output_gradient = false;
    /// It applies an elementwise activation to its own output (batch_norm, residual): an
    /// activation layer right after it is folded into it (`layer_context::output_activation`,
    /// `output_activation_backward`), one pass over memory fewer each way.
    bool applies_output_activation = false;
    /// It can recompute in backward the values its folded activation was applied to (batch_norm:
    /// from its input and its cached statistics): then an activation whose derivative needs its
    /// input (silu, gelu, hard_swish) folds into it too, without keeping anything more.
    bool recomputes_pre_activation = false;
    /// It applies the derivative of the previous layer's activation when that one is
    /// monotone (max pooling; `layer_context::input_activation_backward`).
    bool applies_input_activation_derivative = false;
    /// It has state and provides `void update_state(const float* record, float* state) const`
    /// so deterministic training can record and replay its updates (`layer_context::state_record`).
    bool replays_state_updates = false;
    /// It never reads past the first `input_rows_read` rows and `input_columns_read` columns
    /// of its image input (0: all of them); the layer before may skip the rest
    /// (`layer_context::output_rows_read`).
    std::size_t input_rows_read = 0;
    std::size_t input_columns_read = 0;
    /// Its first `weight_count` parameters are weights (a convolution's kernel, a dense
    /// layer's matrix): what weight decay shrinks unless told otherwise. The rest (biases,
    /// batch_norm's scale and shift) are left alone, as is common practice.
    std::size_t weight_count = 0;
    /// The activation its output ends in (conv2d<8, 3, relu>, an activation layer).
    activation_info activation{};
    /// It holds other layers and names them: `body_layers` and `shortcut_layers` (tuples of
    /// bound layers; residual), and, for parallel branches, `branch_layers` (concat).
    bool composite = false;
};

/// The parts of a layer that has no parameters, no state, no cache and no scratch: inherit
/// from it and declare only what differs (a member of the same name hides the default).
struct layer_defaults {
    static constexpr std::size_t parameter_count = 0;
    static constexpr std::size_t state_count = 0;
    static constexpr std::size_t cache_floats(std::size_t) noexcept { return 0; }
    static constexpr std::size_t scratch_floats(std::size_t) noexcept { return 0; }
    static constexpr layer_traits traits{};
    void initialize(std::span<float>, std::span<float>, rng&) const noexcept {}
};

/// A layer's traits: its `traits`, or the defaults for a layer that declares none (one that
/// does not inherit from `layer_defaults`).
template <typename L>
constexpr layer_traits traits_of() noexcept {
    if constexpr (requires { L::traits; }) {
        static_assert(std::same_as<std::remove_cvref_t<decltype(L::traits)>, layer_traits>,
                      "staticnet: a layer's `traits` must be a `static constexpr layer_traits`");
        return L::traits;
    } else {
        return {};
    }
}

namespace detail {

template <typename L>
constexpr bool uses_batch_statistics() { return traits_of<L>().batch_statistics; }

template <typename L>
constexpr bool passes_pre_activation_gradient() { return traits_of<L>().passes_pre_activation_gradient; }

/// Whether activation layer A folds into layer L before it (`applies_output_activation`).
template <typename L, typename A>
constexpr bool folds_into() {
    // (By name: GCC with -fsanitize cannot compare a function's address in a constant expression.)
    return traits_of<L>().applies_output_activation && traits_of<A>().passes_pre_activation_gradient &&
           !traits_of<A>().activation.name.empty() &&
           (!traits_of<A>().activation.derivative_from_input || traits_of<L>().recomputes_pre_activation);
}

template <typename L>
constexpr bool keeps_output_gradient() { return traits_of<L>().keeps_output_gradient; }

/// Whether a layer can record its state updates and replay them; true for layers without state.
template <typename L>
constexpr bool replays_state_updates() { return L::state_count == 0 || traits_of<L>().replays_state_updates; }

/// The rows and columns (from the top left) of its image input that layer L reads; 0 when it
/// reads all of them.
template <typename L>
constexpr std::size_t input_rows_read() {
    constexpr std::size_t rows = traits_of<L>().input_rows_read;
    return rows < L::input_shape.height() ? rows : 0;
}
template <typename L>
constexpr std::size_t input_columns_read() {
    constexpr std::size_t columns = traits_of<L>().input_columns_read;
    return columns < L::input_shape.width() ? columns : 0;
}

template <typename L>
constexpr bool applies_input_activation_derivative() { return traits_of<L>().applies_input_activation_derivative; }

/// Whether layer L ends in an activation that is monotone and elementwise, so a later max
/// pooling may apply its derivative.
template <typename L>
constexpr bool ends_in_monotone_activation() { return traits_of<L>().activation.monotone; }

/// Fails to compile, with `message`, when `ok` is false. Called with the layer position
/// and the sizes involved as template arguments, so the compiler's "in instantiation of"
/// note prints them by name next to the message.
#define STATICNET_WIRING_CHECK(ok, message) static_assert(ok, "staticnet wiring error: " message)

}  // namespace detail
}  // namespace staticnet
