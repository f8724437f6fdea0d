// bench_train: training and inference throughput of the reference CNN.
//
//   bench_train [--threads T] [--batch B]... [--steps N] [--reps R] [--infer-batch B]
//               [--sync after|overlapped] [--deterministic] [--no-inference] [--loader]
//
// Prints one JSON object per line. Training: images/s of full steps (forward, loss, backward,
// gradient synchronisation, Adam) at each --batch (default 32 and 256), the median over
// --reps repetitions of --steps steps, and where the time of a step went (compute vs
// synchronisation). Inference: images/s of forward passes at --infer-batch.
//
// Under `mpirun -np P` it measures data parallelism: --batch is the batch of *each rank*
// (weak scaling; the global batch is P times larger), unless --strong, which keeps --batch
// as the global batch. Only rank 0 prints; the numbers are global (all ranks' images).
//
// --loader (one process) measures whether data loading costs step time: `fit` on data read
// from shard files (load_shards, partitioned, batches assembled by fit's loader on the pool)
// against training steps on batches already assembled in memory, alternately.
#include <staticnet/staticnet.hpp>

#include "reference_cnn.hpp"
#if STATICNET_BENCH_MPI
#include <staticnet/comm/mpi.hpp>
#endif

#include <algorithm>
#include <filesystem>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace sn = staticnet;


namespace {

struct options {
    std::size_t threads = 1, steps = 40, reps = 7, infer_batch = 256, infer_steps = 20;
    std::vector<std::size_t> batches;
    bool overlapped = false, deterministic = false, inference = true, strong = false, loader = false;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto next = [&]() -> std::size_t {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_train: missing value after %s\n", argv[i]);
                std::exit(2);
            }
            return std::strtoull(argv[++i], nullptr, 10);
        };
        if (a == "--threads") o.threads = next();
        else if (a == "--batch") o.batches.push_back(next());
        else if (a == "--steps") o.steps = next();
        else if (a == "--reps") o.reps = next();
        else if (a == "--infer-batch") o.infer_batch = next();
        else if (a == "--sync") o.overlapped = std::string_view(argv[++i]) == "overlapped";
        else if (a == "--deterministic") o.deterministic = true;
        else if (a == "--no-inference") o.inference = false;
        else if (a == "--loader") o.loader = true;
        else if (a == "--strong") o.strong = true;
        else {
            std::fprintf(stderr, "bench_train: unknown option %s\n", argv[i]);
            std::exit(2);
        }
    }
    if (o.batches.empty()) o.batches = {32, 256};
    return o;
}

/// Random images with labels: throughput does not depend on the pixel values.
sn::data::dataset synthetic_images(std::size_t n) {
    sn::data::dataset d;
    d.images = xt::zeros<float>({n, std::size_t{28}, std::size_t{28}, std::size_t{1}});
    d.labels = xt::zeros<std::int32_t>({n});
    d.num_classes = 10;
    sn::rng g(1);
    for (auto& v : d.images) v = g.uniform();
    for (std::size_t i = 0; i < n; ++i) d.labels(i) = static_cast<std::int32_t>(g.below(10));
    return d;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

/// Times blocks of `steps` training steps through fit's on_batch_end hook; the first block
/// (after 4 steps) is warm-up. Also records where the steps' time went.
struct block_timer {
    using clock = std::chrono::steady_clock;
    std::size_t steps;
    clock::time_point start;
    std::vector<double>* rates;
    std::vector<double>* compute;
    std::vector<double>* sync;
    std::size_t images;
    template <typename Model>
    void on_batch_end(Model& model, const sn::batch_log& b) {
        if (b.step < 4 || (b.step - 4) % steps != 0) return;
        const auto now = clock::now();
        if (b.step > 4 + steps) {
            const double seconds = std::chrono::duration<double>(now - start).count();
            rates->push_back(static_cast<double>(images * steps) / seconds);
            const auto& t = model.timings();
            compute->push_back(t.compute_seconds / static_cast<double>(t.steps));
            sync->push_back(t.sync_seconds / static_cast<double>(t.steps));
        }
        model.reset_timings();
        start = clock::now();
    }
};

/// fit from shard files vs train_step on pre-assembled batches (see the file comment).
void compare_loader(const options& o) {
    using clock = std::chrono::steady_clock;
    const std::size_t batch = o.batches.front(), steps = o.steps * 4, images = batch * steps;
    const auto data = synthetic_images(images);
    const auto dir = std::filesystem::temp_directory_path() / ("staticnet-bench-shards-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    for (std::size_t k = 0; k < 4; ++k)
        sn::data::write_shard(dir / sn::data::shard_file_name(k, 4), data, k * images / 4, (k + 1) * images / 4);
    const auto from_shards = sn::data::load_shards(dir, 0, 1, reference_cnn::input_shape);
    std::filesystem::remove_all(dir);

    using model_t = sn::model<reference_cnn, sn::adam, sn::sparse_categorical_crossentropy>;
    model_t shard_model({}, {.threads = o.threads});
    model_t memory_model({}, {.threads = o.threads});
    // Batches already in memory, contiguous, with their labels: no loading at all.
    std::vector<float> batches(data.images.begin(), data.images.end());
    const sn::fit_options fit_opts{.epochs = 1, .batch_size = batch, .verbose = false, .partitioned = true};
    shard_model.fit(from_shards, fit_opts);  // warm-up
    std::vector<double> shard_rates, memory_rates;
    for (std::size_t r = 0; r < o.reps; ++r) {
        auto start = clock::now();
        shard_model.fit(from_shards, fit_opts);
        shard_rates.push_back(double(images) / std::chrono::duration<double>(clock::now() - start).count());
        start = clock::now();
        for (std::size_t s = 0; s < steps; ++s)
            memory_model.train_step(batches.data() + s * batch * 784, {nullptr, data.labels.data() + s * batch}, batch,
                                    batch, 0, s);
        memory_rates.push_back(double(images) / std::chrono::duration<double>(clock::now() - start).count());
    }
    const double a = median(shard_rates), b = median(memory_rates);
    std::printf("{\"bench\":\"loader\",\"threads\":%zu,\"batch\":%zu,\"steps\":%zu,\"from_shards_images_per_s\":%.1f,"
                "\"in_memory_images_per_s\":%.1f,\"ratio\":%.3f}\n",
                o.threads, batch, steps, a, b, a / b);
}

template <typename Comm>
void run(const options& o, Comm& comm) {
    const auto ranks = static_cast<std::size_t>(comm.size());
    const bool root = comm.rank() == 0;
    using clock = std::chrono::steady_clock;
    for (const std::size_t batch : o.batches) {
        const std::size_t global_batch = o.strong ? batch : batch * ranks;
        sn::model_settings settings{.threads = o.threads, .seed = 1, .deterministic = o.deterministic,
                                    .sync = o.overlapped ? sn::gradient_sync::overlapped : sn::gradient_sync::after_backward};
        sn::model<reference_cnn, sn::adam, sn::sparse_categorical_crossentropy, Comm> m(comm, {}, settings);
        // Enough samples for the warm-up and every repetition, never wrapping around.
        const auto data = synthetic_images(global_batch * (o.steps * (o.reps + 1) + 4));
        std::vector<double> rates, compute, sync;
        block_timer t{o.steps, clock::now(), &rates, &compute, &sync, global_batch};
        m.fit(data, {.epochs = 1, .batch_size = global_batch, .shuffle = false, .verbose = false}, t);
        if (root)
            std::printf("{\"bench\":\"train\",\"model\":\"reference_cnn\",\"ranks\":%zu,\"threads\":%zu,\"batch\":%zu,"
                        "\"global_batch\":%zu,\"scaling\":\"%s\",\"sync\":\"%s\",\"deterministic\":%s,"
                        "\"images_per_s\":%.1f,\"images_per_s_reps\":[%s],\"compute_ms_per_step\":%.3f,"
                        "\"sync_ms_per_step\":%.3f,\"simd\":\"%s\"}\n",
                        ranks, m.thread_count(), o.strong ? batch / ranks : batch, global_batch,
                        o.strong ? "strong" : "weak", o.overlapped ? "overlapped" : "after_backward",
                        o.deterministic ? "true" : "false", median(rates),
                        [&] {
                            std::string s;
                            for (double r : rates) {
                                if (!s.empty()) s += ',';
                                s += std::to_string(static_cast<long>(r));
                            }
                            return s;
                        }().c_str(),
                        1e3 * median(compute), 1e3 * median(sync), sn::simd::arch_name());
        std::fflush(stdout);
    }
    if (!o.inference || comm.size() != 1) return;
    sn::model<reference_cnn, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.threads = o.threads, .eval_batch = o.infer_batch});
    const auto data = synthetic_images(o.infer_batch * 4);
    std::vector<double> rates;
    m.predict(data.images);  // warm-up
    for (std::size_t r = 0; r < o.reps; ++r) {
        const auto start = clock::now();
        for (std::size_t s = 0; s < o.infer_steps / 4; ++s) m.predict(data.images);
        const double seconds = std::chrono::duration<double>(clock::now() - start).count();
        rates.push_back(static_cast<double>(data.size() * (o.infer_steps / 4)) / seconds);
    }
    std::printf("{\"bench\":\"inference\",\"model\":\"reference_cnn\",\"threads\":%zu,\"batch\":%zu,\"images_per_s\":%.1f}\n",
                m.thread_count(), o.infer_batch, median(rates));
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    if (o.loader) {
        compare_loader(o);
        return 0;
    }
#if STATICNET_BENCH_MPI
    if (sn::launched_by_mpirun()) {
        sn::mpi_communicator comm(argc, argv);
        run(o, comm);
        return 0;
    }
#endif
    sn::local_communicator comm;
    run(o, comm);
    return 0;
}
