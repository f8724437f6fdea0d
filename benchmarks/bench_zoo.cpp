// bench_zoo: training throughput of a network of the model zoo (benchmarks/zoo/).
//
//   bench_zoo --network KEY [--threads T] [--batch B] [--steps N] [--reps R]
//   bench_zoo --parameters          (each network's parameter count, one JSON line each)
//
// Prints one JSON line: images/s of full training steps (forward, loss, backward, Adam) on
// batches already in memory, the median over R blocks of N steps after a warm-up, and the
// peak resident memory of the process. The PyTorch side is benchmarks/pytorch_zoo.py;
// benchmarks/compare_pytorch_zoo.sh runs both alternately.
#include <staticnet/staticnet.hpp>

#include "zoo/zoo.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sn = staticnet;

namespace {

struct settings {
    std::size_t threads = 1, batch = 0, steps = 10, reps = 5;
};

long peak_rss_kb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

template <typename Net>
void run(std::string_view key, std::size_t batch, const settings& s) {
    using model_type = sn::model<Net, sn::adam, sn::sparse_categorical_crossentropy>;
    auto m = std::make_unique<model_type>(typename sn::adam::options{}, sn::model_settings{.threads = s.threads, .seed = 1});
    constexpr std::size_t sample = Net::input_shape.size(), classes = Net::output_shape.size();
    constexpr std::size_t pool = 8;  // distinct batches, as the PyTorch side
    std::vector<float> images(pool * batch * sample);
    std::vector<std::int32_t> labels(pool * batch);
    sn::rng g(3);
    for (auto& x : images) x = g.uniform();
    for (auto& l : labels) l = static_cast<std::int32_t>(g.below(classes));
    std::size_t step = 0;
    auto steps = [&](std::size_t n) {
        for (std::size_t i = 0; i < n; ++i, ++step) {
            const std::size_t k = step % pool;
            m->train_step(images.data() + k * batch * sample, {nullptr, labels.data() + k * batch}, batch, batch, 0, step);
        }
    };
    steps(3);  // warm-up: workspace, page faults, thread start
    std::vector<double> rates;
    for (std::size_t r = 0; r < s.reps; ++r) {
        const auto start = std::chrono::steady_clock::now();
        steps(s.steps);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        rates.push_back(static_cast<double>(s.steps * batch) / seconds);
    }
    std::vector<double> sorted = rates;
    std::sort(sorted.begin(), sorted.end());
    std::string all;
    for (double r : rates) all += (all.empty() ? "" : ",") + std::to_string(r).substr(0, std::to_string(r).find('.') + 2);
    std::printf("{\"bench\":\"zoo\",\"network\":\"%.*s\",\"framework\":\"staticnet\",\"threads\":%zu,\"batch\":%zu,"
                "\"images_per_s\":%.2f,\"images_per_s_reps\":[%s],\"rss_kb\":%ld,\"parameters\":%zu,\"simd\":\"%s\"}\n",
                static_cast<int>(key.size()), key.data(), m->thread_count(), batch, sorted[sorted.size() / 2], all.c_str(),
                peak_rss_kb(), Net::trainable_parameter_count, sn::simd::arch_name());
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    std::string network;
    bool parameters = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--parameters") {
            parameters = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "bench_zoo: %s needs a value\n", argv[i]);
            return 2;
        }
        const char* value = argv[++i];
        if (a == "--network") network = value;
        else if (a == "--threads") s.threads = std::strtoull(value, nullptr, 10);
        else if (a == "--batch") s.batch = std::strtoull(value, nullptr, 10);
        else if (a == "--steps") s.steps = std::strtoull(value, nullptr, 10);
        else if (a == "--reps") s.reps = std::strtoull(value, nullptr, 10);
        else {
            std::fprintf(stderr, "bench_zoo: unknown option %s\n", argv[i - 1]);
            return 2;
        }
    }
    bool found = false;
    zoo::for_each_network([&]<typename Net>(const zoo::network<Net>& n) {
        if (parameters) {
            std::printf("{\"network\":\"%.*s\",\"parameters\":%zu}\n", static_cast<int>(n.key.size()), n.key.data(),
                        Net::trainable_parameter_count);
        } else if (n.key == network) {
            found = true;
            run<Net>(n.key, s.batch != 0 ? s.batch : n.batch, s);
        }
    });
    if (!parameters && !found) {
        std::fprintf(stderr, "bench_zoo: no network '%s' (reference_cnn, resnet_example, resnet18, resnet20, vgg11_bn, mobilenet)\n",
                     network.c_str());
        return 2;
    }
    return 0;
}
