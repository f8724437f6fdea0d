// Streamed shards (data/shard_stream.hpp): what the shuffle guarantees (each pass a
// permutation of the rank's records, seeded, new every epoch, ranks disjoint), errors naming
// the file, training from a stream (deterministic, and its resident memory bounded by the
// loader's buffers on a data set several times larger).
#include <malloc.h>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <staticnet/staticnet.hpp>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace sn = staticnet;
namespace sd = staticnet::data;
using Catch::Contains;

namespace {

// n samples of h x w x c pixels; sample i is recognisable by its first two pixels (i % 256,
// i / 256) and has label i % classes.
sd::dataset make_data(std::size_t first, std::size_t n, std::size_t h, std::size_t w, std::size_t c,
                      std::size_t classes = 10) {
    sd::dataset d;
    d.images = xt::xtensor<float, 4>(std::array<std::size_t, 4>{n, h, w, c});
    d.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{n});
    d.num_classes = classes;
    const std::size_t sample = h * w * c;
    for (std::size_t j = 0; j < n; ++j) {
        const std::size_t i = first + j;
        for (std::size_t k = 0; k < sample; ++k) {
            std::size_t v = (i * 131 + k * 37 + 11) % 256;
            if (k == 0) v = i % 256;
            if (k == 1) v = (i / 256) % 256;
            d.images.data()[j * sample + k] = static_cast<float>(v) / 255.0f;
        }
        d.labels(j) = static_cast<std::int32_t>(i % classes);
    }
    return d;
}

// Writes samples [0, n) as `shards` files, made one file at a time (little memory).
void write_set(const fs::path& dir, std::size_t n, std::size_t shards, std::size_t h, std::size_t w, std::size_t c,
               std::uint32_t per_block = 8) {
    fs::create_directories(dir);
    for (std::size_t s = 0; s < shards; ++s) {
        const std::size_t lo = n * s / shards, hi = n * (s + 1) / shards;
        sd::write_shard(dir / sd::shard_file_name(s, shards), make_data(lo, hi - lo, h, w, c), {.records_per_block = per_block});
    }
}

// The ids of `count` samples drawn from `s`.
std::vector<std::size_t> draw(sd::shard_stream& s, std::size_t count) {
    const std::size_t sample = s.sample_shape().size();
    std::vector<float> images(count * sample);
    std::vector<std::int32_t> labels(count);
    s.next(count, images.data(), labels.data());
    std::vector<std::size_t> ids;
    for (std::size_t i = 0; i < count; ++i) {
        const auto id = static_cast<std::size_t>(std::lround(images[i * sample] * 255.0f)) +
                        256 * static_cast<std::size_t>(std::lround(images[i * sample + 1] * 255.0f));
        CHECK(labels[i] == static_cast<std::int32_t>(id % 10));
        ids.push_back(id);
    }
    return ids;
}

std::vector<std::size_t> sorted(std::vector<std::size_t> v) {
    std::sort(v.begin(), v.end());
    return v;
}

std::vector<std::size_t> range(std::size_t lo, std::size_t hi) {
    std::vector<std::size_t> v;
    for (std::size_t i = lo; i < hi; ++i) v.push_back(i);
    return v;
}

}  // namespace

TEST_CASE("a streamed pass hands out each of the rank's records once, in a seeded order", "[data][stream]") {
    temp_dir dir;
    write_set(dir.path, 300, 5, 3, 4, 1);

    SECTION("without shuffling: the set order") {
        sd::shard_stream s(dir.path, 0, 1, sn::shape{3, 4, 1}, {.shuffle = false});
        CHECK(s.size() == 300);
        s.start_epoch(1);
        CHECK(draw(s, 300) == range(0, 300));
    }
    SECTION("shuffled: a permutation per pass, the same for the same seed, new every epoch") {
        sd::shard_stream a(dir.path, 0, 1, {}, {.shuffle_buffer = 50, .read_ahead = 7, .seed = 9});
        sd::shard_stream b(dir.path, 0, 1, {}, {.shuffle_buffer = 50, .read_ahead = 300, .seed = 9});
        a.start_epoch(1);
        b.start_epoch(1);
        const auto first = draw(a, 300);
        CHECK(first != range(0, 300));
        CHECK(sorted(first) == range(0, 300));
        CHECK(draw(b, 300) == first);  // the read-ahead changes nothing
        // A second pass in the same epoch: again each record once, in another order.
        const auto second = draw(a, 300);
        CHECK(sorted(second) == range(0, 300));
        CHECK(second != first);
        a.start_epoch(2);
        const auto next_epoch = draw(a, 300);
        CHECK(sorted(next_epoch) == range(0, 300));
        CHECK(next_epoch != first);
        // Restarting an epoch abandons what is left of it and gives the same order again.
        a.start_epoch(1);
        draw(a, 17);
        a.start_epoch(1);
        CHECK(draw(a, 300) == first);
        a.start_epoch(1);
        a.skip(100);
        CHECK(draw(a, 200) == std::vector<std::size_t>(first.begin() + 100, first.end()));
    }
    SECTION("a buffer smaller than the part: no sample comes out more than buffer - 1 places early") {
        // One file, so the stream order is the set order: a sample's place in it is its id.
        temp_dir one;
        write_set(one.path, 300, 1, 3, 4, 1);
        sd::shard_stream s(one.path, 0, 1, {}, {.shuffle_buffer = 16, .seed = 4});
        s.start_epoch(3);
        const auto ids = draw(s, 300);
        CHECK(sorted(ids) == range(0, 300));
        std::size_t early = 0, late = 0;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (ids[i] > i + 15) ++early;
            if (ids[i] + 15 < i) ++late;  // allowed (a sample may wait long), and it happens
        }
        CHECK(early == 0);
        CHECK(late > 0);
    }
    SECTION("ranks read disjoint parts that cover the set, with more and with fewer files than ranks") {
        for (std::size_t ranks : {2u, 3u, 7u}) {
            std::vector<std::size_t> all;
            for (std::size_t r = 0; r < ranks; ++r) {
                sd::shard_stream s(dir.path, r, ranks, {}, {.seed = 2});
                s.start_epoch(1);
                const auto part = draw(s, s.size());
                all.insert(all.end(), part.begin(), part.end());
            }
            INFO("ranks " << ranks);
            CHECK(sorted(all) == range(0, 300));
        }
    }
}

TEST_CASE("a streamed shard's problems name the file", "[data][stream][errors]") {
    temp_dir dir;
    write_set(dir.path, 40, 2, 3, 4, 1);
    CHECK_THROWS_WITH(sd::shard_stream(dir.path, 0, 1, sn::shape{4, 4, 1}), Contains("shape mismatch"));
    // Flip a byte in the records of shard 1: its block checksum no longer matches.
    const fs::path victim = dir.path / sd::shard_file_name(1, 2);
    {
        std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-5, std::ios::end);
        f.put('\x7f');
    }
    sd::shard_stream s(dir.path, 0, 1, {}, {.shuffle = false});
    s.start_epoch(1);
    std::vector<float> images(40 * 12);
    std::vector<std::int32_t> labels(40);
    s.next(20, images.data(), labels.data());  // shard 0 is intact
    CHECK_THROWS_WITH(s.next(20, images.data(), labels.data()),
                      Contains(victim.string()) && Contains("block checksum mismatch"));
}

namespace {

using stream_net = sn::sequential<sn::input<32, 32, 3>, sn::flatten, sn::dense<10, sn::softmax>>;

// Resident memory now and at its peak since the last reset, in bytes (Linux).
std::size_t status_bytes(const std::string& field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with(field + ":")) return std::stoull(line.substr(field.size() + 1)) * 1024;
    return 0;
}

}  // namespace

TEST_CASE("training from a stream is deterministic and its memory stays within the loader's bound",
          "[data][stream][model]") {
    temp_dir dir;
    // 12000 samples of 32x32x3 bytes: 36.9 MB of shards, more than 4x the bound below.
    constexpr std::size_t n = 12000, sample = 32 * 32 * 3;
    constexpr std::size_t bound = 8u << 20;
    write_set(dir.path, n, 6, 32, 32, 3, 128);
    REQUIRE(n * sample >= 4 * bound);
    const sd::shard_stream_options stream_options{.shuffle_buffer = 1000, .read_ahead = 200, .seed = 7};

    SECTION("peak resident memory") {
        sn::model<stream_net, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.threads = 2, .seed = 1});
        // The model's own buffers (batch, workspaces) are not the data path: size them first
        // with a fit of the same batch size on a tiny in-memory set.
        sd::byte_dataset tiny;
        tiny.images = xt::zeros<std::uint8_t>({std::size_t{64}, std::size_t{32}, std::size_t{32}, std::size_t{3}});
        tiny.labels = xt::zeros<std::int32_t>({std::size_t{64}});
        m.fit(tiny, {.epochs = 1, .batch_size = 64, .verbose = false});
        malloc_trim(0);  // what writing the set freed goes back to the system first
        // Reset the peak (VmHWM) to the current resident size (Linux >= 4.0).
        std::ofstream("/proc/self/clear_refs") << "5";
        const std::size_t before = status_bytes("VmRSS");
        REQUIRE(before > 0);
        sd::shard_stream train(dir.path, 0, 1, sn::shape{32, 32, 3}, stream_options);
        CHECK(train.memory_bound() < bound / 2);
        const auto h = m.fit(train, {.epochs = 1, .batch_size = 64, .seed = 7, .verbose = false});
        CHECK(std::isfinite(h.epochs.back().loss));
        const std::size_t peak = status_bytes("VmHWM");
        INFO("resident before " << before << " bytes, peak " << peak << ", stream bound " << train.memory_bound());
        CHECK(peak - before < bound);
    }
    SECTION("the same seed gives bitwise the same training") {
        auto train = [&] {
            sn::model<stream_net, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.threads = 2, .seed = 1});
            sd::shard_stream s(dir.path, 0, 1, {}, {.shuffle_buffer = 1024, .read_ahead = 100, .seed = 7});
            m.fit(s, {.epochs = 1, .batch_size = 100, .seed = 7, .verbose = false});
            return std::vector<float>(m.network().parameters().begin(), m.network().parameters().end());
        };
        CHECK(train() == train());
    }
}
