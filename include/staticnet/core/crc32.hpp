#pragma once
/// @file
/// `crc32`: the checksum of shard files and checkpoints, zlib's CRC-32 (the one of gzip
/// and PNG), over a buffer of any size.

#include <cstddef>
#include <cstdint>

#include <zlib.h>

namespace staticnet::detail {

inline std::uint32_t crc32(const unsigned char* data, std::size_t n) noexcept {
    // crc32_z takes a size_t length (plain crc32 stops at 4 GiB); 0 is the initial value.
    return static_cast<std::uint32_t>(::crc32_z(0L, data, n));
}

}  // namespace staticnet::detail
