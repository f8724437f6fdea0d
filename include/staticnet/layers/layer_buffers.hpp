#pragma once
/// @file
/// The memory a layer works on in one call, each buffer typed by its role.
///
/// A layer's `forward` receives a `forward_buffers`, its `backward` a `backward_buffers`:
/// named members instead of a row of positional `float*`. Each member is a `buffer<Role, T>`,
/// so the role is part of the type: putting the gradient of the output where the gradient of
/// the input belongs, or a parameter gradient where the parameters belong, does not compile.
///
/// Inside a layer a buffer behaves like the pointer it holds (it converts to `T*` implicitly,
/// indexes, and adds offsets), so kernels that take plain pointers need no change:
///
/// @code
/// void forward(const layer_context& ctx, const forward_buffers& b) const {
///     kernels::gemm(..., b.input, ..., b.parameters, ..., b.output, ...);
/// }
/// @endcode

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace staticnet {

/// Tags naming what a buffer holds. Sizes are for a batch of `ctx.batch` samples.
namespace role {
struct input {};                ///< the layer's input, [batch x input_shape]
struct output {};               ///< the layer's output, [batch x output_shape]
struct input_gradient {};       ///< d(loss)/d(input), [batch x input_shape]
struct output_gradient {};      ///< d(loss)/d(output), [batch x output_shape]
struct parameters {};           ///< trainable values, `parameter_count` floats
struct parameter_gradients {};  ///< d(loss)/d(parameters), same layout as the parameters
struct state {};                ///< non-trainable values, `state_count` floats
struct cache {};                ///< kept from forward to backward, `cache_floats(batch)` floats
}  // namespace role

/// A pointer to floats with a role. Made from a pointer only explicitly, so a buffer of one
/// role never turns into a buffer of another; a writable buffer converts to a read-only one
/// of the same role.
template <typename Role, typename T>
class buffer {
public:
    using role_type = Role;
    using value_type = T;

    constexpr buffer() noexcept = default;  ///< no memory (e.g. the input gradient of the first layer)
    constexpr explicit buffer(T* data) noexcept : data_(data) {}
    template <typename U>
        requires std::same_as<const U, T> && (!std::same_as<U, T>)
    constexpr buffer(const buffer<Role, U>& writable) noexcept : data_(writable.data()) {}

    [[nodiscard]] constexpr T* data() const noexcept { return data_; }
    /// Hands the pointer to kernels and to pointer arithmetic (`b.cache + offset`).
    constexpr operator T*() const noexcept { return data_; }
    /// Any integer index (a template: a `std::size_t` parameter would tie with the built-in
    /// subscript of the pointer conversion for signed indices).
    template <std::integral I>
    constexpr T& operator[](I i) const noexcept {
        return data_[i];
    }

private:
    T* data_ = nullptr;
};

/// What `forward` reads and writes.
struct forward_buffers {
    buffer<role::input, const float> input;
    buffer<role::output, float> output;
    buffer<role::parameters, const float> parameters;
    buffer<role::state, float> state;  ///< updated in training (e.g. moving statistics)
    buffer<role::cache, float> cache;  ///< written for `backward`
};

/// What `backward` reads and writes, after `forward` on the same input.
struct backward_buffers {
    buffer<role::input, const float> input;
    buffer<role::output, const float> output;
    /// d(loss)/d(output); the layer may overwrite it (e.g. with the gradient before its activation).
    buffer<role::output_gradient, float> output_gradient;
    /// Where d(loss)/d(input) goes; null for the first layer of a network, which needs none.
    buffer<role::input_gradient, float> input_gradient;
    buffer<role::parameters, const float> parameters;
    /// This batch's gradients are *added* here, so micro-batches accumulate.
    buffer<role::parameter_gradients, float> parameter_gradients;
    buffer<role::cache, float> cache;  ///< as `forward` left it
};

}  // namespace staticnet
