// data/augmentation.hpp: the transforms against torchvision on fixed inputs
// (tests/fixtures/make_augmentation_fixtures.py), their random draws against torchvision's
// distributions, and their use by the loader and the model.
#include <staticnet/data/augmentation.hpp>
#include <staticnet/data/loader.hpp>
#include <staticnet/staticnet.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "pytorch_fixture.hpp"

namespace sn = staticnet;
namespace sd = staticnet::data;

namespace {

const std::map<std::string, std::vector<double>>& fixture() {
    static const auto arrays = sn::testing::read_fixture(std::string(STATICNET_FIXTURES_DIR) +
                                                         "/augmentation_torchvision.txt");
    return arrays;
}

std::vector<float> floats(const std::vector<double>& v) { return {v.begin(), v.end()}; }

double max_difference(const std::vector<float>& ours, const std::vector<double>& theirs) {
    REQUIRE(ours.size() == theirs.size());
    double d = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) d = std::max(d, std::abs(static_cast<double>(ours[i]) - theirs[i]));
    return d;
}

struct moments {
    double mean = 0, sd = 0;
    std::size_t n = 0;
};

moments moments_of(const std::vector<double>& v) {
    moments m{.n = v.size()};
    for (double x : v) m.mean += x;
    m.mean /= static_cast<double>(v.size());
    for (double x : v) m.sd += (x - m.mean) * (x - m.mean);
    m.sd = std::sqrt(m.sd / static_cast<double>(v.size() - 1));
    return m;
}

// A labelled data set of random bytes and its float twin.
sd::byte_dataset random_bytes(std::size_t n, std::size_t h, std::size_t w, std::size_t c, std::uint64_t seed) {
    sd::byte_dataset d;
    d.images = xt::zeros<std::uint8_t>({n, h, w, c});
    d.labels = xt::zeros<std::int32_t>({n});
    d.num_classes = 3;
    sn::rng g(seed);
    for (auto& v : d.images) v = static_cast<std::uint8_t>(g.below(256));
    for (std::size_t i = 0; i < n; ++i) d.labels(i) = static_cast<std::int32_t>(g.below(3));
    return d;
}

}  // namespace

TEST_CASE("resized_crop equals torchvision's resized_crop (bilinear, mirrored or not)", "[augmentation]") {
    const auto& f = fixture();
    for (std::size_t k = 0; f.contains("crop" + std::to_string(k) + "_box"); ++k) {
        const auto& box = f.at("crop" + std::to_string(k) + "_box");
        const bool rgb = box[5] == 3;
        const std::size_t h = rgb ? 7 : 6, w = rgb ? 9 : 5, c = rgb ? 3 : 1;
        const auto image = floats(f.at(rgb ? "crop_rgb_image" : "crop_grey_image"));
        const sd::crop_box b{static_cast<std::size_t>(box[0]), static_cast<std::size_t>(box[1]),
                             static_cast<std::size_t>(box[2]), static_cast<std::size_t>(box[3])};
        std::vector<float> out(h * w * c);
        sd::resized_crop(image.data(), h, w, c, b, box[4] != 0, out.data());
        INFO("box " << k);
        CHECK(max_difference(out, f.at("crop" + std::to_string(k) + "_output")) < 1e-6);
    }
}

TEST_CASE("colour jitter equals torchvision's adjust_brightness, adjust_contrast and adjust_saturation",
          "[augmentation]") {
    const auto& f = fixture();
    std::size_t cases = 0;
    for (std::size_t k = 0; f.contains("jitter" + std::to_string(k) + "_case"); ++k, ++cases) {
        const auto& c = f.at("jitter" + std::to_string(k) + "_case");
        const bool rgb = c[6] == 3;
        auto image = floats(f.at(rgb ? "jitter_rgb_image" : "jitter_grey_image"));
        sd::jitter_factors factors{static_cast<float>(c[0]), static_cast<float>(c[1]), static_cast<float>(c[2]),
                                   {static_cast<std::uint8_t>(c[3]), static_cast<std::uint8_t>(c[4]),
                                    static_cast<std::uint8_t>(c[5])}};
        sd::apply_jitter(image.data(), rgb ? 30 : 12, rgb ? 3 : 1, factors);
        INFO("case " << k);
        CHECK(max_difference(image, f.at("jitter" + std::to_string(k) + "_output")) < 1e-6);
    }
    CHECK(cases == 5);
}

TEST_CASE("normalization equals torchvision's normalize", "[augmentation]") {
    const auto& f = fixture();
    auto image = floats(f.at("jitter_rgb_image"));
    const sd::normalization n{floats(f.at("normalize_mean")), floats(f.at("normalize_std"))};
    n.apply(image.data(), 30, 3);
    CHECK(max_difference(image, f.at("normalize_output")) < 1e-6);
}

TEST_CASE("the crop boxes follow torchvision's RandomResizedCrop distribution", "[augmentation][statistics]") {
    const auto& f = fixture();
    const sd::random_resized_crop options{};  // torchvision's defaults: scale [0.08, 1], ratio [3/4, 4/3]
    for (const auto& [height, width] : {std::pair<std::size_t, std::size_t>{28, 28}, {48, 64}}) {
        INFO(height << "x" << width);
        sn::rng g(height * 1000 + width);
        const std::size_t draws = 100000;
        std::array<std::vector<double>, 4> samples;  // area fraction, log ratio, top, left (placement in [0, 1])
        for (std::size_t i = 0; i < draws; ++i) {
            const sd::crop_box b = sd::draw_crop_box(options, height, width, g);
            REQUIRE(b.height >= 1);
            REQUIRE(b.width >= 1);
            REQUIRE(b.top + b.height <= height);
            REQUIRE(b.left + b.width <= width);
            const double h = static_cast<double>(b.height), w = static_cast<double>(b.width);
            // Each side is the rounding of an exact size whose ratio is within the range and
            // whose area is at least 8% of the image's.
            REQUIRE((w - 0.5) / (h + 0.5) <= 4.0 / 3.0);
            REQUIRE((w + 0.5) / (h - 0.5) >= 3.0 / 4.0);
            REQUIRE((w + 0.5) * (h + 0.5) >= 0.08 * static_cast<double>(height * width));
            samples[0].push_back(h * w / static_cast<double>(height * width));
            samples[1].push_back(std::log(w / h));
            if (b.height < height) samples[2].push_back(static_cast<double>(b.top) / static_cast<double>(height - b.height));
            if (b.width < width) samples[3].push_back(static_cast<double>(b.left) / static_cast<double>(width - b.width));
        }
        const auto& theirs = f.at("boxes_" + std::to_string(height) + "x" + std::to_string(width));
        const char* names[] = {"area fraction", "log aspect ratio", "vertical placement", "horizontal placement"};
        for (std::size_t k = 0; k < 4; ++k) {
            const moments m = moments_of(samples[k]);
            // torchvision's moments come from 200,000 draws: the means agree within 5 standard
            // errors of the difference, the spreads within 3%.
            const double se = std::sqrt(m.sd * m.sd / static_cast<double>(m.n) + theirs[2 * k + 1] * theirs[2 * k + 1] / 2e5);
            INFO(names[k] << ": ours " << m.mean << " +- " << m.sd << ", torchvision's " << theirs[2 * k] << " +- "
                          << theirs[2 * k + 1]);
            CHECK(std::abs(m.mean - theirs[2 * k]) < 5 * se);
            CHECK(std::abs(m.sd - theirs[2 * k + 1]) < 0.03 * theirs[2 * k + 1]);
        }
        // The whole range is used: boxes near 8% and near the whole image both occur.
        CHECK(*std::min_element(samples[0].begin(), samples[0].end()) < 0.09);
        CHECK(*std::max_element(samples[0].begin(), samples[0].end()) > 0.97);
    }
    // Boxes that cannot be drawn in the ratio range fall back to the centred box.
    sn::rng g(1);
    const sd::crop_box wide = sd::draw_crop_box({.scale = {1.0, 1.0}, .ratio = {2.0, 3.0}}, 10, 10, g);
    CHECK(wide == sd::crop_box{2, 0, 5, 10});  // as wide as the image, 10 / 2 = 5 rows, centred
}

TEST_CASE("colour jitter factors are uniform and the orders equally likely", "[augmentation][statistics]") {
    const sd::color_jitter options{.brightness = 0.4f, .contrast = 0.2f, .saturation = 1.5f};
    sn::rng g(7);
    const std::size_t draws = 60000;
    std::vector<double> b, c, s;
    std::map<std::array<std::uint8_t, 3>, std::size_t> orders;
    for (std::size_t i = 0; i < draws; ++i) {
        const sd::jitter_factors f = sd::draw_jitter(options, g);
        REQUIRE(f.brightness >= 0.6f);
        REQUIRE(f.brightness <= 1.4f);
        REQUIRE(f.contrast >= 0.8f);
        REQUIRE(f.contrast <= 1.2f);
        REQUIRE(f.saturation >= 0.0f);  // max(0, 1 - 1.5)
        REQUIRE(f.saturation <= 2.5f);
        b.push_back(f.brightness);
        c.push_back(f.contrast);
        s.push_back(f.saturation);
        ++orders[f.order];
    }
    // A uniform [lo, hi] has mean (lo + hi) / 2 and standard deviation (hi - lo) / sqrt(12).
    for (const auto& [values, lo, hi] : {std::tuple{&b, 0.6, 1.4}, std::tuple{&c, 0.8, 1.2}, std::tuple{&s, 0.0, 2.5}}) {
        const moments m = moments_of(*values);
        const double sd = (hi - lo) / std::sqrt(12.0);
        CHECK(std::abs(m.mean - (lo + hi) / 2) < 5 * sd / std::sqrt(static_cast<double>(draws)));
        CHECK(std::abs(m.sd - sd) < 0.02 * sd);
    }
    REQUIRE(orders.size() == 6);
    for (const auto& [order, count] : orders) {
        const double p = 1.0 / 6, expected = p * static_cast<double>(draws);
        CHECK(std::abs(static_cast<double>(count) - expected) < 5 * std::sqrt(expected * (1 - p)));
    }
    // Off: factor 1, nothing changes.
    const sd::jitter_factors none = sd::draw_jitter({}, g);
    CHECK(none.brightness == 1.0f);
    CHECK(none.contrast == 1.0f);
    CHECK(none.saturation == 1.0f);
}

TEST_CASE("exp and log of the crop draws agree with libm", "[augmentation]") {
    for (double x = 0.001; x < 1000.0; x *= 1.37) {
        CHECK(std::abs(sd::detail::portable_log(x) - std::log(x)) < 1e-13 * std::max(1.0, std::abs(std::log(x))));
        const double y = std::log(x);
        CHECK(std::abs(sd::detail::portable_exp(y) / std::exp(y) - 1.0) < 1e-13);
    }
    CHECK(sd::detail::round_half_even(2.5) == 2);
    CHECK(sd::detail::round_half_even(3.5) == 4);
    CHECK(sd::detail::round_half_even(3.4999) == 3);
    CHECK(sd::detail::round_half_even(0.0) == 0);
}

TEST_CASE("sample_transform: reproducible, the same for bytes and floats, the flip a mirror of the crop",
          "[augmentation]") {
    const std::size_t h = 12, w = 10, c = 3, n = 8;
    const sd::byte_dataset bytes = random_bytes(n, h, w, c, 3);
    const sd::dataset data = sd::to_dataset(bytes);
    const std::size_t sample = h * w * c;
    const sd::augmentation all{.flip = true,
                               .random_resized_crop = sd::random_resized_crop{},
                               .color_jitter = {.brightness = 0.4f, .contrast = 0.4f, .saturation = 0.4f}};
    const sd::normalization norm{{0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f}};
    sd::sample_transform t(all, norm, h, w, c);
    auto run = [&](const sd::sample_transform& tr, std::size_t i, bool from_bytes) {
        std::vector<float> out(sample);
        if (from_bytes)
            tr(bytes.images.data() + i * sample, i, out.data());
        else
            tr(data.images.data() + i * sample, i, out.data());
        return out;
    };
    t.start_epoch(5, 1);
    std::vector<std::vector<float>> first;
    for (std::size_t i = 0; i < n; ++i) {
        first.push_back(run(t, i, false));
        CHECK(first.back() == run(t, i, true));
        CHECK(first.back() == run(t, i, false));
    }
    t.start_epoch(5, 2);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < n; ++i) differ += run(t, i, false) != first[i] ? 1 : 0;
    CHECK(differ == n);

    // With and without the flip: each image is the same crop, mirrored or not, and both occur.
    sd::sample_transform crop_flip({.flip = true, .random_resized_crop = sd::random_resized_crop{}}, {}, h, w, c);
    sd::sample_transform crop_only({.random_resized_crop = sd::random_resized_crop{}}, {}, h, w, c);
    crop_flip.start_epoch(9, 3);
    crop_only.start_epoch(9, 3);
    std::size_t mirrored = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const auto a = run(crop_flip, i, true), b = run(crop_only, i, true);
        if (a == b) continue;
        ++mirrored;
        for (std::size_t y = 0; y < h; ++y)
            for (std::size_t x = 0; x < w; ++x)
                for (std::size_t k = 0; k < c; ++k) REQUIRE(a[(y * w + x) * c + k] == b[(y * w + w - 1 - x) * c + k]);
    }
    CHECK(mirrored > 0);
    CHECK(mirrored < n);

    // Normalisation alone is the formula, and needs no epoch.
    sd::sample_transform only_norm({}, norm, h, w, c);
    const auto normalised = run(only_norm, 2, true);
    for (std::size_t i = 0; i < sample; ++i)
        CHECK(normalised[i] == (data.images.data()[2 * sample + i] - norm.mean[i % 3]) / norm.std[i % 3]);
}

TEST_CASE("sample_transform refuses options that do not fit, naming them", "[augmentation][errors]") {
    using Catch::Matchers::Contains;
    const auto make = [](sd::augmentation a, sd::normalization n, std::size_t c) {
        return sd::sample_transform(std::move(a), std::move(n), 8, 8, c);
    };
    CHECK_THROWS_WITH(make({.crop_padding = 2, .random_resized_crop = sd::random_resized_crop{}}, {}, 3),
                      Contains("use one"));
    CHECK_THROWS_WITH(make({.random_resized_crop = sd::random_resized_crop{.scale = {0.5, 0.2}}}, {}, 3),
                      Contains("scale"));
    CHECK_THROWS_WITH(make({.random_resized_crop = sd::random_resized_crop{.scale = {0.0, 1.0}}}, {}, 3),
                      Contains("scale"));
    CHECK_THROWS_WITH(make({.random_resized_crop = sd::random_resized_crop{.ratio = {2.0, 1.0}}}, {}, 3),
                      Contains("ratio"));
    CHECK_THROWS_WITH(make({.color_jitter = {.saturation = 0.3f}}, {}, 1), Contains("saturation needs RGB"));
    CHECK_THROWS_WITH(make({.color_jitter = {.brightness = 0.3f}}, {}, 2), Contains("1 or 3 channels"));
    CHECK_THROWS_WITH(make({.color_jitter = {.contrast = -0.1f}}, {}, 3), Contains("contrast"));
    CHECK_THROWS_WITH(make({.crop_padding = 9}, {}, 3), Contains("crop padding 9"));
    CHECK_THROWS_WITH(make({}, {{0.5f}, {0.2f}}, 3), Contains("1 means and 1 standard deviations for images of 3"));
    CHECK_THROWS_WITH(make({}, {{0.5f}, {0.0f}}, 1), Contains("std[0]"));
    CHECK_NOTHROW(make({.color_jitter = {.brightness = 0.3f, .contrast = 0.2f}}, {{0.5f}, {0.2f}}, 1));
}

TEST_CASE("batch_loader: the new augmentations, on the pool and on the loader thread alike", "[augmentation][loader]") {
    const sd::byte_dataset bytes = random_bytes(20, 9, 7, 3, 4);
    std::vector<std::size_t> order(20);
    std::iota(order.begin(), order.end(), 0);
    std::reverse(order.begin(), order.end());
    sn::thread_pool pool(2);
    const sd::loader_options options{.flip = true,
                                     .random_resized_crop = sd::random_resized_crop{.scale = {0.3, 1.0}},
                                     .color_jitter = {.brightness = 0.3f, .saturation = 0.5f},
                                     .normalization = {{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}},
                                     .seed = 12};
    sd::loader_options pooled = options;
    pooled.pool = &pool;
    sd::batch_loader threaded(bytes, 6, options), on_pool(bytes, 6, pooled);
    sd::sample_transform t({.flip = true,
                            .random_resized_crop = options.random_resized_crop,
                            .color_jitter = options.color_jitter},
                           options.normalization, 9, 7, 3);
    t.start_epoch(12, 4);
    threaded.start_epoch(order, 4);
    on_pool.start_epoch(order, 4);
    std::vector<float> expected(9 * 7 * 3);
    while (const sd::batch* a = threaded.next()) {
        const sd::batch* b = on_pool.next();
        REQUIRE(b != nullptr);
        CHECK(std::equal(a->images.begin(), a->images.end(), b->images.begin(), b->images.end()));
        for (std::size_t i = 0; i < a->size; ++i) {
            t(bytes.images.data() + a->indices[i] * expected.size(), a->indices[i], expected.data());
            CHECK(std::equal(expected.begin(), expected.end(), a->images.begin() + static_cast<std::ptrdiff_t>(i * expected.size())));
        }
    }
    CHECK(on_pool.next() == nullptr);
}

namespace {
using tiny_net = sn::sequential<sn::input<8, 8, 3>, sn::conv2d<4, 3, sn::relu>, sn::max_pool2d<2>, sn::flatten,
                                sn::dense<3, sn::softmax>>;
}

TEST_CASE("model: normalization in the settings equals normalised data, in fit, evaluate and predict",
          "[augmentation][model]") {
    const sd::byte_dataset bytes = random_bytes(45, 8, 8, 3, 21);
    const sd::normalization norm{{0.45f, 0.5f, 0.55f}, {0.3f, 0.28f, 0.26f}};
    sd::dataset normalised = sd::to_dataset(bytes);
    norm.apply(normalised.images.data(), 45 * 64, 3);

    auto run = [](auto&& m, const auto& train) {
        const auto h = m.fit(train, {.epochs = 2, .batch_size = 16, .seed = 2, .verbose = false});
        const auto e = m.evaluate(train);
        const auto p = m.predict(train.images);
        std::vector<double> result{h.epochs.back().loss, e.loss, e.accuracy};
        result.insert(result.end(), m.network().parameters().begin(), m.network().parameters().end());
        result.insert(result.end(), p.begin(), p.end());
        return result;
    };
    using model = sn::model<tiny_net, sn::adam, sn::categorical_crossentropy>;
    const auto with_setting = run(model({}, {.threads = 2, .seed = 3, .normalization = norm}), bytes);
    const auto with_data = run(model({}, {.threads = 2, .seed = 3}), normalised);
    CHECK(with_setting == with_data);
    // And it is not a no-op.
    CHECK(with_setting != run(model({}, {.threads = 2, .seed = 3}), bytes));

    CHECK_THROWS_WITH(model({}, {.normalization = {{0.5f}, {0.2f}}}),
                      Catch::Matchers::Contains("model_settings: normalization has 1 means"));
}

TEST_CASE("model: fit with random resized crops and colour jitter is reproducible and thread-count independent",
          "[augmentation][model]") {
    const sd::byte_dataset bytes = random_bytes(50, 8, 8, 3, 22);  // 50 = 3 batches of 16 and one of 2
    auto run = [&](std::size_t threads, std::uint64_t seed) {
        sn::model<tiny_net, sn::sgd, sn::categorical_crossentropy> m({.learning_rate = 0.05f},
                                                                     {.threads = threads, .seed = 1});
        m.fit(bytes, {.epochs = 2, .batch_size = 16, .seed = seed, .verbose = false, .flip = true,
                      .random_resized_crop = sd::random_resized_crop{.scale = {0.25, 1.0}},
                      .color_jitter = {.brightness = 0.4f, .contrast = 0.4f, .saturation = 0.4f}});
        const auto p = m.network().parameters();
        return std::vector<float>(p.begin(), p.end());
    };
    const auto one = run(1, 8);
    CHECK(one == run(1, 8));
    CHECK(one == run(3, 8));
    CHECK(one != run(1, 9));

    sn::model<tiny_net, sn::sgd, sn::categorical_crossentropy> m({}, {.threads = 1});
    CHECK_THROWS_WITH(m.fit(bytes, {.verbose = false, .crop_padding = 1,
                                    .random_resized_crop = sd::random_resized_crop{}}),
                      Catch::Matchers::Contains("fit: random_resized_crop and crop_padding"));
}
