#pragma once
/// @file
/// `detail::gzip_stream`: the content of a file, read front to back, inflated on the fly
/// when the file is gzip-compressed and passed through as it is otherwise.
///
/// Compression is recognised by the gzip magic bytes (1f 8b), never by the file name. A
/// gzip file may hold several members (`cat a.gz b.gz` is valid); the CRC-32 and length
/// in each member's trailer are checked, and anything after the last member is refused.
/// Compressed input is read in chunks and inflated straight into the caller's buffer, so a
/// 50 MB file costs one pass and no extra copy. Every problem (missing file, read error,
/// corrupt or truncated gzip data) throws `data_error` naming the file; offsets are of the
/// content, or of the compressed file for gzip-level errors.
///
/// The IDX reader (`data/idx.hpp`) reads through it.

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "error.hpp"
#include "file_io.hpp"

namespace staticnet::detail {

/// A file's content, raw or inflated (see the file comment), read front to back.
class gzip_stream {
public:
    /// Opens `file`; `kind` names it in messages ("IDX file"). Throws `data_error` when the
    /// file is missing, a directory or unreadable.
    gzip_stream(const std::filesystem::path& file, std::string kind);
    ~gzip_stream() {
        if (gzip_) inflateEnd(&zs_);
    }
    gzip_stream(const gzip_stream&) = delete;
    gzip_stream& operator=(const gzip_stream&) = delete;

    [[nodiscard]] bool compressed() const noexcept { return gzip_; }
    /// Bytes of content delivered so far (the offset of the next byte).
    [[nodiscard]] std::uint64_t offset() const noexcept { return out_pos_; }
    /// The bytes left, when known without reading them (raw regular files only: a gzip
    /// file's content size is known only after inflating it).
    [[nodiscard]] std::optional<std::uint64_t> remaining() const noexcept {
        if (gzip_ || !file_size_) return std::nullopt;
        return *file_size_ > out_pos_ ? *file_size_ - out_pos_ : 0;
    }
    /// Reads up to n bytes; returns fewer only at the end of the content.
    std::size_t read(std::uint8_t* dst, std::size_t n) {
        const std::size_t got = gzip_ ? read_gzip(dst, n) : read_raw(dst, n);
        out_pos_ += got;
        return got;
    }
    /// Consumes the rest of the content and returns how many bytes it had. For gzip this
    /// also inflates to the end, so a bad checksum in the trailer is caught.
    std::uint64_t drain();

    /// Throws `data_error`: "<kind> '<file>' (gzip): <problem>".
    [[noreturn]] void fail(const std::string& problem) const {
        throw data_error(kind_ + " '" + name_ + "'" + (gzip_ ? " (gzip)" : "") + ": " + problem);
    }

private:
    static constexpr std::size_t chunk = std::size_t{1} << 18;

    std::size_t read_raw(std::uint8_t* dst, std::size_t n);
    std::size_t read_gzip(std::uint8_t* dst, std::size_t n);
    bool refill();
    bool start_next_member();
    std::size_t read_file(std::uint8_t* dst, std::size_t n);
    [[nodiscard]] std::uint64_t compressed_offset() const noexcept { return file_pos_ - zs_.avail_in; }

    std::string kind_;
    std::string name_;
    file_handle file_;
    std::optional<std::uint64_t> file_size_;
    bool gzip_ = false;
    bool input_eof_ = false;
    bool member_done_ = false;
    std::vector<std::uint8_t> in_;   // first chunk (both modes), then compressed input
    std::size_t in_pos_ = 0;         // raw mode: bytes of in_ already handed out
    std::size_t in_len_ = 0;         // raw mode: valid bytes in in_
    std::uint64_t file_pos_ = 0;     // bytes read from the file so far
    std::uint64_t out_pos_ = 0;
    z_stream zs_{};
};

inline gzip_stream::gzip_stream(const std::filesystem::path& file, std::string kind)
    : kind_(std::move(kind)), name_(file.string()) {
    std::error_code ec;
    const auto st = std::filesystem::status(file, ec);
    if (st.type() == std::filesystem::file_type::not_found) fail("the file does not exist");
    if (st.type() == std::filesystem::file_type::directory) fail("cannot read: it is a directory, not a file");
    file_ = file_handle(file, "rb");
    if (!file_.is_open()) {
        const int err = errno;
        fail("cannot open for reading: " + errno_text(err));
    }
    if (std::filesystem::is_regular_file(st)) {
        const auto size = std::filesystem::file_size(file, ec);
        if (!ec) file_size_ = size;
    }

    // The first chunk tells raw from gzip: the gzip magic bytes, or the content as it is.
    in_.resize(chunk);
    in_len_ = read_file(in_.data(), in_.size());
    if (in_len_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b) {
        // 16 + MAX_WBITS: gzip wrapper only, so zlib checks the CRC-32 and length trailer.
        if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) fail("cannot initialise zlib (out of memory?)");
        gzip_ = true;
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(in_len_);
    }
}

inline std::size_t gzip_stream::read_file(std::uint8_t* dst, std::size_t n) {
    const std::size_t got = file_.read(dst, n);
    file_pos_ += got;
    if (got < n) {
        if (file_.failed()) {
            const int err = errno;
            fail("read error at file byte offset " + std::to_string(file_pos_) + ": " + errno_text(err));
        }
        input_eof_ = true;
    }
    return got;
}

inline std::size_t gzip_stream::read_raw(std::uint8_t* dst, std::size_t n) {
    std::size_t got = std::min(n, in_len_ - in_pos_);
    if (got != 0) {
        std::memcpy(dst, in_.data() + in_pos_, got);
        in_pos_ += got;
    }
    // Past the first chunk, read straight into the destination.
    if (got < n && !input_eof_) got += read_file(dst + got, n - got);
    return got;
}

inline bool gzip_stream::refill() {
    if (input_eof_) return false;
    // Keep the unconsumed input (at most a few bytes when we get here) at the front.
    const std::size_t keep = zs_.avail_in;
    if (keep != 0) std::memmove(in_.data(), zs_.next_in, keep);
    const std::size_t got = read_file(in_.data() + keep, in_.size() - keep);
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(keep + got);
    return got != 0;
}

inline bool gzip_stream::start_next_member() {
    // After a gzip member ends, another may follow (`cat a.gz b.gz` is a valid gzip file);
    // anything else after the stream means the file is not what it claims to be.
    if (zs_.avail_in < 2) refill();
    if (zs_.avail_in == 0) return false;
    if (zs_.avail_in < 2 || zs_.next_in[0] != 0x1f || zs_.next_in[1] != 0x8b) {
        std::string what = "corrupt gzip stream: unexpected bytes after the end of the gzip data at compressed byte offset " +
                           std::to_string(compressed_offset());
        if (file_size_ && *file_size_ > compressed_offset())
            what += " (" + std::to_string(*file_size_ - compressed_offset()) + " bytes of trailing garbage)";
        fail(what);
    }
    inflateReset(&zs_);
    member_done_ = false;
    return true;
}

inline std::size_t gzip_stream::read_gzip(std::uint8_t* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        if (member_done_ && !start_next_member()) break;
        if (zs_.avail_in == 0) refill();
        // uInt is 32 bits: hand zlib at most 1 GiB of output space per call.
        const uInt space = static_cast<uInt>(std::min<std::size_t>(n - got, std::size_t{1} << 30));
        zs_.next_out = dst + got;
        zs_.avail_out = space;
        const int rc = inflate(&zs_, Z_NO_FLUSH);
        got += space - zs_.avail_out;
        if (rc == Z_STREAM_END) {
            member_done_ = true;
        } else if (rc == Z_BUF_ERROR) {
            // No progress was possible: zlib needs input and the file has none left.
            if (input_eof_ && zs_.avail_in == 0)
                fail("corrupt gzip stream: truncated, the compressed data ends at byte " +
                     std::to_string(compressed_offset()) + " before the end of the gzip stream");
        } else if (rc != Z_OK) {
            const char* msg = zs_.msg != nullptr ? zs_.msg : zError(rc);
            fail("corrupt gzip stream: zlib error " + std::to_string(rc) + " (" + msg +
                 ") near compressed byte offset " + std::to_string(compressed_offset()));
        }
    }
    return got;
}

inline std::uint64_t gzip_stream::drain() {
    if (auto left = remaining()) {
        out_pos_ += *left;
        return *left;
    }
    std::vector<std::uint8_t> scratch(std::size_t{1} << 16);
    std::uint64_t total = 0;
    for (;;) {
        const std::size_t got = read(scratch.data(), scratch.size());
        total += got;
        if (got < scratch.size()) return total;
    }
}

}  // namespace staticnet::detail
