#pragma once
/// @file
/// The layout of a shard file: its constants, the header's fields and how they are encoded.
/// `shard_writer.hpp` writes files, `shard_reader.hpp` reads and verifies them, and
/// `shard_format.hpp` includes both.
///
/// Distributed training splits the data set over processes; each rank should read only its
/// own part, and a flipped bit on disk must stop the run instead of silently training on
/// garbage. A shard file is therefore a fixed little-endian layout (see docs/shard_format.md):
///
///     header (64 bytes, with its own CRC32) | block CRC32 table | records
///
/// Every record is a sample's pixels as uint8 (row-major H x W x C) followed by its label.
/// Records are grouped in blocks of `records_per_block` with one CRC32 (zlib's) each, so a
/// reader that needs only part of a shard seeks to it and verifies only the blocks it reads.
/// Records sit at a fixed stride, so the file is equally easy to read with a plain stream
/// (header, table, then blocks in order, each verified as it arrives) or to mmap.
///
/// Pixels are stored as round(x * 255) and read back as v / 255.0f, exactly what the IDX
/// reader produces, so IDX -> shard -> dataset reproduces an IDX data set bit for bit.
///
/// Nothing in a file is trusted: every problem throws `staticnet::data_error` naming the
/// file, the problem and, where it applies, the byte offset.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "../core/compat.hpp"
#include "../core/crc32.hpp"
#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/shape.hpp"
#include "byte_dataset.hpp"
#include "dataset.hpp"

namespace staticnet::data {

/// The 8 bytes every shard file starts with.
inline constexpr std::array<char, 8> shard_magic{'S', 'N', 'S', 'H', 'A', 'R', 'D', '1'};
/// The format version this code writes and the only one it reads.
inline constexpr std::uint32_t shard_format_version = 1;
/// Size of the fixed header; the block CRC table follows it.
inline constexpr std::size_t shard_header_bytes = 64;
/// File name extension of shard files.
inline constexpr std::string_view shard_extension = ".snshard";
/// Element type code of pixels: unsigned bytes (the only one of version 1).
inline constexpr std::uint8_t shard_pixel_u8 = 1;
/// Label type codes: one unsigned byte (up to 256 classes) or a little-endian int32.
inline constexpr std::uint8_t shard_label_u8 = 1;
inline constexpr std::uint8_t shard_label_i32 = 2;
/// Default block size: about 0.8 MB of Fashion-MNIST records per checksum.
inline constexpr std::uint32_t default_records_per_block = 1024;

namespace detail {

using ::staticnet::detail::crc32;
using ::staticnet::detail::errno_text;
using ::staticnet::detail::file_handle;
using ::staticnet::detail::hex_byte;
using ::staticnet::detail::hex_text;
using ::staticnet::detail::load_le;
using ::staticnet::detail::shape_text;
using ::staticnet::detail::store_le;

/// a * b, or nothing when it overflows 64 bits.
inline std::optional<std::uint64_t> mul_checked(std::uint64_t a, std::uint64_t b) noexcept {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
    return a * b;
}

/// A sample of 1 GiB is surely a corrupt header, not a picture; refusing it keeps a
/// corrupt (but checksummed) header from making us allocate absurd buffers.
inline constexpr std::uint64_t max_shard_sample_bytes = std::uint64_t{1} << 30;

/// The decoded header of a shard file.
struct shard_header {
    std::uint32_t version = shard_format_version;
    std::uint32_t height = 0, width = 0, channels = 0;
    std::uint8_t pixel_type = shard_pixel_u8;
    std::uint8_t label_type = shard_label_u8;
    std::uint32_t num_classes = 0;
    std::uint64_t records = 0;
    std::uint32_t records_per_block = default_records_per_block;

    [[nodiscard]] std::uint64_t sample_bytes() const noexcept {
        return std::uint64_t{height} * width * channels;  // the reader refuses shapes where this overflows
    }
    [[nodiscard]] std::uint64_t label_bytes() const noexcept { return label_type == shard_label_i32 ? 4 : 1; }
    [[nodiscard]] std::uint64_t record_bytes() const noexcept { return sample_bytes() + label_bytes(); }
    [[nodiscard]] std::uint64_t blocks() const noexcept {
        return records == 0 ? 0 : (records - 1) / records_per_block + 1;
    }
    /// Byte offset of the first record: after the header and the block CRC table.
    [[nodiscard]] std::uint64_t data_offset() const noexcept { return shard_header_bytes + 4 * blocks(); }
};

/// Field offsets of the header (docs/shard_format.md has the table).
namespace shard_field {
inline constexpr std::size_t magic = 0, version = 8, height = 12, width = 16, channels = 20, pixel_type = 24,
                             label_type = 25, reserved_a = 26, num_classes = 28, records = 32, records_per_block = 40,
                             reserved_b = 44, header_crc = 60;
}  // namespace shard_field

inline std::array<std::uint8_t, shard_header_bytes> encode_header(const shard_header& h) {
    namespace f = shard_field;
    std::array<std::uint8_t, shard_header_bytes> b{};
    std::memcpy(b.data() + f::magic, shard_magic.data(), shard_magic.size());
    store_le(b.data() + f::version, h.version);
    store_le(b.data() + f::height, h.height);
    store_le(b.data() + f::width, h.width);
    store_le(b.data() + f::channels, h.channels);
    b[f::pixel_type] = h.pixel_type;
    b[f::label_type] = h.label_type;
    store_le(b.data() + f::num_classes, h.num_classes);
    store_le(b.data() + f::records, h.records);
    store_le(b.data() + f::records_per_block, h.records_per_block);
    store_le(b.data() + f::header_crc, crc32(b.data(), f::header_crc));
    return b;
}

/// Pixel byte -> float, the same division as the IDX reader so both give identical values.
inline const std::array<float, 256>& byte_to_unit() noexcept {
    static const std::array<float, 256> table = [] {
        std::array<float, 256> t{};
        for (std::size_t v = 0; v < 256; ++v) t[v] = static_cast<float>(v) / 255.0f;
        return t;
    }();
    return table;
}

}  // namespace detail
}  // namespace staticnet::data
