#pragma once
/// @file
/// `shard_stream`: a rank's part of a shard set read from disk while training runs, instead
/// of loaded whole (`load_shards`). Memory for the data is bounded by the shuffle buffer and
/// the read-ahead, whatever the size of the set, so a set larger than memory can be trained.
///
///     sn::data::shard_stream train("shards", rank, ranks, sn::shape{28, 28, 1},
///                                  {.shuffle_buffer = 8192, .seed = 1});
///     model.fit(train, {.epochs = 10, .batch_size = 64, .seed = 1, .validation = &test});
///
/// A rank reads the files `assign_shards` gives it (with fewer files than ranks, its record
/// range of one file, as `load_shards` does). A background thread reads ahead, block by
/// block, verifying every block checksum and label as it arrives, into a queue of
/// `read_ahead` records; the trainer draws samples from a shuffle buffer filled from that
/// queue.
///
/// What the shuffle guarantees (the semantics of tf.data's `shuffle(buffer_size)` after a
/// shuffled file list, as in WebDataset):
/// - Every epoch, the order of the rank's shard files is a new seeded permutation.
/// - Records are read in file order within a file; each sample handed out is drawn uniformly
///   from the `shuffle_buffer` samples held (refilled from the stream after every draw). A
///   sample can therefore come out at most `shuffle_buffer - 1` positions before its place in
///   the file stream, but arbitrarily later. With a buffer at least as large as the rank's
///   part, the order is a uniform random permutation of it.
/// - One *pass* hands out each of the rank's records exactly once. When an epoch needs more
///   samples than the rank holds, a new pass starts (a new file order and new draws); the
///   buffer never mixes two passes. An epoch that needs fewer leaves the rest of the pass.
/// - The order depends only on (seed, epoch, rank, number of ranks): never on timing or on
///   the read-ahead, so a given seed and rank count train identically every time.
///
/// `fit` takes the epoch's length from the ranks' record counts (a sum over ranks, from the
/// shard headers), so every rank takes the same number of steps, as with `partitioned`
/// in-memory shards. A problem in a file throws `data_error` naming the file and the byte
/// offset, from the `next` call that needed the broken record.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "byte_dataset.hpp"
#include "shard_format.hpp"
#include "shard_set.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// How `shard_stream` reads and shuffles.
struct shard_stream_options {
    /// Samples held for shuffling; a sample is drawn uniformly from them (see the file comment).
    std::size_t shuffle_buffer = 8192;
    /// Records the reading thread may hold ahead of the trainer.
    std::size_t read_ahead = 2048;
    /// Shuffle the file order and the samples; false: file order, records in order.
    bool shuffle = true;
    std::uint64_t seed = 0;  ///< of the file order and the draws
};

/// A rank's part of a shard set, streamed from disk (see the file comment). Driven by one
/// thread (the trainer's); it owns one reading thread of its own.
class shard_stream {
public:
    /// Opens the headers of rank `rank`'s files of the set in `dir`, checking that they agree
    /// on the sample shape and the number of classes (and match `expected` when given).
    /// Throws `data_error` naming the file on any problem.
    shard_stream(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                 std::optional<shape> expected = {}, shard_stream_options options = {});
    ~shard_stream();
    shard_stream(const shard_stream&) = delete;
    shard_stream& operator=(const shard_stream&) = delete;

    /// This rank's records (one pass).
    [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(records_); }
    [[nodiscard]] bool empty() const noexcept { return records_ == 0; }
    /// The (H, W, C) shape of a sample.
    [[nodiscard]] const shape& sample_shape() const noexcept { return sample_shape_; }
    [[nodiscard]] std::size_t num_classes() const noexcept { return num_classes_; }
    /// The class names of the set (`classes.txt`), or empty.
    [[nodiscard]] const std::vector<std::string>& class_names() const noexcept { return class_names_; }
    [[nodiscard]] const shard_stream_options& options() const noexcept { return options_; }
    /// The files (or record ranges) this rank reads, in set order.
    [[nodiscard]] const std::vector<shard_part>& parts() const noexcept { return parts_; }

    /// The most bytes the stream holds for data: the shuffle buffer and the read-ahead queue
    /// (pixels and labels) plus the one checksummed block the reader holds and its checksum
    /// table. Independent of the size of the set beyond its largest block.
    [[nodiscard]] std::size_t memory_bound() const noexcept;

    /// Starts epoch `epoch` from the beginning of its first pass, abandoning the rest of the
    /// previous epoch; the reading thread starts at once.
    void start_epoch(std::size_t epoch);

    /// The next `count` samples of the epoch: pixels as v / 255.0f into `images` (count x H x
    /// W x C floats) and labels into `labels`. Starts a new pass when the current one is used
    /// up. Throws `std::logic_error` before `start_epoch`, and rethrows a reading error.
    void next(std::size_t count, float* images, std::int32_t* labels);

    /// Passes over `count` samples (resuming an epoch part way).
    void skip(std::size_t count);

private:
    void produce();
    /// Reads one pass of epoch `epoch` into the queue; false when a new epoch interrupted it.
    bool produce_pass(std::uint64_t generation, std::size_t epoch, std::uint64_t pass);
    /// Waits for room and appends one record; false when a new epoch began (or on stop).
    bool push(std::uint64_t generation, const std::uint8_t* pixels, std::int32_t label);
    /// Moves records from the queue into the shuffle buffer until it is full or the pass
    /// has handed over all its records.
    void refill();
    void take(float* image, std::int32_t* label);

    std::filesystem::path dir_;
    std::size_t rank_;
    shard_stream_options options_;
    std::vector<shard_part> parts_;
    std::uint64_t records_ = 0;
    shape sample_shape_{};
    std::size_t sample_bytes_ = 0;
    std::size_t num_classes_ = 0;
    std::vector<std::string> class_names_;
    std::size_t largest_block_bytes_ = 0, largest_table_bytes_ = 0;

    // The shuffle buffer: the trainer's alone.
    std::size_t buffer_capacity_ = 1;
    std::vector<std::uint8_t> buffer_pixels_;
    std::vector<std::int32_t> buffer_labels_;
    std::size_t buffered_ = 0;
    std::uint64_t pulled_ = 0;  // records of the current pass moved into the buffer
    rng draws_;
    bool started_ = false;

    // The read-ahead queue (a ring), shared with the reading thread under m_.
    std::mutex m_;
    std::condition_variable work_cv_;   // wakes the reader: a new epoch, room, or stop
    std::condition_variable ready_cv_;  // wakes the trainer: records or an error
    std::vector<std::uint8_t> queue_pixels_;
    std::vector<std::int32_t> queue_labels_;
    std::size_t queue_capacity_ = 1;
    std::size_t queue_head_ = 0, queue_size_ = 0;
    std::uint64_t generation_ = 0;  // bumped by start_epoch
    std::size_t epoch_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
    std::thread reader_;
};

// ===================================================================== implementation

inline shard_stream::shard_stream(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                                  std::optional<shape> expected, shard_stream_options options)
    : dir_(dir), rank_(rank), options_(options) {
    detail::check_rank(rank, ranks);
    const auto files = list_shards(dir);
    const std::size_t shards = files.size();
    const auto mine = assign_shards(shards, rank, ranks);
    std::optional<detail::shard_header> first;
    std::filesystem::path first_file;
    for (std::size_t s : mine) {
        detail::shard_reader reader(files[s]);
        const auto& h = reader.header();
        if (expected) reader.check_shape(expected);
        if (first && (h.height != first->height || h.width != first->width || h.channels != first->channels))
            reader.fail("shape mismatch: the samples are " + detail::shape_text({h.height, h.width, h.channels}) +
                        " (byte offset 12) but those of '" + first_file.string() + "' are " +
                        detail::shape_text({first->height, first->width, first->channels}));
        if (first && h.num_classes != first->num_classes)
            reader.fail("mismatched number of classes: " + std::to_string(h.num_classes) + " (byte offset 28) but '" +
                        first_file.string() + "' has " + std::to_string(first->num_classes));
        if (!first) {
            first = h;
            first_file = files[s];
        }
        shard_part part{files[s], 0, h.records, true};
        if (shards < ranks) {  // ranks sharing one file take balanced contiguous record ranges
            const auto [r0, r1] = detail::ranks_of_shard(s, shards, ranks);
            const std::size_t group = r1 - r0, pos = rank - r0;
            const std::uint64_t n = h.records;
            const auto cut = [&](std::uint64_t k) { return n / group * k + n % group * k / group; };
            part = {files[s], cut(pos), cut(pos + 1) - cut(pos), false};
        }
        parts_.push_back(part);
        records_ += part.count;
        largest_block_bytes_ =
            std::max(largest_block_bytes_, static_cast<std::size_t>(std::min<std::uint64_t>(h.records, h.records_per_block) *
                                                                    h.record_bytes()));
        largest_table_bytes_ = std::max(largest_table_bytes_, static_cast<std::size_t>(4 * h.blocks()));
    }
    sample_shape_ = shape{first->height, first->width, first->channels};
    sample_bytes_ = static_cast<std::size_t>(first->sample_bytes());
    num_classes_ = first->num_classes;
    class_names_ = read_class_names(dir);
    if (!class_names_.empty() && class_names_.size() != num_classes_)
        throw data_error("shard directory '" + dir.string() + "': '" + std::string(class_names_file_name) + "' names " +
                         std::to_string(class_names_.size()) + " classes but the shards have " +
                         std::to_string(num_classes_));

    buffer_capacity_ = options_.shuffle ? std::max<std::size_t>(options_.shuffle_buffer, 1) : 1;
    buffer_pixels_.resize(buffer_capacity_ * sample_bytes_);
    buffer_labels_.resize(buffer_capacity_);
    queue_capacity_ = std::max<std::size_t>(options_.read_ahead, 1);
    queue_pixels_.resize(queue_capacity_ * sample_bytes_);
    queue_labels_.resize(queue_capacity_);
    reader_ = std::thread([this] { produce(); });
}

inline shard_stream::~shard_stream() {
    {
        std::lock_guard lk(m_);
        stop_ = true;
    }
    work_cv_.notify_all();
    reader_.join();
}

inline std::size_t shard_stream::memory_bound() const noexcept {
    const std::size_t record = sample_bytes_ + sizeof(std::int32_t);
    return (buffer_capacity_ + queue_capacity_) * record + largest_block_bytes_ + largest_table_bytes_;
}

inline void shard_stream::start_epoch(std::size_t epoch) {
    {
        std::lock_guard lk(m_);
        ++generation_;
        epoch_ = epoch;
        queue_head_ = queue_size_ = 0;
        error_ = nullptr;
    }
    work_cv_.notify_all();
    buffered_ = 0;
    pulled_ = 0;
    draws_ = rng::derived(rng::derived(options_.seed ^ 0x5a4dULL, epoch)(), rank_);
    started_ = true;
}

inline void shard_stream::next(std::size_t count, float* images, std::int32_t* labels) {
    if (!started_) throw std::logic_error("shard_stream::next: call start_epoch first");
    for (std::size_t i = 0; i < count; ++i) take(images + i * sample_bytes_, labels + i);
}

inline void shard_stream::skip(std::size_t count) {
    if (!started_) throw std::logic_error("shard_stream::skip: call start_epoch first");
    for (std::size_t i = 0; i < count; ++i) take(nullptr, nullptr);
}

inline void shard_stream::take(float* image, std::int32_t* label) {
    if (records_ == 0) throw data_error("shard directory '" + dir_.string() + "': this rank's part holds no records");
    refill();
    if (buffered_ == 0) {  // the pass is used up: the next one (the reader is already at it)
        pulled_ = 0;
        refill();
    }
    const std::size_t k = buffer_capacity_ == 1 ? 0 : static_cast<std::size_t>(draws_.below(buffered_));
    const std::uint8_t* px = buffer_pixels_.data() + k * sample_bytes_;
    if (image != nullptr)
        for (std::size_t i = 0; i < sample_bytes_; ++i) image[i] = pixel_value(px[i]);
    if (label != nullptr) *label = buffer_labels_[k];
    // The last sample takes the drawn one's place: the buffer stays dense.
    const std::size_t last = --buffered_;
    if (k != last) {
        std::memcpy(buffer_pixels_.data() + k * sample_bytes_, buffer_pixels_.data() + last * sample_bytes_,
                    sample_bytes_);
        buffer_labels_[k] = buffer_labels_[last];
    }
}

inline void shard_stream::refill() {
    if (buffered_ == buffer_capacity_ || pulled_ == records_) return;
    std::unique_lock lk(m_);
    while (buffered_ < buffer_capacity_ && pulled_ < records_) {
        ready_cv_.wait(lk, [&] { return queue_size_ > 0 || error_ != nullptr; });
        if (queue_size_ == 0) std::rethrow_exception(error_);
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(
            {queue_size_, buffer_capacity_ - buffered_, records_ - pulled_}));
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t q = (queue_head_ + i) % queue_capacity_;
            std::memcpy(buffer_pixels_.data() + (buffered_ + i) * sample_bytes_,
                        queue_pixels_.data() + q * sample_bytes_, sample_bytes_);
            buffer_labels_[buffered_ + i] = queue_labels_[q];
        }
        queue_head_ = (queue_head_ + n) % queue_capacity_;
        queue_size_ -= n;
        buffered_ += n;
        pulled_ += n;
        // A reader that found the queue full waits for half of it to be free: one wake-up
        // per half queue, not per sample, when the compute threads hold every core.
        if (queue_size_ <= queue_capacity_ / 2) work_cv_.notify_all();
    }
}

inline void shard_stream::produce() {
    std::uint64_t done = 0;  // the generation last served
    std::unique_lock lk(m_);
    for (;;) {
        work_cv_.wait(lk, [&] { return stop_ || generation_ != done; });
        if (stop_) return;
        const std::uint64_t generation = done = generation_;
        const std::size_t epoch = epoch_;
        lk.unlock();
        std::exception_ptr failure;
        try {
            // Passes follow each other until a new epoch starts; an empty part has none.
            for (std::uint64_t pass = 0; records_ != 0 && produce_pass(generation, epoch, pass); ++pass) {
            }
        } catch (...) {
            failure = std::current_exception();
        }
        lk.lock();
        if (failure && generation == generation_) {
            error_ = failure;
            ready_cv_.notify_all();
        }
    }
}

inline bool shard_stream::produce_pass(std::uint64_t generation, std::size_t epoch, std::uint64_t pass) {
    std::vector<std::size_t> order(parts_.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (options_.shuffle) {
        rng g = rng::derived(rng::derived(rng::derived(options_.seed, epoch)(), pass)(), rank_);
        shuffle(order.begin(), order.end(), g);
    }
    for (const std::size_t p : order) {
        const shard_part& part = parts_[p];
        if (part.count == 0) continue;
        detail::shard_reader reader(part.file);  // validates the header and the size again
        reader.check_shape(sample_shape_);
        const std::uint64_t last = part.first + part.count;
        const std::uint64_t per_block = reader.header().records_per_block;
        for (std::uint64_t j = part.first / per_block; j <= (last - 1) / per_block; ++j) {
            if (!reader.load_block(j)) reader.fail(reader.block_mismatch(j));
            const std::uint64_t from = std::max(part.first, reader.first_of(j));
            const std::uint64_t to = std::min(last, reader.first_of(j) + reader.records_in(j));
            for (std::uint64_t r = from; r < to; ++r) {
                const auto label = reader.label_at(j, r);
                if (!label) reader.fail(reader.label_problem(j, r));
                if (!push(generation, reader.pixels_at(j, r), *label)) return false;
            }
        }
    }
    return true;
}

inline bool shard_stream::push(std::uint64_t generation, const std::uint8_t* pixels, std::int32_t label) {
    std::unique_lock lk(m_);
    if (queue_size_ == queue_capacity_)  // full: come back when half of it is free (see refill)
        work_cv_.wait(lk, [&] { return stop_ || generation_ != generation || queue_size_ <= queue_capacity_ / 2; });
    if (stop_ || generation_ != generation) return false;
    const std::size_t q = (queue_head_ + queue_size_) % queue_capacity_;
    std::memcpy(queue_pixels_.data() + q * sample_bytes_, pixels, sample_bytes_);
    queue_labels_[q] = label;
    ++queue_size_;
    if (queue_size_ == 1) ready_cv_.notify_one();  // the trainer waits only on an empty queue
    return true;
}

}  // namespace staticnet::data
