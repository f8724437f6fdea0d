#pragma once
/// @file
/// TensorBoard event files: `tensorboard_event_file` writes one, `tensorboard_summary` is
/// what goes into an event (scalars, histograms, text). TensorBoard, PyTorch's
/// `SummaryWriter` and Keras's callback write the same format, so TensorBoard shows our runs
/// as it shows theirs:
///
///     sn::tensorboard_event_file events("runs/exp1");   // runs/exp1/events.out.tfevents.<time>.<host>
///     events.write(step, sn::tensorboard_summary{}.scalar("loss", 0.31f).scalar("accuracy", 0.88f));
///     events.flush();                                   // on disk now
///
/// The file is a sequence of TFRecords (io/tfrecord.hpp), each holding one `Event`
/// message (TensorFlow's `event.proto`): the first has `file_version = "brain.Event:2"`, the
/// others a `wall_time`, a `step` and a `Summary` (`summary.proto`). The messages are written
/// with our own protobuf writer (core/protobuf.hpp); the field numbers are those of
/// TensorFlow's published .proto files, spelled out below.
///
/// - Scalars are `simple_value`s (a float), as PyTorch writes them.
/// - Histograms are `HistogramProto`s: min, max, count, sum, sum of squares, and equal-width
///   buckets between min and max (TensorBoard re-buckets them for display anyway).
/// - Text uses TensorBoard's text plugin: `SummaryMetadata.plugin_data.plugin_name = "text"`
///   and a `TensorProto` of `DT_STRING` holding the (Markdown) text.
///
/// Records are appended to the C library's buffer; `flush` hands them to the system and to
/// the disk. A crash loses what was written since the last flush; TensorBoard reads a file
/// whose last record is cut short up to that record. Errors throw `staticnet::error`
/// naming the file.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/protobuf.hpp"
#include "tfrecord.hpp"

namespace staticnet {

/// The values of one TensorBoard event: a `Summary` message under construction.
class tensorboard_summary {
public:
    /// A scalar: one point of the chart `tag` (e.g. "epoch/loss").
    tensorboard_summary& scalar(std::string_view tag, float value);
    /// A histogram of `values` in `buckets` equal-width buckets between their min and max.
    tensorboard_summary& histogram(std::string_view tag, std::span<const float> values, std::size_t buckets = 30);
    /// Text, shown by TensorBoard's Text tab as Markdown (tables included).
    tensorboard_summary& text(std::string_view tag, std::string_view markdown);

    [[nodiscard]] bool empty() const noexcept { return message_.bytes().empty(); }
    /// The encoded `Summary` message.
    [[nodiscard]] const detail::protobuf_writer& message() const noexcept { return message_; }

private:
    detail::protobuf_writer message_;
};

/// An event file being written: `events.out.tfevents.<seconds since 1970>.<host name>` in
/// a directory, one file per writer.
class tensorboard_event_file {
public:
    /// Creates `directory` (and its parents) if needed, and a new event file in it (another
    /// name, with a counter, if one of that name exists). Writes the file-version event.
    explicit tensorboard_event_file(const std::filesystem::path& directory);

    /// Appends an event of `summary` at `step`, stamped with the current time.
    void write(std::int64_t step, const tensorboard_summary& summary);
    /// Hands what was written to the system and has it put on disk.
    void flush();

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    void append(const detail::protobuf_writer& event);
    [[noreturn]] void fail(std::string_view what) const;

    std::filesystem::path path_;
    detail::file_handle file_;
};

// ------------------------------------------------------------------ implementation

namespace detail::tensorboard {

// Field numbers of TensorFlow's event.proto, summary.proto, tensor.proto and
// tensor_shape.proto (tests/tensorboard/*.proto holds the same, for the test's reader).
namespace event {
inline constexpr std::uint32_t wall_time = 1, step = 2, file_version = 3, summary = 5;
}
namespace summary {
inline constexpr std::uint32_t value = 1;
}
namespace value {
inline constexpr std::uint32_t tag = 1, simple_value = 2, histo = 5, tensor = 8, metadata = 9;
}
namespace histogram {
inline constexpr std::uint32_t min = 1, max = 2, num = 3, sum = 4, sum_squares = 5, bucket_limit = 6, bucket = 7;
}
namespace metadata {
inline constexpr std::uint32_t plugin_data = 1;
}
namespace plugin_data {
inline constexpr std::uint32_t plugin_name = 1;
}
namespace tensor {
inline constexpr std::uint32_t dtype = 1, tensor_shape = 2, string_val = 8;
inline constexpr std::int64_t dt_string = 7;  // DataType.DT_STRING
}

/// Seconds since 1970, with the sub-second part (Event.wall_time).
inline double wall_time() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
    return name;
}

}  // namespace detail::tensorboard

inline tensorboard_summary& tensorboard_summary::scalar(std::string_view tag, float value) {
    namespace f = detail::tensorboard;
    detail::protobuf_writer v;
    v.string_field(f::value::tag, tag);
    v.float_field(f::value::simple_value, value);
    message_.message_field(f::summary::value, v);
    return *this;
}

inline tensorboard_summary& tensorboard_summary::histogram(std::string_view tag, std::span<const float> values,
                                                          std::size_t buckets) {
    namespace f = detail::tensorboard;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0.0, squares = 0.0;
    for (const float x : values) {
        lo = std::min(lo, double{x});
        hi = std::max(hi, double{x});
        sum += x;
        squares += double{x} * x;
    }
    if (values.empty()) lo = hi = 0.0;
    // Bucket i holds (limit[i-1], limit[i]]; all values fall in one bucket when they are equal.
    const std::size_t n = hi > lo ? std::max<std::size_t>(buckets, 1) : 1;
    const double width = (hi - lo) / static_cast<double>(n);
    std::vector<double> limits(n), counts(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) limits[i] = lo + width * static_cast<double>(i + 1);
    limits[n - 1] = hi;
    for (const float x : values) {
        const double at = width > 0 ? std::ceil((x - lo) / width) - 1 : 0.0;
        counts[static_cast<std::size_t>(std::clamp(at, 0.0, static_cast<double>(n - 1)))] += 1.0;
    }
    detail::protobuf_writer h;
    h.double_field(f::histogram::min, lo);
    h.double_field(f::histogram::max, hi);
    h.double_field(f::histogram::num, static_cast<double>(values.size()));
    h.double_field(f::histogram::sum, sum);
    h.double_field(f::histogram::sum_squares, squares);
    h.packed_doubles(f::histogram::bucket_limit, limits);
    h.packed_doubles(f::histogram::bucket, counts);
    detail::protobuf_writer v;
    v.string_field(f::value::tag, tag);
    v.message_field(f::value::histo, h);
    message_.message_field(f::summary::value, v);
    return *this;
}

inline tensorboard_summary& tensorboard_summary::text(std::string_view tag, std::string_view markdown) {
    namespace f = detail::tensorboard;
    detail::protobuf_writer plugin;
    plugin.string_field(f::plugin_data::plugin_name, "text");
    detail::protobuf_writer meta;
    meta.message_field(f::metadata::plugin_data, plugin);
    detail::protobuf_writer t;  // a scalar string tensor: shape [] (an empty TensorShapeProto)
    t.varint_field(f::tensor::dtype, f::tensor::dt_string);
    t.message_field(f::tensor::tensor_shape, detail::protobuf_writer{});
    t.string_field(f::tensor::string_val, markdown);
    detail::protobuf_writer v;
    v.string_field(f::value::tag, tag);
    v.message_field(f::value::metadata, meta);
    v.message_field(f::value::tensor, t);
    message_.message_field(f::summary::value, v);
    return *this;
}

inline tensorboard_event_file::tensorboard_event_file(const std::filesystem::path& directory) {
    std::error_code ec;
    std::filesystem::create_directories(directory, ec);
    if (ec) throw error("tensorboard: cannot create the directory '" + directory.string() + "': " + ec.message());
    const double now = detail::tensorboard::wall_time();
    const std::string name = "events.out.tfevents." + std::to_string(static_cast<std::int64_t>(now)) + '.' +
                             detail::tensorboard::host_name();
    // "x": never open a file that exists (another run started in the same second).
    for (int attempt = 0; attempt < 1000 && !file_.is_open(); ++attempt) {
        path_ = directory / (attempt == 0 ? name : name + '.' + std::to_string(attempt));
        file_ = detail::file_handle(path_, "wbx");
        if (!file_.is_open() && errno != EEXIST) fail("cannot create");
    }
    if (!file_.is_open()) fail("cannot create");
    detail::protobuf_writer first;
    first.double_field(detail::tensorboard::event::wall_time, now);
    first.string_field(detail::tensorboard::event::file_version, "brain.Event:2");
    append(first);
}

inline void tensorboard_event_file::write(std::int64_t step, const tensorboard_summary& summary) {
    namespace f = detail::tensorboard;
    detail::protobuf_writer e;
    e.double_field(f::event::wall_time, f::wall_time());
    e.varint_field(f::event::step, step);
    e.message_field(f::event::summary, summary.message());
    append(e);
}

inline void tensorboard_event_file::flush() {
    if (!file_.sync()) fail("cannot flush");
}

inline void tensorboard_event_file::append(const detail::protobuf_writer& event) {
    const std::vector<std::uint8_t> record = detail::tfrecord(event.bytes());
    if (!file_.write(record.data(), record.size())) fail("write error on");
}

inline void tensorboard_event_file::fail(std::string_view what) const {
    throw error("tensorboard: " + std::string(what) + " '" + path_.string() + "': " + detail::errno_text(errno));
}

}  // namespace staticnet
