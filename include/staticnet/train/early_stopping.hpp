#pragma once
/// @file
/// `early_stopping`: a `fit` callback that stops training when a metric has stopped
/// improving, and can put back the weights of the best epoch (Keras's EarlyStopping).
///
///     sn::early_stopping stop{.monitor = sn::metric::val_loss, .patience = 3, .restore_best_weights = true};
///     auto h = model.fit(train, {.epochs = 100, .validation = &test}, stop);
///     // stop.best_epoch, stop.best, stop.stopped_epoch tell what happened
///
/// After each epoch it compares the monitored value with the best so far. An epoch improves
/// on it when the value is lower by more than `min_delta` (higher, for accuracies); after
/// `patience` epochs in a row without improvement it calls `model.stop_training()`, and `fit`
/// ends after that epoch. Every rank sees the same global `epoch_log`, so all ranks stop
/// together.
///
/// With `restore_best_weights` it keeps a copy of the parameter and state arenas of the best
/// epoch (allocated once, when training begins) and copies it back into the model when
/// training ends. The optimizer state and the training position are left as they are.
///
/// It keeps state, so pass it as a non-const variable (to read the results afterwards) or
/// as a temporary. Each `fit` starts it afresh.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iostream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "history.hpp"
#include "model.hpp"

namespace staticnet {

/// A value of `epoch_log` that callbacks can watch.
enum class metric { loss, accuracy, val_loss, val_accuracy };

/// Its name as `epoch_log`, the CSV and JSON files spell it ("val_loss").
[[nodiscard]] constexpr std::string_view metric_name(metric m) noexcept;
/// The value of `m` in `e` (NaN for a validation value of an epoch without validation).
[[nodiscard]] constexpr double metric_value(const epoch_log& e, metric m) noexcept;

/// Whether smaller or larger values of the monitored metric are better.
enum class monitor_mode {
    automatic,  ///< smaller for losses, larger for accuracies
    min,
    max,
};

/// Stops `fit` when `monitor` has not improved for `patience` epochs.
struct early_stopping {
    /// @name Settings
    /// @{
    metric monitor = metric::val_loss;       ///< the value of `epoch_log` to watch
    double min_delta = 0.0;                   ///< an improvement must be larger than this
    std::size_t patience = 2;                 ///< epochs without improvement before stopping
    monitor_mode mode = monitor_mode::automatic;
    bool restore_best_weights = false;        ///< put the best epoch's weights back at the end
    bool verbose = false;                     ///< say on rank 0 when it stops and restores
    /// @}

    /// @name What happened (filled in by fit; read them afterwards)
    /// @{
    double best = std::numeric_limits<double>::quiet_NaN();  ///< the best value seen
    std::size_t best_epoch = 0;      ///< the epoch that reached it (0: no epoch yet)
    std::size_t stopped_epoch = 0;   ///< the epoch after which it stopped training (0: it did not)
    std::size_t wait = 0;            ///< epochs since the last improvement
    std::vector<float> best_parameters{};  ///< the best epoch's parameter arena (restore_best_weights)
    std::vector<float> best_state{};       ///< the best epoch's state arena (restore_best_weights)
    /// @}

    /// Whether smaller values are better, after resolving `monitor_mode::automatic`.
    [[nodiscard]] constexpr bool minimizes() const noexcept;
    /// Whether `value` improves on `best` by more than `min_delta` (the first epoch always does).
    [[nodiscard]] bool improves(double value) const noexcept;

    /// @name fit's hooks
    /// @{
    /// Checks that the monitored value will exist, resets the results, allocates the copies.
    template <typename Model>
    void on_train_begin(Model& model, const fit_options& options);
    /// Compares, keeps the weights of a new best, stops after `patience` epochs without one.
    template <typename Model>
    void on_epoch_end(Model& model, const epoch_log& e);
    /// Restores the best epoch's weights (`restore_best_weights`).
    template <typename Model>
    void on_train_end(Model& model, const history& h);
    /// @}
};

// ------------------------------------------------------------------ implementation

constexpr std::string_view metric_name(metric m) noexcept {
    switch (m) {
        case metric::loss: return "loss";
        case metric::accuracy: return "accuracy";
        case metric::val_loss: return "val_loss";
        case metric::val_accuracy: return "val_accuracy";
    }
    return "?";
}

constexpr double metric_value(const epoch_log& e, metric m) noexcept {
    switch (m) {
        case metric::loss: return e.loss;
        case metric::accuracy: return e.accuracy;
        case metric::val_loss: return e.val_loss;
        case metric::val_accuracy: return e.val_accuracy;
    }
    return std::numeric_limits<double>::quiet_NaN();
}

constexpr bool early_stopping::minimizes() const noexcept {
    if (mode != monitor_mode::automatic) return mode == monitor_mode::min;
    return monitor == metric::loss || monitor == metric::val_loss;
}

inline bool early_stopping::improves(double value) const noexcept {
    if (best_epoch == 0) return true;  // the first epoch sets the mark
    return minimizes() ? value < best - min_delta : value > best + min_delta;
}

template <typename Model>
void early_stopping::on_train_begin(Model& model, const fit_options& options) {
    const bool validation_metric = monitor == metric::val_loss || monitor == metric::val_accuracy;
    if (validation_metric && options.validation == nullptr) {
        std::string msg = "early_stopping: it monitors ";
        msg += metric_name(monitor);
        msg += ", but fit has no validation data (set fit_options::validation, or monitor metric::";
        msg += monitor == metric::val_loss ? "loss" : "accuracy";
        msg += ")";
        throw error(msg);
    }
    best = std::numeric_limits<double>::quiet_NaN();
    best_epoch = stopped_epoch = wait = 0;
    if (restore_best_weights) {  // the one allocation: epochs only copy into it
        best_parameters.assign(model.network().parameters().begin(), model.network().parameters().end());
        best_state.assign(model.network().state().begin(), model.network().state().end());
    }
}

template <typename Model>
void early_stopping::on_epoch_end(Model& model, const epoch_log& e) {
    const double value = metric_value(e, monitor);
    if (std::isnan(value)) {
        std::string msg = "early_stopping: ";
        msg += metric_name(monitor);
        msg += " of epoch ";
        msg += std::to_string(e.epoch);
        msg += " is NaN (is the validation set empty?)";
        throw error(msg);
    }
    if (improves(value)) {
        best = value;
        best_epoch = e.epoch;
        wait = 0;
        if (restore_best_weights) {
            const auto p = model.network().parameters();
            const auto s = model.network().state();
            std::copy(p.begin(), p.end(), best_parameters.begin());
            std::copy(s.begin(), s.end(), best_state.begin());
        }
        return;
    }
    if (++wait < patience) return;
    stopped_epoch = e.epoch;
    model.stop_training();
    if (verbose && model.comm().rank() == 0)
        std::cout << "Epoch " << e.epoch << ": early stopping (" << metric_name(monitor) << " has not improved for "
                  << wait << (wait == 1 ? " epoch" : " epochs") << "; best " << best << " at epoch " << best_epoch
                  << ")\n";
}

template <typename Model>
void early_stopping::on_train_end(Model& model, const history& h) {
    if (!restore_best_weights || best_epoch == 0) return;
    if (!h.epochs.empty() && h.back().epoch == best_epoch) return;  // the weights are the best already
    std::copy(best_parameters.begin(), best_parameters.end(), model.network().parameters().begin());
    std::copy(best_state.begin(), best_state.end(), model.network().state().begin());
    if (verbose && model.comm().rank() == 0)
        std::cout << "Restoring the weights of the best epoch (" << best_epoch << ")\n";
}

}  // namespace staticnet
