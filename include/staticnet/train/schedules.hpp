#pragma once
/// @file
/// Learning-rate schedules: `fit` callbacks that set the optimizer's learning rate at the
/// beginning of every epoch, or, for a warm-up, of every step.
///
///     model.fit(train, {.epochs = 20}, sn::step_decay{.initial = 1e-3f, .factor = 0.5f, .every_epochs = 5});
///     model.fit(train, {.epochs = 20}, sn::cosine_decay{.initial = 1e-3f, .minimum = 1e-5f});
///     model.fit(train, {.epochs = 20}, sn::lr_schedule{[](std::size_t epoch) { return epoch <= 3 ? 1e-3f : 1e-4f; }});
///     model.fit(train, {.epochs = 20}, sn::linear_warmup{.steps = 500, .target = sn::cosine_decay{.initial = 8e-3f}});
///
/// Epochs are numbered from 1, as in `epoch_log`, so a resumed run (`fit_options::resume`,
/// `initial_epoch`) gets the rates of the epochs it continues with. Every rank computes the
/// same rate. The rate of each epoch is recorded in `epoch_log::learning_rate`. With several
/// schedules, the last one passed to `fit` wins (callbacks run in order).
///
/// `step_decay`, `cosine_decay` and `linear_warmup` hold no state: they can be passed as
/// `const` objects and reused; each is also a plain function (`operator()`), for plots and tests.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <numbers>
#include <type_traits>

#include "history.hpp"

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

namespace detail {
/// What `linear_warmup` can warm up to: a rate that is a pure function of the epoch.
template <typename T>
concept warmup_target = std::is_arithmetic_v<T> || std::same_as<T, step_decay> || std::same_as<T, cosine_decay> ||
                        requires(const T& t, std::size_t epoch) { { t.schedule(epoch) } -> std::convertible_to<float>; } ||
                        requires(const T& t, std::size_t epoch) { { t(epoch) } -> std::convertible_to<float>; };
}  // namespace detail

/// Linear warm-up per step (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): over the first
/// `steps` steps the rate climbs in a straight line from `start_factor` times the target rate
/// to the target rate, then stays on the target. Step s <= W = `steps` trains at
///
///     target(epoch) * (start_factor + (1 - start_factor) * s / W)
///
/// so with the default `start_factor` 0 the steps train at 1/W, 2/W, ..., 1 times the target.
/// The target is a constant rate (a `float`) or a per-epoch schedule: `step_decay`,
/// `cosine_decay`, or an `lr_schedule` of (or a function of) the epoch alone. The warm-up
/// sets the rate of every step itself, so the schedule goes *inside* it rather than next to it:
///
///     // 8 ranks, 8x the global batch of one process: 8x its rate (8e-3), warmed up over 5 epochs
///     sn::linear_warmup{.steps = 5 * steps_per_epoch, .start_factor = 1.0f / 8,
///                       .target = sn::step_decay{.initial = 8e-3f, .factor = 0.1f, .every_epochs = 30}}
///
/// Steps are numbered through the run as epochs are: step s of epoch e is step (e - 1) *
/// steps_per_epoch + s, so a resumed run (`fit_options::resume`, `initial_epoch`) continues
/// the warm-up where it stopped. `epoch_log::learning_rate` is the rate of the epoch's last step.
/// (Compilers without class template argument deduction for aggregates, clang < 17, need the
/// target's type spelt out: `sn::linear_warmup<float>{.steps = 500, .target = 0.1f}`.)
template <typename Target>
struct linear_warmup {
    static_assert(detail::warmup_target<Target>,
                  "linear_warmup: the target must be a rate (float) or a function of the epoch alone: step_decay, "
                  "cosine_decay, or lr_schedule of a function of the epoch");
    std::size_t steps = 0;      ///< W, the length of the warm-up in steps; 0: no warm-up
    float start_factor = 0.0f;  ///< where the line starts (step 0), relative to the target
    Target target{};            ///< the rate to warm up to

    /// The factor of the target rate at (1-based) step `step` of the run.
    [[nodiscard]] float factor(std::size_t step) const noexcept;
    /// The rate of step `step` of the run, in (1-based) `epoch` of a fit of `fit_epochs` epochs.
    [[nodiscard]] float operator()(std::size_t step, std::size_t epoch, std::size_t fit_epochs) const;

    template <typename Model>
    void on_batch_begin(Model& model, const batch_log& b) const {
        model.set_learning_rate((*this)((b.epoch - 1) * b.steps + b.step, b.epoch, b.epochs));
    }
};

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

template <typename Target>
float linear_warmup<Target>::factor(std::size_t step) const noexcept {
    if (steps == 0 || step >= steps) return 1.0f;
    const double progress = static_cast<double>(step) / static_cast<double>(steps);
    return static_cast<float>(start_factor + (1.0 - start_factor) * progress);
}

template <typename Target>
float linear_warmup<Target>::operator()(std::size_t step, std::size_t epoch, std::size_t fit_epochs) const {
    float rate = 0.0f;
    if constexpr (std::is_arithmetic_v<Target>) rate = static_cast<float>(target);
    else if constexpr (std::same_as<Target, cosine_decay>) rate = target(epoch, fit_epochs);
    else if constexpr (requires { target.schedule(epoch); }) rate = static_cast<float>(target.schedule(epoch));
    else rate = static_cast<float>(target(epoch));
    return rate * factor(step);
}

}  // namespace staticnet
