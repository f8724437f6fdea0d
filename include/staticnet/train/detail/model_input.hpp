#pragma once
/// @file
/// The trainer's input side (part of train/model.hpp, which includes it): checks of what a
/// user passes in (shapes, labels, finiteness) and the batch buffers they are copied into.

#include "../model.hpp"

namespace staticnet {

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
    // Parts that share batch statistics are all in flight together: a workspace, a gradient
    // block and a thread for each. Otherwise the threads take turns at the parts.
    const bool together = !Net::samples_independent && parts > 1;
    const std::size_t blocks = together ? std::max(threads, parts) : threads;
    if (parts != 0) {
        if (thread_gradients_.size() < blocks) thread_gradients_.resize(blocks);
        for (auto& g : thread_gradients_) g.reserve_at_least(Net::arena_size);
        if (part_results_.size() < parts) part_results_.resize(parts);
    }
    if (together) {
        if (parts > threads && (!part_threads_ || part_threads_->size() < parts))
            part_threads_ = std::make_unique<thread_pool>(parts);
        discarded_state_.reserve_at_least((parts - 1) * Net::state_size);
        // Sized for the first (whole) batch; an epoch's shorter last batch reuses them.
        if (const std::size_t share = running_threads_ / parts; share >= 2 && part_pools_.size() < parts) {
            part_pools_.clear();
            for (std::size_t p = 0; p < parts; ++p) part_pools_.push_back(std::make_unique<thread_pool>(share));
        }
    }
    const std::size_t part_samples = parts != 0 ? std::min(batch, settings_.thread_part) : 0;
    if (thread_workspaces_.size() < blocks) thread_workspaces_.resize(blocks);
    // The pool's threads also infer in theirs; the parts beyond them only train.
    for (std::size_t w = 0; w < thread_workspaces_.size(); ++w)
        thread_workspaces_[w].prepare(w < threads ? std::max(infer_share, part_samples) : part_samples);
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
                                                                 std::size_t count,
                                                                 const data::sample_transform& transform) {
    constexpr std::size_t sample = Net::input_shape.size();
    const bool has_labels = d.labels.size() == d.size();
    bool has_targets = false;
    if constexpr (std::same_as<Data, data::dataset>) has_targets = d.targets.size() != 0;
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t s = order[i];
        transform(d.images.data() + s * sample, s, batch_images_.data() + i * sample);
        float* target = batch_targets_.data() + i * classes;
        if constexpr (std::same_as<Data, data::dataset>)
            if (has_targets) std::memcpy(target, d.targets.data() + s * classes, classes * sizeof(float));
        batch_labels_[i] = has_labels ? d.labels(s) : static_cast<std::int32_t>(argmax(target, classes));
    }
    if (!has_targets) return one_hot(batch_labels_.data(), count);
    return {batch_targets_.data(), batch_labels_.data()};
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
data::sample_transform model<Net, Optimizer, Loss, Communicator>::inference_transform(
    std::span<const std::size_t> shape) const {
    return {{}, settings_.normalization, shape[1], shape[2], shape[3]};
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
batch_targets model<Net, Optimizer, Loss, Communicator>::one_hot(const std::int32_t* labels, std::size_t count) {
    if constexpr (Loss::needs_dense_targets) {
        std::fill(batch_targets_.data(), batch_targets_.data() + count * classes, 0.0f);
        for (std::size_t i = 0; i < count; ++i) batch_targets_[i * classes + static_cast<std::size_t>(labels[i])] = 1.0f;
    }
    return {batch_targets_.data(), labels};
}

}  // namespace staticnet
