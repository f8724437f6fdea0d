#pragma once
/// @file
/// `run_settings(model, options)`: how a run was set up, as (name, value) rows of text: the
/// fit options, the optimizer, the loss, the ranks and threads, the parameter count. The
/// TensorBoard writer (io/tensorboard.hpp) writes them as its hyper-parameter table and
/// the training report (io/report.hpp) shows them, so both name a setting alike.

#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "model.hpp"

namespace staticnet {

/// Rows of (name, value) text.
using setting_rows = std::vector<std::pair<std::string, std::string>>;

namespace detail {
inline std::string number_text(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}
inline std::string describe(const std::optional<data::random_resized_crop>& c) {
    if (!c) return "none";
    return "scale [" + number_text(c->scale[0]) + ", " + number_text(c->scale[1]) + "], ratio [" +
           number_text(c->ratio[0]) + ", " + number_text(c->ratio[1]) + "]";
}
inline std::string describe(const data::color_jitter& j) {
    if (!j.active()) return "none";
    return "brightness " + number_text(j.brightness) + ", contrast " + number_text(j.contrast) + ", saturation " +
           number_text(j.saturation);
}
inline std::string describe(const data::normalization& n) {
    if (!n.active()) return "none";
    std::string text = "mean";
    for (float m : n.mean) text += " " + number_text(m);
    text += ", std";
    for (float v : n.std) text += " " + number_text(v);
    return text;
}
}  // namespace detail

template <typename Model>
[[nodiscard]] setting_rows run_settings(Model& model, const fit_options& options) {
    auto yes_no = [](bool b) { return std::string(b ? "true" : "false"); };
    return {
        {"epochs", std::to_string(options.epochs)},
        {"batch_size", std::to_string(options.batch_size)},
        {"optimizer", std::string(Model::optimizer_type::name)},
        {"loss", std::string(Model::loss_type::name)},
        {"seed", std::to_string(options.seed)},
        {"shuffle", yes_no(options.shuffle)},
        {"flip", yes_no(options.flip)},
        {"crop_padding", std::to_string(options.crop_padding)},
        {"random_resized_crop", detail::describe(options.random_resized_crop)},
        {"color_jitter", detail::describe(options.color_jitter)},
        {"normalization", detail::describe(model.settings().normalization)},
        {"initial_epoch", std::to_string(options.initial_epoch)},
        {"resume", yes_no(options.resume)},
        {"ranks", std::to_string(model.comm().size())},
        {"threads", std::to_string(model.thread_count())},
        {"parameters", std::to_string(Model::network_type::parameter_count)},
    };
}

}  // namespace staticnet
