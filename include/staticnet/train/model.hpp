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
///
/// The class is declared here; its work is defined by job in train/detail/: the input checks
/// and batch buffers (`model_input.hpp`), one training step (`training_step.hpp`), the epoch
/// loop (`fit_loop.hpp`) and inference (`inference.hpp`). The options are in
/// `model_options.hpp`.

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <stdexcept>
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
#include "../data/augmentation.hpp"
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
#include "detail/part_reduction.hpp"
#include "history.hpp"
#include "losses.hpp"
#include "metrics.hpp"
#include "optimizers.hpp"
#include "progress.hpp"
#include "model_options.hpp"

namespace staticnet {

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
        check_settings(settings);
        net_.initialize(settings.seed);
        optimizer_.reset(Net::arena_size);
        if constexpr (requires { optimizer_.set_weights(Net::weight_ranges()); }) optimizer_.set_weights(Net::weight_ranges());
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
    /// The settings the model was made with.
    [[nodiscard]] const model_settings& settings() const noexcept { return settings_; }
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
        return traits_of<last>().activation.name == softmax::name;  // by name: see detail::folds_into
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
    batch_targets gather(const Data& d, const std::size_t* order, std::size_t count,
                         const data::sample_transform& transform);
    /// What `evaluate` and `predict` do to images of `shape` (N, H, W, C): the normalisation.
    [[nodiscard]] data::sample_transform inference_transform(std::span<const std::size_t> shape) const;
    /// Targets for `count` samples with these labels (one-hot rows when the loss needs them).
    batch_targets one_hot(const std::int32_t* labels, std::size_t count);
    void prepare_buffers(std::size_t batch);
    static void check_settings(const model_settings& settings);
    void check_finite_gradient(std::size_t step, thread_pool& pool);
    /// Scales the gradient to `clip_grad_norm` when its L2 norm is larger; throws like
    /// `check_finite_gradient` when the norm is not finite.
    void clip_gradient(std::size_t step, thread_pool& pool);
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
    /// runs as one pass (or micro-batches) with the threads sharing each layer. Depends on
    /// the settings and the batch only, never on the threads: a part's arithmetic is the same
    /// on any thread, so a step gives the same bits for any thread count.
    [[nodiscard]] std::size_t thread_parts(std::size_t batch) const noexcept {
        if (settings_.thread_part == 0 || micro_batch() != 0 || batch == 0) return 0;
        if (settings_.sync == gradient_sync::overlapped && comm_->size() > 1) return 0;  // per-layer reductions
        return (batch + settings_.thread_part - 1) / settings_.thread_part;
    }
    /// How the forward and backward passes of a step over this rank's part of the batch run.
    enum class step_strategy {
        whole_part,     ///< one pass over the whole part, the threads sharing each layer
        micro_batches,  ///< passes of `micro_batch()` samples, their gradients added up (exactly, when deterministic)
        thread_parts,   ///< parts of `thread_part` samples, the threads taking whole parts (`train_parts`)
    };
    [[nodiscard]] step_strategy strategy_for(std::size_t batch) const noexcept {
        if (thread_parts(batch) != 0) return step_strategy::thread_parts;
        return micro_batch() == 0 ? step_strategy::whole_part : step_strategy::micro_batches;
    }
    /// Forward, loss and backward of the parts of a step, the threads taking whole parts; the
    /// gradient arena ends up with part 0's gradient plus the others', added in part order.
    /// With batch statistics (batch_norm) all parts are in flight together and sum their
    /// statistics through `part_reduction_`.
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
    /// Batch statistics of the thread parts in flight (networks with batch_norm), and the
    /// threads for parts beyond the pool's (a part waiting for the others' statistics holds a
    /// thread, so every part needs one).
    detail::part_reduction part_reduction_{running_threads_};
    std::unique_ptr<thread_pool> part_threads_;
    /// With at least twice as many CPUs as parts, each part's layers share a pool of their own
    /// (the part's thread and its workers): the CPUs beyond the parts' are not left idle.
    std::vector<std::unique_ptr<thread_pool>> part_pools_;
    /// Where the parts but the first write the moving-average updates that the first applies
    /// (all parts see the same statistics; see `layer_context::state_record`).
    aligned_buffer<float> discarded_state_;
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
    std::vector<double> norm_parts_;  // gradient clipping: the squared norm of each fixed chunk
    bool stop_requested_ = false;
    bool synchronized_ = false;
    training_position position_;
    step_timings timings_;
};

}  // namespace staticnet

// The definitions, by job (each includes this header, so it also compiles on its own).
#include "detail/model_input.hpp"
#include "detail/training_step.hpp"
#include "detail/fit_loop.hpp"
#include "detail/inference.hpp"
