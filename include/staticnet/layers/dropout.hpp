#pragma once
/// @file
/// `dropout<Rate>`: in training, zeroes each value with probability `Rate` and scales the
/// rest by 1 / (1 - Rate) (inverted dropout, as Keras); at inference it passes values through.
///
/// The mask of a sample is drawn from a generator seeded by the training step and the
/// sample's index in the global batch, so it does not depend on threads, ranks or on how the
/// batch was split: a run is reproducible from its seed.

#include <cstddef>
#include <cstring>
#include <string_view>

#include "layer.hpp"

#if !defined(__cpp_nontype_template_args) || __cpp_nontype_template_args < 201911L
#error "staticnet: dropout<Rate> takes float template arguments (C++20 P1907), which this compiler lacks (clang < 18); use GCC >= 11 or clang >= 18"
#endif

namespace staticnet {

namespace detail {
template <float Rate, shape In, std::size_t Position>
class dropout_layer : public layer_defaults {
public:
    static constexpr std::string_view name = "dropout";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape = In;
    static constexpr std::size_t flops_per_sample = In.size();
    /// The scale applied to each value of the batch (0 or 1 / (1 - Rate)).
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept { return batch * In.size(); }

    void forward(const layer_context& ctx, const float* in, float* out, const float*, float*, float* cache) const {
        const std::size_t n = ctx.batch * In.size();
        if (!ctx.training) {
            std::memcpy(out, in, n * sizeof(float));
            return;
        }
        constexpr float keep_scale = 1.0f / (1.0f - Rate);
        for (std::size_t s = 0; s < ctx.batch; ++s) {
            rng g = rng::derived(ctx.step_seed ^ (0xD1B54A32D192ED03ULL * (Position + 1)), ctx.first_sample + s);
            float* mask = cache + s * In.size();
            for (std::size_t i = 0; i < In.size(); ++i) mask[i] = g.uniform() < Rate ? 0.0f : keep_scale;
        }
        for (std::size_t i = 0; i < n; ++i) out[i] = in[i] * cache[i];
    }

    void backward(const layer_context& ctx, const float*, const float*, float* dout, float* din, const float*, float*,
                  float* cache) const noexcept {
        if (din == nullptr) return;
        const std::size_t n = ctx.batch * In.size();
        for (std::size_t i = 0; i < n; ++i) din[i] = dout[i] * cache[i];
    }
};
}  // namespace detail

/// Dropout with drop probability `Rate` in [0, 1).
template <float Rate>
struct dropout {
    static_assert(Rate >= 0.0f && Rate < 1.0f, "dropout: Rate must be in [0, 1)");
    template <shape In, std::size_t Position>
    using bind = detail::dropout_layer<Rate, In, Position>;
};

}  // namespace staticnet
