#pragma once
/// @file
/// Image folders: `dir/<class name>/*.png|jpg|jpeg|bmp`, one folder per class (the layout
/// of Keras's `image_dataset_from_directory`), read into a `dataset`.
///
/// Class names are the sub-folders' names sorted (byte order); a label is the index of its
/// class. A class folder's images are read from its sub-folders too, at any depth (as Keras
/// does), so `cats/indoor/1.png` is a cat; samples come class by class, files sorted by their
/// path, so a folder always gives the same data set. Files with other extensions, and hidden
/// files and folders, are ignored. Images are decoded by stb_image and converted to the
/// sample's channels (grayscale <-> RGB, alpha dropped); an image of another size is an error
/// naming the file and both sizes, unless `resize` asks for a bilinear resize. What was
/// converted or resized is counted in an `image_folder_report`, for a program to say so. Pixels are v / 255 like the IDX reader's. An unreadable or corrupt
/// image (PNG chunk checksums are verified, which stb_image skips), an empty class folder
/// or a folder without classes throws `staticnet::data_error` naming the path.
///
/// This header is optional and not part of `staticnet.hpp`: it needs stb_image (Debian:
/// `libstb-dev`). stb_image is a header of declarations whose implementation must be
/// compiled exactly once in a program. Rather than compiling a private copy into every
/// translation unit that includes us (`STB_IMAGE_STATIC`: ~7,000 lines of C per unit, and
/// a clash with a program that uses stb_image itself), we follow stb's own rule. Either
///  - link a library that has it: Debian's `libstb` (`-lstb`, `pkg-config --libs stb`;
///    what our CMake build does), or
///  - `#define STATICNET_IMAGE_IMPLEMENTATION` before including this header in exactly one
///    .cpp file of the program (it defines `STB_IMAGE_IMPLEMENTATION` there).
/// A program that already compiles stb_image's implementation itself needs neither.

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/compat.hpp"
#include "../core/crc32.hpp"
#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/shape.hpp"
#include "byte_dataset.hpp"
#include "dataset.hpp"

#if defined(STATICNET_IMAGE_IMPLEMENTATION) && !defined(STB_IMAGE_IMPLEMENTATION)
#define STB_IMAGE_IMPLEMENTATION
#endif
// Debian installs it as <stb/stb_image.h>; vcpkg, Conan and a copied file as <stb_image.h>.
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#elif __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#error "staticnet/data/image_folder.hpp needs stb_image (Debian: apt-get install libstb-dev)"
#endif

namespace staticnet::data {

// ===================================================================== public API

/// How `load_image_folder` reads a folder.
struct image_folder_options {
    /// The (H, W, C) shape of a sample (C = 1 grayscale, 3 RGB); without it, the first
    /// image's size, and C = 1 when it is grayscale, else 3.
    std::optional<shape> sample_shape{};
    /// Resize images of another size to `sample_shape` (bilinear) instead of refusing them.
    bool resize = false;
    /// The classes the folder must have, in label order (a test set's folder read with the
    /// training set's `class_names`, so that labels mean the same); empty: whatever it has.
    std::vector<std::string> classes{};
    /// How the caller's user asks for a resize (e.g. "--resize"), named in the error for an
    /// image of another size; empty: the message says "ask for a resize".
    std::string resize_flag{};
};

/// What `load_image_folder` did to the images, beyond decoding them.
struct image_folder_report {
    std::size_t images = 0;           ///< images read
    std::size_t in_sub_folders = 0;   ///< of those, found below a class folder's top level
    std::size_t colour_to_grey = 0;   ///< colour images (3 or 4 channels) read as grayscale
    std::size_t grey_to_colour = 0;   ///< grayscale images (1 or 2 channels) read as colour
    std::size_t alpha_dropped = 0;    ///< images whose alpha channel was dropped
    std::size_t resized = 0;          ///< images of another size, resized to the samples'
    shape sample_shape{};             ///< the (H, W, C) of every sample
};

/// The image file extensions read (compared without case).
inline constexpr std::array<std::string_view, 4> image_extensions{".png", ".jpg", ".jpeg", ".bmp"};

/// Reads `dir/<class>/<image>` into a `dataset` whose `class_names` are the classes.
[[nodiscard]] inline dataset load_image_folder(const std::filesystem::path& dir,
                                               const image_folder_options& options = {},
                                               image_folder_report* report = nullptr);

/// `load_image_folder` keeping the decoded pixels as bytes (`byte_dataset`).
[[nodiscard]] inline byte_dataset load_image_folder_bytes(const std::filesystem::path& dir,
                                                          const image_folder_options& options = {},
                                                          image_folder_report* report = nullptr);

/// One decoded image: H x W x C bytes, row-major, channels last.
struct decoded_image {
    std::size_t height = 0, width = 0, channels = 0;
    std::size_t file_channels = 0;  ///< the channels stored in the file (before any conversion)
    std::vector<std::uint8_t> pixels;
};

/// Decodes an image file held in memory to `channels` channels (1..4; 0 keeps the file's),
/// checking PNG chunk checksums first. Throws `data_error` naming `file`.
[[nodiscard]] inline decoded_image decode_image(std::span<const std::uint8_t> bytes, const std::string& file,
                                                std::size_t channels = 0);

// ===================================================================== implementation

namespace detail {

/// Verifies the signature and every chunk's CRC-32 of a PNG up to IEND: stb_image does not,
/// and a flipped bit in compressed pixels often still decodes, into a wrong image.
inline void check_png(std::span<const std::uint8_t> b, const std::string& file) {
    const auto fail = [&](const std::string& problem) -> void {
        throw data_error("image '" + file + "': corrupt PNG: " + problem);
    };
    std::size_t at = 8;
    for (;;) {
        if (b.size() - at < 12)
            fail("truncated: the file ends at byte offset " + std::to_string(b.size()) + " before the IEND chunk");
        const std::uint32_t len = std::uint32_t{b[at]} << 24 | std::uint32_t{b[at + 1]} << 16 |
                                  std::uint32_t{b[at + 2]} << 8 | std::uint32_t{b[at + 3]};
        if (len > b.size() - at - 12)
            fail("truncated: the chunk at byte offset " + std::to_string(at) + " announces " + std::to_string(len) +
                 " bytes, but the file ends at byte offset " + std::to_string(b.size()));
        const std::string type(reinterpret_cast<const char*>(b.data() + at + 4), 4);
        const std::size_t crc_at = at + 8 + len;
        const std::uint32_t stored = std::uint32_t{b[crc_at]} << 24 | std::uint32_t{b[crc_at + 1]} << 16 |
                                     std::uint32_t{b[crc_at + 2]} << 8 | std::uint32_t{b[crc_at + 3]};
        if (::staticnet::detail::crc32(b.data() + at + 4, 4 + std::size_t{len}) != stored)
            fail("checksum mismatch in the chunk at byte offset " + std::to_string(at));
        if (type == "IEND") return;
        at = crc_at + 4;
    }
}

/// Bilinear resize of H x W x C bytes (pixel centres aligned, as most libraries do).
inline std::vector<std::uint8_t> resize_bilinear(const decoded_image& in, std::size_t height, std::size_t width) {
    std::vector<std::uint8_t> out(height * width * in.channels);
    const double sy = static_cast<double>(in.height) / static_cast<double>(height);
    const double sx = static_cast<double>(in.width) / static_cast<double>(width);
    for (std::size_t y = 0; y < height; ++y) {
        const double fy = std::clamp((static_cast<double>(y) + 0.5) * sy - 0.5, 0.0, static_cast<double>(in.height - 1));
        const auto y0 = static_cast<std::size_t>(fy);
        const std::size_t y1 = std::min(y0 + 1, in.height - 1);
        const double wy = fy - static_cast<double>(y0);
        for (std::size_t x = 0; x < width; ++x) {
            const double fx = std::clamp((static_cast<double>(x) + 0.5) * sx - 0.5, 0.0, static_cast<double>(in.width - 1));
            const auto x0 = static_cast<std::size_t>(fx);
            const std::size_t x1 = std::min(x0 + 1, in.width - 1);
            const double wx = fx - static_cast<double>(x0);
            for (std::size_t c = 0; c < in.channels; ++c) {
                const auto at = [&](std::size_t yy, std::size_t xx) {
                    return static_cast<double>(in.pixels[(yy * in.width + xx) * in.channels + c]);
                };
                const double v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) +
                                 wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
                out[(y * width + x) * in.channels + c] = static_cast<std::uint8_t>(std::clamp(v + 0.5, 0.0, 255.0));
            }
        }
    }
    return out;
}

inline bool is_image_file(const std::filesystem::path& p) {
    std::string ext = p.extension().string();
    for (char& c : ext) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return std::find(image_extensions.begin(), image_extensions.end(), ext) != image_extensions.end();
}

}  // namespace detail

inline decoded_image decode_image(std::span<const std::uint8_t> bytes, const std::string& file, std::size_t channels) {
    static constexpr std::array<std::uint8_t, 8> png_signature{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (channels > 4) throw data_error("image '" + file + "': " + std::to_string(channels) + " channels requested (1 to 4)");
    if (bytes.size() >= 8 && std::equal(png_signature.begin(), png_signature.end(), bytes.begin()))
        detail::check_png(bytes, file);
    if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        throw data_error("image '" + file + "': the file is larger than 2 GiB");
    int w = 0, h = 0, n = 0;
    stbi_uc* p = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, static_cast<int>(channels));
    if (p == nullptr)
        throw data_error("image '" + file + "': cannot decode it (" +
                         std::string(stbi_failure_reason() ? stbi_failure_reason() : "no reason given") +
                         "); the file is corrupt, truncated or not a PNG, JPEG or BMP image");
    decoded_image img;
    img.height = static_cast<std::size_t>(h);
    img.width = static_cast<std::size_t>(w);
    img.channels = channels != 0 ? channels : static_cast<std::size_t>(n);
    img.file_channels = static_cast<std::size_t>(n);
    img.pixels.assign(p, p + img.height * img.width * img.channels);
    stbi_image_free(p);
    return img;
}

namespace detail {
template <typename Data>
Data load_image_folder_as(const std::filesystem::path& dir, const image_folder_options& options,
                          image_folder_report* report);
}  // namespace detail

inline dataset load_image_folder(const std::filesystem::path& dir, const image_folder_options& options,
                                 image_folder_report* report) {
    return detail::load_image_folder_as<dataset>(dir, options, report);
}

inline byte_dataset load_image_folder_bytes(const std::filesystem::path& dir, const image_folder_options& options,
                                            image_folder_report* report) {
    return detail::load_image_folder_as<byte_dataset>(dir, options, report);
}

namespace detail {

template <typename Data>
Data load_image_folder_as(const std::filesystem::path& dir, const image_folder_options& options,
                          image_folder_report* report) {
    namespace fs = std::filesystem;
    const auto fail = [&](const std::string& problem) -> void {
        throw data_error("image folder '" + dir.string() + "': " + problem);
    };
    std::error_code ec;
    const auto st = fs::status(dir, ec);
    if (st.type() == fs::file_type::not_found) fail("the folder does not exist");
    if (!fs::is_directory(st)) fail("not a folder");

    const auto sorted_entries = [&](const fs::path& folder) {
        std::vector<fs::path> entries;
        std::error_code list_ec;
        fs::directory_iterator it(folder, list_ec);
        for (; !list_ec && it != fs::directory_iterator{}; it.increment(list_ec)) entries.push_back(it->path());
        if (list_ec) throw data_error("image folder '" + folder.string() + "': cannot list it: " + list_ec.message());
        std::sort(entries.begin(), entries.end());
        return entries;
    };

    std::vector<std::string> classes;
    // Hidden folders (".ipynb_checkpoints", ".git") are not classes.
    for (const auto& e : sorted_entries(dir))
        if (fs::is_directory(e, ec) && !e.filename().string().starts_with('.')) classes.push_back(e.filename().string());
    if (classes.empty())
        fail("it holds no class folders (expected one sub-folder of images per class, e.g. '" +
             (dir / "<class name>" / "image.png").string() + "')");
    if (!options.classes.empty() && classes != options.classes) {
        std::string want, have;
        for (const auto& c : options.classes) want += (want.empty() ? "" : ", ") + c;
        for (const auto& c : classes) have += (have.empty() ? "" : ", ") + c;
        fail("its class folders are {" + have + "} but {" + want + "} were expected (those of the other data set)");
    }

    // A class's images, at any depth below its folder (as Keras reads them), sorted by path;
    // hidden entries are skipped, and a hidden folder with all it holds.
    const auto images_below = [&](const fs::path& folder, std::vector<fs::path>& out) {
        std::vector<fs::path> pending{folder};
        while (!pending.empty()) {
            const fs::path here = pending.back();
            pending.pop_back();
            for (const auto& e : sorted_entries(here)) {
                if (e.filename().string().starts_with('.')) continue;
                if (fs::is_directory(e, ec)) pending.push_back(e);
                else if (detail::is_image_file(e)) out.push_back(e);
            }
        }
        std::sort(out.begin(), out.end());
    };
    std::vector<std::pair<fs::path, std::int32_t>> files;
    std::size_t in_sub_folders = 0;
    for (std::size_t k = 0; k < classes.size(); ++k) {
        const fs::path folder = dir / classes[k];
        std::vector<fs::path> found;
        images_below(folder, found);
        if (found.empty())
            throw data_error("image folder '" + folder.string() +
                             "': the class folder holds no images (.png, .jpg, .jpeg or .bmp), nor do its sub-folders");
        for (auto& f : found) {
            in_sub_folders += f.parent_path() != folder;
            files.emplace_back(std::move(f), static_cast<std::int32_t>(k));
        }
    }
    image_folder_report counts;
    counts.images = files.size();
    counts.in_sub_folders = in_sub_folders;

    std::optional<shape> sample = options.sample_shape;
    if (sample && (!sample->is_image() || sample->channels() < 1 || sample->channels() > 4 || sample->height() == 0 ||
                   sample->width() == 0))
        fail("the sample shape must be an image shape (height, width, 1 to 4 channels)");
    if (options.resize && !sample) fail("resizing needs the sample shape to resize to");

    Data d;
    d.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{files.size()});
    std::size_t sample_size = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const std::string name = files[i].first.string();
        const auto bytes = ::staticnet::detail::read_file_bytes<data_error>(files[i].first);
        decoded_image img = decode_image(bytes, name, sample ? sample->channels() : 0);
        if (!sample) {
            // Grayscale (with or without alpha) stays one channel; colour becomes RGB.
            const std::size_t c = img.channels <= 2 ? 1 : 3;
            sample = shape{img.height, img.width, c};
            if (c != img.channels) img = decode_image(bytes, name, c);
        }
        if (img.height != sample->height() || img.width != sample->width()) {
            if (!options.resize)
                throw data_error("image '" + name + "' is " + std::to_string(img.height) + "x" + std::to_string(img.width) +
                                 " (height x width) but the samples are " + std::to_string(sample->height()) + "x" +
                                 std::to_string(sample->width()) + "; resize the images or ask for a resize" +
                                 (options.resize_flag.empty() ? std::string() : " (" + options.resize_flag + ")"));
            img.pixels = detail::resize_bilinear(img, sample->height(), sample->width());
            ++counts.resized;
        }
        const std::size_t stored = img.file_channels, wanted = sample->channels();
        counts.colour_to_grey += stored >= 3 && wanted <= 2;
        counts.grey_to_colour += stored <= 2 && wanted >= 3;
        counts.alpha_dropped += (stored == 2 || stored == 4) && (wanted == 1 || wanted == 3);
        if (i == 0) {
            d.images = decltype(d.images)(
                std::array<std::size_t, 4>{files.size(), sample->height(), sample->width(), sample->channels()});
            sample_size = sample->height() * sample->width() * sample->channels();
        }
        auto* out = d.images.data() + i * sample_size;
        if constexpr (std::same_as<Data, byte_dataset>)
            std::copy_n(img.pixels.data(), sample_size, out);
        else
            for (std::size_t j = 0; j < sample_size; ++j) out[j] = pixel_value(img.pixels[j]);
        d.labels(i) = files[i].second;
    }
    d.num_classes = classes.size();
    d.class_names = std::move(classes);
    counts.sample_shape = *sample;
    if (report != nullptr) *report = counts;
    return d;
}

}  // namespace detail

}  // namespace staticnet::data
