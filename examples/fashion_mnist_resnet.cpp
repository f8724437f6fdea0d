// Trains a ResNet-style network (examples/resnet_cnn.hpp) on Fashion-MNIST: residual blocks,
// batch_norm, random flips and crops, and a cosine learning-rate schedule.
//
//   fashion_mnist_resnet [--data DIR] [--epochs N] [--batch-size N] [--learning-rate X] [--seed N]
//                 [--threads N] [--limit N] [--json] [--checkpoint DIR [--resume]] [--shards DIR]
//
// --history FILE.csv and --plot FILE.svg write the per-epoch history and a chart of loss and
// accuracy (train and validation) when training ends.
//
// --shards DIR trains from shard files made by `staticnet-shard` instead of the IDX training
// set: each rank reads only its own shards (validation still uses the IDX test set).
//
// --tensorboard DIR writes a TensorBoard event file as training runs; --report FILE.html a
// page with the curves, confusion matrix, worst-classified images and the augmented training
// inputs when training ends (docs/training.md).
//
// --checkpoint DIR writes a checkpoint there after every epoch (the newest 3 are kept);
// --resume continues from the newest valid one up to --epochs in total (an error if there
// is none: it never silently starts over).
//
// The options are those of `fashion_mnist` (only the defaults differ: see --help), and
// --learning-rate is the schedule's starting rate: Adam's rate follows a cosine from it down
// to 1% of it over --epochs epochs.
//
// It compiles alone:
//   g++ -std=c++20 -O3 -march=native -Iinclude -Iexamples examples/fashion_mnist_resnet.cpp -lz -pthread
// and with -DSTATICNET_EXAMPLE_MPI=1 (and Boost.MPI: -lboost_mpi -lboost_serialization, via
// mpic++) it also trains under mpirun.
//
// Under `mpirun -np N` (when built with MPI) the same program trains data-parallel: every
// rank loads the data set, takes its part of each global batch (--batch-size is the global
// batch), and the ranks average gradients; only rank 0 prints.
//
// Without --json it prints the model summary and Keras-like progress; with --json it prints
// one JSON object per epoch (epoch, loss, accuracy, val_loss, val_accuracy, seconds) and a
// final one with the test loss and accuracy, and nothing else on stdout.
#include <staticnet/staticnet.hpp>
#include <staticnet/train/history_chart.hpp>

#include "example_options.hpp"
#include "resnet_cnn.hpp"
#if STATICNET_EXAMPLE_MPI
#include <staticnet/comm/mpi.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace sn = staticnet;

namespace {

/// The shared options (examples/example_options.hpp), with this example's defaults.
struct arguments : examples::training_options {
    arguments() {
        epochs = 24;
        batch_size = 64;
        learning_rate = 2e-3f;
    }
};

/// Reads the command line, or ends the program: status 0 after --help, 2 and one line on
/// stderr for a bad one (tools/command_line.hpp). Given twice, an option's last value wins.
arguments parse(int argc, char** argv) {
    arguments a;
    CLI::App app{"Trains a ResNet-style network (residual blocks, batch_norm, flips and crops, cosine learning\n"
                 "rate) on Fashion-MNIST; under mpirun, the ranks train it data-parallel (only rank 0 prints).",
                 "fashion_mnist_resnet"};
    examples::add_training_options(app, a, "Adam's learning rate in the first epoch (cosine decay to 1% of it)");
    examples::parse_training_options(app, a, argc, argv);
    return a;
}


template <typename Communicator>
int train(const arguments& args, Communicator& comm) {
    const bool root = comm.rank() == 0;
    auto data = sn::data::load_fashion_mnist(args.data);
    const bool sharded = !args.shards.empty();
    if (sharded)  // this rank's shards only; the epoch is the sum of all ranks' parts
        data.train = sn::data::load_shards(args.shards, static_cast<std::size_t>(comm.rank()),
                                           static_cast<std::size_t>(comm.size()), resnet_cnn::input_shape);
    // Validation is on the IDX test set: shards of other classes would make its accuracy meaningless.
    sn::data::require_same_classes(sn::data::class_list::of(data.train, sharded ? "--shards '" + args.shards + "'"
                                                                                : "the IDX training set in '" + args.data + "'"),
                                   sn::data::class_list::of(data.test, "the IDX test set in '" + args.data + "'"),
                                   "this example validates on Fashion-MNIST's test set (fashion_mnist takes --test-shards DIR)");
    data.train = examples::first_samples(std::move(data.train), args.limit);

    sn::model<resnet_cnn, sn::adam, sn::categorical_crossentropy, Communicator> model(
        comm, {.learning_rate = args.learning_rate}, {.threads = args.threads, .seed = args.seed, .deterministic = args.deterministic});
    if (!args.json && root) {
        model.summary(std::cout);
        std::cout << "Training on " << data.train.size() << (sharded ? " images (rank 0's shards)" : " images")
                  << ", validating on " << data.test.size() << " ("
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
        if (root && !args.json)
            std::cout << "Resuming after epoch " << model.position().epoch << " (step " << model.steps_done() << ") from "
                      << file->string() << "\n";
    }
    const sn::checkpoint_callback checkpoints{.directory = args.checkpoint, .every_epochs = 1, .keep = 3};
    const sn::cosine_decay schedule{.initial = args.learning_rate, .minimum = args.learning_rate / 100};
    // One fit for both outputs: each callback combination is another instantiation of fit.
    sn::tensorboard_writer tensorboard = examples::tensorboard_callback("fashion_mnist_resnet", args);
    const sn::history history =
        model.fit(data.train, options, schedule, examples::json_lines{.enabled = args.json}, checkpoints, tensorboard);
    examples::write_report(model, history, options, &data.train, data.test, args, "fashion_mnist_resnet",
                           "staticnet: ResNet-style CNN on Fashion-MNIST");
    return examples::report_results(model, history, data.test, args, "staticnet: ResNet-style CNN on Fashion-MNIST");
}

}  // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    return examples::run_example("fashion_mnist_resnet", argc, argv, [&](auto& comm) { return train(args, comm); });
}
