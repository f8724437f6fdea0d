#pragma once
/// @file
/// TFRecord framing, the container of TensorBoard's event files (and of TensorFlow's data
/// files): a file is a sequence of records, each
///
///     uint64 length         little-endian
///     uint32 masked_crc32c(length bytes)
///     byte   data[length]
///     uint32 masked_crc32c(data)
///
/// where masked_crc32c(x) = rotate_right(crc32c(x), 15) + 0xA282EAD8 (mod 2^32). The mask
/// exists so that a CRC computed over data that itself holds CRCs does not degenerate.
///
/// Internals of the event-file writer (`io/tensorboard_events.hpp`).

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/crc32c.hpp"
#include "../core/file_io.hpp"

namespace staticnet::detail {

/// TFRecord's masked CRC-32C of `data`.
[[nodiscard]] constexpr std::uint32_t masked_crc32c(std::span<const std::uint8_t> data) noexcept {
    return std::rotr(crc32c(data), 15) + 0xA282EAD8u;
}

/// `data` framed as one TFRecord: length, its masked CRC, the data, its masked CRC.
[[nodiscard]] inline std::vector<std::uint8_t> tfrecord(std::span<const std::uint8_t> data) {
    std::vector<std::uint8_t> record(8 + 4 + data.size() + 4);
    store_le(record.data(), static_cast<std::uint64_t>(data.size()));
    store_le(record.data() + 8, masked_crc32c(std::span<const std::uint8_t>(record.data(), 8)));
    std::copy(data.begin(), data.end(), record.begin() + 12);
    store_le(record.data() + 12 + data.size(), masked_crc32c(data));
    return record;
}

}  // namespace staticnet::detail
