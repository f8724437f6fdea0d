// IDX reader: round trips of small hand-made files (raw and gzip) and every malformed input
// the reader must refuse with a message naming the file and the problem.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <staticnet/data/byte_dataset.hpp>
#include <staticnet/data/class_list.hpp>
#include <staticnet/data/idx.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace sd = staticnet::data;
using Catch::Contains;

namespace {

using bytes = std::vector<std::uint8_t>;

// Magic number, big-endian dimensions, then the payload as given.
bytes idx_bytes(std::uint8_t type_code, std::initializer_list<std::uint32_t> dims, const bytes& payload) {
    bytes b{0, 0, type_code, static_cast<std::uint8_t>(dims.size())};
    for (std::uint32_t d : dims)
        for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

void write_raw(const fs::path& p, const bytes& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(out.good());
}

// mode "wb" writes a fresh gzip file, "ab" appends another gzip member.
void write_gz(const fs::path& p, const bytes& b, const char* mode = "wb") {
    gzFile f = gzopen(p.c_str(), mode);
    REQUIRE(f != nullptr);
    if (!b.empty()) REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

bytes read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The 3 images of 4x5 pixels of the round-trip tests: every byte value appears somewhere.
bytes pixels() {
    bytes b(3 * 4 * 5);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 37 % 256);
    b[0] = 0;
    b[1] = 255;
    return b;
}

// The message of the staticnet::data_error that f throws, or a marker that fails any match.
std::string data_error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const staticnet::data_error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("<not a data_error: ") + e.what() + ">";
    }
    return "<no exception>";
}

// Whole-tensor equality as a plain bool (Catch cannot decompose xtensor's operator==).
template <class A, class B>
bool same(const A& a, const B& b) {
    return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

std::string images_error(const fs::path& p) {
    return data_error_of([&] { (void)sd::read_idx_images(p); });
}
std::string labels_error(const fs::path& p, std::size_t classes = 10) {
    return data_error_of([&] { (void)sd::read_idx_labels(p, classes); });
}

}  // namespace

TEST_CASE("IDX images round trip exactly, raw and gzip", "[data][idx]") {
    temp_dir dir;
    const bytes px = pixels();
    const bytes file = idx_bytes(0x08, {3, 4, 5}, px);
    write_raw(dir / "images.idx", file);
    write_gz(dir / "images.idx.gz", file);
    write_gz(dir / "images-without-suffix", file);  // gzip is found by its magic bytes, not the name

    const auto raw = sd::read_idx_images(dir / "images.idx");
    REQUIRE(raw.shape() == std::array<std::size_t, 4>{3, 4, 5, 1});
    for (std::size_t n = 0; n < 3; ++n)
        for (std::size_t y = 0; y < 4; ++y)
            for (std::size_t x = 0; x < 5; ++x)
                REQUIRE(raw(n, y, x, 0) == static_cast<float>(px[(n * 4 + y) * 5 + x]) / 255.0f);
    CHECK(raw(0, 0, 0, 0) == 0.0f);
    CHECK(raw(0, 0, 1, 0) == 1.0f);

    CHECK(same(sd::read_idx_images(dir / "images.idx.gz"), raw));
    CHECK(same(sd::read_idx_images(dir / "images-without-suffix"), raw));

    const auto h = sd::read_idx_header(dir / "images.idx.gz");
    CHECK(h.type_code == 0x08);
    CHECK(h.dims == std::vector<std::uint32_t>{3, 4, 5});
    CHECK(h.size_bytes() == 16);

    const auto f = sd::read_idx(dir / "images.idx.gz");
    CHECK(f.header.dims == h.dims);
    CHECK(f.data == px);
}

TEST_CASE("IDX images as bytes are the stored bytes, and to_dataset gives the float reader's values", "[data][idx][bytes]") {
    temp_dir dir;
    const bytes px = pixels();
    write_gz(dir / "images.idx.gz", idx_bytes(0x08, {3, 4, 5}, px));
    write_raw(dir / "labels.idx", idx_bytes(0x08, {3}, {2, 0, 1}));
    const auto b = sd::read_idx_image_bytes(dir / "images.idx.gz");
    REQUIRE(b.shape() == std::array<std::size_t, 4>{3, 4, 5, 1});
    CHECK(std::vector<std::uint8_t>(b.begin(), b.end()) == px);

    const auto floats = sd::load_idx(dir / "images.idx.gz", dir / "labels.idx", 3);
    const auto kept = sd::load_idx_bytes(dir / "images.idx.gz", dir / "labels.idx", 3);
    CHECK(kept.num_classes == 3);
    CHECK(kept.labels == floats.labels);
    const auto converted = sd::to_dataset(kept);
    CHECK(same(converted.images, floats.images));
    CHECK(converted.labels == floats.labels);
    CHECK_THROWS_WITH(sd::load_idx_bytes(dir / "images.idx.gz", dir / "labels.idx", 2),
                      Catch::Contains("label out of range"));
}

TEST_CASE("IDX images accept 4-D files with channels", "[data][idx]") {
    temp_dir dir;
    bytes px(2 * 2 * 3 * 3);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>(7 * i);
    write_gz(dir / "rgb.gz", idx_bytes(0x08, {2, 2, 3, 3}, px));
    const auto img = sd::read_idx_images(dir / "rgb.gz");
    REQUIRE(img.shape() == std::array<std::size_t, 4>{2, 2, 3, 3});
    CHECK(img(1, 1, 2, 2) == static_cast<float>(px.back()) / 255.0f);
    CHECK(img(0, 1, 0, 1) == static_cast<float>(px[(0 * 2 * 3 + 1 * 3 + 0) * 3 + 1]) / 255.0f);
}

TEST_CASE("IDX labels and load_idx, raw and gzip give the same dataset", "[data][idx]") {
    temp_dir dir;
    const bytes images = idx_bytes(0x08, {3, 4, 5}, pixels());
    const bytes labels = idx_bytes(0x08, {3}, {9, 0, 4});
    write_raw(dir / "img", images);
    write_raw(dir / "lbl", labels);
    write_gz(dir / "img.gz", images);
    write_gz(dir / "lbl.gz", labels);

    const auto l = sd::read_idx_labels(dir / "lbl", 10);
    REQUIRE(l.size() == 3);
    CHECK(l(0) == 9);
    CHECK(l(1) == 0);
    CHECK(l(2) == 4);

    const auto raw = sd::load_idx(dir / "img", dir / "lbl");
    const auto gz = sd::load_idx(dir / "img.gz", dir / "lbl.gz");
    CHECK(raw.size() == 3);
    CHECK(raw.num_classes == 10);
    CHECK(raw.targets.size() == 0);
    CHECK(same(gz.images, raw.images));
    CHECK(same(gz.labels, raw.labels));
    CHECK(gz.num_classes == raw.num_classes);
}

TEST_CASE("IDX reader accepts concatenated gzip members and empty files of zero records", "[data][idx]") {
    temp_dir dir;
    const bytes file = idx_bytes(0x08, {3, 4, 5}, pixels());
    const std::size_t half = file.size() / 2;
    write_gz(dir / "multi.gz", bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(half)));
    write_gz(dir / "multi.gz", bytes(file.begin() + static_cast<std::ptrdiff_t>(half), file.end()), "ab");
    write_raw(dir / "single", file);
    CHECK(same(sd::read_idx_images(dir / "multi.gz"), sd::read_idx_images(dir / "single")));

    write_raw(dir / "none", idx_bytes(0x08, {0, 28, 28}, {}));
    CHECK(sd::read_idx_images(dir / "none").shape() == std::array<std::size_t, 4>{0, 28, 28, 1});
}

TEST_CASE("IDX reader: missing, directory and unreadable files", "[data][idx][errors]") {
    temp_dir dir;
    const auto missing = dir / "no-such-file.idx";
    CHECK_THAT(images_error(missing), Contains("no-such-file.idx") && Contains("does not exist"));
    CHECK_THAT(labels_error(missing), Contains("no-such-file.idx") && Contains("does not exist"));
    CHECK_THAT(data_error_of([&] { (void)sd::read_idx_header(missing); }), Contains("no-such-file.idx"));

    fs::create_directory(dir / "a-directory");
    CHECK_THAT(images_error(dir / "a-directory"), Contains("a-directory") && Contains("is a directory"));

    const auto locked = dir / "locked.idx";
    write_raw(locked, idx_bytes(0x08, {1}, {1}));
    fs::permissions(locked, fs::perms::none);
    if (std::FILE* f = std::fopen(locked.c_str(), "rb")) {
        std::fclose(f);  // root reads anything: nothing to test here
        WARN("running with permission to read a mode-000 file; unreadable-file check skipped");
    } else {
        CHECK_THAT(labels_error(locked), Contains("locked.idx") && Contains("cannot open"));
    }
}

TEST_CASE("IDX reader: truncated header", "[data][idx][errors]") {
    temp_dir dir;
    write_raw(dir / "empty.idx", {});
    CHECK_THAT(images_error(dir / "empty.idx"), Contains("empty.idx") && Contains("truncated header") && Contains("empty"));

    write_raw(dir / "magic3.idx", {0, 0, 8});
    CHECK_THAT(images_error(dir / "magic3.idx"),
               Contains("magic3.idx") && Contains("truncated header") && Contains("byte offset 3"));

    // Three dimensions need 12 bytes of sizes; give 7.
    bytes cut = idx_bytes(0x08, {3, 4, 5}, {});
    cut.resize(4 + 7);
    write_raw(dir / "dims.idx", cut);
    write_gz(dir / "dims.idx.gz", cut);
    for (const char* name : {"dims.idx", "dims.idx.gz"})
        CHECK_THAT(images_error(dir / name), Contains(name) && Contains("truncated header") && Contains("need 12 bytes") &&
                                                 Contains("only 7"));
}

TEST_CASE("IDX reader: wrong magic number and type code", "[data][idx][errors]") {
    temp_dir dir;
    bytes png{0x89, 'P', 'N', 'G', 0, 0, 0, 0};
    write_raw(dir / "picture.png", png);
    CHECK_THAT(images_error(dir / "picture.png"),
               Contains("picture.png") && Contains("wrong magic number") && Contains("0x89 0x50"));

    write_raw(dir / "float.idx", idx_bytes(0x0D, {1, 1, 1}, {0, 0, 0, 0}));
    CHECK_THAT(images_error(dir / "float.idx"), Contains("float.idx") && Contains("wrong magic number") &&
                                                    Contains("0x0D (float32)") && Contains("0x08"));
    CHECK_THAT(labels_error(dir / "float.idx"), Contains("float.idx") && Contains("0x0D"));
    // The generic reader takes any type IDX defines.
    CHECK(sd::read_idx(dir / "float.idx").data.size() == 4);

    write_raw(dir / "unknown.idx", idx_bytes(0x05, {1}, {0}));
    CHECK_THAT(data_error_of([&] { (void)sd::read_idx(dir / "unknown.idx"); }),
               Contains("unknown.idx") && Contains("unknown type code 0x05"));

    write_raw(dir / "rank0.idx", {0, 0, 8, 0});
    CHECK_THAT(data_error_of([&] { (void)sd::read_idx_header(dir / "rank0.idx"); }),
               Contains("rank0.idx") && Contains("0 dimensions"));
}

TEST_CASE("IDX reader: wrong number of dimensions", "[data][idx][errors]") {
    temp_dir dir;
    write_raw(dir / "flat.idx", idx_bytes(0x08, {3}, {1, 2, 3}));
    CHECK_THAT(images_error(dir / "flat.idx"),
               Contains("flat.idx") && Contains("wrong number of dimensions") && Contains("declares 1"));
    write_raw(dir / "matrix.idx", idx_bytes(0x08, {2, 2}, {1, 2, 3, 4}));
    CHECK_THAT(images_error(dir / "matrix.idx"), Contains("matrix.idx") && Contains("wrong number of dimensions"));
    write_raw(dir / "five.idx", idx_bytes(0x08, {1, 1, 1, 1, 1}, {1}));
    CHECK_THAT(images_error(dir / "five.idx"), Contains("five.idx") && Contains("declares 5"));
    CHECK_THAT(labels_error(dir / "matrix.idx"),
               Contains("matrix.idx") && Contains("wrong number of dimensions") && Contains("labels need 1"));
}

TEST_CASE("IDX reader: truncated data", "[data][idx][errors]") {
    temp_dir dir;
    bytes file = idx_bytes(0x08, {3, 4, 5}, pixels());
    file.pop_back();
    write_raw(dir / "short.idx", file);
    write_gz(dir / "short.idx.gz", file);
    for (const char* name : {"short.idx", "short.idx.gz"})
        CHECK_THAT(images_error(dir / name), Contains(name) && Contains("truncated data") && Contains("60 bytes") &&
                                                 Contains("byte offset 16") && Contains("only 59"));

    write_raw(dir / "labels.idx", idx_bytes(0x08, {5}, {1, 2}));
    CHECK_THAT(labels_error(dir / "labels.idx"),
               Contains("labels.idx") && Contains("truncated data") && Contains("5 bytes") && Contains("only 2"));
}

TEST_CASE("IDX reader: trailing garbage after the data", "[data][idx][errors]") {
    temp_dir dir;
    bytes file = idx_bytes(0x08, {3, 4, 5}, pixels());
    file.insert(file.end(), {1, 2, 3});
    write_raw(dir / "long.idx", file);
    write_gz(dir / "long.idx.gz", file);
    for (const char* name : {"long.idx", "long.idx.gz"})
        CHECK_THAT(images_error(dir / name),
                   Contains(name) && Contains("trailing garbage") && Contains("3 unexpected bytes") && Contains("byte offset 76"));

    // Bytes after the gzip stream itself (not another gzip member) are refused too.
    write_gz(dir / "tail.gz", idx_bytes(0x08, {2}, {1, 2}));
    bytes gz = read_all(dir / "tail.gz");
    const std::size_t end = gz.size();
    gz.insert(gz.end(), {'j', 'u', 'n', 'k'});
    write_raw(dir / "tail.gz", gz);
    CHECK_THAT(labels_error(dir / "tail.gz"), Contains("tail.gz") && Contains("after the end of the gzip data") &&
                                                  Contains("byte offset " + std::to_string(end)) &&
                                                  Contains("4 bytes of trailing garbage"));
}

TEST_CASE("IDX reader: corrupt gzip streams", "[data][idx][errors]") {
    temp_dir dir;
    write_gz(dir / "good.gz", idx_bytes(0x08, {3, 4, 5}, pixels()));
    const bytes good = read_all(dir / "good.gz");
    REQUIRE(good.size() > 30);

    // gzopen writes a 10-byte header; 0xFF as the first deflate byte is block type 3, invalid.
    bytes bad_block = good;
    bad_block[10] = 0xFF;
    write_raw(dir / "block.gz", bad_block);
    CHECK_THAT(images_error(dir / "block.gz"),
               Contains("block.gz") && Contains("corrupt gzip stream") && Contains("invalid block type"));

    bytes bad_method = good;
    bad_method[2] = 7;
    write_raw(dir / "method.gz", bad_method);
    CHECK_THAT(images_error(dir / "method.gz"), Contains("method.gz") && Contains("corrupt gzip stream") &&
                                                    Contains("unknown compression method"));

    // The trailer is CRC-32 then length: damage each.
    bytes bad_crc = good;
    bad_crc[good.size() - 8] ^= 0x01;
    write_raw(dir / "crc.gz", bad_crc);
    CHECK_THAT(images_error(dir / "crc.gz"),
               Contains("crc.gz") && Contains("corrupt gzip stream") && Contains("incorrect data check"));
    bytes bad_length = good;
    bad_length[good.size() - 4] ^= 0x01;
    write_raw(dir / "length.gz", bad_length);
    CHECK_THAT(images_error(dir / "length.gz"),
               Contains("length.gz") && Contains("corrupt gzip stream") && Contains("incorrect length check"));

    for (std::size_t cut : {std::size_t{3}, std::size_t{12}}) {
        bytes truncated(good.begin(), good.end() - static_cast<std::ptrdiff_t>(cut));
        write_raw(dir / "cut.gz", truncated);
        CHECK_THAT(images_error(dir / "cut.gz"),
                   Contains("cut.gz") && Contains("corrupt gzip stream") && Contains("truncated"));
    }

    // Only the two magic bytes of gzip: the header itself is cut off.
    write_raw(dir / "magic-only.gz", {0x1f, 0x8b});
    CHECK_THAT(images_error(dir / "magic-only.gz"), Contains("magic-only.gz") && Contains("corrupt gzip stream"));
}

TEST_CASE("IDX reader: absurd dimensions are refused before allocating", "[data][idx][errors]") {
    temp_dir dir;
    write_raw(dir / "overflow.idx", idx_bytes(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
    CHECK_THAT(images_error(dir / "overflow.idx"),
               Contains("overflow.idx") && Contains("absurd dimensions") && Contains("overflows"));
    write_gz(dir / "huge.gz", idx_bytes(0x08, {1u << 20, 1u << 10, 1u << 10}, {1, 2, 3}));
    CHECK_THAT(images_error(dir / "huge.gz"),
               Contains("huge.gz") && Contains("absurd dimensions") && Contains("1048576x1024x1024"));
    // 2^31 + 1 doubles: 8 bytes over the limit.
    write_raw(dir / "huge-doubles.idx", idx_bytes(0x0E, {(1u << 31) + 1}, {}));
    CHECK_THAT(data_error_of([&] { (void)sd::read_idx(dir / "huge-doubles.idx"); }),
               Contains("huge-doubles.idx") && Contains("absurd dimensions") && Contains("17179869192 bytes"));
    write_raw(dir / "flat-image.idx", idx_bytes(0x08, {3, 0, 5}, {}));
    CHECK_THAT(images_error(dir / "flat-image.idx"),
               Contains("flat-image.idx") && Contains("absurd dimensions") && Contains("3x0x5"));
    // Large but allowed by the limit: the raw file size says at once that the data is missing.
    write_raw(dir / "promise.idx", idx_bytes(0x08, {1u << 20, 1u << 10, 1u << 4}, {1}));
    CHECK_THAT(images_error(dir / "promise.idx"),
               Contains("promise.idx") && Contains("truncated data") && Contains("17179869184 bytes") && Contains("only 1"));
}

TEST_CASE("IDX reader: mismatched counts and labels out of range", "[data][idx][errors]") {
    temp_dir dir;
    write_raw(dir / "img3", idx_bytes(0x08, {3, 4, 5}, pixels()));
    write_raw(dir / "lbl2", idx_bytes(0x08, {2}, {0, 1}));
    CHECK_THAT(data_error_of([&] { (void)sd::load_idx(dir / "img3", dir / "lbl2"); }),
               Contains("img3") && Contains("lbl2") && Contains("3 images") && Contains("2 labels") &&
                   Contains("mismatched"));

    write_raw(dir / "lbl-range", idx_bytes(0x08, {4}, {0, 9, 10, 3}));
    CHECK_THAT(labels_error(dir / "lbl-range"), Contains("lbl-range") && Contains("out of range") &&
                                                    Contains("record 2") && Contains("byte offset 10") &&
                                                    Contains("holds 10") && Contains("0..9"));
    CHECK(sd::read_idx_labels(dir / "lbl-range", 11)(2) == 10);
    CHECK_THAT(labels_error(dir / "lbl-range", 0), Contains("lbl-range") && Contains("0 classes"));
    CHECK_THAT(data_error_of([&] { (void)sd::load_idx(dir / "img3", dir / "lbl-range", 5); }),
               Contains("lbl-range") && Contains("record 1"));
}

TEST_CASE("IDX reader: every truncation and every flipped byte is refused or read consistently", "[data][idx][errors]") {
    temp_dir dir;
    const bytes file = idx_bytes(0x08, {3, 4, 5}, pixels());
    write_gz(dir / "ref.gz", file);
    const bytes gz = read_all(dir / "ref.gz");
    const auto p = dir / "mutant";

    // Cutting a file anywhere must be reported, never read as a smaller file.
    for (const bytes* source : {&file, &gz})
        for (std::size_t len = 0; len < source->size(); ++len) {
            write_raw(p, bytes(source->begin(), source->begin() + static_cast<std::ptrdiff_t>(len)));
            INFO("length " << len << (source == &gz ? " of the gzip file" : " of the raw file"));
            CHECK_THAT(images_error(p), Contains("mutant") && Contains("truncated"));
        }

    // A flipped byte throws data_error, changes exactly one pixel (raw payload) or nothing
    // (gzip header fields outside the checksums).
    for (const bytes* source : {&file, &gz})
        for (std::size_t i = 0; i < source->size(); ++i) {
            bytes m = *source;
            m[i] ^= 0x5A;
            write_raw(p, m);
            INFO("byte " << i << (source == &gz ? " of the gzip file" : " of the raw file"));
            const std::string error = images_error(p);
            if (error == "<no exception>" && source == &gz) {
                // Only the gzip header's time stamp, flags byte and OS byte are unchecked by design.
                CHECK((i >= 4 && i <= 9));
                CHECK(same(sd::read_idx_images(p), sd::read_idx_images(dir / "ref.gz")));
            } else if (error == "<no exception>") {
                REQUIRE(i >= 16);
                CHECK(sd::read_idx_images(p).data()[i - 16] == static_cast<float>(m[i]) / 255.0f);
            } else {
                CHECK_THAT(error, Contains("IDX file '") && Contains("mutant"));
            }
        }
}

TEST_CASE("load_fashion_mnist finds .gz or raw files and says what is missing", "[data][idx][fashion]") {
    temp_dir dir;
    const bytes img = idx_bytes(0x08, {3, 4, 5}, pixels());
    const bytes lbl = idx_bytes(0x08, {3}, {1, 2, 3});
    write_gz(dir / "train-images-idx3-ubyte.gz", img);
    write_raw(dir / "train-images-idx3-ubyte", {0xBA, 0xD0});  // must be ignored: .gz wins
    write_raw(dir / "train-labels-idx1-ubyte", lbl);
    write_gz(dir / "t10k-images-idx3-ubyte.gz", img);

    CHECK_THAT(data_error_of([&] { (void)sd::load_fashion_mnist(dir.path); }),
               Contains((dir / "t10k-labels-idx1-ubyte.gz").string()) && Contains("not found") &&
                   !Contains("apt-get"));

    write_gz(dir / "t10k-labels-idx1-ubyte.gz", lbl);
    const auto t = sd::load_fashion_mnist(dir.path);
    CHECK(t.train.size() == 3);
    CHECK(t.test.size() == 3);
    CHECK(t.train.num_classes == 10);
    CHECK(same(t.train.images, sd::read_idx_images(dir / "train-images-idx3-ubyte.gz")));
    CHECK(t.test.labels(2) == 3);

    CHECK(sd::detail::is_default_fashion_dir("/usr/share/datasets/fashion-mnist/"));
    CHECK(sd::detail::is_default_fashion_dir("/usr/share/datasets/./fashion-mnist"));
    CHECK_FALSE(sd::detail::is_default_fashion_dir(dir.path));
    CHECK_THAT(data_error_of([&] { (void)sd::detail::find_idx_file(dir / "gone", "x-idx1-ubyte", true); }),
               Contains("x-idx1-ubyte") && Contains("does not exist") && Contains("apt-get install dataset-fashion-mnist"));
    // The public lookup: the .gz file when it is there, and for a directory of the user's
    // an error that asks for the directory rather than for the Debian package.
    CHECK(sd::find_idx_file(dir.path, "train-images-idx3-ubyte") == dir / "train-images-idx3-ubyte.gz");
    CHECK(sd::find_idx_file(dir.path, "train-labels-idx1-ubyte") == dir / "train-labels-idx1-ubyte");
    CHECK_THAT(data_error_of([&] { (void)sd::find_idx_file(dir / "gone", "x-idx1-ubyte"); }),
               Contains("x-idx1-ubyte") && Contains("pass the directory") && !Contains("apt-get"));
}

TEST_CASE("Fashion-MNIST from the system data set", "[data][idx][fashion]") {
    if (!fs::exists(sd::default_fashion_mnist_dir)) {
        WARN("no Fashion-MNIST in " << sd::default_fashion_mnist_dir << " (apt-get install dataset-fashion-mnist); skipped");
        return;
    }
    const auto t = sd::load_fashion_mnist();
    REQUIRE(t.train.images.shape() == std::array<std::size_t, 4>{60000, 28, 28, 1});
    REQUIRE(t.test.images.shape() == std::array<std::size_t, 4>{10000, 28, 28, 1});
    REQUIRE(t.train.labels.size() == 60000);
    REQUIRE(t.test.labels.size() == 10000);
    CHECK(t.train.num_classes == 10);

    std::array<std::size_t, 10> train_counts{};
    for (std::int32_t l : t.train.labels) {
        REQUIRE((l >= 0 && l <= 9));
        ++train_counts[static_cast<std::size_t>(l)];
    }
    for (std::size_t c = 0; c < 10; ++c) {
        INFO("class " << c);
        CHECK(train_counts[c] == 6000);
    }
    for (std::int32_t l : t.test.labels) REQUIRE((l >= 0 && l <= 9));
    CHECK(xt::amin(t.train.images)() >= 0.0f);
    CHECK(xt::amax(t.train.images)() == 1.0f);
}

TEST_CASE("class lists: a test set of other classes is refused, naming both lists") {
    // Issue 29: 3-class shards were validated against Fashion-MNIST's 10 classes without a word.
    const sd::class_list shards{"--shards 'colour'", 3, {"circle", "square", "stripes"}};
    const sd::class_list idx{"the IDX test set", 10, {}};
    CHECK(sd::describe(shards) == "3 classes: circle, square, stripes");
    CHECK(sd::describe(idx) == "10 classes (no names: labels 0-9)");
    CHECK_THROWS_AS(sd::require_same_classes(shards, idx), staticnet::data_error);
    CHECK_THROWS_WITH(sd::require_same_classes(shards, idx, "give --test-shards DIR"),
                      Catch::Contains("the training set (--shards 'colour') has 3 classes: circle, square, stripes") &&
                          Catch::Contains("the test set (the IDX test set) has 10 classes (no names: labels 0-9)") &&
                          Catch::EndsWith("; give --test-shards DIR"));
    // Same count, other names (or order): labels would mean other classes.
    const sd::class_list reordered{"test shards", 3, {"square", "circle", "stripes"}};
    CHECK_THROWS_WITH(sd::require_same_classes(shards, reordered),
                      Catch::Contains("3 classes: square, circle, stripes"));
    // Matching: the same names, or the same count where one side has no names.
    CHECK_NOTHROW(sd::require_same_classes(shards, {"test shards", 3, {"circle", "square", "stripes"}}));
    CHECK_NOTHROW(sd::require_same_classes(shards, {"unnamed", 3, {}}));
    CHECK_NOTHROW(sd::require_same_classes(idx, idx));
    sd::byte_dataset d;
    d.num_classes = 2;
    d.class_names = {"a", "b"};
    const auto of = sd::class_list::of(d, "here");
    CHECK(of.source == "here");
    CHECK(of.count == 2);
    CHECK(of.names == d.class_names);
}
