#pragma once
/// @file
/// Checkpoints and weight files: save a training run and continue it exactly, or keep only
/// the weights for inference. The format is in docs/checkpoints.md.
///
/// - A checkpoint holds the parameter and state arenas, the optimizer state (Adam's moments,
///   the step count), the learning rate and the `training_position` (epoch, step within it,
///   running sums, batch size and seed), under a header with the architecture fingerprint,
///   and a CRC-32 over everything. A weights file holds the arenas and the fingerprint.
/// - Files are written by rank 0 only, atomically (`core/file_io.hpp`): a temporary file in
///   the same directory, written, fsync'ed and renamed over the final name, then the
///   directory fsync'ed, so a crash or a full disk never leaves a half-written checkpoint
///   under a checkpoint's name.
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
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "../core/crc32.hpp"
#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../train/history.hpp"
#include "../train/model.hpp"

namespace staticnet {

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

/// What a checkpoint file says about itself, read without a model: for tools that manage runs
/// (`staticnet-run` picks the newest valid checkpoint and tells progress from a stuck job).
struct checkpoint_info {
    std::filesystem::path file;
    std::uint64_t fingerprint = 0;  ///< of the network that wrote it
    std::uint64_t steps_done = 0;   ///< optimizer steps since the run began (the name's number)
    std::uint64_t epoch = 0;        ///< epochs completed
    std::uint64_t step = 0;         ///< steps done within the current epoch
    std::uint64_t batch_size = 0;   ///< the run's global batch
    std::uint64_t seed = 0;
};

/// Checks `file` the way loading it would, short of the network (size, magic, version,
/// checksum, payload size), and returns its header. Throws `checkpoint_error` naming the file
/// and what is wrong.
inline checkpoint_info inspect_checkpoint(const std::filesystem::path& file);

/// The newest checkpoint of `directory` that `inspect_checkpoint` accepts, or nothing (also
/// when the directory does not exist). Damaged newer files are skipped, as `resume_latest`
/// skips them.
inline std::optional<checkpoint_info> newest_valid_checkpoint(const std::filesystem::path& directory);

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

/// The fixed header of a checkpoint: 136 bytes, little-endian, the fields in this order
/// (docs/checkpoints.md has the offsets).
struct checkpoint_header {
    static constexpr std::uint32_t bytes = 136;

    std::array<char, 8> magic{};
    std::uint32_t version = 0;
    std::uint32_t header_bytes = 0;
    std::uint64_t fingerprint = 0;
    std::array<char, 16> optimizer{};
    std::uint64_t parameter_floats = 0, state_floats = 0, optimizer_floats = 0;
    std::uint64_t iterations = 0, epoch = 0, step = 0, batch_size = 0, seed = 0;
    double loss_sum = 0.0, correct = 0.0, seen = 0.0;
    float learning_rate = 0.0f;
    std::uint32_t reserved = 0;

    void encode(byte_writer& w) const {
        w.put_bytes(magic.data(), magic.size());
        w.put(version);
        w.put(header_bytes);
        w.put(fingerprint);
        w.put_bytes(optimizer.data(), optimizer.size());
        for (const std::uint64_t v : {parameter_floats, state_floats, optimizer_floats, iterations, epoch, step,
                                      batch_size, seed})
            w.put(v);
        for (const double v : {loss_sum, correct, seen}) w.put(v);
        w.put(learning_rate);
        w.put(reserved);
    }
    static checkpoint_header decode(byte_reader& r) {
        checkpoint_header h;
        r.get_bytes(h.magic.data(), h.magic.size());
        h.version = r.get<std::uint32_t>();
        h.header_bytes = r.get<std::uint32_t>();
        h.fingerprint = r.get<std::uint64_t>();
        r.get_bytes(h.optimizer.data(), h.optimizer.size());
        for (std::uint64_t* v : {&h.parameter_floats, &h.state_floats, &h.optimizer_floats, &h.iterations, &h.epoch,
                                 &h.step, &h.batch_size, &h.seed})
            *v = r.get<std::uint64_t>();
        for (double* v : {&h.loss_sum, &h.correct, &h.seen}) *v = r.get<double>();
        h.learning_rate = r.get<float>();
        h.reserved = r.get<std::uint32_t>();
        return h;
    }
};

/// The fixed header of a weights file: 48 bytes.
struct weights_header {
    static constexpr std::uint32_t bytes = 48;

    std::array<char, 8> magic{};
    std::uint32_t version = 0;
    std::uint32_t header_bytes = 0;
    std::uint64_t fingerprint = 0;
    std::uint64_t parameter_floats = 0, state_floats = 0;
    std::uint64_t reserved = 0;

    void encode(byte_writer& w) const {
        w.put_bytes(magic.data(), magic.size());
        w.put(version);
        w.put(header_bytes);
        for (const std::uint64_t v : {fingerprint, parameter_floats, state_floats, reserved}) w.put(v);
    }
    static weights_header decode(byte_reader& r) {
        weights_header h;
        r.get_bytes(h.magic.data(), h.magic.size());
        h.version = r.get<std::uint32_t>();
        h.header_bytes = r.get<std::uint32_t>();
        for (std::uint64_t* v : {&h.fingerprint, &h.parameter_floats, &h.state_floats, &h.reserved})
            *v = r.get<std::uint64_t>();
        return h;
    }
};

/// Appends the CRC-32 of everything written so far: the last 4 bytes of every file.
inline void seal(byte_writer& w) { w.put(crc32(w.bytes().data(), w.bytes().size())); }

/// Writes a finished file (`what` is "checkpoint" or "weights file") atomically.
inline void write_file(const std::filesystem::path& file, std::string_view what, const byte_writer& w) {
    write_file_atomically<checkpoint_error>(file, "cannot write " + std::string(what) + " '" + file.string() + "'",
                                            [&](output_file& out) { out.write(w.bytes()); });
}

/// Checks size, magic, version, header size and CRC common to both kinds of file, in that
/// order; returns the header. The payload follows at `Header::bytes`.
template <typename Header>
Header check_file(const std::vector<std::uint8_t>& bytes, const std::filesystem::path& file,
                  const std::array<char, 8>& magic, std::string_view kind) {
    const std::string name = std::string(kind) + " '" + file.string() + "'";
    if (bytes.size() < Header::bytes + 4)
        throw checkpoint_error(name + " is truncated: " + std::to_string(bytes.size()) + " bytes, a header alone is " +
                               std::to_string(Header::bytes + 4));
    byte_reader r(bytes);
    const Header h = Header::decode(r);
    if (h.magic != magic) throw checkpoint_error(name + " is not a staticnet " + std::string(kind) + " (wrong magic at offset 0)");
    if (h.version != checkpoint_version)
        throw checkpoint_error(name + " has format version " + std::to_string(h.version) + "; this staticnet reads version " +
                               std::to_string(checkpoint_version));
    if (h.header_bytes != Header::bytes)
        throw checkpoint_error(name + " has a " + std::to_string(h.header_bytes) + "-byte header, expected " +
                               std::to_string(Header::bytes));
    const auto stored = load_le<std::uint32_t>(bytes.data() + bytes.size() - 4);
    const std::uint32_t actual = crc32(bytes.data(), bytes.size() - 4);
    if (stored != actual)
        throw checkpoint_error(name + " is damaged: checksum mismatch (stored " + hex_text(stored, 16) + ", computed " +
                               hex_text(actual, 16) + "; truncated or corrupted)");
    return h;
}

inline void check_fingerprint(std::uint64_t stored, std::uint64_t expected, const std::filesystem::path& file,
                              std::string_view kind) {
    if (stored != expected)
        throw checkpoint_error(std::string(kind) + " '" + file.string() + "' was written for another architecture: its fingerprint is " +
                               hex_text(stored, 16) + ", this network's is " + hex_text(expected, 16));
}

inline void check_count(std::uint64_t stored, std::size_t expected, std::string_view what, const std::filesystem::path& file) {
    if (stored != expected)
        throw checkpoint_error("checkpoint '" + file.string() + "' holds " + std::to_string(stored) + " " + std::string(what) +
                               ", this model has " + std::to_string(expected));
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
    h.header_bytes = detail::checkpoint_header::bytes;
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
    h.encode(w);
    w.put_floats(net.parameters());
    w.put_floats(net.state());
    w.put_floats(opt.state());
    detail::seal(w);
    detail::write_file(file, "checkpoint", w);
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
        const auto bytes = detail::read_file_bytes<checkpoint_error>(file);
        const auto h = detail::check_file<detail::checkpoint_header>(bytes, file, detail::checkpoint_magic, "checkpoint");
        detail::check_fingerprint(h.fingerprint, Net::fingerprint, file, "checkpoint");
        const std::size_t payload = (h.parameter_floats + h.state_floats + h.optimizer_floats) * sizeof(float);
        if (bytes.size() != h.bytes + payload + 4)
            throw checkpoint_error("checkpoint '" + file.string() + "' is " + std::to_string(bytes.size()) +
                                   " bytes but its header announces " + std::to_string(h.bytes + payload + 4));
        detail::check_count(h.parameter_floats, net.parameters().size(), "parameters", file);
        detail::check_count(h.state_floats, net.state().size(), "state values", file);
        const std::string_view stored_optimizer(h.optimizer.data(), strnlen(h.optimizer.data(), h.optimizer.size()));
        if (stored_optimizer != Model::optimizer_type::name)
            throw checkpoint_error("checkpoint '" + file.string() + "' was written with optimizer '" + std::string(stored_optimizer) +
                                   "', this model uses '" + std::string(Model::optimizer_type::name) + "'");
        detail::check_count(h.optimizer_floats, opt.state().size(), "optimizer values", file);
        detail::byte_reader r{std::span(bytes).subspan(h.bytes)};
        r.get_floats(net.parameters());
        r.get_floats(net.state());
        r.get_floats(opt.state());
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

inline checkpoint_info inspect_checkpoint(const std::filesystem::path& file) {
    const auto bytes = detail::read_file_bytes<checkpoint_error>(file);
    const auto h = detail::check_file<detail::checkpoint_header>(bytes, file, detail::checkpoint_magic, "checkpoint");
    // Each count is bounded by the file size before they are added, so the sum cannot wrap.
    const std::uint64_t limit = bytes.size() / sizeof(float);
    if (h.parameter_floats > limit || h.state_floats > limit || h.optimizer_floats > limit ||
        bytes.size() != h.bytes + (h.parameter_floats + h.state_floats + h.optimizer_floats) * sizeof(float) + 4)
        throw checkpoint_error("checkpoint '" + file.string() + "' is " + std::to_string(bytes.size()) +
                               " bytes, which does not match the sizes its header announces");
    return {.file = file, .fingerprint = h.fingerprint, .steps_done = h.iterations, .epoch = h.epoch, .step = h.step,
            .batch_size = h.batch_size, .seed = h.seed};
}

inline std::optional<checkpoint_info> newest_valid_checkpoint(const std::filesystem::path& directory) {
    std::error_code ec;
    if (!std::filesystem::is_directory(directory, ec)) return std::nullopt;
    const auto files = list_checkpoints(directory);
    for (auto file = files.rbegin(); file != files.rend(); ++file) {
        try {
            return inspect_checkpoint(*file);
        } catch (const checkpoint_error&) {
            // damaged or half-copied: an older one may still be good
        }
    }
    return std::nullopt;
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
    h.header_bytes = detail::weights_header::bytes;
    h.fingerprint = Net::fingerprint;
    h.parameter_floats = network.parameters().size();
    h.state_floats = network.state().size();
    detail::byte_writer w;
    h.encode(w);
    w.put_floats(network.parameters());
    w.put_floats(network.state());
    detail::seal(w);
    detail::write_file(file, "weights file", w);
}

template <typename Net>
void load_weights(Net& network, const std::filesystem::path& file) {
    const auto bytes = detail::read_file_bytes<checkpoint_error>(file);
    const auto h = detail::check_file<detail::weights_header>(bytes, file, detail::weights_magic, "weights file");
    detail::check_fingerprint(h.fingerprint, Net::fingerprint, file, "weights file");
    if (h.parameter_floats != network.parameters().size() || h.state_floats != network.state().size() ||
        bytes.size() != h.bytes + (h.parameter_floats + h.state_floats) * sizeof(float) + 4)
        throw checkpoint_error("weights file '" + file.string() + "' has sizes that do not match its header or this network");
    detail::byte_reader r{std::span(bytes).subspan(h.bytes)};
    r.get_floats(network.parameters());
    r.get_floats(network.state());
}

}  // namespace staticnet
