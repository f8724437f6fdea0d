#pragma once
/// @file
/// `crc32`: the checksum of shard files and checkpoints (zlib's CRC-32), over buffers of
/// any size (zlib takes at most 4 GiB per call).

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <zlib.h>

namespace staticnet::detail {

inline std::uint32_t crc32(const unsigned char* data, std::size_t n) noexcept {
    uLong crc = ::crc32(0L, Z_NULL, 0);
    while (n != 0) {
        const auto part = static_cast<uInt>(std::min<std::size_t>(n, std::size_t{1} << 30));
        crc = ::crc32(crc, data, part);
        data += part;
        n -= part;
    }
    return static_cast<std::uint32_t>(crc);
}

}  // namespace staticnet::detail
