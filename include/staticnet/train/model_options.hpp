#pragma once
/// @file
/// What a `model` is told: how `fit` trains (`fit_options`), the model's own settings
/// (`model_settings`), and what it reports back (`evaluation`, `step_timings`,
/// `training_position`, which a checkpoint stores).

#include <cstddef>
#include <cstdint>
#include <optional>

#include "../data/augmentation.hpp"
#include "../data/labelled_data.hpp"

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
    /// Augmentation of training images (data/augmentation.hpp), applied as batches are
    /// assembled (seeded by `seed`, the epoch and the sample, so it does not depend on the
    /// number of ranks or threads).
    bool flip = false;                  ///< random horizontal flips
    std::size_t crop_padding = 0;       ///< zero-pad by this many pixels, crop back at random
    /// torchvision's RandomResizedCrop: a random box resized back to the image size (instead
    /// of `crop_padding`), e.g. `.random_resized_crop = data::random_resized_crop{}`.
    std::optional<data::random_resized_crop> random_resized_crop{};
    data::color_jitter color_jitter{};  ///< random brightness, contrast, saturation (0: off)
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
    /// How the threads share a training step (with micro_batch = 0 and not deterministic): the
    /// rank's part of the batch is cut into parts of this many samples, each thread runs whole
    /// parts through the network in a workspace of its own (no synchronisation between layers,
    /// which is what lets 2 threads do nearly twice the work of one on small batches), and the
    /// parts' gradients are added in part order. With batch statistics (batch_norm) all parts
    /// run at once and meet at each statistic, whose shares are added in part order: the
    /// statistics stay the whole batch's. The cut depends on the batch alone, so a step gives
    /// bitwise the same result with any number of threads. 0: the threads share every layer of
    /// one pass over the whole part instead.
    std::size_t thread_part = 16;
    /// Bitwise-identical training for any number of ranks and threads: the global batch is cut
    /// into fixed micro-batches (`micro_batch`, 8 if 0) whose gradients are summed exactly in
    /// 64-bit fixed point, so the order of additions cannot matter.
    bool deterministic = false;
    gradient_sync sync = gradient_sync::after_backward;
    /// batch_norm statistics over the whole global batch instead of each rank's part.
    bool sync_batch_norm = false;
    /// Label smoothing s in [0, 1) of a cross-entropy loss: the targets become
    /// (1 - s) y + s / classes in training and in `evaluate` (PyTorch's
    /// `CrossEntropyLoss(label_smoothing=s)`, Keras's `label_smoothing`). 0: none.
    float label_smoothing = 0.0f;
    /// Gradient clipping by global norm: when the L2 norm of the whole gradient, summed over
    /// the ranks, exceeds this, the gradient is scaled by clip_grad_norm / (norm + 1e-6)
    /// before the update (PyTorch's `clip_grad_norm_`). Every rank sees the same sum, so every
    /// rank clips alike; the norm is added in a fixed order, so any thread count gives the
    /// same bits. 0: no clipping.
    float clip_grad_norm = 0.0f;
    /// Per-channel (x - mean) / std of every image the model is given: in training, `evaluate`
    /// and `predict` alike (torchvision's `Normalize`), e.g. `{.mean = {0.286f}, .std =
    /// {0.353f}}`. Empty: the pixels as they are. (Exported ONNX models take normalised input.)
    data::normalization normalization{};
};

}  // namespace staticnet
