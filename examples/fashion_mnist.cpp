// Trains the reference CNN of docs/architecture.md on Fashion-MNIST.
//
//   fashion_mnist [--data DIR] [--epochs N] [--batch-size N] [--learning-rate X] [--seed N]
//                 [--threads N] [--limit N] [--json]
//
// Without --json it prints the model summary and Keras-like progress; with --json it prints
// one JSON object per epoch (epoch, loss, accuracy, val_loss, val_accuracy, seconds) and a
// final one with the test loss and accuracy, and nothing else on stdout.
#include <staticnet/staticnet.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

namespace sn = staticnet;

using reference_cnn = sn::sequential<sn::input<28, 28, 1>,                            //
                                     sn::conv2d<32, 3, sn::relu>, sn::max_pool2d<2>,  //
                                     sn::conv2d<64, 3, sn::relu>, sn::max_pool2d<2>,  //
                                     sn::conv2d<128, 3, sn::relu>, sn::max_pool2d<2>, //
                                     sn::flatten,                                     //
                                     sn::dense<128, sn::relu>,                        //
                                     sn::dense<10, sn::softmax>>;
static_assert(reference_cnn::parameter_count == 110474);

namespace {

struct arguments {
    std::string data = sn::data::default_fashion_mnist_dir.string();
    std::size_t epochs = 10, batch_size = 32, threads = 0, limit = 0;
    float learning_rate = 1e-3f;
    std::uint64_t seed = 1;
    bool json = false;
};

[[noreturn]] void usage(const char* message) {
    std::cerr << "fashion_mnist: " << message << "\n"
              << "usage: fashion_mnist [--data DIR] [--epochs N] [--batch-size N] [--learning-rate X] [--seed N]\n"
                 "                     [--threads N] [--limit N] [--json]\n";
    std::exit(2);
}

arguments parse(int argc, char** argv) {
    arguments a;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value after " + std::string(flag)).c_str());
            return argv[++i];
        };
        auto number = [&]() -> std::size_t {
            const std::string v = value();
            char* end = nullptr;
            const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0') usage(("not a number: " + v).c_str());
            return static_cast<std::size_t>(n);
        };
        if (flag == "--data") a.data = value();
        else if (flag == "--epochs") a.epochs = number();
        else if (flag == "--batch-size") a.batch_size = number();
        else if (flag == "--threads") a.threads = number();
        else if (flag == "--limit") a.limit = number();
        else if (flag == "--seed") a.seed = number();
        else if (flag == "--learning-rate") a.learning_rate = std::stof(value());
        else if (flag == "--json") a.json = true;
        else if (flag == "--help" || flag == "-h") usage("help");
        else usage(("unknown option " + std::string(flag)).c_str());
    }
    if (a.epochs == 0 || a.batch_size == 0) usage("--epochs and --batch-size must be at least 1");
    return a;
}

/// One JSON object per epoch on stdout.
struct json_lines {
    template <typename Model>
    void on_epoch_end(Model&, const sn::epoch_log& e) const {
        std::printf("{\"epoch\":%zu,\"loss\":%.6f,\"accuracy\":%.6f,\"val_loss\":%.6f,\"val_accuracy\":%.6f,\"seconds\":%.3f}\n",
                    e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy, e.seconds);
        std::fflush(stdout);
    }
};

sn::data::dataset first(const sn::data::dataset& d, std::size_t n) {
    if (n == 0 || n >= d.size()) return d;
    sn::data::dataset part;
    part.images = xt::view(d.images, xt::range(0, n));
    part.labels = xt::view(d.labels, xt::range(0, n));
    part.num_classes = d.num_classes;
    return part;
}

}  // namespace

int main(int argc, char** argv) try {
    const arguments args = parse(argc, argv);
    auto data = sn::data::load_fashion_mnist(args.data);
    data.train = first(data.train, args.limit);

    sn::model<reference_cnn, sn::adam, sn::categorical_crossentropy> model(
        {.learning_rate = args.learning_rate}, {.threads = args.threads, .seed = args.seed});
    if (!args.json) {
        model.summary(std::cout);
        std::cout << "Training on " << data.train.size() << " images, validating on " << data.test.size() << " ("
                  << model.thread_count() << " threads, SIMD " << sn::simd::arch_name() << ")\n";
    }
    const sn::fit_options options{.epochs = args.epochs, .batch_size = args.batch_size, .seed = args.seed,
                                  .validation = &data.test, .verbose = !args.json};
    if (args.json) model.fit(data.train, options, json_lines{});
    else model.fit(data.train, options);

    const auto [loss, accuracy] = model.evaluate(data.test);
    if (args.json) std::printf("{\"test_loss\":%.6f,\"test_accuracy\":%.6f}\n", loss, accuracy);
    else std::printf("Test loss %.4f, test accuracy %.4f\n", loss, accuracy);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "fashion_mnist: " << e.what() << '\n';
    return 1;
}
