#pragma once
/// @file
/// The epoch loop of `model::fit` (part of train/model.hpp, which includes it): the shuffled
/// order of every rank, batch assembly, resuming, callbacks and the per-epoch results.

#include "../model.hpp"

namespace staticnet {

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
        if (options.flip || options.crop_padding != 0 || options.random_resized_crop || options.color_jitter.active())
            throw error("fit: flips, crops and colour jitter are not supported when training from a shard_stream");
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
    // The same transform for the loader's batches and those gathered here (the epoch's last,
    // smaller batch and batches with soft targets): a sample looks the same in either.
    const data::augmentation augment{.flip = options.flip, .crop_padding = options.crop_padding,
                                     .random_resized_crop = options.random_resized_crop,
                                     .color_jitter = options.color_jitter};
    data::sample_transform transform = [&] {
        try {
            if constexpr (streamed) {
                const shape& s = train.sample_shape();
                return data::sample_transform(augment, settings_.normalization, s.height(), s.width(), s.channels());
            } else {
                const auto& s = train.images.shape();
                return data::sample_transform(augment, settings_.normalization, s[1], s[2], s[3]);
            }
        } catch (const std::invalid_argument& e) {
            throw error(std::string("fit: ") + e.what());
        }
    }();
    std::optional<data::batch_loader> loader;
    // A stream keeps no per-sample state (its memory must not grow with the data set).
    std::vector<std::size_t> order, local_order;
    if constexpr (!streamed) {
        if (!soft_targets && local_full > 0)
            loader.emplace(train, local_full,
                           data::loader_options{.flip = options.flip, .crop_padding = options.crop_padding,
                                                .random_resized_crop = options.random_resized_crop,
                                                .color_jitter = options.color_jitter,
                                                .normalization = settings_.normalization, .seed = options.seed,
                                                .pool = &pool_});
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
            transform.start_epoch(options.seed, epoch);
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
                    const shape& sample = train.sample_shape();
                    transform.normalize().apply(batch_images_.data(), count * sample.height() * sample.width(),
                                                 sample.channels());
                    t = one_hot(batch_labels_.data(), count);
                }
            } else if (count > 0 && loader && step < full_steps) {
                const data::batch* b = loader->next();
                if (b == nullptr || b->size != count) throw error("fit: the batch loader fell out of step");
                images = b->images.data();
                t = one_hot(b->labels.data(), count);
            } else if (count > 0) {
                if constexpr (!streamed)
                    t = gather(train, remaining.data() + (step - first_step) * local_full, count, transform);
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

}  // namespace staticnet
