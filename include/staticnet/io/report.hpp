#pragma once
/// @file
/// The training report: one self-contained HTML page with what people look at when a run
/// ends. Opt-in: the umbrella header `staticnet.hpp` does not include it.
///
///     #include <staticnet/io/report.hpp>
///     auto h = model.fit(data.train, options);
///     sn::write_training_report(model, h, options, &data.train, &data.test, "report.html",
///                               {.title = "Fashion-MNIST", .class_names = names});
///
/// The page holds, top to bottom:
///  - a headline: test accuracy, epochs, training time, parameters;
///  - the loss and accuracy curves (the SVG chart of train/history_chart.hpp);
///  - the confusion matrix of the test set: a grid of true class (rows) by predicted class
///    (columns) with the class names and counts, coloured by the share of the row (blue on
///    the diagonal, red off it), and each class's recall;
///  - the worst-classified test images: the misclassified ones to which the model gave the
///    least probability of their true class, with true and predicted labels;
///  - training inputs as the model saw them: the first training samples as the batch loader
///    gave them in the run's first epoch (flipped and cropped where the run augments);
///  - the settings (`report_options::settings`, then `run_settings`) and timings (per epoch,
///    and where the training steps' time went);
///  - the model summary.
///
/// Everything is inline (SVG, PNG images as data URIs, CSS; no script), and a Content
/// Security Policy forbids any other source, so the page opens offline and fetches nothing.
/// It is laid out for a laptop screen (about 1200 pixels wide; one column on narrower ones).
///
/// Call it on every rank: rank 0 predicts the test set and writes the file (atomically,
/// like the history files), the other ranks return at once. Errors throw `staticnet::error`.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../data/labelled_data.hpp"
#include "../data/loader.hpp"
#include "../model/summary.hpp"
#include "../train/history.hpp"
#include "../train/history_chart.hpp"
#include "../train/history_io.hpp"
#include "../train/model.hpp"
#include "../train/run_settings.hpp"
#include "png.hpp"

namespace staticnet {

/// What the report shows besides what it finds in the model and the data.
struct report_options {
    std::string title = "Training report";
    /// The program's own settings (e.g. its command line), listed before `run_settings`.
    setting_rows settings{};
    /// Class names by label; empty: the test set's `class_names`, else the label numbers.
    std::vector<std::string> class_names{};
    std::size_t worst_images = 24;  ///< misclassified test images shown
    std::size_t input_images = 32;  ///< training inputs shown
};

/// The report as HTML text (on every rank; it predicts the test set). `train` may be empty
/// (nothing in memory, e.g. a `shard_stream`): the page then shows no training inputs.
template <typename Model>
[[nodiscard]] std::string training_report_html(Model& model, const history& h, const fit_options& options,
                                               data::dataset_ref train, data::dataset_ref test,
                                               const report_options& report = {});

/// Writes `training_report_html(...)` to `file` on rank 0 (replacing it); other ranks do nothing.
template <typename Model>
void write_training_report(Model& model, const history& h, const fit_options& options, data::dataset_ref train,
                           data::dataset_ref test, const std::filesystem::path& file, const report_options& report = {});

// ------------------------------------------------------------------ implementation

namespace detail::report {

/// " (with the run's random flips and crops)", naming what `options` augments; "" for nothing.
inline std::string augmentation_note(const fit_options& options) {
    std::vector<std::string> kinds;
    if (options.flip) kinds.emplace_back("flips");
    if (options.crop_padding != 0) kinds.emplace_back("crops");
    if (options.random_resized_crop) kinds.emplace_back("resized crops");
    if (options.color_jitter.active()) kinds.emplace_back("colour jitter");
    if (kinds.empty()) return "";
    std::string text = " (with the run's random ";
    for (std::size_t i = 0; i < kinds.size(); ++i)
        text += (i == 0 ? "" : i + 1 == kinds.size() ? " and " : ", ") + kinds[i];
    return text + ")";
}

/// One image of `d` (index i) as a PNG data URI; pixels in [0, 1] become bytes.
inline std::string image_uri(const float* pixels, std::size_t height, std::size_t width, std::size_t channels) {
    const std::size_t shown = channels == 3 ? 3 : 1;  // grey, RGB, or the first channel of others
    std::vector<std::uint8_t> bytes(height * width * shown);
    for (std::size_t p = 0; p < height * width; ++p)
        for (std::size_t c = 0; c < shown; ++c)
            bytes[p * shown + c] =
                static_cast<std::uint8_t>(std::lround(std::clamp(pixels[p * channels + c], 0.0f, 1.0f) * 255.0f));
    return png_data_uri(encode_png(bytes, width, height, shown));
}

template <typename Data>
std::string sample_uri(const Data& d, std::size_t i) {
    const auto& s = d.images.shape();
    const std::size_t size = s[1] * s[2] * s[3];
    std::vector<float> pixels(size);
    data::detail::copy_pixels(d, i * size, size, pixels.data());
    return image_uri(pixels.data(), s[1], s[2], s[3]);
}

inline std::string fixed(double v, int digits) {
    if (!std::isfinite(v)) return "–";
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", digits, v);
    return text;
}

inline std::string percent(double share) { return fixed(100.0 * share, 1) + "%"; }

/// The colour of a confusion-matrix cell: white to blue (diagonal) or red (elsewhere) with
/// the share of its row; confusions are usually small shares, so they are scaled up.
inline double cell_intensity(double share, bool diagonal) {
    return std::clamp(diagonal ? share : std::sqrt(share) * 1.6, 0.0, 1.0);
}
inline std::string cell_colour(double share, bool diagonal) {
    const double t = cell_intensity(share, diagonal);
    const int r0 = diagonal ? 31 : 200, g0 = diagonal ? 90 : 40, b0 = diagonal ? 180 : 40;
    auto mix = [&](int to) { return static_cast<int>(std::lround(255 + (to - 255) * t)); };
    char text[16];
    std::snprintf(text, sizeof text, "#%02x%02x%02x", mix(r0), mix(g0), mix(b0));
    return text;
}

/// The confusion matrix `counts[true * k + predicted]` as an SVG grid.
inline std::string confusion_svg(const std::vector<std::size_t>& counts, const std::vector<std::string>& names) {
    const std::size_t k = names.size();
    std::size_t longest = 0;
    for (const auto& n : names) longest = std::max(longest, n.size());
    const double cell = k <= 12 ? 42.0 : std::max(14.0, 504.0 / static_cast<double>(k));
    const double left = 24.0 + 7.0 * static_cast<double>(longest), top = 30.0 + 5.2 * static_cast<double>(longest);
    const double grid = cell * static_cast<double>(k);
    const int width = static_cast<int>(left + grid + 70), height = static_cast<int>(top + grid + 34);
    svg_writer svg(width, height);
    svg.title("Confusion matrix of the test set");
    svg.rect(0, 0, width, height, "#ffffff");
    svg.text(left + grid / 2, 14, "predicted class", 12, "middle", "bold");
    svg.text(12, top + grid / 2, "true class", 12, "middle", "bold", -90);
    svg.text(left + grid + 36, top - 8, "recall", 11, "middle", "bold");
    for (std::size_t t = 0; t < k; ++t) {
        std::size_t row = 0;
        for (std::size_t p = 0; p < k; ++p) row += counts[t * k + p];
        const double y = top + cell * static_cast<double>(t);
        svg.text(left - 6, y + cell / 2 + 4, names[t], 12, "end");
        svg.text(left + cell * (static_cast<double>(t) + 0.5) + 4, top - 6, names[t], 12, "start", "normal", -40);
        for (std::size_t p = 0; p < k; ++p) {
            const std::size_t n = counts[t * k + p];
            const double share = row == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(row);
            const double x = left + cell * static_cast<double>(p);
            svg.rect(x, y, cell, cell, cell_colour(share, t == p), "#e4e4e4");
            if (cell >= 30 && n != 0)
                svg.text(x + cell / 2, y + cell / 2 + 4, std::to_string(n), 11, "middle", t == p ? "bold" : "normal",
                         0.0, cell_intensity(share, t == p) > 0.6 ? "#ffffff" : "#222222");
        }
        const double recall = row == 0 ? 0.0 : static_cast<double>(counts[t * k + t]) / static_cast<double>(row);
        svg.text(left + grid + 36, y + cell / 2 + 4, percent(recall), 11, "middle");
    }
    return svg.finish();
}

inline void table(std::string& html, const setting_rows& rows) {
    html += "<table class=\"settings\">\n";
    for (const auto& [name, value] : rows)
        html += "<tr><th>" + xml_escape(name) + "</th><td>" + xml_escape(value) + "</td></tr>\n";
    html += "</table>\n";
}

inline constexpr std::string_view style = R"(
:root { color-scheme: light; }
body { margin: 0; background: #f4f5f7; color: #222; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 18px 24px 40px; }
h1 { font-size: 24px; margin: 4px 0 2px; }
h2 { font-size: 16px; margin: 0 0 10px; }
p.lead { margin: 0 0 16px; color: #444; font-size: 15px; }
p.note { margin: 6px 0 0; color: #666; font-size: 12px; }
section { background: #fff; border: 1px solid #dde0e4; border-radius: 8px; padding: 14px 16px; margin: 0 0 16px; }
.two { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
.two > section { margin: 0; }
.two + * { margin-top: 16px; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
svg { max-width: 100%; height: auto; display: block; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; text-align: center; font-size: 11px; line-height: 1.3; }
figure img { display: block; image-rendering: pixelated; border: 1px solid #ccc; background: #000; }
.worst figure { width: 92px; }
.worst img { width: 84px; height: 84px; margin: 0 auto 2px; }
.inputs figure { width: 64px; }
.inputs img { width: 56px; height: 56px; margin: 0 auto 2px; }
.true { color: #1f5ab4; }
.wrong { color: #c02828; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px 3px 0; text-align: left; border-bottom: 1px solid #eee; vertical-align: top; }
table.epochs td, table.epochs th { text-align: right; padding-right: 14px; }
pre { font-size: 12px; overflow-x: auto; margin: 0; }
)";

}  // namespace detail::report

template <typename Model>
std::string training_report_html(Model& model, const history& h, const fit_options& options, data::dataset_ref train,
                                  data::dataset_ref test, const report_options& report) {
    namespace r = detail::report;
    using detail::xml_escape;
    if (test == nullptr) throw error("training_report_html: the report needs a test set");
    constexpr std::size_t k = Model::classes;

    // The test set's predictions: confusion matrix and the worst-classified images.
    const auto start = std::chrono::steady_clock::now();
    const xt::xtensor<float, 2> p = test.visit([&](const auto& d) { return model.predict(d.images); });
    const double predict_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto labels = test.visit([](const auto& d) { return d.labels; });
    const std::size_t n = labels.size();
    std::vector<std::size_t> counts(k * k, 0);
    std::vector<std::size_t> predicted(n), wrong;
    for (std::size_t i = 0; i < n; ++i) {
        const float* row = p.data() + i * k;
        predicted[i] = static_cast<std::size_t>(std::max_element(row, row + k) - row);
        const auto t = static_cast<std::size_t>(labels(i));
        if (t >= k) throw error("training_report_html: test label " + std::to_string(t) + " is out of range");
        ++counts[t * k + predicted[i]];
        if (predicted[i] != t) wrong.push_back(i);
    }
    auto p_true = [&](std::size_t i) { return p(i, static_cast<std::size_t>(labels(i))); };
    // Ties in test-set order. (Not std::stable_sort: clang 19 with libstdc++ 12 warns about
    // its deprecated get_temporary_buffer.)
    std::sort(wrong.begin(), wrong.end(), [&](std::size_t a, std::size_t b) {
        return p_true(a) < p_true(b) || (p_true(a) == p_true(b) && a < b);
    });
    wrong.resize(std::min(wrong.size(), report.worst_images));
    std::size_t correct = 0;
    for (std::size_t c = 0; c < k; ++c) correct += counts[c * k + c];
    const double accuracy = n == 0 ? 0.0 : static_cast<double>(correct) / static_cast<double>(n);

    std::vector<std::string> names = report.class_names;
    if (names.empty()) names = test.visit([](const auto& d) { return d.class_names; });
    names.resize(k);
    for (std::size_t c = 0; c < k; ++c)
        if (names[c].empty()) names[c] = std::to_string(c);

    double train_seconds = 0.0;
    for (const auto& e : h.epochs) train_seconds += e.seconds;

    std::string html;
    html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    // Nothing but what is inline: the page opens offline and cannot fetch anything.
    html += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">\n";
    html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    html += "<title>" + xml_escape(report.title) + "</title>\n<style>" + std::string(r::style) + "</style>\n</head>\n";
    html += "<body>\n<main>\n<h1>" + xml_escape(report.title) + "</h1>\n";
    html += "<p class=\"lead\">Test accuracy <b>" + r::fixed(accuracy, 4) + "</b> on " + std::to_string(n) +
            " images &middot; " + std::to_string(h.size()) + (h.size() == 1 ? " epoch" : " epochs") + " in " +
            r::fixed(train_seconds, 1) + " s &middot; " + detail::thousands(Model::network_type::parameter_count) +
            " parameters</p>\n";

    if (h.size() != 0)
        html += "<section id=\"curves\">\n<h2>Loss and accuracy per epoch</h2>\n" + history_svg(h, "") + "</section>\n";

    html += "<div class=\"two\">\n<section id=\"confusion\">\n<h2>Confusion matrix (test set)</h2>\n";
    html += r::confusion_svg(counts, names);
    html += "<p class=\"note\">Rows: true class; columns: predicted class. Colour: share of the row "
            "(blue: right, red: confused).</p>\n</section>\n";
    html += "<section id=\"worst\" class=\"worst\">\n<h2>Worst-classified test images</h2>\n<div class=\"grid\">\n";
    for (const std::size_t i : wrong) {
        const std::string uri = test.visit([&](const auto& d) { return r::sample_uri(d, i); });
        html += "<figure><img alt=\"test image " + std::to_string(i) + "\" src=\"" + uri + "\"><span class=\"true\">" +
                xml_escape(names[static_cast<std::size_t>(labels(i))]) + "</span><br><span class=\"wrong\">" +
                xml_escape(names[predicted[i]]) + " " + r::percent(p(i, predicted[i])) + "</span></figure>\n";
    }
    html += "</div>\n<p class=\"note\">Misclassified test images with the least probability given to their true "
            "class: <span class=\"true\">true label</span>, then <span class=\"wrong\">predicted label and its "
            "probability</span>.";
    if (wrong.empty()) html += " None: every test image is classified right.";
    html += "</p>\n</section>\n</div>\n";

    if (train != nullptr && report.input_images != 0) {
        html += "<section id=\"inputs\" class=\"inputs\">\n<h2>Training inputs as the model saw them</h2>\n"
                "<div class=\"grid\">\n";
        const std::size_t first_epoch = h.size() != 0 ? h.epochs.front().epoch : options.initial_epoch + 1;
        train.visit([&](const auto& d) {
            const std::size_t count = std::min(report.input_images, d.size());
            if (count == 0) return;
            // The loader augments a sample from (seed, epoch, sample) alone, so this is what
            // `fit`'s loader gave for these samples in that epoch.
            // (Without the model's normalisation, which would take the pixels out of [0, 1].)
            data::batch_loader loader(d, count, {.flip = options.flip, .crop_padding = options.crop_padding,
                                                 .random_resized_crop = options.random_resized_crop,
                                                 .color_jitter = options.color_jitter, .seed = options.seed});
            std::vector<std::size_t> order(count);
            std::iota(order.begin(), order.end(), std::size_t{0});
            loader.start_epoch(order, first_epoch);
            const data::batch* b = loader.next();
            const std::size_t size = b->shape[1] * b->shape[2] * b->shape[3];
            for (std::size_t i = 0; i < b->size; ++i) {
                const auto label = static_cast<std::size_t>(b->labels[i]);
                html += "<figure><img alt=\"training image " + std::to_string(i) + "\" src=\"" +
                        r::image_uri(b->images.data() + i * size, b->shape[1], b->shape[2], b->shape[3]) + "\">" +
                        xml_escape(label < k ? names[label] : std::to_string(label)) + "</figure>\n";
            }
        });
        html += "</div>\n<p class=\"note\">The first training samples as the batch loader gave them in epoch " +
                std::to_string(first_epoch) +
                r::augmentation_note(options) +
                ", with their labels.</p>\n</section>\n";
    }

    html += "<div class=\"two\">\n<section id=\"settings\">\n<h2>Settings</h2>\n";
    setting_rows settings = report.settings;
    for (auto& row : run_settings(model, options)) settings.push_back(std::move(row));
    r::table(html, settings);
    html += "</section>\n<section id=\"timings\">\n<h2>Timings</h2>\n<table class=\"epochs\">\n"
            "<tr><th>epoch</th><th>loss</th><th>accuracy</th><th>val_loss</th><th>val_accuracy</th>"
            "<th>learning rate</th><th>seconds</th></tr>\n";
    for (const auto& e : h.epochs) {
        char lr[32];
        std::snprintf(lr, sizeof lr, "%.3g", e.learning_rate);
        html += "<tr><td>" + std::to_string(e.epoch) + "</td><td>" + r::fixed(e.loss, 4) + "</td><td>" +
                r::fixed(e.accuracy, 4) + "</td><td>" + r::fixed(e.val_loss, 4) + "</td><td>" +
                r::fixed(e.val_accuracy, 4) + "</td><td>" + lr + "</td><td>" + r::fixed(e.seconds, 1) + "</td></tr>\n";
    }
    html += "</table>\n";
    const step_timings& t = model.timings();
    const double step_total = t.compute_seconds + t.sync_seconds + t.update_seconds;
    setting_rows timing_rows{{"training (all epochs, validation included)", r::fixed(train_seconds, 1) + " s"}};
    if (t.steps != 0)
        timing_rows.insert(timing_rows.end(),
                           {{"training steps (rank 0)", std::to_string(t.steps) + ", " +
                                                            r::fixed(1e3 * step_total / static_cast<double>(t.steps), 2) +
                                                            " ms each"},
                            {"forward and backward", r::fixed(t.compute_seconds, 1) + " s"},
                            {"gradient synchronisation", r::fixed(t.sync_seconds, 1) + " s"},
                            {"optimizer updates", r::fixed(t.update_seconds, 1) + " s"}});
    timing_rows.push_back({"predicting the test set for this page", r::fixed(predict_seconds, 1) + " s"});
    html += "<p></p>\n";
    r::table(html, timing_rows);
    html += "</section>\n</div>\n";

    std::ostringstream summary;
    print_summary<typename Model::network_type>(summary);
    html += "<section id=\"summary\">\n<h2>Model</h2>\n<pre>" + xml_escape(summary.str()) + "</pre>\n</section>\n";
    html += "</main>\n</body>\n</html>\n";
    return html;
}

template <typename Model>
void write_training_report(Model& model, const history& h, const fit_options& options, data::dataset_ref train,
                           data::dataset_ref test, const std::filesystem::path& file, const report_options& report) {
    if (model.comm().rank() != 0) return;
    detail::write_text_file("write_training_report", file, training_report_html(model, h, options, train, test, report));
}

}  // namespace staticnet
