// Every layer: forward on small hand-computed cases, backward against finite differences.
#include <staticnet/layers/activations.hpp>
#include <staticnet/layers/average_pool2d.hpp>
#include <staticnet/layers/batch_norm.hpp>
#include <staticnet/layers/conv2d.hpp>
#include <staticnet/layers/dense.hpp>
#include <staticnet/layers/depthwise_conv2d.hpp>
#include <staticnet/layers/dropout.hpp>
#include <staticnet/layers/flatten.hpp>
#include <staticnet/layers/global_average_pool2d.hpp>
#include <staticnet/layers/gradient_check.hpp>
#include <staticnet/layers/max_pool2d.hpp>
#include <staticnet/layers/padding.hpp>
#include <staticnet/layers/residual.hpp>

#include <catch2/catch.hpp>

#include "pytorch_fixture.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <vector>

namespace sn = staticnet;
template <typename L>
using runner = sn::detail::layer_runner<L>;

template <typename Spec, sn::shape In>
using bound = typename Spec::template bind<In, 1>;

// Moves every value at least `gap` away from zero: finite differences across relu's kink lie.
inline void away_from_zero(std::span<float> values, float gap) {
    for (auto& x : values) x = x < 0 ? std::min(x, -gap) : std::max(x, gap);
}

// The public gradient check, reported through Catch2: the message names the first mismatch.
template <typename L>
void require_gradients(std::size_t batch, std::uint64_t seed, sn::gradient_check_options options = {}) {
    options.batch = batch;
    options.seed = seed;
    const auto result = sn::check_gradients<L>(options);
    INFO(result.message);
    REQUIRE(result.passed);
    REQUIRE(result.compared > 0);
}

TEST_CASE("conv2d forward on a hand-computed case", "[layers][conv2d]") {
    // 3x3 single-channel image, 2x2 kernel, 2 filters, valid padding -> 2x2x2.
    using L = bound<sn::conv2d<2, 2>, sn::shape{3, 3, 1}>;
    STATIC_REQUIRE(L::output_shape == sn::shape{2, 2, 2});
    STATIC_REQUIRE(L::parameter_count == 2 * 2 * 1 * 2 + 2);
    runner<L> r(1);
    for (int i = 0; i < 9; ++i) r.input[i] = static_cast<float>(i + 1);  // 1 2 3 / 4 5 6 / 7 8 9
    // kernel [ky][kx][c][f]: filter 0 sums the window, filter 1 takes top-left minus bottom-right.
    const float kernel[8] = {1, 1, 1, 0, 1, 0, 1, -1};
    std::copy(kernel, kernel + 8, r.parameters.begin());
    r.parameters[8] = 0.5f;
    r.parameters[9] = -1.0f;
    r.forward(false);
    const float expected[8] = {12.5f, -5.0f, 16.5f, -5.0f, 24.5f, -5.0f, 28.5f, -5.0f};
    for (int i = 0; i < 8; ++i) CHECK(r.output[i] == expected[i]);
}

TEST_CASE("conv2d same padding and stride follow TensorFlow's geometry", "[layers][conv2d]") {
    using same = bound<sn::conv2d<4, 3, sn::identity, 2, sn::padding::same>, sn::shape{7, 6, 3}>;
    STATIC_REQUIRE(same::output_shape == sn::shape{4, 3, 4});
    STATIC_REQUIRE(same::geometry.pad_top == 1);
    STATIC_REQUIRE(same::geometry.pad_left == 0);
    // A 1x1 "same" convolution of a constant image with a unit kernel is that image.
    using one = bound<sn::conv2d<1, 3, sn::identity, 1, sn::padding::same>, sn::shape{3, 3, 1}>;
    runner<one> r(1);
    std::fill(r.input.begin(), r.input.end(), 1.0f);
    std::fill(r.parameters.begin(), r.parameters.begin() + 9, 1.0f);
    r.forward(false);
    const float expected[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};  // zeros padded around the border
    for (int i = 0; i < 9; ++i) CHECK(r.output[i] == expected[i]);
}

TEST_CASE("max_pool2d forward keeps the maximum of each window and channel", "[layers][max_pool2d]") {
    using L = bound<sn::max_pool2d<2>, sn::shape{3, 4, 2}>;
    STATIC_REQUIRE(L::output_shape == sn::shape{1, 2, 2});
    runner<L> r(1);
    for (std::size_t i = 0; i < r.input.size(); ++i) r.input[i] = static_cast<float>((i * 7) % 11);
    r.forward(false);
    // channel c of pixel (y, x) is at (y*4 + x)*2 + c; window (0,0) covers x 0..1, y 0..1.
    auto at = [&](int y, int x, int c) { return r.input[static_cast<std::size_t>((y * 4 + x) * 2 + c)]; };
    for (int ox = 0; ox < 2; ++ox)
        for (int c = 0; c < 2; ++c) {
            const float m = std::max({at(0, 2 * ox, c), at(0, 2 * ox + 1, c), at(1, 2 * ox, c), at(1, 2 * ox + 1, c)});
            CHECK(r.output[static_cast<std::size_t>(ox * 2 + c)] == m);
        }
}

TEST_CASE("dense forward is x W + b", "[layers][dense]") {
    using L = bound<sn::dense<2>, sn::shape{3}>;
    runner<L> r(2);
    const float x[6] = {1, 2, 3, -1, 0, 1};
    const float w[6] = {1, 0, 0, 1, 1, 1};  // [3 x 2]
    std::copy(x, x + 6, r.input.begin());
    std::copy(w, w + 6, r.parameters.begin());
    r.parameters[6] = 10.0f;
    r.parameters[7] = 20.0f;
    r.forward(false);
    CHECK(r.output[0] == 14.0f);  // 1 + 3 + 10
    CHECK(r.output[1] == 25.0f);  // 2 + 3 + 20
    CHECK(r.output[2] == 10.0f);  // -1 + 1 + 10
    CHECK(r.output[3] == 21.0f);  // 0 + 1 + 20
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
    require_gradients<bound<sn::conv2d<3, 3>, sn::shape{6, 5, 2}>>(2, 1);
    require_gradients<bound<sn::conv2d<4, 2, sn::tanh, 2, sn::padding::same>, sn::shape{5, 5, 3}>>(3, 2);
    require_gradients<bound<sn::conv2d<5, 1, sn::sigmoid>, sn::shape{3, 4, 7}>>(2, 3);
    require_gradients<bound<sn::conv2d<2, 3, sn::identity, 1, sn::padding::same>, sn::shape{1, 1, 1}>>(1, 4);
}

TEST_CASE("conv2d on one channel (the direct kernel) matches finite differences", "[layers][conv2d][gradient]") {
    constexpr std::size_t lanes = sn::simd::float_lanes;
    using direct = bound<sn::conv2d<2 * lanes, 3, sn::tanh>, sn::shape{7, 6, 1}>;
    using strided = bound<sn::conv2d<lanes, 3, sn::identity, 2, sn::padding::same>, sn::shape{7, 5, 1}>;
    // Without bias (a ResNet stem before batch_norm): im2col + GEMM, the direct kernel needs a bias.
    using no_bias = bound<sn::conv2d<lanes, 3, sn::tanh, 1, sn::padding::same, sn::bias::none>, sn::shape{6, 7, 1}>;
    STATIC_REQUIRE(no_bias::parameter_count == 9 * lanes);
    require_gradients<direct>(2, 7);
    require_gradients<strided>(3, 8);
    require_gradients<no_bias>(2, 9);
}

// A direct convolution in double: the reference for the Winograd path. Same padding, 3x3,
// stride 1, Keras kernel layout; returns forward output, input gradient and kernel gradient
// for the given output gradient (the activation is the identity).
struct direct_convolution {
    std::vector<double> output, input_gradient, kernel_gradient;
};
inline direct_convolution convolve_directly(const float* in, const float* kernel, const float* dout, std::size_t batch,
                                            std::size_t h, std::size_t w, std::size_t c, std::size_t f) {
    direct_convolution r;
    r.output.assign(batch * h * w * f, 0.0);
    r.input_gradient.assign(batch * h * w * c, 0.0);
    r.kernel_gradient.assign(9 * c * f, 0.0);
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t y = 0; y < h; ++y)
            for (std::size_t x = 0; x < w; ++x)
                for (std::size_t ky = 0; ky < 3; ++ky)
                    for (std::size_t kx = 0; kx < 3; ++kx) {
                        const auto iy = static_cast<std::ptrdiff_t>(y + ky) - 1, ix = static_cast<std::ptrdiff_t>(x + kx) - 1;
                        if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(h) || ix >= static_cast<std::ptrdiff_t>(w)) continue;
                        const std::size_t at_in = ((n * h + static_cast<std::size_t>(iy)) * w + static_cast<std::size_t>(ix)) * c;
                        const std::size_t at_out = ((n * h + y) * w + x) * f;
                        for (std::size_t ci = 0; ci < c; ++ci)
                            for (std::size_t fi = 0; fi < f; ++fi) {
                                const std::size_t k = ((ky * 3 + kx) * c + ci) * f + fi;
                                r.output[at_out + fi] += double{in[at_in + ci]} * kernel[k];
                                r.input_gradient[at_in + ci] += double{dout[at_out + fi]} * kernel[k];
                                r.kernel_gradient[k] += double{in[at_in + ci]} * dout[at_out + fi];
                            }
                    }
    return r;
}

template <typename L>
void check_winograd_against_direct(std::size_t batch, std::uint64_t seed) {
    constexpr auto in = L::input_shape;
    constexpr std::size_t filters = L::output_shape.channels();
    STATIC_REQUIRE(L::output_shape == sn::shape{in.height(), in.width(), filters});
    sn::detail::layer_runner<L> r(batch), serial(batch, 1);
    sn::rng g(seed);
    for (auto& x : r.input) x = g.uniform(-1.0f, 1.0f);
    for (auto& x : r.parameter_span()) x = g.uniform(-0.3f, 0.3f);
    for (auto& x : r.output_gradient) x = g.uniform(-1.0f, 1.0f);
    std::copy(r.input.begin(), r.input.end(), serial.input.begin());
    std::copy(r.parameters.begin(), r.parameters.end(), serial.parameters.begin());
    std::copy(r.output_gradient.begin(), r.output_gradient.end(), serial.output_gradient.begin());
    const auto expected = convolve_directly(r.input.data(), r.parameters.data(), r.output_gradient.data(), batch,
                                            in.height(), in.width(), in.channels(), filters);
    for (auto* run : {&r, &serial}) {
        std::fill(run->parameter_gradients.begin(), run->parameter_gradients.end(), 0.0f);
        run->forward();
        run->backward();
    }
    // Each value is a sum of up to 9 * channels products of magnitude <= 0.3: compare to the
    // scale of such a sum.
    const double tolerance = 1e-5 * 9 * static_cast<double>(in.channels());
    auto close = [&](const auto& got, const std::vector<double>& want, const char* what) {
        for (std::size_t i = 0; i < want.size(); ++i) {
            INFO(what << " " << i << ": " << got[i] << " vs " << want[i]);
            REQUIRE(std::abs(double{got[i]} - want[i]) <= tolerance * (1.0 + std::abs(want[i])));
        }
    };
    close(r.output, expected.output, "output");
    close(r.input_gradient, expected.input_gradient, "input gradient");
    close(r.parameter_gradients, expected.kernel_gradient, "kernel gradient");
    // Threads split images and products, never a sum: one thread gives the same bits.
    REQUIRE(std::equal(r.output.begin(), r.output.end(), serial.output.begin()));
    REQUIRE(std::equal(r.input_gradient.begin(), r.input_gradient.end(), serial.input_gradient.begin()));
    REQUIRE(std::equal(r.parameter_gradients.begin(), r.parameter_gradients.end(), serial.parameter_gradients.begin()));
}

TEST_CASE("conv2d by Winograd (3x3, stride 1, same padding) matches a direct convolution", "[layers][conv2d][winograd]") {
    constexpr std::size_t lanes = sn::simd::float_lanes;
    // Odd heights and widths (tiles sticking out), channel counts that are and are not whole registers.
    using sticking_out = bound<sn::conv2d<lanes + 4, 3, sn::identity, 1, sn::padding::same, sn::bias::none>,
                               sn::shape{7, 5, 8}>;
    STATIC_REQUIRE(sticking_out::algorithm == std::string_view{"winograd F(4x4,3x3)"});
    check_winograd_against_direct<sticking_out>(3, 11);
    check_winograd_against_direct<bound<sn::conv2d<2 * lanes, 3, sn::identity, 1, sn::padding::same, sn::bias::none>,
                                        sn::shape{6, 9, 2 * lanes + 3}>>(2, 12);
    // The ResNet example's widths, with enough images for three chunks (dU summed over them).
    using wide = bound<sn::conv2d<32, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::shape{14, 14, 32}>;
    STATIC_REQUIRE(wide::chunk_images(2 * wide::max_chunk_images + 1) < wide::max_chunk_images);
    check_winograd_against_direct<wide>(2 * wide::max_chunk_images + 1, 13);
    check_winograd_against_direct<bound<sn::conv2d<64, 3, sn::identity, 1, sn::padding::same, sn::bias::none>,
                                        sn::shape{7, 7, 64}>>(5, 14);
    // Images of one tile or less run im2col (Winograd would not pay there, performance.md):
    // the same results.
    using one_tile = bound<sn::conv2d<8, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::shape{4, 4, 8}>;
    using smaller = bound<sn::conv2d<8, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::shape{2, 3, 9}>;
    STATIC_REQUIRE(one_tile::algorithm == std::string_view{"im2col + gemm"});
    STATIC_REQUIRE(smaller::algorithm == std::string_view{"im2col + gemm"});
    check_winograd_against_direct<one_tile>(2, 15);
    check_winograd_against_direct<smaller>(2, 16);
}

TEST_CASE("conv2d by Winograd matches finite differences", "[layers][conv2d][winograd][gradient]") {
    require_gradients<bound<sn::conv2d<8, 3, sn::tanh, 1, sn::padding::same>, sn::shape{5, 6, 8}>>(2, 15);
    // Two tiles high and wide, the second sticking out.
    using odd = bound<sn::conv2d<9, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::shape{5, 5, 10}>;
    STATIC_REQUIRE(odd::algorithm == std::string_view{"winograd F(4x4,3x3)"});
    require_gradients<odd>(3, 16);
}

// The pixels the next layer reads, computed alone: the same values there (forward, input
// gradient, bias gradient bitwise; the kernel gradient sums the same products in other k
// blocks), zeros elsewhere.
template <typename L>
void check_part_of_output(std::size_t batch, std::size_t rows_read, std::size_t columns_read, std::uint64_t seed) {
    runner<L> whole(batch), part(batch);
    part.output_rows_read = rows_read;
    part.output_columns_read = columns_read;
    sn::rng g(seed);
    for (auto* r : {&whole, &part}) {
        sn::rng same = g;
        for (auto& x : r->input) x = same.uniform(-1.0f, 1.0f);
        for (auto& x : r->parameter_span()) x = same.uniform(-0.3f, 0.3f);
        std::fill(r->parameter_gradients.begin(), r->parameter_gradients.end(), 0.0f);
    }
    whole.forward();
    part.forward();
    constexpr auto out = L::output_shape;
    auto read = [&](std::size_t i) {
        const std::size_t pixel = (i % out.size()) / out.channels();
        return pixel / out.width() < rows_read && pixel % out.width() < columns_read;
    };
    for (std::size_t i = 0; i < whole.output.size(); ++i) {
        INFO("output " << i);
        REQUIRE(part.output[i] == (read(i) ? whole.output[i] : 0.0f));
    }
    // The next layer gives no gradient to what it does not read.
    for (std::size_t i = 0; i < whole.output_gradient.size(); ++i)
        whole.output_gradient[i] = part.output_gradient[i] = read(i) ? g.uniform(-1.0f, 1.0f) : 0.0f;
    whole.backward();
    part.backward();
    for (std::size_t i = 0; i < whole.input_gradient.size(); ++i) {
        INFO("input gradient " << i);
        REQUIRE(part.input_gradient[i] == whole.input_gradient[i]);
    }
    const std::size_t kernel_count = L::parameter_count - out.channels();
    for (std::size_t i = 0; i < L::parameter_count; ++i) {
        INFO("parameter gradient " << i);
        if (i >= kernel_count) REQUIRE(part.parameter_gradients[i] == whole.parameter_gradients[i]);
        // Sums of up to 1,360 products of size ~0.3 that cancel to ~0.1: rounding is ~1e-5 absolute.
        else REQUIRE(part.parameter_gradients[i] == Approx(whole.parameter_gradients[i]).epsilon(1e-5).margin(1e-4));
    }
}

TEST_CASE("conv2d computes only the output pixels the next layer reads", "[layers][conv2d]") {
    // One chunk (the reference CNN's conv3 before 2x2 pooling reads 2x2 of 3x3) ...
    check_part_of_output<bound<sn::conv2d<16, 3, sn::relu>, sn::shape{5, 5, 8}>>(3, 2, 2, 11);
    check_part_of_output<bound<sn::conv2d<5, 3, sn::tanh>, sn::shape{9, 8, 3}>>(2, 6, 4, 12);
    // Only rows, only columns (pooling 2x2 on 11x10 and on 10x11).
    check_part_of_output<bound<sn::conv2d<4, 3, sn::relu>, sn::shape{13, 12, 2}>>(2, 10, 10, 14);
    check_part_of_output<bound<sn::conv2d<4, 3, sn::relu>, sn::shape{12, 13, 2}>>(2, 10, 10, 15);
    // ... and images spread over several im2col chunks (2 images per chunk here).
    check_part_of_output<bound<sn::conv2d<32, 3, sn::relu>, sn::shape{20, 20, 32}>>(5, 17, 16, 13);
    // What max pooling reads, and that the model passes it on.
    using pool = bound<sn::max_pool2d<2>, sn::shape{11, 11, 64}>;
    STATIC_REQUIRE(sn::detail::input_rows_read<pool>() == 10);
    STATIC_REQUIRE(sn::detail::input_columns_read<pool>() == 10);
    STATIC_REQUIRE(sn::detail::input_rows_read<bound<sn::max_pool2d<2>, sn::shape{12, 11, 4}>>() == 0);
    STATIC_REQUIRE(sn::detail::input_rows_read<bound<sn::max_pool2d<3, 1>, sn::shape{5, 5, 2}>>() == 0);
}

TEST_CASE("dense backward matches finite differences", "[layers][dense][gradient]") {
    require_gradients<bound<sn::dense<7>, sn::shape{13}>>(5, 5);
    require_gradients<bound<sn::dense<1, sn::sigmoid>, sn::shape{1}>>(1, 6);
    require_gradients<bound<sn::dense<4, sn::softmax>, sn::shape{9}>>(3, 7);
}

TEST_CASE("max_pool2d backward matches finite differences", "[layers][max_pool2d][gradient]") {
    // Distinct inputs at least 0.1 apart, so a nudge of 1e-2 never changes a window's maximum.
    auto distinct = [](std::span<float> input, std::span<float>, sn::rng& g) {
        std::vector<std::size_t> order(input.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        sn::shuffle(order.begin(), order.end(), g);
        for (std::size_t i = 0; i < order.size(); ++i) input[order[i]] = 0.1f * static_cast<float>(i);
    };
    require_gradients<bound<sn::max_pool2d<2>, sn::shape{5, 4, 3}>>(2, 8, {.prepare = distinct});
    require_gradients<bound<sn::max_pool2d<3, 1>, sn::shape{5, 5, 2}>>(2, 9, {.prepare = distinct});
    // Registers of channels plus a tail (the SIMD path and the scalar one).
    require_gradients<bound<sn::max_pool2d<2>, sn::shape{4, 5, sn::simd::float_lanes + 3}>>(2, 10, {.prepare = distinct});
}

TEST_CASE("max_pool2d: SIMD channels and the scalar tail agree with a scalar reference, ties to the first",
          "[layers][max_pool2d]") {
    constexpr std::size_t C = 2 * sn::simd::float_lanes + 1;
    using L = bound<sn::max_pool2d<2, 1>, sn::shape{3, 3, C}>;
    // Few distinct values, so windows often hold equal maxima.
    std::vector<float> in(L::input_shape.size()), out(L::output_shape.size()), where(L::cache_floats(1));
    sn::rng g(5);
    for (auto& v : in) v = static_cast<float>(g.below(3));
    const L layer{};
    sn::thread_pool pool(1);
    layer.forward({.batch = 1, .pool = &pool},
                  {.input = sn::buffer<sn::role::input, const float>(in.data()),
                   .output = sn::buffer<sn::role::output, float>(out.data()),
                   .parameters = {}, .state = {}, .cache = sn::buffer<sn::role::cache, float>(where.data())});
    std::vector<float> din(in.size(), 0.0f), dout(out.size());
    for (std::size_t i = 0; i < dout.size(); ++i) dout[i] = static_cast<float>(i + 1);
    layer.backward({.batch = 1, .pool = &pool},
                   {.input = sn::buffer<sn::role::input, const float>(in.data()),
                    .output = sn::buffer<sn::role::output, const float>(out.data()),
                    .output_gradient = sn::buffer<sn::role::output_gradient, float>(dout.data()),
                    .input_gradient = sn::buffer<sn::role::input_gradient, float>(din.data()),
                    .parameters = {}, .parameter_gradients = {}, .cache = sn::buffer<sn::role::cache, float>(where.data())});
    std::vector<float> din_ref(in.size(), 0.0f);
    for (std::size_t oy = 0; oy < 2; ++oy)
        for (std::size_t ox = 0; ox < 2; ++ox)
            for (std::size_t c = 0; c < C; ++c) {
                std::size_t best = (oy * 3 + ox) * C + c;  // the window's first position
                for (std::size_t ky = 0; ky < 2; ++ky)
                    for (std::size_t kx = 0; kx < 2; ++kx) {
                        const std::size_t at = ((oy + ky) * 3 + ox + kx) * C + c;
                        if (in[at] > in[best]) best = at;
                    }
                const std::size_t o = (oy * 2 + ox) * C + c;
                INFO("window (" << oy << ", " << ox << "), channel " << c);
                CHECK(out[o] == in[best]);
                din_ref[best] += dout[o];
            }
    CHECK(din == din_ref);
}

TEST_CASE("activation layers backward match finite differences", "[layers][activations][gradient]") {
    auto no_kink = [](std::span<float> input, std::span<float>, sn::rng&) { away_from_zero(input, 0.05f); };
    require_gradients<bound<sn::relu, sn::shape{3, 3, 4}>>(2, 10, {.prepare = no_kink});
    require_gradients<bound<sn::sigmoid, sn::shape{11}>>(3, 11);
    require_gradients<bound<sn::tanh, sn::shape{2, 2, 5}>>(2, 12);
    require_gradients<bound<sn::softmax, sn::shape{2, 3, 6}>>(2, 13);
    require_gradients<bound<sn::identity, sn::shape{17}>>(2, 14);
}

TEST_CASE("flatten, dropout and batch_norm backward match finite differences", "[layers][gradient]") {
    require_gradients<bound<sn::flatten, sn::shape{2, 3, 4}>>(2, 15);
    require_gradients<bound<sn::dropout<0.4f>, sn::shape{19}>>(3, 16);
    require_gradients<bound<sn::batch_norm<>, sn::shape{3, 3, 4}>>(4, 17);
    require_gradients<bound<sn::batch_norm<0.9f, 1e-5f>, sn::shape{6}>>(5, 18);
    // 32 channels: whole SIMD registers per row (the kernels' block path), as in the ResNet.
    require_gradients<bound<sn::batch_norm<>, sn::shape{2, 2, 32}>>(3, 19);
}

TEST_CASE("dropout drops about Rate of the values in training and none at inference", "[layers][dropout]") {
    using L = bound<sn::dropout<0.25f>, sn::shape{1000}>;
    runner<L> r(4);
    std::fill(r.input.begin(), r.input.end(), 1.0f);
    r.forward(true);
    const auto dropped = std::count(r.output.begin(), r.output.end(), 0.0f);
    CHECK(dropped > 900);
    CHECK(dropped < 1100);
    for (float v : r.output) CHECK((v == 0.0f || v == Approx(1.0f / 0.75f)));
    r.forward(false);
    CHECK(std::count(r.output.begin(), r.output.end(), 1.0f) == 4000);
}

TEST_CASE("batch_norm normalises in training and uses moving statistics at inference", "[layers][batch_norm]") {
    using L = bound<sn::batch_norm<0.5f>, sn::shape{2}>;
    runner<L> r(4);
    sn::rng init(1);
    r.layer.initialize(std::span<float>(r.parameters.data(), 4), std::span<float>(r.state.data(), 4), init);
    const float x[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    std::copy(x, x + 8, r.input.begin());
    r.forward(true);
    double mean0 = 0, var0 = 0;
    for (int s = 0; s < 4; ++s) mean0 += r.output[static_cast<std::size_t>(s * 2)];
    for (int s = 0; s < 4; ++s) var0 += std::pow(r.output[static_cast<std::size_t>(s * 2)], 2);
    CHECK(mean0 == Approx(0.0).margin(1e-6));
    CHECK(var0 / 4 == Approx(1.0).epsilon(1e-3));  // 1.25 / (1.25 + 1e-3)
    CHECK(r.state[0] == Approx(0.5f * 2.5f));       // moving mean after one update
    CHECK(r.state[2] == Approx(0.5f + 0.5f * (5.0f / 3.0f)));  // moving variance, unbiased batch variance
    r.forward(false);
    CHECK(r.output[0] == Approx((1.0f - 1.25f) / std::sqrt(r.state[2] + 1e-3f)));
}

TEST_CASE("float hyper-parameters read the same as float or double literals", "[layers][template_float]") {
    STATIC_REQUIRE(std::is_same_v<sn::dropout<0.25f>, sn::dropout<0.25>>);
    STATIC_REQUIRE(std::is_same_v<sn::batch_norm<0.9f, 1e-5f>, sn::batch_norm<0.9, 1e-5>>);
    STATIC_REQUIRE(!std::is_same_v<sn::dropout<0.25f>, sn::dropout<0.5f>>);
    STATIC_REQUIRE(std::is_same_v<sn::dropout<0>, sn::dropout<0.0f>>);
    // Buffers index with any integer type, signed ones included.
    STATIC_REQUIRE(requires(sn::buffer<sn::role::input, const float> b, long i, int j, std::size_t k) {
        b[i];
        b[j];
        b[k];
    });
    STATIC_REQUIRE(bound<sn::batch_norm<0.9f, 1e-5f>, sn::shape{4}>::momentum == 0.9f);
    STATIC_REQUIRE(bound<sn::batch_norm<>, sn::shape{4}>::epsilon == 1e-3f);
    STATIC_REQUIRE(bound<sn::dropout<0.4f>, sn::shape{4}>::rate == 0.4f);
}

namespace {
// Layers that break the contract in one way each, to show that check_gradients notices.
enum class defect { wrong_input_gradient, adds_to_input_gradient, overwrites_parameter_gradients, none };

template <defect Defect, sn::shape In>
struct scale_layer : sn::layer_defaults {  // y = a * x, one trainable a
    static constexpr std::string_view name = "scale";
    static constexpr sn::shape input_shape = In, output_shape = In;
    static constexpr std::size_t parameter_count = 1, flops_per_sample = In.size();
    void initialize(std::span<float> a, std::span<float>, sn::rng&) const noexcept { a[0] = 1.5f; }
    void forward(const sn::layer_context& ctx, const sn::forward_buffers& b) const {
        for (std::size_t i = 0; i < ctx.batch * In.size(); ++i) b.output[i] = b.parameters[0] * b.input[i];
    }
    void backward(const sn::layer_context& ctx, const sn::backward_buffers& b) const {
        double da = 0;
        for (std::size_t i = 0; i < ctx.batch * In.size(); ++i) {
            da += static_cast<double>(b.output_gradient[i]) * b.input[i];
            if (!b.input_gradient) continue;
            const float gradient = (Defect == defect::wrong_input_gradient ? 1.0f : b.parameters[0]) * b.output_gradient[i];
            if constexpr (Defect == defect::adds_to_input_gradient) b.input_gradient[i] += gradient;
            else b.input_gradient[i] = gradient;
        }
        if constexpr (Defect == defect::overwrites_parameter_gradients) b.parameter_gradients[0] = static_cast<float>(da);
        else b.parameter_gradients[0] += static_cast<float>(da);
    }
};
}  // namespace

TEST_CASE("check_gradients finds a wrong backward pass and a broken contract", "[layers][gradient]") {
    STATIC_REQUIRE(sn::layer<scale_layer<defect::none, sn::shape{5}>>);
    const auto good = sn::check_gradients<scale_layer<defect::none, sn::shape{5}>>();
    INFO(good.message);
    CHECK(good.passed);
    CHECK(good.compared == 2 * 5 + 1);

    const auto wrong = sn::check_gradients<scale_layer<defect::wrong_input_gradient, sn::shape{5}>>();
    CHECK_FALSE(wrong.passed);
    CHECK_THAT(wrong.message, Catch::Matchers::StartsWith("scale: d(loss)/d(input[0]) is"));

    // In a model the input gradient buffer holds another layer's values: backward must write it.
    const auto adds = sn::check_gradients<scale_layer<defect::adds_to_input_gradient, sn::shape{5}>>();
    CHECK_FALSE(adds.passed);
    CHECK_THAT(adds.message, Catch::Matchers::Contains("d(loss)/d(input[0]) is nan by backward"));

    const auto overwrites = sn::check_gradients<scale_layer<defect::overwrites_parameter_gradients, sn::shape{5}>>();
    CHECK_FALSE(overwrites.passed);
    CHECK_THAT(overwrites.message, Catch::Matchers::Contains("must add to the parameter gradients"));

    // The spec-and-shape form binds the spec as sequential would.
    CHECK(sn::check_gradients<sn::dense<3, sn::tanh>, sn::shape{4}>({.batch = 3}).passed);
    // At most `samples` entries of each buffer are compared.
    CHECK(sn::check_gradients<scale_layer<defect::none, sn::shape{599}>>({.batch = 1, .samples = 300}).compared <= 301);
}

// ------------------------------------------------------------------ explicit padding

namespace padded {
using sn::padding::explicit_;
using sn::padding::symmetric;

// PyTorch's padding=1 on a stride-2 convolution of an even size pads 1 and 1; TensorFlow's
// `same` pads 0 and 1 there.
using torch_stride2 = bound<sn::conv2d<4, 3, sn::identity, 2, symmetric<1>>, sn::shape{8, 6, 3}>;
using tf_stride2 = bound<sn::conv2d<4, 3, sn::identity, 2, sn::padding::same>, sn::shape{8, 6, 3}>;
static_assert(torch_stride2::output_shape == sn::shape{4, 3, 4} && tf_stride2::output_shape == sn::shape{4, 3, 4});
static_assert(torch_stride2::pads == sn::padding_pixels{1, 1, 1, 1} && tf_stride2::pads == sn::padding_pixels{0, 1, 0, 1});
// Output sizes follow (in + before + after - kernel) / stride + 1, rounded down.
static_assert(bound<sn::conv2d<2, 3, sn::identity, 1, explicit_<2, 1, 1, 0>>, sn::shape{4, 3, 1}>::output_shape ==
              sn::shape{5, 2, 2});
static_assert(bound<sn::max_pool2d<3, 2, symmetric<1>>, sn::shape{7, 6, 4}>::output_shape == sn::shape{4, 3, 4});
static_assert(bound<sn::average_pool2d<2, 1, symmetric<1>>, sn::shape{5, 2, 8}>::output_shape == sn::shape{6, 3, 8});
// The spellings that existed before explicit padding mean what they meant.
static_assert(sn::padding::valid == explicit_<0, 0, 0, 0> && symmetric<0> == sn::padding::valid);
static_assert(bound<sn::conv2d<4, 3, sn::identity, 1, sn::padding::same>, sn::shape{5, 5, 8}>::pads ==
              sn::padding_pixels{1, 1, 1, 1});
// FLOPs count every tap of every output pixel, padding included: as many as `same` here.
static_assert(torch_stride2::flops_per_sample == tf_stride2::flops_per_sample);
}  // namespace padded

TEST_CASE("conv2d with explicit padding equals a valid convolution of the zero-padded image", "[layers][conv2d][padding]") {
    // top 2, bottom 1, left 1, right 0 around a 4x5x2 image.
    using P = bound<sn::conv2d<3, 3, sn::identity, 1, sn::padding::explicit_<2, 1, 1, 0>>, sn::shape{4, 5, 2}>;
    using V = bound<sn::conv2d<3, 3>, sn::shape{7, 6, 2}>;
    STATIC_REQUIRE(P::output_shape == V::output_shape);
    runner<P> p(2);
    runner<V> v(2);
    sn::rng g(3);
    for (auto& x : p.input) x = g.uniform(-1.0f, 1.0f);
    for (auto& x : p.parameters) x = g.uniform(-1.0f, 1.0f);
    std::copy(p.parameters.begin(), p.parameters.end(), v.parameters.begin());
    std::fill(v.input.begin(), v.input.end(), 0.0f);
    for (std::size_t n = 0; n < 2; ++n)
        for (std::size_t y = 0; y < 4; ++y)
            for (std::size_t x = 0; x < 5; ++x)
                for (std::size_t c = 0; c < 2; ++c)
                    v.input[((n * 7 + y + 2) * 6 + x + 1) * 2 + c] = p.input[((n * 4 + y) * 5 + x) * 2 + c];
    p.forward(false);
    v.forward(false);
    for (std::size_t i = 0; i < p.output.size(); ++i) CHECK(p.output[i] == Approx(v.output[i]).margin(1e-6));
}

TEST_CASE("explicit padding: conv2d backward matches finite differences on every path", "[layers][conv2d][padding][gradient]") {
    constexpr std::size_t lanes = sn::simd::float_lanes;
    using sn::padding::explicit_;
    using sn::padding::symmetric;
    // im2col + GEMM: PyTorch's stride-2 padding=1 on even sizes, and a lopsided padding.
    require_gradients<bound<sn::conv2d<4, 3, sn::tanh, 2, symmetric<1>>, sn::shape{6, 8, 3}>>(2, 11);
    require_gradients<bound<sn::conv2d<3, 3, sn::identity, 1, explicit_<2, 0, 1, 2>>, sn::shape{4, 5, 2}>>(2, 12);
    require_gradients<bound<sn::conv2d<3, 7, sn::identity, 2, symmetric<3>, sn::bias::none>, sn::shape{8, 8, 3}>>(1, 13);
    // The direct kernel of single-channel images.
    require_gradients<bound<sn::conv2d<lanes, 3, sn::tanh, 2, symmetric<1>>, sn::shape{8, 6, 1}>>(2, 14);
    // Winograd (3x3, stride 1, one pixel on every side, 8 channels or more).
    require_gradients<bound<sn::conv2d<8, 3, sn::tanh, 1, symmetric<1>>, sn::shape{6, 5, 8}>>(2, 15);
}

TEST_CASE("max_pool2d pads with -infinity and average_pool2d with zeros counted in the mean", "[layers][padding]") {
    using M = bound<sn::max_pool2d<3, 2, sn::padding::symmetric<1>>, sn::shape{4, 4, 1}>;
    using A = bound<sn::average_pool2d<3, 2, sn::padding::symmetric<1>>, sn::shape{4, 4, 1}>;
    STATIC_REQUIRE(M::output_shape == sn::shape{2, 2, 1});
    runner<M> m(1);
    runner<A> a(1);
    for (std::size_t i = 0; i < 16; ++i) m.input[i] = a.input[i] = -1.0f - static_cast<float>(i);  // all negative
    m.forward(false);
    a.forward(false);
    // Window (0, 0) covers rows -1..1 and columns -1..1: pixels 0, 1, 4, 5 of the image.
    CHECK(m.output[0] == -1.0f);  // not the padding's 0
    CHECK(a.output[0] == Approx((-1.0f - 2.0f - 5.0f - 6.0f) / 9.0f));
    // Window (1, 1) covers rows 1..3 and columns 1..3: all inside.
    CHECK(m.output[3] == -6.0f);
    CHECK(a.output[3] == Approx((-6 - 7 - 8 - 10 - 11 - 12 - 14 - 15 - 16) / 9.0f));
}

TEST_CASE("explicit padding: pooling backward matches finite differences", "[layers][padding][gradient]") {
    using sn::padding::explicit_;
    using sn::padding::symmetric;
    // Distinct inputs at least 0.1 apart, half of them negative (where padding by zeros
    // instead of -infinity would win), so a nudge of 1e-2 never changes a window's maximum.
    auto distinct = [](std::span<float> input, std::span<float>, sn::rng& g) {
        std::vector<std::size_t> order(input.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        sn::shuffle(order.begin(), order.end(), g);
        for (std::size_t i = 0; i < order.size(); ++i)
            input[order[i]] = 0.1f * (static_cast<float>(i) - static_cast<float>(order.size()) / 2);
    };
    require_gradients<bound<sn::max_pool2d<3, 2, symmetric<1>>, sn::shape{6, 5, 3}>>(2, 21, {.prepare = distinct});
    require_gradients<bound<sn::max_pool2d<2, 2, explicit_<1, 0, 0, 1>>, sn::shape{5, 4, 2}>>(2, 22, {.prepare = distinct});
    require_gradients<bound<sn::max_pool2d<3, 1, sn::padding::same>, sn::shape{4, 4, 2}>>(2, 23, {.prepare = distinct});
    require_gradients<bound<sn::average_pool2d<3, 2, symmetric<1>>, sn::shape{6, 5, 3}>>(2, 24);
    require_gradients<bound<sn::average_pool2d<2, 1, explicit_<1, 1, 0, 1>>, sn::shape{3, 4, 2}>>(2, 25);
}

TEST_CASE("PyTorch's padding (convolutions, max and average pooling) matches PyTorch on identical weights",
          "[layers][padding][pytorch]") {
    using sn::padding::explicit_;
    using sn::padding::symmetric;
    // The padding network of tests/fixtures/make_pytorch_fixtures.py.
    using net = sn::sequential<sn::input<13, 12, 3>, sn::conv2d<4, 3, sn::identity, 2, symmetric<1>>, sn::batch_norm<>,  // 1-2
                               sn::max_pool2d<3, 2, symmetric<1>>, sn::relu,                                          // 3-4
                               sn::conv2d<8, 3, sn::identity, 1, explicit_<2, 1, 1, 0>>, sn::relu,                    // 5-6
                               sn::average_pool2d<2, 1, symmetric<1>>,                                                // 7
                               sn::conv2d<8, 3, sn::identity, 1, symmetric<1>, sn::bias::none>, sn::batch_norm<>,     // 8-9
                               sn::relu, sn::global_average_pool2d, sn::dense<5>>;                                    // 10-12
    STATIC_REQUIRE(net::layer_type<4>::output_shape == sn::shape{5, 2, 8});
    sn::testing::check_against_pytorch<net>(STATICNET_FIXTURES_DIR "/padding_pytorch.txt", 3);
}

// ------------------------------------------------------------------ leaky_relu and relu6

TEST_CASE("leaky_relu and relu6 forward values", "[layers][activations]") {
    float x[5] = {-2.0f, -0.5f, 0.0f, 3.0f, 7.5f};
    float y[5];
    sn::leaky_relu<0.1f>::forward(x, y, 1, 5);
    CHECK(y[0] == -0.2f);
    CHECK(y[1] == -0.05f);
    CHECK(y[3] == 3.0f);
    sn::relu6::forward(x, y, 1, 5);
    CHECK(y[0] == 0.0f);
    CHECK(y[3] == 3.0f);
    CHECK(y[4] == 6.0f);
}

TEST_CASE("leaky_relu and relu6 backward match finite differences, alone and folded into a layer",
          "[layers][activations][gradient]") {
    // Values spread over [-8, 8], none within 0.05 of a kink (0, and 6 for relu6).
    auto off_kinks = [](std::span<float> input, std::span<float>, sn::rng& g) {
        for (auto& x : input) {
            x = g.uniform(-8.0f, 8.0f);
            if (std::abs(x) < 0.05f) x = 0.05f;
            if (std::abs(x - 6.0f) < 0.05f) x = 6.05f;
        }
    };
    require_gradients<bound<sn::leaky_relu<0.1f>, sn::shape{4, 3, 5}>>(2, 31, {.prepare = off_kinks});
    require_gradients<bound<sn::relu6, sn::shape{4, 3, 5}>>(2, 32, {.prepare = off_kinks});
    // Folded into dense and conv2d; their inputs in [-1, 1] with weights of 2 keep some
    // pre-activations beyond 6.
    auto strong = [](std::span<float> input, std::span<float> parameters, sn::rng& g) {
        for (auto& x : input) x = g.uniform(-1.0f, 1.0f);
        for (auto& p : parameters) p = g.uniform(-2.0f, 2.0f);
    };
    require_gradients<bound<sn::dense<7, sn::leaky_relu<0.2f>>, sn::shape{6}>>(3, 33, {.prepare = strong});
    require_gradients<bound<sn::conv2d<5, 3, sn::relu6, 1, sn::padding::symmetric<1>>, sn::shape{5, 4, 3}>>(
        2, 34, {.step = 1e-3f, .prepare = strong});
}

TEST_CASE("leaky_relu and relu6 match PyTorch on identical weights", "[layers][activations][pytorch]") {
    // The activations network of tests/fixtures/make_pytorch_fixtures.py.
    using conv3 = sn::conv2d<8, 3, sn::identity, 1, sn::padding::symmetric<1>>;
    using net = sn::sequential<sn::input<8, 8, 3>, conv3, sn::leaky_relu<0.1f>, sn::max_pool2d<2>, conv3, sn::relu6,
                               sn::global_average_pool2d, sn::dense<5>>;
    sn::testing::check_against_pytorch<net>(STATICNET_FIXTURES_DIR "/activations_pytorch.txt", 3);
}

// ---------------------------------------------------------------- depthwise convolution

namespace depthwise {
// The same convolution as a conv2d whose kernel is zero between different channels: output
// channel c * M + m reads input channel c only.
template <std::size_t K, std::size_t S, sn::padding_rule P, std::size_t M, sn::shape In>
void check_against_dense_convolution(std::size_t batch, std::uint64_t seed) {
    using D = bound<sn::depthwise_conv2d<K, sn::identity, S, P, M>, In>;
    using F = bound<sn::conv2d<In.channels() * M, K, sn::identity, S, P>, In>;
    STATIC_REQUIRE(D::output_shape == F::output_shape);
    STATIC_REQUIRE(D::parameter_count == K * K * In.channels() * M + In.channels() * M);
    constexpr std::size_t C = In.channels(), outputs = C * M;
    runner<D> d(batch);
    runner<F> f(batch);
    sn::rng g(seed);
    for (auto& x : d.input) x = g.uniform(-1.0f, 1.0f);
    for (auto& x : d.parameters) x = g.uniform(-1.0f, 1.0f);
    std::copy(d.input.begin(), d.input.end(), f.input.begin());
    std::fill(f.parameters.begin(), f.parameters.end(), 0.0f);
    for (std::size_t tap = 0; tap < K * K; ++tap)
        for (std::size_t c = 0; c < C; ++c)
            for (std::size_t m = 0; m < M; ++m)
                f.parameters[(tap * C + c) * outputs + c * M + m] = d.parameters[(tap * C + c) * M + m];
    for (std::size_t o = 0; o < outputs; ++o) f.parameters[K * K * C * outputs + o] = d.parameters[K * K * outputs + o];
    d.forward(true);
    f.forward(true);
    for (std::size_t i = 0; i < batch * D::output_shape.size(); ++i) CHECK(d.output[i] == Approx(f.output[i]).margin(1e-5));
}
}  // namespace depthwise

TEST_CASE("depthwise_conv2d equals a convolution that keeps the channels apart", "[layers][depthwise]") {
    constexpr std::size_t lanes = sn::simd::float_lanes;
    using sn::padding::symmetric;
    // SIMD channel vectors and a scalar tail; PyTorch's stride-2 padding=1 on an even size;
    // multipliers of 2 and 3; lopsided padding.
    depthwise::check_against_dense_convolution<3, 1, sn::padding::same, 1, sn::shape{5, 6, lanes + 3}>(2, 41);
    depthwise::check_against_dense_convolution<3, 2, symmetric<1>, 1, sn::shape{8, 6, 4}>(3, 42);
    depthwise::check_against_dense_convolution<3, 1, sn::padding::valid, 2, sn::shape{5, 5, 3}>(2, 43);
    depthwise::check_against_dense_convolution<5, 2, sn::padding::explicit_<2, 1, 0, 2>, 3, sn::shape{7, 6, 2}>(1, 44);
}

TEST_CASE("depthwise_conv2d backward matches finite differences", "[layers][depthwise][gradient]") {
    constexpr std::size_t lanes = sn::simd::float_lanes;
    using sn::padding::symmetric;
    require_gradients<bound<sn::depthwise_conv2d<3, sn::tanh, 1, sn::padding::same>, sn::shape{5, 4, lanes + 3}>>(2, 45);
    require_gradients<bound<sn::depthwise_conv2d<3, sn::identity, 2, symmetric<1>, 1, sn::bias::none>, sn::shape{6, 6, 5}>>(
        5, 46);  // two groups of images, the second short
    require_gradients<bound<sn::depthwise_conv2d<3, sn::tanh, 1, sn::padding::valid, 3>, sn::shape{5, 5, 2}>>(2, 47);
    // relu6 folded in, some pre-activations beyond 6.
    auto strong = [](std::span<float> input, std::span<float> parameters, sn::rng& g) {
        for (auto& x : input) x = g.uniform(-1.0f, 1.0f);
        for (auto& p : parameters) p = g.uniform(-3.0f, 3.0f);
    };
    require_gradients<bound<sn::depthwise_conv2d<3, sn::relu6, 1, symmetric<1>>, sn::shape{4, 4, 6}>>(
        2, 48, {.step = 1e-3f, .prepare = strong});
}

namespace {
// Forward and backward of layer L on `batch` samples with 1, 2 and 3 threads: the outputs,
// parameter gradients and input gradients are the same bits.
template <typename L>
void require_same_bits_for_thread_counts(std::size_t batch, std::uint64_t seed) {
    std::vector<std::vector<float>> results;
    for (std::size_t threads : {1, 2, 3}) {
        runner<L> r(batch, threads);
        sn::rng g(seed);
        for (auto& x : r.input) x = g.uniform(-1.0f, 1.0f);
        for (auto& x : r.parameters) x = g.uniform(-1.0f, 1.0f);
        for (auto& x : r.output_gradient) x = g.uniform(-1.0f, 1.0f);
        std::fill(r.parameter_gradients.begin(), r.parameter_gradients.end(), 0.0f);
        r.forward(true);
        r.backward();
        std::vector<float> all(r.output.begin(), r.output.end());
        all.insert(all.end(), r.parameter_gradients.begin(), r.parameter_gradients.end());
        all.insert(all.end(), r.input_gradient.begin(), r.input_gradient.end());
        results.push_back(std::move(all));
    }
    CHECK(results[1] == results[0]);
    CHECK(results[2] == results[0]);
}
}  // namespace

TEST_CASE("depthwise_conv2d gives the same bits with 1, 2 and 3 threads", "[layers][depthwise][threads]") {
    // 11 images: three groups of images, the last one short.
    require_same_bits_for_thread_counts<bound<sn::depthwise_conv2d<3, sn::tanh, 2, sn::padding::same, 2>, sn::shape{9, 7, 5}>>(
        11, 49);
}

TEST_CASE("depthwise convolutions match PyTorch's grouped Conv2d on identical weights", "[layers][depthwise][pytorch]") {
    // The depthwise network of tests/fixtures/make_pytorch_fixtures.py.
    using net = sn::sequential<sn::input<8, 8, 3>, sn::conv2d<8, 3, sn::identity, 1, sn::padding::symmetric<1>>, sn::relu6,
                               sn::depthwise_conv2d<3, sn::identity, 1, sn::padding::symmetric<1>, 1, sn::bias::none>,
                               sn::batch_norm<>, sn::relu6, sn::conv2d<4, 1>,
                               sn::depthwise_conv2d<3, sn::identity, 2, sn::padding::symmetric<1>, 2>,
                               sn::global_average_pool2d, sn::dense<5>>;
    sn::testing::check_against_pytorch<net>(STATICNET_FIXTURES_DIR "/depthwise_pytorch.txt", 3);
}

// ---------------------------------------------------------------- grouped and dilated convolution

namespace grouped {
// A grouped convolution as a conv2d whose kernel is zero between groups, and a dilated one as a
// conv2d of the dilated span whose kernel is zero between the taps: the same outputs.
template <std::size_t F, std::size_t K, std::size_t S, sn::padding_rule P, std::size_t G, std::size_t D, sn::shape In>
void check_against_dense_convolution(std::size_t batch, std::uint64_t seed) {
    constexpr std::size_t span = D * (K - 1) + 1, C = In.channels(), Cg = C / G, Fg = F / G;
    using L = bound<sn::conv2d<F, K, sn::identity, S, P, sn::bias::use, G, D>, In>;
    using Dense = bound<sn::conv2d<F, span, sn::identity, S, P>, In>;
    STATIC_REQUIRE(L::output_shape == Dense::output_shape);
    STATIC_REQUIRE(L::pads == Dense::pads);
    STATIC_REQUIRE(L::parameter_count == K * K * Cg * F + F);
    runner<L> l(batch);
    runner<Dense> d(batch);
    sn::rng g(seed);
    for (auto& x : l.input) x = g.uniform(-1.0f, 1.0f);
    for (auto& x : l.parameters) x = g.uniform(-1.0f, 1.0f);
    std::copy(l.input.begin(), l.input.end(), d.input.begin());
    std::fill(d.parameters.begin(), d.parameters.end(), 0.0f);
    for (std::size_t ky = 0; ky < K; ++ky)
        for (std::size_t kx = 0; kx < K; ++kx)
            for (std::size_t c = 0; c < Cg; ++c)
                for (std::size_t f = 0; f < F; ++f) {
                    const std::size_t group = f / Fg, channel = group * Cg + c;
                    d.parameters[((ky * D * span + kx * D) * C + channel) * F + f] = l.parameters[((ky * K + kx) * Cg + c) * F + f];
                }
    for (std::size_t f = 0; f < F; ++f) d.parameters[span * span * C * F + f] = l.parameters[K * K * Cg * F + f];
    l.forward(true);
    d.forward(true);
    for (std::size_t i = 0; i < batch * L::output_shape.size(); ++i) CHECK(l.output[i] == Approx(d.output[i]).margin(1e-5));
}
}  // namespace grouped

TEST_CASE("grouped and dilated conv2d equal a convolution with zeros between groups and taps", "[layers][grouped]") {
    using sn::padding::symmetric;
    grouped::check_against_dense_convolution<6, 3, 1, sn::padding::same, 2, 1, sn::shape{5, 6, 4}>(2, 61);
    grouped::check_against_dense_convolution<8, 1, 2, sn::padding::valid, 4, 1, sn::shape{6, 5, 8}>(3, 62);
    grouped::check_against_dense_convolution<4, 3, 1, symmetric<2>, 1, 2, sn::shape{7, 7, 3}>(2, 63);
    grouped::check_against_dense_convolution<6, 3, 2, sn::padding::same, 3, 2, sn::shape{9, 8, 6}>(2, 64);
    grouped::check_against_dense_convolution<4, 2, 1, sn::padding::valid, 2, 3, sn::shape{7, 6, 2}>(1, 65);
}

TEST_CASE("grouped and dilated conv2d backward matches finite differences", "[layers][grouped][gradient]") {
    using sn::padding::symmetric;
    require_gradients<bound<sn::conv2d<6, 3, sn::tanh, 1, sn::padding::same, sn::bias::use, 3>, sn::shape{5, 4, 6}>>(2, 66);
    require_gradients<bound<sn::conv2d<4, 3, sn::identity, 2, symmetric<2>, sn::bias::none, 1, 2>, sn::shape{7, 6, 3}>>(
        3, 67);
    require_gradients<bound<sn::conv2d<4, 3, sn::tanh, 1, sn::padding::same, sn::bias::use, 2, 2>, sn::shape{6, 6, 4}>>(
        2, 68);
}

TEST_CASE("grouped and dilated conv2d give the same bits with 1, 2 and 3 threads", "[layers][grouped][threads]") {
    require_same_bits_for_thread_counts<
        bound<sn::conv2d<8, 3, sn::tanh, 1, sn::padding::same, sn::bias::use, 2, 2>, sn::shape{9, 7, 6}>>(11, 69);
}

TEST_CASE("grouped and dilated convolutions match PyTorch's Conv2d on identical weights", "[layers][grouped][pytorch]") {
    // The grouped network of tests/fixtures/make_pytorch_fixtures.py.
    using net = sn::sequential<sn::input<9, 9, 4>,
                               sn::conv2d<8, 3, sn::identity, 1, sn::padding::symmetric<1>, sn::bias::use, 2>, sn::relu,
                               sn::conv2d<8, 3, sn::identity, 1, sn::padding::symmetric<2>, sn::bias::none, 1, 2>,
                               sn::batch_norm<>, sn::relu,
                               sn::conv2d<6, 3, sn::identity, 2, sn::padding::symmetric<2>, sn::bias::use, 2, 2>,
                               sn::conv2d<6, 1, sn::identity, 1, sn::padding::valid, sn::bias::use, 3>,
                               sn::global_average_pool2d, sn::dense<5>>;
    sn::testing::check_against_pytorch<net>(STATICNET_FIXTURES_DIR "/grouped_pytorch.txt", 3);
    // A dilation that keeps the shapes and counts still tells two architectures apart.
    using plain = sn::sequential<sn::input<6, 6, 2>, sn::conv2d<4, 3, sn::identity, 1, sn::padding::same>,
                                 sn::flatten, sn::dense<2>>;
    using dilated = sn::sequential<sn::input<6, 6, 2>,
                                   sn::conv2d<4, 3, sn::identity, 1, sn::padding::same, sn::bias::use, 1, 2>,
                                   sn::flatten, sn::dense<2>>;
    STATIC_REQUIRE(plain::parameter_count == dilated::parameter_count);
    STATIC_REQUIRE(plain::fingerprint != dilated::fingerprint);
}

// ---------------------------------------------------------------- activations with input derivatives

TEST_CASE("silu, gelu and hard_swish forward values", "[layers][activations]") {
    const float x[6] = {-4.0f, -1.0f, 0.0f, 1.0f, 2.5f, 4.0f};
    float y[6];
    sn::silu::forward(x, y, 1, 6);
    CHECK(y[1] == Approx(-0.26894142f));
    CHECK(y[3] == Approx(0.73105858f));
    sn::gelu<>::forward(x, y, 1, 6);
    CHECK(y[1] == Approx(-0.15865525f));
    CHECK(y[3] == Approx(0.84134475f));
    sn::gelu<sn::gelu_approximation::tanh>::forward(x, y, 1, 6);
    CHECK(y[3] == Approx(0.84119199f));
    sn::hard_swish::forward(x, y, 1, 6);
    CHECK(y[0] == 0.0f);
    CHECK(y[2] == 0.0f);
    CHECK(y[3] == Approx(2.0f / 3.0f));
    CHECK(y[5] == 4.0f);
}

TEST_CASE("silu, gelu and hard_swish backward match finite differences", "[layers][activations][gradient]") {
    // Values over [-5, 5], none within 0.05 of hard_swish's kinks at -3 and 3.
    auto spread = [](std::span<float> input, std::span<float>, sn::rng& g) {
        for (auto& x : input) {
            x = g.uniform(-5.0f, 5.0f);
            if (std::abs(std::abs(x) - 3.0f) < 0.05f) x = std::copysign(3.05f, x);
        }
    };
    require_gradients<bound<sn::silu, sn::shape{4, 3, 5}>>(2, 51, {.prepare = spread});
    require_gradients<bound<sn::gelu<>, sn::shape{4, 3, 5}>>(2, 52, {.prepare = spread});
    require_gradients<bound<sn::gelu<sn::gelu_approximation::tanh>, sn::shape{7}>>(3, 53, {.prepare = spread});
    require_gradients<bound<sn::hard_swish, sn::shape{4, 3, 5}>>(2, 54, {.prepare = spread});
}

namespace folded {
// The same network written with each activation folded into its layer and as a layer of its
// own: the same outputs, gradients and input gradient.
template <typename Folded, typename Separate>
void check_equal(std::size_t batch, std::uint64_t seed) {
    STATIC_REQUIRE(Folded::arena_size == Separate::arena_size);
    STATIC_REQUIRE(Folded::parameter_count == Separate::parameter_count);
    Folded f;
    Separate s;
    f.initialize(seed);
    std::copy(f.parameters().begin(), f.parameters().end(), s.parameters().begin());
    sn::rng g(seed);
    std::vector<float> input(batch * Folded::input_shape.size()), weights(batch * Folded::output_shape.size());
    for (auto& x : input) x = g.uniform(-2.0f, 2.0f);
    for (auto& x : weights) x = g.uniform(-1.0f, 1.0f);
    for (std::size_t threads : {1, 3}) {
        INFO("threads: " << threads);
        sn::thread_pool pool(threads);
        const sn::layer_context ctx{.batch = batch, .training = true, .pool = &pool};
        auto run = [&](auto& net) {
            net.prepare(batch);
            std::fill(net.gradients().begin(), net.gradients().end(), 0.0f);
            const float* out = net.forward(input.data(), ctx);
            std::vector<float> all(out, out + weights.size());
            std::copy(weights.begin(), weights.end(), net.output_gradient(batch));
            std::vector<float> input_gradient(input.size());
            net.backward(input.data(), ctx, input_gradient.data());
            all.insert(all.end(), input_gradient.begin(), input_gradient.end());
            all.insert(all.end(), net.gradients().begin(), net.gradients().end());
            return all;
        };
        const auto a = run(f), b = run(s);
        REQUIRE(a.size() == b.size());
        double diff = 0, scale = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
            scale = std::max(scale, static_cast<double>(std::abs(b[i])));
        }
        CHECK(diff <= 1e-5 * scale);
    }
}
}  // namespace folded

TEST_CASE("silu, gelu and hard_swish folded into conv2d, depthwise_conv2d and dense equal them as layers",
          "[layers][activations][folded]") {
    using sn::padding::symmetric;
    using tanh_gelu = sn::gelu<sn::gelu_approximation::tanh>;
    // Every path of conv2d: direct (one input channel), Winograd (3x3, padded 1, 8 channels),
    // the part a max pooling reads (5x4 pooled by 2 reads 4x4), 1x1 in place; grouped and
    // dilated; depthwise; dense.
    using with_folded = sn::sequential<
        sn::input<7, 6, 1>, sn::conv2d<8, 3, sn::silu, 1, sn::padding::same>,
        sn::conv2d<8, 3, sn::gelu<>, 1, sn::padding::same>, sn::conv2d<8, 3, sn::hard_swish>, sn::max_pool2d<2>, sn::depthwise_conv2d<3, sn::hard_swish, 1, symmetric<1>, 2>,
        sn::conv2d<8, 3, tanh_gelu, 1, symmetric<2>, sn::bias::use, 2, 2>, sn::conv2d<8, 1, sn::silu>, sn::flatten,
        sn::dense<6, sn::gelu<>>, sn::dense<4, sn::softmax>>;
    using with_layers = sn::sequential<
        sn::input<7, 6, 1>, sn::conv2d<8, 3, sn::identity, 1, sn::padding::same>, sn::silu,
        sn::conv2d<8, 3, sn::identity, 1, sn::padding::same>, sn::gelu<>,
        sn::conv2d<8, 3>, sn::hard_swish, sn::max_pool2d<2>,
        sn::depthwise_conv2d<3, sn::identity, 1, symmetric<1>, 2>, sn::hard_swish,
        sn::conv2d<8, 3, sn::identity, 1, symmetric<2>, sn::bias::use, 2, 2>, tanh_gelu, sn::conv2d<8, 1>, sn::silu,
        sn::flatten, sn::dense<6>, sn::gelu<>, sn::dense<4, sn::softmax>>;
    folded::check_equal<with_folded, with_layers>(5, 71);
    // The folded form keeps the pre-activation in its cache: the memory of the layer it replaces.
    STATIC_REQUIRE(with_folded::activation_bytes_per_sample <= with_layers::activation_bytes_per_sample);
    // Finite differences through the kept pre-activation.
    require_gradients<bound<sn::conv2d<4, 3, sn::gelu<>, 1, sn::padding::same>, sn::shape{5, 4, 3}>>(2, 72);
    require_gradients<bound<sn::dense<5, sn::silu>, sn::shape{7}>>(3, 73);
    require_gradients<bound<sn::depthwise_conv2d<3, tanh_gelu, 1, sn::padding::same>, sn::shape{4, 4, 3}>>(2, 74);
}

// An activation whose derivative needs its input folds into batch_norm, which recomputes its
// output in backward, and not into a residual block, which would have to keep its sum.
// (`silu, gelu and hard_swish match PyTorch` below runs batch_norm, silu folded.)
static_assert(sn::detail::folds_into<bound<sn::batch_norm<>, sn::shape{4, 4, 3}>, bound<sn::silu, sn::shape{4, 4, 3}>>());
static_assert(sn::detail::folds_into<bound<sn::batch_norm<>, sn::shape{4, 4, 3}>, bound<sn::relu, sn::shape{4, 4, 3}>>());
static_assert(!sn::detail::folds_into<bound<sn::residual<sn::conv2d<3, 1>>, sn::shape{4, 4, 3}>,
                                      bound<sn::hard_swish, sn::shape{4, 4, 3}>>());

TEST_CASE("silu, gelu and hard_swish match PyTorch on identical weights", "[layers][activations][pytorch]") {
    // The smooth activations network of tests/fixtures/make_pytorch_fixtures.py.
    using conv3 = sn::conv2d<8, 3, sn::identity, 1, sn::padding::symmetric<1>>;
    using net = sn::sequential<sn::input<6, 6, 3>, conv3, sn::batch_norm<>, sn::silu, conv3, sn::gelu<>, conv3,
                               sn::gelu<sn::gelu_approximation::tanh>, sn::conv2d<8, 1>, sn::hard_swish,
                               sn::global_average_pool2d, sn::dense<5>>;
    sn::testing::check_against_pytorch<net>(STATICNET_FIXTURES_DIR "/smooth_activations_pytorch.txt", 3);
}
