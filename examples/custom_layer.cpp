// A layer written outside the library: PReLU, a leaky ReLU whose slope for negative inputs
// is learned, one slope per channel (He et al., 2015; Keras's PReLU shared over height and
// width).
//
//   custom_layer      checks the layer's gradients against finite differences, then trains a
//                     small CNN with it on a synthetic problem; exits 1 if either fails
//
// A layer comes in two parts (include/staticnet/layers/layer.hpp, docs/layers.md):
//  - the *spec*, what users write in `sequential<...>` (here `prelu<25>`): hyper-parameters
//    only, and a member template `bind<InputShape, Position>` naming the bound layer;
//  - the *bound layer*: every size a compile-time constant, and initialize / forward /
//    backward working on buffers the model hands it (`forward_buffers`, `backward_buffers`:
//    input, output, parameters, their gradients, state, cache; each role is its own type).
// `sequential` checks the bound layer against the `staticnet::layer` concept, and
// `staticnet::check_gradients` checks its backward pass against finite differences.
#include <staticnet/staticnet.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <span>
#include <string_view>
#include <vector>

namespace sn = staticnet;

// ------------------------------------------------------------------ the layer

/// The bound layer: y = x for x > 0, alpha_c * x otherwise, for each channel c.
/// `layer_defaults` supplies what a layer without state, cache or scratch needs.
template <sn::shape In, int InitialAlphaPercent>
class prelu_layer : public sn::layer_defaults {
    static constexpr std::size_t channels = In.channels();  // the innermost dimension (NHWC)
    static constexpr std::size_t rows_per_sample = In.size() / channels;

public:
    static constexpr std::string_view name = "prelu";  // shown by summary()
    static constexpr sn::shape input_shape = In;
    static constexpr sn::shape output_shape = In;
    static constexpr std::size_t parameter_count = channels;  // alpha, one per channel
    static constexpr std::size_t flops_per_sample = 2 * In.size();
    // No cache: backward reads the layer's input, which the model keeps anyway.

    void initialize(std::span<float> alpha, std::span<float>, sn::rng&) const noexcept {
        std::fill(alpha.begin(), alpha.end(), static_cast<float>(InitialAlphaPercent) / 100.0f);
    }

    void forward(const sn::layer_context& ctx, const sn::forward_buffers& b) const {
        const float* alpha = b.parameters;
        for (std::size_t r = 0; r < ctx.batch * rows_per_sample; ++r)
            for (std::size_t c = 0; c < channels; ++c) {
                const float x = b.input[r * channels + c];
                b.output[r * channels + c] = x > 0.0f ? x : alpha[c] * x;
            }
    }

    // dL/dx = dL/dy * (x > 0 ? 1 : alpha);  dL/dalpha_c = sum of dL/dy * x over the x <= 0 of
    // channel c. Parameter gradients are *added* (micro-batches accumulate); the input
    // gradient is null for the first layer of a network. One thread sums in a fixed order, so
    // results do not depend on the thread count (a parallel version would split rows, not the sums).
    void backward(const sn::layer_context& ctx, const sn::backward_buffers& b) const {
        const float* in = b.input;
        const float* dout = b.output_gradient;
        float* din = b.input_gradient;
        const float* alpha = b.parameters;
        std::array<double, channels> sums{};
        for (std::size_t r = 0; r < ctx.batch * rows_per_sample; ++r)
            for (std::size_t c = 0; c < channels; ++c) {
                const std::size_t i = r * channels + c;
                const bool positive = in[i] > 0.0f;
                if (!positive) sums[c] += static_cast<double>(dout[i]) * in[i];
                if (din != nullptr) din[i] = positive ? dout[i] : alpha[c] * dout[i];
            }
        for (std::size_t c = 0; c < channels; ++c) b.parameter_gradients[c] += static_cast<float>(sums[c]);
    }
};

/// The spec: `prelu<25>` starts every slope at 0.25 (an integer percent: portable template argument).
template <int InitialAlphaPercent = 25>
struct prelu {
    static_assert(InitialAlphaPercent >= 0 && InitialAlphaPercent <= 100, "prelu: the initial slope is a percent");
    template <sn::shape In, std::size_t Position>
    using bind = prelu_layer<In, InitialAlphaPercent>;
};

static_assert(sn::layer_spec<prelu<>>);
static_assert(sn::layer<prelu<>::bind<sn::shape{4, 4, 3}, 1>>);

// ------------------------------------------------------------------ training

/// Three kinds of 8x8 images: a bright top-left square, a bright bottom-right square, or a
/// bright horizontal bar; plus noise.
sn::data::dataset make_data(std::size_t n, std::uint64_t seed) {
    sn::data::dataset d;
    d.images = xt::zeros<float>({n, std::size_t{8}, std::size_t{8}, std::size_t{1}});
    d.labels = xt::zeros<std::int32_t>({n});
    d.num_classes = 3;
    sn::rng g(seed);
    for (std::size_t i = 0; i < n; ++i) {
        const auto label = static_cast<int>(g.below(3));
        d.labels(i) = label;
        for (std::size_t y = 0; y < 8; ++y)
            for (std::size_t x = 0; x < 8; ++x) {
                const bool lit = (label == 0 && y < 4 && x < 4) || (label == 1 && y >= 4 && x >= 4) ||
                                 (label == 2 && y >= 3 && y < 5);
                d.images(i, y, x, 0) = (lit ? 0.7f : 0.3f) + g.uniform(-0.3f, 0.3f);
            }
    }
    return d;
}

using net = sn::sequential<sn::input<8, 8, 1>,                     //
                           sn::conv2d<6, 3>, prelu<>,              // conv2d without activation, then ours
                           sn::max_pool2d<2>, sn::flatten,         //
                           sn::dense<3, sn::softmax>>;

int main() {
    // Inputs away from the kink at 0, where finite differences do not measure the derivative.
    const auto check = sn::check_gradients<prelu<>, sn::shape{3, 3, 4}>(
        {.batch = 2, .seed = 42, .tolerance = 1e-3, .prepare = [](std::span<float> input, std::span<float>, sn::rng& g) {
             for (auto& x : input) x = (g.uniform() < 0.5f ? -1.0f : 1.0f) * g.uniform(0.05f, 1.0f);
         }});
    std::printf("prelu gradient check: %zu gradients, largest relative error %.2e\n", check.compared, check.worst_error);
    if (!check) {
        std::printf("FAILED: %s\n", check.message.c_str());
        return 1;
    }

    auto train = make_data(600, 1), test = make_data(200, 2);
    // A tiny network: one thread is fastest.
    sn::model<net, sn::adam, sn::sparse_categorical_crossentropy> model({.learning_rate = 3e-3f}, {.threads = 1, .seed = 1});
    model.summary(std::cout);
    const auto h = model.fit(train, {.epochs = 8, .batch_size = 32, .seed = 1, .validation = &test, .verbose = false},
                             // on_epoch_end_callback(f) is lambda_callback{.on_epoch_end = f} in a spelling
                             // that clang < 17 also compiles.
                             sn::on_epoch_end_callback([](auto& m, const sn::epoch_log& e) {
                                 const auto alpha = m.network().template layer_parameters<1>();
                                 std::printf("epoch %zu: loss %.4f, accuracy %.3f, val_accuracy %.3f, alpha[0] %.3f\n",
                                             e.epoch, e.loss, e.accuracy, e.val_accuracy, static_cast<double>(alpha[0]));
                             }));
    const bool learned = h.back().loss < 0.5 * h.epochs.front().loss && h.back().val_accuracy > 0.9;
    std::printf(learned ? "the network with prelu learned\n" : "FAILED: the network with prelu did not learn\n");
    return learned ? 0 : 1;
}
