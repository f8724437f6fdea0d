#pragma once
/// @file
/// NumPy `.npy` reader: images and labels saved with `numpy.save` into a `dataset`.
///
/// A `.npy` file is the 6 bytes "\x93NUMPY", a version (1.0, 2.0 or 3.0), the length of a
/// header (uint16 in version 1, uint32 later), the header itself (a Python dict literal
/// `{'descr': '|u1', 'fortran_order': False, 'shape': (60000, 28, 28), }` padded with spaces
/// and ending with a newline), then the elements in C order.
///
/// Images are uint8 (scaled by v / 255, like the IDX reader) or float32 in [0, 1], of shape
/// (N, H, W) or (N, H, W, C). Labels are any integer type of shape (N). Only little-endian
/// (or byte-sized) C-order arrays are read. The parser is our own, small and strict (the
/// header is untrusted input; tests/fuzz feeds it garbage): every problem throws
/// `staticnet::data_error` naming the file and, where it applies, the byte offset.

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "../core/compat.hpp"
#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "byte_dataset.hpp"
#include "dataset.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// The header of a `.npy` file.
struct npy_header {
    std::string descr;                   ///< NumPy's type string as written: "|u1", "<f4", "<i8", ...
    std::vector<std::uint64_t> shape;    ///< outermost first; empty for a scalar
    std::size_t data_offset = 0;         ///< byte offset of the first element

    /// Bytes of one element (from `descr`).
    [[nodiscard]] std::size_t element_size() const;
    /// Number of elements: the product of `shape` (1 for a scalar).
    [[nodiscard]] std::uint64_t elements() const;
};

/// A whole `.npy` file: its header and its elements as stored (little-endian).
struct npy_array {
    npy_header header;
    std::vector<std::uint8_t> data;
};

/// Largest file the readers accept (16 GiB), like the IDX reader's limit.
inline constexpr std::uint64_t max_npy_data_bytes = std::uint64_t{1} << 34;

/// Reads and validates a whole `.npy` file (header, then exactly the announced data).
[[nodiscard]] inline npy_array read_npy(const std::filesystem::path& file);

/// Reads images, uint8 (v / 255) or float32 (each in [0, 1]), of shape (N, H, W) or
/// (N, H, W, C), as an [N, H, W, C] tensor (C = 1 for 3-D arrays).
[[nodiscard]] inline xt::xtensor<float, 4> read_npy_images(const std::filesystem::path& file);

/// Reads uint8 images as stored (bytes, value v meaning v / 255); float32 files are an error.
[[nodiscard]] inline xt::xtensor<std::uint8_t, 4> read_npy_image_bytes(const std::filesystem::path& file);

/// Reads integer labels of shape (N); every label must be in [0, num_classes).
[[nodiscard]] inline xt::xtensor<std::int32_t, 1> read_npy_labels(const std::filesystem::path& file,
                                                                  std::size_t num_classes);

/// Reads an image array and a label array into a `dataset`, checking that the counts match.
/// `num_classes` = 0 takes the largest label + 1.
[[nodiscard]] inline dataset load_npy(const std::filesystem::path& images, const std::filesystem::path& labels,
                                      std::size_t num_classes = 0);

/// `load_npy` keeping uint8 pixels as bytes (`byte_dataset`); float32 images are an error.
[[nodiscard]] inline byte_dataset load_npy_bytes(const std::filesystem::path& images,
                                                 const std::filesystem::path& labels, std::size_t num_classes = 0);

// ===================================================================== implementation

namespace detail {

/// Throws "NumPy file '<file>': <problem>".
[[noreturn]] inline void npy_fail(const std::string& file, const std::string& problem) {
    throw data_error("NumPy file '" + file + "': " + problem);
}

/// Element kind and size of a type string; nothing for what we do not read (big-endian,
/// strings, objects, complex, ...).
struct npy_type {
    char kind = 0;  // 'u', 'i', 'f', 'b'
    std::size_t size = 0;
};

inline bool parse_npy_type(std::string_view descr, npy_type& out) {
    if (descr.size() < 3) return false;
    const char order = descr[0];
    const char kind = descr[1];
    std::size_t size = 0;
    const auto [end, ec] = std::from_chars(descr.data() + 2, descr.data() + descr.size(), size);
    if (ec != std::errc{} || end != descr.data() + descr.size()) return false;
    if (kind != 'u' && kind != 'i' && kind != 'f' && kind != 'b') return false;
    if (size != 1 && size != 2 && size != 4 && size != 8) return false;
    if (kind == 'f' && size == 1) return false;
    if (kind == 'b' && size != 1) return false;
    // Byte-sized types are written with '|' (no order); wider ones must be little-endian.
    if (size == 1 ? (order != '|' && order != '<' && order != '=') : order != '<') return false;
    out = {kind, size};
    return true;
}

/// Reads the dict literal of the header: exactly the keys 'descr', 'fortran_order' and
/// 'shape', once each, in any order, as NumPy writes them.
class npy_header_parser {
public:
    npy_header_parser(std::string_view text, std::size_t text_offset, const std::string& file)
        : s_(text), base_(text_offset), file_(file) {}

    npy_header parse() {
        npy_header h;
        bool have_descr = false, have_order = false, have_shape = false, fortran = false;
        skip_space();
        expect('{');
        for (;;) {
            skip_space();
            if (peek() == '}') break;
            const std::size_t key_at = at_;
            const std::string key = quoted();
            skip_space();
            expect(':');
            skip_space();
            const auto once = [&](bool& seen) {
                if (seen) fail_at(key_at, "the header gives '" + key + "' twice");
                seen = true;
            };
            if (key == "descr") {
                once(have_descr);
                h.descr = quoted();
            } else if (key == "fortran_order") {
                once(have_order);
                fortran = boolean();
            } else if (key == "shape") {
                once(have_shape);
                h.shape = tuple();
            } else {
                fail_at(key_at, "unexpected key '" + key + "' in the header (NumPy writes 'descr', 'fortran_order', 'shape')");
            }
            skip_space();
            if (peek() == ',') {
                ++at_;
                continue;
            }
            skip_space();
            if (peek() != '}') fail_at(at_, "expected ',' or '}' in the header");
        }
        ++at_;  // '}'
        skip_space();
        if (at_ != s_.size()) fail_at(at_, "unexpected characters after the header's dict");
        if (!have_descr || !have_order || !have_shape)
            fail_at(0, std::string("the header lacks the key '") + (!have_descr ? "descr" : !have_order ? "fortran_order" : "shape") + "'");
        if (fortran)
            npy_fail(file_, "the array is in Fortran order (fortran_order: True); save it in C order "
                            "(numpy.ascontiguousarray) to read it");
        npy_type t;
        if (!parse_npy_type(h.descr, t))
            npy_fail(file_, "unsupported dtype '" + h.descr +
                                "': staticnet reads little-endian integers, floats and booleans only");
        return h;
    }

private:
    [[noreturn]] void fail_at(std::size_t at, const std::string& problem) const {
        npy_fail(file_, "malformed header at byte offset " + std::to_string(base_ + at) + ": " + problem);
    }
    char peek() const { return at_ < s_.size() ? s_[at_] : '\0'; }
    void skip_space() {
        while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n')) ++at_;
    }
    void expect(char c) {
        if (peek() != c) fail_at(at_, std::string("expected '") + c + "'");
        ++at_;
    }
    std::string quoted() {
        const char q = peek();
        if (q != '\'' && q != '"') fail_at(at_, "expected a quoted string");
        const std::size_t close = s_.find(q, at_ + 1);
        if (close == std::string_view::npos) fail_at(at_, "unterminated string");
        std::string v(s_.substr(at_ + 1, close - at_ - 1));
        at_ = close + 1;
        return v;
    }
    bool boolean() {
        if (s_.substr(at_, 4) == "True") {
            at_ += 4;
            return true;
        }
        if (s_.substr(at_, 5) == "False") {
            at_ += 5;
            return false;
        }
        fail_at(at_, "expected True or False");
    }
    std::vector<std::uint64_t> tuple() {
        expect('(');
        std::vector<std::uint64_t> dims;
        for (;;) {
            skip_space();
            if (peek() == ')') break;
            std::uint64_t v = 0;
            const char* begin = s_.data() + at_;
            const auto [end, ec] = std::from_chars(begin, s_.data() + s_.size(), v);
            if (ec != std::errc{} || end == begin) fail_at(at_, "expected a dimension (a whole number) in 'shape'");
            at_ += static_cast<std::size_t>(end - begin);
            if (dims.size() == 32) fail_at(at_, "more than 32 dimensions");
            dims.push_back(v);
            skip_space();
            if (peek() == ',') {
                ++at_;
                continue;
            }
            if (peek() != ')') fail_at(at_, "expected ',' or ')' in 'shape'");
        }
        ++at_;
        return dims;
    }

    std::string_view s_;
    std::size_t base_;
    std::size_t at_ = 0;
    const std::string& file_;
};

/// Parses a whole `.npy` file held in memory; `file` names it in messages.
inline npy_array parse_npy(std::span<const std::uint8_t> b, const std::string& file) {
    static constexpr std::array<std::uint8_t, 6> magic{0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (b.size() < 10) npy_fail(file, "truncated header: the file has " + std::to_string(b.size()) + " bytes, fewer than the 10 of the fixed part");
    if (!std::equal(magic.begin(), magic.end(), b.begin()))
        npy_fail(file, "wrong magic: bytes 0..5 are not \"\\x93NUMPY\"; this is not a .npy file");
    const std::uint8_t major = b[6];
    if (major < 1 || major > 3)
        npy_fail(file, "unknown format version " + std::to_string(major) + "." + std::to_string(b[7]) +
                           " at byte offset 6 (this reader knows 1.0, 2.0 and 3.0)");
    std::size_t header_len = 0, text_at = 0;
    if (major == 1) {
        header_len = ::staticnet::detail::load_le<std::uint16_t>(b.data() + 8);
        text_at = 10;
    } else {
        if (b.size() < 12) npy_fail(file, "truncated header: the file ends before the 4-byte header length at byte offset 8");
        header_len = ::staticnet::detail::load_le<std::uint32_t>(b.data() + 8);
        text_at = 12;
    }
    if (header_len > b.size() - text_at)
        npy_fail(file, "truncated header: it announces " + std::to_string(header_len) + " bytes from byte offset " +
                           std::to_string(text_at) + " but the file has only " + std::to_string(b.size() - text_at));
    const std::string_view text(reinterpret_cast<const char*>(b.data() + text_at), header_len);
    if (text.empty() || text.back() != '\n')
        npy_fail(file, "malformed header: it must end with a newline at byte offset " + std::to_string(text_at + header_len - (header_len ? 1 : 0)));
    for (std::size_t i = 0; i < text.size(); ++i)
        if (static_cast<unsigned char>(text[i]) >= 0x80 || (text[i] < 0x20 && text[i] != '\n' && text[i] != '\t'))
            npy_fail(file, "malformed header: a non-ASCII or control byte at byte offset " + std::to_string(text_at + i));

    npy_array a;
    a.header = npy_header_parser(text, text_at, file).parse();
    a.header.data_offset = text_at + header_len;

    std::uint64_t bytes = a.header.element_size();
    for (const std::uint64_t d : a.header.shape) {
        if (d != 0 && bytes > max_npy_data_bytes / d)
            npy_fail(file, "absurd shape " + ::staticnet::detail::shape_text(a.header.shape) +
                               ": the data would exceed the limit of 2^34 bytes (16 GiB); the header is probably corrupt");
        bytes *= d;
    }
    const std::uint64_t have = b.size() - a.header.data_offset;
    if (have < bytes)
        npy_fail(file, "truncated data: the header (shape " + ::staticnet::detail::shape_text(a.header.shape) + ", " +
                           a.header.descr + ") announces " + std::to_string(bytes) + " bytes from byte offset " +
                           std::to_string(a.header.data_offset) + ", but only " + std::to_string(have) + " are available");
    if (have > bytes)
        npy_fail(file, "trailing garbage: " + std::to_string(have - bytes) + " unexpected bytes from byte offset " +
                           std::to_string(a.header.data_offset + bytes));
    a.data.assign(b.begin() + static_cast<std::ptrdiff_t>(a.header.data_offset), b.end());
    return a;
}

/// Images from a parsed array as floats (see read_npy_images) or, for Pixel = uint8, as the
/// stored bytes.
template <typename Pixel>
xt::xtensor<Pixel, 4> npy_images_as(const npy_array& a, const std::string& file) {
    const auto& h = a.header;
    npy_type t;
    parse_npy_type(h.descr, t);  // valid: parse_npy checked it
    if (!((t.kind == 'u' && t.size == 1) || (t.kind == 'f' && t.size == 4)))
        npy_fail(file, "wrong dtype for images: '" + h.descr + "'; images must be uint8 ('|u1') or float32 ('<f4')");
    if (h.shape.size() != 3 && h.shape.size() != 4)
        npy_fail(file, "wrong shape for images: " + ::staticnet::detail::shape_text(h.shape) +
                           " has " + std::to_string(h.shape.size()) + " dimensions; images need (N, H, W) or (N, H, W, C)");
    for (std::size_t i = 1; i < h.shape.size(); ++i)
        if (h.shape[i] == 0) npy_fail(file, "wrong shape for images: " + ::staticnet::detail::shape_text(h.shape) + " has an empty image dimension");
    // With N = 0 the data does not bound the image size; the strides are products of it.
    std::uint64_t image = 1;
    for (std::size_t i = 1; i < h.shape.size(); ++i) {
        if (image > max_npy_data_bytes / h.shape[i])
            npy_fail(file, "absurd shape " + ::staticnet::detail::shape_text(h.shape) + ": one image exceeds 2^34 elements");
        image *= h.shape[i];
    }
    const std::array<std::size_t, 4> shape{static_cast<std::size_t>(h.shape[0]), static_cast<std::size_t>(h.shape[1]),
                                           static_cast<std::size_t>(h.shape[2]),
                                           h.shape.size() == 4 ? static_cast<std::size_t>(h.shape[3]) : 1u};
    if constexpr (std::is_same_v<Pixel, std::uint8_t>) {
        if (t.kind != 'u')
            npy_fail(file, "float32 images ('" + h.descr + "') cannot be kept as bytes; read them with load_npy");
        xt::xtensor<std::uint8_t, 4> images(shape);
        std::copy_n(a.data.data(), images.size(), images.data());
        return images;
    } else {
        xt::xtensor<float, 4> images(shape);
        float* out = images.data();
        const std::size_t n = images.size();
        if (t.kind == 'u') {
            for (std::size_t i = 0; i < n; ++i) out[i] = pixel_value(a.data[i]);
        } else {
            for (std::size_t i = 0; i < n; ++i) {
                const float v = ::staticnet::detail::load_le<float>(a.data.data() + 4 * i);
                if (!(v >= 0.0f && v <= 1.0f))  // also refuses NaN
                    npy_fail(file, "pixel value " + std::to_string(v) + " of image " + std::to_string(i / image) +
                                       " (element " + std::to_string(i % image) + ", byte offset " +
                                       std::to_string(h.data_offset + 4 * i) +
                                       ") is outside [0, 1]; float32 images must be scaled to [0, 1]");
                out[i] = v;
            }
        }
        return images;
    }
}

/// Images from a parsed array (see read_npy_images).
inline xt::xtensor<float, 4> npy_images(const npy_array& a, const std::string& file) {
    return npy_images_as<float>(a, file);
}

/// Labels from a parsed array; num_classes = 0 takes the largest label + 1.
inline xt::xtensor<std::int32_t, 1> npy_labels(const npy_array& a, const std::string& file, std::size_t& num_classes) {
    const auto& h = a.header;
    npy_type t;
    parse_npy_type(h.descr, t);
    if (t.kind != 'u' && t.kind != 'i')
        npy_fail(file, "wrong dtype for labels: '" + h.descr + "'; labels must be integers (e.g. '|u1', '<i8')");
    if (h.shape.size() != 1)
        npy_fail(file, "wrong shape for labels: " + ::staticnet::detail::shape_text(h.shape) + " has " +
                           std::to_string(h.shape.size()) + " dimensions; labels need (N)");
    const auto n = static_cast<std::size_t>(h.shape[0]);
    std::vector<std::int64_t> values(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* p = a.data.data() + i * t.size;
        std::int64_t v = 0;
        switch (t.size) {
            case 1: v = t.kind == 'u' ? std::int64_t{*p} : std::int64_t{static_cast<std::int8_t>(*p)}; break;
            case 2: v = t.kind == 'u' ? std::int64_t{::staticnet::detail::load_le<std::uint16_t>(p)}
                                      : std::int64_t{::staticnet::detail::load_le<std::int16_t>(p)}; break;
            case 4: v = t.kind == 'u' ? std::int64_t{::staticnet::detail::load_le<std::uint32_t>(p)}
                                      : std::int64_t{::staticnet::detail::load_le<std::int32_t>(p)}; break;
            default: {
                const auto u = ::staticnet::detail::load_le<std::uint64_t>(p);
                v = t.kind == 'u' && u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                        ? std::numeric_limits<std::int64_t>::max()
                        : static_cast<std::int64_t>(u);
            }
        }
        const std::int64_t limit = num_classes != 0 ? static_cast<std::int64_t>(num_classes)
                                                    : std::int64_t{std::numeric_limits<std::int32_t>::max()};
        if (v < 0 || v >= limit)
            npy_fail(file, "label out of range: label " + std::to_string(i) + " (byte offset " +
                               std::to_string(h.data_offset + i * t.size) + ") is " + std::to_string(v) +
                               (num_classes != 0 ? ", but with " + std::to_string(num_classes) +
                                                       " classes labels must be in 0.." + std::to_string(num_classes - 1)
                                                 : std::string(", but labels must be in 0..2^31-2")));
        values[i] = v;
    }
    if (num_classes == 0) num_classes = values.empty() ? 0 : static_cast<std::size_t>(*std::max_element(values.begin(), values.end())) + 1;
    xt::xtensor<std::int32_t, 1> labels(std::array<std::size_t, 1>{n});
    for (std::size_t i = 0; i < n; ++i) labels(i) = static_cast<std::int32_t>(values[i]);
    return labels;
}

}  // namespace detail

inline std::size_t npy_header::element_size() const {
    detail::npy_type t;
    return detail::parse_npy_type(descr, t) ? t.size : 0;
}

inline std::uint64_t npy_header::elements() const {
    std::uint64_t n = 1;
    for (const std::uint64_t d : shape) n *= d;  // parse_npy bounded the product
    return n;
}

inline npy_array read_npy(const std::filesystem::path& file) {
    const auto bytes = ::staticnet::detail::read_file_bytes<data_error>(file);
    return detail::parse_npy(bytes, file.string());
}

inline xt::xtensor<float, 4> read_npy_images(const std::filesystem::path& file) {
    return detail::npy_images(read_npy(file), file.string());
}

inline xt::xtensor<std::uint8_t, 4> read_npy_image_bytes(const std::filesystem::path& file) {
    return detail::npy_images_as<std::uint8_t>(read_npy(file), file.string());
}

inline xt::xtensor<std::int32_t, 1> read_npy_labels(const std::filesystem::path& file, std::size_t num_classes) {
    if (num_classes == 0) throw data_error("NumPy file '" + file.string() + "': cannot read labels for 0 classes");
    return detail::npy_labels(read_npy(file), file.string(), num_classes);
}

namespace detail {
template <typename Data>
Data load_npy_as(const std::filesystem::path& images, const std::filesystem::path& labels, std::size_t num_classes);
}  // namespace detail

inline dataset load_npy(const std::filesystem::path& images, const std::filesystem::path& labels,
                        std::size_t num_classes) {
    return detail::load_npy_as<dataset>(images, labels, num_classes);
}

inline byte_dataset load_npy_bytes(const std::filesystem::path& images, const std::filesystem::path& labels,
                                   std::size_t num_classes) {
    return detail::load_npy_as<byte_dataset>(images, labels, num_classes);
}

namespace detail {

template <typename Data>
Data load_npy_as(const std::filesystem::path& images, const std::filesystem::path& labels, std::size_t num_classes) {
    Data d;
    // Labels first: the file is small, so a bad one fails before the images are read.
    d.labels = detail::npy_labels(read_npy(labels), labels.string(), num_classes);
    d.images = detail::npy_images_as<typename decltype(d.images)::value_type>(read_npy(images), images.string());
    d.num_classes = num_classes;
    if (d.images.shape()[0] != d.labels.shape()[0])
        throw data_error("mismatched counts: NumPy images file '" + images.string() + "' holds " +
                         std::to_string(d.images.shape()[0]) + " images but labels file '" + labels.string() +
                         "' holds " + std::to_string(d.labels.shape()[0]) + " labels");
    return d;
}

}  // namespace detail

}  // namespace staticnet::data
