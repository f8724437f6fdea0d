// Trains the model zoo's MobileNetV2 (benchmarks/zoo/mobilenet.hpp: inverted residual blocks
// of depthwise convolutions, batch_norm and ReLU6) on Fashion-MNIST: AdamW with decoupled
// weight decay on the kernels, label smoothing, a cosine learning rate, random flips and
// padded crops, normalised input. benchmarks/train_mobilenet.sh runs it in full.
//
//   fashion_mnist_mobilenet [--data DIR] [--epochs N] [--batch-size N] [--learning-rate X] [--seed N]
//                           [--threads N] [--limit N] [--json] [--checkpoint DIR [--resume]] [--shards DIR]
//
// The options are those of `fashion_mnist` (only the defaults differ: see --help);
// --learning-rate is the schedule's starting rate: AdamW's rate follows a cosine from it
// down to 1% of it over --epochs epochs.
//
// It compiles alone:
//   g++ -std=c++20 -O3 -march=native -Iinclude -Iexamples -Ibenchmarks examples/fashion_mnist_mobilenet.cpp -lz -pthread
// and with -DSTATICNET_EXAMPLE_MPI=1 (and Boost.MPI, via mpic++) it also trains under mpirun.
#include <staticnet/staticnet.hpp>

#include "example_options.hpp"
#include "zoo/mobilenet.hpp"
#if STATICNET_EXAMPLE_MPI
#include <staticnet/comm/mpi.hpp>
#endif

#include <iostream>
#include <string>

namespace sn = staticnet;

namespace {

/// 28x28x1 through the zoo's stages: 28 -> 14 -> 7 -> 4.
using mobilenet_cnn = zoo::mobilenet_for<sn::input<28, 28, 1>>;

/// The shared options (examples/example_options.hpp), with this example's defaults.
struct arguments : examples::training_options {
    arguments() {
        epochs = 15;
        batch_size = 64;
        learning_rate = 2e-3f;
    }
};

arguments parse(int argc, char** argv) {
    arguments a;
    CLI::App app{"Trains a MobileNetV2 (inverted residual blocks, depthwise convolutions, batch_norm, ReLU6; AdamW,\n"
                 "label smoothing, cosine learning rate, flips and crops) on Fashion-MNIST; under mpirun, the ranks\n"
                 "train it data-parallel (only rank 0 prints).",
                 "fashion_mnist_mobilenet"};
    examples::add_training_options(app, a, "AdamW's learning rate in the first epoch (cosine decay to 1% of it)");
    examples::parse_training_options(app, a, argc, argv);
    return a;
}

template <typename Communicator>
int train(const arguments& args, Communicator& comm) {
    const bool root = comm.rank() == 0;
    auto data = sn::data::load_fashion_mnist_bytes(args.data);
    const bool sharded = !args.shards.empty();
    if (sharded)
        data.train = sn::data::load_shard_bytes(args.shards, static_cast<std::size_t>(comm.rank()),
                                                static_cast<std::size_t>(comm.size()), mobilenet_cnn::input_shape);
    sn::data::require_same_classes(sn::data::class_list::of(data.train, sharded ? "--shards '" + args.shards + "'"
                                                                                : "the IDX training set in '" + args.data + "'"),
                                   sn::data::class_list::of(data.test, "the IDX test set in '" + args.data + "'"),
                                   "this example validates on Fashion-MNIST's test set");
    data.train = examples::first_samples(std::move(data.train), args.limit);

    // Fashion-MNIST's pixel mean and standard deviation over the training set.
    const sn::model_settings settings{.threads = args.threads, .seed = args.seed, .deterministic = args.deterministic,
                                      .label_smoothing = 0.1f,
                                      .normalization = {.mean = {0.2860f}, .std = {0.3530f}}};
    sn::model<mobilenet_cnn, sn::adamw, sn::categorical_crossentropy, Communicator> model(
        comm, {.learning_rate = args.learning_rate, .weight_decay = 0.05f}, settings);
    if (!args.json && root) {
        model.summary(std::cout);
        std::cout << "Training on " << data.train.size() << " images, validating on " << data.test.size() << " ("
                  << comm.size() << (comm.size() == 1 ? " process, " : " processes, ") << model.thread_count()
                  << " threads each, SIMD " << sn::simd::arch_name() << ")\n";
    }
    sn::fit_options options{.epochs = args.epochs, .batch_size = args.batch_size, .seed = args.seed,
                            .validation = &data.test, .verbose = !args.json, .partitioned = sharded,
                            .flip = true, .crop_padding = 2};
    if (args.resume) {
        const auto file = sn::resume_latest(model, args.checkpoint);
        if (!file) throw sn::checkpoint_error("--resume: no checkpoint in '" + args.checkpoint + "' to resume from");
        options.resume = true;
    }
    const sn::checkpoint_callback checkpoints{.directory = args.checkpoint, .every_epochs = 1, .keep = 3};
    const sn::cosine_decay schedule{.initial = args.learning_rate, .minimum = args.learning_rate / 100};
    sn::tensorboard_writer tensorboard = examples::tensorboard_callback("fashion_mnist_mobilenet", args);
    const sn::history history =
        model.fit(data.train, options, schedule, examples::json_lines{.enabled = args.json}, checkpoints, tensorboard);
    examples::write_report(model, history, options, &data.train, data.test, args, "fashion_mnist_mobilenet",
                           "staticnet: MobileNetV2 on Fashion-MNIST");
    return examples::report_results(model, history, data.test, args, "staticnet: MobileNetV2 on Fashion-MNIST");
}

}  // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    return examples::run_example("fashion_mnist_mobilenet", argc, argv, [&](auto& comm) { return train(args, comm); });
}
