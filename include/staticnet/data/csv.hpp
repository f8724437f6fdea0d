#pragma once
/// @file
/// CSV reader: one sample per row, the label first, then the pixels, as in the widely used
/// Fashion-MNIST CSV files (`label,pixel1,...,pixel784`, values 0..255).
///
/// Cells are separated by commas; a line may end with "\r\n"; empty lines are skipped. The
/// first row is a header when its first cell is not a number (or as `csv_options` says).
/// Labels are whole numbers in [0, classes); pixels whole numbers 0..255, read as v / 255
/// like the IDX reader, so a CSV file and the IDX files it was made from give the same
/// floats. Every problem throws `staticnet::data_error` naming the file, the line and the
/// column (1-based, as an editor shows them).

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "../core/compat.hpp"
#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/shape.hpp"
#include "byte_dataset.hpp"
#include "dataset.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// Whether the first row of a CSV file names the columns.
enum class csv_header {
    detect,   ///< a header when its first cell is not a number
    present,  ///< always skip the first row
    absent,   ///< the first row is a sample
};

/// How `load_csv` reads a file.
struct csv_options {
    /// The (H, W, C) shape of a sample; without it the pixel count must be a square number
    /// P and samples are sqrt(P) x sqrt(P) x 1 (784 pixels: 28x28x1).
    std::optional<shape> sample_shape{};
    /// Number of classes; 0 takes the largest label + 1.
    std::size_t num_classes = 0;
    csv_header header = csv_header::detect;
};

/// Reads a CSV file of samples (label, then H*W*C pixels per row) into a `dataset`.
[[nodiscard]] inline dataset load_csv(const std::filesystem::path& file, const csv_options& options = {});

/// `load_csv` keeping the pixels as bytes (`byte_dataset`).
[[nodiscard]] inline byte_dataset load_csv_bytes(const std::filesystem::path& file, const csv_options& options = {});

// ===================================================================== implementation

namespace detail {

/// Parses CSV text held in memory into a `dataset` or a `byte_dataset`; `file` names it in
/// messages.
template <typename Data>
Data parse_csv_as(std::string_view text, const std::string& file, const csv_options& options) {
    const auto fail = [&](std::size_t line, const std::string& problem) -> void {
        throw data_error("CSV file '" + file + "' line " + std::to_string(line) + ": " + problem);
    };
    std::size_t pixels = 0;
    std::array<std::size_t, 3> dims{};
    if (options.sample_shape) {
        if (!options.sample_shape->is_image())
            throw data_error("CSV file '" + file + "': the sample shape must be an image shape (height, width, channels)");
        dims = {options.sample_shape->height(), options.sample_shape->width(), options.sample_shape->channels()};
        pixels = dims[0] * dims[1] * dims[2];
    }

    std::vector<std::uint8_t> pixel_bytes;
    std::vector<std::int64_t> labels;
    std::vector<std::string_view> cells;
    std::size_t line = 0, pos = 0;
    bool first_row = true;
    std::int64_t max_label = -1;
    while (pos < text.size()) {
        ++line;
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view row = text.substr(pos, end - pos);
        pos = end + 1;
        if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
        if (row.empty()) continue;

        cells.clear();
        for (std::size_t at = 0;;) {
            const std::size_t comma = row.find(',', at);
            cells.push_back(row.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at));
            if (comma == std::string_view::npos) break;
            at = comma + 1;
        }
        const auto trim = [](std::string_view c) {
            while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
            while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
            return c;
        };
        for (auto& c : cells) c = trim(c);
        // A whole number in [0, max]; nothing otherwise.
        const auto whole = [](std::string_view c, std::int64_t max) -> std::optional<std::int64_t> {
            std::int64_t v = 0;
            const auto [p, ec] = std::from_chars(c.data(), c.data() + c.size(), v);
            if (c.empty() || ec != std::errc{} || p != c.data() + c.size() || v < 0 || v > max) return std::nullopt;
            return v;
        };

        if (first_row) {
            first_row = false;
            const bool header = options.header == csv_header::present ||
                                (options.header == csv_header::detect && !whole(cells[0], std::numeric_limits<std::int64_t>::max()));
            if (!options.sample_shape) {
                const std::size_t p = cells.size() - 1;
                const auto side = static_cast<std::size_t>(std::lround(std::sqrt(static_cast<double>(p))));
                if (p == 0 || side * side != p)
                    fail(line, std::to_string(cells.size()) + " columns: " + std::to_string(p) +
                                   " pixels are not a square image; give the sample shape (csv_options::sample_shape)");
                dims = {side, side, 1};
                pixels = p;
            }
            if (header) continue;
        }
        if (cells.size() != pixels + 1)
            fail(line, std::to_string(cells.size()) + " columns, but a sample of " + std::to_string(dims[0]) + "x" +
                           std::to_string(dims[1]) + "x" + std::to_string(dims[2]) + " needs " +
                           std::to_string(pixels + 1) + " (the label, then " + std::to_string(pixels) + " pixels)");
        const std::int64_t label_limit = options.num_classes != 0 ? static_cast<std::int64_t>(options.num_classes) - 1
                                                                  : std::int64_t{2147483646};
        const auto label = whole(cells[0], label_limit);
        if (!label)
            fail(line, "column 1: the label '" + std::string(cells[0]) + "' is not a whole number from 0 to " +
                           std::to_string(label_limit) +
                           (options.num_classes != 0 ? " (" + std::to_string(options.num_classes) + " classes)" : ""));
        labels.push_back(*label);
        max_label = std::max(max_label, *label);
        for (std::size_t i = 1; i < cells.size(); ++i) {
            const auto v = whole(cells[i], 255);
            if (!v)
                fail(line, "column " + std::to_string(i + 1) + ": the pixel '" + std::string(cells[i]) +
                               "' is not a whole number from 0 to 255");
            pixel_bytes.push_back(static_cast<std::uint8_t>(*v));
        }
    }
    if (labels.empty()) throw data_error("CSV file '" + file + "': it holds no samples");

    Data d;
    d.images = decltype(d.images)(std::array<std::size_t, 4>{labels.size(), dims[0], dims[1], dims[2]});
    auto* out = d.images.data();
    if constexpr (std::is_same_v<Data, byte_dataset>)
        std::copy(pixel_bytes.begin(), pixel_bytes.end(), out);
    else
        for (std::size_t i = 0; i < pixel_bytes.size(); ++i) out[i] = pixel_value(pixel_bytes[i]);
    d.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{labels.size()});
    for (std::size_t i = 0; i < labels.size(); ++i) d.labels(i) = static_cast<std::int32_t>(labels[i]);
    d.num_classes = options.num_classes != 0 ? options.num_classes : static_cast<std::size_t>(max_label + 1);
    return d;
}

/// Parses CSV text held in memory into a `dataset`; `file` names it in messages.
inline dataset parse_csv(std::string_view text, const std::string& file, const csv_options& options) {
    return parse_csv_as<dataset>(text, file, options);
}

}  // namespace detail

inline dataset load_csv(const std::filesystem::path& file, const csv_options& options) {
    const auto bytes = ::staticnet::detail::read_file_bytes<data_error>(file);
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return detail::parse_csv(text, file.string(), options);
}

inline byte_dataset load_csv_bytes(const std::filesystem::path& file, const csv_options& options) {
    const auto bytes = ::staticnet::detail::read_file_bytes<data_error>(file);
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return detail::parse_csv_as<byte_dataset>(text, file.string(), options);
}

}  // namespace staticnet::data
