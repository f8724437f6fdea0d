#pragma once
/// @file
/// `crc32c`: CRC-32C (Castagnoli), the checksum of TFRecord files and so of TensorBoard's
/// event files. It is not zlib's CRC-32 (core/crc32.hpp): another polynomial (0x1EDC6F41,
/// reflected 0x82F63B78), so it gets its own table. Check value: crc32c("123456789") ==
/// 0xE3069283.
///
/// Byte-at-a-time with one 256-entry table built at compile time: event files are written
/// a few kilobytes per epoch, so a faster (slicing or SSE4.2) version would buy nothing.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace staticnet::detail {

/// The CRC-32C of `data`; pass a previous result as `crc` to continue over more bytes.
[[nodiscard]] constexpr std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc = 0) noexcept;

// ------------------------------------------------------------------ implementation

inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    return table;
}();

constexpr std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc) noexcept {
    crc = ~crc;
    for (const std::uint8_t b : data) crc = crc32c_table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

}  // namespace staticnet::detail
