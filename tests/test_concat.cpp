// concat blocks (Inception, DenseNet): compile-time facts, a hand-computed forward pass,
// finite differences, PyTorch on identical weights (tests/fixtures/concat_pytorch.txt),
// thread independence, the summary, training, a weights file round trip, and ONNX (Concat,
// axis 1) out and back in.
#include <staticnet/io/onnx.hpp>
#include <staticnet/staticnet.hpp>

#include <catch2/catch.hpp>

#include "onnx/fixture_json.hpp"
#include "pytorch_fixture.hpp"
#include "temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <utility>
#include <sstream>
#include <string>
#include <vector>

namespace sn = staticnet;

namespace {

template <typename Spec, sn::shape In>
using bound = typename Spec::template bind<In, 1>;

template <typename Spec, sn::shape In>
void require_gradients(std::size_t batch, std::uint64_t seed) {
    const auto result = sn::check_gradients<Spec, In>({.batch = batch, .seed = seed});
    INFO(result.message);
    REQUIRE(result.passed);
    REQUIRE(result.compared > 0);
}

template <std::size_t Filters, std::size_t Stride = 1>
using conv3 = sn::conv2d<Filters, 3, sn::identity, Stride, sn::padding::same, sn::bias::none>;
template <std::size_t Filters, std::size_t Stride = 1>
using conv1 = sn::conv2d<Filters, 1, sn::identity, Stride, sn::padding::same>;

// Inception-style: a 1x1 convolution beside 3x3 -> batch_norm -> relu; and DenseNet-style:
// the input itself beside new features.
using inception_block = sn::concat<sn::branch<conv1<4>>, sn::branch<conv3<6>, sn::batch_norm<>, sn::relu>>;
using dense_block = sn::concat<sn::branch<>, sn::branch<sn::batch_norm<>, sn::relu, conv3<4>>>;

// Smooth activations for the finite differences (relu's kink is in reach of every input).
using smooth_inception = sn::concat<sn::branch<conv1<4>>, sn::branch<conv3<6>, sn::batch_norm<>, sn::tanh>>;
using smooth_dense = sn::concat<sn::branch<>, sn::branch<sn::batch_norm<>, sn::tanh, conv3<4>>>;

using small_inception_net = sn::sequential<sn::input<6, 6, 2>, conv3<4>, sn::batch_norm<>, sn::relu,  //
                                           inception_block, sn::relu,                                //
                                           dense_block,                                              //
                                           sn::global_average_pool2d, sn::dense<3, sn::softmax>>;

// Collects a layer's output, input gradient, parameter gradients and state after one
// training pass, for comparisons between thread counts.
template <typename L>
std::vector<float> one_pass(std::size_t threads, std::size_t batch = 5) {
    sn::detail::layer_runner<L> r(batch, threads);
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
}

}  // namespace

TEST_CASE("a concat block's facts are compile-time constants", "[concat]") {
    using block = bound<inception_block, sn::shape{7, 7, 3}>;
    STATIC_REQUIRE(block::output_shape == sn::shape{7, 7, 10});
    // 1x1x3x4 kernel and bias; 3x3x3x6 kernel; batch_norm's gamma and beta (mean and variance are state).
    STATIC_REQUIRE(block::parameter_count == (3 * 4 + 4) + 3 * 3 * 3 * 6 + 2 * 6);
    STATIC_REQUIRE(block::state_count == 2 * 6);
    STATIC_REQUIRE(block::parameter_offsets[1] == 3 * 4 + 4);                  // branch 1's convolution
    STATIC_REQUIRE(block::parameter_offsets[2] == 3 * 4 + 4 + 3 * 3 * 3 * 6);  // its batch_norm
    STATIC_REQUIRE(block::state_offsets[2] == 0);
    STATIC_REQUIRE(std::tuple_size_v<block::body_layers> == 4);
    STATIC_REQUIRE(std::tuple_size_v<block::shortcut_layers> == 0);
    using inner = sn::detail::layer_chain<sn::detail::chain_packing::packed, std::tuple_element_t<1, block::body_layers>,
                                          std::tuple_element_t<2, block::body_layers>, std::tuple_element_t<3, block::body_layers>>;
    STATIC_REQUIRE(block::flops_per_sample == bound<conv1<4>, sn::shape{7, 7, 3}>::flops_per_sample + inner::flops_per_sample);

    using dense = bound<dense_block, sn::shape{5, 5, 6}>;
    STATIC_REQUIRE(dense::output_shape == sn::shape{5, 5, 10});
    STATIC_REQUIRE(dense::parameter_count == 2 * 6 + 3 * 3 * 6 * 4);
    STATIC_REQUIRE(std::tuple_size_v<std::tuple_element_t<0, dense::branch_layers>> == 0);

    // Vectors concatenate too; branches that reduce alike meet.
    using vectors = bound<sn::concat<sn::branch<sn::dense<3>>, sn::branch<sn::dense<5, sn::tanh>>>, sn::shape{4}>;
    STATIC_REQUIRE(vectors::output_shape == sn::shape{8});
    using pooled = bound<sn::concat<sn::branch<sn::max_pool2d<2>>, sn::branch<conv3<4, 2>>>, sn::shape{6, 6, 2}>;
    STATIC_REQUIRE(pooled::output_shape == sn::shape{3, 3, 6});

    STATIC_REQUIRE(small_inception_net::output_shape == sn::shape{3});
    STATIC_REQUIRE(small_inception_net::trainable_parameter_count ==
                   3 * 3 * 2 * 4 + 8 + bound<inception_block, sn::shape{6, 6, 4}>::parameter_count +
                       bound<dense_block, sn::shape{6, 6, 10}>::parameter_count + 14 * 3 + 3);
    // The fingerprint sees the branches: the same layers split differently differ.
    using split_a = sn::sequential<sn::input<4, 4, 2>, sn::concat<sn::branch<sn::relu, conv1<3>>, sn::branch<conv1<3>>>>;
    using split_b = sn::sequential<sn::input<4, 4, 2>, sn::concat<sn::branch<sn::relu>, sn::branch<conv1<3>, conv1<3>>>>;
    STATIC_REQUIRE(split_a::fingerprint != split_b::fingerprint);
}

TEST_CASE("concat forward on a hand-computed case", "[concat]") {
    // Branch 0: the input; branch 1: 1x1 convolution without bias, 2 -> 1 channel, weights (1, 10).
    using block = bound<sn::concat<sn::branch<>, sn::branch<sn::conv2d<1, 1, sn::identity, 1, sn::padding::same, sn::bias::none>>>,
                        sn::shape{1, 2, 2}>;
    STATIC_REQUIRE(block::output_shape == sn::shape{1, 2, 3});
    sn::detail::layer_runner<block> r(2, 1);
    for (int i = 0; i < 8; ++i) r.input[i] = static_cast<float>(i + 1);  // image n, pixel p, channel c: 4n + 2p + c + 1
    r.parameters[0] = 1.0f;
    r.parameters[1] = 10.0f;
    r.forward(false);
    const float expected[12] = {1, 2, 21, 3, 4, 43, 5, 6, 65, 7, 8, 87};
    for (int i = 0; i < 12; ++i) CHECK(r.output[i] == expected[i]);
    // Backward: the identity's channels pass through; the convolution's gradient adds w * g.
    for (int i = 0; i < 12; ++i) r.output_gradient[i] = static_cast<float>(i % 3 == 2 ? 1 : 0);
    r.parameter_gradients.fill_zero();
    r.backward(true);
    for (int i = 0; i < 8; ++i) CHECK(r.input_gradient[i] == (i % 2 == 0 ? 1.0f : 10.0f));
    CHECK(r.parameter_gradient_span()[0] == 1.0f + 3 + 5 + 7);
    CHECK(r.parameter_gradient_span()[1] == 2.0f + 4 + 6 + 8);
}

TEST_CASE("concat blocks backward match finite differences", "[concat][gradient]") {
    SECTION("Inception-style") { require_gradients<smooth_inception, sn::shape{5, 5, 3}>(2, 1); }
    SECTION("DenseNet-style, the identity first") { require_gradients<smooth_dense, sn::shape{4, 4, 3}>(3, 2); }
    SECTION("three branches, one strided and pooled, the identity last") {
        require_gradients<sn::concat<sn::branch<conv3<3, 2>, sn::tanh>, sn::branch<sn::average_pool2d<2>>,
                                     sn::branch<sn::conv2d<2, 2, sn::sigmoid, 2, sn::padding::valid>>>,
                          sn::shape{6, 6, 2}>(2, 3);
        require_gradients<sn::concat<sn::branch<conv1<3>>, sn::branch<>>, sn::shape{3, 3, 2}>(2, 4);
    }
    SECTION("vectors") { require_gradients<sn::concat<sn::branch<sn::dense<3, sn::tanh>>, sn::branch<sn::dense<2>>>, sn::shape{5}>(3, 5); }
    SECTION("nested: a residual inside a branch, a concat inside a residual, an activation folded into the block") {
        require_gradients<sn::concat<sn::branch<sn::residual<conv3<3>, sn::batch_norm<>, sn::tanh>>, sn::branch<conv1<2>>>,
                          sn::shape{4, 4, 3}>(2, 6);
        require_gradients<sn::residual<sn::concat<sn::branch<conv1<1>>, sn::branch<conv3<2>, sn::tanh>>, sn::tanh>,
                          sn::shape{4, 4, 3}>(2, 7);
        require_gradients<sn::residual<sn::concat<sn::branch<>, sn::branch<conv3<3>>>, sn::sigmoid, conv1<3>>, sn::shape{4, 4, 3}>(2, 8);
    }
}

TEST_CASE("a concat block's results do not depend on the thread count", "[concat][threads]") {
    using L = bound<sn::concat<sn::branch<conv1<4>>, sn::branch<conv3<6>, sn::batch_norm<>, sn::relu>,
                               sn::branch<>, sn::branch<sn::batch_norm<>, conv3<5, 1>>>,
                    sn::shape{7, 7, 3}>;
    const auto one = one_pass<L>(1);
    CHECK(one_pass<L>(2) == one);
    CHECK(one_pass<L>(3) == one);
}

// An activation after the block is folded into it, and max pooling after that applies its
// derivative: relu commutes with the concatenation, so this must be bitwise the network with
// relu at the end of each branch instead (folded into the convolution and the batch_norm there).
TEST_CASE("relu folded into a concat block, its derivative applied by max pooling, is bitwise relu in each branch",
          "[concat][folding]") {
    using folded = sn::sequential<sn::input<6, 6, 3>, sn::concat<sn::branch<conv1<4>>, sn::branch<conv3<5>, sn::batch_norm<>>>,
                                  sn::relu, sn::max_pool2d<2>, sn::flatten, sn::dense<3, sn::softmax>>;
    using in_branches = sn::sequential<sn::input<6, 6, 3>,
                                       sn::concat<sn::branch<conv1<4>, sn::relu>, sn::branch<conv3<5>, sn::batch_norm<>, sn::relu>>,
                                       sn::max_pool2d<2>, sn::flatten, sn::dense<3, sn::softmax>>;
    STATIC_REQUIRE(folded::chain_type::folded<1>());
    STATIC_REQUIRE(folded::chain_type::next_applies_derivative<1>());
    STATIC_REQUIRE(folded::layer_type<0>::parameter_count == in_branches::layer_type<0>::parameter_count);
    constexpr std::size_t batch = 5;
    folded a;
    in_branches b;
    a.initialize(3);
    b.initialize(4);
    std::ranges::copy(a.layer_parameters<0>(), b.layer_parameters<0>().begin());
    std::ranges::copy(a.layer_state<0>(), b.layer_state<0>().begin());
    std::ranges::copy(a.layer_parameters<4>(), b.layer_parameters<3>().begin());
    for (std::size_t threads : {1, 2}) {
        INFO(threads << " threads");
        sn::thread_pool pool(threads);
        sn::rng g(11);
        std::vector<float> x(batch * 6 * 6 * 3);
        for (auto& v : x) v = g.uniform(-1.0f, 1.0f);
        std::vector<float> dy(batch * 3);
        for (auto& v : dy) v = g.uniform(-1.0f, 1.0f);
        a.prepare(batch);
        b.prepare(batch);
        const sn::layer_context ctx{.batch = batch, .training = true, .pool = &pool, .step_seed = 1};
        const float* ya = a.forward(x.data(), ctx);
        const float* yb = b.forward(x.data(), ctx);
        REQUIRE(std::equal(ya, ya + batch * 3, yb));
        std::copy(dy.begin(), dy.end(), a.output_gradient(batch));
        std::copy(dy.begin(), dy.end(), b.output_gradient(batch));
        std::fill(a.gradients().begin(), a.gradients().end(), 0.0f);
        std::fill(b.gradients().begin(), b.gradients().end(), 0.0f);
        std::vector<float> dxa(x.size(), 1.0f), dxb(x.size(), 2.0f);
        a.backward(x.data(), ctx, dxa.data());
        b.backward(x.data(), ctx, dxb.data());
        const auto ga = a.layer_gradients<0>(), gb = b.layer_gradients<0>();
        CHECK(std::equal(ga.begin(), ga.end(), gb.begin()));
        const auto da = a.layer_gradients<4>(), db = b.layer_gradients<3>();
        CHECK(std::equal(da.begin(), da.end(), db.begin()));
        CHECK(dxa == dxb);
    }
}

namespace {

// The network of tests/fixtures/make_pytorch_fixtures.py (concat_network).
using pytorch_net =
    sn::sequential<sn::input<6, 6, 3>, conv3<4>, sn::batch_norm<>, sn::relu,                                      // 1-3
                   sn::concat<sn::branch<sn::conv2d<4, 1, sn::identity, 1, sn::padding::same>>,
                              sn::branch<conv3<6>, sn::batch_norm<>, sn::relu>>,
                   sn::relu,                                                                                     // 4-5
                   sn::concat<sn::branch<>, sn::branch<sn::batch_norm<>, sn::relu, conv3<4>>>,                   // 6
                   sn::global_average_pool2d, sn::dense<5>>;                                                     // 7-8

}  // namespace

TEST_CASE("an Inception/DenseNet-style network matches PyTorch on identical weights", "[concat][pytorch]") {
    sn::testing::check_against_pytorch<pytorch_net>(STATICNET_FIXTURES_DIR "/concat_pytorch.txt", 3, 1e-5);
}

TEST_CASE("the summary lists each branch's layers indented under the block", "[concat][summary]") {
    std::ostringstream os;
    sn::print_summary<small_inception_net>(os);
    const auto text = os.str();
    INFO(text);
    CHECK_THAT(text, Catch::Contains(" concat_4 "));
    CHECK_THAT(text, Catch::Contains("   branch 0: conv2d (linear)"));
    CHECK_THAT(text, Catch::Contains("   branch 1: batch_norm"));
    CHECK_THAT(text, Catch::Contains("   branch 0: identity"));
    CHECK_THAT(text, Catch::Contains("Total params: " + sn::detail::thousands(small_inception_net::parameter_count)));
}

namespace {

// Two classes of 6x6x2 images: a bright top-left or a bright bottom-right square, plus noise.
sn::data::dataset squares(std::size_t n, std::uint64_t seed) {
    sn::data::dataset d;
    d.images = xt::zeros<float>({n, std::size_t{6}, std::size_t{6}, std::size_t{2}});
    d.labels = xt::zeros<std::int32_t>({n});
    d.num_classes = 3;
    sn::rng g(seed);
    for (std::size_t i = 0; i < n; ++i) {
        const auto label = static_cast<std::int32_t>(g.below(3));
        d.labels(i) = label;
        for (std::size_t y = 0; y < 6; ++y)
            for (std::size_t x = 0; x < 6; ++x)
                for (std::size_t c = 0; c < 2; ++c) {
                    const bool lit = (label == 0 && y < 3 && x < 3) || (label == 1 && y >= 3 && x >= 3) ||
                                     (label == 2 && c == 1 && y >= 2 && y < 4);
                    d.images(i, y, x, c) = (lit ? 0.8f : 0.1f) + g.uniform(-0.1f, 0.1f);
                }
    }
    return d;
}

}  // namespace

TEST_CASE("a network with concat blocks trains, bitwise alike on 1, 2 and 3 threads, and its weights round-trip",
          "[concat][model][threads]") {
    const auto d = squares(96, 9);
    using trainer = sn::model<small_inception_net, sn::adam, sn::sparse_categorical_crossentropy>;
    auto train = [&](std::size_t threads) {
        auto m = std::make_unique<trainer>(sn::adam_options{.learning_rate = 1e-2f}, sn::model_settings{.threads = threads, .seed = 1});
        const auto h = m->fit(d, {.epochs = 4, .batch_size = 16, .seed = 2, .verbose = false});
        return std::pair{std::move(m), h};
    };
    const auto [m, h] = train(1);
    INFO("loss " << h.epochs.front().loss << " -> " << h.back().loss);
    CHECK(h.back().loss < 0.7 * h.epochs.front().loss);
    const std::vector<float> one(m->network().parameters().begin(), m->network().parameters().end());
    for (std::size_t threads : {2, 3}) {
        const auto [other, ignored] = train(threads);
        CHECK(std::equal(one.begin(), one.end(), other->network().parameters().begin()));
        CHECK(std::equal(m->network().state().begin(), m->network().state().end(), other->network().state().begin()));
    }

    temp_dir dir;
    sn::save_weights(m->network(), dir.path / "concat.snw");
    trainer fresh({}, {.threads = 1, .seed = 3});
    sn::load_weights(fresh.network(), dir.path / "concat.snw");
    const auto p = m->predict(d.images);
    const auto q = fresh.predict(d.images);
    CHECK(std::equal(p.begin(), p.end(), q.begin()));
}

TEST_CASE("deterministic mode replays the branches' batch_norm statistics, bitwise alike on 1, 2 and 3 threads",
          "[concat][model][deterministic]") {
    const auto d = squares(48, 10);
    auto train = [&](std::size_t threads) {
        sn::model<small_inception_net, sn::adam, sn::sparse_categorical_crossentropy> m(
            {}, {.threads = threads, .seed = 5, .micro_batch = 3, .deterministic = true});
        m.fit(d, {.epochs = 2, .batch_size = 12, .seed = 2, .verbose = false});
        // The moving mean of the batch_norm inside the first block moved from zero (each
        // micro-batch's statistics recorded, then replayed in order).
        const auto block_state = m.network().template layer_state<3>();
        CHECK(std::any_of(block_state.begin(), block_state.begin() + 6, [](float v) { return v != 0.0f; }));
        std::vector<float> all(m.network().parameters().begin(), m.network().parameters().end());
        all.insert(all.end(), m.network().state().begin(), m.network().state().end());
        return all;
    };
    STATIC_REQUIRE(small_inception_net::layer_type<3>::state_count == 2 * 6);
    const auto one = train(1);
    CHECK(train(2) == one);
    CHECK(train(3) == one);
}

namespace {

// Every kind of branch: a 1x1 convolution, a pooled path, a residual block inside a branch,
// the identity (first and last), a concat inside a residual block, vectors.
using onnx_net = sn::sequential<
    sn::input<8, 8, 2>, conv3<4>, sn::batch_norm<>, sn::relu,                                                      // 1-3
    sn::concat<sn::branch<conv1<3>>, sn::branch<conv3<5>, sn::batch_norm<>, sn::relu>,
               sn::branch<sn::max_pool2d<3, 1, sn::padding::same>, conv1<2>>>,
    sn::relu,                                                                                                      // 4-5
    sn::concat<sn::branch<>, sn::branch<sn::batch_norm<>, sn::relu, conv3<4>>>,                                    // 6
    sn::concat<sn::branch<sn::residual<conv3<14>, sn::batch_norm<>>, sn::relu>, sn::branch<>>,                     // 7
    sn::residual<sn::concat<sn::branch<conv1<8>>, sn::branch<conv3<20>>>, sn::batch_norm<>>, sn::relu,            // 8-9
    sn::global_average_pool2d,                                                                                     // 10
    sn::concat<sn::branch<sn::dense<4, sn::tanh>>, sn::branch<sn::dense<3>>>, sn::dense<3, sn::softmax>>;          // 11-12

template <typename Net>
void randomize(Net& net, std::uint64_t seed) {
    sn::rng g(seed);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((std::ranges::for_each(net.template layer_parameters<I>(), [&](float& v) { v = g.uniform() - 0.5f; }),
          std::ranges::for_each(net.template layer_state<I>(), [&](float& v) { v = g.uniform() + 0.25f; })),
         ...);
    }(std::make_index_sequence<Net::layer_count>{});
}

template <typename Net>
std::vector<float> contents(const Net& net) {
    std::vector<float> v(net.parameters().begin(), net.parameters().end());
    v.insert(v.end(), net.state().begin(), net.state().end());
    return v;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void write_model(const sn::onnx::model& m, const std::filesystem::path& file) {
    const auto bytes = sn::onnx::encode(m);
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("concat blocks go out to ONNX as Concat (axis 1) and come back bit for bit", "[concat][onnx]") {
    temp_dir dir;
    onnx_net a, b;
    randomize(a, 5);
    b.initialize(6);
    const auto m = sn::to_onnx_model(a);
    std::size_t concats = 0;
    for (const auto& n : m.nodes)
        if (n.op_type == "Concat") {
            ++concats;
            CHECK(n.find("axis")->i == 1);
        }
    CHECK(concats == 5);

    SECTION("in the order save_onnx writes") {
        sn::save_onnx(a, dir.path / "c.onnx");
        sn::load_onnx_weights(b, dir.path / "c.onnx");
        CHECK(bitwise_equal(contents(a), contents(b)));
    }
    SECTION("with the nodes in reverse order: the branches are found by the graph") {
        auto reversed = m;
        std::reverse(reversed.nodes.begin(), reversed.nodes.end());
        write_model(reversed, dir.path / "r.onnx");
        sn::load_onnx_weights(b, dir.path / "r.onnx");
        CHECK(bitwise_equal(contents(a), contents(b)));
    }
    SECTION("branches declared in another order than the file's Concat inputs are refused, nothing loaded") {
        using swapped = sn::sequential<
            sn::input<8, 8, 2>, conv3<4>, sn::batch_norm<>, sn::relu,
            sn::concat<sn::branch<conv3<5>, sn::batch_norm<>, sn::relu>, sn::branch<conv1<3>>,
                       sn::branch<sn::max_pool2d<3, 1, sn::padding::same>, conv1<2>>>,
            sn::relu, sn::concat<sn::branch<>, sn::branch<sn::batch_norm<>, sn::relu, conv3<4>>>,
            sn::concat<sn::branch<sn::residual<conv3<14>, sn::batch_norm<>>, sn::relu>, sn::branch<>>,
            sn::residual<sn::concat<sn::branch<conv1<8>>, sn::branch<conv3<20>>>, sn::batch_norm<>>, sn::relu,
            sn::global_average_pool2d, sn::concat<sn::branch<sn::dense<4, sn::tanh>>, sn::branch<sn::dense<3>>>,
            sn::dense<3, sn::softmax>>;
        sn::save_onnx(a, dir.path / "c.onnx");
        swapped s;
        s.initialize(7);
        const auto before = contents(s);
        CHECK_THROWS_WITH(sn::load_onnx_weights(s, dir.path / "c.onnx"), Catch::Contains("layer 4 (concat)"));
        CHECK(bitwise_equal(before, contents(s)));
        // The identity on the other side of a DenseNet block: its Concat reads the input second.
        using identity_last = sn::sequential<
            sn::input<8, 8, 2>, conv3<4>, sn::batch_norm<>, sn::relu,
            sn::concat<sn::branch<conv1<3>>, sn::branch<conv3<5>, sn::batch_norm<>, sn::relu>,
                       sn::branch<sn::max_pool2d<3, 1, sn::padding::same>, conv1<2>>>,
            sn::relu, sn::concat<sn::branch<sn::batch_norm<>, sn::relu, conv3<4>>, sn::branch<>>,
            sn::concat<sn::branch<sn::residual<conv3<14>, sn::batch_norm<>>, sn::relu>, sn::branch<>>,
            sn::residual<sn::concat<sn::branch<conv1<8>>, sn::branch<conv3<20>>>, sn::batch_norm<>>, sn::relu,
            sn::global_average_pool2d, sn::concat<sn::branch<sn::dense<4, sn::tanh>>, sn::branch<sn::dense<3>>>,
            sn::dense<3, sn::softmax>>;
        identity_last l;
        CHECK_THROWS_WITH(sn::load_onnx_weights(l, dir.path / "c.onnx"),
                          Catch::Contains("layer 6 (concat)") && Catch::Contains("should be input 0"));
    }
}

namespace {

// tests/onnx/make_torch_resnets.py's Inception module and DenseNet layer, as PyTorch wrote them.
using torch_bn = sn::batch_norm<0.9f, 1e-5f>;
template <std::size_t Filters>
using torch_conv1 = sn::conv2d<Filters, 1, sn::identity, 1, sn::padding::valid, sn::bias::none>;
template <std::size_t Filters>
using torch_conv3 = sn::conv2d<Filters, 3, sn::identity, 1, sn::padding::symmetric<1>, sn::bias::none>;
using torch_inception = sn::sequential<
    sn::input<8, 8, 3>, torch_conv3<8>, torch_bn, sn::relu,
    sn::concat<sn::branch<torch_conv1<4>, torch_bn, sn::relu>,
               sn::branch<torch_conv1<4>, torch_bn, sn::relu, torch_conv3<6>, torch_bn, sn::relu>,
               sn::branch<sn::max_pool2d<3, 1, sn::padding::symmetric<1>>, sn::conv2d<4, 1>>>,
    sn::concat<sn::branch<>, sn::branch<torch_bn, sn::relu, torch_conv3<6>>>,
    sn::global_average_pool2d, sn::dense<5, sn::softmax>>;

}  // namespace

TEST_CASE("PyTorch's Inception module and DenseNet layer import and compute what PyTorch does", "[concat][onnx][pytorch]") {
    const std::filesystem::path fixtures = STATICNET_ONNX_FIXTURES;
    const std::string text = sn::testing::file_text(fixtures / "inception.json");
    const auto inputs = sn::testing::json_numbers(text, "inputs_nhwc");
    const auto expected = sn::testing::json_numbers(text, "outputs");
    constexpr std::size_t n = 2;
    REQUIRE(inputs.size() == n * torch_inception::input_shape.size());
    REQUIRE(expected.size() == n * torch_inception::output_shape.size());
    torch_inception net;
    net.initialize(1);
    // The file lists the pooled branch first (its forward runs it first): the Concat's order decides.
    sn::load_onnx_weights(net, fixtures / "inception.onnx");
    sn::thread_pool pool(1);
    net.prepare(n);
    const float* out = net.forward(inputs.data(), {.batch = n, .training = false, .pool = &pool});
    float difference = 0.0f;
    for (std::size_t i = 0; i < expected.size(); ++i) difference = std::max(difference, std::abs(out[i] - expected[i]));
    INFO("max abs difference to PyTorch " << difference);
    CHECK(difference < 1e-5f);
}
