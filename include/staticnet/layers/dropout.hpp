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

#include "../core/template_float.hpp"
#include "layer.hpp"

namespace staticnet {

namespace detail {
template <template_float Rate, shape In, std::size_t Position>
class dropout_layer : public layer_defaults {
public:
    static constexpr float rate = Rate;
    static constexpr std::string_view name = "dropout";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape = In;
    static constexpr std::size_t flops_per_sample = In.size();
    /// The scale applied to each value of the batch (0 or 1 / (1 - rate)).
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept { return batch * In.size(); }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* in = b.input;
        float* out = b.output;
        float* cache = b.cache;
        const std::size_t n = ctx.batch * In.size();
        if (!ctx.training) {
            std::memcpy(out, in, n * sizeof(float));
            return;
        }
        constexpr float keep_scale = 1.0f / (1.0f - rate);
        for (std::size_t s = 0; s < ctx.batch; ++s) {
            rng g = rng::derived(ctx.step_seed ^ (0xD1B54A32D192ED03ULL * (Position + 1)), ctx.first_sample + s);
            float* mask = cache + s * In.size();
            for (std::size_t i = 0; i < In.size(); ++i) mask[i] = g.uniform() < rate ? 0.0f : keep_scale;
        }
        for (std::size_t i = 0; i < n; ++i) out[i] = in[i] * cache[i];
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const noexcept {
        if (!b.input_gradient) return;
        float* din = b.input_gradient;
        const float* dout = b.output_gradient;
        const float* cache = b.cache;
        const std::size_t n = ctx.batch * In.size();
        for (std::size_t i = 0; i < n; ++i) din[i] = dout[i] * cache[i];
    }
};
}  // namespace detail

/// Dropout with drop probability `Rate` in [0, 1): `dropout<0.25f>` (or `dropout<0.25>`, see
/// `template_float`).
template <template_float Rate>
struct dropout {
    static_assert(Rate >= 0.0f && Rate < 1.0f, "dropout: Rate must be in [0, 1)");
    template <shape In, std::size_t Position>
    using bind = detail::dropout_layer<Rate, In, Position>;
};

}  // namespace staticnet
