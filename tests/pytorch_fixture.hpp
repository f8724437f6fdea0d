#pragma once
// A network against PyTorch on identical weights: tests/fixtures/make_pytorch_fixtures.py runs
// a network in float64 and writes its input, parameters (in staticnet's layouts), output,
// gradients and moving statistics; `check_against_pytorch<Net>` loads the same into `Net`
// and requires the same results, with 1, 2 and 3 threads.
#include <staticnet/model/sequential.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace staticnet::testing {

// "name count" lines, each followed by a line of its values.
inline std::map<std::string, std::vector<double>> read_fixture(const std::string& path) {
    std::ifstream in(path);
    INFO(path);
    REQUIRE(in.good());
    std::map<std::string, std::vector<double>> arrays;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream header(line);
        std::string name;
        std::size_t count = 0;
        header >> name >> count;
        std::vector<double> values(count);
        for (auto& v : values) in >> v;
        std::getline(in, line);  // the end of the values' line
        arrays[name] = std::move(values);
    }
    return arrays;
}

// max |a - b| / max |b|: the error relative to the array's scale.
template <typename Range>
double relative_error(const Range& ours, const std::vector<double>& theirs) {
    double diff = 0, scale = 0;
    std::size_t i = 0;
    for (float v : ours) {
        REQUIRE(i < theirs.size());
        diff = std::max(diff, std::abs(static_cast<double>(v) - theirs[i]));
        scale = std::max(scale, std::abs(theirs[i]));
        ++i;
    }
    REQUIRE(i == theirs.size());
    return scale == 0 ? diff : diff / scale;
}

// A training pass (forward, the output gradient the fixture's `weights`, backward) and an
// inference pass of `Net` on the fixture at `path`, each result within `tolerance` of PyTorch's.
template <typename Net>
void check_against_pytorch(const std::string& path, std::size_t batch, double tolerance = 1e-4) {
    const auto fixture = read_fixture(path);
    constexpr std::size_t outputs = Net::output_shape.size();
    Net net;
    auto load_parameters = [&]<std::size_t... I>(std::index_sequence<I...>) {
        auto load = [&]<std::size_t K>() {
            const auto& values = fixture.at("parameters_" + std::to_string(K + 1));
            INFO("layer " << K + 1);
            REQUIRE(values.size() == Net::template layer_type<K>::parameter_count);
            std::copy(values.begin(), values.end(), net.template layer_parameters<K>().begin());
        };
        (load.template operator()<I>(), ...);
    };
    for (std::size_t threads : {1, 2, 3}) {
        INFO("threads: " << threads);
        net.initialize(1);  // the moving statistics
        load_parameters(std::make_index_sequence<Net::layer_count>{});
        std::vector<float> input(fixture.at("input").begin(), fixture.at("input").end());
        REQUIRE(input.size() == batch * Net::input_shape.size());
        thread_pool pool(threads);
        net.prepare(batch);
        std::fill(net.gradients().begin(), net.gradients().end(), 0.0f);
        const layer_context ctx{.batch = batch, .training = true, .pool = &pool};
        const float* out = net.forward(input.data(), ctx);
        CHECK(relative_error(std::span<const float>(out, batch * outputs), fixture.at("output")) < tolerance);
        const auto& weights = fixture.at("weights");
        std::copy(weights.begin(), weights.end(), net.output_gradient(batch));
        std::vector<float> input_gradient(input.size());
        net.backward(input.data(), ctx, input_gradient.data());
        CHECK(relative_error(input_gradient, fixture.at("input_gradient")) < tolerance);
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            auto check_layer = [&]<std::size_t K>() {
                INFO("layer " << K + 1);
                if constexpr (Net::template layer_type<K>::parameter_count > 0)
                    CHECK(relative_error(net.template layer_gradients<K>(),
                                         fixture.at("parameter_gradients_" + std::to_string(K + 1))) < tolerance);
                if constexpr (Net::template layer_type<K>::state_count > 0)
                    CHECK(relative_error(net.template layer_state<K>(), fixture.at("state_after_" + std::to_string(K + 1))) <
                          tolerance);
            };
            (check_layer.template operator()<I>(), ...);
        }(std::make_index_sequence<Net::layer_count>{});
        // Inference with the moving statistics that training pass left.
        const float* inference = net.forward(input.data(), {.batch = batch, .training = false, .pool = &pool});
        CHECK(relative_error(std::span<const float>(inference, batch * outputs), fixture.at("output_inference")) <
              tolerance);
    }
}

}  // namespace staticnet::testing
