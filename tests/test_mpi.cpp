// Data-parallel training under mpirun (run by CTest with 1, 2, 3 and 4 ranks).
//
// Every rank runs every test case in the same order, so the collectives line up. Checks use
// CHECK, never REQUIRE: a rank that left a test case early would leave its peers waiting.
//
// `test_mpi --fail-on-rank R` is not a test case but a scenario for CTest: rank R meets bad
// data in the middle of fit, and the whole job must end with its message.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <staticnet/comm/mpi.hpp>
#include <staticnet/staticnet.hpp>

#include <array>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <cstring>
#include <string_view>

#include <unistd.h>

namespace sn = staticnet;

namespace {

sn::mpi_communicator* world = nullptr;

using conv_net = sn::sequential<sn::input<8, 8, 2>,                                //
                                sn::conv2d<6, 3, sn::relu>, sn::max_pool2d<2>,     //
                                sn::conv2d<8, 2, sn::tanh, 1, sn::padding::same>,  //
                                sn::flatten, sn::dense<16, sn::relu>, sn::dropout<0.2f>, sn::dense<4, sn::softmax>>;

using norm_net = sn::sequential<sn::input<8, 8, 2>, sn::conv2d<4, 3>, sn::batch_norm<0.9f>, sn::relu,  //
                                sn::max_pool2d<2>, sn::flatten, sn::dense<4, sn::softmax>>;

// A small ResNet: a stem, a basic block (identity shortcut) and a block with a projection.
using resnet_net = sn::sequential<
    sn::input<8, 8, 2>, sn::conv2d<4, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::relu,
    sn::residual<sn::conv2d<4, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::relu,
                 sn::conv2d<4, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
    sn::relu,
    sn::residual<sn::projection<sn::conv2d<8, 1, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
                 sn::conv2d<8, 3, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::relu,
                 sn::conv2d<8, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
    sn::relu, sn::average_pool2d<2>, sn::global_average_pool2d, sn::dense<4, sn::softmax>>;

// The layers of modern image networks: a strided depthwise convolution with a multiplier,
// concatenated branches (one of them the input, as DenseNet's), grouped and dilated
// convolutions, silu, gelu and hard_swish (one folded into its convolution), batch_norm.
using modern_net = sn::sequential<
    sn::input<8, 8, 2>, sn::conv2d<8, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::silu,
    sn::depthwise_conv2d<3, sn::relu6, 2, sn::padding::symmetric<1>, 2>,
    sn::concat<sn::branch<sn::conv2d<4, 1, sn::hard_swish>, sn::batch_norm<>>, sn::branch<>>,
    sn::conv2d<8, 3, sn::identity, 1, sn::padding::symmetric<2>, sn::bias::use, 4, 2>, sn::gelu<>,
    sn::conv2d<8, 1, sn::identity, 1, sn::padding::valid, sn::bias::use, 2>, sn::hard_swish, sn::global_average_pool2d,
    sn::dense<4, sn::softmax>>;

sn::data::dataset noisy_classes(std::size_t n, std::uint64_t seed) {
    sn::data::dataset d;
    d.images = xt::zeros<float>({n, std::size_t{8}, std::size_t{8}, std::size_t{2}});
    d.labels = xt::zeros<std::int32_t>({n});
    d.num_classes = 4;
    sn::rng g(seed);
    for (std::size_t i = 0; i < n; ++i) {
        const auto label = static_cast<std::int32_t>(g.below(4));
        d.labels(i) = label;
        for (std::size_t p = 0; p < 128; ++p)
            d.images.data()[i * 128 + p] = g.uniform() * 0.5f + (p % 4 == static_cast<std::size_t>(label) ? 0.5f : 0.0f);
    }
    return d;
}

template <typename Optimizer, typename Comm, typename Net = conv_net>
std::vector<float> train(Comm& comm, sn::model_settings settings, std::size_t batch, std::size_t epochs = 1,
                         sn::history* h = nullptr) {
    const auto data = noisy_classes(90, 7);  // 90 = 7 full batches of 12 and one of 6
    sn::model<Net, Optimizer, sn::categorical_crossentropy, Comm> m(comm, {}, settings);
    auto result = m.fit(data, {.epochs = epochs, .batch_size = batch, .seed = 3, .verbose = false});
    if (h != nullptr) *h = result;
    std::vector<float> values(m.network().parameters().begin(), m.network().parameters().end());
    values.insert(values.end(), m.network().state().begin(), m.network().state().end());
    return values;
}

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
        scale = std::max(scale, static_cast<double>(std::abs(b[i])));
    }
    return diff / scale;
}

}  // namespace

TEST_CASE("P ranks train the same model as one process with the same global batch", "[mpi]") {
    sn::local_communicator alone;
    // A different initial seed on every rank: the broadcast from rank 0 must make them equal.
    const sn::model_settings distributed{.threads = 1, .seed = 100 + static_cast<std::uint64_t>(world->rank())};
    const sn::model_settings single{.threads = 1, .seed = 100};
    SECTION("sgd") {
        const auto ours = train<sn::sgd>(*world, distributed, 12, 2);
        const auto reference = train<sn::sgd>(alone, single, 12, 2);
        CHECK(max_relative_difference(ours, reference) < 1e-5);
    }
    SECTION("adam, overlapped per-layer allreduce") {
        auto settings = distributed;
        settings.sync = sn::gradient_sync::overlapped;
        sn::history h, h_ref;
        const auto ours = train<sn::adam>(*world, settings, 12, 1, &h);
        const auto reference = train<sn::adam>(alone, single, 12, 1, &h_ref);
        CHECK(max_relative_difference(ours, reference) < 1e-5);
        // fit reports the global loss and accuracy on every rank.
        CHECK(h.back().loss == Approx(h_ref.back().loss).epsilon(1e-5));
        CHECK(h.back().accuracy == h_ref.back().accuracy);
    }
    SECTION("synchronised batch_norm statistics cover the global batch") {
        auto settings = distributed;
        settings.sync_batch_norm = true;
        auto single_sync = single;
        single_sync.sync_batch_norm = true;
        const auto ours = train<sn::sgd, sn::mpi_communicator, norm_net>(*world, settings, 12, 1);
        const auto reference = train<sn::sgd, sn::local_communicator, norm_net>(alone, single_sync, 12, 1);
        CHECK(max_relative_difference(ours, reference) < 1e-5);
    }
    SECTION("synchronised batch_norm statistics cover the global batch, in thread parts too") {
        // Parts of 4: each rank's part of a batch of 12 is cut in two or more parts (one alone
        // runs them on 3 parts); the parts' shares are added first, then summed over ranks
        // from each rank's calling thread (MPI is initialised "funneled").
        auto settings = distributed;
        settings.sync_batch_norm = true;
        settings.thread_part = 4;
        settings.threads = 2;
        auto single_sync = single;
        single_sync.sync_batch_norm = true;
        single_sync.thread_part = 4;
        const auto ours = train<sn::sgd, sn::mpi_communicator, norm_net>(*world, settings, 12, 1);
        const auto reference = train<sn::sgd, sn::local_communicator, norm_net>(alone, single_sync, 12, 1);
        CHECK(max_relative_difference(ours, reference) < 1e-5);
    }
    SECTION("an uneven split of the global batch is still exact") {
        const auto ours = train<sn::sgd>(*world, distributed, 7);
        const auto reference = train<sn::sgd>(alone, single, 7);
        CHECK(max_relative_difference(ours, reference) < 1e-5);
    }
}

TEST_CASE("deterministic mode is bitwise identical for any number of ranks and threads", "[mpi][deterministic]") {
    sn::local_communicator alone;
    const sn::model_settings distributed{.threads = 2, .seed = 5, .micro_batch = 3, .deterministic = true};
    const sn::model_settings single{.threads = 1, .seed = 5, .micro_batch = 3, .deterministic = true};
    const auto ours = train<sn::adam>(*world, distributed, 12, 2);
    const auto reference = train<sn::adam>(alone, single, 12, 2);
    CHECK(ours == reference);
    // Residual blocks, batch_norm (statistics of each micro-batch), average pooling: the
    // trained parameters and batch_norm's moving averages (every micro-batch's statistics
    // applied in global order on every rank) are bitwise the same.
    const auto resnet_ours = train<sn::adam, sn::mpi_communicator, resnet_net>(*world, distributed, 12, 1);
    const auto resnet_reference = train<sn::adam, sn::local_communicator, resnet_net>(alone, single, 12, 1);
    REQUIRE(resnet_ours.size() == resnet_net::arena_size + resnet_net::state_size);
    CHECK(resnet_ours == resnet_reference);
    // With the options of modern training: adamw decaying the weights inside the blocks,
    // label smoothing, and clipping by the norm of the gradient summed over the ranks (small
    // enough to clip every step).
    auto with_options = [](sn::model_settings s) {
        s.label_smoothing = 0.1f;
        s.clip_grad_norm = 0.01f;
        return s;
    };
    CHECK(train<sn::adamw, sn::mpi_communicator, resnet_net>(*world, with_options(distributed), 12, 1) ==
          train<sn::adamw, sn::local_communicator, resnet_net>(alone, with_options(single), 12, 1));
    // Depthwise, grouped and dilated convolutions, branches and the activations of modern networks.
    const auto modern_ours = train<sn::adamw, sn::mpi_communicator, modern_net>(*world, with_options(distributed), 12, 1);
    REQUIRE(modern_ours.size() == modern_net::arena_size + modern_net::state_size);
    CHECK(modern_ours == train<sn::adamw, sn::local_communicator, modern_net>(alone, with_options(single), 12, 1));
}

TEST_CASE("deterministic mode: a checkpoint of P ranks resumes bitwise in one process", "[mpi][deterministic][checkpoint]") {
    // Rank 0 picks the directory; every rank trains one epoch and takes part in the checkpoint.
    std::array<std::uint64_t, 1> id{static_cast<std::uint64_t>(::getpid())};
    world->broadcast(std::span<std::uint64_t>(id), 0);
    const auto dir = std::filesystem::temp_directory_path() / ("staticnet-mpi-resume-" + std::to_string(id[0]));
    const sn::model_settings settings{.threads = 1, .seed = 5, .micro_batch = 3, .deterministic = true};
    const auto data = noisy_classes(90, 7);
    const sn::fit_options options{.epochs = 2, .batch_size = 12, .seed = 3, .verbose = false};
    auto first = options;
    first.epochs = 1;
    sn::model<conv_net, sn::adam, sn::categorical_crossentropy, sn::mpi_communicator> distributed(*world, {}, settings);
    distributed.fit(data, first, sn::checkpoint_callback{.directory = dir});
    world->barrier();
    if (world->rank() == 0) {  // one process from here on: no collectives
        sn::model<conv_net, sn::adam, sn::categorical_crossentropy> resumed({}, settings), reference({}, settings);
        CHECK(sn::resume_latest(resumed, dir).has_value());
        auto rest = options;
        rest.resume = true;
        resumed.fit(data, rest);
        reference.fit(data, options);
        const auto a = resumed.network().parameters(), b = reference.network().parameters();
        CHECK(std::equal(a.begin(), a.end(), b.begin()));
        std::filesystem::remove_all(dir);
    }
    world->barrier();
}

TEST_CASE("evaluate reports global numbers on every rank", "[mpi]") {
    const auto data = noisy_classes(50, 9);
    sn::model<conv_net, sn::adam, sn::categorical_crossentropy, sn::mpi_communicator> m(*world, {}, {.threads = 1, .seed = 1});
    sn::model<conv_net, sn::adam, sn::categorical_crossentropy> reference({}, {.threads = 1, .seed = 1});
    m.synchronize_from_root();
    const auto ours = m.evaluate(data);
    const auto theirs = reference.evaluate(data);
    CHECK(ours.loss == Approx(theirs.loss).epsilon(1e-6));
    CHECK(ours.accuracy == theirs.accuracy);
}

TEST_CASE("partitioned data: each rank trains on its own part, of unequal sizes", "[mpi][partitioned]") {
    // Rank r holds 10 + 7r samples of its own; the epoch is their sum and every rank takes
    // the same number of steps (a rank with a small part wraps around it).
    const auto all = noisy_classes(200, 11);
    const std::size_t rank = static_cast<std::size_t>(world->rank()), ranks = static_cast<std::size_t>(world->size());
    std::size_t first = 0;
    for (std::size_t r = 0; r < rank; ++r) first += 10 + 7 * r;
    sn::data::dataset mine;
    mine.images = xt::view(all.images, xt::range(first, first + 10 + 7 * rank));
    mine.labels = xt::view(all.labels, xt::range(first, first + 10 + 7 * rank));
    sn::model<conv_net, sn::adam, sn::categorical_crossentropy, sn::mpi_communicator> m(*world, {}, {.threads = 1});
    sn::history h;
    h = m.fit(mine, {.epochs = 3, .batch_size = 8, .verbose = false, .partitioned = true});
    std::size_t total = 0;
    for (std::size_t r = 0; r < ranks; ++r) total += 10 + 7 * r;
    CHECK(h.size() == 3);
    CHECK(m.steps_done() == 3 * ((total + 7) / 8));
    CHECK(std::isfinite(h.back().loss));
    // The parameters are the same on every rank: sum them over ranks and compare.
    const auto p = m.network().parameters();
    std::vector<double> mine_sum{std::accumulate(p.begin(), p.end(), 0.0)}, sum = mine_sum;
    world->allreduce_sum(std::span<double>(sum));
    CHECK(sum[0] == Approx(mine_sum[0] * static_cast<double>(ranks)).epsilon(1e-12));
}

TEST_CASE("streamed shards: every rank takes the same steps from parts of unequal sizes, deterministically",
          "[mpi][stream]") {
    // Shards of 10, 23, 5, 31 and 12 samples; each rank writes the same set into a folder of
    // its own (ranks may not share a file system) and streams its part of it.
    const auto all = noisy_classes(81, 13);
    const std::size_t rank = static_cast<std::size_t>(world->rank()), ranks = static_cast<std::size_t>(world->size());
    const auto dir = std::filesystem::temp_directory_path() /
                     ("staticnet_mpi_stream_" + std::to_string(::getpid()) + "_" + std::to_string(rank));
    std::filesystem::create_directories(dir);
    const std::array<std::size_t, 6> cuts{0, 10, 33, 38, 69, 81};
    for (std::size_t s = 0; s + 1 < cuts.size(); ++s)
        sn::data::write_shard(dir / sn::data::shard_file_name(s, 5), all, cuts[s], cuts[s + 1]);
    auto train = [&] {
        sn::data::shard_stream stream(dir, rank, ranks, sn::shape{8, 8, 2}, {.shuffle_buffer = 16, .seed = 5});
        sn::model<conv_net, sn::adam, sn::categorical_crossentropy, sn::mpi_communicator> m(*world, {}, {.threads = 1});
        const auto h = m.fit(stream, {.epochs = 2, .batch_size = 8, .seed = 5, .verbose = false});
        CHECK(m.steps_done() == 2 * ((81 + 7) / 8));
        CHECK(std::isfinite(h.back().loss));
        return std::vector<float>(m.network().parameters().begin(), m.network().parameters().end());
    };
    const auto first = train();
    CHECK(train() == first);  // the same seed and rank count: the same training
    // The parameters are the same on every rank.
    std::vector<double> mine{std::accumulate(first.begin(), first.end(), 0.0)}, sum = mine;
    world->allreduce_sum(std::span<double>(sum));
    CHECK(sum[0] == Approx(mine[0] * static_cast<double>(ranks)).epsilon(1e-12));
    std::filesystem::remove_all(dir);
}

TEST_CASE("default threads: at least 1, and the same on ranks of a node with the same CPU mask", "[mpi][threads]") {
    sn::model<conv_net, sn::adam, sn::categorical_crossentropy, sn::mpi_communicator> m(*world);
    const sn::rank_placement& p = world->placement();
    const auto threads = static_cast<std::uint64_t>(m.thread_count());
    CHECK(threads >= 1);
    CHECK(threads == p.default_threads());
    CHECK(p.sharing_ranks >= 1);
    CHECK(p.sharing_ranks <= p.local_ranks);
    CHECK(p.local_ranks <= static_cast<std::size_t>(world->size()));
    CHECK(p.cpus == std::max<std::size_t>(1, sn::cpu_mask::of_this_process().count()));
    // Every rank of this node tells the others its mask and its count.
    MPI_Comm node = MPI_COMM_NULL;
    MPI_Comm_split_type(world->native(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int ranks = 0;
    MPI_Comm_size(node, &ranks);
    CHECK(static_cast<std::size_t>(ranks) == p.local_ranks);
    const sn::cpu_mask own = sn::cpu_mask::of_this_process();
    constexpr int words = static_cast<int>(sn::cpu_mask::word_count);
    std::vector<std::uint64_t> masks(static_cast<std::size_t>(ranks) * sn::cpu_mask::word_count), counts(static_cast<std::size_t>(ranks));
    MPI_Allgather(own.words().data(), words, MPI_UINT64_T, masks.data(), words, MPI_UINT64_T, node);
    MPI_Allgather(&threads, 1, MPI_UINT64_T, counts.data(), 1, MPI_UINT64_T, node);
    MPI_Comm_free(&node);
    for (std::size_t r = 0; r < static_cast<std::size_t>(ranks); ++r) {
        const auto theirs = sn::cpu_mask::from_words(
            std::span<const std::uint64_t, sn::cpu_mask::word_count>(masks.data() + r * sn::cpu_mask::word_count, sn::cpu_mask::word_count));
        if (theirs == own) CHECK(counts[r] == threads);
    }
}

// Rank `bad_rank` gets a label the model cannot produce and throws inside fit; the job must
// end (MPI_Abort from fit) instead of leaving the other ranks in the next allreduce.
int fail_on_rank(int bad_rank) {
    auto data = noisy_classes(64, 1);
    if (world->rank() == bad_rank) data.labels(5) = 9;
    sn::model<conv_net, sn::adam, sn::categorical_crossentropy, sn::mpi_communicator> m(*world, {}, {.threads = 1});
    m.fit(data, {.epochs = 1000, .batch_size = 8, .verbose = false});
    return 0;  // not reached
}

int main(int argc, char** argv) {
    sn::mpi_communicator comm(argc, argv);
    world = &comm;
    if (argc == 3 && std::string_view(argv[1]) == "--fail-on-rank") return fail_on_rank(std::atoi(argv[2]));
    return Catch::Session().run(argc, argv);
}
