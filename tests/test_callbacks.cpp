// Callbacks: early stopping, learning-rate schedules, csv_logger, history files (CSV, JSON,
// SVG), lambda_callback, and user-written callbacks composed with the ready-made ones.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <staticnet/staticnet.hpp>
#include <staticnet/train/early_stopping.hpp>
#include <staticnet/train/history_chart.hpp>
#include <staticnet/train/history_io.hpp>
#include <staticnet/train/schedules.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace sn = staticnet;
#if __cpp_deduction_guides < 201907L
// Where designated initializers cannot deduce lambda_callback's hook types (clang < 17), the
// tests name them; a hook not given has this type.
using no_hook = sn::detail::no_hook;
#endif
namespace fs = std::filesystem;

namespace {

using tiny_net = sn::sequential<sn::input<4, 4, 1>, sn::flatten, sn::dense<3, sn::softmax>>;
using tiny_model = sn::model<tiny_net, sn::adam, sn::sparse_categorical_crossentropy>;
// With state (batch_norm's moving statistics), for restoring weights.
using stateful_net = sn::sequential<sn::input<4, 4, 1>, sn::batch_norm<>, sn::flatten, sn::dense<3, sn::softmax>>;

tiny_model make_model(float learning_rate = 1e-2f) { return tiny_model({.learning_rate = learning_rate}, {.threads = 1, .seed = 1}); }

/// Three classes of 4x4 images: bright top half, bright bottom half, or dark; plus noise.
sn::data::dataset samples(std::size_t n, std::uint64_t seed) {
    sn::data::dataset d;
    d.images = xt::zeros<float>({n, std::size_t{4}, std::size_t{4}, std::size_t{1}});
    d.labels = xt::zeros<std::int32_t>({n});
    d.num_classes = 3;
    sn::rng g(seed);
    for (std::size_t i = 0; i < n; ++i) {
        const auto label = static_cast<std::int32_t>(i % 3);
        d.labels(i) = label;
        for (std::size_t y = 0; y < 4; ++y)
            for (std::size_t x = 0; x < 4; ++x) {
                const bool lit = (label == 0 && y < 2) || (label == 1 && y >= 2);
                d.images(i, y, x, 0) = (lit ? 0.8f : 0.2f) + g.uniform(-0.1f, 0.1f);
            }
    }
    return d;
}

std::string read_file(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) parts.push_back(part);
    if (!text.empty() && text.back() == separator) parts.emplace_back();
    return parts;
}

/// A CSV field back to a number; an empty field is NaN.
double field_value(const std::string& field) {
    if (field.empty()) return std::numeric_limits<double>::quiet_NaN();
    char* end = nullptr;
    const double v = std::strtod(field.c_str(), &end);
    REQUIRE(*end == '\0');
    return v;
}

/// Parses the CSV of history_csv / csv_logger: the header, then a map per row.
std::vector<std::map<std::string, double>> parse_csv(const std::string& text, std::vector<std::string>& header) {
    auto lines = split(text, '\n');
    REQUIRE(!lines.empty());
    REQUIRE(lines.back().empty());  // ends with a newline
    lines.pop_back();
    header = split(lines.front(), ',');
    std::vector<std::map<std::string, double>> rows;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto fields = split(lines[i], ',');
        REQUIRE(fields.size() == header.size());
        std::map<std::string, double> row;
        for (std::size_t f = 0; f < fields.size(); ++f) row[header[f]] = field_value(fields[f]);
        rows.push_back(row);
    }
    return rows;
}

/// What history_json writes, read back by a real JSON parser (anything invalid, such as a
/// bare nan, inf or a hex float, throws): an array of flat objects whose values are numbers
/// or null (NaN here).
std::vector<std::map<std::string, double>> parse_json(const std::string& text) {
    const auto document = nlohmann::json::parse(text);
    REQUIRE(document.is_array());
    std::vector<std::map<std::string, double>> records;
    for (const auto& object : document) {
        REQUIRE(object.is_object());
        std::map<std::string, double> record;
        for (const auto& [key, value] : object.items()) {
            INFO("key " << key << ": " << value.dump());
            REQUIRE((value.is_number() || value.is_null()));
            record[key] = value.is_null() ? std::numeric_limits<double>::quiet_NaN() : value.get<double>();
        }
        records.push_back(record);
    }
    return records;
}

bool same_value(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

/// The polylines of an SVG: the number of points of each.
std::vector<std::size_t> polyline_points(const std::string& svg) {
    std::vector<std::size_t> counts;
    for (std::size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) {
        const auto begin = svg.find("points=\"", at) + 8;
        const auto end = svg.find('"', begin);
        const auto points = split(svg.substr(begin, end - begin), ' ');
        for (const auto& p : points) CHECK(p.find(',') != std::string::npos);
        counts.push_back(points.size());
    }
    return counts;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

sn::epoch_log epoch(std::size_t number, double loss, double accuracy, double val_loss, double val_accuracy) {
    sn::epoch_log e;
    e.epoch = number;
    e.epochs = 5;
    e.loss = loss;
    e.accuracy = accuracy;
    e.val_loss = val_loss;
    e.val_accuracy = val_accuracy;
    e.learning_rate = 1e-3f;
    e.seconds = 0.25 * static_cast<double>(number);
    return e;
}

/// A user-written callback: records every call, with its name, in a shared log.
struct recorder {
    std::string name;
    std::vector<std::string>* log;
    template <typename Model>
    void on_train_begin(Model&, const sn::fit_options& o) {
        log->push_back(name + ":train_begin " + std::to_string(o.epochs));
    }
    template <typename Model>
    void on_epoch_begin(Model& m, std::size_t e, std::size_t) {
        std::ostringstream s;
        s << name << ":epoch_begin " << e << " lr " << m.learning_rate();
        log->push_back(s.str());
    }
    template <typename Model>
    void on_batch_end(Model&, const sn::batch_log& b) {
        log->push_back(name + ":batch_end " + std::to_string(b.step));
    }
    template <typename Model>
    void on_epoch_end(Model&, const sn::epoch_log& e) {
        log->push_back(name + ":epoch_end " + std::to_string(e.epoch));
    }
    template <typename Model>
    void on_train_end(Model&, const sn::history& h) {
        log->push_back(name + ":train_end " + std::to_string(h.size()));
    }
};

/// A user-written callback with only const hooks: usable as a const object.
struct epoch_counter {
    int* epochs;
    template <typename Model>
    void on_epoch_end(Model&, const sn::epoch_log&) const {
        ++*epochs;
    }
};

}  // namespace

// ---------------------------------------------------------------- early stopping

TEST_CASE("early_stopping stops after `patience` epochs without improvement", "[callbacks][early_stopping]") {
    const auto train = samples(48, 1);
    // Learning rate 0 and no shuffling: every epoch has bitwise the same loss, so only the
    // first one improves on anything.
    const auto frozen = sn::lr_schedule{[](std::size_t) { return 0.0f; }};
    for (std::size_t patience : {0u, 1u, 2u, 4u}) {
        auto m = make_model();
        sn::early_stopping stop{.monitor = sn::metric::loss, .patience = patience};
        const auto h = m.fit(train, {.epochs = 10, .batch_size = 16, .shuffle = false, .verbose = false}, frozen, stop);
        const std::size_t expected = 1 + std::max<std::size_t>(patience, 1);
        CHECK(h.size() == expected);
        CHECK(stop.stopped_epoch == expected);
        CHECK(stop.best_epoch == 1);
        CHECK(stop.best == h.epochs.front().loss);
        CHECK(h.back().loss == h.epochs.front().loss);
    }
}

TEST_CASE("early_stopping lets a metric that keeps improving train on", "[callbacks][early_stopping]") {
    auto m = make_model(5e-2f);
    sn::early_stopping stop{.monitor = sn::metric::loss, .patience = 1};
    const auto h = m.fit(samples(48, 1), {.epochs = 4, .batch_size = 16, .shuffle = false, .verbose = false}, stop);
    CHECK(h.size() == 4);
    CHECK(stop.stopped_epoch == 0);
    CHECK(stop.best_epoch == 4);
}

TEST_CASE("early_stopping follows the monitored metric, its mode and min_delta", "[callbacks][early_stopping]") {
    auto m = make_model();
    const auto data = samples(6, 1);
    const sn::fit_options options{.validation = &data};
    SECTION("val_loss, min by default") {
        sn::early_stopping stop{.patience = 2};
        CHECK(stop.minimizes());
        stop.on_train_begin(m, options);
        const double values[] = {1.0, 0.7, 0.8, 0.75, 0.9};
        for (std::size_t e = 1; e <= 4; ++e) stop.on_epoch_end(m, epoch(e, 0, 0, values[e - 1], 0));
        CHECK(stop.best_epoch == 2);
        CHECK(stop.best == 0.7);
        CHECK(stop.stopped_epoch == 4);
    }
    SECTION("val_accuracy, max by default, with min_delta") {
        sn::early_stopping stop{.monitor = sn::metric::val_accuracy, .min_delta = 0.03, .patience = 2};
        CHECK_FALSE(stop.minimizes());
        stop.on_train_begin(m, options);
        const double values[] = {0.5, 0.52, 0.55, 0.56, 0.57};
        for (std::size_t e = 1; e <= 4; ++e) stop.on_epoch_end(m, epoch(e, 0, 0, 0, values[e - 1]));
        CHECK(stop.best_epoch == 3);  // 0.52 is not 0.03 better than 0.5; 0.55 is
        CHECK(stop.stopped_epoch == 0);
        stop.on_epoch_end(m, epoch(5, 0, 0, 0, values[4]));
        CHECK(stop.stopped_epoch == 5);
    }
    SECTION("an explicit mode overrides the automatic one") {
        sn::early_stopping stop{.monitor = sn::metric::loss, .mode = sn::monitor_mode::max};
        CHECK_FALSE(stop.minimizes());
        stop.on_train_begin(m, options);
        stop.on_epoch_end(m, epoch(1, 1.0, 0, 0, 0));
        stop.on_epoch_end(m, epoch(2, 2.0, 0, 0, 0));
        CHECK(stop.best_epoch == 2);
    }
    SECTION("the metric names match the files' field names") {
        CHECK(sn::metric_name(sn::metric::val_accuracy) == "val_accuracy");
        CHECK(sn::metric_value(epoch(1, 0.5, 0.6, 0.7, 0.8), sn::metric::val_loss) == 0.7);
    }
}

TEST_CASE("early_stopping restores the best epoch's weights and state", "[callbacks][early_stopping]") {
    SECTION("hook by hook: parameters and batch_norm state of the best epoch come back") {
        sn::model<stateful_net, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.threads = 1});
        const auto data = samples(6, 1);
        sn::early_stopping stop{.patience = 2, .restore_best_weights = true};
        stop.on_train_begin(m, {.validation = &data});
        CHECK(stop.best_parameters.size() == m.network().parameters().size());
        CHECK(stop.best_state.size() == m.network().state().size());
        REQUIRE(!stop.best_state.empty());
        const double values[] = {1.0, 0.7, 0.8, 0.75};
        sn::history h;
        for (std::size_t e = 1; e <= 4; ++e) {
            auto p = m.network().parameters();
            auto s = m.network().state();
            std::fill(p.begin(), p.end(), static_cast<float>(e));
            std::fill(s.begin(), s.end(), static_cast<float>(10 * e));
            h.epochs.push_back(epoch(e, 0, 0, values[e - 1], 0));
            stop.on_epoch_end(m, h.back());
        }
        CHECK(stop.stopped_epoch == 4);
        stop.on_train_end(m, h);
        for (float v : m.network().parameters()) REQUIRE(v == 2.0f);
        for (float v : m.network().state()) REQUIRE(v == 20.0f);
    }
    SECTION("in fit: the weights at the end are those recorded after the best epoch") {
        auto m = make_model(5e-2f);
        const auto train = samples(48, 1);
        std::vector<std::vector<float>> after_epoch;  // parameters at the end of each epoch
        auto snapshot = sn::on_epoch_end_callback([&](auto& model, const sn::epoch_log&) {
            const auto p = model.network().parameters();
            after_epoch.emplace_back(p.begin(), p.end());
        });
        // "max" on a falling loss: the first epoch is the best, and training stops after 3.
        sn::early_stopping stop{.monitor = sn::metric::loss, .patience = 2, .mode = sn::monitor_mode::max,
                                .restore_best_weights = true};
        const auto h = m.fit(train, {.epochs = 10, .batch_size = 16, .verbose = false}, snapshot, stop);
        REQUIRE(stop.best_epoch >= 1);
        REQUIRE(stop.stopped_epoch == h.size());
        REQUIRE(stop.best_epoch < h.size());
        const auto p = m.network().parameters();
        CHECK(std::equal(p.begin(), p.end(), after_epoch[stop.best_epoch - 1].begin()));
        CHECK_FALSE(std::equal(p.begin(), p.end(), after_epoch.back().begin()));
    }
}

TEST_CASE("early_stopping on a validation metric without validation data is an error", "[callbacks][early_stopping]") {
    auto m = make_model();
    const auto train = samples(12, 1);
    CHECK_THROWS_WITH(m.fit(train, {.epochs = 3, .verbose = false}, sn::early_stopping{}),
                      Catch::Contains("early_stopping") && Catch::Contains("val_loss") &&
                          Catch::Contains("no validation data"));
    CHECK_THROWS_AS(m.fit(train, {.epochs = 3, .verbose = false}, sn::early_stopping{.monitor = sn::metric::val_accuracy}),
                    sn::error);
    // Training metrics need none.
    CHECK_NOTHROW(m.fit(train, {.epochs = 1, .verbose = false}, sn::early_stopping{.monitor = sn::metric::accuracy}));
}

// ---------------------------------------------------------------- schedules

TEST_CASE("learning-rate schedules as functions of the epoch", "[callbacks][schedules]") {
    constexpr sn::step_decay step{.initial = 0.1f, .factor = 0.5f, .every_epochs = 2};
    CHECK(step(1) == 0.1f);
    CHECK(step(2) == 0.1f);
    CHECK(step(3) == 0.05f);
    CHECK(step(5) == 0.025f);
    CHECK(sn::step_decay{.initial = 0.1f, .every_epochs = 0}(9) == 0.1f);

    constexpr sn::cosine_decay cosine{.initial = 0.1f, .minimum = 0.01f, .epochs = 4};
    for (std::size_t e = 1; e <= 6; ++e) {
        const double progress = static_cast<double>(std::min<std::size_t>(e - 1, 4)) / 4.0;
        const double expected = 0.01 + 0.09 * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
        CHECK(cosine(e, 99) == Approx(expected).epsilon(1e-6));
    }
    CHECK(cosine(1, 99) == 0.1f);
    CHECK(cosine(5, 99) == Approx(0.01f));
    CHECK(sn::cosine_decay{.initial = 0.1f}(3, 2) == Approx(0.0f).margin(1e-9));  // .epochs = 0: the fit's
}

TEST_CASE("schedules set the learning rate of every epoch of fit", "[callbacks][schedules]") {
    const auto train = samples(24, 1);
    const sn::fit_options options{.epochs = 5, .batch_size = 12, .verbose = false};
    auto rates = [](const sn::history& h) {
        std::vector<float> r;
        for (const auto& e : h.epochs) r.push_back(static_cast<float>(e.learning_rate));
        return r;
    };
    SECTION("step_decay (a const object)") {
        auto m = make_model();
        const sn::step_decay schedule{.initial = 0.1f, .factor = 0.5f, .every_epochs = 2};
        CHECK(rates(m.fit(train, options, schedule)) == std::vector<float>{0.1f, 0.1f, 0.05f, 0.05f, 0.025f});
        CHECK(m.learning_rate() == 0.025f);
    }
    SECTION("cosine_decay over the fit's epochs") {
        auto m = make_model();
        const sn::cosine_decay schedule{.initial = 0.1f, .minimum = 0.0f};
        const auto r = rates(m.fit(train, options, schedule));
        REQUIRE(r.size() == 5);
        for (std::size_t e = 1; e <= 5; ++e) CHECK(r[e - 1] == schedule(e, 5));
        CHECK(r[0] == 0.1f);
        CHECK(r[4] < r[3]);
    }
    SECTION("lr_schedule with a function of the epoch, or of the epoch and the current rate") {
        auto m = make_model(0.2f);
        auto linear = [](std::size_t e) { return 0.01f * static_cast<float>(e); };
        CHECK(rates(m.fit(train, options, sn::lr_schedule{linear})) ==
              std::vector<float>{linear(1), linear(2), linear(3), linear(4), linear(5)});
        const float last = m.learning_rate();
        auto halve = sn::lr_schedule{[](std::size_t e, float lr) { return e == 1 ? lr : lr / 2; }};
        CHECK(rates(m.fit(train, options, halve)) == std::vector<float>{last, last / 2, last / 4, last / 8, last / 16});
        int calls = 0;  // a mutable function needs a non-const lr_schedule
        auto counting = sn::lr_schedule{[calls](std::size_t) mutable { return 0.5f * static_cast<float>(++calls); }};
        CHECK(rates(m.fit(train, options, counting)) == std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f, 2.5f});
    }
    SECTION("resuming numbers the epochs on: the schedule continues") {
        auto m = make_model();
        const sn::step_decay schedule{.initial = 0.1f, .factor = 0.5f, .every_epochs = 2};
        const auto h = m.fit(train, {.epochs = 5, .batch_size = 12, .verbose = false, .initial_epoch = 2}, schedule);
        CHECK(rates(h) == std::vector<float>{0.05f, 0.05f, 0.025f});
    }
}

TEST_CASE("linear_warmup as a function of the step", "[callbacks][schedules][warmup]") {
    constexpr sn::linear_warmup<float> from_zero{.steps = 4, .target = 0.2f};
    CHECK(from_zero.factor(1) == 0.25f);
    CHECK(from_zero.factor(2) == 0.5f);
    CHECK(from_zero.factor(4) == 1.0f);
    CHECK(from_zero.factor(100) == 1.0f);
    CHECK(from_zero(1, 1, 10) == Approx(0.05f));
    CHECK(from_zero(7, 2, 10) == 0.2f);
    // Goyal et al.: from the rate of one worker (1/8 of the target) up to the target.
    constexpr sn::linear_warmup<float> goyal{.steps = 10, .start_factor = 0.125f, .target = 0.8f};
    for (std::size_t s = 1; s <= 12; ++s) {
        const double expected = 0.8 * (0.125 + 0.875 * static_cast<double>(std::min<std::size_t>(s, 10)) / 10.0);
        CHECK(goyal(s, 1, 3) == Approx(expected).epsilon(1e-6));
    }
    CHECK(sn::linear_warmup<float>{.steps = 0, .target = 0.3f}(1, 1, 1) == 0.3f);  // no warm-up
    // Per-epoch targets: the epoch's rate, scaled by the step's factor.
    constexpr sn::linear_warmup<sn::step_decay> decayed{.steps = 4, .target = {.initial = 0.1f, .factor = 0.5f, .every_epochs = 1}};
    CHECK(decayed(2, 1, 5) == Approx(0.05f));
    CHECK(decayed(3, 2, 5) == Approx(0.0375f));
    CHECK(decayed(9, 3, 5) == Approx(0.025f));
    constexpr sn::linear_warmup<sn::cosine_decay> cosine{.steps = 2, .target = {.initial = 0.1f}};
    CHECK(cosine(1, 1, 4) == Approx(0.05f));
    CHECK(cosine(5, 3, 4) == sn::cosine_decay{.initial = 0.1f}(3, 4));
    const auto by_epoch = sn::linear_warmup<sn::lr_schedule<float (*)(std::size_t)>>{
        .steps = 2, .target = {[](std::size_t e) { return 0.1f * static_cast<float>(e); }}};
    CHECK(by_epoch(1, 3, 4) == Approx(0.15f));
}

// Records the rate of every step: a callback of one hook, written as a struct.
struct rate_recorder {
    std::vector<float>* rates;
    template <typename Model>
    void on_batch_end(Model& m, const sn::batch_log&) const {
        rates->push_back(m.learning_rate());
    }
};

TEST_CASE("linear_warmup sets the rate of every step and composes with a decay", "[callbacks][schedules][warmup]") {
    const auto train = samples(24, 1);  // batch 6: 4 steps per epoch
    const sn::fit_options options{.epochs = 3, .batch_size = 6, .verbose = false};
    // Callbacks run in order: this one, passed after the warm-up, sees the rate of each step.
    auto recorded = [](std::vector<float>& rates) { return rate_recorder{&rates}; };
    SECTION("a constant target") {
        auto m = make_model(0.5f);  // the optimizer's own rate is replaced from the first step
        std::vector<float> rates;
        const sn::linear_warmup<float> warmup{.steps = 6, .target = 0.06f};
        const auto h = m.fit(train, options, warmup, recorded(rates));
        REQUIRE(rates.size() == 12);
        for (std::size_t s = 1; s <= 12; ++s) CHECK(rates[s - 1] == Approx(0.06f * std::min<float>(1.0f, static_cast<float>(s) / 6)));
        // epoch_log records the rate of the epoch's last step.
        CHECK(h.epochs[0].learning_rate == Approx(0.04f));
        CHECK(h.epochs[1].learning_rate == Approx(0.06f));
    }
    SECTION("inside a step decay: the decay's rate of each epoch, warmed up over the first steps") {
        auto m = make_model();
        std::vector<float> rates;
        const sn::linear_warmup<sn::step_decay> warmup{
            .steps = 6, .start_factor = 0.5f, .target = {.initial = 0.1f, .factor = 0.5f, .every_epochs = 2}};
        m.fit(train, options, warmup, recorded(rates));
        REQUIRE(rates.size() == 12);
        for (std::size_t s = 1; s <= 12; ++s) {
            const std::size_t epoch = (s - 1) / 4 + 1;
            CHECK(rates[s - 1] == Approx(warmup.target(epoch) * warmup.factor(s)));
        }
        CHECK(rates[0] == Approx(0.1f * (0.5f + 0.5f / 6)));
        CHECK(rates[5] == Approx(0.1f));
        CHECK(rates[8] == Approx(0.05f));
    }
    SECTION("resuming at a later epoch continues the warm-up") {
        auto m = make_model();
        std::vector<float> rates;
        const sn::linear_warmup<float> warmup{.steps = 8, .target = 0.08f};
        m.fit(train, {.epochs = 3, .batch_size = 6, .verbose = false, .initial_epoch = 1}, warmup, recorded(rates));
        REQUIRE(rates.size() == 8);
        CHECK(rates[0] == Approx(0.05f));  // step 5 of the run
        CHECK(rates[3] == Approx(0.08f));
    }
    SECTION("the rate set before a step is the one the optimizer applies") {
        // A zero rate leaves the weights as they are.
        auto m = make_model();
        const std::vector<float> before(m.network().parameters().begin(), m.network().parameters().end());
        m.fit(train, {.epochs = 1, .batch_size = 6, .verbose = false}, sn::linear_warmup<float>{.steps = 10, .target = 0.0f});
        CHECK(std::vector<float>(m.network().parameters().begin(), m.network().parameters().end()) == before);
    }
}

TEST_CASE("on_batch_begin comes before each step, with the step about to run", "[callbacks][order]") {
    std::vector<std::string> log;
    auto m = make_model();
    auto begin = [&](auto& model, const sn::batch_log& b) {
        log.push_back("begin " + std::to_string(b.epoch) + "." + std::to_string(b.step) + "/" + std::to_string(b.steps) +
                      " after " + std::to_string(model.steps_done()));
    };
    auto end = [&](auto&, const sn::batch_log& b) {
        log.push_back("end " + std::to_string(b.epoch) + "." + std::to_string(b.step));
    };
#if __cpp_deduction_guides >= 201907L  // deduction from a designated initializer (not in clang < 17)
    m.fit(samples(8, 1), {.epochs = 2, .batch_size = 4, .verbose = false},
          sn::lambda_callback{.on_batch_begin = begin, .on_batch_end = end});
#else
    m.fit(samples(8, 1), {.epochs = 2, .batch_size = 4, .verbose = false},
          sn::lambda_callback<no_hook, no_hook, decltype(begin), decltype(end)>{.on_batch_begin = begin, .on_batch_end = end});
#endif
    const std::vector<std::string> expected = {"begin 1.1/2 after 0", "end 1.1", "begin 1.2/2 after 1", "end 1.2",
                                               "begin 2.1/2 after 2", "end 2.1", "begin 2.2/2 after 3", "end 2.2"};
    CHECK(log == expected);
}

// ---------------------------------------------------------------- files

TEST_CASE("csv_logger writes a header and one flushed row per epoch", "[callbacks][csv]") {
    temp_dir dir;
    const auto file = dir.path / "log.csv";
    const auto train = samples(24, 1), test = samples(12, 2);
    auto m = make_model();
    std::vector<std::size_t> lines_seen;  // the file as each epoch ends: the row is already there
    auto watch = sn::on_epoch_end_callback([&](auto&, const sn::epoch_log&) {
        lines_seen.push_back(split(read_file(file), '\n').size() - 1);
    });
    const auto h = m.fit(train, {.epochs = 3, .batch_size = 8, .validation = &test, .verbose = false},
                         sn::csv_logger{file}, watch);
    CHECK(lines_seen == std::vector<std::size_t>{2, 3, 4});

    std::vector<std::string> header;
    const auto rows = parse_csv(read_file(file), header);
    CHECK(header == std::vector<std::string>{"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                                             "seconds"});
    REQUIRE(rows.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto& e = h.epochs[i];
        CHECK(rows[i].at("epoch") == static_cast<double>(i + 1));
        CHECK(rows[i].at("loss") == e.loss);  // shortest round-trip form: exact
        CHECK(rows[i].at("accuracy") == e.accuracy);
        CHECK(rows[i].at("val_loss") == e.val_loss);
        CHECK(rows[i].at("val_accuracy") == e.val_accuracy);
        CHECK(static_cast<float>(rows[i].at("learning_rate")) == static_cast<float>(e.learning_rate));
        CHECK(rows[i].at("seconds") == Approx(e.seconds).margin(0.0006));
    }

    SECTION("append adds rows without a second header; without validation its fields are empty") {
        sn::csv_logger appending(file, true);
        m.fit(train, {.epochs = 5, .batch_size = 8, .verbose = false, .initial_epoch = 3}, appending);
        const auto text = read_file(file);
        CHECK(count(text, "epoch,") == 1);
        const auto all = parse_csv(text, header);
        REQUIRE(all.size() == 5);
        CHECK(all[4].at("epoch") == 5.0);
        CHECK(std::isnan(all[4].at("val_loss")));
        CHECK(text.find("\n5,") != std::string::npos);
        CHECK(split(text, '\n')[5].find(",,") != std::string::npos);
    }
    SECTION("without append, a new fit starts the file anew") {
        m.fit(train, {.epochs = 1, .batch_size = 8, .verbose = false}, sn::csv_logger{file});
        CHECK(parse_csv(read_file(file), header).size() == 1);
    }
}

TEST_CASE("history files: CSV, JSON and SVG read back", "[callbacks][history_io]") {
    temp_dir dir;
    const auto train = samples(24, 1), test = samples(12, 2);
    auto m = make_model();
    const auto with_validation = m.fit(train, {.epochs = 4, .batch_size = 8, .validation = &test, .verbose = false});
    const auto without_validation = m.fit(train, {.epochs = 3, .batch_size = 8, .verbose = false});

    SECTION("CSV") {
        sn::write_history_csv(with_validation, dir.path / "h.csv");
        std::vector<std::string> header;
        const auto rows = parse_csv(read_file(dir.path / "h.csv"), header);
        REQUIRE(rows.size() == 4);
        for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].at("val_accuracy") == with_validation.epochs[i].val_accuracy);
        CHECK(read_file(dir.path / "h.csv") == sn::history_csv(with_validation));
    }
    SECTION("JSON: an array of epoch objects, NaN as null") {
        for (const auto* h : {&with_validation, &without_validation}) {
            sn::write_history_json(*h, dir.path / "h.json");
            const auto records = parse_json(read_file(dir.path / "h.json"));
            REQUIRE(records.size() == h->size());
            for (std::size_t i = 0; i < records.size(); ++i) {
                const auto& e = h->epochs[i];
                CHECK(records[i].size() == 7);
                CHECK(records[i].at("epoch") == static_cast<double>(e.epoch));
                CHECK(records[i].at("loss") == e.loss);
                CHECK(records[i].at("accuracy") == e.accuracy);
                CHECK(same_value(records[i].at("val_loss"), e.val_loss));
                CHECK(same_value(records[i].at("val_accuracy"), e.val_accuracy));
                CHECK(static_cast<float>(records[i].at("learning_rate")) == static_cast<float>(e.learning_rate));
            }
        }
        CHECK(count(sn::history_json(without_validation), "\"val_loss\": null") == 3);
        CHECK(parse_json(sn::history_json(sn::history{})).empty());
        // The reader is strict, so a writer that printed these would fail the checks above.
        for (const char* invalid : {"[{\"loss\": nan}]", "[{\"loss\": inf}]", "[{\"loss\": 0x1p3}]", "[{\"loss\": 1,}]"})
            CHECK_THROWS_AS(parse_json(invalid), nlohmann::json::parse_error);
        sn::history infinite;
        infinite.epochs.push_back(epoch(1, std::numeric_limits<double>::infinity(), 0.5, 1, 1));
        CHECK(std::isnan(parse_json(sn::history_json(infinite)).front().at("loss")));
    }
    SECTION("SVG: two panels, one polyline per curve with a point per epoch") {
        sn::write_history_svg(with_validation, dir.path / "h.svg", "Run <1> & \"friends\"");
        const auto svg = read_file(dir.path / "h.svg");
        CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"360\"", 0) == 0);
        CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
        CHECK(svg.find("Run &lt;1&gt; &amp; &quot;friends&quot;") != std::string::npos);
        CHECK(polyline_points(svg) == std::vector<std::size_t>{4, 4, 4, 4});  // loss, val_loss, accuracy, val_accuracy
        CHECK(count(svg, "<circle") == 16);
        CHECK(count(svg, ">epoch</text>") == 2);
        CHECK(count(svg, ">validation</text>") == 2);  // the legends
        CHECK(count(svg, "stroke-dasharray") == 4);     // validation curves and their legend lines
        CHECK(count(svg, "<text") == count(svg, "</text>"));

        const auto train_only = sn::history_svg(without_validation);
        CHECK(polyline_points(train_only) == std::vector<std::size_t>{3, 3});
        CHECK(count(train_only, ">validation</text>") == 0);
        CHECK(count(train_only, ">Training history</text>") == 1);
        CHECK(count(sn::history_svg(sn::history{}), "no epochs") == 2);
    }
}

TEST_CASE("files that cannot be written are errors naming the path", "[callbacks][history_io]") {
    const fs::path bad = fs::path("/nonexistent-staticnet-dir") / "h.csv";
    const sn::history h;
    CHECK_THROWS_WITH(sn::write_history_csv(h, bad), Catch::Contains("write_history_csv") && Catch::Contains(bad.string()));
    CHECK_THROWS_WITH(sn::write_history_json(h, bad), Catch::Contains(bad.string()));
    CHECK_THROWS_AS(sn::write_history_svg(h, bad), sn::error);
    auto m = make_model();
    CHECK_THROWS_WITH(m.fit(samples(12, 1), {.epochs = 1, .verbose = false}, sn::csv_logger{bad}),
                      Catch::Contains("csv_logger") && Catch::Contains(bad.string()));
}

// ---------------------------------------------------------------- composition

TEST_CASE("user-written callbacks compose with the ready-made ones, in order", "[callbacks][order]") {
    std::vector<std::string> log;
    auto m = make_model(0.5f);
    int epochs_counted = 0;
    const epoch_counter counter{&epochs_counted};  // const hooks: usable as a const object
    auto train_end = [&](auto&, const sn::history&) { log.push_back("lambda:train_end"); };
#if __cpp_deduction_guides >= 201907L  // deduction from a designated initializer (not in clang < 17)
    const auto lambda_hooks = sn::lambda_callback{.on_train_end = train_end};
#else
    const auto lambda_hooks =
        sn::lambda_callback<no_hook, no_hook, no_hook, no_hook, no_hook, decltype(train_end)>{.on_train_end = train_end};
#endif
    const auto h = m.fit(samples(8, 1), {.epochs = 2, .batch_size = 4, .verbose = false}, recorder{"a", &log},
                         sn::step_decay{.initial = 0.1f, .factor = 0.5f, .every_epochs = 1}, recorder{"b", &log}, counter,
                         lambda_hooks);
    CHECK(epochs_counted == 2);
    // a runs before the schedule (it still sees the previous rate), b after it.
    const std::vector<std::string> expected = {
        "a:train_begin 2",      "b:train_begin 2",                                        //
        "a:epoch_begin 1 lr 0.5", "b:epoch_begin 1 lr 0.1",                               //
        "a:batch_end 1",        "b:batch_end 1",     "a:batch_end 2", "b:batch_end 2",    //
        "a:epoch_end 1",        "b:epoch_end 1",                                          //
        "a:epoch_begin 2 lr 0.1", "b:epoch_begin 2 lr 0.05",                              //
        "a:batch_end 1",        "b:batch_end 1",     "a:batch_end 2", "b:batch_end 2",    //
        "a:epoch_end 2",        "b:epoch_end 2",                                          //
        "a:train_end 2",        "b:train_end 2",     "lambda:train_end"};
    CHECK(log == expected);
    CHECK(h.back().learning_rate == Approx(0.05));

    SECTION("a lambda_callback can stop training") {
        auto stop_after_2 = [](auto& model, const sn::epoch_log& e) {
            if (e.epoch == 2) model.stop_training();
        };
#if __cpp_deduction_guides >= 201907L
        const auto stopped = m.fit(samples(8, 1), {.epochs = 10, .batch_size = 4, .verbose = false},
                                   sn::lambda_callback{.on_epoch_end = stop_after_2});
#else
        const auto stopped =
            m.fit(samples(8, 1), {.epochs = 10, .batch_size = 4, .verbose = false},
                  sn::lambda_callback<no_hook, no_hook, no_hook, no_hook, decltype(stop_after_2)>{.on_epoch_end = stop_after_2});
#endif
        CHECK(stopped.size() == 2);
        const auto also_stopped = m.fit(samples(8, 1), {.epochs = 10, .batch_size = 4, .verbose = false},
                                        sn::on_epoch_end_callback([](auto& model, const sn::epoch_log& e) {
                                            if (e.epoch == 3) model.stop_training();
                                        }));
        CHECK(also_stopped.size() == 3);
    }
}
