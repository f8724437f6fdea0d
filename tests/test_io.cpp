// The shared file helpers (core/file_io.hpp, core/gzip_stream.hpp): atomic replacement of a
// file and what a failed write leaves behind, whole-file reads, the little-endian encoding
// of every staticnet file, the hex and shape text of error messages, and the raw-or-gzip
// input stream.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <staticnet/core/error.hpp>
#include <staticnet/core/file_io.hpp>
#include <staticnet/core/gzip_stream.hpp>
#include <staticnet/io/png.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fs = std::filesystem;
namespace sn = staticnet;
namespace detail = staticnet::detail;
using Catch::Contains;

namespace {

using bytes = std::vector<std::uint8_t>;

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

// What the directory holds, by name (temporary files included: their names start with '.').
std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

void replace_with(const fs::path& file, const std::string& text) {
    detail::write_file_atomically<sn::data_error>(file, "cannot write '" + file.string() + "'",
                                                  [&](detail::output_file& out) { out.write(std::string_view(text)); });
}

}  // namespace

// ---------------------------------------------------------------- atomic write

TEST_CASE("write_file_atomically creates and replaces a file, leaving no temporary file", "[io][atomic]") {
    temp_dir dir;
    const auto file = dir / "a.txt";
    replace_with(file, "first");
    CHECK(read_text(file) == "first");
    replace_with(file, "second, longer");
    CHECK(read_text(file) == "second, longer");
    replace_with(file, "");
    CHECK(read_text(file).empty());
    CHECK(names_in(dir.path) == std::vector<std::string>{"a.txt"});

    // The writer may seek back, e.g. to fill in a table it only knows at the end.
    detail::write_file_atomically<sn::data_error>(file, "ctx", [](detail::output_file& out) {
        out.write(std::string_view("....tail"));
        out.seek(0);
        out.write(std::string_view("head"));
    });
    CHECK(read_text(file) == "headtail");
    CHECK(names_in(dir.path) == std::vector<std::string>{"a.txt"});
}

TEST_CASE("an atomic write keeps the permissions of the file it replaces", "[io][atomic]") {
    temp_dir dir;
    const auto file = dir.path / "private.ckpt";
    write_text(file, "old");
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    replace_with(file, "new");
    CHECK(read_text(file) == "new");
    CHECK((fs::status(file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("an atomic write through a dangling symbolic link creates the link's target", "[io][atomic]") {
    temp_dir dir;
    fs::create_symlink("target.bin", dir.path / "link.bin");
    replace_with(dir.path / "link.bin", "data");
    CHECK(fs::is_symlink(dir.path / "link.bin"));
    CHECK(read_text(dir.path / "target.bin") == "data");
}

TEST_CASE("a failed atomic write leaves the old file intact and no temporary file", "[io][atomic]") {
    temp_dir dir;
    const auto file = dir / "keep.txt";
    write_text(file, "old content");

    SECTION("the writer throws half-way") {
        CHECK_THROWS_WITH(detail::write_file_atomically<sn::data_error>(file, "ctx",
                                                                        [](detail::output_file& out) {
                                                                            out.write(std::string_view("new con"));
                                                                            throw std::runtime_error("bad sample");
                                                                        }),
                          "bad sample");
    }
    SECTION("the file cannot be replaced: it is a directory") {
        const auto sub = dir / "sub";
        fs::create_directory(sub);
        CHECK_THROWS_AS(replace_with(sub, "x"), sn::data_error);
        CHECK_THROWS_WITH(replace_with(sub, "x"), Contains("cannot write '" + sub.string() + "'") &&
                                                      Contains("cannot rename"));
        CHECK(fs::is_directory(sub));
        fs::remove(sub);
    }
    SECTION("a seek the file cannot do") {
        CHECK_THROWS_WITH(detail::write_file_atomically<sn::checkpoint_error>(
                              file, "ctx",
                              [](detail::output_file& out) { out.seek(std::numeric_limits<std::uint64_t>::max()); }),
                          Contains("ctx: cannot seek in '"));
    }
    CHECK(read_text(file) == "old content");
    CHECK(names_in(dir.path) == std::vector<std::string>{"keep.txt"});
}

TEST_CASE("an atomic write into a missing directory names the file and the reason", "[io][atomic]") {
    temp_dir dir;
    const auto file = dir / "no-such-dir" / "x.bin";
    try {
        replace_with(file, "x");
        FAIL("no exception");
    } catch (const sn::data_error& e) {
        const std::string message = e.what();
        CHECK_THAT(message, Contains("cannot write '" + file.string() + "': cannot create '") &&
                                Contains("no-such-dir") && Contains("No such file or directory"));
    }
    CHECK(names_in(dir.path).empty());
}

TEST_CASE("an atomic write replaces the target of a symbolic link and writes special files in place",
          "[io][atomic]") {
    temp_dir dir;
    const auto target = dir / "target.txt";
    const auto link = dir / "link.txt";
    write_text(target, "old");
    fs::create_symlink(target, link);
    replace_with(link, "new");
    CHECK(fs::is_symlink(link));
    CHECK(read_text(target) == "new");
    CHECK(names_in(dir.path) == std::vector<std::string>{"link.txt", "target.txt"});

    // A character device cannot be replaced by a rename (nor should it be, even as root).
    replace_with("/dev/null", "discarded");
    CHECK(fs::is_character_file("/dev/null"));
}

// ---------------------------------------------------------------- reading

TEST_CASE("read_file_bytes reads a whole file, or names it in the error", "[io][read]") {
    temp_dir dir;
    const auto file = dir / "data.bin";
    std::string big(200'000, 'x');
    big[123'456] = 'y';
    write_text(file, big);
    const auto got = detail::read_file_bytes<sn::checkpoint_error>(file);
    CHECK(std::string(got.begin(), got.end()) == big);
    write_text(file, "");
    CHECK(detail::read_file_bytes<sn::checkpoint_error>(file).empty());
    CHECK_THROWS_AS(detail::read_file_bytes<sn::checkpoint_error>(dir / "gone.bin"), sn::checkpoint_error);
    CHECK_THROWS_WITH(detail::read_file_bytes<sn::checkpoint_error>(dir / "gone.bin"),
                      Contains("cannot open") && Contains("gone.bin"));
    CHECK_THROWS_WITH(detail::read_file_bytes<sn::data_error>(dir.path), Contains("cannot read"));
}

// ---------------------------------------------------------------- byte order

TEST_CASE("values are stored little-endian whatever the host", "[io][endian]") {
    std::array<std::uint8_t, 8> b{};
    detail::store_le(b.data(), std::uint32_t{0x11223344});
    CHECK(b[0] == 0x44);
    CHECK(b[1] == 0x33);
    CHECK(b[2] == 0x22);
    CHECK(b[3] == 0x11);
    CHECK(detail::load_le<std::uint32_t>(b.data()) == 0x11223344u);
    detail::store_le(b.data(), std::uint64_t{0x0102030405060708});
    CHECK(b == std::array<std::uint8_t, 8>{8, 7, 6, 5, 4, 3, 2, 1});
    CHECK(detail::load_le<std::uint64_t>(b.data()) == 0x0102030405060708u);
    detail::store_le(b.data(), 1.0f);  // IEEE 754: 0x3f800000
    CHECK(b[0] == 0x00);
    CHECK(b[3] == 0x3f);
    CHECK(detail::load_le<float>(b.data()) == 1.0f);

    detail::byte_writer w;
    w.put(std::uint16_t{0xBEEF});
    w.put(-2.5);
    const std::array<float, 3> floats{0.5f, -0.0f, 3.25f};
    w.put_floats(floats);
    w.put_bytes("ab", 2);
    CHECK(w.bytes().size() == 2 + 8 + 12 + 2);
    CHECK(w.bytes()[0] == 0xEF);
    CHECK(w.bytes()[1] == 0xBE);

    detail::byte_reader r(w.bytes());
    CHECK(r.get<std::uint16_t>() == 0xBEEF);
    CHECK(r.get<double>() == -2.5);
    std::array<float, 3> back{};
    r.get_floats(back);
    CHECK(back == floats);
    std::array<char, 2> ab{};
    r.get_bytes(ab.data(), ab.size());
    CHECK(ab == std::array<char, 2>{'a', 'b'});
    CHECK_THROWS_AS(r.get<std::uint8_t>(), std::out_of_range);
}

// ---------------------------------------------------------------- message text

TEST_CASE("hex and shape text", "[io][text]") {
    CHECK(detail::hex_text(0xab, 8) == "0x000000ab");
    CHECK(detail::hex_text(0xDEADBEEF, 8) == "0xdeadbeef");
    CHECK(detail::hex_text(0x0123456789abcdef, 16) == "0x0123456789abcdef");
    CHECK(detail::hex_text(0xff, 4, detail::hex_case::upper) == "0x00FF");
    CHECK(detail::hex_byte(0x0d) == "0x0D");
    CHECK(detail::hex_byte(0x1f) == "0x1F");

    CHECK(detail::shape_text({28, 28, 1}) == "28x28x1");
    CHECK(detail::shape_text(std::vector<std::uint32_t>{60000, 28, 28}) == "60000x28x28");
    CHECK(detail::shape_text(std::vector<std::uint32_t>{}) == "()");
}

// ---------------------------------------------------------------- raw or gzip input

TEST_CASE("gzip_stream reads raw and gzip files alike", "[io][gzip]") {
    temp_dir dir;
    std::string content;
    for (int i = 0; i < 100'000; ++i) content += static_cast<char>('a' + i * 7 % 26);
    write_text(dir / "raw.bin", content);
    gzFile gz = gzopen((dir / "packed.gz").c_str(), "wb");
    REQUIRE(gz != nullptr);
    REQUIRE(gzwrite(gz, content.data(), static_cast<unsigned>(content.size())) == static_cast<int>(content.size()));
    REQUIRE(gzclose(gz) == Z_OK);

    for (const char* name : {"raw.bin", "packed.gz"}) {
        INFO(name);
        detail::gzip_stream s(dir / name, "test file");
        CHECK(s.compressed() == (std::string(name) == "packed.gz"));
        std::string got(content.size() + 10, '\0');
        const std::size_t n = s.read(reinterpret_cast<std::uint8_t*>(got.data()), got.size());
        got.resize(n);
        CHECK(got == content);
        CHECK(s.offset() == content.size());
        CHECK(s.drain() == 0);
    }
    CHECK_THROWS_WITH(detail::gzip_stream(dir / "gone", "test file"),
                      Contains("test file '") && Contains("gone") && Contains("does not exist"));
}

// ------------------------------------------------------------------ PNG (the report's images)

TEST_CASE("encode_png writes a PNG whose chunks check out and whose rows inflate back", "[io][png]") {
    const std::vector<std::uint8_t> pixels{0, 64, 128, 255, 10, 20};  // 3 x 2 grey
    const std::vector<std::uint8_t> png = sn::encode_png(pixels, 3, 2, 1);
    REQUIRE(png.size() > 8 + 3 * 12);
    CHECK(std::equal(png.begin(), png.begin() + 8, std::array<std::uint8_t, 8>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}.begin()));
    auto be32 = [&](std::size_t at) {
        return std::uint32_t{png[at]} << 24 | std::uint32_t{png[at + 1]} << 16 | std::uint32_t{png[at + 2]} << 8 | png[at + 3];
    };
    std::vector<std::string> types;
    std::vector<std::uint8_t> idat;
    for (std::size_t at = 8; at < png.size();) {
        const std::uint32_t length = be32(at);
        const std::string type(png.begin() + static_cast<std::ptrdiff_t>(at + 4), png.begin() + static_cast<std::ptrdiff_t>(at + 8));
        types.push_back(type);
        CHECK(be32(at + 8 + length) == static_cast<std::uint32_t>(::crc32_z(0L, png.data() + at + 4, length + 4)));
        if (type == "IHDR") {
            CHECK(be32(at + 8) == 3);   // width
            CHECK(be32(at + 12) == 2);  // height
            CHECK(png[at + 16] == 8);   // bit depth
            CHECK(png[at + 17] == 0);   // grey
        }
        if (type == "IDAT") idat.assign(png.begin() + static_cast<std::ptrdiff_t>(at + 8), png.begin() + static_cast<std::ptrdiff_t>(at + 8 + length));
        at += 12 + length;
    }
    CHECK(types == std::vector<std::string>{"IHDR", "IDAT", "IEND"});
    std::vector<std::uint8_t> rows(8);
    uLongf size = rows.size();
    REQUIRE(::uncompress(rows.data(), &size, idat.data(), static_cast<uLong>(idat.size())) == Z_OK);
    CHECK(rows == std::vector<std::uint8_t>{0, 0, 64, 128, 0, 255, 10, 20});  // filter byte 0, then each row
    CHECK_THROWS_AS(sn::encode_png(pixels, 4, 2, 1), sn::error);
    CHECK_THROWS_AS(sn::encode_png(pixels, 1, 3, 2), sn::error);  // 2 channels: neither grey nor RGB
}

TEST_CASE("png_data_uri is base64 with padding", "[io][png]") {
    auto uri = [](std::string_view s) {
        return sn::png_data_uri({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
    };
    CHECK(uri("") == "data:image/png;base64,");
    CHECK(uri("f") == "data:image/png;base64,Zg==");
    CHECK(uri("fo") == "data:image/png;base64,Zm8=");
    CHECK(uri("foobar") == "data:image/png;base64,Zm9vYmFy");
    CHECK(uri("\xff\xfe") == "data:image/png;base64,//4=");
}
