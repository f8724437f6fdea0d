#pragma once
// Helpers to run one bound layer outside a model, and to check its backward pass against
// central finite differences of the scalar loss L = sum(out * weights).

#include <staticnet/core/aligned_buffer.hpp>
#include <staticnet/core/random.hpp>
#include <staticnet/core/thread_pool.hpp>
#include <staticnet/layers/layer.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace harness {

namespace sn = staticnet;

template <typename L>
struct runner {
    std::size_t batch;
    sn::thread_pool pool{2};
    L layer{};
    sn::aligned_buffer<float> in, out, params, dparams, state, cache, scratch, dout, din;
    std::uint64_t step_seed = 1234;

    explicit runner(std::size_t b)
        : batch(b), in(b * L::input_shape.size()), out(b * L::output_shape.size()),
          params(std::max<std::size_t>(1, L::parameter_count)), dparams(std::max<std::size_t>(1, L::parameter_count)),
          state(std::max<std::size_t>(1, L::state_count)), cache(std::max<std::size_t>(1, L::cache_floats(b))),
          scratch(std::max<std::size_t>(1, L::scratch_floats(b))), dout(b * L::output_shape.size()),
          din(b * L::input_shape.size()) {}

    sn::layer_context context(bool training) {
        return {.batch = batch, .training = training, .pool = &pool, .scratch = scratch.data(), .step_seed = step_seed};
    }
    void forward(bool training = true) {
        layer.forward(context(training), in.data(), out.data(), params.data(), state.data(), cache.data());
    }
    void backward() {
        dparams.fill_zero();
        layer.backward(context(true), in.data(), out.data(), dout.data(), din.data(), params.data(), dparams.data(),
                       cache.data());
    }
};

inline void fill_uniform(sn::aligned_buffer<float>& b, sn::rng& g, float lo = -1.0f, float hi = 1.0f) {
    for (auto& x : b) x = g.uniform(lo, hi);
}

/// Checks d(sum(out * w))/d(in) and /d(params) against central differences.
/// `input_filter` may nudge inputs away from kinks (relu at 0, ties in max pooling).
template <typename L>
void check_gradients(std::size_t batch, std::uint64_t seed, float eps = 1e-2f, double tolerance = 2e-2,
                     std::function<void(runner<L>&, sn::rng&)> prepare = {}) {
    runner<L> r(batch);
    sn::rng g(seed);
    fill_uniform(r.in, g);
    if constexpr (L::parameter_count > 0) {
        sn::rng init(seed + 1);
        r.layer.initialize(std::span<float>(r.params.data(), L::parameter_count),
                           std::span<float>(r.state.data(), L::state_count), init);
        // Random biases and scales too, so every parameter has a visible effect.
        for (std::size_t i = 0; i < L::parameter_count; ++i) r.params[i] += g.uniform(-0.3f, 0.3f);
    }
    if (prepare) prepare(r, g);
    std::vector<float> weights(r.out.size());
    for (auto& w : weights) w = g.uniform(-1.0f, 1.0f);

    auto loss = [&] {
        r.forward(true);
        double total = 0;
        for (std::size_t i = 0; i < r.out.size(); ++i) total += static_cast<double>(r.out[i]) * weights[i];
        return total;
    };
    loss();
    std::copy(weights.begin(), weights.end(), r.dout.begin());
    r.backward();
    const std::vector<float> din(r.din.begin(), r.din.end());
    const std::vector<float> dparams(r.dparams.begin(), r.dparams.begin() + L::parameter_count);

    auto numeric = [&](float& x) {
        const float saved = x;
        x = saved + eps;
        const double up = loss();
        x = saved - eps;
        const double down = loss();
        x = saved;
        return (up - down) / (2.0 * static_cast<double>(eps));
    };
    auto compare = [&](const char* what, std::size_t i, double analytic, double fd) {
        INFO(L::name << ": d(loss)/d(" << what << "[" << i << "]) analytic " << analytic << " numeric " << fd);
        REQUIRE(std::abs(analytic - fd) <= tolerance * (1.0 + std::abs(fd)));
    };
    // Every element for small layers, an even sample of at most 300 for big ones.
    const std::size_t in_step = std::max<std::size_t>(1, r.in.size() / 300);
    for (std::size_t i = 0; i < r.in.size(); i += in_step) compare("input", i, din[i], numeric(r.in[i]));
    const std::size_t p_step = std::max<std::size_t>(1, L::parameter_count / 300);
    for (std::size_t i = 0; i < L::parameter_count; i += p_step) compare("param", i, dparams[i], numeric(r.params[i]));
}

}  // namespace harness
