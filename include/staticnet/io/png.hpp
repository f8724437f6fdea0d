#pragma once
/// @file
/// `encode_png`: 8-bit grey or RGB pixels as a PNG file's bytes, and `png_data_uri`, the
/// same as a `data:` URI for an HTML `<img>` (the training report's image grids). zlib,
/// already a dependency, does the compression and the chunk CRCs (PNG's CRC is zlib's
/// CRC-32).
///
///     std::vector<std::uint8_t> png = sn::encode_png(pixels, 28, 28, 1);   // row-major, top row first
///     std::string src = sn::png_data_uri(png);                            // "data:image/png;base64,..."
///
/// A PNG is an 8-byte signature and three chunks: IHDR (size, bit depth 8, colour type 0
/// grey or 2 RGB), IDAT (the zlib stream of the rows, each preceded by filter type 0) and
/// IEND; each chunk is length, type, data and the CRC-32 of type and data.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>

#include "../core/error.hpp"

namespace staticnet {

/// The PNG file of `width` x `height` pixels, `channels` (1: grey, 3: RGB) bytes each,
/// row-major from the top. Throws `staticnet::error` when the sizes do not match.
[[nodiscard]] inline std::vector<std::uint8_t> encode_png(std::span<const std::uint8_t> pixels, std::size_t width,
                                                         std::size_t height, std::size_t channels);

/// `png` as a data URI: "data:image/png;base64," and its base64 text.
[[nodiscard]] inline std::string png_data_uri(std::span<const std::uint8_t> png);

// ------------------------------------------------------------------ implementation

namespace detail {

inline void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

inline void png_chunk(std::vector<std::uint8_t>& out, std::string_view type, std::span<const std::uint8_t> data) {
    put_be32(out, static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type.begin(), type.end());
    out.insert(out.end(), data.begin(), data.end());
    put_be32(out, static_cast<std::uint32_t>(::crc32_z(0L, out.data() + start, out.size() - start)));
}

inline std::string base64(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
        std::uint32_t v = std::uint32_t{bytes[i]} << 16;
        if (n > 1) v |= std::uint32_t{bytes[i + 1]} << 8;
        if (n > 2) v |= bytes[i + 2];
        for (std::size_t k = 0; k < 4; ++k) out += k <= n ? digits[(v >> (18 - 6 * k)) & 63] : '=';
    }
    return out;
}

}  // namespace detail

inline std::vector<std::uint8_t> encode_png(std::span<const std::uint8_t> pixels, std::size_t width,
                                            std::size_t height, std::size_t channels) {
    if ((channels != 1 && channels != 3) || width == 0 || height == 0 || pixels.size() != width * height * channels)
        throw error("encode_png: " + std::to_string(pixels.size()) + " bytes are not " + std::to_string(width) + "x" +
                    std::to_string(height) + " pixels of 1 or 3 channels");
    const std::size_t row = width * channels;
    std::vector<std::uint8_t> raw;
    raw.reserve(height * (row + 1));
    for (std::size_t y = 0; y < height; ++y) {
        raw.push_back(0);  // filter type 0: the row as it is
        raw.insert(raw.end(), pixels.begin() + static_cast<std::ptrdiff_t>(y * row),
                   pixels.begin() + static_cast<std::ptrdiff_t>((y + 1) * row));
    }
    uLongf packed_size = ::compressBound(static_cast<uLong>(raw.size()));
    std::vector<std::uint8_t> packed(packed_size);
    if (::compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK)
        throw error("encode_png: zlib could not compress the image");
    packed.resize(packed_size);

    std::vector<std::uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<std::uint8_t> header;
    detail::put_be32(header, static_cast<std::uint32_t>(width));
    detail::put_be32(header, static_cast<std::uint32_t>(height));
    header.insert(header.end(), {8, static_cast<std::uint8_t>(channels == 1 ? 0 : 2), 0, 0, 0});
    detail::png_chunk(png, "IHDR", header);
    detail::png_chunk(png, "IDAT", packed);
    detail::png_chunk(png, "IEND", {});
    return png;
}

inline std::string png_data_uri(std::span<const std::uint8_t> png) { return "data:image/png;base64," + detail::base64(png); }

}  // namespace staticnet
