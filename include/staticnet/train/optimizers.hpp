#pragma once
/// @file
/// Optimizers `sgd` (momentum, Nesterov) and `adam`, with Keras's defaults and update rules.
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
#include <span>
#include <string_view>

#include "../core/aligned_buffer.hpp"
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

/// Settings of `sgd` (Keras's defaults).
struct sgd_options {
    float learning_rate = 0.01f;
    float momentum = 0.0f;
    bool nesterov = false;
};

/// Settings of `adam` (Keras's defaults).
struct adam_options {
    float learning_rate = 1e-3f;
    float beta_1 = 0.9f;
    float beta_2 = 0.999f;
    float epsilon = 1e-7f;
};

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
        const batch lr(options_.learning_rate), mu(options_.momentum);
        kernels::for_simd_ranges(params.size(), pool, [&](std::size_t begin, std::size_t end) {
            const std::size_t n = end - begin;
            float* w = params.data() + begin;
            const float* g = grads.data() + begin;
            if (velocity_.empty()) {
                kernels::map(n, [&](batch wi, batch gi) { return wi - lr * gi; }, w, w, g);
                return;
            }
            float* v = velocity_.data() + begin;
            kernels::map(n, [&](batch vv, batch gi) { return mu * vv - lr * gi; }, v, v, g);
            if (options_.nesterov)
                kernels::map(n, [&](batch wi, batch vv, batch gi) { return wi + mu * vv - lr * gi; }, w, w,
                             static_cast<const float*>(v), g);
            else
                kernels::map(n, [&](batch wi, batch vv) { return wi + vv; }, w, w, static_cast<const float*>(v));
        });
        ++iterations_;
    }

    [[nodiscard]] float learning_rate() const noexcept { return options_.learning_rate; }
    void set_learning_rate(float lr) noexcept { options_.learning_rate = lr; }
    [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }
    void set_iterations(std::uint64_t n) noexcept { iterations_ = n; }
    [[nodiscard]] std::span<float> state() noexcept { return velocity_.span(); }
    [[nodiscard]] const options& settings() const noexcept { return options_; }

private:
    options options_;
    aligned_buffer<float> velocity_;
    std::uint64_t iterations_ = 0;
};

/// Adam (Kingma & Ba) as Keras implements it:
///   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
///   w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)
class adam {
public:
    using options = adam_options;
    static constexpr std::string_view name = "adam";

    explicit adam(options o = {}) : options_(o) {}

    void reset(std::size_t n) {
        moments_.resize(2 * n);
        moments_.fill_zero();
        size_ = n;
        iterations_ = 0;
    }

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
        float* m = moments_.data();
        float* v = moments_.data() + size_;
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
    [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }
    void set_iterations(std::uint64_t n) noexcept { iterations_ = n; }
    /// First moments then second moments, each the size of the parameter arena.
    [[nodiscard]] std::span<float> state() noexcept { return moments_.span(); }
    [[nodiscard]] const options& settings() const noexcept { return options_; }

private:
    options options_;
    aligned_buffer<float> moments_;
    std::size_t size_ = 0;
    std::uint64_t iterations_ = 0;
};

static_assert(optimizer<sgd> && optimizer<adam>);

}  // namespace staticnet
