#pragma once
/// @file
/// An SVG chart of a training history: loss and accuracy per epoch. Opt-in: the umbrella
/// header `staticnet.hpp` does not include it, so only programs that draw charts compile it.
///
///     #include <staticnet/train/history_chart.hpp>
///     sn::write_history_svg(h, "history.svg", "Fashion-MNIST, reference CNN");
///
/// The chart is a plain SVG file (900 x 360, no script, no external resource) drawn by our
/// own small writer: two panels side by side, loss and accuracy per epoch, each with the
/// training curve (solid) and, when there is validation data, the validation curve
/// (dashed), axes with ticks and labels, and a legend. Browsers, editors and Markdown
/// renderers show it as it is. Like the CSV and JSON files of `history_io.hpp`, the file is
/// replaced atomically, and one that cannot be written throws `staticnet::error` naming the
/// path; write it on rank 0 only.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "history.hpp"
#include "history_io.hpp"

namespace staticnet {

/// The history as an SVG chart (900 x 360): loss and accuracy per epoch, side by side.
[[nodiscard]] inline std::string history_svg(const history& h, std::string_view title = "Training history");
/// Writes `history_svg(h, title)` to `file` (replacing it).
inline void write_history_svg(const history& h, const std::filesystem::path& file,
                              std::string_view title = "Training history");

// ------------------------------------------------------------------ implementation

namespace detail {

inline std::string xml_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

/// A minimal SVG writer: the few elements a line chart needs, coordinates to 0.1 px.
class svg_writer {
public:
    svg_writer(int width, int height) {
        out_ += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"";
        out_ += std::to_string(width);
        out_ += "\" height=\"";
        out_ += std::to_string(height);
        out_ += "\" viewBox=\"0 0 ";
        out_ += std::to_string(width);
        out_ += ' ';
        out_ += std::to_string(height);
        out_ += "\" font-family=\"Helvetica, Arial, sans-serif\">\n";
    }

    void title(std::string_view text) {
        out_ += "<title>";
        out_ += xml_escape(text);
        out_ += "</title>\n";
    }
    void rect(double x, double y, double w, double h, std::string_view fill, std::string_view stroke = "none") {
        out_ += "<rect";
        attribute("x", x);
        attribute("y", y);
        attribute("width", w);
        attribute("height", h);
        attribute("fill", fill);
        attribute("stroke", stroke);
        out_ += "/>\n";
    }
    void line(double x1, double y1, double x2, double y2, std::string_view stroke, double width = 1.0,
              std::string_view dash = {}) {
        out_ += "<line";
        attribute("x1", x1);
        attribute("y1", y1);
        attribute("x2", x2);
        attribute("y2", y2);
        stroke_attributes(stroke, width, dash);
        out_ += "/>\n";
    }
    void polyline(const std::vector<std::pair<double, double>>& points, std::string_view stroke, double width,
                  std::string_view dash = {}) {
        out_ += "<polyline fill=\"none\" points=\"";
        for (std::size_t i = 0; i < points.size(); ++i) {
            if (i != 0) out_ += ' ';
            number(points[i].first);
            out_ += ',';
            number(points[i].second);
        }
        out_ += '"';
        stroke_attributes(stroke, width, dash);
        out_ += " stroke-linejoin=\"round\"/>\n";
    }
    void circle(double cx, double cy, double r, std::string_view fill) {
        out_ += "<circle";
        attribute("cx", cx);
        attribute("cy", cy);
        attribute("r", r);
        attribute("fill", fill);
        out_ += "/>\n";
    }
    /// Text at (x, y); `anchor` is start, middle or end; `rotate` turns it about (x, y).
    void text(double x, double y, std::string_view s, double size, std::string_view anchor = "start",
              std::string_view weight = "normal", double rotate = 0.0, std::string_view fill = "#333") {
        out_ += "<text";
        attribute("x", x);
        attribute("y", y);
        attribute("font-size", size);
        attribute("text-anchor", anchor);
        if (weight != "normal") attribute("font-weight", weight);
        attribute("fill", fill);
        if (rotate != 0.0) {
            out_ += " transform=\"rotate(";
            number(rotate);
            out_ += ' ';
            number(x);
            out_ += ' ';
            number(y);
            out_ += ")\"";
        }
        out_ += '>';
        out_ += xml_escape(s);
        out_ += "</text>\n";
    }
    std::string finish() {
        out_ += "</svg>\n";
        return std::move(out_);
    }

private:
    /// To 0.1 px, without a trailing ".0" or a "-0".
    void number(double v) {
        const std::size_t at = out_.size();
        append_fixed(out_, std::abs(v) < 0.05 ? 0.0 : v, 1);
        if (out_.size() >= at + 2 && out_.ends_with(".0")) out_.resize(out_.size() - 2);
    }
    void attribute(std::string_view name, double v) {
        out_ += ' ';
        out_ += name;
        out_ += "=\"";
        number(v);
        out_ += '"';
    }
    void attribute(std::string_view name, std::string_view v) {
        out_ += ' ';
        out_ += name;
        out_ += "=\"";
        out_ += v;
        out_ += '"';
    }
    void stroke_attributes(std::string_view stroke, double width, std::string_view dash) {
        attribute("stroke", stroke);
        attribute("stroke-width", width);
        if (!dash.empty()) attribute("stroke-dasharray", dash);
    }

    std::string out_;
};

/// An axis range widened to whole multiples of a "nice" step (1, 2 or 5 times a power of 10).
struct axis_range {
    double lo = 0.0, hi = 1.0, step = 0.2;
    /// Decimals that tell the ticks apart.
    [[nodiscard]] int decimals() const noexcept {
        return std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    }
};

inline axis_range nice_range(double lo, double hi, double target_ticks) {
    if (!(hi > lo)) {  // one value (or none): a small range around it
        const double pad = std::max(std::abs(lo) * 0.1, 0.05);
        lo -= pad;
        hi += pad;
    }
    const double raw = (hi - lo) / target_ticks;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    const double norm = raw / magnitude;
    const double step = (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * magnitude;
    return {std::floor(lo / step + 1e-9) * step, std::ceil(hi / step - 1e-9) * step, step};
}

/// One curve of a panel.
struct chart_series {
    std::string_view label;
    std::string_view color;
    std::string_view dash;  ///< empty: solid
    std::vector<double> values;
};

/// One panel: a line chart of `series` against `epochs`, in the box (x, y, width, height).
inline void chart_panel(svg_writer& svg, double x, double y, double width, double height, std::string_view name,
                        const std::vector<double>& epochs, const std::vector<chart_series>& series, bool unit_interval) {
    const double left = x + 62, right = x + width - 18, top = y + 28, bottom = y + height - 44;
    svg.text((left + right) / 2, y + 16, name, 13, "middle", "bold");

    // Ranges: the epochs on x (whole numbers), the finite values on y.
    double x_lo = epochs.empty() ? 1.0 : epochs.front(), x_hi = epochs.empty() ? 1.0 : epochs.back();
    if (x_hi <= x_lo) x_lo -= 1.0, x_hi += 1.0;
    double v_lo = std::numeric_limits<double>::infinity(), v_hi = -v_lo;
    for (const auto& s : series)
        for (double v : s.values)
            if (std::isfinite(v)) v_lo = std::min(v_lo, v), v_hi = std::max(v_hi, v);
    if (!(v_lo <= v_hi)) v_lo = 0.0, v_hi = 1.0;
    axis_range ya = nice_range(v_lo, v_hi, 5);
    if (unit_interval) ya.lo = std::max(ya.lo, 0.0), ya.hi = std::min(ya.hi, 1.0);
    if (!(ya.hi > ya.lo)) ya.hi = ya.lo + ya.step;
    const double x_step = std::max(1.0, nice_range(x_lo, x_hi, 8).step);
    auto px = [&](double e) { return left + (e - x_lo) / (x_hi - x_lo) * (right - left); };
    auto py = [&](double v) { return bottom - (v - ya.lo) / (ya.hi - ya.lo) * (bottom - top); };

    // Grid, ticks and tick labels, then the frame over them.
    std::string label;
    for (double t = std::ceil(ya.lo / ya.step - 1e-9) * ya.step; t <= ya.hi + ya.step * 1e-6; t += ya.step) {
        svg.line(left, py(t), right, py(t), "#e5e5e5");
        svg.line(left - 5, py(t), left, py(t), "#555");
        label.clear();
        append_fixed(label, std::abs(t) < ya.step * 1e-6 ? 0.0 : t, ya.decimals());
        svg.text(left - 8, py(t) + 4, label, 11, "end");
    }
    for (double t = std::ceil(x_lo / x_step) * x_step; t <= x_hi + 1e-9; t += x_step) {
        svg.line(px(t), top, px(t), bottom, "#f0f0f0");
        svg.line(px(t), bottom, px(t), bottom + 5, "#555");
        label = std::to_string(static_cast<long long>(std::llround(t)));
        svg.text(px(t), bottom + 18, label, 11, "middle");
    }
    svg.rect(left, top, right - left, bottom - top, "none", "#555");
    svg.text((left + right) / 2, bottom + 36, "epoch", 12, "middle");
    svg.text(x + 16, (top + bottom) / 2, name, 12, "middle", "normal", -90);

    // Curves: a polyline per run of finite values, and a dot at every point.
    const double box_w = 104;
    std::size_t shown = 0;
    double high = 0.0, low = 1.0;  // the extent of the points under the legend's column, 0 (bottom) to 1 (top)
    for (const auto& s : series) {
        std::vector<std::pair<double, double>> run;
        auto flush = [&] {
            if (!run.empty()) svg.polyline(run, s.color, 2.0, s.dash);
            run.clear();
        };
        bool any = false;
        for (std::size_t i = 0; i < s.values.size() && i < epochs.size(); ++i) {
            if (!std::isfinite(s.values[i])) {
                flush();
                continue;
            }
            any = true;
            run.emplace_back(px(epochs[i]), py(s.values[i]));
            svg.circle(run.back().first, run.back().second, 2.5, s.color);
            if (run.back().first >= right - box_w - 30) {
                const double f = (s.values[i] - ya.lo) / (ya.hi - ya.lo);
                high = std::max(high, f), low = std::min(low, f);
            }
        }
        flush();
        shown += any ? 1 : 0;
    }
    if (epochs.empty()) svg.text((left + right) / 2, (top + bottom) / 2, "no epochs", 12, "middle", "normal", 0, "#999");

    // The legend in the right corner with more room above or below the curves (the top for
    // falling losses, the bottom for rising accuracies).
    if (shown == 0) return;
    const double box_h = 10 + 18.0 * static_cast<double>(shown);
    const double bx = right - box_w - 8, by = 1.0 - high >= low ? top + 8 : bottom - box_h - 8;
    svg.rect(bx, by, box_w, box_h, "#ffffff", "#cccccc");
    double ly = by + 16;
    for (const auto& s : series) {
        if (std::none_of(s.values.begin(), s.values.end(), [](double v) { return std::isfinite(v); })) continue;
        svg.line(bx + 8, ly - 4, bx + 32, ly - 4, s.color, 2.0, s.dash);
        svg.text(bx + 38, ly, s.label, 11);
        ly += 18;
    }
}

}  // namespace detail

inline std::string history_svg(const history& h, std::string_view title) {
    constexpr int width = 900, height = 360;
    detail::svg_writer svg(width, height);
    svg.title(title.empty() ? std::string_view("Training history") : title);
    svg.rect(0, 0, width, height, "#ffffff");
    const double top = title.empty() ? 8.0 : 34.0;
    if (!title.empty()) svg.text(width / 2.0, 22, title, 15, "middle", "bold");

    std::vector<double> epochs;
    std::vector<double> loss, val_loss, accuracy, val_accuracy;
    for (const auto& e : h.epochs) {
        epochs.push_back(static_cast<double>(e.epoch));
        loss.push_back(e.loss);
        val_loss.push_back(e.val_loss);
        accuracy.push_back(e.accuracy);
        val_accuracy.push_back(e.val_accuracy);
    }
    constexpr std::string_view train_color = "#1f77b4", validation_color = "#ff7f0e", dashed = "6 4";
    detail::chart_panel(svg, 0, top, width / 2.0, height - top, "loss", epochs,
                        {{"train", train_color, {}, std::move(loss)}, {"validation", validation_color, dashed, std::move(val_loss)}},
                        false);
    detail::chart_panel(svg, width / 2.0, top, width / 2.0, height - top, "accuracy", epochs,
                        {{"train", train_color, {}, std::move(accuracy)},
                         {"validation", validation_color, dashed, std::move(val_accuracy)}},
                        true);
    return svg.finish();
}

inline void write_history_svg(const history& h, const std::filesystem::path& file, std::string_view title) {
    detail::write_text_file("write_history_svg", file, history_svg(h, title));
}

}  // namespace staticnet
