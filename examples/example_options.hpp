#pragma once
// What the Fashion-MNIST examples share (fashion_mnist.cpp, fashion_mnist_resnet.cpp): the
// command-line options of a training run, the --json output, and `run_example`, which trains
// data-parallel when launched by mpirun (built with MPI) and as one process otherwise. Not
// part of the library.

#include <staticnet/staticnet.hpp>
#include <staticnet/train/history_chart.hpp>
#include <staticnet/io/report.hpp>
#include <staticnet/io/tensorboard.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "../tools/command_line.hpp"
#if STATICNET_EXAMPLE_MPI
#include <staticnet/comm/mpi.hpp>
#endif

namespace examples {

namespace sn = staticnet;

/// The options every example takes; each example sets its own defaults before parsing.
struct training_options {
    std::string data = sn::data::default_fashion_mnist_dir.string();
    std::size_t epochs = 10, batch_size = 32, threads = 0, limit = 0;
    float learning_rate = 1e-3f;
    std::uint64_t seed = 1;
    bool json = false, resume = false, deterministic = false;
    std::string checkpoint, shards, history_csv, plot_svg;
    std::string tensorboard, report_html;  // --tensorboard DIR, --report FILE.html
};

/// Adds the shared options to `app` (given twice, an option's last value wins); returns
/// --shards, which an example's own options may depend on.
inline CLI::Option* add_training_options(CLI::App& app, training_options& o, const std::string& learning_rate_help) {
    namespace cli = sn::tools;
    app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.add_option("--data", o.data, "directory of the Fashion-MNIST IDX files (raw or .gz)")->type_name("DIR");
    app.add_option("--epochs", o.epochs, "epochs in total (counting those resumed from)")
        ->type_name("N")->check(cli::whole_number(1));
    app.add_option("--batch-size", o.batch_size, "global batch, split over the ranks")
        ->type_name("N")->check(cli::whole_number(1));
    app.add_option("--learning-rate", o.learning_rate, learning_rate_help)->type_name("X")->check(cli::positive_real());
    app.add_option("--seed", o.seed, "seed of the weights and the shuffling")->type_name("N")->check(cli::whole_number(0));
    app.add_option("--threads", o.threads, "threads per process; 0 = one per core")
        ->type_name("N")->check(cli::whole_number(0, sn::thread_pool::max_threads));
    app.add_option("--limit", o.limit, "train on the first N images only; 0 = all")
        ->type_name("N")->check(cli::whole_number(0));
    app.add_flag("--json", o.json, "one JSON object per epoch and one with the test result on stdout, nothing else");
    auto* checkpoint = app.add_option("--checkpoint", o.checkpoint,
                                      "write a checkpoint there after every epoch (the newest 3 are kept)")
                           ->type_name("DIR");
    app.add_flag("--resume", o.resume, "continue from the newest valid checkpoint in --checkpoint DIR (an error if none)")
        ->needs(checkpoint);
    app.add_flag("--deterministic", o.deterministic,
                 "bitwise the same training for any number of ranks and threads (slower; for restarts on fewer ranks)");
    auto* shards = app.add_option("--shards", o.shards, "train from staticnet-shard's files (each rank reads its own shards)")
                       ->type_name("DIR");
    app.add_option("--history", o.history_csv, "write the per-epoch history as CSV when training ends")
        ->type_name("FILE.csv");
    app.add_option("--plot", o.plot_svg, "write a chart of loss and accuracy (SVG) when training ends")
        ->type_name("FILE.svg");
    app.add_option("--tensorboard", o.tensorboard, "write a TensorBoard event file there as training runs")
        ->type_name("DIR");
    app.add_option("--report", o.report_html,
                   "write a report page (curves, confusion matrix, worst images, inputs) when training ends")
        ->type_name("FILE.html");
    return shards;
}

/// Parses the command line into the options bound to `app` (status 0 after --help, 2 and
/// one line on stderr for a bad one), then the checks CLI11 cannot express.
inline void parse_training_options(CLI::App& app, const training_options& o, int argc, char** argv) {
    sn::tools::parse_or_exit(app, argc, argv);
    if (o.resume && o.checkpoint.empty()) std::exit(sn::tools::usage_error(app.get_name(), "--resume needs --checkpoint DIR"));
}

/// One JSON object per epoch on stdout (rank 0), when enabled. A run-time switch rather than
/// a second callback list: every combination of callbacks is another instantiation of `fit`.
struct json_lines {
    bool enabled = true;
    template <typename Model>
    void on_epoch_end(Model& m, const sn::epoch_log& e) const {
        if (!enabled || m.comm().rank() != 0) return;
        std::printf("{\"epoch\":%zu,\"loss\":%.6f,\"accuracy\":%.6f,\"val_loss\":%.6f,\"val_accuracy\":%.6f,\"seconds\":%.3f}\n",
                    e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy, e.seconds);
        std::fflush(stdout);
    }
};

/// The first n samples of a `dataset` or `byte_dataset` (all for n = 0; --limit). Takes the
/// set by value so that, without --limit, it is moved through rather than copied.
template <typename Data>
Data first_samples(Data d, std::size_t n) {
    if (n == 0 || n >= d.size()) return d;
    Data part;
    part.images = xt::view(d.images, xt::range(0, n));
    part.labels = xt::view(d.labels, xt::range(0, n));
    part.num_classes = d.num_classes;
    part.class_names = d.class_names;
    return part;
}

/// Fashion-MNIST's classes by label (its IDX files hold only the numbers).
inline const std::vector<std::string> fashion_mnist_class_names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/// The options of a run as (name, value) rows, for TensorBoard's hyper-parameter table and
/// the report's settings.
inline sn::setting_rows settings_rows(const char* program, const training_options& o) {
    return {{"program", program}, {"data", o.shards.empty() ? o.data : o.shards + " (shards)"},
            {"limit", o.limit == 0 ? "all" : std::to_string(o.limit)},
            {"initial learning rate", std::to_string(o.learning_rate)},
            {"deterministic", o.deterministic ? "true" : "false"}};
}

/// The TensorBoard callback of --tensorboard DIR; without it, one that writes nothing (one
/// callback list either way: each combination would be another instantiation of fit).
inline sn::tensorboard_writer tensorboard_callback(const char* program, const training_options& o) {
    return sn::tensorboard_writer(o.tensorboard, {.hyperparameters = settings_rows(program, o)});
}

/// The report page of --report FILE.html (rank 0). `train` is what the run trained on, when
/// it is in memory.
template <typename Model, typename Test>
void write_report(Model& model, const sn::history& history, const sn::fit_options& options, sn::data::dataset_ref train,
                  const Test& test, const training_options& o, const char* program, const char* title) {
    if (o.report_html.empty()) return;
    sn::write_training_report(model, history, options, train, &test, o.report_html,
                              {.title = title,
                               .settings = settings_rows(program, o),
                               .class_names = test.class_names.empty() ? fashion_mnist_class_names
                                                                       : std::vector<std::string>{}});
}

/// The end of a training run: the history as CSV and as a chart when asked (rank 0), then the
/// test loss and accuracy, as JSON with --json.
template <typename Model, typename Data>
int report_results(Model& model, const sn::history& history, const Data& test, const training_options& args,
                   const char* chart_title) {
    const bool root = model.comm().rank() == 0;
    if (root && !args.history_csv.empty()) sn::write_history_csv(history, args.history_csv);
    if (root && !args.plot_svg.empty()) sn::write_history_svg(history, args.plot_svg, chart_title);
    const auto [loss, accuracy] = model.evaluate(test);
    if (root && args.json)
        std::printf("{\"test_loss\":%.6f,\"test_accuracy\":%.6f,\"ranks\":%d}\n", loss, accuracy, model.comm().size());
    else if (root)
        std::printf("Test loss %.4f, test accuracy %.4f\n", loss, accuracy);
    return 0;
}

/// Runs `train(comm)` with an `mpi_communicator` when mpirun (or srun) started this process
/// and the example was built with MPI, else with a `local_communicator`. An error ends every
/// rank with its message (status 1 for one process, prefixed with `program`).
template <typename Train>
int run_example(const char* program, int& argc, char**& argv, Train&& train) {
#if STATICNET_EXAMPLE_MPI
    if (sn::launched_by_mpirun()) {
        sn::mpi_communicator comm(argc, argv);
        try {
            return train(comm);
        } catch (const std::exception& e) {
            comm.abort(e.what());  // ends every rank, not just this one
        }
    }
#else
    (void)argc;
    (void)argv;
#endif
    sn::local_communicator comm;
    try {
        return train(comm);
    } catch (const std::exception& e) {
        std::cerr << program << ": " << e.what() << '\n';
        return 1;
    }
}

}  // namespace examples
