#pragma once
/// @file
/// `check_gradients`: tests a layer's backward pass against finite differences, in one call.
///
/// Write a layer, then check it before training with it:
///
/// @code
/// auto result = staticnet::check_gradients<prelu<>, staticnet::shape{3, 3, 4}>({.batch = 2});
/// if (!result) std::cerr << result.message << '\n';
/// @endcode
///
/// The check draws a random input and random parameters (the layer's `initialize`, then a
/// random offset, so every parameter has a visible effect), and compares backward's
/// gradients of the scalar loss `L = sum(output * w)`, for random weights `w`, with central
/// differences `(L(x + h) - L(x - h)) / 2h` of every input and parameter (or an evenly
/// spaced sample of them for large layers). It also checks the two other promises of the
/// contract in layer.hpp: backward *adds* to the parameter gradients (two backward passes
/// give twice the gradients), and a null input gradient (the first layer of a network)
/// gives the same parameter gradients.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "../core/aligned_buffer.hpp"
#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "../core/thread_pool.hpp"
#include "layer.hpp"

namespace staticnet {

/// How `check_gradients` probes a layer.
struct gradient_check_options {
    std::size_t batch = 2;     ///< samples in the random batch
    std::uint64_t seed = 1;    ///< seed of the input, parameters and loss weights
    float step = 1e-2f;        ///< h of the central differences
    /// A gradient passes when |analytic - numeric| <= tolerance * (1 + |numeric|): float
    /// forward passes and a step of 1e-2 leave errors of about 1e-3.
    double tolerance = 2e-2;
    std::size_t samples = 300;  ///< at most this many entries of the input and of the parameters are compared
    std::size_t threads = 2;    ///< threads of the pool the layer runs on
    /// Called after the random input and parameters are drawn, before anything runs: move
    /// inputs away from kinks (relu at 0, ties in a max pooling window), where finite
    /// differences do not measure the derivative.
    std::function<void(std::span<float> input, std::span<float> parameters, rng& g)> prepare = {};
};

/// What `check_gradients` found.
struct gradient_check_result {
    bool passed = true;
    double worst_error = 0;  ///< largest |analytic - numeric| / (1 + |numeric|) over the entries compared
    std::size_t compared = 0;
    std::string message;  ///< the first failure: layer, buffer, index and both values; empty when passed
    explicit operator bool() const noexcept { return passed; }
};

/// Checks the bound layer `L` (a type satisfying `layer`).
template <layer L>
gradient_check_result check_gradients(const gradient_check_options& options = {});

/// Checks the layer that `Spec` becomes on inputs of shape `In`, e.g. `check_gradients<dense<4>, shape{9}>()`.
template <layer_spec Spec, shape In>
gradient_check_result check_gradients(const gradient_check_options& options = {}) {
    return check_gradients<typename Spec::template bind<In, 1>>(options);
}

namespace detail {

/// One bound layer with memory of its own, outside a model: what the gradient check and the
/// layer tests run.
template <layer L>
struct layer_runner {
    std::size_t batch;
    thread_pool pool;
    L layer{};
    // Never empty, so that data() is a valid pointer for layers with nothing of a kind.
    aligned_buffer<float> input, output, parameters, parameter_gradients, state, cache, scratch, output_gradient,
        input_gradient;
    std::uint64_t step_seed = 1234;
    /// The part of the output the next layer would read (`layer_context::output_rows_read`).
    std::size_t output_rows_read = 0, output_columns_read = 0;

    explicit layer_runner(std::size_t batch_size, std::size_t threads = 2)
        : batch(batch_size), pool(threads), input(batch_size * L::input_shape.size()),
          output(batch_size * L::output_shape.size()), parameters(at_least_one(L::parameter_count)),
          parameter_gradients(at_least_one(L::parameter_count)), state(at_least_one(L::state_count)),
          cache(at_least_one(L::cache_floats(batch_size))), scratch(at_least_one(L::scratch_floats(batch_size))),
          output_gradient(batch_size * L::output_shape.size()), input_gradient(batch_size * L::input_shape.size()) {}

    layer_context context(bool training) {
        return {.batch = batch, .training = training, .pool = &pool, .scratch = scratch.data(), .step_seed = step_seed,
                .output_rows_read = output_rows_read, .output_columns_read = output_columns_read};
    }
    std::span<float> parameter_span() noexcept { return {parameters.data(), L::parameter_count}; }
    std::span<float> parameter_gradient_span() noexcept { return {parameter_gradients.data(), L::parameter_count}; }
    std::span<float> state_span() noexcept { return {state.data(), L::state_count}; }

    void forward(bool training = true) {
        layer.forward(context(training), forward_buffers{.input = buffer<role::input, const float>(input.data()),
                                                         .output = buffer<role::output, float>(output.data()),
                                                         .parameters = buffer<role::parameters, const float>(parameters.data()),
                                                         .state = buffer<role::state, float>(state.data()),
                                                         .cache = buffer<role::cache, float>(cache.data())});
    }
    /// Adds to `parameter_gradients` (zero them first for one batch's gradients).
    void backward(bool with_input_gradient = true) {
        layer.backward(context(true),
                       backward_buffers{
                           .input = buffer<role::input, const float>(input.data()),
                           .output = buffer<role::output, const float>(output.data()),
                           .output_gradient = buffer<role::output_gradient, float>(output_gradient.data()),
                           .input_gradient = buffer<role::input_gradient, float>(with_input_gradient ? input_gradient.data() : nullptr),
                           .parameters = buffer<role::parameters, const float>(parameters.data()),
                           .parameter_gradients = buffer<role::parameter_gradients, float>(parameter_gradients.data()),
                           .cache = buffer<role::cache, float>(cache.data())});
    }

private:
    static constexpr std::size_t at_least_one(std::size_t n) noexcept { return n == 0 ? 1 : n; }
};

}  // namespace detail

// ---------------------------------------------------------------- implementation

template <layer L>
gradient_check_result check_gradients(const gradient_check_options& options) {
    detail::layer_runner<L> r(options.batch, options.threads);
    rng g(options.seed);
    for (auto& x : r.input) x = g.uniform(-1.0f, 1.0f);
    rng init(options.seed + 1);
    r.layer.initialize(r.parameter_span(), r.state_span(), init);  // state too, as in a model
    for (float& p : r.parameter_span()) p += g.uniform(-0.3f, 0.3f);
    if (options.prepare) options.prepare(std::span<float>(r.input.data(), r.input.size()), r.parameter_span(), g);
    std::vector<float> weights(r.output.size());
    for (auto& w : weights) w = g.uniform(-1.0f, 1.0f);

    auto loss = [&] {
        r.forward(true);
        double total = 0;
        for (std::size_t i = 0; i < r.output.size(); ++i) total += static_cast<double>(r.output[i]) * weights[i];
        return total;
    };
    // Backward may overwrite the output gradient: set it before every pass. The input
    // gradient starts as NaN, so a layer that adds to it, or leaves part of it unwritten
    // (in a model the buffer holds another layer's gradients), fails the comparison.
    auto backward = [&](bool with_input_gradient) {
        std::copy(weights.begin(), weights.end(), r.output_gradient.begin());
        std::fill(r.input_gradient.begin(), r.input_gradient.end(), std::numeric_limits<float>::quiet_NaN());
        r.backward(with_input_gradient);
    };
    loss();
    r.parameter_gradients.fill_zero();
    backward(true);
    const std::vector<float> input_gradient(r.input_gradient.begin(), r.input_gradient.end());
    const std::vector<float> parameter_gradients(r.parameter_gradient_span().begin(), r.parameter_gradient_span().end());

    gradient_check_result result;
    auto fail = [&](const std::string& what) {
        if (result.passed) result.message = std::string(L::name) + ": " + what;
        result.passed = false;
    };
    auto compare = [&](const char* buffer_name, std::size_t i, double analytic, double numeric) {
        const double error = std::abs(analytic - numeric) / (1.0 + std::abs(numeric));
        result.worst_error = std::max(result.worst_error, error);
        ++result.compared;
        if (!(error <= options.tolerance)) {  // also fails on NaN
            std::ostringstream out;
            out << "d(loss)/d(" << buffer_name << "[" << i << "]) is " << analytic << " by backward but " << numeric
                << " by finite differences (error " << error << " > tolerance " << options.tolerance << ")";
            fail(out.str());
        }
    };
    auto numeric = [&](float& x) {
        const float saved = x;
        x = saved + options.step;
        const double up = loss();
        x = saved - options.step;
        const double down = loss();
        x = saved;
        return (up - down) / (2.0 * static_cast<double>(options.step));
    };
    auto stride = [&](std::size_t n) {  // rounded up: at most `samples` entries
        const std::size_t samples = std::max<std::size_t>(1, options.samples);
        return std::max<std::size_t>(1, (n + samples - 1) / samples);
    };
    for (std::size_t i = 0; i < r.input.size(); i += stride(r.input.size()))
        compare("input", i, input_gradient[i], numeric(r.input[i]));
    for (std::size_t i = 0; i < L::parameter_count; i += stride(L::parameter_count))
        compare("parameters", i, parameter_gradients[i], numeric(r.parameters[i]));

    // The contract beyond the values: gradients accumulate, and the first layer's pass (no
    // input gradient) computes the same parameter gradients.
    if constexpr (L::parameter_count > 0) {
        auto differs = [](double expected, double got) {
            return !(std::abs(expected - got) <= 1e-4 * (1.0 + std::abs(expected)));
        };
        loss();
        backward(true);  // onto the gradients of the first pass
        for (std::size_t i = 0; i < L::parameter_count; ++i)
            if (differs(2.0 * parameter_gradients[i], r.parameter_gradients[i])) {
                fail("backward must add to the parameter gradients, but a second pass changed parameter " +
                     std::to_string(i) + " from " + std::to_string(parameter_gradients[i]) + " to " +
                     std::to_string(r.parameter_gradients[i]) + " instead of doubling it");
                break;
            }
        r.parameter_gradients.fill_zero();
        loss();
        backward(false);
        for (std::size_t i = 0; i < L::parameter_count; ++i)
            if (differs(parameter_gradients[i], r.parameter_gradients[i])) {
                fail("without an input gradient (first layer), parameter " + std::to_string(i) + "'s gradient is " +
                     std::to_string(r.parameter_gradients[i]) + " instead of " + std::to_string(parameter_gradients[i]));
                break;
            }
    }
    return result;
}

}  // namespace staticnet
