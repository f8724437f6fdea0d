// Residual blocks and the layers of modern small CNNs (average_pool2d, global_average_pool2d,
// convolutions without bias): compile-time facts, finite differences, PyTorch on identical
// weights (tests/fixtures/resnet_pytorch.txt), thread independence, the summary.
#include <staticnet/staticnet.hpp>

#include <catch2/catch.hpp>

#include "pytorch_fixture.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace sn = staticnet;

namespace {

template <typename Spec, sn::shape In>
using bound = typename Spec::template bind<In, 1>;

template <typename Spec, sn::shape In>
void require_gradients(std::size_t batch, std::uint64_t seed, sn::gradient_check_options options = {}) {
    options.batch = batch;
    options.seed = seed;
    const auto result = sn::check_gradients<Spec, In>(options);
    INFO(result.message);
    REQUIRE(result.passed);
    REQUIRE(result.compared > 0);
}

template <std::size_t Filters, std::size_t Stride = 1>
using conv3 = sn::conv2d<Filters, 3, sn::identity, Stride, sn::padding::same, sn::bias::none>;
template <std::size_t Filters, std::size_t Stride>
using conv1 = sn::conv2d<Filters, 1, sn::identity, Stride, sn::padding::same, sn::bias::none>;

// ResNet v1 basic blocks, identity and projection shortcut, and a pre-activation (v2) block.
using basic_block = sn::residual<conv3<8>, sn::batch_norm<>, sn::relu, conv3<8>, sn::batch_norm<>>;
using down_block = sn::residual<sn::projection<conv1<16, 2>, sn::batch_norm<>>, conv3<16, 2>, sn::batch_norm<>, sn::relu,
                                conv3<16>, sn::batch_norm<>>;
using preact_block = sn::residual<sn::batch_norm<>, sn::relu, conv3<8>, sn::batch_norm<>, sn::relu, conv3<8>>;

// Finite differences lie across relu's kink, and in a block every input reaches many
// pre-activations: the gradient checks use tanh where the networks use relu.
using smooth_block = sn::residual<conv3<8>, sn::batch_norm<>, sn::tanh, conv3<8>, sn::batch_norm<>>;
using smooth_down_block = sn::residual<sn::projection<conv1<6, 2>, sn::batch_norm<>>, conv3<6, 2>, sn::batch_norm<>,
                                       sn::tanh, conv3<6>, sn::batch_norm<>>;
using smooth_preact_block = sn::residual<sn::batch_norm<>, sn::tanh, conv3<4>, sn::batch_norm<>, sn::tanh, conv3<4>>;

using small_resnet = sn::sequential<sn::input<9, 9, 3>, conv3<8>, sn::batch_norm<>, sn::relu,  //
                                    basic_block, sn::relu,                                   //
                                    down_block, sn::relu,                                    //
                                    sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

}  // namespace

TEST_CASE("a residual block's facts are compile-time constants", "[residual]") {
    using block = bound<basic_block, sn::shape{9, 9, 8}>;
    STATIC_REQUIRE(block::output_shape == sn::shape{9, 9, 8});
    // Two 3x3x8x8 kernels without bias, two batch_norms (gamma, beta trainable; mean, variance not).
    STATIC_REQUIRE(block::parameter_count == 2 * (3 * 3 * 8 * 8) + 2 * (2 * 8));
    STATIC_REQUIRE(block::state_count == 2 * (2 * 8));
    STATIC_REQUIRE(block::flops_per_sample == 2 * (2 * 81 * 72 * 8) + 2 * (4 * 648) + 648 + 648);

    using down = bound<down_block, sn::shape{9, 9, 8}>;
    STATIC_REQUIRE(down::output_shape == sn::shape{5, 5, 16});
    STATIC_REQUIRE(down::parameter_count == 3 * 3 * 8 * 16 + 32 + 3 * 3 * 16 * 16 + 32 + 8 * 16 + 32);
    STATIC_REQUIRE(down::parameter_offsets[5] == 3 * 3 * 8 * 16 + 32 + 3 * 3 * 16 * 16 + 32);  // the projection's conv

    STATIC_REQUIRE(small_resnet::output_shape == sn::shape{10});
    STATIC_REQUIRE(small_resnet::trainable_parameter_count ==
                   3 * 3 * 3 * 8 + 16 + block::parameter_count + down::parameter_count + 16 * 10 + 10);
    STATIC_REQUIRE(small_resnet::memory_bytes(4) > 0);
    // The fingerprint sees inside blocks: the same counts and shapes in another order differ.
    using swapped = sn::sequential<sn::input<9, 9, 3>, conv3<8>, sn::batch_norm<>, sn::relu,
                                   sn::residual<sn::batch_norm<>, conv3<8>, sn::relu, conv3<8>, sn::batch_norm<>>,
                                   sn::relu, down_block, sn::relu, sn::global_average_pool2d,
                                   sn::dense<10, sn::softmax>>;
    STATIC_REQUIRE(swapped::parameter_count == small_resnet::parameter_count);
    STATIC_REQUIRE(swapped::fingerprint != small_resnet::fingerprint);
}

TEST_CASE("new layers: shapes and counts", "[layers][pooling]") {
    STATIC_REQUIRE(bound<sn::average_pool2d<2>, sn::shape{7, 6, 3}>::output_shape == sn::shape{3, 3, 3});
    STATIC_REQUIRE(bound<sn::average_pool2d<3, 1>, sn::shape{5, 5, 2}>::output_shape == sn::shape{3, 3, 2});
    STATIC_REQUIRE(bound<sn::global_average_pool2d, sn::shape{7, 7, 64}>::output_shape == sn::shape{64});
    STATIC_REQUIRE(bound<conv3<16>, sn::shape{8, 8, 4}>::parameter_count == 3 * 3 * 4 * 16);
    STATIC_REQUIRE(bound<sn::conv2d<16, 3>, sn::shape{8, 8, 4}>::parameter_count == 3 * 3 * 4 * 16 + 16);
}

TEST_CASE("average pooling forward on hand-computed cases", "[layers][pooling]") {
    sn::detail::layer_runner<bound<sn::average_pool2d<2>, sn::shape{2, 4, 2}>> pool(1, 1);
    for (int i = 0; i < 16; ++i) pool.input[i] = static_cast<float>(i);  // pixel p, channel c: 2p + c
    pool.forward(false);
    // Windows {0, 1, 4, 5} and {2, 3, 6, 7} of pixels.
    CHECK(pool.output[0] == 5.0f);
    CHECK(pool.output[1] == 6.0f);
    CHECK(pool.output[2] == 9.0f);
    CHECK(pool.output[3] == 10.0f);

    sn::detail::layer_runner<bound<sn::global_average_pool2d, sn::shape{2, 2, 3}>> global(2, 1);
    for (int i = 0; i < 24; ++i) global.input[i] = static_cast<float>(i);
    global.forward(false);
    const float expected[6] = {4.5f, 5.5f, 6.5f, 16.5f, 17.5f, 18.5f};
    for (int i = 0; i < 6; ++i) CHECK(global.output[i] == expected[i]);
}

TEST_CASE("new layers backward match finite differences", "[layers][pooling][gradient]") {
    require_gradients<sn::average_pool2d<2>, sn::shape{6, 5, 3}>(2, 1);
    require_gradients<sn::average_pool2d<3, 2>, sn::shape{7, 7, 19}>(2, 2);  // overlapping windows, a SIMD tail
    require_gradients<sn::average_pool2d<3, 1>, sn::shape{4, 4, 2}>(3, 3);
    require_gradients<sn::global_average_pool2d, sn::shape{3, 4, 19}>(2, 4);
    require_gradients<conv3<5, 2>, sn::shape{6, 6, 3}>(2, 5);
}

TEST_CASE("residual blocks backward match finite differences", "[residual][gradient]") {
    SECTION("identity shortcut") { require_gradients<smooth_block, sn::shape{5, 5, 8}>(2, 1); }
    SECTION("projection shortcut") { require_gradients<smooth_down_block, sn::shape{5, 5, 3}>(3, 2); }
    SECTION("pre-activation") { require_gradients<smooth_preact_block, sn::shape{4, 4, 4}>(2, 3); }
    SECTION("a single layer, and a block inside a block") {
        require_gradients<sn::residual<sn::dense<6, sn::tanh>>, sn::shape{6}>(3, 4);
        require_gradients<sn::residual<sn::residual<conv3<3>, sn::tanh>, sn::batch_norm<>, conv3<3>>, sn::shape{4, 4, 3}>(2, 5);
    }
    SECTION("activations folded into batch_norm and blocks: a body and a projection ending in one") {
        require_gradients<sn::residual<sn::projection<conv1<6, 2>, sn::batch_norm<>, sn::sigmoid>, conv3<6, 2>, sn::batch_norm<>,
                                       sn::tanh>,
                          sn::shape{5, 5, 3}>(3, 6);
        require_gradients<sn::residual<sn::residual<conv3<3>, sn::batch_norm<>>, sn::tanh, conv3<3>>, sn::shape{4, 4, 3}>(2, 7);
    }
}

namespace {

// The network of tests/fixtures/make_pytorch_fixtures.py.
using pytorch_net =
    sn::sequential<sn::input<7, 7, 3>, conv3<4>, sn::batch_norm<>, sn::relu,                                      // 1-3
                   sn::residual<conv3<4>, sn::batch_norm<>, sn::relu, conv3<4>, sn::batch_norm<>>, sn::relu,     // 4-5
                   sn::residual<sn::projection<conv1<8, 2>, sn::batch_norm<>>, conv3<8, 2>, sn::batch_norm<>, sn::relu,
                                conv3<8>, sn::batch_norm<>>,
                   sn::relu,                                                                                     // 6-7
                   sn::residual<sn::batch_norm<>, sn::relu, sn::conv2d<8, 3, sn::identity, 1, sn::padding::same>,
                                sn::batch_norm<>, sn::relu, sn::conv2d<8, 3, sn::identity, 1, sn::padding::same>>,  // 8
                   sn::average_pool2d<3, 1>, sn::global_average_pool2d, sn::dense<5>>;                          // 9-11

}  // namespace

TEST_CASE("a ResNet-style network matches PyTorch on identical weights", "[residual][pytorch]") {
    sn::testing::check_against_pytorch<pytorch_net>(STATICNET_FIXTURES_DIR "/resnet_pytorch.txt", 3);
}

TEST_CASE("a residual block's results do not depend on the thread count", "[residual][threads]") {
    using L = bound<down_block, sn::shape{9, 9, 8}>;
    auto run = [](std::size_t threads) {
        sn::detail::layer_runner<L> r(5, threads);
        sn::rng g(7);
        for (auto& x : r.input) x = g.uniform(-1.0f, 1.0f);
        sn::rng init(8);
        r.layer.initialize(r.parameter_span(), r.state_span(), init);
        r.forward(true);
        for (auto& x : r.output_gradient) x = g.uniform(-1.0f, 1.0f);
        r.parameter_gradients.fill_zero();
        r.backward(true);
        std::vector<float> all(r.output.begin(), r.output.end());
        all.insert(all.end(), r.input_gradient.begin(), r.input_gradient.end());
        all.insert(all.end(), r.parameter_gradient_span().begin(), r.parameter_gradient_span().end());
        all.insert(all.end(), r.state_span().begin(), r.state_span().end());
        return all;
    };
    const auto one = run(1);
    CHECK(run(2) == one);
    CHECK(run(3) == one);
}

TEST_CASE("the summary lists a block's layers indented under it", "[residual][summary]") {
    std::ostringstream os;
    sn::print_summary<small_resnet>(os);
    const auto text = os.str();
    INFO(text);
    CHECK_THAT(text, Catch::Contains(" residual_4 "));
    CHECK_THAT(text, Catch::Contains("   conv2d (linear)"));
    CHECK_THAT(text, Catch::Contains("   shortcut: conv2d (linear)"));
    CHECK_THAT(text, Catch::Contains("   shortcut: batch_norm"));
    CHECK_THAT(text, Catch::Contains("global_average_pool2d_8"));
    CHECK_THAT(text, Catch::Contains("Total params: " + sn::detail::thousands(small_resnet::parameter_count)));
}

// A block is run by the same chain engine as the network: every optimisation between
// neighbouring layers applies inside it too. conv -> relu -> max pooling on an 11x11 image
// exercises two of them (the convolution computes only the 10x10 pixels the pooling reads;
// relu's backward is skipped, the pooling applies its derivative). With a projection whose
// weights are zero, the block's sum adds exact zeros, so it must be bitwise the network
// written flat: forward, parameter gradients and input gradient.
TEST_CASE("a block containing conv -> relu -> max pooling is bitwise the same layers written flat", "[residual][block_equals_flat]") {
    using conv = sn::conv2d<8, 3, sn::identity, 1, sn::padding::same>;
    using zero_projection = sn::projection<sn::conv2d<8, 3, sn::identity, 2, sn::padding::valid, sn::bias::none>>;
    using blocked = sn::sequential<sn::input<11, 11, 3>, sn::residual<zero_projection, conv, sn::relu, sn::max_pool2d<2>>,
                                   sn::flatten, sn::dense<4, sn::softmax>>;
    using flat = sn::sequential<sn::input<11, 11, 3>, conv, sn::relu, sn::max_pool2d<2>, sn::flatten, sn::dense<4, sn::softmax>>;
    using block = blocked::layer_type<0>;
    using body = typename block::body_chain;
    // The optimisations are on inside the block, as in the flat network.
    STATIC_REQUIRE(body::skips_backward<1>());
    STATIC_REQUIRE(body::next_applies_derivative<0>() == flat::chain_type::next_applies_derivative<0>());
    STATIC_REQUIRE(body::skips_backward<1>() == flat::chain_type::skips_backward<1>());
    STATIC_REQUIRE(sn::detail::input_rows_read<body::layer_type<2>>() == 10);

    constexpr std::size_t batch = 6;
    blocked a;
    flat b;
    b.initialize(3);
    // The block's parameters: the body's (the flat network's first layer), then the projection's, zero.
    std::fill(a.parameters().begin(), a.parameters().end(), 0.0f);
    std::copy_n(b.layer_parameters<0>().begin(), flat::layer_type<0>::parameter_count, a.layer_parameters<0>().begin());
    std::copy(b.layer_parameters<4>().begin(), b.layer_parameters<4>().end(), a.layer_parameters<2>().begin());

    for (std::size_t threads : {1, 2}) {
        INFO(threads << " threads");
        sn::thread_pool pool(threads);
        sn::rng g(11);
        std::vector<float> x(batch * 11 * 11 * 3);
        for (auto& v : x) v = g.uniform(-1.0f, 1.0f);
        std::vector<float> dy(batch * 4);
        for (auto& v : dy) v = g.uniform(-1.0f, 1.0f);
        a.prepare(batch);
        b.prepare(batch);
        const sn::layer_context ctx{.batch = batch, .training = true, .pool = &pool, .step_seed = 1};
        const float* ya = a.forward(x.data(), ctx);
        const float* yb = b.forward(x.data(), ctx);
        REQUIRE(std::equal(ya, ya + batch * 4, yb));
        std::copy(dy.begin(), dy.end(), a.output_gradient(batch));
        std::copy(dy.begin(), dy.end(), b.output_gradient(batch));
        std::fill(a.gradients().begin(), a.gradients().end(), 0.0f);
        std::fill(b.gradients().begin(), b.gradients().end(), 0.0f);
        std::vector<float> dxa(x.size(), 1.0f), dxb(x.size(), 2.0f);
        a.backward(x.data(), ctx, dxa.data());
        b.backward(x.data(), ctx, dxb.data());
        const auto ga = a.layer_gradients<0>(), gb = b.layer_gradients<0>();
        REQUIRE(std::equal(gb.begin(), gb.end(), ga.begin()));
        const auto da = a.layer_gradients<2>(), db = b.layer_gradients<4>();
        REQUIRE(std::equal(db.begin(), db.end(), da.begin()));
        REQUIRE(dxa == dxb);
    }
}
