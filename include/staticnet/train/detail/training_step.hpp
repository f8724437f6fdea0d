#pragma once
/// @file
/// One training step (part of train/model.hpp, which includes it): the ways a step's passes
/// run (`step_strategy`), the exact fixed-point sums and state replay of deterministic mode,
/// the gradient synchronisation over ranks and the optimizer update.

#include "../model.hpp"

namespace staticnet {

namespace detail {
inline numeric_error gradient_not_finite(std::size_t step) {
    return numeric_error("training diverged: the gradient of step " + std::to_string(step) +
                         " is not finite (NaN or infinity); lower the learning rate or check the data");
}
}  // namespace detail

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
    if (!finite.load()) throw detail::gradient_not_finite(step);
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::check_settings(const model_settings& settings) {
    if (!(settings.label_smoothing >= 0.0f && settings.label_smoothing < 1.0f))
        throw std::invalid_argument("model_settings::label_smoothing must be in [0, 1), not " +
                                    std::to_string(settings.label_smoothing));
    if (settings.label_smoothing != 0.0f && !requires { Loss::smooths_labels; })
        throw std::invalid_argument("model_settings::label_smoothing applies to the cross-entropy losses, not to " +
                                    std::string(Loss::name));
    if (!(settings.clip_grad_norm >= 0.0f && std::isfinite(settings.clip_grad_norm)))
        throw std::invalid_argument("model_settings::clip_grad_norm must be 0 (off) or positive, not " +
                                    std::to_string(settings.clip_grad_norm));
    // Per channel of an image input; a flat input (a dense network) takes images of any
    // shape with its size, so their channels are checked when the images come.
    if constexpr (Net::input_shape.is_image())
        settings.normalization.check(Net::input_shape.channels(), "model_settings");
}

template <typename Net, optimizer Optimizer, loss_function Loss, communicator Communicator>
void model<Net, Optimizer, Loss, Communicator>::clip_gradient(std::size_t step, thread_pool& pool) {
    // Squares summed per fixed chunk (SIMD, float: a chunk is short enough), the chunks' sums
    // added in chunk order in double: the same bits for any number of threads.
    constexpr std::size_t chunk = 1024;
    const auto grads = net_.gradients();
    const std::size_t chunks = (grads.size() + chunk - 1) / chunk;
    norm_parts_.resize(chunks);
    pool.parallel_for(chunks, [&](std::size_t first, std::size_t last) {
        for (std::size_t c = first; c < last; ++c) {
            const std::size_t begin = c * chunk, end = std::min(grads.size(), begin + chunk);
            simd::float_batch acc(0.0f);
            std::size_t i = begin;
            for (; i + simd::float_lanes <= end; i += simd::float_lanes) {
                const auto g = simd::float_batch::load_aligned(grads.data() + i);
                acc = xsimd::fma(g, g, acc);
            }
            double part = simd::reduce_add(acc);
            for (; i < end; ++i) part += static_cast<double>(grads[i]) * grads[i];
            norm_parts_[c] = part;
        }
    }, 64);
    double squares = 0.0;
    for (double part : norm_parts_) squares += part;
    if (!std::isfinite(squares)) throw detail::gradient_not_finite(step);  // a NaN or infinity among them
    const double limit = settings_.clip_grad_norm, coefficient = limit / (std::sqrt(squares) + 1e-6);
    if (coefficient >= 1.0) return;
    const simd::float_batch scale(static_cast<float>(coefficient));
    kernels::for_simd_ranges(grads.size(), &pool, [&](std::size_t begin, std::size_t end) {
        float* g = grads.data() + begin;
        kernels::map(end - begin, [&](simd::float_batch x) { return x * scale; }, g, static_cast<const float*>(g));
    });
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
    targets.label_smoothing = settings_.label_smoothing;
    const auto grads = net_.gradients();
    const step_strategy strategy = strategy_for(batch);
    const std::size_t parts = strategy == step_strategy::thread_parts ? thread_parts(batch) : 0;
    if (parts != 0) result = train_parts(images, targets, batch, parts, global_batch, first_sample, step_seed);  // each part zeroes its block
    else  // on every thread: ResNet-18 has 45 MB of gradients, milliseconds for one thread
        kernels::for_simd_ranges(grads.size(), &pool_, [&](std::size_t begin, std::size_t end) {
            std::memset(grads.data() + begin, 0, (end - begin) * sizeof(float));
        });
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
    for (std::size_t i = 0, first = 0; strategy != step_strategy::thread_parts && i < pieces; ++i, first += piece) {
        const std::size_t count = std::min(piece, batch - first);
        const bool last_piece = first + count == batch;
        const batch_targets part{targets.dense + first * classes, targets.labels + first, targets.label_smoothing};
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
    // One pass over the gradient either way: the clipping norm also finds a non-finite value.
    if (settings_.clip_grad_norm > 0.0f) clip_gradient(optimizer_.iterations() + 1, update_pool);
    else check_finite_gradient(optimizer_.iterations() + 1, update_pool);
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
    // With synchronised batch_norm the statistics of a lone part are summed over the ranks.
    const rank_reducer* ranks = settings_.sync_batch_norm && comm_->size() > 1 ? &reducer_ : nullptr;
    // One part: forward, loss, backward into `gradients` (zeroed first), in workspace `ws`,
    // the layers on `layer_pool`, the batch statistics summed by `statistics`, the state
    // updates written to `state_record` (null: in place).
    auto run_part = [&](std::size_t p, typename Net::workspace& ws, std::span<float> gradients, thread_pool& layer_pool,
                        const rank_reducer* statistics = nullptr, float* state_record = nullptr) {
        const std::size_t first = p * part, count = std::min(part, batch - first);
        std::memset(gradients.data(), 0, gradients.size_bytes());  // part 0's is the arena: zeroed by its thread
        const batch_targets t{targets.dense + first * classes, targets.labels + first, targets.label_smoothing};
        const float* x = images + first * sample;
        layer_context ctx{.batch = count, .training = true, .pool = &layer_pool, .step_seed = step_seed,
                          .first_sample = first_sample + first, .batch_statistics = statistics,
                          .state_record = state_record};
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
    auto sum_of_parts = [&] {
        step_result result;
        for (std::size_t p = 0; p < parts; ++p) {
            result.loss += part_results_[p].loss;
            result.correct += part_results_[p].correct;
        }
        return result;
    };
    if constexpr (!Net::samples_independent) {
        if (parts > 1) {
            // Batch statistics: every part waits at each statistic for the others, so each
            // needs a thread (taking turns at the CPUs, see part_reduction.hpp); its layers
            // run on that thread, or on its own pool with CPUs to spare.
            thread_pool& runner = parts <= pool_.size() ? pool_ : *part_threads_;
            const bool own_pools = part_pools_.size() >= parts;
            part_reduction_.start(parts, ranks);
            runner.run([&](std::size_t p, std::size_t workers) {
                if (workers != parts)  // a busy pool runs a region on one thread: the parts would wait forever
                    throw std::logic_error("train_step: a step with batch_norm in thread parts needs a thread for each "
                                           "part; it was called from inside a task of the model's thread pool");
                part_reduction_.run_part([&] {
                    run_part(p, thread_workspaces_[p],
                             p == 0 ? arena : std::span<float>(thread_gradients_[p].data(), Net::arena_size),
                             own_pools ? *part_pools_[p] : one_thread_, part_reduction_.reducer(p),
                             p == 0 ? nullptr : discarded_state_.data() + (p - 1) * Net::state_size);
                });
            }, parts);
            add_parts(0, parts, 0);
            return sum_of_parts();
        }
    }
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
                         p == 0 ? arena : std::span<float>(thread_gradients_[w].data(), Net::arena_size), one_thread_,
                         ranks);
            }, in_round);
            add_parts(from, from + in_round, 0);
        }
    } else {
        // Few parts for many threads: one part after another, all threads on each layer.
        for (std::size_t p = 0; p < parts; ++p) {
            run_part(p, thread_workspaces_[0], p == 0 ? arena : std::span<float>(thread_gradients_[0].data(), Net::arena_size),
                     pool_, ranks);
            if (p != 0) add_parts(p, p + 1, 0);
        }
    }
    return sum_of_parts();
}

}  // namespace staticnet
