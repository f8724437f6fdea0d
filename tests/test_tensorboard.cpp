// TensorBoard event files: CRC-32C against its check value, TFRecord framing, the Event and
// Summary messages read back with our protobuf reader, and the callback on a small fit.
// (tests/tensorboard/readback.py reads an example's file with independent readers.)
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <staticnet/staticnet.hpp>
#include <staticnet/core/crc32c.hpp>
#include <staticnet/io/tfrecord.hpp>
#include <staticnet/io/tensorboard.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sn = staticnet;
namespace fs = std::filesystem;
using sn::detail::protobuf_field;
using sn::detail::protobuf_reader;

namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// The records of a TFRecord file, each checked against both of its CRCs.
std::vector<std::vector<std::uint8_t>> read_records(const fs::path& file) {
    const std::vector<std::uint8_t> all = sn::detail::read_file_bytes<sn::error>(file);
    std::vector<std::vector<std::uint8_t>> records;
    std::size_t at = 0;
    while (at < all.size()) {
        REQUIRE(all.size() - at >= 12);
        const auto length = sn::detail::load_le<std::uint64_t>(all.data() + at);
        REQUIRE(sn::detail::load_le<std::uint32_t>(all.data() + at + 8) ==
                sn::detail::masked_crc32c(std::span<const std::uint8_t>(all.data() + at, 8)));
        REQUIRE(all.size() - at - 12 >= length + 4);
        const std::span<const std::uint8_t> data(all.data() + at + 12, length);
        REQUIRE(sn::detail::load_le<std::uint32_t>(all.data() + at + 12 + length) == sn::detail::masked_crc32c(data));
        records.emplace_back(data.begin(), data.end());
        at += 12 + length + 4;
    }
    return records;
}

/// One decoded Summary.Value: its tag and, for scalars, its value; for histograms, its fields.
struct value {
    std::string tag;
    float scalar = 0;
    std::map<std::uint32_t, double> histogram;  // min, max, num, sum, sum_squares
    std::vector<double> limits, counts;
    std::string text, plugin;
};

struct event {
    double wall_time = 0;
    std::int64_t step = -1;
    std::string file_version;
    std::vector<value> values;
};

std::vector<double> doubles(const protobuf_field& f) {
    std::vector<double> out;
    for (std::size_t i = 0; i < f.bytes.size() / 8; ++i) out.push_back(sn::detail::load_le<double>(f.bytes.data() + 8 * i));
    return out;
}

event decode(const std::vector<std::uint8_t>& record) {
    event e;
    protobuf_reader r(record);
    protobuf_field f, g, h, k;
    while (r.next(f)) {
        if (f.field == 1) e.wall_time = f.as_double();
        if (f.field == 2) e.step = f.as_int();
        if (f.field == 3) e.file_version = std::string(f.as_string());
        if (f.field != 5) continue;
        auto summary = protobuf_reader::nested(f);
        while (summary.next(g)) {
            REQUIRE(g.field == 1);
            value v;
            auto vr = protobuf_reader::nested(g);
            while (vr.next(h)) {
                if (h.field == 1) v.tag = std::string(h.as_string());
                if (h.field == 2) v.scalar = h.as_float();
                if (h.field == 5) {
                    auto hr = protobuf_reader::nested(h);
                    while (hr.next(k)) {
                        if (k.field <= 5) v.histogram[k.field] = k.as_double();
                        if (k.field == 6) v.limits = doubles(k);
                        if (k.field == 7) v.counts = doubles(k);
                    }
                }
                if (h.field == 8) {
                    auto tr = protobuf_reader::nested(h);
                    while (tr.next(k))
                        if (k.field == 8) v.text = std::string(k.as_string());
                }
                if (h.field == 9) {  // metadata.plugin_data.plugin_name
                    auto mr = protobuf_reader::nested(h);
                    protobuf_field m, p;
                    while (mr.next(m))
                        if (m.field == 1) {
                            auto pr = protobuf_reader::nested(m);
                            while (pr.next(p))
                                if (p.field == 1) v.plugin = std::string(p.as_string());
                        }
                }
            }
            e.values.push_back(v);
        }
    }
    return e;
}

}  // namespace

TEST_CASE("crc32c gives the standard check value", "[tensorboard][crc32c]") {
    CHECK(sn::detail::crc32c(bytes_of("123456789")) == 0xE3069283u);
    CHECK(sn::detail::crc32c(bytes_of("")) == 0u);
    // Continuing over a second piece gives the CRC of the whole.
    CHECK(sn::detail::crc32c(bytes_of("6789"), sn::detail::crc32c(bytes_of("12345"))) == 0xE3069283u);
    // iSCSI's test vector (RFC 3720, B.4): 32 bytes of zeros.
    const std::vector<std::uint8_t> zeros(32, 0);
    CHECK(sn::detail::crc32c(zeros) == 0x8A9136AAu);
    static_assert(sn::detail::crc32c(std::span<const std::uint8_t>{}) == 0);  // usable at compile time
}

TEST_CASE("a TFRecord frames its data with masked CRC-32Cs", "[tensorboard][tfrecord]") {
    const auto record = sn::detail::tfrecord(bytes_of("abc"));
    REQUIRE(record.size() == 8 + 4 + 3 + 4);
    CHECK(sn::detail::load_le<std::uint64_t>(record.data()) == 3);
    const std::uint32_t crc = sn::detail::crc32c(bytes_of("abc"));
    CHECK(sn::detail::load_le<std::uint32_t>(record.data() + 15) == ((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
    CHECK(std::string(record.begin() + 12, record.begin() + 15) == "abc");
}

TEST_CASE("an event file holds the version, then scalars, histograms and text", "[tensorboard]") {
    temp_dir dir;
    fs::path file;
    {
        sn::tensorboard_event_file events(dir / "run");
        file = events.path();
        events.write(7, sn::tensorboard_summary{}.scalar("loss", 0.25f).scalar("accuracy", 0.875f));
        const std::vector<float> values{-1.0f, 0.0f, 0.5f, 1.0f, 1.0f, 3.0f};
        events.write(8, sn::tensorboard_summary{}.histogram("w", values, 4).text("notes", "| a | b |"));
        events.write(9, sn::tensorboard_summary{}.histogram("same", std::vector<float>(5, 2.0f)));
        events.flush();
    }
    CHECK(file.parent_path() == dir / "run");
    CHECK(file.filename().string().starts_with("events.out.tfevents."));
    const auto records = read_records(file);
    REQUIRE(records.size() == 4);
    const event first = decode(records[0]);
    CHECK(first.file_version == "brain.Event:2");
    CHECK(first.wall_time > 1.7e9);

    const event scalars = decode(records[1]);
    CHECK(scalars.step == 7);
    REQUIRE(scalars.values.size() == 2);
    CHECK(scalars.values[0].tag == "loss");
    CHECK(scalars.values[0].scalar == 0.25f);
    CHECK(scalars.values[1].tag == "accuracy");
    CHECK(scalars.values[1].scalar == 0.875f);

    const event mixed = decode(records[2]);
    CHECK(mixed.step == 8);
    REQUIRE(mixed.values.size() == 2);
    const value& h = mixed.values[0];
    CHECK(h.tag == "w");
    CHECK(h.histogram.at(1) == -1.0);
    CHECK(h.histogram.at(2) == 3.0);
    CHECK(h.histogram.at(3) == 6.0);
    CHECK(h.histogram.at(4) == 4.5);
    CHECK(h.histogram.at(5) == 1 + 0 + 0.25 + 1 + 1 + 9);
    // Buckets (-1, 0], (0, 1], (1, 2], (2, 3]; the minimum counts in the first.
    CHECK(h.limits == std::vector<double>{0.0, 1.0, 2.0, 3.0});
    CHECK(h.counts == std::vector<double>{2.0, 3.0, 0.0, 1.0});
    const value& t = mixed.values[1];
    CHECK(t.tag == "notes");
    CHECK(t.plugin == "text");
    CHECK(t.text == "| a | b |");

    const event last = decode(records[3]);
    const value& same = last.values.at(0);
    CHECK(same.limits == std::vector<double>{2.0});
    CHECK(same.counts == std::vector<double>{5.0});
}

TEST_CASE("tensorboard_writer records a fit: steps, epochs equal to the history, histograms", "[tensorboard]") {
    using net = sn::sequential<sn::input<4, 4, 1>, sn::flatten, sn::dense<5, sn::relu>, sn::dense<3, sn::softmax>>;
    sn::model<net, sn::adam, sn::sparse_categorical_crossentropy> model({.learning_rate = 1e-2f}, {.threads = 1, .seed = 1});
    sn::data::dataset data;
    data.images = xt::zeros<float>({std::size_t{40}, std::size_t{4}, std::size_t{4}, std::size_t{1}});
    data.labels = xt::zeros<std::int32_t>({std::size_t{40}});
    data.num_classes = 3;
    for (std::size_t i = 0; i < 40; ++i) {
        data.labels(i) = static_cast<std::int32_t>(i % 3);
        data.images(i, i % 3, 1, 0) = 1.0f;
    }
    temp_dir dir;
    sn::tensorboard_writer writer(dir / "runs", {.step_every = 2, .hyperparameters = {{"network", "tiny"}}});
    const sn::history h = model.fit(data, {.epochs = 2, .batch_size = 16, .validation = &data, .verbose = false}, writer);
    REQUIRE(fs::exists(writer.file()));

    std::map<std::string, std::map<std::int64_t, float>> scalars;
    std::map<std::string, std::size_t> histograms;
    std::string hyperparameters;
    for (const auto& record : read_records(writer.file()))
        for (const value& v : decode(record).values) {
            if (!v.limits.empty()) {
                ++histograms[v.tag];
                CHECK(std::accumulate(v.counts.begin(), v.counts.end(), 0.0) == v.histogram.at(3));
            } else if (!v.plugin.empty()) {
                hyperparameters = v.text;
            } else {
                scalars[v.tag][decode(record).step] = v.scalar;
            }
        }
    // 3 steps per epoch (16, 16, 8), so global steps 1..6; every second one is written.
    CHECK(scalars["batch/loss"].size() == 3);
    CHECK(scalars["batch/loss"].count(6) == 1);
    CHECK(scalars["batch/images_per_second"].at(2) > 0);
    for (const auto& e : h.epochs) {
        const auto step = static_cast<std::int64_t>(e.epoch);
        CHECK(scalars["epoch/loss"].at(step) == static_cast<float>(e.loss));
        CHECK(scalars["epoch/accuracy"].at(step) == static_cast<float>(e.accuracy));
        CHECK(scalars["epoch/val_loss"].at(step) == static_cast<float>(e.val_loss));
        CHECK(scalars["epoch/val_accuracy"].at(step) == static_cast<float>(e.val_accuracy));
        CHECK(scalars["epoch/learning_rate"].at(step) == static_cast<float>(e.learning_rate));
        CHECK(scalars["epoch/images_per_second"].at(step) > 0);
    }
    // The last step's running means are the epoch's (one process).
    CHECK(scalars["batch/loss"].at(6) == static_cast<float>(h.epochs[1].loss));
    CHECK(histograms == std::map<std::string, std::size_t>{{"weights/dense_2/kernel", 2}, {"weights/dense_2/bias", 2},
                                                           {"gradients/dense_2/kernel", 2}, {"gradients/dense_2/bias", 2},
                                                           {"weights/dense_3/kernel", 2}, {"weights/dense_3/bias", 2},
                                                           {"gradients/dense_3/kernel", 2}, {"gradients/dense_3/bias", 2}});
    CHECK(hyperparameters.find("| batch_size | 16 |") != std::string::npos);
    CHECK(hyperparameters.find("| network | tiny |") != std::string::npos);
}

TEST_CASE("a tensorboard_writer without a directory writes nothing", "[tensorboard]") {
    using net = sn::sequential<sn::input<2>, sn::dense<2, sn::softmax>>;
    sn::model<net, sn::sgd, sn::sparse_categorical_crossentropy> model({}, {.threads = 1});
    sn::data::dataset data;
    data.images = xt::zeros<float>({std::size_t{4}, std::size_t{1}, std::size_t{1}, std::size_t{2}});
    data.labels = xt::zeros<std::int32_t>({std::size_t{4}});
    data.num_classes = 2;
    sn::tensorboard_writer writer{""};
    model.fit(data, {.epochs = 1, .verbose = false}, writer);
    CHECK(writer.file().empty());
}
