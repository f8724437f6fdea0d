#pragma once
/// @file
/// Inference (part of train/model.hpp, which includes it): `evaluate` and `predict`, the
/// threads taking contiguous shares of each batch, each in its own workspace.

#include "../model.hpp"

namespace staticnet {

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
    const data::sample_transform transform = inference_transform(data.images.shape());
    double loss_sum = 0.0, correct = 0.0;
    for (std::size_t begin = 0; begin < order.size(); begin += eval_batch()) {
        const std::size_t count = std::min(eval_batch(), order.size() - begin);
        batch_targets t = gather(data, order.data() + begin, count, transform);
        t.label_smoothing = settings_.label_smoothing;
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
    const data::sample_transform transform = inference_transform(images.shape());
    for (std::size_t begin = 0; begin < n; begin += eval_batch()) {
        const std::size_t count = std::min(eval_batch(), n - begin);
        // Bytes become floats one batch at a time; floats are read in place unless normalised.
        const Pixel* pixels = images.data() + begin * sample;
        const float* in = batch_images_.data();
        if constexpr (std::same_as<Pixel, float>) {
            if (!transform.transforms()) in = pixels;
        }
        const bool converted = in == batch_images_.data();
        for (std::size_t i = 0; converted && i < count; ++i)
            transform(pixels + i * sample, begin + i, batch_images_.data() + i * sample);
        const float* out = infer(in, count);
        std::memcpy(result.data() + begin * classes, out, count * classes * sizeof(float));
    }
    return result;
}

}  // namespace staticnet
