#pragma once
/// @file
/// Shard files: a data set cut into checksummed binary files that ranks load independently.
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
/// A data set is stored as a *set* of shards in one directory, named
/// `shard-00003-of-00008.snshard`; `list_shards` checks that the set is complete and
/// `load_shards` gives each rank its files (or, with fewer files than ranks, its record
/// range inside a file).
///
/// Pixels are stored as round(x * 255) and read back as v / 255.0f, exactly what the IDX
/// reader produces, so IDX -> shard -> dataset reproduces an IDX data set bit for bit.
///
/// Nothing in a file is trusted: every problem throws `staticnet::data_error` naming the
/// file, the problem and, where it applies, the byte offset.

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>  // fsync, so a renamed shard is on disk, not only in the page cache
#endif

#include "../core/compat.hpp"
#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../core/crc32.hpp"
#include "dataset.hpp"
#include "idx.hpp"

namespace staticnet::data {

// ===================================================================== public API

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

/// How `write_shard` lays a file out.
struct shard_write_options {
    /// Records per checksummed block: smaller blocks make partial reads cheaper to verify.
    std::uint32_t records_per_block = default_records_per_block;
};

/// Writes the samples `indices` of `data` (in that order) to `file`, atomically: the bytes
/// go to a temporary file in the same directory, are flushed to disk, and the temporary is
/// renamed over `file`, so a reader never sees a half-written shard. Pixels must be in
/// [0, 1] and labels in [0, num_classes). Throws `data_error` (bad content, I/O failure)
/// or `std::out_of_range` (an index >= data.size()).
inline void write_shard(const std::filesystem::path& file, const dataset& data, std::span<const std::size_t> indices,
                        const shard_write_options& options = {});

/// Writes the samples [first, last) of `data` to `file` (see the overload above).
inline void write_shard(const std::filesystem::path& file, const dataset& data, std::size_t first, std::size_t last,
                        const shard_write_options& options = {});

/// Writes the whole of `data` to `file`.
inline void write_shard(const std::filesystem::path& file, const dataset& data,
                        const shard_write_options& options = {});

/// Reads a whole shard file, checking the header, its checksum, the file size, every block
/// checksum and every label; with `expected`, also that the samples have that (H, W, C)
/// shape. Throws `data_error` naming the file (and byte offset) on any problem.
[[nodiscard]] inline dataset read_shard(const std::filesystem::path& file, std::optional<shape> expected = {});

/// Reads only the records [first, first + count) of a shard: seeks past the others and
/// verifies only the blocks that hold the requested records (plus the header and size).
[[nodiscard]] inline dataset read_shard_records(const std::filesystem::path& file, std::uint64_t first,
                                                std::uint64_t count, std::optional<shape> expected = {});

/// What `verify_shard` found in a file.
struct shard_info {
    std::filesystem::path file;
    bool ok = false;         ///< every check passed: read_shard would succeed
    std::string problem;     ///< the first problem, worded as read_shard would throw it; empty when ok
    bool header_ok = false;  ///< header, header checksum and file size are valid (the fields below are known)
    shape sample_shape{};    ///< (H, W, C)
    std::size_t num_classes = 0;
    std::uint64_t records = 0;
    std::uint32_t records_per_block = 0;
    std::uint64_t blocks = 0;
    std::vector<std::uint64_t> bad_blocks;  ///< blocks whose checksum does not match
    std::uint64_t bad_labels = 0;           ///< records (in good blocks) whose label is out of range
};

/// Checks a whole shard file like `read_shard` but reports instead of throwing: every bad
/// block is listed, not only the first. Never throws `data_error` for a file's content.
[[nodiscard]] inline shard_info verify_shard(const std::filesystem::path& file);

/// The canonical name of shard `index` of a set of `count`: "shard-00003-of-00008.snshard".
[[nodiscard]] inline std::string shard_file_name(std::size_t index, std::size_t count);

/// The shard files of a set in `dir`, ordered by index. Throws `data_error` when the
/// directory is missing or holds no shard file, when a `.snshard` file is not named like
/// a shard, when files disagree on the size of the set, or when a shard is missing (the
/// message names the missing file). Files with other extensions are ignored.
[[nodiscard]] inline std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir);

/// The shard indices rank `rank` of `ranks` reads, balanced at file level: with K >= R
/// shards every rank gets a contiguous run of K/R or K/R + 1 files; with K < R ranks are
/// spread over the files in balanced groups and each rank gets the one file it shares with
/// its group (it then reads only its part of the records, see `load_shards`).
[[nodiscard]] inline std::vector<std::size_t> assign_shards(std::size_t shards, std::size_t rank, std::size_t ranks);

/// One piece of a shard file that `load_shards` opened and read.
struct shard_part {
    std::filesystem::path file;
    std::uint64_t first = 0;  ///< first record read
    std::uint64_t count = 0;  ///< records read
    bool whole = true;        ///< the whole file (file-level split) or a record range of it
};

/// What `load_shards` did: the files it opened, in order (for logs and tests).
struct shard_load_report {
    std::vector<shard_part> opened;
    bool record_level = false;  ///< fewer shards than ranks: records were split inside a shard
};

/// Loads rank `rank`'s part of the shard set in `dir`, opening only that rank's files
/// (see `assign_shards`). With fewer shard files than ranks it falls back to record-level
/// splitting (rank 0 prints a warning to stderr): the ranks sharing a file each read a
/// contiguous, balanced record range of it, seeking past the rest. Every file read must match
/// `expected` when given, and all of them must agree on the sample shape and the number of
/// classes.
[[nodiscard]] inline dataset load_shards(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                                         std::optional<shape> expected = {}, shard_load_report* report = nullptr);

// ===================================================================== implementation

namespace detail {

/// Little-endian encoding regardless of the host's byte order.
inline void put_le(std::uint8_t* p, std::uint64_t v, std::size_t bytes) noexcept {
    for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint64_t get_le(const std::uint8_t* p, std::size_t bytes) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i) v |= std::uint64_t{p[i]} << (8 * i);
    return v;
}

/// zlib's CRC32 over any length (zlib takes 32-bit lengths per call).
inline std::string hex32(std::uint32_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xF];
    return s;
}

inline std::string shape_text(std::uint64_t h, std::uint64_t w, std::uint64_t c) {
    return std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c);
}

/// a * b, or nothing when it overflows 64 bits.
inline std::optional<std::uint64_t> mul_checked(std::uint64_t a, std::uint64_t b) noexcept {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
    return a * b;
}

inline bool seek_to(std::FILE* f, std::uint64_t offset) noexcept {
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
#if defined(_WIN32)
    return _fseeki64(f, static_cast<__int64>(offset), SEEK_SET) == 0;
#else
    return fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0;
#endif
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
    put_le(b.data() + f::version, h.version, 4);
    put_le(b.data() + f::height, h.height, 4);
    put_le(b.data() + f::width, h.width, 4);
    put_le(b.data() + f::channels, h.channels, 4);
    b[f::pixel_type] = h.pixel_type;
    b[f::label_type] = h.label_type;
    put_le(b.data() + f::num_classes, h.num_classes, 4);
    put_le(b.data() + f::records, h.records, 8);
    put_le(b.data() + f::records_per_block, h.records_per_block, 4);
    put_le(b.data() + f::header_crc, ::staticnet::detail::crc32(b.data(), f::header_crc), 4);
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

/// An open shard file whose header and size have been validated; reads and verifies blocks.
class shard_reader {
public:
    explicit shard_reader(const std::filesystem::path& file);

    [[nodiscard]] const shard_header& header() const noexcept { return h_; }
    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

    [[noreturn]] void fail(const std::string& problem) const {
        throw data_error("shard file '" + file_.string() + "': " + problem);
    }

    /// Throws unless the samples have the expected (H, W, C) shape.
    void check_shape(const std::optional<shape>& expected) const;

    /// Records in block j: [first_of(j), first_of(j) + records_in(j)).
    [[nodiscard]] std::uint64_t first_of(std::uint64_t j) const noexcept { return j * h_.records_per_block; }
    [[nodiscard]] std::uint64_t records_in(std::uint64_t j) const noexcept {
        return std::min<std::uint64_t>(h_.records_per_block, h_.records - first_of(j));
    }
    [[nodiscard]] std::uint64_t block_offset(std::uint64_t j) const noexcept {
        return h_.data_offset() + first_of(j) * h_.record_bytes();
    }

    /// Reads block j into the block buffer; returns whether its checksum matches.
    bool load_block(std::uint64_t j);
    /// The message for a checksum mismatch of block j (after load_block returned false).
    [[nodiscard]] std::string block_mismatch(std::uint64_t j) const;
    /// Label of record `r` of the loaded block j; nothing when out of range.
    [[nodiscard]] std::optional<std::int32_t> label_at(std::uint64_t j, std::uint64_t r) const noexcept;
    [[nodiscard]] std::string label_problem(std::uint64_t j, std::uint64_t r) const;

    /// Reads records [first, first + count) into `images` (count * H*W*C floats) and
    /// `labels`, verifying each block it touches.
    void read_records(std::uint64_t first, std::uint64_t count, float* images, std::int32_t* labels);

private:
    void read_exact(std::uint64_t offset, std::uint8_t* dst, std::size_t n);

    std::filesystem::path file_;
    std::unique_ptr<std::FILE, file_closer> f_;
    shard_header h_;
    std::vector<std::uint32_t> crcs_;
    std::vector<std::uint8_t> block_;  // the last block read
    std::uint32_t block_crc_ = 0;      // its computed checksum
};

inline shard_reader::shard_reader(const std::filesystem::path& file) : file_(file) {
    namespace f = shard_field;
    std::error_code ec;
    const auto st = std::filesystem::status(file, ec);
    if (st.type() == std::filesystem::file_type::not_found) fail("the file does not exist");
    if (st.type() == std::filesystem::file_type::directory) fail("cannot read: it is a directory, not a file");
    if (!std::filesystem::is_regular_file(st)) fail("cannot read: not a regular file");
    const std::uint64_t size = std::filesystem::file_size(file, ec);
    if (ec) fail("cannot determine the file size: " + ec.message());
    f_.reset(std::fopen(file.c_str(), "rb"));
    if (!f_) fail("cannot open for reading: " + std::generic_category().message(errno));

    std::array<std::uint8_t, shard_header_bytes> b{};
    if (size < b.size())
        fail("truncated file: " + std::to_string(size) + " bytes, but the header alone needs " +
             std::to_string(b.size()) + " (the file ends at byte offset " + std::to_string(size) + ")");
    read_exact(0, b.data(), b.size());

    if (std::memcmp(b.data(), shard_magic.data(), shard_magic.size()) != 0) {
        std::string seen;
        for (std::size_t i = 0; i < shard_magic.size(); ++i) seen += (i ? " " : "") + hex_byte(b[i]);
        fail("wrong magic: bytes 0..7 are " + seen +
             ", not \"SNSHARD1\" (byte offset 0); this is not a staticnet shard file");
    }
    h_.version = static_cast<std::uint32_t>(get_le(b.data() + f::version, 4));
    if (h_.version != shard_format_version)
        fail("unknown format version " + std::to_string(h_.version) + " at byte offset " + std::to_string(f::version) +
             " (this reader knows version " + std::to_string(shard_format_version) + ")");
    const auto stored_crc = static_cast<std::uint32_t>(get_le(b.data() + f::header_crc, 4));
    const std::uint32_t crc = ::staticnet::detail::crc32(b.data(), f::header_crc);
    if (stored_crc != crc)
        fail("header checksum mismatch: the CRC32 stored at byte offset " + std::to_string(f::header_crc) + " is " +
             hex32(stored_crc) + " but bytes 0.." + std::to_string(f::header_crc - 1) + " give " + hex32(crc) +
             "; the header is corrupt");

    // The checksum matched, so from here on a bad field was written that way: say which.
    h_.height = static_cast<std::uint32_t>(get_le(b.data() + f::height, 4));
    h_.width = static_cast<std::uint32_t>(get_le(b.data() + f::width, 4));
    h_.channels = static_cast<std::uint32_t>(get_le(b.data() + f::channels, 4));
    h_.pixel_type = b[f::pixel_type];
    h_.label_type = b[f::label_type];
    h_.num_classes = static_cast<std::uint32_t>(get_le(b.data() + f::num_classes, 4));
    h_.records = get_le(b.data() + f::records, 8);
    h_.records_per_block = static_cast<std::uint32_t>(get_le(b.data() + f::records_per_block, 4));

    if (h_.pixel_type != shard_pixel_u8)
        fail("unknown pixel type code " + hex_byte(h_.pixel_type) + " at byte offset " + std::to_string(f::pixel_type) +
             " (version 1 knows 0x01, unsigned byte)");
    if (h_.label_type != shard_label_u8 && h_.label_type != shard_label_i32)
        fail("unknown label type code " + hex_byte(h_.label_type) + " at byte offset " + std::to_string(f::label_type) +
             " (version 1 knows 0x01, unsigned byte, and 0x02, int32)");
    const auto nonzero = [&](std::size_t from, std::size_t to) {
        return std::any_of(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(to),
                           [](std::uint8_t v) { return v != 0; });
    };
    if (nonzero(f::reserved_a, f::num_classes) || nonzero(f::reserved_b, f::header_crc))
        fail("reserved header bytes (byte offsets 26..27 and 44..59) must be zero in a version 1 file");
    if (h_.height == 0 || h_.width == 0 || h_.channels == 0)
        fail("invalid sample shape " + shape_text(h_.height, h_.width, h_.channels) + " at byte offset " +
             std::to_string(f::height) + ": every dimension must be at least 1");
    const auto hw = std::uint64_t{h_.height} * h_.width;  // < 2^64; the product with channels may not be
    if (!mul_checked(hw, h_.channels) || h_.sample_bytes() > max_shard_sample_bytes)
        fail("absurd sample shape " + shape_text(h_.height, h_.width, h_.channels) + " at byte offset " +
             std::to_string(f::height) +
             ": samples of more than 2^30 bytes are refused (the header is probably corrupt)");
    if (h_.num_classes == 0 || (h_.label_type == shard_label_u8 && h_.num_classes > 256) ||
        h_.num_classes > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()))
        fail("invalid number of classes " + std::to_string(h_.num_classes) + " at byte offset " +
             std::to_string(f::num_classes) + (h_.label_type == shard_label_u8 ? " (byte labels allow 1..256)" : ""));
    if (h_.records_per_block == 0)
        fail("invalid records per block 0 at byte offset " + std::to_string(f::records_per_block));

    // The file size follows from the header; any difference is truncation or a wrong count.
    const std::uint64_t blocks = h_.blocks();
    const auto body = mul_checked(h_.records, h_.record_bytes());
    const std::uint64_t table = 4 * blocks;  // blocks <= records; a huge count fails `body` or the sum
    const bool fits =
        body && table / 4 == blocks && *body <= std::numeric_limits<std::uint64_t>::max() - table - shard_header_bytes;
    const std::string count_text = "the record count " + std::to_string(h_.records) + " (byte offset " +
                                   std::to_string(f::records) + ") with " + std::to_string(h_.record_bytes()) +
                                   "-byte records";
    if (!fits)
        fail("record count does not match the file size: " + count_text +
             " needs more than 2^64 bytes, but the file has " + std::to_string(size));
    const std::uint64_t want = shard_header_bytes + table + *body;
    if (size < want)
        fail("truncated file: " + count_text + " needs " + std::to_string(want) + " bytes, but the file has only " +
             std::to_string(size) + " (it ends at byte offset " + std::to_string(size) +
             "); the file is truncated or the record count does not match the file size");
    if (size > want)
        fail("record count does not match the file size: " + count_text + " needs " + std::to_string(want) +
             " bytes, but the file has " + std::to_string(size) + " (" + std::to_string(size - want) +
             " unexpected bytes from byte offset " + std::to_string(want) + ")");

    std::vector<std::uint8_t> raw(static_cast<std::size_t>(table));
    if (!raw.empty()) read_exact(shard_header_bytes, raw.data(), raw.size());
    crcs_.resize(static_cast<std::size_t>(blocks));
    for (std::size_t j = 0; j < crcs_.size(); ++j) crcs_[j] = static_cast<std::uint32_t>(get_le(raw.data() + 4 * j, 4));
}

inline void shard_reader::read_exact(std::uint64_t offset, std::uint8_t* dst, std::size_t n) {
    if (!seek_to(f_.get(), offset))
        fail("cannot seek to byte offset " + std::to_string(offset) + ": " + std::generic_category().message(errno));
    const std::size_t got = std::fread(dst, 1, n, f_.get());
    if (got != n) {
        if (std::ferror(f_.get()))
            fail("read error at byte offset " + std::to_string(offset + got) + ": " +
                 std::generic_category().message(errno));
        // The size was checked on open, so the file shrank under us.
        fail("truncated file: it ends at byte offset " + std::to_string(offset + got) + " while reading " +
             std::to_string(n) + " bytes from byte offset " + std::to_string(offset));
    }
}

inline void shard_reader::check_shape(const std::optional<shape>& expected) const {
    if (!expected) return;
    if (!expected->is_image())
        throw std::invalid_argument("shard file '" + file_.string() +
                                    "': the expected shape must be an image shape (height, width, channels)");
    if (expected->height() != h_.height || expected->width() != h_.width || expected->channels() != h_.channels)
        fail("shape mismatch: the samples are " + shape_text(h_.height, h_.width, h_.channels) + " (byte offset " +
             std::to_string(shard_field::height) + ") but " +
             shape_text(expected->height(), expected->width(), expected->channels()) + " were expected");
}

inline bool shard_reader::load_block(std::uint64_t j) {
    // records_in(j) * record_bytes() <= file size (checked on open), so this fits in memory terms.
    const auto n = static_cast<std::size_t>(records_in(j) * h_.record_bytes());
    block_.resize(n);
    read_exact(block_offset(j), block_.data(), n);
    block_crc_ = ::staticnet::detail::crc32(block_.data(), n);
    return block_crc_ == crcs_[static_cast<std::size_t>(j)];
}

inline std::string shard_reader::block_mismatch(std::uint64_t j) const {
    const std::uint64_t begin = block_offset(j);
    const std::uint64_t end = begin + records_in(j) * h_.record_bytes();
    return "block checksum mismatch in block " + std::to_string(j) + " (records " + std::to_string(first_of(j)) + ".." +
           std::to_string(first_of(j) + records_in(j) - 1) + ", byte offsets " + std::to_string(begin) + ".." +
           std::to_string(end - 1) + "): the CRC32 stored at byte offset " +
           std::to_string(shard_header_bytes + 4 * j) + " is " + hex32(crcs_[static_cast<std::size_t>(j)]) +
           " but the data gives " + hex32(block_crc_) + "; the block or its stored checksum is corrupt";
}

inline std::optional<std::int32_t> shard_reader::label_at(std::uint64_t j, std::uint64_t r) const noexcept {
    const std::uint8_t* p = block_.data() + (r - first_of(j)) * h_.record_bytes() + h_.sample_bytes();
    const auto label = h_.label_type == shard_label_i32
                           ? static_cast<std::int32_t>(static_cast<std::uint32_t>(get_le(p, 4)))
                           : static_cast<std::int32_t>(*p);
    if (label < 0 || static_cast<std::uint32_t>(label) >= h_.num_classes) return std::nullopt;
    return label;
}

inline std::string shard_reader::label_problem(std::uint64_t j, std::uint64_t r) const {
    const std::uint8_t* p = block_.data() + (r - first_of(j)) * h_.record_bytes() + h_.sample_bytes();
    const long long label = h_.label_type == shard_label_i32
                                ? static_cast<std::int32_t>(static_cast<std::uint32_t>(get_le(p, 4)))
                                : static_cast<long long>(*p);
    return "label out of range: record " + std::to_string(r) + " (byte offset " +
           std::to_string(h_.data_offset() + r * h_.record_bytes() + h_.sample_bytes()) + ") holds " +
           std::to_string(label) + ", but with " + std::to_string(h_.num_classes) + " classes labels must be in 0.." +
           std::to_string(h_.num_classes - 1);
}

inline void shard_reader::read_records(std::uint64_t first, std::uint64_t count, float* images, std::int32_t* labels) {
    if (count == 0) return;
    const auto& unit = byte_to_unit();
    const auto sample = static_cast<std::size_t>(h_.sample_bytes());
    const std::uint64_t last = first + count;  // exclusive; the caller checked last <= records
    for (std::uint64_t j = first / h_.records_per_block; j <= (last - 1) / h_.records_per_block; ++j) {
        if (!load_block(j)) fail(block_mismatch(j));
        const std::uint64_t from = std::max(first, first_of(j));
        const std::uint64_t to = std::min(last, first_of(j) + records_in(j));
        for (std::uint64_t r = from; r < to; ++r) {
            const auto label = label_at(j, r);
            if (!label) fail(label_problem(j, r));
            const std::uint8_t* p = block_.data() + (r - first_of(j)) * h_.record_bytes();
            float* out = images + (r - first) * sample;
            for (std::size_t i = 0; i < sample; ++i) out[i] = unit[p[i]];
            labels[r - first] = *label;
        }
    }
}

inline dataset make_dataset(std::uint64_t n, const shard_header& h) {
    dataset d;
    d.images =
        xt::xtensor<float, 4>(std::array<std::size_t, 4>{static_cast<std::size_t>(n), h.height, h.width, h.channels});
    d.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{static_cast<std::size_t>(n)});
    d.num_classes = h.num_classes;
    return d;
}

inline dataset read_part(shard_reader& reader, std::uint64_t first, std::uint64_t count) {
    dataset d = make_dataset(count, reader.header());
    reader.read_records(first, count, d.images.data(), d.labels.data());
    return d;
}

/// Parses "shard-<index>-of-<count>.snshard"; nothing when the name has another form.
inline std::optional<std::pair<std::size_t, std::size_t>> parse_shard_name(std::string_view name) {
    constexpr std::string_view prefix = "shard-", middle = "-of-";
    if (!name.starts_with(prefix) || !name.ends_with(shard_extension)) return std::nullopt;
    name.remove_prefix(prefix.size());
    name.remove_suffix(shard_extension.size());
    const auto number = [](std::string_view digits) -> std::optional<std::size_t> {
        // At most 9 digits: no overflow, and no set is that large.
        if (digits.empty() || digits.size() > 9) return std::nullopt;
        std::size_t v = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
        return v;
    };
    const auto cut = name.find(middle);
    if (cut == std::string_view::npos) return std::nullopt;
    const auto index = number(name.substr(0, cut));
    const auto count = number(name.substr(cut + middle.size()));
    if (!index || !count) return std::nullopt;
    return std::pair{*index, *count};
}

/// Ranks [begin, end) that share shard s when there are fewer shards than ranks: exactly
/// the ranks r with floor(r * K / R) == s, as assign_shards gives them.
inline std::pair<std::size_t, std::size_t> ranks_of_shard(std::size_t s, std::size_t shards, std::size_t ranks) {
    const auto ceil_div = [](std::size_t a, std::size_t b) { return (a + b - 1) / b; };
    return {ceil_div(s * ranks, shards), ceil_div((s + 1) * ranks, shards)};
}

inline void check_rank(std::size_t rank, std::size_t ranks) {
    if (ranks == 0) throw std::invalid_argument("staticnet: the number of ranks must be at least 1");
    if (rank >= ranks)
        throw std::invalid_argument("staticnet: rank " + std::to_string(rank) + " is out of range for " +
                                    std::to_string(ranks) + " ranks");
}

inline std::string unique_suffix() {
    static std::atomic<unsigned> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    return std::to_string(stamp) + "-" + std::to_string(counter++);
}

}  // namespace detail

inline void write_shard(const std::filesystem::path& file, const dataset& data, std::span<const std::size_t> indices,
                        const shard_write_options& options) {
    const auto fail = [&](const std::string& problem) -> void {
        throw data_error("cannot write shard file '" + file.string() + "': " + problem);
    };
    const auto& s = data.images.shape();
    if (s[1] == 0 || s[2] == 0 || s[3] == 0) fail("the data set's samples have an empty shape");
    if (s[1] > 0xFFFFFFFFu || s[2] > 0xFFFFFFFFu || s[3] > 0xFFFFFFFFu) fail("the sample shape does not fit 32 bits");
    if (data.labels.size() != data.size())
        fail("the data set has " + std::to_string(data.size()) + " images but " + std::to_string(data.labels.size()) +
             " labels");
    if (data.num_classes == 0 || data.num_classes > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        fail("invalid number of classes " + std::to_string(data.num_classes));
    if (options.records_per_block == 0) fail("records_per_block must be at least 1");

    detail::shard_header h;
    h.height = static_cast<std::uint32_t>(s[1]);
    h.width = static_cast<std::uint32_t>(s[2]);
    h.channels = static_cast<std::uint32_t>(s[3]);
    if (h.sample_bytes() > detail::max_shard_sample_bytes) fail("a sample of more than 2^30 bytes is not supported");
    h.label_type = data.num_classes <= 256 ? shard_label_u8 : shard_label_i32;
    h.num_classes = static_cast<std::uint32_t>(data.num_classes);
    h.records = indices.size();
    h.records_per_block = options.records_per_block;
    for (std::size_t i : indices)
        if (i >= data.size())
            throw std::out_of_range("write_shard '" + file.string() + "': sample index " + std::to_string(i) +
                                    " is out of range for a data set of " + std::to_string(data.size()) + " samples");

    // Write next to the target so the final rename stays on one file system (and is atomic).
    const auto parent = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    const auto temp = parent / ("." + file.filename().string() + ".tmp-" + detail::unique_suffix());
    std::unique_ptr<std::FILE, detail::file_closer> out(std::fopen(temp.c_str(), "wb"));
    if (!out)
        fail("cannot create the temporary file '" + temp.string() + "': " + std::generic_category().message(errno));
    try {
        const auto put = [&](const std::uint8_t* p, std::size_t n) {
            if (n != 0 && std::fwrite(p, 1, n, out.get()) != n)
                fail("write error on '" + temp.string() + "': " + std::generic_category().message(errno));
        };
        const auto header = detail::encode_header(h);
        put(header.data(), header.size());
        // The CRC table precedes the records; write zeros now and fill it in at the end.
        std::vector<std::uint8_t> table(static_cast<std::size_t>(4 * h.blocks()));
        put(table.data(), table.size());

        const auto sample = static_cast<std::size_t>(h.sample_bytes());
        const auto record = static_cast<std::size_t>(h.record_bytes());
        std::vector<std::uint8_t> block(std::min<std::size_t>(h.records_per_block, indices.size()) * record);
        const float* pixels = data.images.data();
        for (std::uint64_t j = 0; j < h.blocks(); ++j) {
            const std::size_t first = static_cast<std::size_t>(j) * h.records_per_block;
            const std::size_t n = std::min<std::size_t>(h.records_per_block, indices.size() - first);
            for (std::size_t r = 0; r < n; ++r) {
                const std::size_t idx = indices[first + r];
                std::uint8_t* p = block.data() + r * record;
                const float* src = pixels + idx * sample;
                for (std::size_t i = 0; i < sample; ++i) {
                    const float x = src[i];
                    if (!(x >= 0.0f && x <= 1.0f))  // also refuses NaN
                        fail("sample " + std::to_string(idx) + " has pixel value " + std::to_string(x) +
                             " at element " + std::to_string(i) + "; shards store pixels in [0, 1]");
                    p[i] = static_cast<std::uint8_t>(std::lround(static_cast<double>(x) * 255.0));
                }
                const std::int32_t label = data.labels(idx);
                if (label < 0 || static_cast<std::size_t>(label) >= data.num_classes)
                    fail("sample " + std::to_string(idx) + " has label " + std::to_string(label) + ", outside 0.." +
                         std::to_string(data.num_classes - 1));
                detail::put_le(p + sample, static_cast<std::uint32_t>(label),
                               static_cast<std::size_t>(h.label_bytes()));
            }
            detail::put_le(table.data() + 4 * j, ::staticnet::detail::crc32(block.data(), n * record), 4);
            put(block.data(), n * record);
        }
        if (!table.empty()) {
            if (!detail::seek_to(out.get(), shard_header_bytes)) fail("cannot seek in '" + temp.string() + "'");
            put(table.data(), table.size());
        }
        if (std::fflush(out.get()) != 0)
            fail("write error on '" + temp.string() + "': " + std::generic_category().message(errno));
#if __has_include(<unistd.h>)
        if (::fsync(::fileno(out.get())) != 0)
            fail("cannot flush '" + temp.string() + "' to disk: " + std::generic_category().message(errno));
#endif
        if (std::fclose(out.release()) != 0)
            fail("write error on '" + temp.string() + "': " + std::generic_category().message(errno));
        std::error_code ec;
        std::filesystem::rename(temp, file, ec);
        if (ec) fail("cannot rename '" + temp.string() + "' to it: " + ec.message());
    } catch (...) {
        out.reset();
        std::error_code ec;
        std::filesystem::remove(temp, ec);
        throw;
    }
}

inline void write_shard(const std::filesystem::path& file, const dataset& data, std::size_t first, std::size_t last,
                        const shard_write_options& options) {
    if (first > last || last > data.size())
        throw std::out_of_range("write_shard '" + file.string() + "': range [" + std::to_string(first) + ", " +
                                std::to_string(last) + ") is out of range for a data set of " +
                                std::to_string(data.size()) + " samples");
    std::vector<std::size_t> indices(last - first);
    for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = first + i;
    write_shard(file, data, indices, options);
}

inline void write_shard(const std::filesystem::path& file, const dataset& data, const shard_write_options& options) {
    write_shard(file, data, 0, data.size(), options);
}

inline dataset read_shard(const std::filesystem::path& file, std::optional<shape> expected) {
    detail::shard_reader reader(file);
    reader.check_shape(expected);
    return detail::read_part(reader, 0, reader.header().records);
}

inline dataset read_shard_records(const std::filesystem::path& file, std::uint64_t first, std::uint64_t count,
                                  std::optional<shape> expected) {
    detail::shard_reader reader(file);
    reader.check_shape(expected);
    const std::uint64_t n = reader.header().records;
    if (first > n || count > n - first)
        throw std::out_of_range("shard file '" + file.string() + "': records [" + std::to_string(first) + ", " +
                                std::to_string(first) + " + " + std::to_string(count) + ") requested, but it holds " +
                                std::to_string(n));
    return detail::read_part(reader, first, count);
}

inline shard_info verify_shard(const std::filesystem::path& file) {
    shard_info info;
    info.file = file;
    std::optional<detail::shard_reader> reader;
    try {
        reader.emplace(file);
    } catch (const data_error& e) {
        info.problem = e.what();
        return info;
    }
    const auto& h = reader->header();
    info.header_ok = true;
    info.sample_shape = shape{h.height, h.width, h.channels};
    info.num_classes = h.num_classes;
    info.records = h.records;
    info.records_per_block = h.records_per_block;
    info.blocks = h.blocks();
    const auto note = [&](const std::string& problem) {
        if (info.problem.empty()) info.problem = "shard file '" + file.string() + "': " + problem;
    };
    for (std::uint64_t j = 0; j < info.blocks; ++j) {
        try {
            if (!reader->load_block(j)) {
                info.bad_blocks.push_back(j);
                note(reader->block_mismatch(j));
                continue;  // labels of a corrupt block mean nothing
            }
        } catch (const data_error& e) {  // the file shrank or a read failed: stop here
            if (info.problem.empty()) info.problem = e.what();
            for (std::uint64_t k = j; k < info.blocks; ++k) info.bad_blocks.push_back(k);
            break;
        }
        for (std::uint64_t r = reader->first_of(j); r < reader->first_of(j) + reader->records_in(j); ++r)
            if (!reader->label_at(j, r)) {
                ++info.bad_labels;
                note(reader->label_problem(j, r));
            }
    }
    info.ok = info.problem.empty();
    return info;
}

inline std::string shard_file_name(std::size_t index, std::size_t count) {
    const auto padded = [](std::size_t v) {
        std::string s = std::to_string(v);
        return s.size() < 5 ? std::string(5 - s.size(), '0') + s : s;
    };
    return "shard-" + padded(index) + "-of-" + padded(count) + std::string(shard_extension);
}

inline std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir) {
    const auto fail = [&](const std::string& problem) -> void {
        throw data_error("shard directory '" + dir.string() + "': " + problem);
    };
    std::error_code ec;
    const auto st = std::filesystem::status(dir, ec);
    if (st.type() == std::filesystem::file_type::not_found) fail("the directory does not exist");
    if (!std::filesystem::is_directory(st)) fail("not a directory");

    std::map<std::size_t, std::filesystem::path> found;                     // by index
    std::optional<std::pair<std::size_t, std::filesystem::path>> set_size;  // count, and who said so
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) fail("cannot list the directory: " + ec.message());
    for (; it != std::filesystem::directory_iterator{}; it.increment(ec)) {
        const auto path = it->path();
        const std::string name = path.filename().string();
        if (path.extension() != shard_extension) continue;  // temporary files, notes, ...
        const auto parsed = detail::parse_shard_name(name);
        if (!parsed)
            fail("unexpected file name '" + path.string() + "': shard files must be named like '" +
                 shard_file_name(3, 8) + "'");
        const auto [index, count] = *parsed;
        if (count == 0) fail("invalid shard file name '" + path.string() + "': a set of 0 shards");
        if (index >= count)
            fail("invalid shard file name '" + path.string() + "': index " + std::to_string(index) +
                 " is out of range for a set of " + std::to_string(count));
        if (set_size && set_size->first != count)
            fail("mismatched shard counts: '" + set_size->second.string() + "' belongs to a set of " +
                 std::to_string(set_size->first) + " shards but '" + path.string() + "' to a set of " +
                 std::to_string(count));
        if (!set_size) set_size.emplace(count, path);
        if (const auto dup = found.find(index); dup != found.end())
            fail("duplicate shard index " + std::to_string(index) + ": '" + dup->second.string() + "' and '" +
                 path.string() + "'");
        found.emplace(index, path);
    }
    if (ec) fail("cannot list the directory: " + ec.message());
    if (found.empty()) fail("it holds no shard files (expected files named like '" + shard_file_name(0, 4) + "')");

    std::vector<std::filesystem::path> files;
    for (std::size_t i = 0; i < set_size->first; ++i) {
        const auto f = found.find(i);
        if (f == found.end())
            fail("missing shard file '" + (dir / shard_file_name(i, set_size->first)).string() + "': the set has " +
                 std::to_string(set_size->first) + " shards (named by '" + set_size->second.filename().string() +
                 "') but shard " + std::to_string(i) + " is not in the directory");
        files.push_back(f->second);
    }
    return files;
}

inline std::vector<std::size_t> assign_shards(std::size_t shards, std::size_t rank, std::size_t ranks) {
    detail::check_rank(rank, ranks);
    if (shards == 0) return {};
    if (shards < ranks) return {rank * shards / ranks};
    // Contiguous runs [r*K/R, (r+1)*K/R): sizes differ by at most one file.
    std::vector<std::size_t> mine;
    for (std::size_t s = rank * shards / ranks; s < (rank + 1) * shards / ranks; ++s) mine.push_back(s);
    return mine;
}

inline dataset load_shards(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                           std::optional<shape> expected, shard_load_report* report) {
    detail::check_rank(rank, ranks);
    const auto files = list_shards(dir);
    const std::size_t shards = files.size();
    const auto mine = assign_shards(shards, rank, ranks);
    if (report) *report = shard_load_report{};

    if (shards < ranks) {
        // Every rank sees the same K < R; one warning (from rank 0) is enough for the log.
        if (rank == 0)
            std::cerr
                << "staticnet: warning: " << shards << (shards == 1 ? " shard file" : " shard files") << " in '"
                << dir.string() << "' for " << ranks
                << " ranks: splitting records inside shard files (write at least one shard per rank to avoid this)\n";
        const std::size_t s = mine.front();
        const auto [r0, r1] = detail::ranks_of_shard(s, shards, ranks);
        const std::size_t group = r1 - r0, pos = rank - r0;
        detail::shard_reader reader(files[s]);
        reader.check_shape(expected);
        const std::uint64_t n = reader.header().records;
        // Balanced contiguous ranges: floor(n * k / group), written so that it cannot overflow.
        const auto cut = [&](std::uint64_t k) { return n / group * k + n % group * k / group; };
        const std::uint64_t first = cut(pos), last = cut(pos + 1);
        if (report) {
            report->record_level = true;
            report->opened.push_back({files[s], first, last - first, false});
        }
        return detail::read_part(reader, first, last - first);
    }

    // File level: open every file of this rank first, so the result is allocated once.
    std::vector<detail::shard_reader> readers;
    readers.reserve(mine.size());
    std::uint64_t total = 0;
    for (std::size_t s : mine) {
        readers.emplace_back(files[s]);
        auto& r = readers.back();
        const auto& h = r.header();
        if (report) report->opened.push_back({files[s], 0, h.records, true});
        if (expected) {
            r.check_shape(expected);
        } else {
            const auto& h0 = readers.front().header();
            if (h.height != h0.height || h.width != h0.width || h.channels != h0.channels)
                r.fail("shape mismatch: the samples are " + detail::shape_text(h.height, h.width, h.channels) +
                       " (byte offset 12) but those of '" + readers.front().file().string() + "' are " +
                       detail::shape_text(h0.height, h0.width, h0.channels));
        }
        if (h.num_classes != readers.front().header().num_classes)
            r.fail("mismatched number of classes: " + std::to_string(h.num_classes) + " (byte offset 28) but '" +
                   readers.front().file().string() + "' has " + std::to_string(readers.front().header().num_classes));
        total += h.records;
    }
    dataset d = detail::make_dataset(total, readers.front().header());
    const auto sample = static_cast<std::size_t>(readers.front().header().sample_bytes());
    std::size_t at = 0;
    for (auto& r : readers) {
        const std::uint64_t n = r.header().records;
        r.read_records(0, n, d.images.data() + at * sample, d.labels.data() + at);
        at += static_cast<std::size_t>(n);
    }
    return d;
}

}  // namespace staticnet::data
