// A small training job for the fault tests (tests/fault/kill_and_resume.sh and
// tests/fault/elastic.sh): trains under mpirun with a checkpoint every few steps, and writes
// its final parameters to a file.
//
//   checkpoint_job --dir DIR --out FILE [--resume] [--step-delay-ms N] [--deterministic] [--bad-label]
//
// `--checkpoint DIR` is another name for `--dir` (what staticnet-run passes); --bad-label
// puts label 9 (of 4 classes) on sample 5, a job that fails on every attempt.
#include <staticnet/comm/mpi.hpp>
#include <staticnet/staticnet.hpp>

#include <chrono>
#include <fstream>
#include <string_view>
#include <thread>

namespace sn = staticnet;

using net = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<6, 3, sn::relu>, sn::max_pool2d<2>, sn::flatten,
                           sn::dense<16, sn::relu>, sn::dense<4, sn::softmax>>;

/// Slows steps down so the test can kill the job in the middle of an epoch.
struct step_delay {
    int milliseconds;
    template <typename Model>
    void on_batch_end(Model&, const sn::batch_log&) const {
        std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
    }
};

int main(int argc, char** argv) {
    sn::mpi_communicator comm(argc, argv);
    std::string dir, out;
    bool resume = false, deterministic = false, bad_label = false;
    int delay = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--dir" || a == "--checkpoint") dir = argv[++i];
        else if (a == "--deterministic") deterministic = true;
        else if (a == "--bad-label") bad_label = true;
        else if (a == "--out") out = argv[++i];
        else if (a == "--resume") resume = true;
        else if (a == "--step-delay-ms") delay = std::stoi(argv[++i]);
    }
    try {
        sn::data::dataset d;
        d.images = xt::zeros<float>({std::size_t{256}, std::size_t{8}, std::size_t{8}, std::size_t{1}});
        d.labels = xt::zeros<std::int32_t>({std::size_t{256}});
        sn::rng g(4);
        for (auto& v : d.images) v = g.uniform();
        for (std::size_t i = 0; i < 256; ++i) d.labels(i) = static_cast<std::int32_t>(g.below(4));
        if (bad_label) d.labels(5) = 9;

        sn::model<net, sn::adam, sn::categorical_crossentropy, sn::mpi_communicator> m(comm, {}, {.threads = 1, .seed = 2, .deterministic = deterministic});
        sn::fit_options options{.epochs = 6, .batch_size = 16, .seed = 8, .verbose = false};
        if (resume) {
            const auto file = sn::resume_latest(m, dir);
            if (comm.rank() == 0) std::printf("resumed from %s\n", file ? file->c_str() : "nothing");
            options.resume = file.has_value();
        }
        m.fit(d, options, sn::checkpoint_callback{.directory = dir, .every_epochs = 1, .every_steps = 5, .keep = 2},
              step_delay{delay});
        if (comm.rank() == 0) {
            std::ofstream f(out, std::ios::binary);
            const auto p = m.network().parameters();
            f.write(reinterpret_cast<const char*>(p.data()), static_cast<std::streamsize>(p.size_bytes()));
        }
    } catch (const std::exception& e) {
        comm.abort(e.what());
    }
    return 0;
}
