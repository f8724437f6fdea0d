#pragma once
/// @file
/// Training history on disk: CSV and JSON files of the per-epoch results, and `csv_logger`,
/// a `fit` callback that writes the CSV while training runs. (An SVG chart of the same
/// results is opt-in: `train/history_chart.hpp`.)
///
///     auto h = model.fit(train, {.epochs = 10, .validation = &test}, sn::csv_logger{"train.csv"});
///     sn::write_history_json(h, "history.json");
///
/// The CSV and JSON files have the same fields, one record per epoch: `epoch`, `loss`,
/// `accuracy`, `val_loss`, `val_accuracy`, `learning_rate`, `seconds`. Numbers are written
/// in their shortest form that reads back to the same value (`seconds` to the millisecond);
/// a value that is not a number (validation values without validation data) is an empty
/// CSV field and `null` in JSON.
///
/// `write_history_csv` and `write_history_json` replace their file atomically
/// (`core/file_io.hpp`). Every rank holds the same history: write files on rank 0 only
/// (`csv_logger` does). A file that cannot be written throws `staticnet::error` naming the
/// path.

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "callbacks.hpp"
#include "history.hpp"

namespace staticnet {

/// The history as CSV text: a header line, then one line per epoch.
[[nodiscard]] inline std::string history_csv(const history& h);
/// The history as JSON text: an array of one object per epoch.
[[nodiscard]] inline std::string history_json(const history& h);

/// Writes `history_csv(h)` to `file` (replacing it).
inline void write_history_csv(const history& h, const std::filesystem::path& file);
/// Writes `history_json(h)` to `file` (replacing it).
inline void write_history_json(const history& h, const std::filesystem::path& file);

/// A `fit` callback that writes the CSV of `history_csv` as training runs: the header when
/// training begins, then one line per epoch, flushed, so the file can be watched (or read
/// after a crash). Only rank 0 writes. With `append`, the lines are added to an existing
/// file (the header only if it is empty), e.g. for a resumed run; otherwise each `fit`
/// starts the file anew. It holds the open file: pass it as a non-const variable or a
/// temporary.
class csv_logger {
public:
    explicit csv_logger(std::filesystem::path file, bool append = false)
        : path_(std::move(file)), append_(append) {}

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    template <typename Model>
    void on_train_begin(Model& model, const fit_options&);
    template <typename Model>
    void on_epoch_end(Model& model, const epoch_log& e);
    template <typename Model>
    void on_train_end(Model& model, const history&);

private:
    void flush_or_throw();

    std::filesystem::path path_;
    bool append_ = false;
    std::ofstream out_;
};

// ------------------------------------------------------------------ implementation

namespace detail {

inline constexpr std::string_view history_fields[] = {"epoch",        "loss",          "accuracy", "val_loss",
                                                       "val_accuracy", "learning_rate", "seconds"};

/// Appends `v` in its shortest round-trip form ("0.25", "1e-05", "inf").
template <typename T>
void append_number(std::string& out, T v) {
    std::array<char, 64> buffer;
    const auto r = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v);
    out.append(buffer.data(), r.ptr);
}
inline void append_fixed(std::string& out, double v, int decimals) {
    std::array<char, 64> buffer;
    const auto r = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v, std::chars_format::fixed, decimals);
    out.append(buffer.data(), r.ptr);
}

/// The seven values of an epoch as text, in `history_fields` order; `missing` for a NaN.
inline std::array<std::string, 7> epoch_fields(const epoch_log& e, std::string_view missing) {
    auto number = [&](double v) {
        std::string s;
        if (std::isnan(v)) s = missing;
        else append_number(s, v);
        return s;
    };
    std::array<std::string, 7> f;
    f[0] = std::to_string(e.epoch);
    f[1] = number(e.loss);
    f[2] = number(e.accuracy);
    f[3] = number(e.val_loss);
    f[4] = number(e.val_accuracy);
    append_number(f[5], static_cast<float>(e.learning_rate));  // the optimizer's float, not its double widening
    append_fixed(f[6], e.seconds, 3);
    return f;
}

inline std::string csv_header() {
    std::string line;
    for (auto name : history_fields) {
        if (!line.empty()) line += ',';
        line += name;
    }
    return line += '\n';
}

inline std::string csv_line(const epoch_log& e) {
    std::string line;
    for (const auto& field : epoch_fields(e, "")) {
        if (!line.empty()) line += ',';
        line += field;
    }
    return line += '\n';
}

/// "what: cannot write 'path': reason".
[[noreturn]] inline void throw_write_error(std::string_view what, const std::filesystem::path& file, int err) {
    std::string msg(what);
    msg += ": cannot write '";
    msg += file.string();
    msg += '\'';
    if (err != 0) {
        msg += ": ";
        msg += errno_text(err);
    }
    throw error(msg);
}

/// Replaces `file` with `text`, atomically; `what` names the caller in the message.
inline void write_text_file(std::string_view what, const std::filesystem::path& file, const std::string& text) {
    write_file_atomically<error>(file, std::string(what) + ": cannot write '" + file.string() + "'",
                                 [&](output_file& out) { out.write(std::string_view(text)); });
}

}  // namespace detail

inline std::string history_csv(const history& h) {
    std::string text = detail::csv_header();
    for (const auto& e : h.epochs) text += detail::csv_line(e);
    return text;
}

inline std::string history_json(const history& h) {
    std::string text = "[";
    for (std::size_t i = 0; i < h.epochs.size(); ++i) {
        text += i == 0 ? "\n  {" : ",\n  {";
        const auto fields = detail::epoch_fields(h.epochs[i], "null");
        for (std::size_t f = 0; f < fields.size(); ++f) {
            if (f != 0) text += ", ";
            text += '"';
            text += detail::history_fields[f];
            text += "\": ";
            // JSON has no infinities either.
            text += fields[f] == "inf" || fields[f] == "-inf" ? std::string("null") : fields[f];
        }
        text += '}';
    }
    text += h.epochs.empty() ? "]\n" : "\n]\n";
    return text;
}

inline void write_history_csv(const history& h, const std::filesystem::path& file) {
    detail::write_text_file("write_history_csv", file, history_csv(h));
}

inline void write_history_json(const history& h, const std::filesystem::path& file) {
    detail::write_text_file("write_history_json", file, history_json(h));
}

template <typename Model>
void csv_logger::on_train_begin(Model& model, const fit_options&) {
    if (model.comm().rank() != 0) return;
    if (out_.is_open()) out_.close();
    std::error_code ec;
    const bool has_lines = append_ && std::filesystem::file_size(path_, ec) > 0 && !ec;
    errno = 0;
    out_.clear();
    out_.open(path_, std::ios::binary | (append_ ? std::ios::app : std::ios::trunc));
    if (!out_) detail::throw_write_error("csv_logger", path_, errno);
    if (!has_lines) out_ << detail::csv_header();
    flush_or_throw();
}

template <typename Model>
void csv_logger::on_epoch_end(Model& model, const epoch_log& e) {
    if (model.comm().rank() != 0 || !out_.is_open()) return;
    out_ << detail::csv_line(e);
    flush_or_throw();
}

template <typename Model>
void csv_logger::on_train_end(Model& model, const history&) {
    if (model.comm().rank() != 0 || !out_.is_open()) return;
    out_.close();
    if (!out_) detail::throw_write_error("csv_logger", path_, errno);
}

inline void csv_logger::flush_or_throw() {
    // Flushed line by line (std::ofstream buffers otherwise), so a failed write shows here.
    out_.flush();
    if (!out_) detail::throw_write_error("csv_logger", path_, errno);
}

}  // namespace staticnet
