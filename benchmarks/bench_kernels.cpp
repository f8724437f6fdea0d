// Kernel benchmarks: one JSON object per line on stdout.
//
//   bench_kernels [--threads N] [--reps R] [--filter TEXT] [--clock wall|cpu] [--pin]
//
// First line: the machine's measured single-core FMA peak (independent FMA chains) and the
// clock estimated from the latency of a dependent FMA chain, both timed by CPU time (best
// of 20 short tries). Then one line per benchmark:
// GFLOP/s as the median of R timed samples (each sample repeats the call until it lasts at
// least ~20 ms), plus the best sample and the fraction of `threads` x the single-core peak.
// Each benchmark is a small function registered in `benchmarks()`; add new ones there.
//
// `--clock cpu` times by the process's CPU time divided by the thread count instead of wall
// time: on a shared machine it ignores the time the benchmark was descheduled (but counts a
// pool's idle spinning, so use it with one thread). `--pin` binds pool thread i to CPU i
// (Linux): on a busy machine the scheduler may otherwise stack two pool threads on one CPU,
// where the waiting one spins until preempted.

#include <staticnet/core/compat.hpp>
#include <staticnet/core/random.hpp>
#include <staticnet/core/thread_pool.hpp>
#include <staticnet/kernels/gemm.hpp>
#include <staticnet/layers/batch_norm.hpp>
#include <staticnet/layers/conv2d.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <ctime>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif

namespace sn = staticnet;
namespace kn = staticnet::kernels;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double process_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct options {
    std::size_t threads = 1;
    std::size_t reps = 7;
    std::string filter;
    bool cpu_clock = false;
    bool pin = false;
};

// ------------------------------------------------------------------ FMA peak and clock

struct machine_peak {
    double peak_gflops = 0;      // one core, all FMA units busy
    double clock_ghz = 0;        // from the dependent chain, assuming the FMA latency below
    double fma_per_cycle = 0;    // vector FMAs retired per cycle = peak / (lanes * 2 * clock)
    static constexpr double assumed_fma_latency = 4;  // cycles; Skylake..Sapphire Rapids, Zen 2+
};

// Keeps the compiler from deleting or folding the loops (their results are never used).
template <typename T>
void keep(T& value) {
    asm volatile("" : "+m"(value));
}

// `chains` independent FMA chains: enough to cover latency x units, so throughput-bound.
template <std::size_t chains>
double fma_flops_per_second(std::size_t iterations) {
    using sn::simd::float_batch;
    float_batch acc[chains];
    for (std::size_t i = 0; i < chains; ++i) acc[i] = float_batch(1.0f + 1e-3f * float(i));
    float_batch x(0.999999f), y(1e-7f);
    keep(x);
    keep(y);
    const double t0 = process_cpu_seconds();
    for (std::size_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 64
        for (std::size_t i = 0; i < chains; ++i) acc[i] = sn::simd::fma(acc[i], x, y);
    }
    const double s = process_cpu_seconds() - t0;
    for (auto& v : acc) keep(v);
    return double(iterations) * chains * sn::simd::float_lanes * 2 / s;
}

// One dependent chain: each FMA waits for the previous one, so time = count x latency.
double dependent_fma_per_second(std::size_t iterations) {
    using sn::simd::float_batch;
    float_batch acc(1.0f), x(0.999999f), y(1e-7f);
    keep(x);
    keep(y);
    const double t0 = process_cpu_seconds();
    for (std::size_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) acc = sn::simd::fma(acc, x, y);
    }
    const double s = process_cpu_seconds() - t0;
    keep(acc);
    return double(iterations) * 8 / s;
}

machine_peak measure_peak() {
    constexpr std::size_t chains = sn::kernels::detail::vector_registers >= 32 ? 24 : 12;
    machine_peak r;
    fma_flops_per_second<chains>(20'000'000);  // warm up: wake the core's wide units and clocks
    // Many short tries, the best counts: on a shared machine some run undisturbed.
    for (int i = 0; i < 20; ++i) r.peak_gflops = std::max(r.peak_gflops, fma_flops_per_second<chains>(1'000'000) / 1e9);
    double chain = 0;
    for (int i = 0; i < 20; ++i) chain = std::max(chain, dependent_fma_per_second(500'000));
    r.clock_ghz = chain * machine_peak::assumed_fma_latency / 1e9;
    r.fma_per_cycle = r.peak_gflops / (double(sn::simd::float_lanes) * 2 * r.clock_ghz);
    return r;
}

// ------------------------------------------------------------------ timing helpers

struct timing {
    double median_s = 0;
    double best_s = 0;
};

// Median and best of `reps` samples; each sample repeats `f` until ~20 ms have passed.
timing time_call(const std::function<void()>& f, const options& opt) {
    f();  // warm up: first-use buffers, caches, thread wake-up
    std::size_t calls = 1;
    for (;;) {
        const auto t0 = clock_type::now();
        for (std::size_t i = 0; i < calls; ++i) f();
        if (seconds_since(t0) >= 0.02 || calls >= (std::size_t{1} << 20)) break;
        calls *= 2;
    }
    std::vector<double> samples;
    for (std::size_t r = 0; r < opt.reps; ++r) {
        const auto t0 = clock_type::now();
        const double cpu0 = process_cpu_seconds();
        for (std::size_t i = 0; i < calls; ++i) f();
        const double elapsed = opt.cpu_clock ? (process_cpu_seconds() - cpu0) / double(opt.threads) : seconds_since(t0);
        samples.push_back(elapsed / double(calls));
    }
    std::sort(samples.begin(), samples.end());
    return {samples[samples.size() / 2], samples.front()};
}

std::vector<float> random_floats(std::size_t n, sn::rng& g) {
    std::vector<float> v(n);
    for (auto& x : v) x = g.uniform(-1.0f, 1.0f);
    return v;
}

// ------------------------------------------------------------------ benchmarks

struct context {
    const options& opt;
    const machine_peak& peak;
    sn::thread_pool& pool;
};

struct benchmark {
    std::string name;
    std::function<void(const context&)> run;
};

void bench_gemm(const context& ctx, const std::string& name, std::size_t m, std::size_t n, std::size_t k, kn::op op_a,
                kn::op op_b) {
    sn::rng g(7);
    const auto a = random_floats(m * k, g);
    const auto b = random_floats(k * n, g);
    auto c = random_floats(m * n, g);
    const std::size_t lda = op_a == kn::op::none ? k : m;
    const std::size_t ldb = op_b == kn::op::none ? n : k;
    sn::thread_pool* pool = ctx.opt.threads > 1 ? &ctx.pool : nullptr;
    const timing t = time_call([&] {
        kn::gemm(m, n, k, a.data(), lda, op_a, b.data(), ldb, op_b, c.data(), n, false, pool);
    }, ctx.opt);
    const double flops = 2.0 * double(m) * double(n) * double(k);
    const double gflops = flops / t.median_s / 1e9;
    const double peak = ctx.peak.peak_gflops * double(ctx.opt.threads);
    std::printf("{\"kernel\":\"gemm\",\"shape\":\"%s\",\"m\":%zu,\"n\":%zu,\"k\":%zu,\"op_a\":\"%s\",\"op_b\":\"%s\","
                "\"threads\":%zu,\"clock\":\"%s\",\"median_us\":%.1f,\"gflops\":%.2f,\"gflops_best\":%.2f,\"peak_gflops\":%.2f,"
                "\"peak_basis\":\"threads x single-core FMA peak\",\"fraction_of_peak\":%.3f}\n",
                name.c_str(), m, n, k, op_a == kn::op::none ? "N" : "T", op_b == kn::op::none ? "N" : "T",
                ctx.opt.threads, ctx.opt.cpu_clock ? "cpu" : "wall", t.median_s * 1e6, gflops, flops / t.best_s / 1e9, peak, gflops / peak);
    std::fflush(stdout);
}

// The products of the reference CNN (im2col convolutions in NHWC, then dense layers), for
// one batch size: forward, weight gradient (A^T dY) and input gradient (dY W^T).
void add_reference_cnn(std::vector<benchmark>& list, std::size_t batch) {
    using kn::op;
    struct shape {
        const char* name;
        std::size_t m, n, k;
        op op_a, op_b;
    };
    const std::size_t bsz = batch;
    const shape shapes[] = {
        {"conv1_forward", bsz * 676, 32, 9, op::none, op::none},
        {"conv1_weight_grad", 9, 32, bsz * 676, op::transpose, op::none},
        {"conv2_forward", bsz * 121, 64, 288, op::none, op::none},
        {"conv2_weight_grad", 288, 64, bsz * 121, op::transpose, op::none},
        {"conv2_input_grad", bsz * 121, 288, 64, op::none, op::transpose},
        {"conv3_forward", bsz * 9, 128, 576, op::none, op::none},
        {"conv3_weight_grad", 576, 128, bsz * 9, op::transpose, op::none},
        {"conv3_input_grad", bsz * 9, 576, 128, op::none, op::transpose},
        {"dense1_forward", bsz, 128, 128, op::none, op::none},
        {"dense1_weight_grad", 128, 128, bsz, op::transpose, op::none},
        {"dense1_input_grad", bsz, 128, 128, op::none, op::transpose},
        {"dense2_forward", bsz, 10, 128, op::none, op::none},
        {"dense2_weight_grad", 128, 10, bsz, op::transpose, op::none},
        {"dense2_input_grad", bsz, 128, 10, op::none, op::transpose},
    };
    for (const shape& s : shapes) {
        const std::string name = std::string(s.name) + "_b" + std::to_string(batch);
        list.push_back({name, [=](const context& ctx) { bench_gemm(ctx, name, s.m, s.n, s.k, s.op_a, s.op_b); }});
    }
}

// A whole conv2d layer of the reference CNN as the model runs it: forward (im2col, GEMM, bias,
// relu) and backward (relu derivative, bias sums, im2col, weight-gradient GEMM, input-gradient
// GEMM, col2im; the first layer computes no input gradient). FLOPs count the multiply-adds.
template <typename Layer>
void bench_conv_layer(const context& ctx, const std::string& name, std::size_t batch, bool input_gradient) {
    sn::rng g(3);
    const Layer layer{};
    auto in = random_floats(batch * Layer::input_shape.size(), g);
    auto params = random_floats(Layer::parameter_count, g);
    auto dparams = random_floats(Layer::parameter_count, g);
    std::vector<float> out(batch * Layer::output_shape.size()), dout(out.size()), din(in.size());
    std::vector<float> scratch(std::max<std::size_t>(1, Layer::scratch_floats(batch)));
    sn::layer_context lc{.batch = batch, .training = true, .pool = &ctx.pool, .scratch = scratch.data()};
    const sn::forward_buffers forward{.input = sn::buffer<sn::role::input, const float>(in.data()),
                                      .output = sn::buffer<sn::role::output, float>(out.data()),
                                      .parameters = sn::buffer<sn::role::parameters, const float>(params.data()),
                                      .state = {},
                                      .cache = {}};
    const sn::backward_buffers backward{
        .input = forward.input,
        .output = forward.output,
        .output_gradient = sn::buffer<sn::role::output_gradient, float>(dout.data()),
        .input_gradient = sn::buffer<sn::role::input_gradient, float>(input_gradient ? din.data() : nullptr),
        .parameters = forward.parameters,
        .parameter_gradients = sn::buffer<sn::role::parameter_gradients, float>(dparams.data()),
        .cache = {}};
    const timing fwd = time_call([&] { layer.forward(lc, forward); }, ctx.opt);
    const timing bwd = time_call([&] {
        std::copy(out.begin(), out.end(), dout.begin());  // backward may overwrite the output gradient
        layer.backward(lc, backward);
    }, ctx.opt);
    const double f = double(Layer::flops_per_sample) * double(batch);
    const double b = f * (input_gradient ? 2.0 : 1.0);
    const double peak = ctx.peak.peak_gflops * double(ctx.opt.threads);
    for (const auto& [phase, t, flops] : {std::tuple{"forward", fwd, f}, std::tuple{"backward", bwd, b}})
        std::printf("{\"kernel\":\"conv_layer\",\"shape\":\"%s_%s\",\"batch\":%zu,\"threads\":%zu,\"median_us\":%.1f,"
                    "\"gflops\":%.2f,\"peak_gflops\":%.2f,\"fraction_of_peak\":%.3f}\n",
                    name.c_str(), phase, batch, ctx.opt.threads, t.median_s * 1e6, flops / t.median_s / 1e9, peak,
                    flops / t.median_s / 1e9 / peak);
    std::fflush(stdout);
}

void add_conv_layers(std::vector<benchmark>& list, std::size_t batch) {
    using conv1 = sn::conv2d<32, 3, sn::relu>::bind<sn::shape{28, 28, 1}, 1>;
    using conv2 = sn::conv2d<64, 3, sn::relu>::bind<sn::shape{13, 13, 32}, 3>;
    using conv3 = sn::conv2d<128, 3, sn::relu>::bind<sn::shape{5, 5, 64}, 5>;
    const std::string b = "_layer_b" + std::to_string(batch);
    list.push_back({"conv1" + b, [=](const context& ctx) { bench_conv_layer<conv1>(ctx, "conv1" + b, batch, false); }});
    list.push_back({"conv2" + b, [=](const context& ctx) { bench_conv_layer<conv2>(ctx, "conv2" + b, batch, true); }});
    list.push_back({"conv3" + b, [=](const context& ctx) { bench_conv_layer<conv3>(ctx, "conv3" + b, batch, true); }});
}

// A batch_norm layer of the ResNet example (examples/resnet_cnn.hpp), and one narrower than
// an AVX-512 register, in training: forward
// (statistics, normalisation) and backward (gradient sums, input gradient). Memory-bound: the
// JSON gives the tensor size so that the time reads as bandwidth.
template <typename Layer>
void bench_batch_norm_layer(const context& ctx, const std::string& name, std::size_t batch) {
    sn::rng g(5);
    const Layer layer{};
    auto in = random_floats(batch * Layer::input_shape.size(), g);
    auto params = random_floats(Layer::parameter_count, g);
    auto dparams = random_floats(Layer::parameter_count, g);
    std::vector<float> state(Layer::state_count, 1.0f), cache(Layer::cache_floats(batch));
    std::vector<float> out(in.size()), dout(in.size()), din(in.size());
    sn::layer_context lc{.batch = batch, .training = true, .pool = &ctx.pool};
    const sn::forward_buffers forward{.input = sn::buffer<sn::role::input, const float>(in.data()),
                                      .output = sn::buffer<sn::role::output, float>(out.data()),
                                      .parameters = sn::buffer<sn::role::parameters, const float>(params.data()),
                                      .state = sn::buffer<sn::role::state, float>(state.data()),
                                      .cache = sn::buffer<sn::role::cache, float>(cache.data())};
    const sn::backward_buffers backward{
        .input = forward.input,
        .output = forward.output,
        .output_gradient = sn::buffer<sn::role::output_gradient, float>(dout.data()),
        .input_gradient = sn::buffer<sn::role::input_gradient, float>(din.data()),
        .parameters = forward.parameters,
        .parameter_gradients = sn::buffer<sn::role::parameter_gradients, float>(dparams.data()),
        .cache = forward.cache};
    const timing fwd = time_call([&] { layer.forward(lc, forward); }, ctx.opt);
    std::copy(in.begin(), in.end(), dout.begin());
    const timing bwd = time_call([&] { layer.backward(lc, backward); }, ctx.opt);
    const double megabytes = double(in.size() * sizeof(float)) / 1e6;
    for (const auto& [phase, t] : {std::pair{"forward", fwd}, std::pair{"backward", bwd}})
        std::printf("{\"kernel\":\"batch_norm_layer\",\"shape\":\"%s_%s\",\"batch\":%zu,\"threads\":%zu,"
                    "\"median_us\":%.1f,\"tensor_mb\":%.2f}\n",
                    name.c_str(), phase, batch, ctx.opt.threads, t.median_s * 1e6, megabytes);
    std::fflush(stdout);
}

void add_batch_norm_layers(std::vector<benchmark>& list, std::size_t batch) {
    using stem = sn::batch_norm<>::bind<sn::shape{28, 28, 32}, 2>;
    using stage1 = sn::batch_norm<>::bind<sn::shape{14, 14, 32}, 6>;
    using stage2 = sn::batch_norm<>::bind<sn::shape{7, 7, 64}, 8>;
    using narrow = sn::batch_norm<>::bind<sn::shape{14, 14, 8}, 8>;  // fewer channels than an AVX-512 register
    const std::string b = "_layer_b" + std::to_string(batch);
    list.push_back({"bn_28x28x32" + b, [=](const context& ctx) { bench_batch_norm_layer<stem>(ctx, "bn_28x28x32" + b, batch); }});
    list.push_back({"bn_14x14x32" + b, [=](const context& ctx) { bench_batch_norm_layer<stage1>(ctx, "bn_14x14x32" + b, batch); }});
    list.push_back({"bn_7x7x64" + b, [=](const context& ctx) { bench_batch_norm_layer<stage2>(ctx, "bn_7x7x64" + b, batch); }});
    list.push_back({"bn_14x14x8" + b, [=](const context& ctx) { bench_batch_norm_layer<narrow>(ctx, "bn_14x14x8" + b, batch); }});
}

std::vector<benchmark> benchmarks() {
    std::vector<benchmark> list;
    list.push_back({"square_1024", [](const context& ctx) {
                        bench_gemm(ctx, "square_1024", 1024, 1024, 1024, kn::op::none, kn::op::none);
                    }});
    add_reference_cnn(list, 32);
    add_reference_cnn(list, 256);
    add_conv_layers(list, 32);
    add_conv_layers(list, 256);
    add_batch_norm_layers(list, 64);
    return list;
}

options parse(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--threads" && has_value)
            opt.threads = std::max<std::size_t>(1, std::strtoul(argv[++i], nullptr, 10));
        else if (arg == "--reps" && has_value)
            opt.reps = std::max<std::size_t>(1, std::strtoul(argv[++i], nullptr, 10));
        else if (arg == "--filter" && has_value)
            opt.filter = argv[++i];
        else if (arg == "--pin")
            opt.pin = true;
        else if (arg == "--clock" && has_value && (std::strcmp(argv[i + 1], "cpu") == 0 || std::strcmp(argv[i + 1], "wall") == 0))
            opt.cpu_clock = std::strcmp(argv[++i], "cpu") == 0;
        else {
            std::fprintf(stderr, "usage: %s [--threads N] [--reps R] [--filter TEXT] [--clock wall|cpu] [--pin]\n", argv[0]);
            std::exit(2);
        }
    }
    return opt;
}

}  // namespace

// Binds pool thread i to CPU i (mod the CPU count).
void pin_threads(sn::thread_pool& pool) {
#ifdef __linux__
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    pool.run([cpus](std::size_t worker, std::size_t) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(static_cast<int>(worker % cpus), &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) std::fprintf(stderr, "bench_kernels: cannot pin thread %zu\n", worker);
    });
#else
    (void)pool;
    std::fprintf(stderr, "bench_kernels: --pin is only implemented on Linux\n");
#endif
}

// 1-minute load average (other processes sharing the cores make timings noisy), or -1.
double load_average() {
    double load = -1;
    if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
        if (std::fscanf(f, "%lf", &load) != 1) load = -1;
        std::fclose(f);
    }
    return load;
}

int main(int argc, char** argv) {
    const options opt = parse(argc, argv);
    const machine_peak peak = measure_peak();
    std::printf("{\"kernel\":\"fma_peak\",\"arch\":\"%s\",\"lanes\":%zu,\"peak_gflops\":%.2f,\"clock_ghz\":%.3f,"
                "\"clock_method\":\"dependent simd::fma chain, assuming %.0f-cycle FMA latency\","
                "\"fma_per_cycle\":%.2f,\"peak_method\":\"independent simd::fma chains on one thread, best of 20, "
                "process CPU time\",\"hardware_threads\":%u,\"load_average\":%.2f,\"pinned\":%s}\n",
                sn::simd::arch_name(), sn::simd::float_lanes, peak.peak_gflops, peak.clock_ghz,
                machine_peak::assumed_fma_latency, peak.fma_per_cycle, std::thread::hardware_concurrency(), load_average(),
                opt.pin ? "true" : "false");
    std::fflush(stdout);
    sn::thread_pool pool(opt.threads);
    if (opt.pin) pin_threads(pool);
    const context ctx{opt, peak, pool};
    for (const benchmark& b : benchmarks())
        if (opt.filter.empty() || b.name.find(opt.filter) != std::string::npos) b.run(ctx);
}
