// Shard files and sets, and the batch loader: exact round trips, disjoint and
// covering splits for many rank and shard counts, every malformed input the shard reader must
// refuse (with a message naming the file and the problem), and the loader's batches,
// augmentation and error propagation.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>

#include "temp_dir.hpp"
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <numeric>
#include <sstream>
#include <staticnet/data/idx.hpp>
#include <staticnet/data/loader.hpp>
#include <staticnet/data/shard_format.hpp>
#include <staticnet/data/shard_set.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace sd = staticnet::data;
using Catch::Contains;

namespace {

using bytes = std::vector<std::uint8_t>;

void write_all(const fs::path& p, const bytes& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(out.good());
}

bytes read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// n samples of h x w x c pixels that are exact bytes / 255 (like IDX data). Sample i is
// recognisable: its first pixel is i % 256 and its second i / 256.
sd::dataset make_data(std::size_t n, std::size_t h = 3, std::size_t w = 4, std::size_t c = 1,
                      std::size_t classes = 10) {
    sd::dataset d;
    d.images = xt::xtensor<float, 4>(std::array<std::size_t, 4>{n, h, w, c});
    d.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{n});
    d.num_classes = classes;
    const std::size_t sample = h * w * c;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < sample; ++k) {
            std::size_t v = (i * 131 + k * 37 + 11) % 256;
            if (k == 0) v = i % 256;
            if (k == 1) v = (i / 256) % 256;
            d.images.data()[i * sample + k] = static_cast<float>(v) / 255.0f;
        }
        d.labels(i) = static_cast<std::int32_t>((i * 7 + 3) % classes);
    }
    return d;
}

// The sample id encoded by make_data.
std::size_t id_of(const sd::dataset& d, std::size_t i) {
    const std::size_t sample = d.images.size() / d.size();
    const float* p = d.images.data() + i * sample;
    return static_cast<std::size_t>(std::lround(p[0] * 255.0f)) +
           256 * static_cast<std::size_t>(std::lround(p[1] * 255.0f));
}

bool same_data(const sd::dataset& a, const sd::dataset& b) {
    return a.images.shape() == b.images.shape() && a.labels.shape() == b.labels.shape() &&
           a.num_classes == b.num_classes && std::equal(a.images.begin(), a.images.end(), b.images.begin()) &&
           std::equal(a.labels.begin(), a.labels.end(), b.labels.begin());
}

// Rows [first, last) of a data set.
sd::dataset slice(const sd::dataset& d, std::size_t first, std::size_t last) {
    sd::dataset s;
    const auto& sh = d.images.shape();
    s.images = xt::xtensor<float, 4>(std::array<std::size_t, 4>{last - first, sh[1], sh[2], sh[3]});
    s.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{last - first});
    s.num_classes = d.num_classes;
    const std::size_t sample = sh[1] * sh[2] * sh[3];
    std::copy(d.images.data() + first * sample, d.images.data() + last * sample, s.images.data());
    std::copy(d.labels.data() + first, d.labels.data() + last, s.labels.data());
    return s;
}

// Concatenation of data sets in order.
sd::dataset concat(const std::vector<sd::dataset>& parts, const sd::dataset& like) {
    std::size_t n = 0;
    for (const auto& p : parts) n += p.size();
    const auto& sh = like.images.shape();
    sd::dataset out;
    out.images = xt::xtensor<float, 4>(std::array<std::size_t, 4>{n, sh[1], sh[2], sh[3]});
    out.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{n});
    out.num_classes = like.num_classes;
    std::size_t at = 0;
    const std::size_t sample = sh[1] * sh[2] * sh[3];
    for (const auto& p : parts) {
        std::copy(p.images.begin(), p.images.end(), out.images.data() + at * sample);
        std::copy(p.labels.begin(), p.labels.end(), out.labels.data() + at);
        at += p.size();
    }
    return out;
}

// Writes `data` as a set of k shards in `dir`, record ranges [i*N/k, (i+1)*N/k).
void write_set(const fs::path& dir, const sd::dataset& data, std::size_t k, std::uint32_t per_block = 4) {
    fs::create_directories(dir);
    for (std::size_t i = 0; i < k; ++i)
        sd::write_shard(dir / sd::shard_file_name(i, k), data, i * data.size() / k, (i + 1) * data.size() / k,
                        {.records_per_block = per_block});
}

// Little-endian field access and checksum repair, to forge files a buggy writer could make.
std::uint64_t get(const bytes& b, std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b[at + i]} << (8 * i);
    return v;
}
void put(bytes& b, std::size_t at, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t crc(const std::uint8_t* p, std::size_t n) {
    return static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0), p, static_cast<uInt>(n)));
}
void fix_header_crc(bytes& b) { put(b, 60, crc(b.data(), 60), 4); }
struct layout {
    std::size_t record, per_block, records, blocks, data;
};
layout layout_of(const bytes& b) {
    layout l{};
    l.record = get(b, 12, 4) * get(b, 16, 4) * get(b, 20, 4) + (b[25] == 2 ? 4 : 1);
    l.records = get(b, 32, 8);
    l.per_block = get(b, 40, 4);
    l.blocks = (l.records + l.per_block - 1) / l.per_block;
    l.data = 64 + 4 * l.blocks;
    return l;
}
void fix_block_crc(bytes& b, std::size_t j) {
    const layout l = layout_of(b);
    const std::size_t n = std::min(l.per_block, l.records - j * l.per_block) * l.record;
    put(b, 64 + 4 * j, crc(b.data() + l.data + j * l.per_block * l.record, n), 4);
}

}  // namespace

// ============================================================================ shard files

TEST_CASE("shard files round trip exactly, whole and in record ranges", "[data][shard]") {
    temp_dir dir;
    const auto data = make_data(23, 3, 4, 2);
    for (std::uint32_t per_block : {1u, 4u, 23u, 1024u}) {
        const auto file = dir / (std::string("all-") + std::to_string(per_block) + ".snshard");
        sd::write_shard(file, data, {.records_per_block = per_block});
        CHECK(same_data(sd::read_shard(file), data));
        CHECK(same_data(sd::read_shard(file, staticnet::shape{3, 4, 2}), data));
        CHECK(fs::file_size(file) == 64 + 4 * ((23 + per_block - 1) / per_block) + 23 * (3 * 4 * 2 + 1));
        for (auto [first, count] : {std::pair<std::size_t, std::size_t>{0, 0}, {0, 23}, {5, 7}, {22, 1}, {23, 0}})
            CHECK(same_data(sd::read_shard_records(file, first, count), slice(data, first, first + count)));
        CHECK_THROWS_AS(sd::read_shard_records(file, 20, 4), std::out_of_range);
    }

    // A list of indices, in its order; and an empty shard.
    const std::vector<std::size_t> picks{7, 0, 22, 7};
    sd::write_shard(dir / "picks.snshard", data, picks);
    const auto got = sd::read_shard(dir / "picks.snshard");
    REQUIRE(got.size() == 4);
    for (std::size_t i = 0; i < picks.size(); ++i) {
        CHECK(id_of(got, i) == picks[i]);
        CHECK(got.labels(i) == data.labels(picks[i]));
    }
    sd::write_shard(dir / "empty.snshard", data, 3, 3);
    const auto empty = sd::read_shard(dir / "empty.snshard");
    CHECK(empty.size() == 0);
    CHECK(empty.images.shape() == std::array<std::size_t, 4>{0, 3, 4, 2});
    CHECK(empty.num_classes == 10);

    // More than 256 classes: labels are stored as int32.
    const auto many = make_data(9, 2, 2, 1, 1000);
    sd::write_shard(dir / "many.snshard", many, {.records_per_block = 2});
    CHECK(read_all(dir / "many.snshard")[25] == 2);
    CHECK(same_data(sd::read_shard(dir / "many.snshard"), many));

    // Atomic writes leave no temporary file behind, and replace an existing file.
    sd::write_shard(dir / "picks.snshard", data, 0, 2);
    CHECK(sd::read_shard(dir / "picks.snshard").size() == 2);
    for (const auto& e : fs::directory_iterator(dir.path)) CHECK(e.path().extension() == ".snshard");
}

TEST_CASE("IDX -> shards -> load_shards over all ranks gives the IDX data set exactly", "[data][shard]") {
    temp_dir dir;
    // IDX files of 37 images of 5x4 pixels with every byte value, and their labels.
    const std::size_t n = 37, h = 5, w = 4;
    bytes images{0, 0, 0x08, 3, 0, 0, 0, n, 0, 0, 0, h, 0, 0, 0, w};
    bytes labels{0, 0, 0x08, 1, 0, 0, 0, n};
    for (std::size_t i = 0; i < n * h * w; ++i) images.push_back(static_cast<std::uint8_t>(i * 97 % 256));
    for (std::size_t i = 0; i < n; ++i) labels.push_back(static_cast<std::uint8_t>(i % 10));
    write_all(dir / "images.idx", images);
    write_all(dir / "labels.idx", labels);
    const auto original = sd::load_idx(dir / "images.idx", dir / "labels.idx");

    for (std::size_t k : {1u, 3u, 5u}) {
        const auto set = dir / (std::string("set") + std::to_string(k));
        write_set(set, original, k, 4);
        for (std::size_t ranks = 1; ranks <= 5; ++ranks) {
            std::vector<sd::dataset> parts;
            for (std::size_t r = 0; r < ranks; ++r)
                parts.push_back(sd::load_shards(set, r, ranks, staticnet::shape{5, 4, 1}));
            INFO("K=" << k << " R=" << ranks);
            CHECK(same_data(concat(parts, original), original));
            for (std::size_t r = 0; r < ranks; ++r) {  // the byte form holds the same samples
                const auto kept = sd::load_shard_bytes(set, r, ranks, staticnet::shape{5, 4, 1});
                CHECK(same_data(sd::to_dataset(kept), parts[r]));
            }
        }
    }
}

TEST_CASE("every rank's samples are disjoint and together cover the data set (R=1..5, K=1..8)", "[data][shard]") {
    temp_dir dir;
    for (std::size_t n : {0u, 6u, 29u}) {
        const auto data = make_data(n);
        for (std::size_t k = 1; k <= 8; ++k) {
            std::string name = "n";  // built with += : GCC 12 misfires -Wrestrict on "x" + std::string
            name += std::to_string(n);
            name += "k";
            name += std::to_string(k);
            const auto set = dir / name;
            write_set(set, data, k, 3);
            for (std::size_t ranks = 1; ranks <= 5; ++ranks) {
                INFO("N=" << n << " K=" << k << " R=" << ranks);
                std::vector<std::size_t> seen(n, 0);
                std::vector<std::size_t> files, counts;
                for (std::size_t r = 0; r < ranks; ++r) {
                    sd::shard_load_report report;
                    const auto part = sd::load_shards(set, r, ranks, {}, &report);
                    CHECK(report.record_level == (k < ranks));
                    files.push_back(report.opened.size());
                    counts.push_back(part.size());
                    for (std::size_t i = 0; i < part.size(); ++i) {
                        const std::size_t id = id_of(part, i);
                        REQUIRE(id < n);
                        ++seen[id];
                        CHECK(part.labels(i) == data.labels(id));
                    }
                }
                CHECK(std::all_of(seen.begin(), seen.end(), [](std::size_t c) { return c == 1; }));
                // File-level balance: file counts differ by at most one; record-level: one file each.
                CHECK(*std::max_element(files.begin(), files.end()) - *std::min_element(files.begin(), files.end()) <=
                      1);
                CHECK(*std::min_element(files.begin(), files.end()) >= 1);
            }
        }
    }
}

TEST_CASE("assign_shards is balanced and complete", "[data][shard]") {
    for (std::size_t k = 0; k <= 9; ++k)
        for (std::size_t ranks = 1; ranks <= 6; ++ranks) {
            INFO("K=" << k << " R=" << ranks);
            std::vector<std::size_t> owners(k, 0), sizes;
            for (std::size_t r = 0; r < ranks; ++r) {
                const auto mine = sd::assign_shards(k, r, ranks);
                sizes.push_back(mine.size());
                for (std::size_t s : mine) {
                    REQUIRE(s < k);
                    ++owners[s];
                }
            }
            if (k >= ranks) {
                CHECK(std::all_of(owners.begin(), owners.end(), [](std::size_t c) { return c == 1; }));
                CHECK(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()) <=
                      1);
            } else {
                // Fewer shards than ranks: every shard is shared by R/K or R/K + 1 ranks.
                for (std::size_t c : owners) {
                    CHECK(c >= ranks / k);
                    CHECK(c <= ranks / k + 1);
                }
                if (k == 0) CHECK(std::all_of(sizes.begin(), sizes.end(), [](std::size_t c) { return c == 0; }));
            }
        }
    CHECK_THROWS_AS(sd::assign_shards(4, 0, 0), std::invalid_argument);
    CHECK_THROWS_AS(sd::assign_shards(4, 3, 3), std::invalid_argument);
}

TEST_CASE("each rank opens only its own shard files", "[data][shard]") {
    temp_dir dir;
    const auto data = make_data(40);
    write_set(dir.path, data, 8, 2);
    const auto names = sd::list_shards(dir.path);
    REQUIRE(names.size() == 8);

    // File level, 3 ranks: files {0,1}, {2,3,4}, {5,6,7}. Every other file is replaced by
    // garbage: a rank that opened it would fail.
    const std::vector<std::vector<std::size_t>> expected{{0, 1}, {2, 3, 4}, {5, 6, 7}};
    for (std::size_t r = 0; r < 3; ++r) {
        temp_dir copy;
        for (std::size_t s = 0; s < 8; ++s) {
            const bool mine = std::count(expected[r].begin(), expected[r].end(), s) != 0;
            if (mine)
                fs::copy_file(names[s], copy / names[s].filename().string());
            else
                write_all(copy / names[s].filename().string(), bytes{'g', 'a', 'r', 'b', 'a', 'g', 'e'});
        }
        sd::shard_load_report report;
        const auto part = sd::load_shards(copy.path, r, 3, staticnet::shape{3, 4, 1}, &report);
        REQUIRE(report.opened.size() == expected[r].size());
        for (std::size_t i = 0; i < expected[r].size(); ++i) {
            CHECK(report.opened[i].file.filename() == names[expected[r][i]].filename());
            CHECK(report.opened[i].whole);
        }
        CHECK(part.size() == 5 * expected[r].size());
        CHECK(id_of(part, 0) == 5 * expected[r].front());
    }

    // Record level, 1 shard of 9 records in blocks of 2 over 3 ranks: records [0,3), [3,6),
    // [6,9). Damaging block 4 (records 8..8) breaks rank 2 only; block 1 (records 2..3)
    // breaks ranks 0 and 1, which both read it.
    temp_dir one;
    sd::write_shard(one / sd::shard_file_name(0, 1), make_data(9), {.records_per_block = 2});
    const auto file = one / sd::shard_file_name(0, 1);
    const bytes good = read_all(file);
    const layout l = layout_of(good);
    for (std::size_t r = 0; r < 3; ++r) {
        sd::shard_load_report report;
        const auto part = sd::load_shards(one.path, r, 3, {}, &report);
        REQUIRE(report.opened.size() == 1);
        CHECK(report.record_level);
        CHECK_FALSE(report.opened[0].whole);
        CHECK(report.opened[0].first == 3 * r);
        CHECK(report.opened[0].count == 3);
        CHECK(id_of(part, 0) == 3 * r);
    }
    // Rank 0 warns about the fallback on stderr.
    std::ostringstream captured;
    auto* old_cerr = std::cerr.rdbuf(captured.rdbuf());
    (void)sd::load_shards(one.path, 0, 3);
    std::cerr.rdbuf(old_cerr);
    CHECK_THAT(captured.str(), Contains("warning") && Contains("1 shard file") && Contains("3 ranks"));

    bytes bad = good;
    bad[l.data + 4 * 2 * l.record + 5] ^= 0x40;  // block 4
    write_all(file, bad);
    CHECK(sd::load_shards(one.path, 0, 3).size() == 3);
    CHECK(sd::load_shards(one.path, 1, 3).size() == 3);
    REQUIRE_THROWS_WITH(sd::load_shards(one.path, 2, 3),
                        Contains(file.string()) && Contains("block checksum mismatch in block 4"));
    bad = good;
    bad[l.data + 1 * 2 * l.record + 1] ^= 0x01;  // block 1
    write_all(file, bad);
    CHECK_THROWS_WITH(sd::load_shards(one.path, 0, 3), Contains("block checksum mismatch in block 1"));
    CHECK_THROWS_WITH(sd::load_shards(one.path, 1, 3), Contains("block checksum mismatch in block 1"));
    CHECK(sd::load_shards(one.path, 2, 3).size() == 3);
}

TEST_CASE("list_shards orders the set and refuses incomplete or mixed sets", "[data][shard][errors]") {
    temp_dir dir;
    const auto data = make_data(6);
    // Created out of order; other files are ignored.
    for (std::size_t i : {2u, 0u, 1u}) sd::write_shard(dir / sd::shard_file_name(i, 3), data, i, i + 1);
    write_all(dir / "README", bytes{'h', 'i'});
    write_all(dir / ".shard-00000-of-00003.snshard.tmp-123", bytes{});
    const auto files = sd::list_shards(dir.path);
    REQUIRE(files.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) CHECK(files[i].filename() == sd::shard_file_name(i, 3));
    CHECK(sd::shard_file_name(3, 8) == "shard-00003-of-00008.snshard");
    CHECK(sd::shard_file_name(7, 123456) == "shard-00007-of-123456.snshard");

    SECTION("missing directory") {
        const auto missing = dir / "nope";
        REQUIRE_THROWS_WITH(sd::list_shards(missing), Contains(missing.string()) && Contains("does not exist"));
        REQUIRE_THROWS_WITH(sd::load_shards(missing, 0, 1), Contains(missing.string()) && Contains("does not exist"));
    }
    SECTION("not a directory") {
        const auto file = dir / "README";
        REQUIRE_THROWS_WITH(sd::list_shards(file), Contains(file.string()) && Contains("not a directory"));
    }
    SECTION("empty directory") {
        temp_dir empty;
        REQUIRE_THROWS_WITH(sd::list_shards(empty.path), Contains(empty.path.string()) && Contains("no shard files"));
        write_all(empty / "notes.txt", bytes{'x'});
        REQUIRE_THROWS_WITH(sd::load_shards(empty.path, 0, 2),
                            Contains(empty.path.string()) && Contains("no shard files"));
    }
    SECTION("a gap in the numbering names the missing file") {
        fs::remove(dir / sd::shard_file_name(1, 3));
        REQUIRE_THROWS_WITH(sd::list_shards(dir.path), Contains((dir / "shard-00001-of-00003.snshard").string()) &&
                                                           Contains("missing shard file"));
        REQUIRE_THROWS_WITH(sd::load_shards(dir.path, 0, 1),
                            Contains("shard-00001-of-00003.snshard") && Contains("missing"));
    }
    SECTION("the last shard missing") {
        fs::remove(dir / sd::shard_file_name(2, 3));
        REQUIRE_THROWS_WITH(sd::list_shards(dir.path),
                            Contains("shard-00002-of-00003.snshard") && Contains("missing shard file"));
    }
    SECTION("mismatched \"of\" counts") {
        sd::write_shard(dir / sd::shard_file_name(3, 4), data, 0, 1);
        REQUIRE_THROWS_WITH(sd::list_shards(dir.path),
                            Contains("shard-00003-of-00004.snshard") && Contains("mismatched shard counts"));
    }
    SECTION("badly named, out-of-range and duplicate shard files") {
        write_all(dir / "data.snshard", bytes{});
        REQUIRE_THROWS_WITH(sd::list_shards(dir.path), Contains("data.snshard") && Contains("unexpected file name"));
        fs::remove(dir / "data.snshard");
        write_all(dir / "shard-00003-of-00003.snshard", bytes{});
        REQUIRE_THROWS_WITH(sd::list_shards(dir.path),
                            Contains("shard-00003-of-00003.snshard") && Contains("out of range"));
        fs::remove(dir / "shard-00003-of-00003.snshard");
        fs::copy_file(dir / sd::shard_file_name(1, 3), dir / "shard-1-of-3.snshard");
        REQUIRE_THROWS_WITH(sd::list_shards(dir.path),
                            Contains("shard-1-of-3.snshard") && Contains("duplicate shard index 1"));
    }
}

TEST_CASE("shard reader: missing files, directories and truncation", "[data][shard][errors]") {
    temp_dir dir;
    const auto file = dir / "a.snshard";
    sd::write_shard(file, make_data(10), {.records_per_block = 3});
    const bytes good = read_all(file);
    const layout l = layout_of(good);

    const auto missing = dir / "missing.snshard";
    REQUIRE_THROWS_WITH(sd::read_shard(missing), Contains(missing.string()) && Contains("does not exist"));
    REQUIRE_THROWS_WITH(sd::read_shard(dir.path), Contains(dir.path.string()) && Contains("directory"));

    // Cut in the header, the CRC table and the records: each "truncated", with the offset.
    for (std::size_t keep :
         {std::size_t{0}, std::size_t{7}, std::size_t{63}, std::size_t{66}, l.data + 5, good.size() - 1}) {
        INFO("kept " << keep << " bytes");
        write_all(file, bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(keep)));
        REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) && Contains("truncated file") &&
                                                      Contains(std::string("byte offset ") + std::to_string(keep)));
        const auto info = sd::verify_shard(file);
        CHECK_FALSE(info.ok);
        CHECK_FALSE(info.header_ok);
        CHECK_THAT(info.problem, Contains("truncated file"));
    }
}

TEST_CASE("shard reader: wrong magic, unknown version and bad header fields", "[data][shard][errors]") {
    temp_dir dir;
    const auto file = dir / "b.snshard";
    sd::write_shard(file, make_data(5), {.records_per_block = 2});
    const bytes good = read_all(file);

    bytes b = good;
    b[3] = 'X';
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file),
                        Contains(file.string()) && Contains("wrong magic") && Contains("byte offset 0"));
    b = bytes(100, 0);  // an IDX-looking file of the right size is still refused
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) && Contains("wrong magic"));

    b = good;
    put(b, 8, 2, 4);  // the version comes before the checksum: a newer file says so
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file),
                        Contains(file.string()) && Contains("unknown format version 2") && Contains("byte offset 8"));

    struct field_case {
        std::size_t offset, size;
        std::uint64_t value;
        const char* problem;
    };
    for (const auto& c :
         {field_case{24, 1, 7, "unknown pixel type code"}, field_case{25, 1, 9, "unknown label type code"},
          field_case{26, 1, 1, "reserved header bytes"}, field_case{50, 1, 1, "reserved header bytes"},
          field_case{12, 4, 0, "invalid sample shape"}, field_case{20, 4, 0, "invalid sample shape"},
          field_case{12, 4, 0xFFFFFFFF, "absurd sample shape"}, field_case{28, 4, 0, "invalid number of classes"},
          field_case{28, 4, 300, "invalid number of classes"}, field_case{40, 4, 0, "invalid records per block"}}) {
        INFO(c.problem << " at " << c.offset);
        b = good;
        put(b, c.offset, c.value, c.size);
        fix_header_crc(b);
        write_all(file, b);
        REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) && Contains(c.problem));
    }
}

TEST_CASE("shard reader: shape not matching the expected one", "[data][shard][errors]") {
    temp_dir dir;
    const auto file = dir / "c.snshard";
    sd::write_shard(file, make_data(4, 3, 4, 1));
    REQUIRE_THROWS_WITH(
        sd::read_shard(file, staticnet::shape{28, 28, 1}),
        Contains(file.string()) && Contains("shape mismatch") && Contains("3x4x1") && Contains("28x28x1"));
    REQUIRE_THROWS_WITH(sd::read_shard_records(file, 0, 1, staticnet::shape{3, 4, 2}),
                        Contains(file.string()) && Contains("shape mismatch"));
    CHECK_THROWS_AS(sd::read_shard(file, staticnet::shape{12}), std::invalid_argument);

    // load_shards checks the expected shape, and without one that all files agree.
    temp_dir set;
    sd::write_shard(set / sd::shard_file_name(0, 2), make_data(4, 3, 4, 1));
    sd::write_shard(set / sd::shard_file_name(1, 2), make_data(4, 4, 3, 1));
    REQUIRE_THROWS_WITH(sd::load_shards(set.path, 0, 1),
                        Contains(sd::shard_file_name(1, 2)) && Contains("shape mismatch"));
    REQUIRE_THROWS_WITH(sd::load_shards(set.path, 0, 2, staticnet::shape{4, 3, 1}),
                        Contains(sd::shard_file_name(0, 2)) && Contains("shape mismatch"));
    CHECK(sd::load_shards(set.path, 1, 2, staticnet::shape{4, 3, 1}).size() == 4);
    sd::write_shard(set / sd::shard_file_name(1, 2), make_data(4, 3, 4, 1, 7));
    REQUIRE_THROWS_WITH(sd::load_shards(set.path, 0, 1),
                        Contains(sd::shard_file_name(1, 2)) && Contains("mismatched number of classes"));
}

TEST_CASE("shard reader: record count not matching the file size", "[data][shard][errors]") {
    temp_dir dir;
    const auto file = dir / "d.snshard";
    sd::write_shard(file, make_data(8), {.records_per_block = 8});
    const bytes good = read_all(file);

    bytes b = good;
    put(b, 32, 7, 8);  // one record fewer than stored
    fix_header_crc(b);
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) &&
                                                  Contains("record count does not match the file size") &&
                                                  Contains("unexpected bytes"));
    b = good;
    put(b, 32, 9, 8);  // one more
    fix_header_crc(b);
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file),
                        Contains(file.string()) && Contains("record count does not match the file size"));
    b = good;
    put(b, 32, std::numeric_limits<std::uint64_t>::max() / 3, 8);  // sizes that overflow 64 bits
    fix_header_crc(b);
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file),
                        Contains(file.string()) && Contains("record count does not match the file size"));
    b = good;
    b.push_back(0);  // trailing garbage
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) &&
                                                  Contains("record count does not match the file size") &&
                                                  Contains(std::string("byte offset ") + std::to_string(good.size())));
}

TEST_CASE("shard reader: header and block checksum mismatches", "[data][shard][errors]") {
    temp_dir dir;
    const auto file = dir / "e.snshard";
    sd::write_shard(file, make_data(10), {.records_per_block = 3});
    const bytes good = read_all(file);
    const layout l = layout_of(good);

    bytes b = good;
    b[30] ^= 0x10;  // num_classes, checksum left alone
    write_all(file, b);
    REQUIRE_THROWS_WITH(sd::read_shard(file),
                        Contains(file.string()) && Contains("header checksum mismatch") && Contains("byte offset 60"));
    CHECK_FALSE(sd::verify_shard(file).header_ok);

    b = good;
    b[l.data + 2 * 3 * l.record + 4] ^= 0x01;  // a pixel of block 2
    write_all(file, b);
    const std::string block2_offset = std::string("byte offsets ") + std::to_string(l.data + 2 * 3 * l.record);
    REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) &&
                                                  Contains("block checksum mismatch in block 2") &&
                                                  Contains(block2_offset));
    // A partial read that skips block 2 does not see it; one that touches it does.
    CHECK(sd::read_shard_records(file, 0, 6).size() == 6);
    CHECK(sd::read_shard_records(file, 9, 1).size() == 1);
    CHECK_THROWS_WITH(sd::read_shard_records(file, 5, 2), Contains("block checksum mismatch in block 2"));

    b[64 + 4 * 0] ^= 0x80;  // and the stored checksum of block 0
    write_all(file, b);
    auto info = sd::verify_shard(file);
    CHECK_FALSE(info.ok);
    CHECK(info.header_ok);
    CHECK(info.records == 10);
    CHECK(info.blocks == 4);
    CHECK(info.bad_blocks == std::vector<std::uint64_t>{0, 2});
    CHECK_THAT(info.problem, Contains(file.string()) && Contains("block checksum mismatch in block 0"));

    write_all(file, good);
    info = sd::verify_shard(file);
    CHECK(info.ok);
    CHECK(info.problem.empty());
    CHECK(info.sample_shape == staticnet::shape{3, 4, 1});
    CHECK(info.num_classes == 10);
    CHECK(info.records_per_block == 3);
    CHECK(info.bad_blocks.empty());
}

TEST_CASE("shard reader: labels out of range", "[data][shard][errors]") {
    temp_dir dir;
    for (std::size_t classes : {10u, 1000u}) {
        const auto file = dir / (std::string("f") + std::to_string(classes) + ".snshard");
        sd::write_shard(file, make_data(7, 2, 2, 1, classes), {.records_per_block = 2});
        const bytes good = read_all(file);
        const layout l = layout_of(good);
        const std::size_t label_bytes = classes > 256 ? 4 : 1;
        for (std::int64_t bad : {std::int64_t(classes), std::int64_t{-1}}) {
            if (bad < 0 && label_bytes == 1) continue;  // a byte cannot be negative
            INFO("classes " << classes << ", label " << bad);
            bytes b = good;
            const std::size_t at = l.data + 5 * l.record + (l.record - label_bytes);  // record 5, block 2
            put(b, at, static_cast<std::uint64_t>(bad), label_bytes);
            fix_block_crc(b, 2);
            write_all(file, b);
            REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) && Contains("label out of range") &&
                                                          Contains("record 5") &&
                                                          Contains(std::string("byte offset ") + std::to_string(at)));
            const auto info = sd::verify_shard(file);
            CHECK_FALSE(info.ok);
            CHECK(info.bad_labels == 1);
            CHECK(info.bad_blocks.empty());
            CHECK(sd::read_shard_records(file, 0, 4).size() == 4);  // blocks 0 and 1 are fine
        }
    }
}

TEST_CASE("shard reader: every flipped byte and every truncation is detected", "[data][shard][errors]") {
    temp_dir dir;
    const auto file = dir / "g.snshard";
    sd::write_shard(file, make_data(5, 2, 3, 1), {.records_per_block = 2});
    const bytes good = read_all(file);
    for (std::size_t i = 0; i < good.size(); ++i) {
        bytes b = good;
        b[i] ^= static_cast<std::uint8_t>(1u << (i % 8));
        write_all(file, b);
        INFO("flipped byte " << i);
        REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()));
        CHECK_FALSE(sd::verify_shard(file).ok);
    }
    for (std::size_t keep = 0; keep < good.size(); ++keep) {
        write_all(file, bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(keep)));
        INFO("kept " << keep);
        REQUIRE_THROWS_WITH(sd::read_shard(file), Contains(file.string()) && Contains("truncated file"));
    }
}

TEST_CASE("write_shard refuses data it cannot store faithfully", "[data][shard][errors]") {
    temp_dir dir;
    const auto file = dir / "h.snshard";
    auto data = make_data(4);
    data.images(2, 1, 1, 0) = 1.5f;
    REQUIRE_THROWS_WITH(sd::write_shard(file, data), Contains(file.string()) && Contains("pixel value"));
    data.images(2, 1, 1, 0) = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_WITH(sd::write_shard(file, data), Contains(file.string()) && Contains("pixel value"));
    data = make_data(4);
    data.labels(3) = 10;
    REQUIRE_THROWS_WITH(sd::write_shard(file, data), Contains(file.string()) && Contains("label 10"));
    data.labels(3) = -2;
    REQUIRE_THROWS_WITH(sd::write_shard(file, data), Contains(file.string()) && Contains("label -2"));
    data = make_data(4);
    const std::vector<std::size_t> out_of_range{0, 4};
    CHECK_THROWS_AS(sd::write_shard(file, data, out_of_range), std::out_of_range);
    CHECK_THROWS_AS(sd::write_shard(file, data, 3, 5), std::out_of_range);
    REQUIRE_THROWS_WITH(sd::write_shard(dir / "no-such-dir" / "x.snshard", data),
                        Contains("no-such-dir") && Contains("cannot create"));
    // Nothing was left behind by the failed writes.
    CHECK(fs::is_empty(dir.path));
}

TEST_CASE("IDX reader: no images of an absurd size (fuzzer finding)", "[data][idx][errors]") {
    // N = 0 images of 2^32-1 x 2^32-1 pixels: no data to bound the size, but the tensor's
    // strides would overflow. Found by tests/fuzz/fuzz_readers.cpp under UBSan.
    temp_dir dir;
    const auto file = dir / "absurd.idx";
    write_all(file, bytes{0, 0, 8, 3, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    REQUIRE_THROWS_WITH(sd::read_idx_images(file), Contains(file.string()) && Contains("absurd dimensions"));
    write_all(file, bytes{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0});  // 4096 x 4096: fine
    CHECK(sd::read_idx_images(file).shape() == std::array<std::size_t, 4>{0, 4096, 4096, 1});
}

// ============================================================================ loader

namespace {

// The batch the loader should produce without augmentation: a plain gather.
bool batch_equals_gather(const sd::batch& b, const sd::dataset& d, std::span<const std::size_t> idx) {
    const std::size_t sample = d.images.size() / d.size();
    if (b.size != idx.size() || b.images.size() != idx.size() * sample || b.labels.size() != idx.size()) return false;
    for (std::size_t i = 0; i < idx.size(); ++i) {
        if (!std::equal(b.images.begin() + static_cast<std::ptrdiff_t>(i * sample),
                        b.images.begin() + static_cast<std::ptrdiff_t>((i + 1) * sample),
                        d.images.data() + idx[i] * sample))
            return false;
        if (b.labels[i] != d.labels(idx[i]) || b.indices[i] != idx[i]) return false;
    }
    return true;
}

std::vector<std::vector<float>> epoch_images(sd::batch_loader& loader, std::span<const std::size_t> order,
                                             std::size_t epoch) {
    loader.start_epoch(order, epoch);
    std::vector<std::vector<float>> out;
    while (const sd::batch* b = loader.next()) out.emplace_back(b->images.begin(), b->images.end());
    return out;
}

}  // namespace

TEST_CASE("batch_loader: batches equal the direct gather", "[data][loader]") {
    const auto data = make_data(10, 3, 4, 2);
    std::vector<std::size_t> order(10);
    std::iota(order.begin(), order.end(), 0);
    std::reverse(order.begin(), order.end());
    std::swap(order[2], order[7]);

    sd::batch_loader loader(data, 4);
    for (std::size_t epoch = 0; epoch < 3; ++epoch) {
        loader.start_epoch(order, epoch);
        CHECK(loader.batches() == 3);
        for (std::size_t k = 0; k < 3; ++k) {
            const sd::batch* b = loader.next();
            REQUIRE(b != nullptr);
            CHECK(b->index == k);
            const std::size_t n = std::min<std::size_t>(4, 10 - 4 * k);
            CHECK(b->shape == std::array<std::size_t, 4>{n, 3, 4, 2});
            CHECK(batch_equals_gather(*b, data, std::span(order).subspan(4 * k, n)));
        }
        CHECK(loader.next() == nullptr);
        CHECK(loader.next() == nullptr);
    }

    // drop_last, restarting mid-epoch, an empty epoch, and a batch held across next().
    sd::batch_loader dropping(data, 4, {.drop_last = true});
    dropping.start_epoch(order, 0);
    CHECK(dropping.batches() == 2);
    const sd::batch* first = dropping.next();
    REQUIRE(first != nullptr);
    dropping.start_epoch(std::span(order).first(5), 1);
    const sd::batch* again = dropping.next();
    REQUIRE(again != nullptr);
    CHECK(batch_equals_gather(*again, data, std::span(order).first(4)));
    CHECK(dropping.next() == nullptr);
    dropping.start_epoch({}, 2);
    CHECK(dropping.next() == nullptr);

    sd::batch_loader unused(data, 3);
    CHECK_THROWS_AS(unused.next(), std::logic_error);
    CHECK_THROWS_AS(sd::batch_loader(data, 0), std::invalid_argument);
    CHECK_THROWS_AS(sd::batch_loader(data, 2, {.crop_padding = 4}), std::invalid_argument);
}

TEST_CASE("batch_loader: augmentation is reproducible and changes images", "[data][loader]") {
    const std::size_t n = 16, h = 5, w = 6, c = 2;
    const auto data = make_data(n, h, w, c);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    const sd::loader_options opts{.flip = true, .crop_padding = 2, .seed = 99};

    sd::batch_loader a(data, 5, opts), b(data, 5, opts), other(data, 5, {.flip = true, .crop_padding = 2, .seed = 100});
    const auto a0 = epoch_images(a, order, 0);
    CHECK(a0 == epoch_images(b, order, 0));
    CHECK(a0 == epoch_images(a, order, 0));
    CHECK(a0 != epoch_images(a, order, 1));
    CHECK(a0 != epoch_images(other, order, 0));
    // The augmentation of a sample depends on its index, not on its batch position.
    std::vector<std::size_t> reversed(order.rbegin(), order.rend());
    const auto r0 = epoch_images(b, reversed, 0);
    const std::size_t sample = h * w * c;
    std::vector<float> flat_a, flat_r;
    for (const auto& v : a0) flat_a.insert(flat_a.end(), v.begin(), v.end());
    for (const auto& v : r0) flat_r.insert(flat_r.end(), v.begin(), v.end());
    for (std::size_t i = 0; i < n; ++i)
        CHECK(std::equal(flat_a.begin() + static_cast<std::ptrdiff_t>(i * sample),
                         flat_a.begin() + static_cast<std::ptrdiff_t>((i + 1) * sample),
                         flat_r.begin() + static_cast<std::ptrdiff_t>((n - 1 - i) * sample)));

    // Every output is the padded image shifted by (dy, dx) in [-2, 2], possibly mirrored;
    // and at least one differs from the original.
    std::size_t changed = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const float* out = flat_a.data() + i * sample;
        const float* src = data.images.data() + i * sample;
        bool explained = false;
        for (int mirror = 0; mirror < 2 && !explained; ++mirror)
            for (int dy = -2; dy <= 2 && !explained; ++dy)
                for (int dx = -2; dx <= 2 && !explained; ++dx) {
                    bool ok = true;
                    for (std::size_t y = 0; y < h && ok; ++y)
                        for (std::size_t x = 0; x < w && ok; ++x) {
                            const long sy = static_cast<long>(y) + dy;
                            const long sx = (mirror ? static_cast<long>(w - 1 - x) : static_cast<long>(x)) + dx;
                            for (std::size_t ch = 0; ch < c && ok; ++ch) {
                                const float want =
                                    sy < 0 || sy >= static_cast<long>(h) || sx < 0 || sx >= static_cast<long>(w)
                                        ? 0.0f
                                        : src[(static_cast<std::size_t>(sy) * w + static_cast<std::size_t>(sx)) * c +
                                              ch];
                                ok = out[(y * w + x) * c + ch] == want;
                            }
                        }
                    explained = ok;
                }
        CHECK(explained);
        if (!std::equal(out, out + sample, src)) ++changed;
    }
    CHECK(changed >= n / 2);

    // Flip only: each image is the original or its mirror, and both occur.
    sd::batch_loader flipping(data, 16, {.flip = true, .seed = 5});
    flipping.start_epoch(order, 0);
    const sd::batch* fb = flipping.next();
    REQUIRE(fb != nullptr);
    std::size_t mirrored = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const float* out = fb->images.data() + i * sample;
        const float* src = data.images.data() + i * sample;
        if (std::equal(out, out + sample, src)) continue;
        ++mirrored;
        for (std::size_t y = 0; y < h; ++y)
            for (std::size_t x = 0; x < w; ++x)
                for (std::size_t ch = 0; ch < c; ++ch)
                    REQUIRE(out[(y * w + x) * c + ch] == src[(y * w + w - 1 - x) * c + ch]);
    }
    CHECK(mirrored > 0);
    CHECK(mirrored < n);
}

TEST_CASE("batch_loader: exceptions on the loader thread propagate to next()", "[data][loader]") {
    const auto data = make_data(10);
    const std::vector<std::size_t> order{0, 1, 2, 3, 4, 5, 6, 99, 8, 9};
    sd::batch_loader loader(data, 3);
    loader.start_epoch(order, 0);
    REQUIRE(loader.next() != nullptr);
    REQUIRE(loader.next() != nullptr);
    REQUIRE_THROWS_WITH(loader.next(), Contains("sample index 99") && Contains("out of range"));
    CHECK_THROWS_AS(loader.next(), std::out_of_range);
    // A new epoch clears the failure.
    const std::vector<std::size_t> good{9, 8, 7};
    loader.start_epoch(good, 1);
    const sd::batch* b = loader.next();
    REQUIRE(b != nullptr);
    CHECK(batch_equals_gather(*b, data, good));
    CHECK(loader.next() == nullptr);

    // Destroying a loader in the middle of an epoch stops its thread cleanly.
    std::vector<std::size_t> many(1000);
    for (std::size_t i = 0; i < many.size(); ++i) many[i] = i % 10;
    for (int i = 0; i < 20; ++i) {
        sd::batch_loader l(data, 2, {.flip = true, .seed = static_cast<std::uint64_t>(i)});
        l.start_epoch(many, 0);
        if (i % 2 == 0) REQUIRE(l.next() != nullptr);
    }
}
