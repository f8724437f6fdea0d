#pragma once
/// @file
/// The file helpers every staticnet reader and writer shares, so that a file is written, a
/// number encoded and a value spelled in an error message one way everywhere: checkpoints,
/// shard files, IDX files and history files all go through this header.
///
/// - `write_file_atomically`: the new content goes to a temporary file in the target's
///   directory, which is flushed to disk (fsync) and renamed over the target; then the
///   directory is flushed so the rename itself survives a crash. A reader sees the old file
///   or the new one, never a part of one, and a failed write (full disk, missing directory,
///   an exception from the caller's writer) removes the temporary and leaves the old file
///   as it was.
/// - `read_file_bytes`: a whole (small) file in memory.
/// - `file_handle`: an owning `std::FILE*` for readers that seek and read piece by piece.
/// - Byte order: every staticnet file is little-endian, on every host. `store_le` and
///   `load_le` encode one value, `byte_writer` and `byte_reader` a sequence of them.
/// - Message text: `hex_text` (checksums, fingerprints), `hex_byte` (type codes, magic
///   bytes) and `shape_text` (dimensions such as `28x28x1`).
///
/// These are internals (`staticnet::detail`). The public functions built on them throw
/// their own error types (`data_error`, `checkpoint_error`, `error`) with their own context,
/// which the templates here take as a parameter. The implementation is POSIX (fsync,
/// fseeko, getpid).

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace staticnet::detail {

// ===================================================================== message text

/// Letter case of `hex_text`.
enum class hex_case { lower, upper };

/// `value` as "0x" and its low `digits` hexadecimal digits (at most 16), zero-padded:
/// `hex_text(0xab, 8) == "0x000000ab"`. Checksums and fingerprints are written in lower
/// case; type codes and magic bytes in upper case, as the IDX specification writes them.
[[nodiscard]] inline std::string hex_text(std::uint64_t value, std::size_t digits, hex_case letters = hex_case::lower);
/// A type code or magic byte: `hex_byte(0x1f) == "0x1F"`.
[[nodiscard]] inline std::string hex_byte(std::uint8_t b) { return hex_text(b, 2, hex_case::upper); }

/// Dimensions joined by 'x', outermost first: "60000x28x28", "28x28x1"; "()" for none.
template <typename Dims>
[[nodiscard]] std::string shape_text(const Dims& dims);
[[nodiscard]] inline std::string shape_text(std::initializer_list<std::uint64_t> dims);

/// The system's description of an errno value ("No such file or directory").
[[nodiscard]] inline std::string errno_text(int err);

// ===================================================================== byte order

/// Writes `value` (an integer, float or double) at `p` as little-endian bytes.
template <typename T>
void store_le(std::uint8_t* p, T value) noexcept;

/// Reads a `T` stored at `p` by `store_le`.
template <typename T>
[[nodiscard]] T load_le(const std::uint8_t* p) noexcept;

/// Appends values in file byte order; a checkpoint is built this way, then written at once.
class byte_writer {
public:
    template <typename T>
    void put(T value);
    void put_bytes(const void* data, std::size_t n);
    void put_floats(std::span<const float> values);

    [[nodiscard]] const std::vector<std::uint8_t>& bytes() const noexcept { return bytes_; }

private:
    std::vector<std::uint8_t> bytes_;
};

/// Reads values in file byte order from a buffer, front to back. Reading past the end is a
/// bug in the caller (which checks sizes first) and throws `std::out_of_range`.
class byte_reader {
public:
    explicit byte_reader(std::span<const std::uint8_t> bytes) noexcept : bytes_(bytes) {}

    template <typename T>
    [[nodiscard]] T get();
    void get_bytes(void* out, std::size_t n);
    void get_floats(std::span<float> out);

private:
    const std::uint8_t* take(std::size_t n);

    std::span<const std::uint8_t> bytes_;
    std::size_t at_ = 0;
};

// ===================================================================== files

/// An open `std::FILE*` that closes itself. Operations report failure (false, or a short
/// count) and leave errno set, so that each reader words its own message.
class file_handle {
public:
    file_handle() noexcept = default;
    /// Opens `file` with an `fopen` mode ("rb", "wb"); `is_open()` tells, errno says why not.
    file_handle(const std::filesystem::path& file, const char* mode) noexcept : f_(std::fopen(file.c_str(), mode)) {}
    file_handle(file_handle&& other) noexcept : f_(std::exchange(other.f_, nullptr)) {}
    file_handle& operator=(file_handle&& other) noexcept;
    file_handle(const file_handle&) = delete;
    file_handle& operator=(const file_handle&) = delete;
    ~file_handle() { close(); }

    [[nodiscard]] bool is_open() const noexcept { return f_ != nullptr; }

    /// Reads up to `n` bytes; fewer only at the end of the file or on an error (`failed()`).
    std::size_t read(void* out, std::size_t n) noexcept { return n == 0 ? 0 : std::fread(out, 1, n, f_); }
    /// Writes all `n` bytes (into the C library's buffer).
    bool write(const void* data, std::size_t n) noexcept { return n == 0 || std::fwrite(data, 1, n, f_) == n; }
    /// Moves to byte `offset` from the start.
    bool seek(std::uint64_t offset) noexcept;
    /// A read or write has failed.
    [[nodiscard]] bool failed() const noexcept { return std::ferror(f_) != 0; }
    /// Hands what the C library buffers to the system.
    bool flush() noexcept { return std::fflush(f_) == 0; }
    /// Flushes, and has the system put the bytes on disk.
    bool sync() noexcept { return flush() && ::fsync(::fileno(f_)) == 0; }
    /// Closes now; false when the final flush failed (which the destructor cannot report).
    bool close() noexcept { return f_ == nullptr || std::fclose(std::exchange(f_, nullptr)) == 0; }

private:
    std::FILE* f_ = nullptr;
};

/// The temporary file that `write_file_atomically` hands to the caller's writer. Its
/// operations throw the caller's error type, with the caller's context, on failure.
class output_file {
public:
    using raise_function = void (*)(const std::string& message);

    output_file(std::filesystem::path temp, std::string context, raise_function raise);

    void write(const void* data, std::size_t n) {
        if (!file_.write(data, n)) fail("write error on");
    }
    void write(std::span<const std::uint8_t> bytes) { write(bytes.data(), bytes.size()); }
    void write(std::string_view text) { write(text.data(), text.size()); }
    void seek(std::uint64_t offset) {
        if (!file_.seek(offset)) fail("cannot seek in");
    }

    /// Flushes (to disk when `durable`: pipes and terminals cannot sync) and closes;
    /// write_file_atomically calls it.
    void finish(bool durable);
    /// Closes without reporting anything (on the way out of a failed write).
    void abandon() noexcept { file_.close(); }

private:
    /// Throws "<context>: <what> '<file>': <errno's text>" (errno read first).
    [[noreturn]] void fail(std::string_view what) const;

    file_handle file_;
    std::filesystem::path path_;
    std::string context_;
    raise_function raise_;
};

/// Replaces `file` with what `write(output_file&)` writes, atomically (see the file
/// comment). I/O failures throw `Error(context + ": " + problem)`, the problem naming the
/// temporary file and the system's reason; an exception from `write` passes through. A
/// `file` that is a symbolic link has its target replaced; one that is not a regular file
/// (a terminal, a pipe, /dev/stdout) cannot be replaced and is written in place.
template <typename Error, typename Write>
void write_file_atomically(const std::filesystem::path& file, const std::string& context, Write&& write);

/// The whole content of `file`. Throws `Error` naming the file when it cannot be opened or read.
template <typename Error>
[[nodiscard]] std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file);

// ===================================================================== implementation

inline std::string hex_text(std::uint64_t value, std::size_t digits, hex_case letters) {
    const char* alphabet = letters == hex_case::upper ? "0123456789ABCDEF" : "0123456789abcdef";
    digits = std::min<std::size_t>(digits, 16);
    std::string s(2 + digits, '0');
    s[1] = 'x';
    for (std::size_t i = 0; i < digits; ++i) s[s.size() - 1 - i] = alphabet[(value >> (4 * i)) & 0xF];
    return s;
}

template <typename Dims>
std::string shape_text(const Dims& dims) {
    std::string s;
    for (const auto d : dims) {
        if (!s.empty()) s += 'x';
        s += std::to_string(d);
    }
    return s.empty() ? "()" : s;
}

inline std::string shape_text(std::initializer_list<std::uint64_t> dims) {
    return shape_text<std::initializer_list<std::uint64_t>>(dims);
}

inline std::string errno_text(int err) { return std::generic_category().message(err); }

/// The unsigned integer of `Bytes` bytes, which carries the bits of a value in and out of a file.
template <std::size_t Bytes>
using unsigned_of = std::conditional_t<
    Bytes == 1, std::uint8_t,
    std::conditional_t<Bytes == 2, std::uint16_t, std::conditional_t<Bytes == 4, std::uint32_t, std::uint64_t>>>;

template <typename T>
void store_le(std::uint8_t* p, T value) noexcept {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "store_le takes integers and floats");
    const auto bits = std::bit_cast<unsigned_of<sizeof(T)>>(value);
    // Shifts, not a copy: the result does not depend on the host's byte order, and
    // compilers turn the loop into one store on little-endian hosts.
    for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::uint8_t>(bits >> (8 * i));
}

template <typename T>
T load_le(const std::uint8_t* p) noexcept {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "load_le takes integers and floats");
    using bits_type = unsigned_of<sizeof(T)>;
    bits_type bits = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) bits |= static_cast<bits_type>(bits_type{p[i]} << (8 * i));
    return std::bit_cast<T>(bits);
}

template <typename T>
void byte_writer::put(T value) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    store_le(bytes_.data() + at, value);
}

inline void byte_writer::put_bytes(const void* data, std::size_t n) {
    if (n == 0) return;  // an empty span may have no pointer
    const std::size_t at = bytes_.size();
    bytes_.resize(at + n);
    std::memcpy(bytes_.data() + at, data, n);
}

inline void byte_writer::put_floats(std::span<const float> values) {
    if constexpr (std::endian::native == std::endian::little) {
        put_bytes(values.data(), values.size_bytes());  // already in file order
    } else {
        for (const float v : values) put(v);
    }
}

inline const std::uint8_t* byte_reader::take(std::size_t n) {
    if (n > bytes_.size() - at_) throw std::out_of_range("byte_reader: read past the end of the buffer");
    const std::uint8_t* p = bytes_.data() + at_;
    at_ += n;
    return p;
}

template <typename T>
T byte_reader::get() {
    return load_le<T>(take(sizeof(T)));
}

inline void byte_reader::get_bytes(void* out, std::size_t n) {
    const std::uint8_t* p = take(n);
    if (n != 0) std::memcpy(out, p, n);
}

inline void byte_reader::get_floats(std::span<float> out) {
    if constexpr (std::endian::native == std::endian::little) {
        get_bytes(out.data(), out.size_bytes());
    } else {
        for (float& v : out) v = get<float>();
    }
}

inline file_handle& file_handle::operator=(file_handle&& other) noexcept {
    if (this != &other) {
        close();
        f_ = std::exchange(other.f_, nullptr);
    }
    return *this;
}

inline bool file_handle::seek(std::uint64_t offset) noexcept {
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return false;
    return fseeko(f_, static_cast<off_t>(offset), SEEK_SET) == 0;
}

inline output_file::output_file(std::filesystem::path temp, std::string context, raise_function raise)
    : file_(temp, "wb"), path_(std::move(temp)), context_(std::move(context)), raise_(raise) {
    if (!file_.is_open()) fail("cannot create");
}

inline void output_file::finish(bool durable) {
    if (!(durable ? file_.sync() : file_.flush())) fail("cannot flush");
    if (!file_.close()) fail("write error on");
}

inline void output_file::fail(std::string_view what) const {
    const int err = errno;
    raise_(context_ + ": " + std::string(what) + " '" + path_.string() + "': " + errno_text(err));
    std::abort();  // raise_ always throws
}

template <typename Error>
[[noreturn]] void raise_as(const std::string& message) {
    throw Error(message);
}

/// A name next to `file` that no other writer uses: the process id tells processes apart,
/// the counter the writes of one process.
inline std::filesystem::path temporary_name_for(const std::filesystem::path& file) {
    static std::atomic<unsigned> counter{0};
    const auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    std::string name = ".";  // appended piece by piece: GCC 12 warns falsely on "." + string
    name += file.filename().string();
    name += ".tmp-";
    name += std::to_string(::getpid());
    name += '-';
    name += std::to_string(counter++);
    return dir / name;
}

/// Makes a rename in `dir` durable. Best effort: some file systems refuse to sync a directory.
inline void sync_directory(const std::filesystem::path& dir) noexcept {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

template <typename Error, typename Write>
void write_file_atomically(const std::filesystem::path& file, const std::string& context, Write&& write) {
    std::error_code ec;
    const auto status = std::filesystem::status(file, ec);
    if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status) &&
        !std::filesystem::is_directory(status)) {
        // A device or a pipe: renaming over it would replace it (even /dev/stdout, as root).
        output_file out(file, context, &raise_as<Error>);
        write(out);
        out.finish(false);
        return;
    }
    // Through a symbolic link, like a plain write: the link stays and its target is replaced.
    // A dangling link names the file to create: its target, relative to the link's folder.
    auto target = file;
    if (std::filesystem::is_symlink(file, ec)) {
        if (auto resolved = std::filesystem::canonical(file, ec); !ec) {
            target = std::move(resolved);
        } else if (auto pointee = std::filesystem::read_symlink(file, ec); !ec) {
            target = pointee.is_absolute() ? pointee : file.parent_path() / pointee;
        }
    }
    // The replacement keeps the permissions of the file it replaces (a 0600 checkpoint stays 0600).
    const auto old_status = std::filesystem::status(target, ec);
    const bool keep_permissions = !ec && std::filesystem::is_regular_file(old_status);

    const auto temp = temporary_name_for(target);
    output_file out(temp, context, &raise_as<Error>);
    try {
        write(out);
        out.finish(true);
        if (keep_permissions) std::filesystem::permissions(temp, old_status.permissions(), ec);
        if (::rename(temp.c_str(), target.c_str()) != 0) {
            const int err = errno;
            raise_as<Error>(context + ": cannot rename '" + temp.string() + "' to it: " + errno_text(err));
        }
    } catch (...) {
        out.abandon();
        std::filesystem::remove(temp, ec);
        throw;
    }
    sync_directory(target.has_parent_path() ? target.parent_path() : std::filesystem::path("."));
}

template <typename Error>
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file) {
    file_handle in(file, "rb");
    if (!in.is_open()) {
        const int err = errno;
        raise_as<Error>("cannot open '" + file.string() + "': " + errno_text(err));
    }
    std::vector<std::uint8_t> bytes;
    std::vector<std::uint8_t> buffer(std::size_t{1} << 16);
    for (;;) {
        const std::size_t n = in.read(buffer.data(), buffer.size());
        bytes.insert(bytes.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
        if (n < buffer.size()) break;
    }
    if (in.failed()) {
        const int err = errno;
        raise_as<Error>("cannot read '" + file.string() + "': " + errno_text(err));
    }
    return bytes;
}

}  // namespace staticnet::detail
