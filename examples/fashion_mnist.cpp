// Trains the reference CNN of docs/architecture.md on Fashion-MNIST.
//
//   fashion_mnist [--data DIR] [--epochs N] [--batch-size N] [--learning-rate X] [--seed N]
//                 [--threads N] [--limit N] [--json] [--checkpoint DIR [--resume]]
//                 [--shards DIR [--stream [--shuffle-buffer N]]] [--deterministic]
//
// --history FILE.csv and --plot FILE.svg write the per-epoch history and a chart of loss and
// accuracy (train and validation) when training ends.
//
// --tensorboard DIR writes a TensorBoard event file there as training runs (scalars per step
// and per epoch, weight and gradient histograms, the settings); --report FILE.html writes a
// page with the curves, the confusion matrix, the worst-classified test images and the
// training inputs when training ends (docs/training.md).
//
// --export-onnx FILE writes the trained network as an ONNX model (docs/onnx.md) when training ends.
//
// --shards DIR trains from shard files made by `staticnet-shard` instead of the IDX training
// set: each rank reads only its own shards. With --stream the shards are read from disk as
// training runs instead of loaded whole (memory bounded by --shuffle-buffer N samples plus
// the read-ahead; docs/data.md says what the shuffle guarantees). --test-shards DIR validates
// and tests on a shard set (every rank loads it whole) instead of the IDX test set.
//
// The training and test sets must have the same classes (count, and names where both have
// them: classes.txt, image folders); the job is refused otherwise, naming both lists.
//
// Every data set is held as bytes (a quarter of float32), converted batch by batch.
//
// --train-dir DIR --test-dir DIR train and test on image folders instead (DIR/<class>/*.png,
// images in sub-folders of a class folder too; 28x28 grayscale, or any size with --resize;
// scripts/make_image_folders.py writes Fashion-MNIST that way), when built with stb_image
// (libstb-dev). Colour images are read as grayscale; what was converted or resized is said
// on stderr.
//
// --checkpoint DIR writes a checkpoint there after every epoch (the newest 3 are kept);
// --resume continues from the newest valid one up to --epochs in total (an error if there
// is none: it never silently starts over). `staticnet-run` passes both and restarts a failed
// job; with --deterministic the result does not depend on the rank or thread count, so a job
// restarted on fewer ranks ends bitwise where it would have (docs/distributed.md).
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
#include "reference_cnn.hpp"
#if STATICNET_EXAMPLE_MPI
#include <staticnet/comm/mpi.hpp>
#endif
#if STATICNET_EXAMPLE_IMAGES
#include <staticnet/data/image_folder.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>

namespace sn = staticnet;


namespace {

struct arguments : examples::training_options {
    std::size_t shuffle_buffer = 8192;
    bool resize = false, stream = false;
    std::string export_onnx, train_dir, test_dir, test_shards;
};

/// Reads the command line, or ends the program: status 0 after --help, 2 and one line on
/// stderr for a bad one (tools/command_line.hpp). Given twice, an option's last value wins.
arguments parse(int argc, char** argv) {
    namespace cli = sn::tools;
    arguments a;
    CLI::App app{"Trains the reference CNN of docs/architecture.md on Fashion-MNIST; under mpirun, the ranks\n"
                 "train it data-parallel (only rank 0 prints).",
                 "fashion_mnist"};
    auto* shards = examples::add_training_options(app, a, "Adam's learning rate");
    auto* stream = app.add_flag("--stream", a.stream, "read the shards from disk while training instead of loading them")
                       ->needs(shards);
    app.add_option("--shuffle-buffer", a.shuffle_buffer, "samples held for shuffling a stream (with --stream)")
        ->type_name("N")->check(cli::whole_number(1))->needs(stream);
    auto* train_dir = app.add_option("--train-dir", a.train_dir, "train on an image folder: DIR/<class>/*.png|jpg|bmp")
                          ->type_name("DIR");
    auto* test_dir = app.add_option("--test-dir", a.test_dir, "validate and test on an image folder (with --train-dir)")
                         ->type_name("DIR");
    app.add_flag("--resize", a.resize, "resize images of another size to 28x28 (bilinear) instead of refusing them")
        ->needs(train_dir);
    train_dir->needs(test_dir);
    test_dir->needs(train_dir);
    app.add_option("--test-shards", a.test_shards, "validate and test on staticnet-shard's files instead of the IDX test set")
        ->type_name("DIR")->excludes(test_dir);
    app.add_option("--export-onnx", a.export_onnx, "write the trained network as an ONNX model when training ends")
        ->type_name("FILE.onnx");
    examples::parse_training_options(app, a, argc, argv);
    if (a.stream && a.limit != 0) std::exit(cli::usage_error(app.get_name(), "--limit does not apply to --stream"));
    if (!a.train_dir.empty() && !a.shards.empty())
        std::exit(cli::usage_error(app.get_name(), "--train-dir and --shards both name the training set; give one"));
#if !STATICNET_EXAMPLE_IMAGES
    if (!a.train_dir.empty())
        std::exit(cli::usage_error(app.get_name(), "--train-dir: this program was built without stb_image (libstb-dev)"));
#endif
    return a;
}


/// A shard set's data read whole or in this rank's part; a sample shape other than the
/// network's is refused with the staticnet-shard options that make the right one.
sn::data::byte_dataset load_shards_for_network(const std::string& dir, std::size_t rank, std::size_t ranks) {
    try {
        return sn::data::load_shard_bytes(dir, rank, ranks, reference_cnn::input_shape);
    } catch (const sn::data_error& e) {
        if (std::string_view(e.what()).find("shape mismatch") == std::string_view::npos) throw;
        throw sn::data_error(std::string(e.what()) +
                             "; the network takes 28x28x1: make the shards with staticnet-shard --shape 28x28x1 "
                             "(with --resize for other sizes, --to-grey for colour images)");
    }
}

/// The IDX test set of Fashion-MNIST in `dir` alone (the training set comes from shards).
sn::data::byte_dataset load_test_set(const std::filesystem::path& dir) {
    // One after the other: a missing directory is reported for the images file first.
    const auto images = sn::data::find_idx_file(dir, "t10k-images-idx3-ubyte");
    const auto labels = sn::data::find_idx_file(dir, "t10k-labels-idx1-ubyte");
    return sn::data::load_idx_bytes(images, labels, 10);
}

#if STATICNET_EXAMPLE_IMAGES
/// Says on stderr what reading an image folder changed: colour made grey, sizes changed,
/// images found in sub-folders (nothing when it changed nothing).
void report_conversions(const char* option, const std::string& dir, const sn::data::image_folder_report& r) {
    constexpr auto in = reference_cnn::input_shape;
    const std::string shape = sn::detail::shape_text({in.height(), in.width(), in.channels()});
    const auto note = [&](std::size_t count, const std::string& what) {
        if (count != 0)
            std::cerr << "fashion_mnist: " << option << " '" << dir << "': " << count << " of " << r.images << " images "
                      << what << "\n";
    };
    note(r.colour_to_grey, "are colour: read as grayscale (the network takes " + shape + ")");
    note(r.alpha_dropped, "have an alpha channel: dropped");
    note(r.resized, "are not 28x28: resized to 28x28 (--resize)");
    note(r.in_sub_folders, "were found in sub-folders of their class folders");
}
#endif

template <typename Communicator>
int train(const arguments& args, Communicator& comm) {
    const bool root = comm.rank() == 0;
    // Pixels stay bytes in memory (a quarter of float32); batches are converted as they are made.
    sn::data::byte_train_test data;
    const bool sharded = !args.shards.empty();
    const auto rank = static_cast<std::size_t>(comm.rank()), ranks = static_cast<std::size_t>(comm.size());
    sn::data::class_list train_classes, test_classes;
    if (args.train_dir.empty()) {
        if (sharded && !args.stream) {  // this rank's shards only; the epoch is the sum of all ranks' parts
            data.train = load_shards_for_network(args.shards, rank, ranks);
            train_classes = sn::data::class_list::of(data.train, "--shards '" + args.shards + "'");
        } else if (!sharded) {
            data = sn::data::load_fashion_mnist_bytes(args.data);
            train_classes = sn::data::class_list::of(data.train, "the IDX training set in '" + args.data + "'");
        }
        if (!args.test_shards.empty()) {
            data.test = load_shards_for_network(args.test_shards, 0, 1);
            test_classes = sn::data::class_list::of(data.test, "--test-shards '" + args.test_shards + "'");
        } else {
            if (sharded) data.test = load_test_set(args.data);
            test_classes = sn::data::class_list::of(data.test, "the IDX test set in '" + args.data + "'");
        }
    } else {
#if STATICNET_EXAMPLE_IMAGES
        // The test folder must hold the training folder's classes, so that labels agree.
        sn::data::image_folder_report train_report, test_report;
        data.train = sn::data::load_image_folder_bytes(
            args.train_dir, {.sample_shape = reference_cnn::input_shape, .resize = args.resize, .resize_flag = "--resize"},
            &train_report);
        data.test = sn::data::load_image_folder_bytes(args.test_dir, {.sample_shape = reference_cnn::input_shape,
                                                                      .resize = args.resize,
                                                                      .classes = data.train.class_names,
                                                                      .resize_flag = "--resize"},
                                                      &test_report);
        if (root) {
            report_conversions("--train-dir", args.train_dir, train_report);
            report_conversions("--test-dir", args.test_dir, test_report);
        }
        if (data.train.num_classes > 10)
            throw sn::data_error("--train-dir '" + args.train_dir + "' has " + std::to_string(data.train.num_classes) +
                                 " classes, but the network has 10 outputs");
        train_classes = sn::data::class_list::of(data.train, "--train-dir '" + args.train_dir + "'");
        test_classes = sn::data::class_list::of(data.test, "--test-dir '" + args.test_dir + "'");
#endif
    }
    data.train = examples::first_samples(std::move(data.train), args.limit);

    std::optional<sn::data::shard_stream> stream;
    if (args.stream) {
        try {
            stream.emplace(args.shards, rank, ranks, reference_cnn::input_shape,
                           sn::data::shard_stream_options{.shuffle_buffer = args.shuffle_buffer, .seed = args.seed});
        } catch (const sn::data_error& e) {
            if (std::string_view(e.what()).find("shape mismatch") == std::string_view::npos) throw;
            throw sn::data_error(std::string(e.what()) + "; the network takes 28x28x1: make the shards with "
                                 "staticnet-shard --shape 28x28x1 (with --resize for other sizes, --to-grey for colour images)");
        }
        train_classes = {"--shards '" + args.shards + "'", stream->num_classes(), stream->class_names()};
    }
    // Labels are numbers: a test set of other classes would give an accuracy that means nothing.
    sn::data::require_same_classes(train_classes, test_classes,
                                   "give a test set of the training set's classes (--test-shards DIR, or --test-dir DIR "
                                   "with --train-dir)");
    const std::size_t train_size = stream ? stream->size() : data.train.size();

    sn::model<reference_cnn, sn::adam, sn::categorical_crossentropy, Communicator> model(
        comm, {.learning_rate = args.learning_rate}, {.threads = args.threads, .seed = args.seed, .deterministic = args.deterministic});
    if (!args.json && root) {
        model.summary(std::cout);
        std::cout << "Training on " << train_size
                  << (stream ? " images (rank 0's shards, streamed)" : sharded ? " images (rank 0's shards)" : " images")
                  << ", validating on " << data.test.size() << " ("
                  << comm.size() << (comm.size() == 1 ? " process, " : " processes, ") << model.thread_count()
                  << " threads each, SIMD " << sn::simd::arch_name() << ")\n";
    }
    sn::fit_options options{.epochs = args.epochs, .batch_size = args.batch_size, .seed = args.seed,
                            .validation = &data.test, .verbose = !args.json, .partitioned = sharded};
    if (args.resume) {
        const auto file = sn::resume_latest(model, args.checkpoint);
        if (!file) throw sn::checkpoint_error("--resume: no checkpoint in '" + args.checkpoint + "' to resume from");
        options.resume = true;
        if (root && !args.json)
            std::cout << "Resuming after epoch " << model.position().epoch << " (step " << model.steps_done() << ") from "
                      << file->string() << "\n";
    }
    const sn::checkpoint_callback checkpoints{.directory = args.checkpoint, .every_epochs = 1, .keep = 3};
    // One fit per data source, for both outputs: each callback combination would be another
    // instantiation of fit, and compile time.
    sn::tensorboard_writer tensorboard = examples::tensorboard_callback("fashion_mnist", args);
    const auto fit = [&](auto& train_set) {
        return model.fit(train_set, options, examples::json_lines{.enabled = args.json}, checkpoints, tensorboard);
    };
    const sn::history history = stream ? fit(*stream) : fit(data.train);
    if (!args.export_onnx.empty()) sn::save_onnx(model, args.export_onnx);  // rank 0 writes
    examples::write_report(model, history, options, stream ? sn::data::dataset_ref{} : &data.train, data.test, args,
                           "fashion_mnist", "staticnet: reference CNN on Fashion-MNIST");
    return examples::report_results(model, history, data.test, args, "staticnet: reference CNN on Fashion-MNIST");
}

}  // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    return examples::run_example("fashion_mnist", argc, argv, [&](auto& comm) { return train(args, comm); });
}
