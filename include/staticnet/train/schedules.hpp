#pragma once
/// @file
/// Learning-rate schedules: `fit` callbacks that set the optimizer's learning rate at the
/// beginning of every epoch.
///
///     model.fit(train, {.epochs = 20}, sn::step_decay{.initial = 1e-3f, .factor = 0.5f, .every_epochs = 5});
///     model.fit(train, {.epochs = 20}, sn::cosine_decay{.initial = 1e-3f, .minimum = 1e-5f});
///     model.fit(train, {.epochs = 20}, sn::lr_schedule{[](std::size_t epoch) { return epoch <= 3 ? 1e-3f : 1e-4f; }});
///
/// Epochs are numbered from 1, as in `epoch_log`, so a resumed run (`fit_options::resume`,
/// `initial_epoch`) gets the rates of the epochs it continues with. Every rank computes the
/// same rate. The rate of each epoch is recorded in `epoch_log::learning_rate`. With several
/// schedules, the last one passed to `fit` wins (callbacks run in order).
///
/// `step_decay` and `cosine_decay` hold no state: they can be passed as `const` objects and
/// reused; each is also a plain function of the epoch (`operator()`), for plots and tests.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <numbers>

namespace staticnet {

/// `initial * factor^((epoch - 1) / every_epochs)`: the rate is multiplied by `factor` after
/// every `every_epochs` epochs (epochs 1-5 at `initial`, 6-10 at `initial * factor`, ...).
struct step_decay {
    float initial = 1e-3f;
    float factor = 0.5f;
    std::size_t every_epochs = 5;  ///< 0: never decays

    /// The learning rate of (1-based) `epoch`.
    [[nodiscard]] float operator()(std::size_t epoch) const noexcept;

    template <typename Model>
    void on_epoch_begin(Model& model, std::size_t epoch, std::size_t) const {
        model.set_learning_rate((*this)(epoch));
    }
};

/// Cosine decay from `initial` to `minimum` over `epochs` epochs (Keras's CosineDecay, per
/// epoch): `minimum + (initial - minimum) * (1 + cos(pi * min(epoch - 1, E) / E)) / 2`.
/// Epoch 1 trains at `initial`; the rate would reach `minimum` at epoch E + 1 and stays there.
struct cosine_decay {
    float initial = 1e-3f;
    float minimum = 0.0f;
    std::size_t epochs = 0;  ///< E, the length of the decay; 0: the `epochs` of the fit

    /// The learning rate of (1-based) `epoch` of a fit of `fit_epochs` epochs.
    [[nodiscard]] float operator()(std::size_t epoch, std::size_t fit_epochs) const noexcept;

    template <typename Model>
    void on_epoch_begin(Model& model, std::size_t epoch, std::size_t fit_epochs) const {
        model.set_learning_rate((*this)(epoch, fit_epochs));
    }
};

namespace detail {
/// A schedule maps the 1-based epoch, or the epoch and the current rate, to a rate.
template <typename F>
concept schedule_function = requires(F f, std::size_t epoch, float rate) {
    { f(epoch) } -> std::convertible_to<float>;
} || requires(F f, std::size_t epoch, float rate) {
    { f(epoch, rate) } -> std::convertible_to<float>;
};
}  // namespace detail

/// Any function as a schedule: `F` maps the (1-based) epoch to the learning rate, or the
/// epoch and the current learning rate to the new one (Keras's LearningRateScheduler).
///
///     sn::lr_schedule{[](std::size_t epoch, float lr) { return epoch % 10 == 0 ? lr * 0.1f : lr; }}
template <typename F>
struct lr_schedule {
    static_assert(detail::schedule_function<F&>,
                  "lr_schedule: the function must map an epoch (std::size_t, from 1) to a learning rate (float), "
                  "or an epoch and the current learning rate to the new one");
    F schedule;

    template <typename Model>
        requires detail::schedule_function<const F&>
    void on_epoch_begin(Model& model, std::size_t epoch, std::size_t) const {
        model.set_learning_rate(apply(schedule, epoch, model.learning_rate()));
    }
    /// For a schedule that changes itself (a `mutable` lambda); pass such an `lr_schedule` non-const.
    template <typename Model>
        requires(!detail::schedule_function<const F&>)
    void on_epoch_begin(Model& model, std::size_t epoch, std::size_t) {
        model.set_learning_rate(apply(schedule, epoch, model.learning_rate()));
    }

private:
    template <typename G>
    static float apply(G& f, std::size_t epoch, float current) {
        if constexpr (requires { f(epoch, current); }) return static_cast<float>(f(epoch, current));
        else return static_cast<float>(f(epoch));
    }
};
template <typename F>
lr_schedule(F) -> lr_schedule<F>;

// ------------------------------------------------------------------ implementation

inline float step_decay::operator()(std::size_t epoch) const noexcept {
    if (every_epochs == 0 || epoch == 0) return initial;
    const auto steps = static_cast<double>((epoch - 1) / every_epochs);
    return static_cast<float>(static_cast<double>(initial) * std::pow(static_cast<double>(factor), steps));
}

inline float cosine_decay::operator()(std::size_t epoch, std::size_t fit_epochs) const noexcept {
    const std::size_t length = epochs != 0 ? epochs : fit_epochs;
    if (length == 0 || epoch == 0) return initial;
    const double progress = static_cast<double>(std::min(epoch - 1, length)) / static_cast<double>(length);
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    return static_cast<float>(minimum + (static_cast<double>(initial) - minimum) * cosine);
}

}  // namespace staticnet
