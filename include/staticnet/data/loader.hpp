#pragma once
/// @file
/// `batch_loader`: assembles batches (gathers scattered samples into one contiguous block,
/// augments them), either ahead of time on a background thread or, given a thread pool, when
/// they are asked for.
///
/// The background thread overlaps the gathering with the training step: two batch buffers,
/// one held by the trainer, one being filled (double buffering). That pays when a core is
/// free for it. When every core already runs a compute thread (`fit` runs one per core), the
/// loader thread would preempt one of them instead, and a batch of in-memory samples takes
/// microseconds to gather, far less than the step: then `loader_options::pool` makes `next()`
/// assemble the batch on the pool's threads, between steps, with no thread of its own.
/// All buffers are allocated in the constructor; the steady state allocates nothing.
///
/// The data is a `dataset` (float pixels, copied as they are) or a `byte_dataset` (pixel v
/// becomes v / 255.0f as the batch is assembled, exactly the float a reader would have
/// stored): memory per held image is then its byte size, and the batches are bitwise equal.
///
/// Augmentation (optional, data/augmentation.hpp): a random horizontal flip, a random crop
/// after zero padding (pad P pixels on every side, crop back to H x W at a random offset) or a
/// random resized crop, colour jitter; then the normalisation. The random numbers of a sample
/// depend only on (seed, epoch, rank, sample index), never on timing or batch position, so a
/// run is reproducible. Leave `rank` at 0 on every rank to make the augmentation of a sample
/// independent of how the data is split over ranks.
///
/// A `batch_loader` is driven from one thread (the trainer's). An exception on the loader
/// thread is rethrown by `next()` when the batch it broke is due.

#include <algorithm>
#include <array>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../core/aligned_buffer.hpp"
#include "../core/random.hpp"
#include "../core/thread_pool.hpp"
#include "augmentation.hpp"
#include "byte_dataset.hpp"
#include "dataset.hpp"
#include "labelled_data.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// How `batch_loader` prepares batches.
struct loader_options {
    bool flip = false;             ///< flip each image horizontally with probability 1/2
    std::size_t crop_padding = 0;  ///< zero-pad by this many pixels, then crop back at a random offset
    /// A random box of the image resized back to its size (instead of `crop_padding`).
    std::optional<data::random_resized_crop> random_resized_crop{};
    data::color_jitter color_jitter{};    ///< random brightness, contrast, saturation
    data::normalization normalization{};  ///< (x - mean) / std per channel, after the rest
    std::uint64_t seed = 0;        ///< seed of the augmentation
    std::size_t rank = 0;          ///< mixed into the augmentation seed (see the file comment)
    bool drop_last = false;        ///< skip a final batch smaller than the batch size
    /// Set: no background thread; `next()` assembles each batch on these threads (which must
    /// outlive the loader). Null: a background thread prepares the next batch ahead.
    thread_pool* pool = nullptr;
};

/// One batch, owned by the loader; valid until the next call to `next()` or `start_epoch()`.
struct batch {
    std::span<const float> images;         ///< [size, H, W, C], contiguous, row-major
    std::span<const std::int32_t> labels;  ///< [size]
    std::span<const std::size_t> indices;  ///< data set index of each sample
    std::size_t size = 0;                  ///< samples in this batch (the last one may be short)
    std::size_t index = 0;                 ///< position of the batch in the epoch
    std::array<std::size_t, 4> shape{};    ///< {size, H, W, C}
};

class batch_loader {
public:
    /// A loader for `data`, which must outlive it and stay unchanged while it runs.
    batch_loader(const dataset& data, std::size_t batch_size, loader_options options = {});
    /// A loader for bytes: pixel v becomes v / 255.0f in the batch.
    batch_loader(const byte_dataset& data, std::size_t batch_size, loader_options options = {});
    ~batch_loader();
    batch_loader(const batch_loader&) = delete;
    batch_loader& operator=(const batch_loader&) = delete;

    /// Starts an epoch over the samples `order` (data set indices, copied), abandoning what
    /// is left of the previous epoch. Batches are order[0..b), order[b..2b), ...
    void start_epoch(std::span<const std::size_t> order, std::size_t epoch);

    /// The next batch of the epoch, or nullptr at its end. Blocks until the batch is ready;
    /// rethrows an exception raised while preparing it (e.g. `std::out_of_range` for an
    /// index >= data.size()). Throws `std::logic_error` before the first `start_epoch`.
    const batch* next();

    [[nodiscard]] std::size_t batch_size() const noexcept { return batch_size_; }
    /// Batches in the current epoch.
    [[nodiscard]] std::size_t batches() const;
    [[nodiscard]] const loader_options& options() const noexcept { return options_; }

private:
    static constexpr std::size_t buffers = 2;

    struct slot {
        aligned_buffer<float> images;
        std::vector<std::int32_t> labels;
        batch view;
    };

    template <labelled_data D>
    batch_loader(const D& data, std::size_t batch_size, loader_options options, const float* floats,
                 const std::uint8_t* bytes);

    void run();
    void fill(std::size_t k);
    void gather(std::size_t index, float* dst) const;

    // The data: exactly one of the two image pointers is set.
    const float* float_images_ = nullptr;
    const std::uint8_t* byte_images_ = nullptr;
    const std::int32_t* labels_ = nullptr;
    std::size_t samples_ = 0;
    std::size_t batch_size_;
    loader_options options_;
    std::size_t height_, width_, channels_, sample_floats_;
    std::array<slot, buffers> slots_;

    // Epoch state: written by start_epoch only while the worker is idle (under m_).
    std::vector<std::size_t> order_;
    sample_transform transform_;

    mutable std::mutex m_;
    std::condition_variable work_cv_;   // wakes the worker
    std::condition_variable ready_cv_;  // wakes the trainer
    std::size_t batches_ = 0;           // in this epoch
    std::size_t produced_ = 0;          // batches [0, produced_) are filled
    std::size_t released_ = 0;          // batches [0, released_) are given back by the trainer
    std::size_t taken_ = 0;             // batches [0, taken_) were handed out by next()
    bool started_ = false;
    bool busy_ = false;  // the worker is filling a slot (without the lock)
    bool stop_ = false;
    std::exception_ptr error_;  // what broke batch produced_
    std::thread worker_;
};

// ===================================================================== implementation

inline batch_loader::batch_loader(const dataset& data, std::size_t batch_size, loader_options options)
    : batch_loader(data, batch_size, options, data.images.data(), nullptr) {}

inline batch_loader::batch_loader(const byte_dataset& data, std::size_t batch_size, loader_options options)
    : batch_loader(data, batch_size, options, nullptr, data.images.data()) {}

template <labelled_data D>
batch_loader::batch_loader(const D& data, std::size_t batch_size, loader_options options, const float* floats,
                           const std::uint8_t* bytes)
    : float_images_(floats), byte_images_(bytes), labels_(data.labels.data()), samples_(data.size()),
      batch_size_(batch_size), options_(options), height_(data.images.shape()[1]), width_(data.images.shape()[2]),
      channels_(data.images.shape()[3]), sample_floats_(height_ * width_ * channels_),
      transform_({.flip = options.flip, .crop_padding = options.crop_padding,
                  .random_resized_crop = options.random_resized_crop, .color_jitter = options.color_jitter},
                 options.normalization, height_, width_, channels_) {
    if (batch_size == 0) throw std::invalid_argument("batch_loader: the batch size must be at least 1");
    if (data.labels.size() != data.size())
        throw std::invalid_argument("batch_loader: the data set has " + std::to_string(data.size()) + " images but " +
                                    std::to_string(data.labels.size()) + " labels");
    for (auto& s_ : slots_) {
        s_.images.resize(batch_size * sample_floats_);
        s_.labels.resize(batch_size);
    }
    if (options_.pool == nullptr) worker_ = std::thread([this] { run(); });
}

inline batch_loader::~batch_loader() {
    {
        std::lock_guard lk(m_);
        stop_ = true;
    }
    work_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

inline std::size_t batch_loader::batches() const {
    std::lock_guard lk(m_);
    return batches_;
}

inline void batch_loader::start_epoch(std::span<const std::size_t> order, std::size_t epoch) {
    {
        std::unique_lock lk(m_);
        // The worker may be filling a slot from the old order: let it finish first.
        ready_cv_.wait(lk, [&] { return !busy_; });
        order_.assign(order.begin(), order.end());
        transform_.start_epoch(options_.seed, epoch, options_.rank);
        batches_ = options_.drop_last ? order.size() / batch_size_ : (order.size() + batch_size_ - 1) / batch_size_;
        produced_ = released_ = taken_ = 0;
        error_ = nullptr;
        started_ = true;
    }
    work_cv_.notify_one();
}

inline const batch* batch_loader::next() {
    std::unique_lock lk(m_);
    if (!started_) throw std::logic_error("batch_loader::next: call start_epoch first");
    if (released_ < taken_) {
        released_ = taken_;  // the batch handed out last time is done with: its slot may be refilled
        work_cv_.notify_one();
    }
    if (taken_ == batches_) return nullptr;
    if (options_.pool != nullptr) {  // assembled now, on the pool's threads; an error propagates as is
        fill(taken_);
        produced_ = taken_ + 1;
        return &slots_[taken_++ % buffers].view;
    }
    ready_cv_.wait(lk, [&] { return produced_ > taken_ || error_ != nullptr; });
    if (produced_ <= taken_) std::rethrow_exception(error_);
    return &slots_[taken_++ % buffers].view;
}

inline void batch_loader::run() {
    std::unique_lock lk(m_);
    for (;;) {
        work_cv_.wait(lk, [&] {
            return stop_ || (error_ == nullptr && produced_ < batches_ && produced_ < released_ + buffers);
        });
        if (stop_) return;
        const std::size_t k = produced_;
        busy_ = true;
        lk.unlock();
        std::exception_ptr failure;
        try {
            fill(k);
        } catch (...) {
            failure = std::current_exception();
        }
        lk.lock();
        busy_ = false;
        if (failure)
            error_ = failure;
        else
            ++produced_;
        ready_cv_.notify_all();
    }
}

inline void batch_loader::fill(std::size_t k) {
    slot& s = slots_[k % buffers];
    const std::size_t begin = k * batch_size_;
    const std::size_t n = std::min(batch_size_, order_.size() - begin);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t index = order_[begin + i];
        if (index >= samples_)
            throw std::out_of_range(
                "batch_loader: sample index " + std::to_string(index) + " at position " + std::to_string(begin + i) +
                " of the epoch order is out of range for a data set of " + std::to_string(samples_) + " samples");
        s.labels[i] = labels_[index];
    }
    auto gather_range = [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i) gather(order_[begin + i], s.images.data() + i * sample_floats_);
    };
    if (options_.pool != nullptr)
        options_.pool->parallel_for(n, gather_range, 8);
    else
        gather_range(0, n);
    s.view.images = {s.images.data(), n * sample_floats_};
    s.view.labels = {s.labels.data(), n};
    s.view.indices = {order_.data() + begin, n};
    s.view.size = n;
    s.view.index = k;
    s.view.shape = {n, height_, width_, channels_};
}

inline void batch_loader::gather(std::size_t index, float* dst) const {
    if (byte_images_ != nullptr)
        transform_(byte_images_ + index * sample_floats_, index, dst);
    else
        transform_(float_images_ + index * sample_floats_, index, dst);
}

}  // namespace staticnet::data
