// The training options PyTorch has too, against PyTorch on identical weights
// (tests/fixtures/training_pytorch.txt, written by make_pytorch_fixtures.py): adamw, sgd's
// weight decay, label smoothing, clipping by global norm; which parameters decay; and the
// same bits for any number of threads.
#include <catch2/catch.hpp>

#include <staticnet/layers/activations.hpp>
#include <staticnet/layers/batch_norm.hpp>
#include <staticnet/layers/conv2d.hpp>
#include <staticnet/layers/dense.hpp>
#include <staticnet/layers/global_average_pool2d.hpp>
#include <staticnet/layers/residual.hpp>
#include <staticnet/train/model.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "pytorch_fixture.hpp"

namespace sn = staticnet;

namespace {

// make_pytorch_fixtures.py's training_network.
using net = sn::sequential<sn::input<5, 5, 2>, sn::conv2d<4, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>,
                           sn::relu, sn::global_average_pool2d, sn::dense<3, sn::softmax>>;
constexpr std::size_t steps = 10, batch = 6;

struct trained {
    std::vector<float> parameters, state;
};

// Ten steps of the fixture's run `run` (its losses and gradient norms checked on the way) from
// the fixture's initial parameters; `Loss` sees its labels as integers or as one-hot rows.
template <typename Optimizer, typename Loss = sn::sparse_categorical_crossentropy>
trained train_as_pytorch(const std::string& run, typename Optimizer::options options, sn::model_settings settings) {
    const auto fixture = sn::testing::read_fixture(STATICNET_FIXTURES_DIR "/training_pytorch.txt");
    sn::model<net, Optimizer, Loss> m(options, settings);
    [&]<std::size_t... K>(std::index_sequence<K...>) {
        auto load = [&]<std::size_t I>() {
            const auto& values = fixture.at("parameters_" + std::to_string(I + 1));
            REQUIRE(values.size() == net::layer_type<I>::parameter_count);
            std::copy(values.begin(), values.end(), m.network().template layer_parameters<I>().begin());
        };
        (load.template operator()<K>(), ...);
    }(std::make_index_sequence<net::layer_count>{});
    const std::vector<float> images(fixture.at("input").begin(), fixture.at("input").end());
    std::vector<std::int32_t> labels;
    std::vector<float> one_hot;
    for (double l : fixture.at("labels")) {
        labels.push_back(static_cast<std::int32_t>(l));
        for (int c = 0; c < 3; ++c) one_hot.push_back(c == labels.back() ? 1.0f : 0.0f);
    }
    constexpr std::size_t sample = net::input_shape.size();
    for (std::size_t step = 0; step < steps; ++step) {
        INFO(run << ", step " << step + 1);
        const sn::batch_targets targets{one_hot.data() + step * batch * 3, labels.data() + step * batch};
        const auto result = m.train_step(images.data() + step * batch * sample, targets, batch, batch, 0, step);
        CHECK(result.loss / batch == Approx(fixture.at(run + "_loss")[step]).epsilon(1e-5));
    }
    trained t{{m.network().parameters().begin(), m.network().parameters().end()},
              {m.network().state().begin(), m.network().state().end()}};
    [&]<std::size_t... K>(std::index_sequence<K...>) {
        auto check = [&]<std::size_t I>() {
            INFO(run << ", layer " << I + 1);
            CHECK(sn::testing::relative_error(m.network().template layer_parameters<I>(),
                                              fixture.at(run + "_parameters_" + std::to_string(I + 1))) < 1e-5);
            CHECK(sn::testing::relative_error(m.network().template layer_state<I>(),
                                              fixture.at(run + "_state_" + std::to_string(I + 1))) < 1e-5);
        };
        (check.template operator()<K>(), ...);
    }(std::make_index_sequence<net::layer_count>{});
    return t;
}

bool operator==(const trained& a, const trained& b) { return a.parameters == b.parameters && a.state == b.state; }

}  // namespace

TEST_CASE("adamw with decay on the weights, label smoothing and clipping train as PyTorch does", "[train][pytorch]") {
    // PyTorch: AdamW(lr=0.01, weight_decay=0.1) on the conv and linear weights only,
    // CrossEntropyLoss(label_smoothing=0.1), clip_grad_norm_(0.3), which clips 9 of the 10 steps.
    const sn::adamw_options options{.learning_rate = 0.01f, .weight_decay = 0.1f};
    const sn::model_settings settings{.threads = 1, .label_smoothing = 0.1f, .clip_grad_norm = 0.3f};
    const auto one_thread = train_as_pytorch<sn::adamw>("adamw", options, settings);
    auto threads = settings;
    threads.threads = 3;
    CHECK(train_as_pytorch<sn::adamw>("adamw", options, threads) == one_thread);
    SECTION("with one-hot targets") { train_as_pytorch<sn::adamw, sn::categorical_crossentropy>("adamw", options, settings); }
    SECTION("in deterministic mode") {
        auto deterministic = settings;
        deterministic.deterministic = true;
        train_as_pytorch<sn::adamw>("adamw", options, deterministic);
    }
}

TEST_CASE("sgd's weight decay on every parameter, with Nesterov momentum, trains as PyTorch's", "[train][pytorch]") {
    // PyTorch: SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05), label_smoothing=0.2.
    const sn::sgd_options options{.learning_rate = 0.05f, .momentum = 0.9f, .nesterov = true, .weight_decay = 0.05f,
                                  .decay = sn::decay_scope::all_parameters};
    const sn::model_settings settings{.threads = 2, .label_smoothing = 0.2f};
    train_as_pytorch<sn::sgd>("sgd", options, settings);
}

TEST_CASE("label smoothing: both cross-entropies agree, and none leaves the targets as they are", "[train][losses]") {
    const float p[6] = {0.7f, 0.2f, 0.1f, 0.05f, 0.9f, 0.05f};
    const float y[6] = {1, 0, 0, 0, 1, 0};
    const std::int32_t labels[2] = {0, 1};
    const sn::batch_targets smoothed{y, labels, 0.3f};
    // (1 - 0.3) * -log p_label + 0.1 * -sum_c log p_c
    const double expected = 0.7 * -(std::log(0.7) + std::log(0.9)) +
                            0.1 * -(std::log(0.7) + std::log(0.2) + std::log(0.1) + 2 * std::log(0.05) + std::log(0.9));
    CHECK(sn::categorical_crossentropy::value(p, smoothed, 2, 3) == Approx(expected));
    CHECK(sn::sparse_categorical_crossentropy::value(p, smoothed, 2, 3) == Approx(expected));
    float dense_gradient[6], sparse_gradient[6];
    sn::categorical_crossentropy::gradient(p, smoothed, 2, 3, 0.5f, true, dense_gradient);
    sn::sparse_categorical_crossentropy::gradient(p, smoothed, 2, 3, 0.5f, true, sparse_gradient);
    for (int i = 0; i < 6; ++i) {
        CHECK(dense_gradient[i] == sparse_gradient[i]);
        CHECK(dense_gradient[i] == Approx((p[i] - (0.7f * y[i] + 0.1f)) * 0.5f));
    }
}

TEST_CASE("weight decay shrinks the weights of conv2d and dense, inside residual blocks too", "[train][optimizers]") {
    using resnet = sn::sequential<sn::input<6, 6, 2>, sn::conv2d<4, 3, sn::identity, 1, sn::padding::same, sn::bias::none>,
                                  sn::batch_norm<>, sn::relu,
                                  sn::residual<sn::projection<sn::conv2d<8, 1, sn::identity, 2>>, sn::conv2d<8, 3, sn::relu, 2, sn::padding::same>>,
                                  sn::global_average_pool2d, sn::dense<3, sn::softmax>>;
    using block = resnet::layer_type<3>;
    const std::vector<sn::parameter_range> expected{
        {resnet::parameter_offsets[0], 3 * 3 * 2 * 4},                                  // the stem, no bias
        {resnet::parameter_offsets[3], 3 * 3 * 4 * 8},                                  // the block's body ...
        {resnet::parameter_offsets[3] + block::parameter_offsets[1], 4 * 8},           // ... and projection
        {resnet::parameter_offsets[5], 8 * 3}};                                         // the classifier
    CHECK(resnet::weight_ranges() == expected);

    // With zero gradients adamw moves nothing but the decayed parameters, by lr * decay.
    for (auto scope : {sn::decay_scope::weights, sn::decay_scope::all_parameters}) {
        sn::model<resnet, sn::adamw, sn::sparse_categorical_crossentropy> m({.learning_rate = 0.5f, .weight_decay = 0.2f, .decay = scope},
                                                                           {.threads = 1});
        auto w = m.network().parameters();
        std::fill(w.begin(), w.end(), 1.0f);
        std::fill(m.network().gradients().begin(), m.network().gradients().end(), 0.0f);
        m.optimizer_state().step(w, m.network().gradients());
        std::size_t decayed = 0;
        for (std::size_t i = 0; i < w.size(); ++i) {
            bool is_weight = false;
            for (auto r : expected) is_weight |= i >= r.offset && i < r.offset + r.count;
            INFO("parameter " << i);
            if (is_weight || scope == sn::decay_scope::all_parameters) CHECK(w[i] == Approx(0.9f));
            else CHECK(w[i] == 1.0f);
            decayed += w[i] != 1.0f;
        }
        CHECK(decayed == (scope == sn::decay_scope::weights ? 72 + 288 + 32 + 24 : resnet::arena_size));
    }
}

TEST_CASE("clipping by global norm scales the gradient to the limit and leaves a smaller one alone", "[train][clipping]") {
    const auto fixture = sn::testing::read_fixture(STATICNET_FIXTURES_DIR "/training_pytorch.txt");
    // A clip of 0.01 (the gradient's norm is about 0.4) makes an update of plain sgd (no
    // momentum) lr * 0.01 long in total.
    sn::model<net, sn::sgd, sn::sparse_categorical_crossentropy> m({.learning_rate = 1.0f}, {.threads = 1, .clip_grad_norm = 0.01f});
    const std::vector<float> before(m.network().parameters().begin(), m.network().parameters().end());
    const std::vector<float> images(fixture.at("input").begin(), fixture.at("input").begin() + batch * 50);
    const std::vector<std::int32_t> labels{0, 1, 2, 0, 1, 2};
    m.train_step(images.data(), {nullptr, labels.data()}, batch, batch, 0, 0);
    double moved = 0;
    for (std::size_t i = 0; i < before.size(); ++i) moved += std::pow(double(m.network().parameters()[i]) - before[i], 2.0);
    CHECK(std::sqrt(moved) == Approx(0.01).epsilon(1e-4));
    // A generous limit changes nothing: the same bits as no clipping.
    auto train_once = [&](float clip) {
        sn::model<net, sn::sgd, sn::sparse_categorical_crossentropy> n({.learning_rate = 1.0f}, {.threads = 1, .clip_grad_norm = clip});
        n.train_step(images.data(), {nullptr, labels.data()}, batch, batch, 0, 0);
        return std::vector<float>(n.network().parameters().begin(), n.network().parameters().end());
    };
    CHECK(train_once(1e6f) == train_once(0.0f));
    // The clipping norm's pass is also the finiteness check: a NaN still stops training.
    std::vector<float> broken = images;
    broken[7] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(m.train_step(broken.data(), {nullptr, labels.data()}, batch, batch, 0, 1), Catch::Contains("not finite"));
}

TEST_CASE("bad training settings are refused with the setting's name", "[train][errors]") {
    using model = sn::model<net, sn::adamw, sn::sparse_categorical_crossentropy>;
    CHECK_THROWS_WITH(model({}, {.label_smoothing = 1.0f}), Catch::Contains("label_smoothing"));
    CHECK_THROWS_WITH(model({}, {.clip_grad_norm = -1.0f}), Catch::Contains("clip_grad_norm"));
    CHECK_THROWS_WITH(model({}, {.clip_grad_norm = NAN}), Catch::Contains("clip_grad_norm"));
    using squared = sn::model<net, sn::adamw, sn::mean_squared_error>;
    CHECK_THROWS_WITH(squared({}, {.label_smoothing = 0.1f}), Catch::Contains("cross-entropy"));
}
