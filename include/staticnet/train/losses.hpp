#pragma once
/// @file
/// Losses: `categorical_crossentropy` (one-hot or soft targets),
/// `sparse_categorical_crossentropy` (integer labels) and `mean_squared_error`.
///
/// A loss sees the model output [batch x classes] and the batch's targets. `value` returns
/// the *sum* over the samples (the trainer divides by the global batch, so a batch split
/// unevenly over ranks still gives the exact mean); `gradient` writes d(loss)/d(output)
/// already scaled by `scale` = 1 / global batch.
///
/// Cross-entropy after a softmax output is fused: the gradient with respect to the softmax's
/// input is simply (p - y) * scale, which is exact and stable where the chain through
/// log(p) and the softmax Jacobian is not. The trainer asks for it with `pre_softmax = true`.
/// Probabilities are clipped to [1e-7, 1 - 1e-7] in the loss value, as Keras does.
///
/// Label smoothing (`model_settings::label_smoothing`, carried in `batch_targets`) makes the
/// cross-entropies compare against (1 - s) y + s / classes, as PyTorch's
/// `CrossEntropyLoss(label_smoothing=s)` and Keras's losses do; with s = 0 the targets are
/// used as they are, bit for bit.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace staticnet {

/// The targets of one batch: one-hot/soft rows or integer labels (whichever the loss needs).
struct batch_targets {
    const float* dense = nullptr;          ///< [batch x classes]
    const std::int32_t* labels = nullptr;  ///< [batch]
    float label_smoothing = 0.0f;          ///< s in [0, 1): see above (losses that declare `smooths_labels`)
};

namespace detail {
inline constexpr float probability_clip = 1e-7f;
inline float clipped_log(float p) noexcept {
    return std::log(std::clamp(p, probability_clip, 1.0f - probability_clip));
}
/// d(cross-entropy)/d(output) for probability p and target y: with respect to the softmax's
/// input when fused (p - y), else with respect to p itself.
inline float crossentropy_gradient(float p, float y, float scale, bool pre_softmax) noexcept {
    return pre_softmax ? (p - y) * scale : -y / std::clamp(p, probability_clip, 1.0f) * scale;
}
/// A target after label smoothing s over `classes` classes: y itself when s = 0.
struct smoothed_target {
    float keep = 1.0f, floor = 0.0f;  ///< (1 - s), s / classes
    smoothed_target(float s, std::size_t classes) noexcept : keep(1.0f - s), floor(s / static_cast<float>(classes)) {}
    float operator()(float y) const noexcept { return y * keep + floor; }
};
}  // namespace detail

/// -sum_c y_c log p_c with one-hot (or soft) targets.
struct categorical_crossentropy {
    static constexpr std::string_view name = "categorical_crossentropy";
    static constexpr bool needs_dense_targets = true;
    static constexpr bool fuses_softmax = true;
    static constexpr bool smooths_labels = true;

    static double value(const float* out, batch_targets t, std::size_t batch, std::size_t classes) noexcept {
        const detail::smoothed_target target(t.label_smoothing, classes);
        double total = 0.0;
        for (std::size_t i = 0; i < batch * classes; ++i)
            if (const float y = target(t.dense[i]); y != 0.0f) total -= static_cast<double>(y) * detail::clipped_log(out[i]);
        return total;
    }
    static void gradient(const float* out, batch_targets t, std::size_t batch, std::size_t classes, float scale,
                         bool pre_softmax, float* grad) noexcept {
        const detail::smoothed_target target(t.label_smoothing, classes);
        for (std::size_t i = 0; i < batch * classes; ++i)
            grad[i] = detail::crossentropy_gradient(out[i], target(t.dense[i]), scale, pre_softmax);
    }
};

/// -log p_label with integer labels.
struct sparse_categorical_crossentropy {
    static constexpr std::string_view name = "sparse_categorical_crossentropy";
    static constexpr bool needs_dense_targets = false;
    static constexpr bool fuses_softmax = true;
    static constexpr bool smooths_labels = true;

    static double value(const float* out, batch_targets t, std::size_t batch, std::size_t classes) noexcept {
        double total = 0.0;
        for (std::size_t s = 0; s < batch; ++s) total -= detail::clipped_log(out[s * classes + static_cast<std::size_t>(t.labels[s])]);
        if (t.label_smoothing == 0.0f) return total;
        // -((1 - s) log p_label + s / classes * sum_c log p_c)
        double all = 0.0;
        for (std::size_t i = 0; i < batch * classes; ++i) all -= detail::clipped_log(out[i]);
        const detail::smoothed_target target(t.label_smoothing, classes);
        return static_cast<double>(target.keep) * total + static_cast<double>(target.floor) * all;
    }
    static void gradient(const float* out, batch_targets t, std::size_t batch, std::size_t classes, float scale,
                         bool pre_softmax, float* grad) noexcept {
        const detail::smoothed_target target(t.label_smoothing, classes);
        for (std::size_t s = 0; s < batch; ++s) {
            const auto label = static_cast<std::size_t>(t.labels[s]);
            for (std::size_t c = 0; c < classes; ++c)
                grad[s * classes + c] =
                    detail::crossentropy_gradient(out[s * classes + c], target(c == label ? 1.0f : 0.0f), scale, pre_softmax);
        }
    }
};

/// mean over classes of (y - p)^2, per sample.
struct mean_squared_error {
    static constexpr std::string_view name = "mean_squared_error";
    static constexpr bool needs_dense_targets = true;
    static constexpr bool fuses_softmax = false;

    static double value(const float* out, batch_targets t, std::size_t batch, std::size_t classes) noexcept {
        double total = 0.0;
        for (std::size_t i = 0; i < batch * classes; ++i) {
            const double d = static_cast<double>(out[i]) - t.dense[i];
            total += d * d;
        }
        return total / static_cast<double>(classes);
    }
    static void gradient(const float* out, batch_targets t, std::size_t batch, std::size_t classes, float scale, bool,
                         float* grad) noexcept {
        const float k = 2.0f * scale / static_cast<float>(classes);
        for (std::size_t i = 0; i < batch * classes; ++i) grad[i] = k * (out[i] - t.dense[i]);
    }
};

/// What the trainer needs of a loss.
template <typename L>
concept loss_function = requires(const float* out, batch_targets t, std::size_t n, float* g) {
    { L::name } -> std::convertible_to<std::string_view>;
    { L::needs_dense_targets } -> std::convertible_to<bool>;
    { L::fuses_softmax } -> std::convertible_to<bool>;
    { L::value(out, t, n, n) } -> std::convertible_to<double>;
    L::gradient(out, t, n, n, 1.0f, true, g);
};

}  // namespace staticnet
