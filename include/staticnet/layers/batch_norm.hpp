#pragma once
/// @file
/// `batch_norm<Momentum = 0.99f, Epsilon = 1e-3f>`: batch normalisation over the innermost
/// dimension (each channel of an image, each feature of a vector), with Keras's defaults.
///
/// Training normalises with the statistics of the current batch and updates the moving
/// averages `moving = Momentum * moving + (1 - Momentum) * batch` (the variance with
/// Bessel's correction, as PyTorch and TensorFlow's fused kernel do); inference normalises
/// with the moving averages. gamma and beta are trainable parameters; the moving mean and
/// variance are non-trainable state (saved with the model, never touched by the optimizer).
/// Under MPI the batch statistics are those of each rank's part of the batch, unless the
/// model enables synchronised statistics (`model_settings::sync_batch_norm`): then the mean
/// and variance are those of the whole global batch (two small allreduces in forward, one in
/// backward). A step cut into thread parts sums each part's statistics in part order, as
/// ranks do (`layer_context::batch_statistics`): the statistics are still the whole batch's.
/// Threads split the work without changing any sum's order, so results are the same for any
/// thread count. In deterministic mode the moving averages are updated from every
/// micro-batch of the global batch in order, on every rank (`update_state`), so they too are
/// bitwise the same for any number of ranks.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>

#include "../core/template_float.hpp"
#include "../kernels/normalization.hpp"
#include "layer.hpp"

namespace staticnet {

namespace detail {
template <template_float Momentum, template_float Epsilon, shape In, std::size_t Position>
class batch_norm_layer;
}

/// Batch normalisation with Keras's default momentum and epsilon (`batch_norm<0.9f, 1e-5f>`
/// or `batch_norm<0.9, 1e-5>` for others: see `template_float`).
template <template_float Momentum = 0.99f, template_float Epsilon = 1e-3f>
struct batch_norm {
    static_assert(Momentum >= 0.0f && Momentum < 1.0f, "batch_norm: Momentum must be in [0, 1)");
    static_assert(Epsilon > 0.0f, "batch_norm: Epsilon must be positive");
    template <shape In, std::size_t Position>
    using bind = detail::batch_norm_layer<Momentum, Epsilon, In, Position>;
};

namespace detail {

template <template_float Momentum, template_float Epsilon, shape In, std::size_t Position>
class batch_norm_layer : public layer_defaults {
    static constexpr std::size_t C = In.channels();
    static constexpr std::size_t per_sample_rows = In.size() / C;
    /// The moving-average step, in one place so that updating in forward and replaying a
    /// record round the same way.
    static float blend(float moving, float batch) noexcept { return momentum * moving + (1.0f - momentum) * batch; }

public:
    static constexpr float momentum = Momentum;
    static constexpr float epsilon = Epsilon;
    static constexpr std::string_view name = "batch_norm";
    /// Training normalises with statistics of the whole batch, summed through
    /// `ctx.batch_statistics` over thread parts and ranks. An activation layer after it is
    /// folded into its normalisation pass (layer.hpp). Deterministic training replays its
    /// recorded updates (`update_state`).
    static constexpr layer_traits traits{.batch_statistics = true,
                                         .keeps_output_gradient = true,
                                         .applies_output_activation = true,
                                         .recomputes_pre_activation = true,
                                         .replays_state_updates = true};
    static constexpr shape input_shape = In;
    static constexpr shape output_shape = In;
    static constexpr std::size_t parameter_count = 2 * C;  // gamma, beta
    static constexpr std::size_t state_count = 2 * C;      // moving mean, moving variance
    static constexpr std::size_t flops_per_sample = 4 * In.size();
    /// The batch's mean and 1/sqrt(var + eps) per channel (backward recomputes x_hat from them).
    static constexpr std::size_t cache_floats(std::size_t) noexcept { return 2 * C; }

    void initialize(std::span<float> params, std::span<float> state, rng&) const noexcept {
        for (std::size_t c = 0; c < C; ++c) {
            params[c] = 1.0f;
            params[C + c] = 0.0f;
            state[c] = 0.0f;
            state[C + c] = 1.0f;
        }
    }

    /// Applies a micro-batch's statistics that a forward pass with `layer_context::state_record`
    /// recorded: the moving-average update that forward otherwise makes in place.
    void update_state(const float* record, float* state) const noexcept {
        for (std::size_t i = 0; i < 2 * C; ++i) state[i] = blend(state[i], record[i]);
    }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* in = b.input;
        float* out = b.output;
        const float* gamma = b.parameters;
        const float* beta = gamma + C;
        float* moving_mean = b.state;
        float* moving_var = moving_mean + C;
        const std::size_t rows = ctx.batch * per_sample_rows;
        if (!ctx.training) {
            std::array<float, C> scale{}, shift{};
            for (std::size_t c = 0; c < C; ++c) {
                scale[c] = gamma[c] / std::sqrt(moving_var[c] + epsilon);
                shift[c] = beta[c] - moving_mean[c] * scale[c];
            }
            for_row_blocks(ctx, rows, [&](std::size_t first, std::size_t n_rows) {
                kernels::scale_and_shift(in + first * C, n_rows, C, scale.data(), shift.data(), out + first * C);
                if (ctx.output_activation != nullptr) ctx.output_activation(out + first * C, n_rows, C);
            });
            return;
        }
        // Two passes in double: the variance of values far from zero needs them. The last
        // entry counts the rows, so synchronised statistics know the global count.
        std::array<double, C + 1> mean{}, var{};
        for_channels(ctx, [&](std::size_t first, std::size_t last) {
            kernels::add_channel_sums(in, rows, C, first, last, mean.data());
        });
        mean[C] = static_cast<double>(rows);
        if (ctx.batch_statistics != nullptr) (*ctx.batch_statistics)(mean);
        const double count = mean[C];
        for (std::size_t c = 0; c < C; ++c) mean[c] /= count;
        for_channels(ctx, [&](std::size_t first, std::size_t last) {
            kernels::add_squared_deviations(in, rows, C, first, last, mean.data(), var.data());
        });
        if (ctx.batch_statistics != nullptr) (*ctx.batch_statistics)(std::span<double>(var.data(), C));
        float* mean_f = b.cache;
        float* inv_std = mean_f + C;
        for (std::size_t c = 0; c < C; ++c) {
            const double biased = var[c] / count;
            inv_std[c] = static_cast<float>(1.0 / std::sqrt(biased + epsilon));
            mean_f[c] = static_cast<float>(mean[c]);
            const double unbiased = count > 1 ? var[c] / (count - 1) : biased;
            if (ctx.state_record != nullptr) {  // b.state is this micro-batch's record: see update_state
                moving_mean[c] = mean_f[c];
                moving_var[c] = static_cast<float>(unbiased);
            } else {
                moving_mean[c] = blend(moving_mean[c], mean_f[c]);
                moving_var[c] = blend(moving_var[c], static_cast<float>(unbiased));
            }
        }
        for_row_blocks(ctx, rows, [&](std::size_t first, std::size_t n_rows) {
            kernels::normalize(in + first * C, n_rows, C, mean_f, inv_std, gamma, beta, out + first * C);
            if (ctx.output_activation != nullptr) ctx.output_activation(out + first * C, n_rows, C);
        });
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        float* dout = b.output_gradient;
        float* din = b.input_gradient;
        float* dparams = b.parameter_gradients;
        const float* gamma = b.parameters;
        const float* in = b.input;
        const float* mean = b.cache;
        const float* inv_std = mean + C;
        const std::size_t rows = ctx.batch * per_sample_rows;
        if (ctx.output_activation_backward != nullptr)
            for_row_blocks(ctx, rows, [&](std::size_t first, std::size_t n_rows) {
                ctx.output_activation_backward(b.output + first * C, dout + first * C, n_rows, C);
            });
        if (const auto derivative = ctx.output_activation_backward_from_input; derivative != nullptr)
            // silu, gelu, hard_swish: their input, this layer's normalised output, recomputed by
            // forward's own pass (the same bits), a block at a time on the stack.
            for_row_blocks(ctx, rows, [&](std::size_t first, std::size_t n_rows) {
                std::array<float, rows_per_block * C> normalised;
                kernels::normalize(in + first * C, n_rows, C, mean, inv_std, gamma, gamma + C, normalised.data());
                derivative(normalised.data(), dout + first * C, dout + first * C, n_rows, C);
            });
        // sums[0, C): sum of dy; [C, 2C): sum of dy * x_hat; [2C]: rows.
        std::array<double, 2 * C + 1> sums{};
        for_channels(ctx, [&](std::size_t first, std::size_t last) {
            kernels::add_gradient_sums(dout, in, rows, C, first, last, mean, inv_std, sums.data(), sums.data() + C);
        });
        sums[2 * C] = static_cast<double>(rows);
        // This rank's share of d(gamma), d(beta): the gradient allreduce adds the others'.
        for (std::size_t c = 0; c < C; ++c) {
            dparams[c] += static_cast<float>(sums[C + c]);
            dparams[C + c] += static_cast<float>(sums[c]);
        }
        if (din == nullptr) return;
        if (ctx.batch_statistics != nullptr) (*ctx.batch_statistics)(sums);
        const auto n = static_cast<float>(sums[2 * C]);
        std::array<float, C> scale{}, mean_dy{}, mean_dy_xhat{};
        for (std::size_t c = 0; c < C; ++c) {
            scale[c] = gamma[c] * inv_std[c];
            mean_dy[c] = static_cast<float>(sums[c]) / n;
            mean_dy_xhat[c] = static_cast<float>(sums[C + c]) / n;
        }
        for_rows(ctx, rows, [&](std::size_t first, std::size_t n_rows) {
            kernels::normalization_input_gradient(dout + first * C, in + first * C, n_rows, C, mean, inv_std,
                                                  scale.data(), mean_dy.data(), mean_dy_xhat.data(), din + first * C);
        });
    }

private:
    // Threads never split a sum: each thread takes whole channels (groups of 8, a register of
    // doubles) and adds their rows in order, so the statistics are the same for any thread
    // count. The element-wise passes split the rows.
    static constexpr std::size_t channel_group = 8;
    static constexpr std::size_t channel_groups = (C + channel_group - 1) / channel_group;

    template <typename F>
    static void for_channels(const layer_context& ctx, F&& f) {
        ctx.pool->parallel_for(channel_groups, [&](std::size_t begin, std::size_t end) {
            f(begin * channel_group, std::min(C, end * channel_group));
        });
    }
    static constexpr std::size_t rows_per_block = std::max<std::size_t>(1, 4096 / C);  // 16 KiB
    /// Calls f(first row, row count) on the threads' shares of the rows.
    template <typename F>
    static void for_rows(const layer_context& ctx, std::size_t rows, F&& f) {
        ctx.pool->parallel_for(rows, [&](std::size_t begin, std::size_t end) { f(begin, end - begin); }, rows_per_block);
    }
    /// The same in blocks of 16 KiB, so that a folded activation meets each block in L1.
    template <typename F>
    static void for_row_blocks(const layer_context& ctx, std::size_t rows, F&& f) {
        for_rows(ctx, rows, [&](std::size_t first, std::size_t count) {
            for (std::size_t at = first; at < first + count; at += rows_per_block) f(at, std::min(rows_per_block, first + count - at));
        });
    }
};

}  // namespace detail
}  // namespace staticnet
