// Every layer: forward on small hand-computed cases, backward against finite differences.
#include "layer_harness.hpp"

#include <staticnet/layers/activations.hpp>
#include <staticnet/layers/batch_norm.hpp>
#include <staticnet/layers/conv2d.hpp>
#include <staticnet/layers/dense.hpp>
#include <staticnet/layers/dropout.hpp>
#include <staticnet/layers/flatten.hpp>
#include <staticnet/layers/max_pool2d.hpp>

namespace sn = staticnet;
using harness::runner;

template <typename Spec, sn::shape In>
using bound = typename Spec::template bind<In, 1>;

// Moves every value at least `gap` away from zero: finite differences across relu's kink lie.
inline void away_from_zero(sn::aligned_buffer<float>& b, float gap) {
    for (auto& x : b) x = x < 0 ? std::min(x, -gap) : std::max(x, gap);
}

TEST_CASE("conv2d forward on a hand-computed case", "[layers][conv2d]") {
    // 3x3 single-channel image, 2x2 kernel, 2 filters, valid padding -> 2x2x2.
    using L = bound<sn::conv2d<2, 2>, sn::shape{3, 3, 1}>;
    STATIC_REQUIRE(L::output_shape == sn::shape{2, 2, 2});
    STATIC_REQUIRE(L::parameter_count == 2 * 2 * 1 * 2 + 2);
    runner<L> r(1);
    for (int i = 0; i < 9; ++i) r.in[i] = static_cast<float>(i + 1);  // 1 2 3 / 4 5 6 / 7 8 9
    // kernel [ky][kx][c][f]: filter 0 sums the window, filter 1 takes top-left minus bottom-right.
    const float kernel[8] = {1, 1, 1, 0, 1, 0, 1, -1};
    std::copy(kernel, kernel + 8, r.params.begin());
    r.params[8] = 0.5f;
    r.params[9] = -1.0f;
    r.forward(false);
    const float expected[8] = {12.5f, -5.0f, 16.5f, -5.0f, 24.5f, -5.0f, 28.5f, -5.0f};
    for (int i = 0; i < 8; ++i) CHECK(r.out[i] == expected[i]);
}

TEST_CASE("conv2d same padding and stride follow TensorFlow's geometry", "[layers][conv2d]") {
    using same = bound<sn::conv2d<4, 3, sn::identity, 2, sn::padding::same>, sn::shape{7, 6, 3}>;
    STATIC_REQUIRE(same::output_shape == sn::shape{4, 3, 4});
    STATIC_REQUIRE(same::geometry.pad_top == 1);
    STATIC_REQUIRE(same::geometry.pad_left == 0);
    // A 1x1 "same" convolution of a constant image with a unit kernel is that image.
    using one = bound<sn::conv2d<1, 3, sn::identity, 1, sn::padding::same>, sn::shape{3, 3, 1}>;
    runner<one> r(1);
    std::fill(r.in.begin(), r.in.end(), 1.0f);
    std::fill(r.params.begin(), r.params.begin() + 9, 1.0f);
    r.forward(false);
    const float expected[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};  // zeros padded around the border
    for (int i = 0; i < 9; ++i) CHECK(r.out[i] == expected[i]);
}

TEST_CASE("max_pool2d forward keeps the maximum of each window and channel", "[layers][max_pool2d]") {
    using L = bound<sn::max_pool2d<2>, sn::shape{3, 4, 2}>;
    STATIC_REQUIRE(L::output_shape == sn::shape{1, 2, 2});
    runner<L> r(1);
    for (std::size_t i = 0; i < r.in.size(); ++i) r.in[i] = static_cast<float>((i * 7) % 11);
    r.forward(false);
    // channel c of pixel (y, x) is at (y*4 + x)*2 + c; window (0,0) covers x 0..1, y 0..1.
    auto at = [&](int y, int x, int c) { return r.in[static_cast<std::size_t>((y * 4 + x) * 2 + c)]; };
    for (int ox = 0; ox < 2; ++ox)
        for (int c = 0; c < 2; ++c) {
            const float m = std::max({at(0, 2 * ox, c), at(0, 2 * ox + 1, c), at(1, 2 * ox, c), at(1, 2 * ox + 1, c)});
            CHECK(r.out[static_cast<std::size_t>(ox * 2 + c)] == m);
        }
}

TEST_CASE("dense forward is x W + b", "[layers][dense]") {
    using L = bound<sn::dense<2>, sn::shape{3}>;
    runner<L> r(2);
    const float x[6] = {1, 2, 3, -1, 0, 1};
    const float w[6] = {1, 0, 0, 1, 1, 1};  // [3 x 2]
    std::copy(x, x + 6, r.in.begin());
    std::copy(w, w + 6, r.params.begin());
    r.params[6] = 10.0f;
    r.params[7] = 20.0f;
    r.forward(false);
    CHECK(r.out[0] == 14.0f);  // 1 + 3 + 10
    CHECK(r.out[1] == 25.0f);  // 2 + 3 + 20
    CHECK(r.out[2] == 10.0f);  // -1 + 1 + 10
    CHECK(r.out[3] == 21.0f);  // 0 + 1 + 20
}

TEST_CASE("activations forward values", "[layers][activations]") {
    float x[4] = {-2.0f, 0.0f, 1.0f, 3.0f};
    sn::relu::forward(x, 1, 4);
    CHECK(x[0] == 0.0f);
    CHECK(x[3] == 3.0f);
    float s[3] = {1.0f, 2.0f, 3.0f};
    sn::softmax::forward(s, 1, 3);
    CHECK(s[0] + s[1] + s[2] == Approx(1.0f));
    CHECK(s[2] / s[1] == Approx(std::exp(1.0f)));
    float big[2] = {1000.0f, 1000.0f};  // shifted by the maximum: no overflow
    sn::softmax::forward(big, 1, 2);
    CHECK(big[0] == Approx(0.5f));
    float t[1] = {0.5f};
    sn::tanh::forward(t, 1, 1);
    CHECK(t[0] == Approx(std::tanh(0.5f)));
    float sg[1] = {0.0f};
    sn::sigmoid::forward(sg, 1, 1);
    CHECK(sg[0] == Approx(0.5f));
}

TEST_CASE("conv2d backward matches finite differences", "[layers][conv2d][gradient]") {
    harness::check_gradients<bound<sn::conv2d<3, 3>, sn::shape{6, 5, 2}>>(2, 1);
    harness::check_gradients<bound<sn::conv2d<4, 2, sn::tanh, 2, sn::padding::same>, sn::shape{5, 5, 3}>>(3, 2);
    harness::check_gradients<bound<sn::conv2d<5, 1, sn::sigmoid>, sn::shape{3, 4, 7}>>(2, 3);
    harness::check_gradients<bound<sn::conv2d<2, 3, sn::identity, 1, sn::padding::same>, sn::shape{1, 1, 1}>>(1, 4);
}

TEST_CASE("dense backward matches finite differences", "[layers][dense][gradient]") {
    harness::check_gradients<bound<sn::dense<7>, sn::shape{13}>>(5, 5);
    harness::check_gradients<bound<sn::dense<1, sn::sigmoid>, sn::shape{1}>>(1, 6);
    harness::check_gradients<bound<sn::dense<4, sn::softmax>, sn::shape{9}>>(3, 7);
}

TEST_CASE("max_pool2d backward matches finite differences", "[layers][max_pool2d][gradient]") {
    // Distinct inputs at least 0.1 apart, so a nudge of 1e-2 never changes a window's maximum.
    auto distinct = [](auto& r, sn::rng& g) {
        std::vector<std::size_t> order(r.in.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        sn::shuffle(order.begin(), order.end(), g);
        for (std::size_t i = 0; i < order.size(); ++i) r.in[order[i]] = 0.1f * static_cast<float>(i);
    };
    harness::check_gradients<bound<sn::max_pool2d<2>, sn::shape{5, 4, 3}>>(2, 8, 1e-2f, 2e-2, distinct);
    harness::check_gradients<bound<sn::max_pool2d<3, 1>, sn::shape{5, 5, 2}>>(2, 9, 1e-2f, 2e-2, distinct);
}

TEST_CASE("activation layers backward match finite differences", "[layers][activations][gradient]") {
    auto no_kink = [](auto& r, sn::rng&) { away_from_zero(r.in, 0.05f); };
    harness::check_gradients<bound<sn::relu, sn::shape{3, 3, 4}>>(2, 10, 1e-2f, 2e-2, no_kink);
    harness::check_gradients<bound<sn::sigmoid, sn::shape{11}>>(3, 11);
    harness::check_gradients<bound<sn::tanh, sn::shape{2, 2, 5}>>(2, 12);
    harness::check_gradients<bound<sn::softmax, sn::shape{2, 3, 6}>>(2, 13);
    harness::check_gradients<bound<sn::identity, sn::shape{17}>>(2, 14);
}

TEST_CASE("flatten, dropout and batch_norm backward match finite differences", "[layers][gradient]") {
    harness::check_gradients<bound<sn::flatten, sn::shape{2, 3, 4}>>(2, 15);
    harness::check_gradients<bound<sn::dropout<0.4f>, sn::shape{19}>>(3, 16);
    harness::check_gradients<bound<sn::batch_norm<>, sn::shape{3, 3, 4}>>(4, 17);
    harness::check_gradients<bound<sn::batch_norm<0.9f, 1e-5f>, sn::shape{6}>>(5, 18);
}

TEST_CASE("dropout drops about Rate of the values in training and none at inference", "[layers][dropout]") {
    using L = bound<sn::dropout<0.25f>, sn::shape{1000}>;
    runner<L> r(4);
    std::fill(r.in.begin(), r.in.end(), 1.0f);
    r.forward(true);
    const auto dropped = std::count(r.out.begin(), r.out.end(), 0.0f);
    CHECK(dropped > 900);
    CHECK(dropped < 1100);
    for (float v : r.out) CHECK((v == 0.0f || v == Approx(1.0f / 0.75f)));
    r.forward(false);
    CHECK(std::count(r.out.begin(), r.out.end(), 1.0f) == 4000);
}

TEST_CASE("batch_norm normalises in training and uses moving statistics at inference", "[layers][batch_norm]") {
    using L = bound<sn::batch_norm<0.5f>, sn::shape{2}>;
    runner<L> r(4);
    sn::rng init(1);
    r.layer.initialize(std::span<float>(r.params.data(), 4), std::span<float>(r.state.data(), 4), init);
    const float x[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    std::copy(x, x + 8, r.in.begin());
    r.forward(true);
    double mean0 = 0, var0 = 0;
    for (int s = 0; s < 4; ++s) mean0 += r.out[static_cast<std::size_t>(s * 2)];
    for (int s = 0; s < 4; ++s) var0 += std::pow(r.out[static_cast<std::size_t>(s * 2)], 2);
    CHECK(mean0 == Approx(0.0).margin(1e-6));
    CHECK(var0 / 4 == Approx(1.0).epsilon(1e-3));  // 1.25 / (1.25 + 1e-3)
    CHECK(r.state[0] == Approx(0.5f * 2.5f));       // moving mean after one update
    CHECK(r.state[2] == Approx(0.5f + 0.5f * (5.0f / 3.0f)));  // moving variance, unbiased batch variance
    r.forward(false);
    CHECK(r.out[0] == Approx((1.0f - 1.25f) / std::sqrt(r.state[2] + 1e-3f)));
}
