// bench_allreduce: time of `mpi_communicator::allreduce_sum` as a function of message size,
// the input of benchmarks/scaling_model.py (an alpha-beta fit of the gradient sync).
//
//   mpirun -np P bench_allreduce [--reps R] [--warmup W] [--max-bytes B]
//
// Prints one JSON object per line (rank 0 only): ranks, element type, elements, bytes, and the
// median and minimum over R repetitions of the slowest rank's time, in microseconds. Sizes: the
// powers of 2 from 1 KiB to --max-bytes (default 4 MiB), plus the messages training sends:
// - the reference CNN's and the ResNet example's whole gradient arena as floats (one allreduce
//   after backward, the default sync mode) and as int64 (deterministic mode: exact fixed-point
//   sums, twice the bytes),
// - "layers": the reference CNN's per-layer blocks, started with MPI_Iallreduce in backward
//   order and completed with one wait, as the overlapped sync mode sends them (without the
//   compute they overlap with).
// With one rank the communicator skips the collective, so the times are the call's overhead.
#include <staticnet/comm/mpi.hpp>

#include "reference_cnn.hpp"
#include "resnet_cnn.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sn = staticnet;

namespace {

struct options {
    std::size_t reps = 200, warmup = 20, max_bytes = std::size_t{4} << 20;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "bench_allreduce: missing value after %s\n", argv[i]);
            std::exit(2);
        }
        const std::size_t v = std::strtoull(argv[++i], nullptr, 10);
        if (a == "--reps") o.reps = std::max<std::size_t>(v, 1);
        else if (a == "--warmup") o.warmup = v;
        else if (a == "--max-bytes") o.max_bytes = v;
        else {
            std::fprintf(stderr, "bench_allreduce: unknown option %s\n", argv[i - 1]);
            std::exit(2);
        }
    }
    return o;
}

// Times `op` reps times; each repetition starts after a barrier (so that a late rank does not
// count against the next one) and counts the slowest rank, which is what a training step waits for.
template <typename Op>
void measure(sn::mpi_communicator& comm, const options& o, const char* type, const char* what, std::size_t elements,
             std::size_t bytes, Op op) {
    using clock = std::chrono::steady_clock;
    for (std::size_t i = 0; i < o.warmup; ++i) op();
    std::vector<double> local(o.reps), slowest(o.reps);
    for (std::size_t r = 0; r < o.reps; ++r) {
        comm.barrier();
        const auto t0 = clock::now();
        op();
        local[r] = std::chrono::duration<double, std::micro>(clock::now() - t0).count();
    }
    MPI_Reduce(local.data(), slowest.data(), static_cast<int>(o.reps), MPI_DOUBLE, MPI_MAX, 0, comm.native());
    if (comm.rank() != 0) return;
    std::sort(slowest.begin(), slowest.end());
    const std::size_t n = slowest.size();
    const double median = n % 2 == 1 ? slowest[n / 2] : 0.5 * (slowest[n / 2 - 1] + slowest[n / 2]);
    std::printf("{\"bench\":\"allreduce\",\"ranks\":%d,\"type\":\"%s\",\"message\":\"%s\",\"elements\":%zu,"
                "\"bytes\":%zu,\"reps\":%zu,\"median_us\":%.2f,\"min_us\":%.2f}\n",
                comm.size(), type, what, elements, bytes, o.reps, median, slowest.front());
    std::fflush(stdout);
}

template <typename T>
void whole(sn::mpi_communicator& comm, const options& o, const char* type, const char* what, std::size_t elements) {
    // Zeros: repeated in-place sums neither overflow nor turn subnormal, and adding them costs
    // what adding gradients costs.
    std::vector<T> buffer(elements, T{0});
    measure(comm, o, type, what, elements, elements * sizeof(T), [&] { comm.allreduce_sum(std::span<T>(buffer)); });
}

}  // namespace

int main(int argc, char** argv) {
    sn::mpi_communicator comm{argc, argv};
    const options o = parse(argc, argv);
    for (std::size_t bytes = 1024; bytes <= o.max_bytes; bytes *= 2) whole<float>(comm, o, "float", "sweep", bytes / 4);
    whole<float>(comm, o, "float", "reference_cnn", reference_cnn::arena_size);
    whole<float>(comm, o, "float", "resnet_cnn", resnet_cnn::arena_size);
    whole<std::int64_t>(comm, o, "int64", "reference_cnn", reference_cnn::arena_size);
    whole<std::int64_t>(comm, o, "int64", "resnet_cnn", resnet_cnn::arena_size);

    // The overlapped mode's messages: one per layer with parameters, last layer first.
    std::vector<float> grads(reference_cnn::arena_size, 0.0f);
    std::size_t blocks = 0;
    for (std::size_t l = 0; l < reference_cnn::layer_count; ++l) blocks += reference_cnn::layer_block(l) != 0 ? 1 : 0;
    const std::span<float> arena(grads);
    measure(comm, o, "float", ("layers_" + std::to_string(blocks)).c_str(), reference_cnn::arena_size,
            reference_cnn::arena_size * sizeof(float), [&] {
                if (comm.size() == 1) return;  // as the model does: no reductions on one rank
                for (std::size_t l = reference_cnn::layer_count; l-- > 0;)
                    if (reference_cnn::layer_block(l) != 0)
                        comm.start_allreduce_sum(arena.subspan(reference_cnn::layer_offset(l), reference_cnn::layer_block(l)));
                comm.wait_all();
            });
    return 0;
}
