// The zoo's MobileNet (benchmarks/zoo/mobilenet.hpp) trains: 30 adamw steps on 16 fixed
// random images must more than halve the loss, in both thread layouts a run may take.
#include "zoo/mobilenet.hpp"

#include <cstdio>
#include <vector>

int main() {
    namespace sn = staticnet;
    constexpr std::size_t samples = 16, steps = 30;
    constexpr std::size_t pixels = zoo::mobilenet::input_shape.size();
    std::vector<float> images(samples * pixels);
    std::vector<std::int32_t> labels(samples);
    sn::rng g(7);
    for (auto& x : images) x = g.uniform(-1.0f, 1.0f);
    for (auto& y : labels) y = static_cast<std::int32_t>(g.below(10));
    bool ok = true;
    for (std::size_t threads : {1, 2}) {
        sn::model<zoo::mobilenet, sn::adamw, sn::sparse_categorical_crossentropy> m({.learning_rate = 3e-3f},
                                                                                    {.threads = threads, .seed = 1});
        double first = 0, last = 0;
        for (std::size_t step = 0; step < steps; ++step) {
            const double loss = m.train_step(images.data(), {nullptr, labels.data()}, samples, samples, 0, step).loss / samples;
            (step == 0 ? first : last) = loss;
        }
        const bool learned = last < 0.5 * first;
        std::printf("mobilenet, %zu thread(s): loss %.4f after the first step, %.4f after %zu %s\n", threads, first, last,
                    steps, learned ? "(ok)" : "(not halved)");
        ok &= learned;
    }
    return ok ? 0 : 1;
}
