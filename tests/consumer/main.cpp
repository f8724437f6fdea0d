// A downstream program: trains a tiny CNN on synthetic data and checks that the loss went
// down. Exit status 0 when it did, 1 otherwise (the consumer test of tests/consumer/run.sh).
#include <staticnet/staticnet.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>

namespace sn = staticnet;

using net = sn::sequential<sn::input<4, 4, 1>, sn::conv2d<2, 3, sn::relu>, sn::flatten, sn::dense<2, sn::softmax>>;

/// Class 1 when the left half of the image is brighter than the right half.
sn::data::dataset make_data(std::size_t n) {
    sn::data::dataset d;
    d.images = xt::zeros<float>({n, std::size_t{4}, std::size_t{4}, std::size_t{1}});
    d.labels = xt::zeros<std::int32_t>({n});
    d.num_classes = 2;
    std::uint32_t state = 12345;
    auto next = [&] {  // a small LCG: the same data on every platform
        state = state * 1664525u + 1013904223u;
        return static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
    };
    for (std::size_t i = 0; i < n; ++i) {
        const bool left = i % 2 == 0;
        for (std::size_t y = 0; y < 4; ++y)
            for (std::size_t x = 0; x < 4; ++x)
                d.images(i, y, x, 0) = 0.2f * next() + ((x < 2) == left ? 0.8f : 0.0f);
        d.labels(i) = left ? 1 : 0;
    }
    return d;
}

int main() {
#if STATICNET_CONSUMER_EXPECT_FULL_WIDTH
    std::printf("consumer: SIMD %s, CPU %s\n", sn::simd::arch_name(), sn::simd::cpu_arch_name());
    if (sn::simd::narrower_than_cpu()) {
        std::printf("consumer: FAILED, staticnet::native built for %s on a CPU with %s\n", sn::simd::arch_name(),
                    sn::simd::cpu_arch_name());
        return 1;
    }
#endif
    try {
        const sn::data::dataset data = make_data(32);
        sn::model<net, sn::adam, sn::sparse_categorical_crossentropy> m{{.learning_rate = 0.02f}, {.threads = 1, .seed = 7}};
        const double before = m.evaluate(data).loss;
        const sn::history h = m.fit(data, {.epochs = 2, .batch_size = 4, .seed = 3, .verbose = false});
        const double after = m.evaluate(data).loss;
        std::printf("consumer: loss %.4f before training, %.4f after 2 epochs (epoch losses %.4f, %.4f)\n", before,
                    after, h.epochs.at(0).loss, h.epochs.at(1).loss);
        if (h.size() != 2 || !(after < before)) {
            std::printf("consumer: FAILED, the loss did not go down\n");
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::printf("consumer: FAILED with an exception: %s\n", e.what());
        return 1;
    }
}
