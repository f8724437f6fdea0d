#pragma once
/// @file
/// Reading and verifying shard files (the layout is in `shard_layout.hpp`): whole files,
/// ranges of records (only the blocks that hold them are read and checked), and a report of
/// every bad block.

#include "shard_layout.hpp"

namespace staticnet::data {

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

// ===================================================================== implementation

// ===================================================================== implementation

namespace detail {

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
    /// The pixels of record `r` of the loaded block j (sample_bytes() of them).
    [[nodiscard]] const std::uint8_t* pixels_at(std::uint64_t j, std::uint64_t r) const noexcept {
        return block_.data() + (r - first_of(j)) * h_.record_bytes();
    }

    /// Reads records [first, first + count) into `images` (count * H*W*C floats, v / 255,
    /// or the stored bytes) and `labels`, verifying each block it touches.
    template <typename Pixel>
    void read_records(std::uint64_t first, std::uint64_t count, Pixel* images, std::int32_t* labels);

private:
    void read_exact(std::uint64_t offset, std::uint8_t* dst, std::size_t n);

    std::filesystem::path file_;
    file_handle f_;
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
    f_ = file_handle(file, "rb");
    if (!f_.is_open()) {
        const int err = errno;
        fail("cannot open for reading: " + errno_text(err));
    }

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
    h_.version = load_le<std::uint32_t>(b.data() + f::version);
    if (h_.version != shard_format_version)
        fail("unknown format version " + std::to_string(h_.version) + " at byte offset " + std::to_string(f::version) +
             " (this reader knows version " + std::to_string(shard_format_version) + ")");
    const auto stored_crc = load_le<std::uint32_t>(b.data() + f::header_crc);
    const std::uint32_t crc = crc32(b.data(), f::header_crc);
    if (stored_crc != crc)
        fail("header checksum mismatch: the CRC32 stored at byte offset " + std::to_string(f::header_crc) + " is " +
             hex_text(stored_crc, 8) + " but bytes 0.." + std::to_string(f::header_crc - 1) + " give " + hex_text(crc, 8) +
             "; the header is corrupt");

    // The checksum matched, so from here on a bad field was written that way: say which.
    h_.height = load_le<std::uint32_t>(b.data() + f::height);
    h_.width = load_le<std::uint32_t>(b.data() + f::width);
    h_.channels = load_le<std::uint32_t>(b.data() + f::channels);
    h_.pixel_type = b[f::pixel_type];
    h_.label_type = b[f::label_type];
    h_.num_classes = load_le<std::uint32_t>(b.data() + f::num_classes);
    h_.records = load_le<std::uint64_t>(b.data() + f::records);
    h_.records_per_block = load_le<std::uint32_t>(b.data() + f::records_per_block);

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
        fail("invalid sample shape " + shape_text({h_.height, h_.width, h_.channels}) + " at byte offset " +
             std::to_string(f::height) + ": every dimension must be at least 1");
    const auto hw = std::uint64_t{h_.height} * h_.width;  // < 2^64; the product with channels may not be
    if (!mul_checked(hw, h_.channels) || h_.sample_bytes() > max_shard_sample_bytes)
        fail("absurd sample shape " + shape_text({h_.height, h_.width, h_.channels}) + " at byte offset " +
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
    for (std::size_t j = 0; j < crcs_.size(); ++j) crcs_[j] = load_le<std::uint32_t>(raw.data() + 4 * j);
}

inline void shard_reader::read_exact(std::uint64_t offset, std::uint8_t* dst, std::size_t n) {
    if (!f_.seek(offset)) {
        const int err = errno;
        fail("cannot seek to byte offset " + std::to_string(offset) + ": " + errno_text(err));
    }
    const std::size_t got = f_.read(dst, n);
    if (got != n) {
        if (f_.failed()) {
            const int err = errno;
            fail("read error at byte offset " + std::to_string(offset + got) + ": " + errno_text(err));
        }
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
        fail("shape mismatch: the samples are " + shape_text({h_.height, h_.width, h_.channels}) + " (byte offset " +
             std::to_string(shard_field::height) + ") but " +
             shape_text({expected->height(), expected->width(), expected->channels()}) + " were expected");
}

inline bool shard_reader::load_block(std::uint64_t j) {
    // records_in(j) * record_bytes() <= file size (checked on open), so this fits in memory terms.
    const auto n = static_cast<std::size_t>(records_in(j) * h_.record_bytes());
    block_.resize(n);
    read_exact(block_offset(j), block_.data(), n);
    block_crc_ = crc32(block_.data(), n);
    return block_crc_ == crcs_[static_cast<std::size_t>(j)];
}

inline std::string shard_reader::block_mismatch(std::uint64_t j) const {
    const std::uint64_t begin = block_offset(j);
    const std::uint64_t end = begin + records_in(j) * h_.record_bytes();
    return "block checksum mismatch in block " + std::to_string(j) + " (records " + std::to_string(first_of(j)) + ".." +
           std::to_string(first_of(j) + records_in(j) - 1) + ", byte offsets " + std::to_string(begin) + ".." +
           std::to_string(end - 1) + "): the CRC32 stored at byte offset " +
           std::to_string(shard_header_bytes + 4 * j) + " is " + hex_text(crcs_[static_cast<std::size_t>(j)], 8) +
           " but the data gives " + hex_text(block_crc_, 8) + "; the block or its stored checksum is corrupt";
}

inline std::optional<std::int32_t> shard_reader::label_at(std::uint64_t j, std::uint64_t r) const noexcept {
    const std::uint8_t* p = block_.data() + (r - first_of(j)) * h_.record_bytes() + h_.sample_bytes();
    const auto label = h_.label_type == shard_label_i32
                           ? static_cast<std::int32_t>(load_le<std::uint32_t>(p))
                           : static_cast<std::int32_t>(*p);
    if (label < 0 || static_cast<std::uint32_t>(label) >= h_.num_classes) return std::nullopt;
    return label;
}

inline std::string shard_reader::label_problem(std::uint64_t j, std::uint64_t r) const {
    const std::uint8_t* p = block_.data() + (r - first_of(j)) * h_.record_bytes() + h_.sample_bytes();
    const long long label = h_.label_type == shard_label_i32
                                ? static_cast<std::int32_t>(load_le<std::uint32_t>(p))
                                : static_cast<long long>(*p);
    return "label out of range: record " + std::to_string(r) + " (byte offset " +
           std::to_string(h_.data_offset() + r * h_.record_bytes() + h_.sample_bytes()) + ") holds " +
           std::to_string(label) + ", but with " + std::to_string(h_.num_classes) + " classes labels must be in 0.." +
           std::to_string(h_.num_classes - 1);
}

template <typename Pixel>
void shard_reader::read_records(std::uint64_t first, std::uint64_t count, Pixel* images, std::int32_t* labels) {
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
            Pixel* out = images + (r - first) * sample;
            if constexpr (std::is_same_v<Pixel, std::uint8_t>)
                std::memcpy(out, p, sample);
            else
                for (std::size_t i = 0; i < sample; ++i) out[i] = unit[p[i]];
            labels[r - first] = *label;
        }
    }
}

/// An uninitialised `Data` (`dataset` or `byte_dataset`) for n samples of the header's shape.
template <typename Data = dataset>
Data make_dataset(std::uint64_t n, const shard_header& h) {
    Data d;
    d.images = decltype(d.images)(std::array<std::size_t, 4>{static_cast<std::size_t>(n), h.height, h.width, h.channels});
    d.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{static_cast<std::size_t>(n)});
    d.num_classes = h.num_classes;
    return d;
}

template <typename Data = dataset>
Data read_part(shard_reader& reader, std::uint64_t first, std::uint64_t count) {
    Data d = make_dataset<Data>(count, reader.header());
    reader.read_records(first, count, d.images.data(), d.labels.data());
    return d;
}

}  // namespace detail

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

}  // namespace staticnet::data
