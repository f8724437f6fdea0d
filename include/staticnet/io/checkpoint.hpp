#pragma once
/// @file
/// Checkpoints and weight files: save a training run and continue it exactly, or keep only
/// the weights for inference. The format is in docs/checkpoints.md.
///
/// - A checkpoint holds the parameter and state arenas, the optimizer state (Adam's moments,
///   the step count), the learning rate and the `training_position` (epoch, step within it,
///   running sums, batch size and seed), under a header with the architecture fingerprint,
///   and a CRC-32 over everything. A weights file holds the arenas and the fingerprint.
/// - Files are written by rank 0 only, atomically: a temporary file in the same directory,
///   written, flushed and fsync'ed, then renamed over the final name, so a crash or a full
///   disk never leaves a half-written checkpoint under a checkpoint's name.
/// - Loading checks everything before touching the model: magic, version, size, checksum,
///   fingerprint (the message names both), sizes and optimizer. Under MPI rank 0 reads and
///   broadcasts; a failure is reported on every rank with rank 0's message.
///
///     sn::checkpoint_callback saver{.directory = "ckpt", .every_epochs = 1, .keep = 3};
///     model.fit(train, {.epochs = 10}, saver);
///     ...
///     if (sn::resume_latest(model, "ckpt")) model.fit(train, {.epochs = 10, .resume = true}, saver);

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "../core/crc32.hpp"
#include "../core/error.hpp"
#include "../train/history.hpp"
#include "../train/model.hpp"

namespace staticnet {

static_assert(std::endian::native == std::endian::little, "staticnet files are little-endian; big-endian hosts need byte swapping");

/// Writes a checkpoint of `model` (parameters, state, optimizer, position) to `file`,
/// atomically. Call it on rank 0 (the callback does).
template <typename Model>
void save_checkpoint(Model& model, const std::filesystem::path& file, const training_position& position);

/// Loads the checkpoint `file` into `model` on every rank (rank 0 reads, then broadcasts)
/// and sets its position, so `fit(..., {.resume = true})` continues the run. Throws
/// `checkpoint_error` on every rank if the file is missing, damaged or for another network.
template <typename Model>
void load_checkpoint(Model& model, const std::filesystem::path& file);

/// Loads the newest valid checkpoint of `directory`; damaged newer ones are reported on
/// `log` and skipped. Returns the file loaded, or nothing if the directory holds no
/// checkpoint at all. Throws `checkpoint_error` if the directory does not exist or no
/// checkpoint in it is valid (the message lists each file and what is wrong with it).
template <typename Model>
std::optional<std::filesystem::path> resume_latest(Model& model, const std::filesystem::path& directory,
                                                   std::ostream& log = std::cerr);

/// Writes only the network's parameters and state (with the fingerprint), atomically.
template <typename Net>
void save_weights(const Net& network, const std::filesystem::path& file);
/// Loads weights written by `save_weights` for the same architecture.
template <typename Net>
void load_weights(Net& network, const std::filesystem::path& file);

/// The checkpoints of `directory`, oldest first (by training step).
inline std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& directory);

/// A `fit` callback that writes a checkpoint every `every_epochs` epochs and/or every
/// `every_steps` steps into `directory` (created if needed), keeping the newest `keep`.
/// With an empty `directory` it does nothing (so a program can always pass one).
struct checkpoint_callback {
    std::filesystem::path directory;
    std::size_t every_epochs = 1;   ///< 0: never at epoch ends
    std::size_t every_steps = 0;    ///< 0: never within epochs
    std::size_t keep = 3;

    template <typename Model>
    void on_batch_end(Model& model, const batch_log& b) const {
        if (every_steps != 0 && model.steps_done() % every_steps == 0 && b.step != b.steps) save(model);
    }
    template <typename Model>
    void on_epoch_end(Model& model, const epoch_log& e) const {
        if (every_epochs != 0 && e.epoch % every_epochs == 0) save(model);
    }

private:
    template <typename Model>
    void save(Model& model) const;
};

// ------------------------------------------------------------------ implementation

namespace detail {

inline constexpr std::array<char, 8> checkpoint_magic{'S', 'N', 'C', 'H', 'K', 'P', 'T', '1'};
inline constexpr std::array<char, 8> weights_magic{'S', 'N', 'W', 'E', 'I', 'G', 'H', '1'};
inline constexpr std::uint32_t checkpoint_version = 1;

/// The fixed header of a checkpoint (136 bytes, little-endian, no padding by construction).
struct checkpoint_header {
    std::array<char, 8> magic;
    std::uint32_t version;
    std::uint32_t header_bytes;
    std::uint64_t fingerprint;
    std::array<char, 16> optimizer;
    std::uint64_t parameter_floats, state_floats, optimizer_floats;
    std::uint64_t iterations, epoch, step, batch_size, seed;
    double loss_sum, correct, seen;
    float learning_rate;
    std::uint32_t reserved;
};
static_assert(sizeof(checkpoint_header) == 136);

/// The fixed header of a weights file (48 bytes).
struct weights_header {
    std::array<char, 8> magic;
    std::uint32_t version;
    std::uint32_t header_bytes;
    std::uint64_t fingerprint;
    std::uint64_t parameter_floats, state_floats;
    std::uint64_t reserved;
};
static_assert(sizeof(weights_header) == 48);

inline std::string hex(std::uint64_t v) {
    std::ostringstream s;
    s << "0x" << std::hex << std::setw(16) << std::setfill('0') << v;
    return s.str();
}

/// Appends raw bytes of trivially copyable values.
struct byte_writer {
    std::vector<unsigned char> bytes;
    void put(const void* p, std::size_t n) {
        if (n == 0) return;
        const auto* b = static_cast<const unsigned char*>(p);
        bytes.insert(bytes.end(), b, b + n);
    }
    template <typename T>
    void put_span(std::span<const T> s) { put(s.data(), s.size_bytes()); }
    void seal() {  // the CRC of everything so far, as the last 4 bytes
        const std::uint32_t crc = crc32(bytes.data(), bytes.size());
        put(&crc, sizeof crc);
    }
};

[[noreturn]] inline void io_failure(const std::string& what, const std::filesystem::path& file, int err) {
    throw checkpoint_error(what + " '" + file.string() + "': " + std::strerror(err));
}

/// Writes `bytes` to `file` atomically: temporary file, fsync, rename, fsync of the directory.
inline void write_atomically(const std::filesystem::path& file, const std::vector<unsigned char>& bytes) {
    const auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    const auto tmp = dir / ("." + file.filename().string() + ".tmp" + std::to_string(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) io_failure("cannot create", tmp, errno);
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : ENOSPC;
            ::close(fd);
            ::unlink(tmp.c_str());
            io_failure("cannot write (disk full?) after " + std::to_string(done) + " bytes of", tmp, err);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        io_failure("cannot flush", tmp, err);
    }
    if (::rename(tmp.c_str(), file.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        io_failure("cannot rename the temporary file to", file, err);
    }
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);  // make the rename itself durable
        ::close(dfd);
    }
}

inline std::vector<unsigned char> read_file(const std::filesystem::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) io_failure("cannot open", file, errno);
    std::vector<unsigned char> bytes;
    unsigned char buffer[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            io_failure("cannot read", file, err);
        }
        if (n == 0) break;
        bytes.insert(bytes.end(), buffer, buffer + n);
    }
    ::close(fd);
    return bytes;
}

/// Checks size, magic, version and CRC common to both kinds of file; returns the header.
template <typename Header>
Header check_file(const std::vector<unsigned char>& bytes, const std::filesystem::path& file,
                  const std::array<char, 8>& magic, std::string_view kind) {
    const std::string name = std::string(kind) + " '" + file.string() + "'";
    if (bytes.size() < sizeof(Header) + 4)
        throw checkpoint_error(name + " is truncated: " + std::to_string(bytes.size()) + " bytes, a header alone is " +
                               std::to_string(sizeof(Header) + 4));
    Header h;
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.magic != magic) throw checkpoint_error(name + " is not a staticnet " + std::string(kind) + " (wrong magic at offset 0)");
    if (h.version != checkpoint_version)
        throw checkpoint_error(name + " has format version " + std::to_string(h.version) + "; this staticnet reads version " +
                               std::to_string(checkpoint_version));
    if (h.header_bytes != sizeof(Header))
        throw checkpoint_error(name + " has a " + std::to_string(h.header_bytes) + "-byte header, expected " +
                               std::to_string(sizeof(Header)));
    std::uint32_t stored;
    std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
    const std::uint32_t actual = crc32(bytes.data(), bytes.size() - 4);
    if (stored != actual)
        throw checkpoint_error(name + " is damaged: checksum mismatch (stored " + hex(stored) + ", computed " + hex(actual) +
                               "; truncated or corrupted)");
    return h;
}

inline void check_fingerprint(std::uint64_t stored, std::uint64_t expected, const std::filesystem::path& file,
                              std::string_view kind) {
    if (stored != expected)
        throw checkpoint_error(std::string(kind) + " '" + file.string() + "' was written for another architecture: its fingerprint is " +
                               hex(stored) + ", this network's is " + hex(expected));
}

inline void check_count(std::uint64_t stored, std::size_t expected, std::string_view what, const std::filesystem::path& file) {
    if (stored != expected)
        throw checkpoint_error("checkpoint '" + file.string() + "' holds " + std::to_string(stored) + " " + std::string(what) +
                               ", this model has " + std::to_string(expected));
}

template <typename T>
void copy_out(std::span<T> to, const unsigned char*& from) {
    if (to.empty()) return;  // an empty arena has no pointer to copy to
    std::memcpy(to.data(), from, to.size_bytes());
    from += to.size_bytes();
}

/// Rank 0 runs `load` (which may throw); its outcome, and its message on failure, reaches
/// every rank, so all ranks throw the same error or all continue to the broadcasts.
template <typename Comm, typename Load>
void on_root_then_share_outcome(Comm& comm, Load&& load) {
    std::string message;
    if (comm.rank() == 0) {
        try {
            load();
        } catch (const std::exception& e) {
            message = e.what();
            if (message.empty()) message = "unknown error";
        }
    }
    std::array<std::uint64_t, 1> length{message.size()};
    comm.broadcast(std::span<std::uint64_t>(length), 0);
    if (length[0] == 0) return;
    std::vector<std::uint64_t> packed((length[0] + 7) / 8);
    if (comm.rank() == 0) std::memcpy(packed.data(), message.data(), message.size());
    comm.broadcast(std::span<std::uint64_t>(packed), 0);
    message.assign(reinterpret_cast<const char*>(packed.data()), length[0]);
    throw checkpoint_error(message);
}

}  // namespace detail

template <typename Model>
void save_checkpoint(Model& model, const std::filesystem::path& file, const training_position& p) {
    using Net = typename Model::network_type;
    auto& net = model.network();
    auto& opt = model.optimizer_state();
    detail::checkpoint_header h{};
    h.magic = detail::checkpoint_magic;
    h.version = detail::checkpoint_version;
    h.header_bytes = sizeof h;
    h.fingerprint = Net::fingerprint;
    std::copy_n(Model::optimizer_type::name.data(), std::min<std::size_t>(15, Model::optimizer_type::name.size()), h.optimizer.data());
    h.parameter_floats = net.parameters().size();
    h.state_floats = net.state().size();
    h.optimizer_floats = opt.state().size();
    h.iterations = opt.iterations();
    h.epoch = p.epoch;
    h.step = p.step;
    h.batch_size = p.batch_size;
    h.seed = p.seed;
    h.loss_sum = p.loss_sum;
    h.correct = p.correct;
    h.seen = p.seen;
    h.learning_rate = opt.learning_rate();
    detail::byte_writer w;
    w.put(&h, sizeof h);
    w.put_span(std::span<const float>(net.parameters()));
    w.put_span(std::span<const float>(net.state()));
    w.put_span(std::span<const float>(opt.state()));
    w.seal();
    detail::write_atomically(file, w.bytes);
}

template <typename Model>
void load_checkpoint(Model& model, const std::filesystem::path& file) {
    using Net = typename Model::network_type;
    auto& comm = model.comm();
    auto& net = model.network();
    auto& opt = model.optimizer_state();
    // Counters travel as 64-bit words: the position's doubles bit-cast, then the learning rate.
    std::array<std::uint64_t, 10> counters{};
    detail::on_root_then_share_outcome(comm, [&] {
        const auto bytes = detail::read_file(file);
        const auto h = detail::check_file<detail::checkpoint_header>(bytes, file, detail::checkpoint_magic, "checkpoint");
        detail::check_fingerprint(h.fingerprint, Net::fingerprint, file, "checkpoint");
        const std::size_t payload = (h.parameter_floats + h.state_floats + h.optimizer_floats) * sizeof(float);
        if (bytes.size() != sizeof h + payload + 4)
            throw checkpoint_error("checkpoint '" + file.string() + "' is " + std::to_string(bytes.size()) +
                                   " bytes but its header announces " + std::to_string(sizeof h + payload + 4));
        detail::check_count(h.parameter_floats, net.parameters().size(), "parameters", file);
        detail::check_count(h.state_floats, net.state().size(), "state values", file);
        const std::string_view stored_optimizer(h.optimizer.data(), strnlen(h.optimizer.data(), h.optimizer.size()));
        if (stored_optimizer != Model::optimizer_type::name)
            throw checkpoint_error("checkpoint '" + file.string() + "' was written with optimizer '" + std::string(stored_optimizer) +
                                   "', this model uses '" + std::string(Model::optimizer_type::name) + "'");
        detail::check_count(h.optimizer_floats, opt.state().size(), "optimizer values", file);
        const unsigned char* at = bytes.data() + sizeof h;
        detail::copy_out(net.parameters(), at);
        detail::copy_out(net.state(), at);
        detail::copy_out(opt.state(), at);
        counters = {h.iterations, h.epoch, h.step, h.batch_size, h.seed, std::bit_cast<std::uint64_t>(h.loss_sum),
                    std::bit_cast<std::uint64_t>(h.correct), std::bit_cast<std::uint64_t>(h.seen),
                    std::bit_cast<std::uint32_t>(h.learning_rate), 0};
    });
    comm.broadcast(net.parameters(), 0);
    comm.broadcast(net.state(), 0);
    comm.broadcast(opt.state(), 0);
    comm.broadcast(std::span<std::uint64_t>(counters), 0);
    opt.set_iterations(counters[0]);
    opt.set_learning_rate(std::bit_cast<float>(static_cast<std::uint32_t>(counters[8])));
    model.set_position({.epoch = counters[1], .step = counters[2], .batch_size = counters[3], .seed = counters[4],
                        .loss_sum = std::bit_cast<double>(counters[5]), .correct = std::bit_cast<double>(counters[6]),
                        .seen = std::bit_cast<double>(counters[7])});
    model.mark_synchronized();
}

inline std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& directory) {
    std::error_code ec;
    if (!std::filesystem::is_directory(directory, ec))
        throw checkpoint_error("checkpoint directory '" + directory.string() + "' does not exist");
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        const auto name = entry.path().filename().string();
        if (entry.is_regular_file() && name.starts_with("checkpoint-") && name.ends_with(".snckpt")) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());  // names carry the zero-padded step
    return files;
}

template <typename Model>
std::optional<std::filesystem::path> resume_latest(Model& model, const std::filesystem::path& directory, std::ostream& log) {
    std::vector<std::filesystem::path> files;
    detail::on_root_then_share_outcome(model.comm(), [&] { files = list_checkpoints(directory); });
    std::array<std::uint64_t, 1> count{files.size()};
    model.comm().broadcast(std::span<std::uint64_t>(count), 0);
    if (count[0] == 0) return std::nullopt;
    std::string problems;
    // Every rank walks the same list (rank 0's) from the newest; load_checkpoint agrees on
    // the outcome of each try, so the ranks stay in step.
    for (std::uint64_t i = count[0]; i-- > 0;) {
        const auto file = model.comm().rank() == 0 ? files[i] : std::filesystem::path{};
        try {
            load_checkpoint(model, file);
            if (model.comm().rank() == 0 && !problems.empty()) log << "staticnet: resumed from " << file << '\n';
            return model.comm().rank() == 0 ? std::optional(file) : std::optional(std::filesystem::path{});
        } catch (const checkpoint_error& e) {
            if (model.comm().rank() == 0) log << "staticnet: skipping " << e.what() << '\n';
            problems += std::string("\n  ") + e.what();
        }
    }
    throw checkpoint_error("no valid checkpoint in '" + directory.string() + "':" + problems);
}

template <typename Model>
void checkpoint_callback::save(Model& model) const {
    if (directory.empty()) return;
    const training_position p = model.global_position();  // a collective: every rank takes part
    if (model.comm().rank() != 0) return;
    std::filesystem::create_directories(directory);
    std::ostringstream name;
    name << "checkpoint-" << std::setw(12) << std::setfill('0') << model.steps_done() << ".snckpt";
    save_checkpoint(model, directory / name.str(), p);
    auto files = list_checkpoints(directory);
    for (std::size_t i = 0; keep != 0 && i + keep < files.size(); ++i) std::filesystem::remove(files[i]);
}

template <typename Net>
void save_weights(const Net& network, const std::filesystem::path& file) {
    detail::weights_header h{};
    h.magic = detail::weights_magic;
    h.version = detail::checkpoint_version;
    h.header_bytes = sizeof h;
    h.fingerprint = Net::fingerprint;
    h.parameter_floats = network.parameters().size();
    h.state_floats = network.state().size();
    detail::byte_writer w;
    w.put(&h, sizeof h);
    w.put_span(network.parameters());
    w.put_span(network.state());
    w.seal();
    detail::write_atomically(file, w.bytes);
}

template <typename Net>
void load_weights(Net& network, const std::filesystem::path& file) {
    const auto bytes = detail::read_file(file);
    const auto h = detail::check_file<detail::weights_header>(bytes, file, detail::weights_magic, "weights file");
    detail::check_fingerprint(h.fingerprint, Net::fingerprint, file, "weights file");
    if (h.parameter_floats != network.parameters().size() || h.state_floats != network.state().size() ||
        bytes.size() != sizeof h + (h.parameter_floats + h.state_floats) * sizeof(float) + 4)
        throw checkpoint_error("weights file '" + file.string() + "' has sizes that do not match its header or this network");
    const unsigned char* at = bytes.data() + sizeof h;
    detail::copy_out(network.parameters(), at);
    detail::copy_out(network.state(), at);
}

}  // namespace staticnet
