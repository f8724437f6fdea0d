// bench_resnet: training throughput of the ResNet-style network of examples/resnet_cnn.hpp.
//
//   bench_resnet [--threads T] [--batch B] [--steps N] [--reps R]
//
// Prints one JSON line: images/s of full training steps (forward, loss, backward, Adam) on
// batches already in memory, the median over R blocks of N steps after a warm-up. The
// PyTorch side is benchmarks/pytorch_resnet.py; benchmarks/compare_pytorch_resnet.sh runs
// both alternately.
#include <staticnet/staticnet.hpp>

#include "resnet_cnn.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace sn = staticnet;

int main(int argc, char** argv) {
    std::size_t threads = 1, batch = 64, steps = 30, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view a = argv[i];
        const std::size_t v = std::strtoull(argv[i + 1], nullptr, 10);
        if (a == "--threads") threads = v;
        else if (a == "--batch") batch = v;
        else if (a == "--steps") steps = v;
        else if (a == "--reps") reps = v;
        else {
            std::fprintf(stderr, "bench_resnet: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    sn::model<resnet_cnn, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.threads = threads, .seed = 1});
    constexpr std::size_t pool = 8;  // distinct batches, as the PyTorch side
    std::vector<float> images(pool * batch * resnet_cnn::input_shape.size());
    std::vector<std::int32_t> labels(pool * batch);
    sn::rng g(3);
    for (auto& x : images) x = g.uniform();
    for (auto& l : labels) l = static_cast<std::int32_t>(g.below(10));
    std::size_t step = 0;
    auto run = [&](std::size_t n) {
        for (std::size_t s = 0; s < n; ++s, ++step) {
            const std::size_t k = step % pool;
            m.train_step(images.data() + k * batch * resnet_cnn::input_shape.size(), {nullptr, labels.data() + k * batch},
                         batch, batch, 0, step);
        }
    };
    run(10);  // warm-up: workspace, page faults, thread start
    std::vector<double> rates;
    for (std::size_t r = 0; r < reps; ++r) {
        const auto start = std::chrono::steady_clock::now();
        run(steps);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        rates.push_back(static_cast<double>(steps * batch) / seconds);
    }
    std::vector<double> sorted = rates;
    std::sort(sorted.begin(), sorted.end());
    std::string all;
    for (double r : rates) all += (all.empty() ? "" : ",") + std::to_string(static_cast<long>(r));
    std::printf("{\"bench\":\"train\",\"model\":\"resnet_cnn\",\"framework\":\"staticnet\",\"threads\":%zu,\"batch\":%zu,"
                "\"images_per_s\":%.1f,\"images_per_s_reps\":[%s],\"simd\":\"%s\"}\n",
                m.thread_count(), batch, sorted[sorted.size() / 2], all.c_str(), sn::simd::arch_name());
    return 0;
}
