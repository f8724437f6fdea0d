#pragma once
/// @file
/// `tensorboard_writer`: a callback that writes a run as a TensorBoard event file, to watch
/// it where Keras and PyTorch users watch theirs (`tensorboard --logdir runs`). Opt-in: the
/// umbrella header `staticnet.hpp` does not include it.
///
///     #include <staticnet/io/tensorboard.hpp>
///     model.fit(train, options, sn::tensorboard_writer{"runs/exp1"});
///
/// One event file per writer (per run), in the directory given (io/tensorboard_events.hpp),
/// holding:
///
///  - at the start, the run's settings as a Markdown table (tag `hyperparameters`, the Text
///    tab): `run_settings` (train/run_settings.hpp), the learning rate at the start and
///    `tensorboard_options::hyperparameters`;
///  - every `step_every` steps, at the global step (`model.steps_done()`): `batch/loss`,
///    `batch/accuracy` (running means over the epoch so far, as rank 0 sees its samples),
///    `batch/learning_rate` and `batch/images_per_second` (all ranks, since the epoch began);
///  - after every epoch, at the epoch number: `epoch/loss`, `epoch/accuracy`,
///    `epoch/val_loss` and `epoch/val_accuracy` (with validation data), `epoch/learning_rate`,
///    `epoch/images_per_second` (training steps only) and `epoch/seconds` (validation
///    included), the values of the `epoch_log`; and the histograms of each layer's weights
///    and of its gradient at the epoch's last step (`weights/conv2d_1/kernel`,
///    `gradients/conv2d_1/bias`, ...; a layer without a kernel and bias, one per layer).
///
/// Only rank 0 writes. The file is flushed to disk after every epoch, so a crash loses at
/// most the epoch it interrupts. A writer whose directory is empty writes nothing (for
/// programs where TensorBoard is an option). Errors throw `staticnet::error`.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../train/history.hpp"
#include "../train/model.hpp"
#include "../train/run_settings.hpp"
#include "tensorboard_events.hpp"

namespace staticnet {

/// What `tensorboard_writer` writes besides the epoch scalars.
struct tensorboard_options {
    /// Step scalars every this many steps (1: every step); 0: none.
    std::size_t step_every = 1;
    /// Histograms of the weights and gradients of every layer after each epoch.
    bool histograms = true;
    /// Buckets of each histogram.
    std::size_t histogram_buckets = 30;
    /// More rows for the hyper-parameter table (name, value), e.g. the network's name.
    setting_rows hyperparameters{};
};

class tensorboard_writer {
public:
    /// A writer into `directory` (created if needed when training begins); empty: none.
    explicit tensorboard_writer(std::filesystem::path directory, tensorboard_options options = {})
        : directory_(std::move(directory)), options_(std::move(options)) {}

    template <typename Model>
    void on_train_begin(Model& model, const fit_options& options);
    template <typename Model>
    void on_batch_end(Model& model, const batch_log& b);
    template <typename Model>
    void on_epoch_end(Model& model, const epoch_log& e);
    template <typename Model>
    void on_train_end(Model& model, const history& h);

    /// The event file (empty on ranks other than 0, and before training begins).
    [[nodiscard]] std::filesystem::path file() const { return events_ ? events_->path() : std::filesystem::path{}; }

private:
    std::filesystem::path directory_;
    tensorboard_options options_;
    std::optional<tensorboard_event_file> events_;  // rank 0, from the first fit on
    double epoch_images_per_second_ = 0.0;
};

// ------------------------------------------------------------------ implementation

namespace detail {

/// "| name | value |" rows of a Markdown table; '|' in a value would end its cell.
inline std::string markdown_table(const setting_rows& rows) {
    std::string out = "| setting | value |\n| --- | --- |\n";
    for (const auto& [name, value] : rows) {
        std::string cell = value;
        for (std::size_t at = 0; (at = cell.find('|', at)) != std::string::npos; at += 2) cell.replace(at, 1, "\\|");
        out += "| " + name + " | " + cell + " |\n";
    }
    return out;
}

template <typename T>
std::string setting_text(const T& value) {
    std::ostringstream s;
    s << value;
    return s.str();
}

/// The histograms of layer I's parameters and gradients: kernel and bias apart where the
/// layer has both (conv2d, dense), else its whole block.
template <std::size_t I, typename Net>
void layer_histograms(Net& net, tensorboard_summary& summary, std::size_t buckets) {
    using layer = typename Net::template layer_type<I>;
    if constexpr (layer::parameter_count != 0) {
        const std::string name = std::string(layer::name) + '_' + std::to_string(I + 1);
        const std::span<const float> weights = net.template layer_parameters<I>();
        const std::span<const float> gradients = net.template layer_gradients<I>();
        auto add = [&](const std::string& part, std::size_t first, std::size_t count) {
            summary.histogram("weights/" + name + part, weights.subspan(first, count), buckets);
            summary.histogram("gradients/" + name + part, gradients.subspan(first, count), buckets);
        };
        if constexpr (requires { layer::kernel_count; }) {
            add("/kernel", 0, layer::kernel_count);
            if (layer::parameter_count > layer::kernel_count)
                add("/bias", layer::kernel_count, layer::parameter_count - layer::kernel_count);
        } else {
            add("", 0, layer::parameter_count);
        }
    }
}

}  // namespace detail

template <typename Model>
void tensorboard_writer::on_train_begin(Model& model, const fit_options& options) {
    if (directory_.empty() || model.comm().rank() != 0) return;
    if (!events_) events_.emplace(directory_);
    setting_rows rows = run_settings(model, options);
    rows.emplace_back("learning_rate (at the start)", detail::setting_text(model.learning_rate()));
    rows.insert(rows.end(), options_.hyperparameters.begin(), options_.hyperparameters.end());
    events_->write(static_cast<std::int64_t>(model.steps_done()),
                   tensorboard_summary{}.text("hyperparameters", detail::markdown_table(rows)));
}

template <typename Model>
void tensorboard_writer::on_batch_end(Model& model, const batch_log& b) {
    if (!events_) return;
    const double images_per_second = b.seconds > 0 ? static_cast<double>(b.samples) / b.seconds : 0.0;
    if (b.step == b.steps) epoch_images_per_second_ = images_per_second;
    const std::uint64_t step = model.steps_done();
    if (options_.step_every == 0 || step % options_.step_every != 0) return;
    events_->write(static_cast<std::int64_t>(step), tensorboard_summary{}
                                                        .scalar("batch/loss", static_cast<float>(b.loss))
                                                        .scalar("batch/accuracy", static_cast<float>(b.accuracy))
                                                        .scalar("batch/learning_rate", model.learning_rate())
                                                        .scalar("batch/images_per_second",
                                                                static_cast<float>(images_per_second)));
}

template <typename Model>
void tensorboard_writer::on_epoch_end(Model& model, const epoch_log& e) {
    if (!events_) return;
    tensorboard_summary s;
    s.scalar("epoch/loss", static_cast<float>(e.loss)).scalar("epoch/accuracy", static_cast<float>(e.accuracy));
    if (e.has_validation())
        s.scalar("epoch/val_loss", static_cast<float>(e.val_loss))
            .scalar("epoch/val_accuracy", static_cast<float>(e.val_accuracy));
    s.scalar("epoch/learning_rate", static_cast<float>(e.learning_rate))
        .scalar("epoch/images_per_second", static_cast<float>(epoch_images_per_second_))
        .scalar("epoch/seconds", static_cast<float>(e.seconds));
    if (options_.histograms) {
        using net = typename Model::network_type;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (detail::layer_histograms<I>(model.network(), s, options_.histogram_buckets), ...);
        }(std::make_index_sequence<net::layer_count>{});
    }
    events_->write(static_cast<std::int64_t>(e.epoch), s);
    events_->flush();
}

template <typename Model>
void tensorboard_writer::on_train_end(Model&, const history&) {
    if (events_) events_->flush();
}

}  // namespace staticnet
