#pragma once
/// @file
/// The protocol-buffers wire format, as much of it as our files need (ONNX models,
/// TensorBoard event files), without the protobuf library: a message is a sequence of fields, each a tag (field number and wire
/// type, one varint) followed by its value: a varint, 4 or 8 little-endian bytes, or a
/// length (varint) and that many bytes (strings, bytes, nested messages, packed arrays).
///
/// - `protobuf_writer` appends fields; a nested message is written to its own writer and
///   appended whole, so no length has to be known in advance.
/// - `protobuf_reader` walks the fields of one message in a buffer it does not own. It
///   trusts nothing: every length is checked against what is left, varints are at most 10
///   bytes, groups (wire types 3 and 4, deprecated) are refused. A malformed message throws
///   `protobuf_error` with the byte offset, from the start of the file, where it goes wrong.
///
/// Internals of the ONNX reader and writer (`io/onnx.hpp`) and of the TensorBoard event
/// writer (`io/tensorboard_events.hpp`).

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "file_io.hpp"

namespace staticnet::detail {

/// How a field's value is encoded (the low 3 bits of its tag).
enum class wire_type : std::uint8_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

/// A message that does not follow the wire format; the text names the byte offset.
class protobuf_error : public error {
public:
    using error::error;
};

/// Appends fields to a message.
class protobuf_writer {
public:
    /// int32, int64, uint64, enum and bool fields (negative values take 10 bytes, as protobuf does).
    void varint_field(std::uint32_t field, std::int64_t value);
    void float_field(std::uint32_t field, float value);
    void double_field(std::uint32_t field, double value);
    void bytes_field(std::uint32_t field, std::span<const std::uint8_t> value);
    void string_field(std::uint32_t field, std::string_view value);
    void message_field(std::uint32_t field, const protobuf_writer& message) { bytes_field(field, message.bytes()); }
    /// A repeated float field, packed: one length, then the floats.
    void packed_floats(std::uint32_t field, std::span<const float> values);
    /// A repeated double field, packed.
    void packed_doubles(std::uint32_t field, std::span<const double> values);
    /// A repeated integer field, packed.
    void packed_varints(std::uint32_t field, std::span<const std::int64_t> values);

    [[nodiscard]] const std::vector<std::uint8_t>& bytes() const noexcept { return bytes_; }

private:
    void tag(std::uint32_t field, wire_type type) { varint((std::uint64_t{field} << 3) | static_cast<std::uint8_t>(type)); }
    void varint(std::uint64_t value);

    std::vector<std::uint8_t> bytes_;
};

/// One field as read: its number and type, and its value (`number` for varints and fixed
/// sizes, `bytes` for length-delimited fields).
struct protobuf_field {
    std::uint32_t field = 0;
    wire_type type = wire_type::varint;
    std::uint64_t number = 0;
    std::span<const std::uint8_t> bytes;
    std::size_t offset = 0;        ///< of the tag, from the start of the file
    std::size_t value_offset = 0;  ///< of `bytes`, from the start of the file

    /// The value as a signed integer (int32 and int64 fields).
    [[nodiscard]] std::int64_t as_int() const noexcept { return static_cast<std::int64_t>(number); }
    [[nodiscard]] float as_float() const noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(number)); }
    [[nodiscard]] double as_double() const noexcept { return std::bit_cast<double>(number); }
    [[nodiscard]] std::string_view as_string() const noexcept {
        return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    }
};

/// Walks the fields of one message.
class protobuf_reader {
public:
    /// `message` starts at byte `offset` of the file (for messages only).
    explicit protobuf_reader(std::span<const std::uint8_t> message, std::size_t offset = 0) noexcept
        : bytes_(message), base_(offset) {}

    /// Reads the next field into `f`; false at the end of the message.
    bool next(protobuf_field& f);

    /// The reader of a nested message (a length-delimited field).
    [[nodiscard]] static protobuf_reader nested(const protobuf_field& f);
    /// Appends the values of a repeated integer field, packed or not.
    static void append_varints(const protobuf_field& f, std::vector<std::int64_t>& out);
    /// Appends the values of a repeated float field, packed or not.
    static void append_floats(const protobuf_field& f, std::vector<float>& out);

private:
    std::uint64_t varint();
    [[noreturn]] void fail(std::string_view what, std::size_t at) const;

    std::span<const std::uint8_t> bytes_;
    std::size_t base_ = 0;
    std::size_t at_ = 0;
};

// ------------------------------------------------------------------ implementation

inline void protobuf_writer::varint(std::uint64_t value) {
    while (value >= 0x80) {
        bytes_.push_back(static_cast<std::uint8_t>(value | 0x80));
        value >>= 7;
    }
    bytes_.push_back(static_cast<std::uint8_t>(value));
}

inline void protobuf_writer::varint_field(std::uint32_t field, std::int64_t value) {
    tag(field, wire_type::varint);
    varint(static_cast<std::uint64_t>(value));
}

inline void protobuf_writer::float_field(std::uint32_t field, float value) {
    tag(field, wire_type::fixed32);
    const std::size_t at = bytes_.size();
    bytes_.resize(at + 4);
    store_le(bytes_.data() + at, value);
}

inline void protobuf_writer::double_field(std::uint32_t field, double value) {
    tag(field, wire_type::fixed64);
    const std::size_t at = bytes_.size();
    bytes_.resize(at + 8);
    store_le(bytes_.data() + at, value);
}

inline void protobuf_writer::bytes_field(std::uint32_t field, std::span<const std::uint8_t> value) {
    tag(field, wire_type::length_delimited);
    varint(value.size());
    bytes_.insert(bytes_.end(), value.begin(), value.end());
}

inline void protobuf_writer::string_field(std::uint32_t field, std::string_view value) {
    bytes_field(field, {reinterpret_cast<const std::uint8_t*>(value.data()), value.size()});
}

inline void protobuf_writer::packed_floats(std::uint32_t field, std::span<const float> values) {
    tag(field, wire_type::length_delimited);
    varint(values.size() * 4);
    const std::size_t at = bytes_.size();
    bytes_.resize(at + values.size() * 4);
    for (std::size_t i = 0; i < values.size(); ++i) store_le(bytes_.data() + at + 4 * i, values[i]);
}

inline void protobuf_writer::packed_doubles(std::uint32_t field, std::span<const double> values) {
    tag(field, wire_type::length_delimited);
    varint(values.size() * 8);
    const std::size_t at = bytes_.size();
    bytes_.resize(at + values.size() * 8);
    for (std::size_t i = 0; i < values.size(); ++i) store_le(bytes_.data() + at + 8 * i, values[i]);
}

inline void protobuf_writer::packed_varints(std::uint32_t field, std::span<const std::int64_t> values) {
    protobuf_writer packed;
    for (const std::int64_t v : values) packed.varint(static_cast<std::uint64_t>(v));
    bytes_field(field, packed.bytes());
}

inline void protobuf_reader::fail(std::string_view what, std::size_t at) const {
    throw protobuf_error("malformed protobuf at byte " + std::to_string(base_ + at) + ": " + std::string(what));
}

inline std::uint64_t protobuf_reader::varint() {
    std::uint64_t value = 0;
    const std::size_t start = at_;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (at_ == bytes_.size()) fail("the message ends inside a varint", start);
        const std::uint8_t b = bytes_[at_++];
        value |= std::uint64_t{b & 0x7Fu} << shift;
        if ((b & 0x80) == 0) return value;
    }
    fail("a varint longer than 10 bytes", start);
}

inline bool protobuf_reader::next(protobuf_field& f) {
    if (at_ == bytes_.size()) return false;
    f.offset = base_ + at_;
    const std::size_t tag_at = at_;
    const std::uint64_t tag = varint();
    const auto type = static_cast<std::uint8_t>(tag & 7);
    if (tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF) fail("field number " + std::to_string(tag >> 3) + " is out of range", tag_at);
    f.field = static_cast<std::uint32_t>(tag >> 3);
    f.bytes = {};
    f.number = 0;
    const std::size_t left = bytes_.size() - at_;
    switch (type) {
    case 0:
        f.type = wire_type::varint;
        f.number = varint();
        return true;
    case 1:
    case 5: {
        const std::size_t n = type == 1 ? 8 : 4;
        if (left < n) fail("field " + std::to_string(f.field) + " needs " + std::to_string(n) + " bytes, " +
                           std::to_string(left) + " are left", tag_at);
        f.type = type == 1 ? wire_type::fixed64 : wire_type::fixed32;
        f.number = n == 8 ? load_le<std::uint64_t>(bytes_.data() + at_) : load_le<std::uint32_t>(bytes_.data() + at_);
        at_ += n;
        return true;
    }
    case 2: {
        const std::uint64_t n = varint();
        if (n > bytes_.size() - at_)
            fail("field " + std::to_string(f.field) + " announces " + std::to_string(n) + " bytes, " +
                 std::to_string(bytes_.size() - at_) + " are left", tag_at);
        f.type = wire_type::length_delimited;
        f.value_offset = base_ + at_;
        f.bytes = bytes_.subspan(at_, static_cast<std::size_t>(n));
        at_ += static_cast<std::size_t>(n);
        return true;
    }
    default:
        fail("field " + std::to_string(f.field) + " has wire type " + std::to_string(type) +
             " (groups and unknown types are not read)", tag_at);
    }
}

inline protobuf_reader protobuf_reader::nested(const protobuf_field& f) {
    if (f.type != wire_type::length_delimited)
        throw protobuf_error("malformed protobuf at byte " + std::to_string(f.offset) + ": field " +
                             std::to_string(f.field) + " should be a message");
    return protobuf_reader(f.bytes, f.value_offset);
}

inline void protobuf_reader::append_varints(const protobuf_field& f, std::vector<std::int64_t>& out) {
    if (f.type == wire_type::varint) {
        out.push_back(f.as_int());
        return;
    }
    if (f.type != wire_type::length_delimited)
        throw protobuf_error("malformed protobuf at byte " + std::to_string(f.offset) + ": field " +
                             std::to_string(f.field) + " should hold integers");
    protobuf_reader packed(f.bytes, f.value_offset);
    while (packed.at_ < packed.bytes_.size()) out.push_back(static_cast<std::int64_t>(packed.varint()));
}

inline void protobuf_reader::append_floats(const protobuf_field& f, std::vector<float>& out) {
    if (f.type == wire_type::fixed32) {
        out.push_back(f.as_float());
        return;
    }
    if (f.type != wire_type::length_delimited || f.bytes.size() % 4 != 0)
        throw protobuf_error("malformed protobuf at byte " + std::to_string(f.offset) + ": field " +
                             std::to_string(f.field) + " should hold floats (a multiple of 4 bytes)");
    const std::size_t at = out.size();
    out.resize(at + f.bytes.size() / 4);
    for (std::size_t i = 0; i < f.bytes.size() / 4; ++i) out[at + i] = load_le<float>(f.bytes.data() + 4 * i);
}

}  // namespace staticnet::detail
