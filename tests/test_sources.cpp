// Data sources besides IDX: NumPy files, CSV files and image folders (the last only where
// stb_image is installed). Round trips against the IDX reader (same pixels, same labels)
// and the bad inputs each reader must refuse with a message naming the file and the place.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <staticnet/data/csv.hpp>
#include <staticnet/data/idx.hpp>
#include <staticnet/data/npy.hpp>
#include <staticnet/data/shard_format.hpp>
#include <staticnet/data/shard_set.hpp>
#if STATICNET_TEST_IMAGES
#include <staticnet/data/image_folder.hpp>
#include <stb/stb_image_write.h>  // its implementation is in Debian's libstb, like stb_image's
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace sd = staticnet::data;
using Catch::Contains;

namespace {

using bytes = std::vector<std::uint8_t>;

void write_bytes(const fs::path& file, const bytes& b) {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void write_text(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::binary);
    out << text;
}

// A version 1.0 .npy file as numpy.save writes it: the header padded to 64 bytes.
bytes npy_bytes(const std::string& descr, std::initializer_list<std::uint64_t> shape, const bytes& payload,
                const std::string& order = "False") {
    std::string dims;
    for (auto d : shape) dims += std::to_string(d) + ", ";
    if (shape.size() == 1) dims.pop_back();  // "(3,)" but "(3, 4)"
    else dims.resize(dims.size() - 2);
    std::string header = "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': (" + dims + "), }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    bytes b{0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<std::uint8_t>(header.size() & 0xFF),
            static_cast<std::uint8_t>(header.size() >> 8)};
    for (const char c : header) b.push_back(static_cast<std::uint8_t>(c));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

bytes int64_payload(const std::vector<std::int64_t>& values) {
    bytes b(values.size() * 8);
    for (std::size_t i = 0; i < values.size(); ++i) staticnet::detail::store_le(b.data() + 8 * i, values[i]);
    return b;
}

bytes float_payload(const std::vector<float>& values) {
    bytes b(values.size() * 4);
    for (std::size_t i = 0; i < values.size(); ++i) staticnet::detail::store_le(b.data() + 4 * i, values[i]);
    return b;
}

const fs::path fashion = sd::default_fashion_mnist_dir;

bool have_fashion() {
    if (fs::exists(fashion / "t10k-images-idx3-ubyte.gz")) return true;
    WARN("no Fashion-MNIST in " << fashion << " (apt-get install dataset-fashion-mnist); skipped");
    return false;
}

// The first n test images of Fashion-MNIST as raw bytes and labels.
struct raw_set {
    bytes pixels, labels;
    std::size_t n = 0;
};

raw_set fashion_head(std::size_t n) {
    const auto images = sd::read_idx(fashion / "t10k-images-idx3-ubyte.gz");
    const auto labels = sd::read_idx(fashion / "t10k-labels-idx1-ubyte.gz");
    return {bytes(images.data.begin(), images.data.begin() + static_cast<std::ptrdiff_t>(n * 784)),
            bytes(labels.data.begin(), labels.data.begin() + static_cast<std::ptrdiff_t>(n)), n};
}

// What the IDX reader gives for the same bytes.
sd::dataset as_idx(const raw_set& raw, const temp_dir& dir) {
    bytes img{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28};
    bytes lab{0, 0, 8, 1, 0, 0, 0, 0};
    for (int i = 0; i < 4; ++i) {
        img[4 + i] = static_cast<std::uint8_t>(raw.n >> (24 - 8 * i));
        lab[4 + i] = static_cast<std::uint8_t>(raw.n >> (24 - 8 * i));
    }
    img.insert(img.end(), raw.pixels.begin(), raw.pixels.end());
    lab.insert(lab.end(), raw.labels.begin(), raw.labels.end());
    write_bytes(dir / "images.idx", img);
    write_bytes(dir / "labels.idx", lab);
    return sd::load_idx(dir / "images.idx", dir / "labels.idx", 10);
}

void check_same(const sd::dataset& a, const sd::dataset& b) {
    REQUIRE(a.images.shape() == b.images.shape());
    REQUIRE(a.labels.shape() == b.labels.shape());
    CHECK(std::equal(a.images.begin(), a.images.end(), b.images.begin()));
    CHECK(std::equal(a.labels.begin(), a.labels.end(), b.labels.begin()));
}

}  // namespace

// ===================================================================== NumPy

TEST_CASE("npy: uint8 images and int64 labels give exactly what the IDX reader gives") {
    if (!have_fashion()) return;
    temp_dir dir;
    const auto raw = fashion_head(500);
    std::vector<std::int64_t> labels(raw.labels.begin(), raw.labels.end());
    write_bytes(dir / "x.npy", npy_bytes("|u1", {500, 28, 28}, raw.pixels));
    write_bytes(dir / "y.npy", npy_bytes("<i8", {500}, int64_payload(labels)));
    const auto d = sd::load_npy(dir / "x.npy", dir / "y.npy", 10);
    check_same(d, as_idx(raw, dir));
    CHECK(d.num_classes == 10);
    CHECK(sd::load_npy(dir / "x.npy", dir / "y.npy").num_classes == 10);  // the largest label + 1
    check_same(sd::to_dataset(sd::load_npy_bytes(dir / "x.npy", dir / "y.npy", 10)), d);  // the bytes form
}

TEST_CASE("npy: float32 images of shape N x H x W x C, uint8 labels") {
    temp_dir dir;
    write_bytes(dir / "x.npy", npy_bytes("<f4", {2, 1, 2, 3}, float_payload({0, 0.5f, 1, 0.25f, 0.75f, 0.125f, 1, 1, 1, 0, 0, 0})));
    write_bytes(dir / "y.npy", npy_bytes("|u1", {2}, {1, 3}));
    const auto d = sd::load_npy(dir / "x.npy", dir / "y.npy");
    REQUIRE(d.images.shape() == std::array<std::size_t, 4>{2, 1, 2, 3});
    CHECK(d.images(0, 0, 1, 2) == 0.125f);
    CHECK(d.num_classes == 4);
    CHECK(d.labels(1) == 3);
    CHECK_THROWS_WITH(sd::load_npy_bytes(dir / "x.npy", dir / "y.npy"),
                      Contains("x.npy") && Contains("cannot be kept as bytes"));
}

TEST_CASE("npy: bad inputs name the file and the problem") {
    temp_dir dir;
    const auto x = (dir / "x.npy").string(), y = (dir / "y.npy").string();
    write_bytes(dir / "y.npy", npy_bytes("|u1", {2}, {0, 1}));
    const auto images = [&](const bytes& b) {
        write_bytes(x, b);
        return sd::load_npy(x, y, 2);
    };
    SECTION("wrong dtype") {
        CHECK_THROWS_WITH(images(npy_bytes("<f8", {2, 1, 1}, bytes(16))),
                          Contains(x) && Contains("wrong dtype for images: '<f8'"));
        write_bytes(dir / "f.npy", npy_bytes("<f4", {2}, bytes(8)));
        CHECK_THROWS_WITH(sd::load_npy(x, dir / "f.npy"), Contains("f.npy") && Contains("wrong dtype for labels"));
        CHECK_THROWS_WITH(images(npy_bytes(">f4", {2, 1, 1}, bytes(8))), Contains("unsupported dtype '>f4'"));
    }
    SECTION("wrong shape") {
        CHECK_THROWS_WITH(images(npy_bytes("|u1", {2, 784}, bytes(1568))),
                          Contains(x) && Contains("wrong shape for images: 2x784"));
        write_bytes(dir / "y2.npy", npy_bytes("|u1", {2, 1}, {0, 1}));
        CHECK_THROWS_WITH(sd::load_npy(dir / "y.npy", dir / "y2.npy"), Contains("wrong shape for labels"));
    }
    SECTION("count mismatch") {
        CHECK_THROWS_WITH(images(npy_bytes("|u1", {3, 1, 1}, {1, 2, 3})),
                          Contains("mismatched counts") && Contains("3 images") && Contains("2 labels"));
    }
    SECTION("truncated data, trailing bytes, a broken header") {
        CHECK_THROWS_WITH(images(npy_bytes("|u1", {2, 2, 2}, bytes(7))), Contains("truncated data") && Contains("8 bytes"));
        CHECK_THROWS_WITH(images(npy_bytes("|u1", {2, 2, 2}, bytes(9))), Contains("trailing garbage: 1 unexpected"));
        CHECK_THROWS_WITH(images(bytes{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0}), Contains("wrong magic"));
        CHECK_THROWS_WITH(images(npy_bytes("|u1", {2, 1, 1}, {0, 0}, "True")), Contains("Fortran order"));
        auto b = npy_bytes("|u1", {2, 1, 1}, {0, 0});
        b[20] = '[';
        CHECK_THROWS_WITH(images(b), Contains("malformed header at byte offset"));
    }
    SECTION("values out of range") {
        CHECK_THROWS_WITH(images(npy_bytes("<f4", {2, 1, 1}, float_payload({0.5f, 255.0f}))),
                          Contains("pixel value 255") && Contains("of image 1") && Contains("[0, 1]"));
        write_bytes(dir / "y3.npy", npy_bytes("<i8", {2}, int64_payload({0, -1})));
        CHECK_THROWS_WITH(sd::load_npy(x, dir / "y3.npy"), Contains("label out of range: label 1") && Contains("-1"));
    }
}

// ===================================================================== CSV

TEST_CASE("csv: Fashion-MNIST's CSV layout gives exactly what the IDX reader gives") {
    if (!have_fashion()) return;
    temp_dir dir;
    const auto raw = fashion_head(300);
    std::string text = "label";
    for (int i = 1; i <= 784; ++i) {  // piece by piece: GCC 12 warns falsely on "," + string
        text += ",pixel";
        text += std::to_string(i);
    }
    text += "\r\n";
    for (std::size_t s = 0; s < raw.n; ++s) {
        text += std::to_string(raw.labels[s]);
        for (std::size_t i = 0; i < 784; ++i) {
            text += ',';
            text += std::to_string(raw.pixels[s * 784 + i]);
        }
        text += "\r\n";
    }
    write_text(dir / "f.csv", text);
    const auto d = sd::load_csv(dir / "f.csv", {.num_classes = 10});
    check_same(d, as_idx(raw, dir));
    // Without a header row, and with the shape given.
    write_text(dir / "g.csv", text.substr(text.find('\n') + 1));
    check_same(sd::load_csv(dir / "g.csv", {.sample_shape = staticnet::shape{28, 28, 1}}), d);
    check_same(sd::to_dataset(sd::load_csv_bytes(dir / "f.csv", {.num_classes = 10})), d);  // the bytes form
}

TEST_CASE("csv: bad inputs name the file, the line and the column") {
    temp_dir dir;
    const auto f = (dir / "f.csv").string();
    const auto load = [&](const std::string& text, sd::csv_options o = {}) {
        write_text(f, text);
        return sd::load_csv(f, o);
    };
    CHECK(load("label,a,b,c,d\n1,0,255,3,4\n0,1,2,3,4\n").images.shape() == std::array<std::size_t, 4>{2, 2, 2, 1});
    CHECK_THROWS_WITH(load("label,a,b,c,d\n1,0,255,3,4\n0,1,x2,3,4\n"),
                      Contains(f) && Contains("line 3") && Contains("column 3") && Contains("'x2' is not a whole number"));
    CHECK_THROWS_WITH(load("1,0,255,3,4\n0,1,256,3,4\n"), Contains("line 2") && Contains("'256'"));
    CHECK_THROWS_WITH(load("1,0,255,3,4\n0,1,3,4\n"), Contains("line 2: 4 columns") && Contains("needs 5"));
    CHECK_THROWS_WITH(load("1,0,255,3,4\n-1,1,2,3,4\n"), Contains("line 2: column 1"));
    CHECK_THROWS_WITH(load("1,0,255,3,4\n7,1,2,3,4\n", {.num_classes = 5}), Contains("line 2") && Contains("label '7'"));
    CHECK_THROWS_WITH(load("1,0,255,3\n"), Contains("line 1") && Contains("not a square image"));
    CHECK_THROWS_WITH(load("label,a\n"), Contains("holds no samples"));
    CHECK_THROWS_WITH(sd::load_csv(dir / "missing.csv"), Contains("missing.csv"));
}

// ===================================================================== shard sets

TEST_CASE("shard sets: classes.txt carries the class names to load_shards") {
    temp_dir dir;
    sd::dataset d;
    d.images = xt::zeros<float>(std::array<std::size_t, 4>{3, 1, 1, 1});
    d.labels = xt::xtensor<std::int32_t, 1>({0, 1, 2});
    d.num_classes = 3;
    sd::write_shard(dir / sd::shard_file_name(0, 1), d);
    CHECK(sd::load_shards(dir.path, 0, 1).class_names.empty());
    sd::write_class_names(dir.path, {"cat", "dog", "t-shirt top"});
    CHECK(sd::read_class_names(dir.path) == std::vector<std::string>{"cat", "dog", "t-shirt top"});
    CHECK(sd::load_shards(dir.path, 0, 1).class_names == std::vector<std::string>{"cat", "dog", "t-shirt top"});
    sd::write_class_names(dir.path, {"cat", "dog"});
    CHECK_THROWS_WITH(sd::load_shards(dir.path, 0, 1), Contains("classes.txt") && Contains("names 2 classes"));
    CHECK_THROWS_WITH(sd::write_class_names(dir.path, {"a\nb"}), Contains("line break"));
}

// ===================================================================== image folders

#if STATICNET_TEST_IMAGES
namespace {

void write_png(const fs::path& file, int w, int h, int c, const bytes& pixels) {
    REQUIRE(stbi_write_png(file.c_str(), w, h, c, pixels.data(), w * c) != 0);
}

bytes pattern(std::size_t n, std::uint8_t seed) {
    bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed * 31 + i * 7);
    return b;
}

}  // namespace

TEST_CASE("image folders: classes sorted, files sorted, pixels as the PNGs hold them") {
    temp_dir dir;
    fs::create_directories(dir / "b_dog");
    fs::create_directories(dir / "a_cat");
    write_png(dir / "b_dog" / "2.png", 3, 2, 1, pattern(6, 2));
    write_png(dir / "b_dog" / "1.png", 3, 2, 1, pattern(6, 1));
    write_png(dir / "a_cat" / "x.png", 3, 2, 1, pattern(6, 0));
    write_text(dir / "a_cat" / "notes.txt", "ignored");
    fs::create_directories(dir / ".ipynb_checkpoints");  // hidden: not a class
    const auto d = sd::load_image_folder(dir.path);
    CHECK(d.class_names == std::vector<std::string>{"a_cat", "b_dog"});
    CHECK(d.num_classes == 2);
    REQUIRE(d.images.shape() == std::array<std::size_t, 4>{3, 2, 3, 1});
    CHECK(std::vector<int>(d.labels.begin(), d.labels.end()) == std::vector<int>{0, 1, 1});
    for (std::uint8_t s = 0; s < 3; ++s) {
        const auto p = pattern(6, s);
        for (std::size_t i = 0; i < 6; ++i) CHECK(d.images.data()[s * 6 + i] == static_cast<float>(p[i]) / 255.0f);
    }
    const auto kept = sd::load_image_folder_bytes(dir.path);  // the decoded bytes themselves
    CHECK(kept.class_names == d.class_names);
    CHECK(kept.labels == d.labels);
    for (std::uint8_t s = 0; s < 3; ++s) {
        const auto p = pattern(6, s);
        CHECK(std::vector<std::uint8_t>(kept.images.data() + s * 6, kept.images.data() + s * 6 + 6) ==
              std::vector<std::uint8_t>(p.begin(), p.end()));
    }
    // RGB images read as grayscale, and grayscale as RGB.
    fs::create_directories(dir / "c_rgb");
    write_png(dir / "c_rgb" / "1.png", 3, 2, 3, pattern(18, 5));
    CHECK(sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{2, 3, 1}}).size() == 4);
    const auto rgb = sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{2, 3, 3}});
    CHECK(rgb.images(0, 1, 2, 0) == rgb.images(0, 1, 2, 2));
    // A test folder must have the training folder's classes.
    CHECK_THROWS_WITH(sd::load_image_folder(dir.path, {.classes = {"a_cat", "b_dog"}}),
                      Contains("{a_cat, b_dog, c_rgb}") && Contains("{a_cat, b_dog} were expected"));
}

TEST_CASE("image folders: sizes, resizing and bad folders") {
    temp_dir dir;
    fs::create_directories(dir / "a");
    write_png(dir / "a" / "big.png", 4, 4, 1, bytes(16, 200));
    const auto big = (dir / "a" / "big.png").string();
    CHECK_THROWS_WITH(sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{2, 2, 1}}),
                      Contains(big) && Contains("is 4x4") && Contains("are 2x2"));
    const auto d = sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{2, 2, 1}, .resize = true});
    CHECK(d.images(0, 1, 1, 0) == 200.0f / 255.0f);

    fs::create_directories(dir / "b");
    CHECK_THROWS_WITH(sd::load_image_folder(dir.path), Contains((dir / "b").string()) && Contains("holds no images"));
    temp_dir empty;
    CHECK_THROWS_WITH(sd::load_image_folder(empty.path), Contains(empty.path.string()) && Contains("no class folders"));
    CHECK_THROWS_WITH(sd::load_image_folder(empty / "nope"), Contains("does not exist"));
}

TEST_CASE("image folders: sub-folders of a class folder are read, as Keras reads them") {
    // Issue 29: 500 of 600 images were read because 100 sat in sub-folders, without a word.
    temp_dir dir;
    fs::create_directories(dir / "cat" / "indoor" / "night");
    fs::create_directories(dir / "cat" / ".thumbnails");
    fs::create_directories(dir / "dog" / "park");
    write_png(dir / "cat" / "1.png", 3, 2, 1, pattern(6, 1));
    write_png(dir / "cat" / "indoor" / "2.png", 3, 2, 1, pattern(6, 2));
    write_png(dir / "cat" / "indoor" / "night" / "3.png", 3, 2, 1, pattern(6, 3));
    write_png(dir / "cat" / ".thumbnails" / "hidden.png", 3, 2, 1, pattern(6, 9));  // hidden: skipped
    write_png(dir / "dog" / "park" / "4.png", 3, 2, 1, pattern(6, 4));  // a class with no top-level image
    sd::image_folder_report report;
    const auto d = sd::load_image_folder_bytes(dir.path, {}, &report);
    CHECK(d.class_names == std::vector<std::string>{"cat", "dog"});
    REQUIRE(d.size() == 4);
    CHECK(std::vector<int>(d.labels.begin(), d.labels.end()) == std::vector<int>{0, 0, 0, 1});
    // Sorted by path: cat/1.png, cat/indoor/2.png, cat/indoor/night/3.png, dog/park/4.png.
    for (std::uint8_t s = 1; s <= 4; ++s) CHECK(d.images.data()[(s - 1) * 6] == pattern(6, s)[0]);
    CHECK(report.images == 4);
    CHECK(report.in_sub_folders == 3);
    CHECK(report.colour_to_grey == 0);
    CHECK(report.resized == 0);
    CHECK(report.sample_shape == staticnet::shape{2, 3, 1});
    // A class whose folders hold no image at any depth is still refused, naming it.
    fs::create_directories(dir / "empty" / "deeper");
    CHECK_THROWS_WITH(sd::load_image_folder(dir.path),
                      Contains((dir / "empty").string()) && Contains("holds no images") && Contains("nor do its sub-folders"));
}

TEST_CASE("image folders: the report counts colour made grey, grey made colour, alpha and resizes") {
    temp_dir dir;
    fs::create_directories(dir / "a");
    write_png(dir / "a" / "rgb.png", 4, 4, 3, pattern(48, 1));
    write_png(dir / "a" / "rgba.png", 4, 4, 4, pattern(64, 2));
    write_png(dir / "a" / "grey.png", 2, 2, 1, pattern(4, 3));
    sd::image_folder_report r;
    (void)sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{4, 4, 1}, .resize = true}, &r);
    CHECK(r.images == 3);
    CHECK(r.colour_to_grey == 2);
    CHECK(r.alpha_dropped == 1);
    CHECK(r.grey_to_colour == 0);
    CHECK(r.resized == 1);
    (void)sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{4, 4, 3}, .resize = true}, &r);
    CHECK(r.colour_to_grey == 0);
    CHECK(r.grey_to_colour == 1);
    CHECK(r.alpha_dropped == 1);
    CHECK(r.sample_shape == staticnet::shape{4, 4, 3});
    // The size error names the caller's option when it is given one.
    CHECK_THROWS_WITH(sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{4, 4, 1}, .resize_flag = "--resize"}),
                      Contains("grey.png' is 2x2") && Contains("ask for a resize (--resize)"));
    CHECK_THROWS_WITH(sd::load_image_folder(dir.path, {.sample_shape = staticnet::shape{4, 4, 1}}),
                      Contains("ask for a resize") && !Contains("(--"));
}

TEST_CASE("image folders: a corrupt PNG and a truncated JPEG are named") {
    temp_dir dir;
    fs::create_directories(dir / "a");
    bytes pixels = pattern(28 * 28, 3);
    write_png(dir / "a" / "good.png", 28, 28, 1, pixels);
    REQUIRE(stbi_write_jpg((dir / "a" / "photo.jpg").c_str(), 28, 28, 1, pixels.data(), 90) != 0);
    CHECK(sd::load_image_folder(dir.path).size() == 2);

    std::ifstream in(dir / "a" / "good.png", std::ios::binary);
    bytes png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    SECTION("a flipped bit in a PNG") {
        png[png.size() / 2] ^= 0x10;
        write_bytes(dir / "a" / "good.png", png);
        CHECK_THROWS_WITH(sd::load_image_folder(dir.path),
                          Contains((dir / "a" / "good.png").string()) && Contains("corrupt PNG: checksum mismatch"));
    }
    SECTION("a truncated PNG") {
        png.resize(png.size() / 2);
        write_bytes(dir / "a" / "good.png", png);
        CHECK_THROWS_WITH(sd::load_image_folder(dir.path),
                          Contains((dir / "a" / "good.png").string()) && Contains("truncated"));
    }
    SECTION("a truncated JPEG") {
        std::ifstream j(dir / "a" / "photo.jpg", std::ios::binary);
        bytes jpg((std::istreambuf_iterator<char>(j)), std::istreambuf_iterator<char>());
        j.close();
        jpg.resize(jpg.size() / 2);
        write_bytes(dir / "a" / "photo.jpg", jpg);
        CHECK_THROWS_WITH(sd::load_image_folder(dir.path),
                          Contains((dir / "a" / "photo.jpg").string()) && Contains("cannot decode"));
    }
    SECTION("not an image at all") {
        write_text(dir / "a" / "fake.bmp", "hello");
        CHECK_THROWS_WITH(sd::load_image_folder(dir.path), Contains("fake.bmp") && Contains("cannot decode"));
    }
}
#endif
