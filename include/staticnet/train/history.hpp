#pragma once
/// @file
/// What `fit` reports: one `epoch_log` per epoch, collected in a `history`; and what the
/// callbacks see while it runs (`batch_log`).

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace staticnet {

/// The global (all ranks) results of one epoch. Validation values are NaN without validation data.
struct epoch_log {
    std::size_t epoch = 0;  ///< 1-based
    std::size_t epochs = 0; ///< the number of epochs of the fit
    double loss = 0.0;
    double accuracy = 0.0;
    double val_loss = std::numeric_limits<double>::quiet_NaN();
    double val_accuracy = std::numeric_limits<double>::quiet_NaN();
    double seconds = 0.0;
    double learning_rate = 0.0;
    [[nodiscard]] bool has_validation() const noexcept { return !std::isnan(val_loss); }
};

/// Progress within an epoch, as this rank sees it (running means over its own samples).
struct batch_log {
    std::size_t epoch = 0, epochs = 0;  ///< 1-based epoch, and the total
    std::size_t step = 0, steps = 0;    ///< 1-based step in the epoch, and steps per epoch
    double loss = 0.0, accuracy = 0.0;  ///< running means over the epoch so far
    double seconds = 0.0;               ///< since the epoch began
    /// Samples of the steps run so far in this epoch, over all ranks (after a resume, from
    /// where it resumed): with `seconds`, the throughput.
    std::size_t samples = 0;
};

/// Every epoch of a fit, in order.
struct history {
    std::vector<epoch_log> epochs;
    [[nodiscard]] const epoch_log& back() const { return epochs.back(); }
    [[nodiscard]] std::size_t size() const noexcept { return epochs.size(); }
};

}  // namespace staticnet
