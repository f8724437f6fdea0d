#pragma once
/// @file
/// `model<Net, Optimizer, Loss, Communicator>`: trains a `sequential` network, Keras-style.
///
///     sn::model<net, sn::adam, sn::categorical_crossentropy> m{{.learning_rate = 1e-3f}};
///     m.summary(std::cout);
///     auto h = m.fit(data.train, {.epochs = 10, .batch_size = 32, .validation = &data.test});
///     auto [loss, accuracy] = m.evaluate(data.test);
///     xt::xtensor<float, 2> p = m.predict(images);
///
/// `fit` and `evaluate` take a `data::dataset` (float pixels) or a `data::byte_dataset`
/// (8-bit pixels, turned into floats batch by batch; bitwise the same training). `fit` also
/// takes a `data::shard_stream`: each rank's shards read from disk as training runs.
///
/// Data parallelism is the `Communicator` policy (see comm/). `batch_size` is the *global*
/// batch: every rank draws the same shuffled order and takes its own contiguous part of each
/// batch, so the ranks see disjoint samples and together the whole epoch. Each rank adds up
/// the gradients of its samples scaled by 1 / global batch, one allreduce sums them, and
/// every rank applies the same optimizer step: the result equals single-process training with
/// the same global batch, up to float rounding.
///
/// Memory is sized when `fit`, `evaluate` or `predict` starts; a training step allocates
/// nothing. A non-finite gradient stops training with `numeric_error` naming the step.
/// Training, evaluation and prediction flush subnormal floats to zero (core/denormals.hpp).

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../comm/local.hpp"
#include "../comm/placement.hpp"
#include "../core/aligned_buffer.hpp"
#include "../core/compat.hpp"
#include "../core/denormals.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/thread_pool.hpp"
#include "../data/byte_dataset.hpp"
#include "../data/dataset.hpp"
#include "../data/labelled_data.hpp"
#include "../data/loader.hpp"
#include "../data/shard_stream.hpp"
#include "../kernels/elementwise.hpp"
#include "../layers/activations.hpp"
#include "../model/sequential.hpp"
#include "../model/summary.hpp"
#include "callbacks.hpp"
#include "history.hpp"
#include "losses.hpp"
#include "metrics.hpp"
#include "optimizers.hpp"
#include "progress.hpp"

namespace staticnet {

/// How `fit` trains.
struct fit_options {
    std::size_t epochs = 1;
    std::size_t batch_size = 32;            ///< global batch, over all ranks
    bool shuffle = true;                    ///< a new seeded permutation every epoch
    std::uint64_t seed = 0;                 ///< shuffling and dropout
    /// Evaluated after every epoch: `&test` of a `dataset` or a `byte_dataset`, or none.
    data::dataset_ref validation{};
    bool verbose = true;                    ///< progress output on rank 0
    std::size_t initial_epoch = 0;          ///< epochs already done (numbering continues after them)
    /// Each rank passes its *own* part of the data (e.g. the shards `data::load_shards`
    /// assigned to it) instead of the whole set. The epoch is then the sum of the parts; each
    /// rank shuffles its part and takes its share of every global batch from it, wrapping
    /// around when its part is smaller than its share, so every rank takes the same steps.
    bool partitioned = false;
    /// Augmentation of training images, applied on the loader thread (seeded by `seed`, the
    /// epoch and the sample, so it does not depend on the number of ranks or threads).
    bool flip = false;                  ///< random horizontal flips
    std::size_t crop_padding = 0;       ///< zero-pad by this many pixels, crop back at random
    /// Continue from `model::position()` (set by `load_checkpoint`): its epoch, the steps
    /// already done in that epoch and their running sums. `batch_size` and `seed` must be
    /// those of the interrupted run, so the remaining steps see the same samples.
    bool resume = false;
};

/// Where training stands: what a checkpoint needs besides the weights and optimizer state
/// to continue exactly. (The shuffle order and dropout masks derive from `seed`, the epoch
/// and the optimizer's step count, so no generator state needs saving.)
struct training_position {
    std::uint64_t epoch = 0;        ///< epochs completed
    std::uint64_t step = 0;         ///< steps done in the next epoch
    std::uint64_t batch_size = 0;   ///< the global batch of the run
    std::uint64_t seed = 0;         ///< the fit seed of the run
    double loss_sum = 0.0;          ///< running sums of the next epoch's steps done so far
    double correct = 0.0;
    double seen = 0.0;
};

/// The result of `evaluate`.
struct evaluation {
    double loss = 0.0;
    double accuracy = 0.0;
};

/// When gradients are summed over ranks.
enum class gradient_sync {
    after_backward,  ///< one allreduce of the whole gradient arena after backward
    overlapped,      ///< one non-blocking allreduce per layer, started as backward finishes it
};

/// Where the time of the training steps went, summed since the last `reset_timings`.
struct step_timings {
    std::uint64_t steps = 0;
    double compute_seconds = 0.0;  ///< forward, loss, backward (and fixed-point conversion)
    double sync_seconds = 0.0;     ///< waiting for the gradient reduction over ranks
    double update_seconds = 0.0;   ///< the finiteness check and the optimizer step
};

/// Settings of a model that are not the optimizer's.
struct model_settings {
    /// Threads of this rank. 0: the CPUs it may run on (its affinity mask), shared out among
    /// the ranks of its node that may run on the same ones, at least 1 (comm/placement.hpp).
    std::size_t threads = 0;
    std::uint64_t seed = 0;         ///< weight initialisation
    std::size_t eval_batch = 256;   ///< batch size of evaluate and predict
    /// Samples per forward/backward pass; a rank's part of the batch is processed in pieces of
    /// this size, one after another, and their gradients accumulated (memory use follows it).
    /// 0 = all at once, or in `thread_part`s.
    std::size_t micro_batch = 0;
    /// How the threads share a training step (with micro_batch = 0, not deterministic, and a
    /// network without batch statistics, see `sequential::samples_independent`): the rank's
    /// part of the batch is cut into parts of this many samples, each thread runs whole parts
    /// through the network in a workspace of its own (no synchronisation between layers, which
    /// is what lets 2 threads do nearly twice the work of one on small batches), and the parts'
    /// gradients are added in part order. The cut depends on the batch alone, so a step gives
    /// bitwise the same result with any number of threads. 0: the threads share every layer of
    /// one pass over the whole part instead (as batch_norm networks always do).
    std::size_t thread_part = 16;
    /// Bitwise-identical training for any number of ranks and threads: the global batch is cut
    /// into fixed micro-batches (`micro_batch`, 8 if 0) whose gradients are summed exactly in
    /// 64-bit fixed point, so the order of additions cannot matter.
    bool deterministic = false;
    gradient_sync sync = gradient_sync::after_backward;
    /// batch_norm statistics over the whole global batch instead of each rank's part.
    bool sync_batch_norm = false;
};

namespace detail {
/// Whether `C` has at least one hook `fit` can call on a `C&` (a callback whose hooks are
/// all non-const, passed as a const object, would otherwise be skipped without a word).
template <typename C, typename M>
inline constexpr bool is_fit_callback =
    requires(C& c, M& m, const fit_options& o, std::size_t i, const batch_log& b, const epoch_log& e, const history& h) {
        requires(requires { c.on_train_begin(m, o); } || requires { c.on_epoch_begin(m, i, i); } ||
                 requires { c.on_batch_begin(m, b); } || requires { c.on_batch_end(m, b); } ||
                 requires { c.on_epoch_end(m, e); } || requires { c.on_train_end(m, h); });
    };
}  // namespace detail

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator = local_communicator>
class model {
public:
    using network_type = Net;
    using optimizer_type = Optimizer;
    using loss_type = Loss;
    using communicator_type = Communicator;
    static constexpr std::size_t classes = Net::output_shape.size();
    static_assert(Net::output_shape.is_vector(), "model: the network must end in a vector (e.g. dense<10, softmax>)");

    /// A single-process model.
    explicit model(typename Optimizer::options opt = {}, model_settings settings = {})
        requires std::same_as<Communicator, local_communicator>
        : model(local_comm_, opt, settings) {}

    /// A model whose gradients are synchronised through `comm` (which must outlive it).
    explicit model(Communicator& comm, typename Optimizer::options opt = {}, model_settings settings = {})
        : comm_(&comm), optimizer_(opt), settings_(settings),
          pool_(detail::model_threads(settings.threads, comm.placement(), comm.rank() == 0)),
          running_threads_(std::min(pool_.size(), std::max<std::size_t>(1, comm.placement().cpus))) {
        net_.initialize(settings.seed);
        optimizer_.reset(Net::arena_size);
        if (comm.rank() == 0) simd::warn_once_if_narrower_than_cpu();
    }

    /// The Keras-like table of layers, shapes and parameter counts (rank 0 only).
    void summary(std::ostream& os) const {
        if (comm_->rank() == 0) print_summary<Net>(os);
    }

    /// Trains for `options.epochs` epochs; returns the global per-epoch results.
    template <data::labelled_data Data, typename... Callbacks>
    history fit(const Data& train, const fit_options& options, Callbacks&&... callbacks);

    /// Trains from shards streamed from disk, each rank its own (`partitioned` is implied,
    /// `shuffle` and `seed` of the order are the stream's own options; no flips or crops).
    template <typename... Callbacks>
    history fit(data::shard_stream& train, const fit_options& options, Callbacks&&... callbacks);

    /// Global mean loss and accuracy on `data` (each rank evaluates its part).
    template <data::labelled_data Data>
    evaluation evaluate(const Data& data);

    /// Class probabilities (the network output) of `images` [N, H, W, C]: [N, outputs].
    xt::xtensor<float, 2> predict(const xt::xtensor<float, 4>& images);
    /// The same for stored 8-bit pixels (v means v / 255), converted batch by batch.
    xt::xtensor<float, 2> predict(const xt::xtensor<std::uint8_t, 4>& images);

    /// One training step on `batch` samples at `images` (NHWC) with their `targets`: adds the
    /// gradient, synchronises it and updates the parameters. `global_batch` is the size of
    /// the batch over all ranks, `first_sample` this part's index in it. Returns the summed
    /// loss and correct count of this rank's samples.
    struct step_result {
        double loss = 0.0;
        std::size_t correct = 0;
    };
    step_result train_step(const float* images, batch_targets targets, std::size_t batch, std::size_t global_batch,
                           std::size_t first_sample, std::uint64_t step_seed);

    /// Time spent in the phases of the training steps so far.
    [[nodiscard]] const step_timings& timings() const noexcept { return timings_; }
    void reset_timings() noexcept { timings_ = {}; }

    /// Where training stands, as this rank counts it (running sums are this rank's own).
    [[nodiscard]] const training_position& position() const noexcept { return position_; }
    /// The position with running sums over all ranks (a collective: call it on every rank).
    training_position global_position() {
        training_position p = position_;
        const auto sums = global_sums(std::array<double, 3>{p.loss_sum, p.correct, p.seen});
        p.loss_sum = sums[0];
        p.correct = sums[1];
        p.seen = sums[2];
        return p;
    }
    /// Tells `fit` that every rank already holds the same weights (e.g. loaded from a
    /// checkpoint), so it skips the initial broadcast from rank 0.
    void mark_synchronized() noexcept { synchronized_ = true; }
    /// Sets the position to continue from (on every rank; the running sums count once, on rank 0).
    void set_position(training_position p) noexcept {
        if (comm_->rank() != 0) p.loss_sum = p.correct = p.seen = 0.0;
        position_ = p;
    }

    /// Asks `fit` to stop after the current epoch (early stopping).
    void stop_training() noexcept { stop_requested_ = true; }
    [[nodiscard]] float learning_rate() const noexcept { return optimizer_.learning_rate(); }
    void set_learning_rate(float lr) noexcept { optimizer_.set_learning_rate(lr); }

    [[nodiscard]] Net& network() noexcept { return net_; }
    [[nodiscard]] const Net& network() const noexcept { return net_; }
    [[nodiscard]] Optimizer& optimizer_state() noexcept { return optimizer_; }
    [[nodiscard]] Communicator& comm() noexcept { return *comm_; }
    [[nodiscard]] thread_pool& threads() noexcept { return pool_; }
    [[nodiscard]] std::size_t thread_count() const noexcept { return pool_.size(); }
    /// Training steps done so far (all fits together).
    [[nodiscard]] std::uint64_t steps_done() const noexcept { return optimizer_.iterations(); }

    /// Makes every rank's parameters, state and optimizer state equal to rank 0's.
    void synchronize_from_root() {
        comm_->broadcast(net_.parameters(), 0);
        comm_->broadcast(net_.state(), 0);
        comm_->broadcast(optimizer_.state(), 0);
    }

private:
    static constexpr bool output_is_softmax = [] {
        using last = typename Net::template layer_type<Net::layer_count - 1>;
        return traits_of<last>().activation.forward == activation_info_of<softmax>.forward;
    }();
    static constexpr bool fused_softmax = output_is_softmax && Loss::fuses_softmax;

    /// What both `fit`s do: check the callbacks, run, and end the job on every rank when this
    /// one fails.
    template <typename Data, typename... Callbacks>
    history fit_checked(Data& train, const fit_options& options, Callbacks&... callbacks);
    template <typename Data, typename... Callbacks>
    history run_fit(Data& train, const fit_options& options, Callbacks&... callbacks);
    template <typename Pixel>
    void check_images(const xt::xtensor<Pixel, 4>& images, const char* what) const;
    template <typename Data>
    void check_dataset(const Data& d, const char* what) const;
    void check_stream(const data::shard_stream& s) const;
    template <typename Pixel>
    xt::xtensor<float, 2> run_predict(const xt::xtensor<Pixel, 4>& images);
    /// Copies samples `order[0]`, ..., `order[count - 1]` of `d` into rows 0 to count - 1 of
    /// the batch buffers: the images, the labels (argmax of the targets where `d` has no
    /// labels) and the targets (`d`'s own, else one-hot rows when the loss needs them).
    template <typename Data>
    batch_targets gather(const Data& d, const std::size_t* order, std::size_t count);
    /// Targets for `count` samples with these labels (one-hot rows when the loss needs them).
    batch_targets one_hot(const std::int32_t* labels, std::size_t count);
    void prepare_buffers(std::size_t batch);
    void check_finite_gradient(std::size_t step, thread_pool& pool);
    /// Samples per evaluation or prediction pass: never more than a training micro-batch, so
    /// `micro_batch` bounds the workspace for everything.
    [[nodiscard]] std::size_t eval_batch() const noexcept {
        return micro_batch() == 0 ? settings_.eval_batch : std::min(settings_.eval_batch, micro_batch());
    }
    /// Samples per forward/backward pass (0 = the whole part).
    [[nodiscard]] std::size_t micro_batch() const noexcept {
        return settings_.deterministic && settings_.micro_batch == 0 ? 8 : settings_.micro_batch;
    }
    /// This rank's part [first, last) of a global batch of `n` samples. In deterministic mode
    /// the cut falls between whole micro-batches, so every micro-batch is the same on any
    /// number of ranks.
    [[nodiscard]] std::pair<std::size_t, std::size_t> local_part(std::size_t n) const noexcept {
        const auto ranks = static_cast<std::size_t>(comm_->size());
        const auto rank = static_cast<std::size_t>(comm_->rank());
        if (!settings_.deterministic) return {n * rank / ranks, n * (rank + 1) / ranks};
        const std::size_t m = micro_batch(), pieces = (n + m - 1) / m;
        return {std::min(n, pieces * rank / ranks * m), std::min(n, pieces * (rank + 1) / ranks * m)};
    }
    void accumulate_fixed_point();
    void synchronize_gradients();
    /// Deterministic mode: gathers every micro-batch's record of state updates on every rank
    /// and applies them in global order (see `layer_context::state_record`).
    void replay_state_records(std::size_t records);
    /// Whether a step records state updates instead of applying them in forward.
    [[nodiscard]] bool records_state() const noexcept {
        if constexpr (Net::state_size != 0 && Net::replays_state_updates) return settings_.deterministic;
        else return false;
    }
    /// Parts of `thread_part` samples a step of `batch` samples is cut into; 0 when the step
    /// runs as one pass (or micro-batches) with the threads sharing each layer.
    [[nodiscard]] std::size_t thread_parts(std::size_t batch) const noexcept {
        if constexpr (!Net::samples_independent) return 0;
        if (settings_.thread_part == 0 || micro_batch() != 0 || batch == 0) return 0;
        if (settings_.sync == gradient_sync::overlapped && comm_->size() > 1) return 0;  // per-layer reductions
        return (batch + settings_.thread_part - 1) / settings_.thread_part;
    }
    /// Forward, loss and backward of the parts of a step, the threads taking whole parts; the
    /// gradient arena ends up with part 0's gradient plus the others', added in part order.
    step_result train_parts(const float* images, batch_targets targets, std::size_t batch, std::size_t parts,
                            std::size_t global_batch, std::size_t first_sample, std::uint64_t step_seed);
    /// Forward passes of `count` samples at `images`, inference; returns [count x classes]
    /// (the threads take contiguous shares, each in its own workspace, `infer_piece` samples
    /// at a time).
    const float* infer(const float* images, std::size_t count);
    /// Samples per inference pass of a thread: the workspace holds every layer's output for
    /// that many, so a whole evaluation batch per thread (256 / threads) would take tens of
    /// MB for a small CNN, more than its data set held as bytes. A sample's output does not
    /// depend on the samples beside it, so the piece size changes nothing else.
    static constexpr std::size_t infer_piece = 32;
    /// Sums `values` over ranks, then returns them.
    template <std::size_t N>
    std::array<double, N> global_sums(std::array<double, N> values) {
        comm_->allreduce_sum(std::span<double>(values));
        return values;
    }

    inline static local_communicator local_comm_{};
    Communicator* comm_;
    rank_reducer reducer_{comm_, [](void* c, std::span<double> v) { static_cast<Communicator*>(c)->allreduce_sum(v); }};
    Net net_;
    Optimizer optimizer_;
    model_settings settings_;
    thread_pool pool_;
    /// The pool's threads that can run at once (no more than the rank's CPUs): more only take
    /// turns, so they do not count when a step chooses how its threads share the work.
    std::size_t running_threads_ = 1;
    thread_pool one_thread_{1};  ///< the layers' pool inside a thread's own part
    /// Per thread (sample-parallel steps and inference): a workspace and a gradient block.
    std::vector<typename Net::workspace> thread_workspaces_;
    std::vector<aligned_buffer<float>> thread_gradients_;
    std::vector<step_result> part_results_;
    aligned_buffer<float> infer_outputs_;
    aligned_buffer<float> batch_images_, batch_targets_;
    aligned_buffer<std::int64_t> fixed_gradients_;  // deterministic mode: exact sums
    /// Deterministic mode with state (batch_norm): one record of state updates per
    /// micro-batch of the global batch, and their bits as integers for the exact allreduce.
    aligned_buffer<float> state_records_;
    aligned_buffer<std::int64_t> state_record_bits_;
    std::vector<std::int32_t> batch_labels_;
    bool stop_requested_ = false;
    bool synchronized_ = false;
    training_position position_;
    step_timings timings_;
};

// ------------------------------------------------------------------ implementation

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <typename Pixel>
void model<Net, Optimizer, Loss, Communicator>::check_images(const xt::xtensor<Pixel, 4>& images, const char* what) const {
    const auto& s = images.shape();
    const bool ok = Net::input_shape.is_image()
                        ? (s[1] == Net::input_shape.height() && s[2] == Net::input_shape.width() &&
                           s[3] == Net::input_shape.channels())
                        : s[1] * s[2] * s[3] == Net::input_shape.size();
    if (!ok) {
        std::ostringstream msg;
        msg << what << ": images have shape (" << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3]
            << ") but the model's input is " << Net::input_shape;
        throw shape_error(msg.str());
    }
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <typename Data>
void model<Net, Optimizer, Loss, Communicator>::check_dataset(const Data& d, const char* what) const {
    check_images(d.images, what);
    const std::size_t n = d.size();
    std::size_t target_rows = 0, target_columns = 0;  // a byte_dataset has labels only
    if constexpr (std::same_as<Data, data::dataset>) {
        target_rows = d.targets.size() == 0 ? 0 : d.targets.shape()[0];
        target_columns = d.targets.size() == 0 ? 0 : d.targets.shape()[1];
    }
    std::ostringstream msg;
    if (d.labels.size() != n && target_rows == 0)
        msg << what << ": " << n << " images but " << d.labels.size() << " labels";
    else if (target_rows != 0 && (target_rows != n || target_columns != classes))
        msg << what << ": targets have shape (" << target_rows << ", " << target_columns << "), expected ("
            << n << ", " << classes << ")";
    else if (d.labels.size() == n)
        for (std::size_t i = 0; i < n; ++i)
            if (d.labels(i) < 0 || static_cast<std::size_t>(d.labels(i)) >= classes) {
                msg << what << ": label " << d.labels(i) << " of sample " << i << " is outside [0, " << classes
                    << ") (the model has " << classes << " outputs)";
                break;
            }
    if (!msg.str().empty()) throw shape_error(msg.str());
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::check_stream(const data::shard_stream& s) const {
    const shape& sample = s.sample_shape();
    const bool ok = Net::input_shape.is_image()
                        ? (sample.height() == Net::input_shape.height() && sample.width() == Net::input_shape.width() &&
                           sample.channels() == Net::input_shape.channels())
                        : sample.size() == Net::input_shape.size();
    std::ostringstream msg;
    if (!ok)
        msg << "fit (shard stream): the samples have shape " << sample << " but the model's input is "
            << Net::input_shape;
    else if (s.num_classes() > classes)
        msg << "fit (shard stream): the shards have " << s.num_classes() << " classes but the model has " << classes
            << " outputs";
    if (!msg.str().empty()) throw shape_error(msg.str());
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::prepare_buffers(std::size_t batch) {
    // The network holds one micro-batch at a time; the gathered batch is the rank's whole part.
    const std::size_t piece = micro_batch() == 0 ? batch : std::min(batch, micro_batch());
    const std::size_t threads = pool_.size();
    // Inference: each thread forwards its share of an evaluation batch in its own workspace,
    // `infer_piece` samples at a time.
    const std::size_t infer_share = std::min((std::min(batch, eval_batch()) + threads - 1) / threads, infer_piece);
    const std::size_t parts = thread_parts(batch);
    if (parts != 0) {
        if (thread_gradients_.size() < threads) thread_gradients_.resize(threads);
        for (auto& g : thread_gradients_) g.reserve_at_least(Net::arena_size);
        if (part_results_.size() < parts) part_results_.resize(parts);
    }
    const std::size_t own = std::max(infer_share, parts != 0 ? std::min(batch, settings_.thread_part) : 0);
    if (thread_workspaces_.size() < threads) thread_workspaces_.resize(threads);
    for (auto& w : thread_workspaces_) w.prepare(own);
    // The network's own workspace serves the passes over a whole part (or micro-batch).
    if (parts == 0) net_.prepare(piece);
    infer_outputs_.reserve_at_least(std::min(batch, eval_batch()) * classes);
    batch_images_.reserve_at_least(batch * Net::input_shape.size());
    batch_targets_.reserve_at_least(batch * classes);
    if (batch_labels_.size() < batch) batch_labels_.resize(batch);
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <typename Data>
batch_targets model<Net, Optimizer, Loss, Communicator>::gather(const Data& d, const std::size_t* order,
                                                                 std::size_t count) {
    constexpr std::size_t sample = Net::input_shape.size();
    const bool has_labels = d.labels.size() == d.size();
    bool has_targets = false;
    if constexpr (std::same_as<Data, data::dataset>) has_targets = d.targets.size() != 0;
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t s = order[i];
        data::detail::copy_pixels(d, s * sample, sample, batch_images_.data() + i * sample);
        float* target = batch_targets_.data() + i * classes;
        if constexpr (std::same_as<Data, data::dataset>)
            if (has_targets) std::memcpy(target, d.targets.data() + s * classes, classes * sizeof(float));
        batch_labels_[i] = has_labels ? d.labels(s) : static_cast<std::int32_t>(argmax(target, classes));
    }
    if (!has_targets) return one_hot(batch_labels_.data(), count);
    return {batch_targets_.data(), batch_labels_.data()};
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
batch_targets model<Net, Optimizer, Loss, Communicator>::one_hot(const std::int32_t* labels, std::size_t count) {
    if constexpr (Loss::needs_dense_targets) {
        std::fill(batch_targets_.data(), batch_targets_.data() + count * classes, 0.0f);
        for (std::size_t i = 0; i < count; ++i) batch_targets_[i * classes + static_cast<std::size_t>(labels[i])] = 1.0f;
    }
    return {batch_targets_.data(), labels};
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::check_finite_gradient(std::size_t step, thread_pool& pool) {
    // g - g is 0 for every finite g and NaN for NaN or infinity: one pass, no branches; the
    // threads take a range each.
    const auto grads = net_.gradients();
    std::atomic<bool> finite{true};
    kernels::for_simd_ranges(grads.size(), &pool, [&](std::size_t begin, std::size_t end) {
        simd::float_batch acc(0.0f);
        std::size_t i = begin;
        for (; i + simd::float_lanes <= end; i += simd::float_lanes) {
            const auto g = simd::float_batch::load_aligned(grads.data() + i);
            acc += g - g;
        }
        float total = simd::reduce_add(acc);
        for (; i < end; ++i) total += grads[i] - grads[i];
        if (total != 0.0f || std::isnan(total)) finite.store(false, std::memory_order_relaxed);
    });
    if (!finite.load())
        throw numeric_error("training diverged: the gradient of step " + std::to_string(step) +
                            " is not finite (NaN or infinity); lower the learning rate or check the data");
}

// Gradients in fixed point with 40 fractional bits: exact integer sums over micro-batches and
// ranks, a resolution of 1e-12 and a range of +-8e6 (a larger gradient has diverged anyway).
namespace detail {
inline constexpr double fixed_point_scale = 1099511627776.0;  // 2^40
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::accumulate_fixed_point() {
    const auto grads = net_.gradients();
    std::int64_t* acc = fixed_gradients_.data();
    bool in_range = true;
    for (std::size_t i = 0; i < grads.size(); ++i) {
        const double scaled = static_cast<double>(grads[i]) * detail::fixed_point_scale;
        in_range &= std::abs(scaled) < 9.0e18;
        acc[i] += in_range ? std::llround(scaled) : 0;
    }
    if (!in_range)
        throw numeric_error("training diverged: a gradient of step " + std::to_string(optimizer_.iterations() + 1) +
                            " is not finite or too large for deterministic mode");
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::replay_state_records(std::size_t records) {
    if constexpr (Net::state_size != 0 && Net::replays_state_updates) {
        // Each record was written by exactly one rank and is zero on the others, so an integer
        // sum of the bit patterns reproduces it exactly (a float sum would turn -0 into +0).
        const std::size_t n = records * Net::state_size;
        state_record_bits_.resize(n);
        const float* rec = state_records_.data();
        std::int64_t* bits = state_record_bits_.data();
        for (std::size_t i = 0; i < n; ++i) bits[i] = std::bit_cast<std::uint32_t>(rec[i]);
        comm_->allreduce_sum(state_record_bits_.span());
        float* out = state_records_.data();
        for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(static_cast<std::uint32_t>(bits[i]));
        for (std::size_t k = 0; k < records; ++k) net_.update_state(out + k * Net::state_size);
    } else {
        (void)records;
    }
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::synchronize_gradients() {
    if (settings_.deterministic) {
        comm_->allreduce_sum(fixed_gradients_.span());
        const auto grads = net_.gradients();
        for (std::size_t i = 0; i < grads.size(); ++i)
            grads[i] = static_cast<float>(static_cast<double>(fixed_gradients_[i]) / detail::fixed_point_scale);
        return;
    }
    if constexpr (requires { comm_->wait_all(); }) {
        if (settings_.sync == gradient_sync::overlapped && comm_->size() > 1) {
            comm_->wait_all();
            return;
        }
    }
    comm_->allreduce_sum(net_.gradients());
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
auto model<Net, Optimizer, Loss, Communicator>::train_step(const float* images, batch_targets targets, std::size_t batch,
                                                            std::size_t global_batch, std::size_t first_sample,
                                                            std::uint64_t step_seed) -> step_result {
    using clock = std::chrono::steady_clock;
    const flush_denormals no_subnormals;
    const auto t0 = clock::now();
    // Called on its own (not from fit), the first step sizes the workspace; later ones find it sized.
    prepare_buffers(batch);
    step_result result;
    const auto grads = net_.gradients();
    const std::size_t parts = thread_parts(batch);
    if (parts != 0) result = train_parts(images, targets, batch, parts, global_batch, first_sample, step_seed);  // each part zeroes its block
    else std::memset(grads.data(), 0, grads.size_bytes());
    if (settings_.deterministic) {
        fixed_gradients_.resize(grads.size());
        fixed_gradients_.fill_zero();
    }
    // Records of state updates, one per micro-batch of the global batch; this rank fills its own.
    const std::size_t records = records_state() ? (global_batch + micro_batch() - 1) / micro_batch() : 0;
    if (records != 0) {
        state_records_.resize(records * Net::state_size);
        state_records_.fill_zero();
    }
    const bool overlap = !settings_.deterministic && settings_.sync == gradient_sync::overlapped && comm_->size() > 1 &&
                         requires { comm_->start_allreduce_sum(grads); };
    const std::size_t piece = micro_batch() == 0 ? std::max<std::size_t>(batch, 1) : micro_batch();
    constexpr std::size_t sample = Net::input_shape.size();
    // With synchronised batch_norm every rank must run forward and backward exactly once per
    // step, even with no samples, or the statistics' allreduces would not pair up.
    const bool sync_statistics = settings_.sync_batch_norm && comm_->size() > 1;
    const std::size_t pieces = batch == 0 ? (sync_statistics ? 1 : 0) : (batch + piece - 1) / piece;
    for (std::size_t i = 0, first = 0; parts == 0 && i < pieces; ++i, first += piece) {
        const std::size_t count = std::min(piece, batch - first);
        const bool last_piece = first + count == batch;
        const batch_targets part{targets.dense + first * classes, targets.labels + first};
        const float* x = images + first * sample;
        layer_context ctx{.batch = count, .training = true, .pool = &pool_, .step_seed = step_seed,
                          .first_sample = first_sample + first,
                          .batch_statistics = sync_statistics ? &reducer_ : nullptr};
        // Micro-batches start at multiples of micro_batch() in the global batch (local_part).
        if (records != 0) ctx.state_record = state_records_.data() + (first_sample + first) / piece * Net::state_size;
        const float* out = net_.forward(x, ctx);
        result.loss += Loss::value(out, part, count, classes);
        result.correct += count_correct(out, part.labels, count, classes);
        Loss::gradient(out, part, count, classes, 1.0f / static_cast<float>(global_batch), fused_softmax,
                       net_.output_gradient(count));
        ctx.gradient_is_pre_activation = fused_softmax;
        if (settings_.deterministic) std::memset(grads.data(), 0, grads.size_bytes());
        if (overlap && last_piece) {
            if constexpr (requires { comm_->start_allreduce_sum(grads); })
                net_.backward(x, ctx, nullptr, [&](std::size_t layer) {
                    if (Net::layer_block(layer) != 0)
                        comm_->start_allreduce_sum(grads.subspan(Net::layer_offset(layer), Net::layer_block(layer)));
                });
        } else {
            net_.backward(x, ctx);
        }
        if (settings_.deterministic) accumulate_fixed_point();
    }
    if (overlap && parts == 0 && pieces == 0) {  // nothing computed here, but the peers' reductions need this rank
        if constexpr (requires { comm_->start_allreduce_sum(grads); })
            for (std::size_t layer = Net::layer_count; layer-- > 0;)
                if (Net::layer_block(layer) != 0)
                    comm_->start_allreduce_sum(grads.subspan(Net::layer_offset(layer), Net::layer_block(layer)));
    }
    const auto t1 = clock::now();
    synchronize_gradients();
    if (records != 0) replay_state_records(records);
    const auto t2 = clock::now();
    // Shared by the threads, except after a step too short for them (a batch under one part
    // ran on this thread): waking them would cost more than these passes over the
    // parameters (element-wise, so the split does not change the result).
    thread_pool& update_pool = parts != 0 && batch < settings_.thread_part ? one_thread_ : pool_;
    check_finite_gradient(optimizer_.iterations() + 1, update_pool);
    if constexpr (requires { optimizer_.step(net_.parameters(), net_.gradients(), &update_pool); })
        optimizer_.step(net_.parameters(), net_.gradients(), &update_pool);
    else
        optimizer_.step(net_.parameters(), net_.gradients());
    const auto t3 = clock::now();
    timings_.steps += 1;
    timings_.compute_seconds += std::chrono::duration<double>(t1 - t0).count();
    timings_.sync_seconds += std::chrono::duration<double>(t2 - t1).count();
    timings_.update_seconds += std::chrono::duration<double>(t3 - t2).count();
    return result;
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
auto model<Net, Optimizer, Loss, Communicator>::train_parts(const float* images, batch_targets targets, std::size_t batch,
                                                             std::size_t parts, std::size_t global_batch,
                                                             std::size_t first_sample, std::uint64_t step_seed)
    -> step_result {
    constexpr std::size_t sample = Net::input_shape.size();
    const std::size_t part = settings_.thread_part;
    const std::size_t threads = pool_.size();
    const auto arena = net_.gradients();
    // One part: forward, loss, backward into `gradients` (zeroed first), in workspace `ws`,
    // the layers on `layer_pool`.
    auto run_part = [&](std::size_t p, typename Net::workspace& ws, std::span<float> gradients, thread_pool& layer_pool) {
        const std::size_t first = p * part, count = std::min(part, batch - first);
        std::memset(gradients.data(), 0, gradients.size_bytes());  // part 0's is the arena: zeroed by its thread
        const batch_targets t{targets.dense + first * classes, targets.labels + first};
        const float* x = images + first * sample;
        layer_context ctx{.batch = count, .training = true, .pool = &layer_pool, .step_seed = step_seed,
                          .first_sample = first_sample + first};
        const float* out = net_.forward(x, ctx, ws);
        part_results_[p] = {Loss::value(out, t, count, classes), count_correct(out, t.labels, count, classes)};
        float* dout = net_.output_gradient(count, ws);
        Loss::gradient(out, t, count, classes, 1.0f / static_cast<float>(global_batch), fused_softmax, dout);
        ctx.gradient_is_pre_activation = fused_softmax;
        net_.backward(x, ctx, ws, gradients);
    };
    // Part 0 goes straight into the (zeroed) arena, every other part into a thread's block,
    // added to the arena in part order: the same operations for any number of threads.
    auto add_parts = [&](std::size_t from, std::size_t to, std::size_t block_of_first) {
        if (to <= std::max<std::size_t>(from, 1)) return;  // part 0 alone: already in the arena, wake nobody
        pool_.parallel_for(Net::arena_size, [&](std::size_t begin, std::size_t end) {
            for (std::size_t p = std::max<std::size_t>(from, 1); p < to; ++p) {
                const float* g = thread_gradients_[p - from + block_of_first].data();
                float* a = arena.data() + begin;
                kernels::map(end - begin, [](auto x, auto y) { return x + y; }, a, a, g + begin);
            }
        }, 4096);
    };
    // Sharing each layer pays only with more running threads than half the parts, and with a
    // whole part to share: a short batch (batch 1) runs its layers faster on one thread than
    // split into regions of a few microseconds.
    if (parts * 2 > running_threads_ || batch < part) {
        // Rounds of up to `threads` parts, one per thread (the pool wakes only those with a part).
        for (std::size_t from = 0; from < parts; from += threads) {
            const std::size_t in_round = std::min(threads, parts - from);
            pool_.run([&](std::size_t w, std::size_t) {
                const std::size_t p = from + w;
                run_part(p, thread_workspaces_[w],
                         p == 0 ? arena : std::span<float>(thread_gradients_[w].data(), Net::arena_size), one_thread_);
            }, in_round);
            add_parts(from, from + in_round, 0);
        }
    } else {
        // Few parts for many threads: one part after another, all threads on each layer.
        for (std::size_t p = 0; p < parts; ++p) {
            run_part(p, thread_workspaces_[0], p == 0 ? arena : std::span<float>(thread_gradients_[0].data(), Net::arena_size),
                     pool_);
            if (p != 0) add_parts(p, p + 1, 0);
        }
    }
    step_result result;
    for (std::size_t p = 0; p < parts; ++p) {
        result.loss += part_results_[p].loss;
        result.correct += part_results_[p].correct;
    }
    return result;
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
const float* model<Net, Optimizer, Loss, Communicator>::infer(const float* images, std::size_t count) {
    constexpr std::size_t sample = Net::input_shape.size();
    pool_.run([&](std::size_t w, std::size_t workers) {
        const std::size_t begin = count * w / workers, end = count * (w + 1) / workers;
        for (std::size_t from = begin; from < end; from += infer_piece) {
            const std::size_t n = std::min(infer_piece, end - from);
            const float* out = net_.forward(images + from * sample, {.batch = n, .training = false, .pool = &one_thread_},
                                            thread_workspaces_[w]);
            std::memcpy(infer_outputs_.data() + from * classes, out, n * classes * sizeof(float));
        }
    }, count);
    return infer_outputs_.data();
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <data::labelled_data Data, typename... Callbacks>
history model<Net, Optimizer, Loss, Communicator>::fit(const Data& train, const fit_options& options,
                                                       Callbacks&&... callbacks) {
    return fit_checked(train, options, callbacks...);
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <typename... Callbacks>
history model<Net, Optimizer, Loss, Communicator>::fit(data::shard_stream& train, const fit_options& options,
                                                       Callbacks&&... callbacks) {
    return fit_checked(train, options, callbacks...);
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <typename Data, typename... Callbacks>
history model<Net, Optimizer, Loss, Communicator>::fit_checked(Data& train, const fit_options& options,
                                                               Callbacks&... callbacks) {
    static_assert((detail::is_fit_callback<Callbacks, model> && ...),
                  "fit: a callback has no hook fit can call (on_train_begin, on_epoch_begin, on_batch_begin, "
                  "on_batch_end, on_epoch_end, on_train_end); if it is passed as const, its hooks must be const");
    try {
        return run_fit(train, options, callbacks...);
    } catch (const std::exception& e) {
        // A rank that fails alone would leave its peers waiting in the next collective forever.
        if (comm_->size() > 1) comm_->abort(e.what());
        throw;
    }
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <typename Data, typename... Callbacks>
history model<Net, Optimizer, Loss, Communicator>::run_fit(Data& train, const fit_options& options,
                                                           Callbacks&... callbacks) {
    // A stream is read in its own order, sample by sample; an in-memory set by index.
    constexpr bool streamed = std::same_as<Data, data::shard_stream>;
    if (options.batch_size == 0) throw error("fit: batch_size must be at least 1");
    if (settings_.sync_batch_norm && micro_batch() != 0)
        throw error("fit: sync_batch_norm needs whole-batch steps (micro_batch = 0, deterministic = false)");
    bool partitioned = options.partitioned;
    if constexpr (streamed) {
        check_stream(train);
        if (options.flip || options.crop_padding != 0)
            throw error("fit: flips and crops are not supported when training from a shard_stream");
        partitioned = true;
    } else {
        if (train.empty()) throw data_error("fit: the training data set is empty");
        check_dataset(train, "fit (training data)");
    }
    if (options.validation != nullptr)
        options.validation.visit([&](const auto& v) { check_dataset(v, "fit (validation data)"); });
    if (!synchronized_) {  // every rank starts from rank 0's weights, whatever its seed
        synchronize_from_root();
        synchronized_ = true;
    }

    const std::size_t n = train.size();
    const auto rank = static_cast<std::size_t>(comm_->rank());
    // The epoch: the whole set (replicated on every rank) or the sum of the ranks' parts.
    std::size_t epoch_samples = n;
    if (partitioned) epoch_samples = static_cast<std::size_t>(global_sums(std::array<double, 1>{double(n)})[0]);
    if (epoch_samples == 0) throw data_error("fit: the training data set is empty");
    const std::size_t global_batch = std::min(options.batch_size, epoch_samples);
    const std::size_t steps = (epoch_samples + global_batch - 1) / global_batch;
    /// This rank's part [lo, hi) of step s's global batch, and that batch's size.
    auto step_part = [&](std::size_t s) {
        const std::size_t size = std::min(global_batch, epoch_samples - s * global_batch);
        const auto [lo, hi] = local_part(size);
        return std::array<std::size_t, 3>{lo, hi, size};
    };
    const std::size_t local_full = step_part(0)[1] - step_part(0)[0];
    const std::size_t local_max = std::max(local_full, step_part(steps - 1)[1] - step_part(steps - 1)[0]);
    if (partitioned && n == 0 && local_max > 0)
        throw data_error("fit: rank " + std::to_string(rank) + " holds no training data but has a share of every batch");
    prepare_buffers(std::max(local_max, eval_batch()));

    // Batches are assembled by the loader, from the samples this rank takes in the epoch (its
    // parts of every batch, in order), on this rank's threads between steps: a loader thread
    // would take its time from a core that already runs a compute thread. Soft targets are
    // gathered here.
    bool soft_targets = false;
    if constexpr (std::same_as<Data, const data::dataset>) soft_targets = train.targets.size() != 0;
    std::optional<data::batch_loader> loader;
    // A stream keeps no per-sample state (its memory must not grow with the data set).
    std::vector<std::size_t> order, local_order;
    if constexpr (!streamed) {
        if (!soft_targets && local_full > 0)
            loader.emplace(train, local_full,
                           data::loader_options{.flip = options.flip, .crop_padding = options.crop_padding,
                                                .seed = options.seed, .pool = &pool_});
        order.resize(n);
        local_order.reserve(steps * local_full);
    }

    progress_bar progress;
    const bool show = options.verbose && rank == 0;
    auto each_callback = [&](auto&& hook) {
        if (show) hook(progress);
        (hook(callbacks), ...);
    };

    if (options.resume) {
        if (position_.batch_size != global_batch || position_.seed != options.seed)
            throw error("fit: cannot resume: the interrupted run used batch size " + std::to_string(position_.batch_size) +
                        " and seed " + std::to_string(position_.seed) + ", this fit asks for " +
                        std::to_string(global_batch) + " and " + std::to_string(options.seed));
    } else {
        position_ = {.epoch = options.initial_epoch, .batch_size = global_batch, .seed = options.seed};
    }

    history h;
    stop_requested_ = false;
    each_callback([&](auto& c) { detail::call_on_train_begin(c, *this, options); });
    for (std::size_t epoch = position_.epoch + 1; epoch <= options.epochs && !stop_requested_; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        const std::size_t first_step = position_.step;
        const std::size_t full_steps = epoch_samples % global_batch == 0 ? steps : steps - 1;
        std::span<const std::size_t> remaining;
        if constexpr (streamed) {
            // The rank's samples of the epoch come in the stream's order; resuming passes
            // over those of the steps already done (all full steps).
            train.start_epoch(epoch);
            train.skip(first_step * local_full);
        } else {
            std::iota(order.begin(), order.end(), std::size_t{0});
            if (options.shuffle) {  // the same order on every rank, or each rank its own part's
                rng g = rng::derived(options.seed ^ (partitioned ? rank << 32 : 0), epoch);
                shuffle(order.begin(), order.end(), g);
            }
            local_order.clear();
            for (std::size_t s = 0, cursor = 0; s < steps; ++s) {
                const auto [lo, hi, size] = step_part(s);
                for (std::size_t i = lo; i < hi; ++i)
                    local_order.push_back(partitioned ? order[cursor++ % n] : order[s * global_batch + i]);
            }
            // The loader takes the full batches still to do (resuming skips those already
            // trained); a last, smaller batch is gathered here (a rank's share of it may even
            // be larger).
            remaining = std::span<const std::size_t>(local_order.data() + first_step * local_full,
                                                     local_order.size() - first_step * local_full);
            if (loader && first_step < full_steps)
                loader->start_epoch(remaining.first((full_steps - first_step) * local_full), epoch);
        }
        each_callback([&](auto& c) { detail::call_on_epoch_begin(c, *this, epoch, options.epochs); });
        double loss_sum = position_.loss_sum, correct = position_.correct, seen = position_.seen;
        // The log of step `step` (1-based) with the running means so far: before the step and
        // after it (`done`: the epoch's steps completed by then).
        auto step_log = [&](std::size_t step_number, std::size_t done) {
            return batch_log{epoch, options.epochs, step_number, steps, seen > 0 ? loss_sum / seen : 0.0,
                             seen > 0 ? correct / seen : 0.0,
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                             std::min(done * global_batch, epoch_samples) - first_step * global_batch};
        };
        for (std::size_t step = first_step; step < steps; ++step) {
            const batch_log before = step_log(step + 1, step);
            each_callback([&](auto& c) { detail::call_on_batch_begin(c, *this, before); });
            const auto [lo, hi, batch_size] = step_part(step);
            const std::size_t count = hi - lo;
            const float* images = batch_images_.data();
            batch_targets t{};
            if (count > 0 && streamed) {
                if constexpr (streamed) {
                    train.next(count, batch_images_.data(), batch_labels_.data());
                    t = one_hot(batch_labels_.data(), count);
                }
            } else if (count > 0 && loader && step < full_steps) {
                const data::batch* b = loader->next();
                if (b == nullptr || b->size != count) throw error("fit: the batch loader fell out of step");
                images = b->images.data();
                t = one_hot(b->labels.data(), count);
            } else if (count > 0) {
                if constexpr (!streamed) t = gather(train, remaining.data() + (step - first_step) * local_full, count);
            }
            const std::uint64_t step_seed = rng::derived(options.seed ^ 0x5eed, optimizer_.iterations()).operator()();
            const auto r = train_step(images, t, count, batch_size, lo, step_seed);
            loss_sum += r.loss;
            correct += static_cast<double>(r.correct);
            seen += static_cast<double>(count);
            position_.step = step + 1;
            position_.loss_sum = loss_sum;
            position_.correct = correct;
            position_.seen = seen;
            const batch_log after = step_log(step + 1, step + 1);
            each_callback([&](auto& c) { detail::call_on_batch_end(c, *this, after); });
        }
        const auto totals = global_sums(std::array<double, 3>{loss_sum, correct, seen});
        position_ = {.epoch = epoch, .batch_size = global_batch, .seed = options.seed};
        epoch_log e;
        e.epoch = epoch;
        e.epochs = options.epochs;
        e.loss = totals[0] / totals[2];
        e.accuracy = totals[1] / totals[2];
        e.learning_rate = optimizer_.learning_rate();
        if (options.validation != nullptr) {
            const auto v = options.validation.visit([&](const auto& d) { return evaluate(d); });
            e.val_loss = v.loss;
            e.val_accuracy = v.accuracy;
        }
        e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        h.epochs.push_back(e);
        each_callback([&](auto& c) { detail::call_on_epoch_end(c, *this, e); });
    }
    each_callback([&](auto& c) { detail::call_on_train_end(c, *this, h); });
    return h;
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <data::labelled_data Data>
evaluation model<Net, Optimizer, Loss, Communicator>::evaluate(const Data& data) {
    check_dataset(data, "evaluate");
    const flush_denormals no_subnormals;
    prepare_buffers(eval_batch());
    const std::size_t n = data.size();
    const auto ranks = static_cast<std::size_t>(comm_->size());
    const auto rank = static_cast<std::size_t>(comm_->rank());
    const std::size_t lo = n * rank / ranks, hi = n * (rank + 1) / ranks;
    std::vector<std::size_t> order(hi - lo);
    std::iota(order.begin(), order.end(), lo);
    double loss_sum = 0.0, correct = 0.0;
    for (std::size_t begin = 0; begin < order.size(); begin += eval_batch()) {
        const std::size_t count = std::min(eval_batch(), order.size() - begin);
        const batch_targets t = gather(data, order.data() + begin, count);
        const float* out = infer(batch_images_.data(), count);
        loss_sum += Loss::value(out, t, count, classes);
        correct += static_cast<double>(count_correct(out, t.labels, count, classes));
    }
    const auto totals = global_sums(std::array<double, 2>{loss_sum, correct});
    if (n == 0) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
    return {totals[0] / static_cast<double>(n), totals[1] / static_cast<double>(n)};
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
xt::xtensor<float, 2> model<Net, Optimizer, Loss, Communicator>::predict(const xt::xtensor<float, 4>& images) {
    return run_predict(images);
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
xt::xtensor<float, 2> model<Net, Optimizer, Loss, Communicator>::predict(const xt::xtensor<std::uint8_t, 4>& images) {
    return run_predict(images);
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
template <typename Pixel>
xt::xtensor<float, 2> model<Net, Optimizer, Loss, Communicator>::run_predict(const xt::xtensor<Pixel, 4>& images) {
    check_images(images, "predict");
    const std::size_t n = images.shape()[0];
    xt::xtensor<float, 2> result = xt::zeros<float>({n, classes});
    const flush_denormals no_subnormals;
    prepare_buffers(eval_batch());
    constexpr std::size_t sample = Net::input_shape.size();
    for (std::size_t begin = 0; begin < n; begin += eval_batch()) {
        const std::size_t count = std::min(eval_batch(), n - begin);
        const float* in = batch_images_.data();
        if constexpr (std::same_as<Pixel, std::uint8_t>) {  // bytes become floats one batch at a time
            const std::uint8_t* bytes = images.data() + begin * sample;
            for (std::size_t i = 0; i < count * sample; ++i) batch_images_[i] = data::pixel_value(bytes[i]);
        } else {
            in = images.data() + begin * sample;
        }
        const float* out = infer(in, count);
        std::memcpy(result.data() + begin * classes, out, count * classes * sizeof(float));
    }
    return result;
}

}  // namespace staticnet
