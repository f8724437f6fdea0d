#pragma once
/// @file
/// Optimizers `sgd` (momentum, Nesterov, weight decay) and `adam`, with Keras's defaults and
/// update rules, and `adamw` (decoupled weight decay) with PyTorch's.
///
/// Weight decay shrinks the network's weights (conv2d and dense kernels) and leaves biases and
/// batch_norm's scale and shift alone unless `decay_scope::all_parameters` says otherwise; the
/// model tells the optimizer where the weights are (`set_weights`, from
/// `sequential::weight_ranges()`), and a program may call it again with a list of its own.
///
/// Each update is one SIMD loop over the flat parameter and gradient arenas. The optimizer's
/// own state (velocities, moments) is one more flat buffer of the same layout, exposed through
/// `state()` so checkpoints and the communicator can treat it as plain floats. Given a thread
/// pool, `step` splits the loop over the threads in whole SIMD blocks: the update is
/// elementwise and every element takes the same code path, so the result does not depend on
/// the thread count (on two cores the serial update was the largest part of a step that did
/// not scale).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <limits>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/aligned_buffer.hpp"
#include "../core/parameter_range.hpp"
#include "../core/thread_pool.hpp"
#include "../kernels/elementwise.hpp"

namespace staticnet {

/// What the trainer needs of an optimizer.
template <typename O>
concept optimizer = requires(O o, const O co, std::span<float> p, std::span<const float> g, std::size_t n, float lr) {
    typename O::options;
    { O::name } -> std::convertible_to<std::string_view>;
    o.reset(n);
    o.step(p, g);
    { co.learning_rate() } -> std::convertible_to<float>;
    o.set_learning_rate(lr);
    { co.iterations() } -> std::convertible_to<std::uint64_t>;
    { o.state() } -> std::convertible_to<std::span<float>>;
};

/// Which parameters weight decay shrinks.
enum class decay_scope {
    weights,         ///< the weights (`set_weights`; by default conv2d's and dense's kernels)
    all_parameters,  ///< every trainable parameter, biases and batch_norm's too
};

/// Settings of `sgd` (Keras's defaults).
struct sgd_options {
    float learning_rate = 0.01f;
    float momentum = 0.0f;
    bool nesterov = false;
    /// L2 weight decay as PyTorch's SGD applies it: the gradient becomes g + weight_decay * w
    /// before the momentum (0: none).
    float weight_decay = 0.0f;
    decay_scope decay = decay_scope::weights;
};

/// Settings of `adam` (Keras's defaults).
struct adam_options {
    float learning_rate = 1e-3f;
    float beta_1 = 0.9f;
    float beta_2 = 0.999f;
    float epsilon = 1e-7f;
};

namespace detail {
/// Calls `f(begin, end, decayed)` for the pieces of [begin, end) inside and outside the
/// sorted, disjoint `ranges`, in order.
template <typename F>
void for_decay_segments(std::size_t begin, std::size_t end, std::span<const parameter_range> ranges, F&& f) {
    std::size_t at = begin;
    for (const parameter_range& r : ranges) {
        const std::size_t first = std::clamp(r.offset, at, end), last = std::clamp(r.offset + std::min(r.count, end), at, end);
        if (first == last) continue;
        if (at < first) f(at, first, false);
        f(first, last, true);
        at = last;
    }
    if (at < end) f(at, end, false);
}

/// The parameters an optimizer's weight decay shrinks: the weights it was told of, or all.
class decayed_parameters {
public:
    void set_weights(std::vector<parameter_range> weights) {
        std::sort(weights.begin(), weights.end(), [](auto a, auto b) { return a.offset < b.offset; });
        weights_ = std::move(weights);
        told_ = true;
    }
    /// Sorted and disjoint. Until told of its weights (an optimizer used on its own, outside a
    /// model), every parameter counts as one.
    [[nodiscard]] std::span<const parameter_range> ranges(decay_scope scope) const noexcept {
        if (scope == decay_scope::all_parameters || !told_) return {&everything_, 1};
        return weights_;
    }

private:
    std::vector<parameter_range> weights_;
    bool told_ = false;
    static constexpr parameter_range everything_{0, std::numeric_limits<std::size_t>::max() / 2};
};
}  // namespace detail

/// Stochastic gradient descent: v = momentum * v - lr * g; w += v (Nesterov: w += momentum * v - lr * g).
class sgd {
public:
    using options = sgd_options;
    static constexpr std::string_view name = "sgd";

    explicit sgd(options o = {}) : options_(o) {}

    void reset(std::size_t n) {
        velocity_.resize(options_.momentum != 0.0f ? n : 0);
        velocity_.fill_zero();
        iterations_ = 0;
    }

    /// One update; `pool` (optional) shares it among its threads.
    void step(std::span<float> params, std::span<const float> grads, thread_pool* pool = nullptr) {
        using batch = simd::float_batch;
        const batch lr(options_.learning_rate), mu(options_.momentum), wd(options_.weight_decay);
        const auto decayed = options_.weight_decay != 0.0f ? decayed_.ranges(options_.decay) : std::span<const parameter_range>{};
        // Elementwise, so where the pieces and the threads' ranges fall changes nothing.
        auto update = [&](std::size_t begin, std::size_t end, bool decays) {
            const std::size_t n = end - begin;
            float* w = params.data() + begin;
            const float* g = grads.data() + begin;
            // The gradient with PyTorch's L2 term.
            auto grad = [&](batch wi, batch gi) { return decays ? xsimd::fma(wd, wi, gi) : gi; };
            if (velocity_.empty()) {
                kernels::map(n, [&](batch wi, batch gi) { return wi - lr * grad(wi, gi); }, w, w, g);
                return;
            }
            float* v = velocity_.data() + begin;
            kernels::map(n, [&](batch vv, batch wi, batch gi) { return mu * vv - lr * grad(wi, gi); }, v, v,
                         static_cast<const float*>(w), g);
            if (options_.nesterov)
                kernels::map(n, [&](batch wi, batch vv, batch gi) { return wi + mu * vv - lr * grad(wi, gi); }, w, w,
                             static_cast<const float*>(v), g);
            else
                kernels::map(n, [&](batch wi, batch vv) { return wi + vv; }, w, w, static_cast<const float*>(v));
        };
        kernels::for_simd_ranges(params.size(), pool, [&](std::size_t begin, std::size_t end) {
            detail::for_decay_segments(begin, end, decayed, update);
        });
        ++iterations_;
    }
    /// Where the network's weights are (the model calls it; see `decay_scope`).
    void set_weights(std::vector<parameter_range> weights) { decayed_.set_weights(std::move(weights)); }

    [[nodiscard]] float learning_rate() const noexcept { return options_.learning_rate; }
    void set_learning_rate(float lr) noexcept { options_.learning_rate = lr; }
    [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }
    void set_iterations(std::uint64_t n) noexcept { iterations_ = n; }
    [[nodiscard]] std::span<float> state() noexcept { return velocity_.span(); }
    [[nodiscard]] const options& settings() const noexcept { return options_; }

private:
    options options_;
    detail::decayed_parameters decayed_;
    aligned_buffer<float> velocity_;
    std::uint64_t iterations_ = 0;
};

namespace detail {
/// What `adam` and `adamw` keep between steps: the first and second moments, each the size of
/// the parameter arena, and the step count (their bias corrections' t).
class adam_moments {
public:
    void reset(std::size_t n) {
        moments_.resize(2 * n);
        moments_.fill_zero();
        size_ = n;
        iterations_ = 0;
    }
    [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }
    void set_iterations(std::uint64_t n) noexcept { iterations_ = n; }
    /// First moments then second moments.
    [[nodiscard]] std::span<float> state() noexcept { return moments_.span(); }

protected:
    [[nodiscard]] float* first_moments() noexcept { return moments_.data(); }
    [[nodiscard]] float* second_moments() noexcept { return moments_.data() + size_; }
    aligned_buffer<float> moments_;
    std::size_t size_ = 0;
    std::uint64_t iterations_ = 0;
};
}  // namespace detail

/// Adam (Kingma & Ba) as Keras implements it:
///   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
///   w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)
class adam : public detail::adam_moments {
public:
    using options = adam_options;
    static constexpr std::string_view name = "adam";

    explicit adam(options o = {}) : options_(o) {}

    /// One update; `pool` (optional) shares it among its threads.
    void step(std::span<float> params, std::span<const float> grads, thread_pool* pool = nullptr) {
        using batch = simd::float_batch;
        ++iterations_;
        const double t = static_cast<double>(iterations_);
        const double correction = std::sqrt(1.0 - std::pow(static_cast<double>(options_.beta_2), t)) /
                                  (1.0 - std::pow(static_cast<double>(options_.beta_1), t));
        const batch b1(options_.beta_1), b2(options_.beta_2), one_b1(1.0f - options_.beta_1),
            one_b2(1.0f - options_.beta_2), eps(options_.epsilon),
            step_size(static_cast<float>(options_.learning_rate * correction));
        float* m = first_moments();
        float* v = second_moments();
        const float* g = grads.data();
        float* w = params.data();
        constexpr std::size_t lanes = simd::float_lanes;
        auto update = [&](batch gi, batch mi, batch vi, batch wi, batch& m_out, batch& v_out) {
            m_out = xsimd::fma(b1, mi, one_b1 * gi);
            v_out = xsimd::fma(b2, vi, one_b2 * gi * gi);
            return wi - step_size * m_out / (xsimd::sqrt(v_out) + eps);
        };
        kernels::for_simd_ranges(size_, pool, [&](std::size_t begin, std::size_t end) {
            std::size_t i = begin;
            for (; i + lanes <= end; i += lanes) {
                batch mo, vo;
                const batch wo = update(batch::load_unaligned(g + i), batch::load_aligned(m + i),
                                        batch::load_unaligned(v + i), batch::load_unaligned(w + i), mo, vo);
                mo.store_aligned(m + i);
                vo.store_unaligned(v + i);
                wo.store_unaligned(w + i);
            }
            for (; i < end; ++i) {  // the tail (only in the last range), same arithmetic one lane at a time
                const float mi = options_.beta_1 * m[i] + (1.0f - options_.beta_1) * g[i];
                const float vi = options_.beta_2 * v[i] + (1.0f - options_.beta_2) * g[i] * g[i];
                m[i] = mi;
                v[i] = vi;
                w[i] -= static_cast<float>(options_.learning_rate * correction) * mi / (std::sqrt(vi) + options_.epsilon);
            }
        });
    }

    [[nodiscard]] float learning_rate() const noexcept { return options_.learning_rate; }
    void set_learning_rate(float lr) noexcept { options_.learning_rate = lr; }
    [[nodiscard]] const options& settings() const noexcept { return options_; }

private:
    options options_;
};

/// Settings of `adamw` (PyTorch's defaults).
struct adamw_options {
    float learning_rate = 1e-3f;
    float beta_1 = 0.9f;
    float beta_2 = 0.999f;
    float epsilon = 1e-8f;
    float weight_decay = 1e-2f;
    decay_scope decay = decay_scope::weights;
};

/// Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's `AdamW` computes it:
///   w -= lr * weight_decay * w  (the decayed parameters only)
///   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
///   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + epsilon)
/// (epsilon is added after the bias correction, unlike Keras's `adam` above).
class adamw : public detail::adam_moments {
public:
    using options = adamw_options;
    static constexpr std::string_view name = "adamw";

    explicit adamw(options o = {}) : options_(o) {}

    /// One update; `pool` (optional) shares it among its threads.
    void step(std::span<float> params, std::span<const float> grads, thread_pool* pool = nullptr) {
        using batch = simd::float_batch;
        constexpr std::size_t lanes = simd::float_lanes;
        ++iterations_;
        const double t = static_cast<double>(iterations_), lr = options_.learning_rate;
        const double correction_1 = 1.0 - std::pow(static_cast<double>(options_.beta_1), t);
        const double correction_2 = 1.0 - std::pow(static_cast<double>(options_.beta_2), t);
        const batch b1(options_.beta_1), b2(options_.beta_2), one_b1(1.0f - options_.beta_1),
            one_b2(1.0f - options_.beta_2), eps(options_.epsilon), step_size(static_cast<float>(lr / correction_1)),
            inverse_root_2(static_cast<float>(1.0 / std::sqrt(correction_2))),
            shrink(static_cast<float>(1.0 - lr * static_cast<double>(options_.weight_decay))), keep(1.0f);
        const auto decayed = options_.weight_decay != 0.0f ? decayed_.ranges(options_.decay) : std::span<const parameter_range>{};
        auto update = [&](float* w, const float* g, float* m, float* v, batch factor) {
            const batch gi = batch::load_unaligned(g);
            const batch mi = xsimd::fma(b1, batch::load_unaligned(m), one_b1 * gi);
            const batch vi = xsimd::fma(b2, batch::load_unaligned(v), one_b2 * gi * gi);
            const batch wi = batch::load_unaligned(w) * factor;
            mi.store_unaligned(m);
            vi.store_unaligned(v);
            (wi - step_size * mi / xsimd::fma(xsimd::sqrt(vi), inverse_root_2, eps)).store_unaligned(w);
        };
        // Every element goes through the same SIMD arithmetic (a piece's tail in a padded
        // batch), so neither the pieces nor the threads' ranges change a result.
        auto update_piece = [&](std::size_t begin, std::size_t end, bool decays) {
            const batch factor = decays ? shrink : keep;
            float* const w = params.data();
            float* const m = first_moments();
            float* const v = second_moments();
            std::size_t i = begin;
            for (; i + lanes <= end; i += lanes) update(w + i, grads.data() + i, m + i, v + i, factor);
            if (i == end) return;
            alignas(64) float tw[lanes] = {}, tg[lanes] = {}, tm[lanes] = {}, tv[lanes] = {};
            const std::size_t rest = end - i;
            std::copy_n(w + i, rest, tw);
            std::copy_n(grads.data() + i, rest, tg);
            std::copy_n(m + i, rest, tm);
            std::copy_n(v + i, rest, tv);
            update(tw, tg, tm, tv, factor);
            std::copy_n(tw, rest, w + i);
            std::copy_n(tm, rest, m + i);
            std::copy_n(tv, rest, v + i);
        };
        kernels::for_simd_ranges(size_, pool, [&](std::size_t begin, std::size_t end) {
            detail::for_decay_segments(begin, end, decayed, update_piece);
        });
    }
    /// Where the network's weights are (the model calls it; see `decay_scope`).
    void set_weights(std::vector<parameter_range> weights) { decayed_.set_weights(std::move(weights)); }

    [[nodiscard]] float learning_rate() const noexcept { return options_.learning_rate; }
    void set_learning_rate(float lr) noexcept { options_.learning_rate = lr; }
    [[nodiscard]] const options& settings() const noexcept { return options_; }

private:
    options options_;
    detail::decayed_parameters decayed_;
};

static_assert(optimizer<sgd> && optimizer<adam> && optimizer<adamw>);

}  // namespace staticnet
