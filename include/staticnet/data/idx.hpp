#pragma once
/// @file
/// IDX reader: loads MNIST-style image and label files (MNIST, Fashion-MNIST) into tensors.
///
/// An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
/// dimensions), one big-endian uint32 size per dimension, then the elements in row-major
/// order. Files may be stored raw or gzip-compressed; compression is recognised by the gzip
/// magic bytes (1f 8b), never by the file name, and is undone on the fly
/// (`core/gzip_stream.hpp`).
///
/// The readers trust nothing in the file: every problem (missing file, truncated header or
/// data, wrong magic number, wrong rank, absurd sizes, trailing bytes, corrupt gzip stream,
/// out-of-range label) throws `staticnet::data_error` whose message names the file, the
/// problem and, where it applies, the byte offset. Offsets count bytes of IDX content, that
/// is after decompression for gzip files; gzip-level errors give the compressed offset.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../core/compat.hpp"
#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/gzip_stream.hpp"
#include "byte_dataset.hpp"
#include "dataset.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// The header of an IDX file: its type code and its dimension sizes, outermost first.
struct idx_header {
    std::uint8_t type_code = 0;         ///< 0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    std::vector<std::uint32_t> dims;    ///< e.g. {60000, 28, 28} for MNIST training images

    /// Length of the header in bytes: the magic number plus one uint32 per dimension.
    [[nodiscard]] std::size_t size_bytes() const noexcept { return 4 + 4 * dims.size(); }
};

/// Type code of unsigned bytes, the only element type of (Fashion-)MNIST.
inline constexpr std::uint8_t idx_ubyte = 0x08;

/// Largest payload the readers accept (16 GiB). A header promising more is treated as
/// corrupt and refused before anything is allocated.
inline constexpr std::uint64_t max_idx_data_bytes = std::uint64_t{1} << 34;

/// Size in bytes of one element of the given type code, 0 for a code IDX does not define.
[[nodiscard]] constexpr std::size_t idx_element_size(std::uint8_t type_code) noexcept;

/// Human-readable name of a type code ("unsigned byte", "float32", ... or "unknown").
[[nodiscard]] constexpr std::string_view idx_type_name(std::uint8_t type_code) noexcept;

/// Reads and validates only the header (magic number, known type code, complete dimensions).
[[nodiscard]] inline idx_header read_idx_header(const std::filesystem::path& file);

/// A whole IDX file: its header and its payload exactly as stored (multi-byte types stay
/// big-endian).
struct idx_file {
    idx_header header;
    std::vector<std::uint8_t> data;
};

/// Reads a whole IDX file of any element type, checking that the payload is complete and
/// that nothing follows it.
[[nodiscard]] inline idx_file read_idx(const std::filesystem::path& file);

/// Reads unsigned-byte images of shape (N, H, W) or (N, H, W, C) as an [N, H, W, C] tensor
/// (C = 1 for 3-D files) scaled to [0, 1] by value / 255.
[[nodiscard]] inline xt::xtensor<float, 4> read_idx_images(const std::filesystem::path& file);

/// The same images as stored: bytes, a quarter of the memory (value v means v / 255).
[[nodiscard]] inline xt::xtensor<std::uint8_t, 4> read_idx_image_bytes(const std::filesystem::path& file);

/// Reads unsigned-byte labels of shape (N); every label must be below `num_classes`.
[[nodiscard]] inline xt::xtensor<std::int32_t, 1> read_idx_labels(const std::filesystem::path& file,
                                                                  std::size_t num_classes);

/// Reads an image file and its label file into a `dataset`, checking the counts match.
[[nodiscard]] inline dataset load_idx(const std::filesystem::path& images, const std::filesystem::path& labels,
                                      std::size_t num_classes = 10);

/// `load_idx` keeping the pixels as bytes (`byte_dataset`).
[[nodiscard]] inline byte_dataset load_idx_bytes(const std::filesystem::path& images,
                                                 const std::filesystem::path& labels, std::size_t num_classes = 10);

/// Where the Debian package `dataset-fashion-mnist` installs the four Fashion-MNIST files.
inline const std::filesystem::path default_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

/// The training and test halves of a data set.
struct train_test {
    dataset train;
    dataset test;
};

/// Loads Fashion-MNIST (60000 training and 10000 test images, 28x28x1, 10 classes) from
/// `dir`, which holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each preferably with `.gz`.
[[nodiscard]] inline train_test load_fashion_mnist(const std::filesystem::path& dir = default_fashion_mnist_dir);

/// `load_fashion_mnist` keeping the pixels as bytes: 55 MB in memory instead of 220 MB.
[[nodiscard]] inline byte_train_test load_fashion_mnist_bytes(const std::filesystem::path& dir = default_fashion_mnist_dir);

// ===================================================================== implementation

constexpr std::size_t idx_element_size(std::uint8_t type_code) noexcept {
    switch (type_code) {
        case 0x08: return 1;
        case 0x09: return 1;
        case 0x0B: return 2;
        case 0x0C: return 4;
        case 0x0D: return 4;
        case 0x0E: return 8;
        default: return 0;
    }
}

constexpr std::string_view idx_type_name(std::uint8_t type_code) noexcept {
    switch (type_code) {
        case 0x08: return "unsigned byte";
        case 0x09: return "signed byte";
        case 0x0B: return "int16";
        case 0x0C: return "int32";
        case 0x0D: return "float32";
        case 0x0E: return "float64";
        default: return "unknown";
    }
}

namespace detail {

using ::staticnet::detail::gzip_stream;
using ::staticnet::detail::hex_byte;
using ::staticnet::detail::shape_text;

/// The content of an IDX file, raw or inflated; messages name it "IDX file '<file>'".
inline gzip_stream open_idx(const std::filesystem::path& file) { return gzip_stream(file, "IDX file"); }

/// Reads the magic number and the dimension sizes, checking what does not depend on the
/// caller: zero bytes, a type code IDX defines, at least one dimension, a complete header.
inline idx_header read_header(gzip_stream& s) {
    std::array<std::uint8_t, 4> magic{};
    const std::size_t got = s.read(magic.data(), magic.size());
    if (got == 0) s.fail("truncated header: the file is empty (expected a 4-byte magic number at byte offset 0)");
    if (got < magic.size())
        s.fail("truncated header: the 4-byte magic number ends after " + std::to_string(got) + " bytes at byte offset " +
               std::to_string(got));
    if (magic[0] != 0 || magic[1] != 0)
        s.fail("wrong magic number: its first two bytes must be 0x00 0x00 but are " + hex_byte(magic[0]) + " " +
               hex_byte(magic[1]) + " (byte offset 0); this is not an IDX file");
    idx_header h;
    h.type_code = magic[2];
    if (idx_element_size(h.type_code) == 0)
        s.fail("wrong magic number: unknown type code " + hex_byte(h.type_code) +
               " at byte offset 2 (IDX defines 0x08, 0x09, 0x0B, 0x0C, 0x0D and 0x0E)");
    const std::size_t rank = magic[3];
    if (rank == 0) s.fail("wrong magic number: it declares 0 dimensions (byte offset 3)");

    std::array<std::uint8_t, 4 * 255> raw{};
    const std::size_t need = 4 * rank;
    const std::size_t have = s.read(raw.data(), need);
    if (have < need)
        s.fail("truncated header: " + std::to_string(rank) + " dimension sizes need " + std::to_string(need) +
               " bytes from byte offset 4, but only " + std::to_string(have) + " are available");
    h.dims.resize(rank);
    for (std::size_t i = 0; i < rank; ++i)
        h.dims[i] = std::uint32_t{raw[4 * i]} << 24 | std::uint32_t{raw[4 * i + 1]} << 16 |
                    std::uint32_t{raw[4 * i + 2]} << 8 | std::uint32_t{raw[4 * i + 3]};
    return h;
}

inline void require_type(const gzip_stream& s, const idx_header& h, std::uint8_t type_code, std::string_view what) {
    if (h.type_code != type_code)
        s.fail("wrong magic number: " + std::string(what) + " need type code " + hex_byte(type_code) + " (" +
               std::string(idx_type_name(type_code)) + ") but byte offset 2 holds " + hex_byte(h.type_code) + " (" +
               std::string(idx_type_name(h.type_code)) + ")");
}

/// Payload size announced by the header, refused when absurd so a corrupt header cannot
/// make us allocate (or wait for) terabytes.
inline std::uint64_t payload_bytes(const gzip_stream& s, const idx_header& h) {
    if (std::find(h.dims.begin(), h.dims.end(), 0u) != h.dims.end()) return 0;
    std::uint64_t total = idx_element_size(h.type_code);
    for (std::uint32_t d : h.dims) {
        if (total > std::numeric_limits<std::uint64_t>::max() / d)
            s.fail("absurd dimensions " + shape_text(h.dims) + ": the data size overflows 64 bits; the header is corrupt");
        total *= d;
    }
    if (total > max_idx_data_bytes)
        s.fail("absurd dimensions " + shape_text(h.dims) + ": " + std::to_string(total) +
               " bytes of data exceed the limit of 2^34 bytes (16 GiB); the header is probably corrupt");
    if constexpr (sizeof(std::size_t) < sizeof(std::uint64_t)) {
        if (total > std::numeric_limits<std::size_t>::max())
            s.fail("absurd dimensions " + shape_text(h.dims) + ": the data does not fit in this process' memory");
    }
    return total;
}

/// Reads exactly `bytes` of payload, then checks that nothing follows it.
inline std::vector<std::uint8_t> read_payload(gzip_stream& s, const idx_header& h, std::uint64_t bytes) {
    const std::uint64_t start = s.offset();
    const auto truncated = [&](std::uint64_t available) {
        s.fail("truncated data: the header (shape " + shape_text(h.dims) + ", " +
               std::string(idx_type_name(h.type_code)) + ") announces " + std::to_string(bytes) +
               " bytes of data from byte offset " + std::to_string(start) + ", but only " + std::to_string(available) +
               " are available");
    };
    if (auto left = s.remaining(); left && *left < bytes) truncated(*left);

    std::vector<std::uint8_t> data;
    std::size_t have = 0;
    const auto want = static_cast<std::size_t>(bytes);
    while (have < want) {
        // Gzip content size is unknown up front: grow with the data that actually arrives
        // instead of trusting the header with one big allocation.
        const std::size_t target =
            s.compressed() ? std::min(want, std::max(2 * have, std::size_t{1} << 20)) : want;
        data.resize(target);
        have += s.read(data.data() + have, target - have);
        if (have < target) truncated(have);
    }

    const std::uint64_t end = s.offset();
    if (const std::uint64_t extra = s.drain(); extra != 0)
        s.fail("trailing garbage: " + std::to_string(extra) + (extra == 1 ? " unexpected byte" : " unexpected bytes") +
               " after the data, from byte offset " +
               std::to_string(end) + " (the header, shape " + shape_text(h.dims) + ", announces " +
               std::to_string(bytes) + " bytes of data)");
    return data;
}

/// `dir` is the default Fashion-MNIST directory, spelled with or without a trailing slash.
inline bool is_default_fashion_dir(const std::filesystem::path& dir) {
    const auto normal = [](const std::filesystem::path& p) {
        auto n = p.lexically_normal();
        return n.has_filename() ? n : n.parent_path();
    };
    return normal(dir) == normal(default_fashion_mnist_dir);
}

/// `dir/name.gz` when present, else `dir/name`; neither: an error that says how to get them.
inline std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& name,
                                           bool suggest_package) {
    std::error_code ec;
    const auto gz = dir / (name + ".gz");
    if (std::filesystem::exists(gz, ec)) return gz;
    const auto raw = dir / name;
    if (std::filesystem::exists(raw, ec)) return raw;
    std::string msg = "Fashion-MNIST file not found: neither '" + gz.string() + "' nor '" + raw.string() + "' exists";
    if (!std::filesystem::is_directory(dir, ec)) msg += " (the directory '" + dir.string() + "' does not exist)";
    msg += suggest_package ? "; install the data set with `apt-get install dataset-fashion-mnist`"
                           : "; pass the directory that holds the four Fashion-MNIST IDX files";
    throw data_error(msg);
}

}  // namespace detail

/// The IDX file `name` of a data set in `dir`: `dir/name.gz` when present, else `dir/name`.
/// Neither: a `data_error` that says how to get them (the Debian package when `dir` is the
/// default Fashion-MNIST directory). For a program that reads one half of the data set, e.g.
/// `load_idx_bytes(find_idx_file(dir, "t10k-images-idx3-ubyte"), find_idx_file(dir,
/// "t10k-labels-idx1-ubyte"), 10)`.
inline std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& name) {
    return detail::find_idx_file(dir, name, detail::is_default_fashion_dir(dir));
}

inline idx_header read_idx_header(const std::filesystem::path& file) {
    auto s = detail::open_idx(file);
    return detail::read_header(s);
}

inline idx_file read_idx(const std::filesystem::path& file) {
    auto s = detail::open_idx(file);
    idx_file f;
    f.header = detail::read_header(s);
    f.data = detail::read_payload(s, f.header, detail::payload_bytes(s, f.header));
    return f;
}

namespace detail {

/// The validated image payload of an IDX file and its [N, H, W, C] shape.
struct idx_image_payload {
    std::array<std::size_t, 4> shape{};
    std::vector<std::uint8_t> bytes;
};

inline idx_image_payload read_image_payload(const std::filesystem::path& file) {
    auto s = detail::open_idx(file);
    const idx_header h = detail::read_header(s);
    detail::require_type(s, h, idx_ubyte, "images");
    if (h.dims.size() != 3 && h.dims.size() != 4)
        s.fail("wrong number of dimensions: images need 3 (N, H, W) or 4 (N, H, W, C), but the header declares " +
               std::to_string(h.dims.size()) + " (shape " + detail::shape_text(h.dims) + ")");
    for (std::size_t i = 1; i < h.dims.size(); ++i)
        if (h.dims[i] == 0)
            s.fail("absurd dimensions " + detail::shape_text(h.dims) + ": an image dimension is 0");
    const std::uint64_t payload = detail::payload_bytes(s, h);
    // With N = 0 there is no data to bound the image size, yet the tensor's strides are
    // products of the image dimensions: refuse images larger than the data limit.
    std::uint64_t image_bytes = 1;
    for (std::size_t i = 1; i < h.dims.size(); ++i) {
        image_bytes *= h.dims[i];  // each step stays below 2^34 * 2^32, no overflow
        if (image_bytes > max_idx_data_bytes)
            s.fail("absurd dimensions " + detail::shape_text(h.dims) +
                   ": one image would exceed the limit of 2^34 bytes (16 GiB); the header is probably corrupt");
    }
    idx_image_payload p;
    p.bytes = detail::read_payload(s, h, payload);
    p.shape = {h.dims[0], h.dims[1], h.dims[2], h.dims.size() == 4 ? h.dims[3] : 1u};
    return p;
}

}  // namespace detail

inline xt::xtensor<float, 4> read_idx_images(const std::filesystem::path& file) {
    const auto p = detail::read_image_payload(file);
    xt::xtensor<float, 4> images(p.shape);
    float* out = images.data();
    // Division, not multiplication by 1/255, so that every value is the nearest float to v/255.
    for (std::size_t i = 0; i < p.bytes.size(); ++i) out[i] = pixel_value(p.bytes[i]);
    return images;
}

inline xt::xtensor<std::uint8_t, 4> read_idx_image_bytes(const std::filesystem::path& file) {
    auto p = detail::read_image_payload(file);
    xt::xtensor<std::uint8_t, 4> images(p.shape);
    std::copy(p.bytes.begin(), p.bytes.end(), images.data());
    return images;
}
inline xt::xtensor<std::int32_t, 1> read_idx_labels(const std::filesystem::path& file, std::size_t num_classes) {
    if (num_classes == 0) throw data_error("IDX file '" + file.string() + "': cannot read labels for 0 classes");
    auto s = detail::open_idx(file);
    const idx_header h = detail::read_header(s);
    detail::require_type(s, h, idx_ubyte, "labels");
    if (h.dims.size() != 1)
        s.fail("wrong number of dimensions: labels need 1 (N), but the header declares " + std::to_string(h.dims.size()) +
               " (shape " + detail::shape_text(h.dims) + ")");
    const auto bytes = detail::read_payload(s, h, detail::payload_bytes(s, h));

    xt::xtensor<std::int32_t, 1> labels(std::array<std::size_t, 1>{bytes.size()});
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] >= num_classes)
            s.fail("label out of range: record " + std::to_string(i) + " (byte offset " +
                   std::to_string(h.size_bytes() + i) + ") holds " + std::to_string(bytes[i]) + ", but with " +
                   std::to_string(num_classes) + " classes labels must be in 0.." + std::to_string(num_classes - 1));
        labels(i) = bytes[i];
    }
    return labels;
}

namespace detail {
/// An images file and its labels file as `Data` (`dataset` or `byte_dataset`), the images read
/// by `read_images`. Labels first: the file is small, so a bad one fails before the images
/// are inflated.
template <typename Data, typename ReadImages>
Data load_idx_as(const std::filesystem::path& images, const std::filesystem::path& labels, std::size_t num_classes,
                 ReadImages&& read_images) {
    Data d;
    d.labels = read_idx_labels(labels, num_classes);
    d.images = read_images(images);
    d.num_classes = num_classes;
    if (d.images.shape()[0] != d.labels.shape()[0])
        throw data_error("mismatched counts: images file '" + images.string() + "' holds " +
                         std::to_string(d.images.shape()[0]) + " images but labels file '" + labels.string() +
                         "' holds " + std::to_string(d.labels.shape()[0]) + " labels");
    return d;
}
}  // namespace detail

inline dataset load_idx(const std::filesystem::path& images, const std::filesystem::path& labels,
                        std::size_t num_classes) {
    return detail::load_idx_as<dataset>(images, labels, num_classes,
                                        [](const std::filesystem::path& f) { return read_idx_images(f); });
}

inline byte_dataset load_idx_bytes(const std::filesystem::path& images, const std::filesystem::path& labels,
                                   std::size_t num_classes) {
    return detail::load_idx_as<byte_dataset>(images, labels, num_classes,
                                             [](const std::filesystem::path& f) { return read_idx_image_bytes(f); });
}

namespace detail {

/// Both halves of Fashion-MNIST from `dir`, each read by `load(images, labels)`.
template <typename Halves, typename Load>
Halves load_fashion_mnist_with(const std::filesystem::path& dir, Load load) {
    const bool suggest = detail::is_default_fashion_dir(dir);
    // Find all four files before reading any, so a missing one is reported at once.
    const auto train_images = detail::find_idx_file(dir, "train-images-idx3-ubyte", suggest);
    const auto train_labels = detail::find_idx_file(dir, "train-labels-idx1-ubyte", suggest);
    const auto test_images = detail::find_idx_file(dir, "t10k-images-idx3-ubyte", suggest);
    const auto test_labels = detail::find_idx_file(dir, "t10k-labels-idx1-ubyte", suggest);
    Halves t;
    t.train = load(train_images, train_labels);
    t.test = load(test_images, test_labels);
    const auto& a = t.train.images.shape();
    const auto& b = t.test.images.shape();
    if (a[1] != b[1] || a[2] != b[2] || a[3] != b[3])
        throw data_error("Fashion-MNIST in '" + dir.string() + "': training images are " + std::to_string(a[1]) + "x" +
                         std::to_string(a[2]) + "x" + std::to_string(a[3]) + " but test images are " +
                         std::to_string(b[1]) + "x" + std::to_string(b[2]) + "x" + std::to_string(b[3]));
    return t;
}

}  // namespace detail

inline byte_train_test load_fashion_mnist_bytes(const std::filesystem::path& dir) {
    return detail::load_fashion_mnist_with<byte_train_test>(
        dir, [](const auto& images, const auto& labels) { return load_idx_bytes(images, labels, 10); });
}

inline train_test load_fashion_mnist(const std::filesystem::path& dir) {
    return detail::load_fashion_mnist_with<train_test>(
        dir, [](const auto& images, const auto& labels) { return load_idx(images, labels, 10); });
}

}  // namespace staticnet::data
