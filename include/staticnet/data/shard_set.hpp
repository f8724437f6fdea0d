#pragma once
/// @file
/// Shard sets: a data set stored as K shard files in one directory (the file format is in
/// `shard_format.hpp`), and how the files are spread over the ranks of a job.
///
/// The files of a set are named `shard-00003-of-00008.snshard`; `list_shards` checks that
/// the set is complete, `assign_shards` says which files a rank reads, and `load_shards`
/// reads a rank's files (or, with fewer files than ranks, its record range inside a file).
/// The ranks' parts are disjoint, cover the set, and in rank order give the records in set
/// order.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/file_io.hpp"
#include "../core/shape.hpp"
#include "byte_dataset.hpp"
#include "dataset.hpp"
#include "shard_format.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// The canonical name of shard `index` of a set of `count`: "shard-00003-of-00008.snshard".
[[nodiscard]] inline std::string shard_file_name(std::size_t index, std::size_t count);

/// The shard files of a set in `dir`, ordered by index. Throws `data_error` when the
/// directory is missing or holds no shard file, when a `.snshard` file is not named like
/// a shard, when files disagree on the size of the set, or when a shard is missing (the
/// message names the missing file). Files with other extensions are ignored.
[[nodiscard]] inline std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir);

/// The shard indices rank `rank` of `ranks` reads, balanced at file level: with K >= R
/// shards every rank gets a contiguous run of K/R or K/R + 1 files; with K < R ranks are
/// spread over the files in balanced groups and each rank gets the one file it shares with
/// its group (it then reads only its part of the records, see `load_shards`).
[[nodiscard]] inline std::vector<std::size_t> assign_shards(std::size_t shards, std::size_t rank, std::size_t ranks);

/// The file beside the shards that names the classes, one name per line in label order
/// (`staticnet-shard` writes it when its source has class names, e.g. an image folder). A
/// file of its own keeps the shard format (version 1) unchanged: older readers ignore it.
inline constexpr std::string_view class_names_file_name = "classes.txt";

/// Writes `names` to `dir/classes.txt`, atomically. Throws `data_error` for a name with a
/// line break or on an I/O failure.
inline void write_class_names(const std::filesystem::path& dir, const std::vector<std::string>& names);

/// The class names of the shard set in `dir`; empty when it has no `classes.txt`.
[[nodiscard]] inline std::vector<std::string> read_class_names(const std::filesystem::path& dir);

/// One piece of a shard file that `load_shards` opened and read.
struct shard_part {
    std::filesystem::path file;
    std::uint64_t first = 0;  ///< first record read
    std::uint64_t count = 0;  ///< records read
    bool whole = true;        ///< the whole file (file-level split) or a record range of it
};

/// What `load_shards` did: the files it opened, in order (for logs and tests).
struct shard_load_report {
    std::vector<shard_part> opened;
    bool record_level = false;  ///< fewer shards than ranks: records were split inside a shard
};

/// Loads rank `rank`'s part of the shard set in `dir`, opening only that rank's files
/// (see `assign_shards`). With fewer shard files than ranks it falls back to record-level
/// splitting (rank 0 prints a warning to stderr): the ranks sharing a file each read a
/// contiguous, balanced record range of it, seeking past the rest. Every file read must match
/// `expected` when given, and all of them must agree on the sample shape and the number of
/// classes. The class names (`classes.txt`), when present, must be as many as the classes.
[[nodiscard]] inline dataset load_shards(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                                         std::optional<shape> expected = {}, shard_load_report* report = nullptr);

/// `load_shards` keeping the pixels as stored (`byte_dataset`): a quarter of the memory.
[[nodiscard]] inline byte_dataset load_shard_bytes(const std::filesystem::path& dir, std::size_t rank,
                                                   std::size_t ranks, std::optional<shape> expected = {},
                                                   shard_load_report* report = nullptr);

// ===================================================================== implementation

namespace detail {

/// Parses "shard-<index>-of-<count>.snshard"; nothing when the name has another form.
inline std::optional<std::pair<std::size_t, std::size_t>> parse_shard_name(std::string_view name) {
    constexpr std::string_view prefix = "shard-", middle = "-of-";
    if (!name.starts_with(prefix) || !name.ends_with(shard_extension)) return std::nullopt;
    name.remove_prefix(prefix.size());
    name.remove_suffix(shard_extension.size());
    const auto number = [](std::string_view digits) -> std::optional<std::size_t> {
        // At most 9 digits: no overflow, and no set is that large.
        if (digits.empty() || digits.size() > 9) return std::nullopt;
        std::size_t v = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
        return v;
    };
    const auto cut = name.find(middle);
    if (cut == std::string_view::npos) return std::nullopt;
    const auto index = number(name.substr(0, cut));
    const auto count = number(name.substr(cut + middle.size()));
    if (!index || !count) return std::nullopt;
    return std::pair{*index, *count};
}

/// Ranks [begin, end) that share shard s when there are fewer shards than ranks: exactly
/// the ranks r with floor(r * K / R) == s, as assign_shards gives them.
inline std::pair<std::size_t, std::size_t> ranks_of_shard(std::size_t s, std::size_t shards, std::size_t ranks) {
    const auto ceil_div = [](std::size_t a, std::size_t b) { return (a + b - 1) / b; };
    return {ceil_div(s * ranks, shards), ceil_div((s + 1) * ranks, shards)};
}

inline void check_rank(std::size_t rank, std::size_t ranks) {
    if (ranks == 0) throw std::invalid_argument("staticnet: the number of ranks must be at least 1");
    if (rank >= ranks)
        throw std::invalid_argument("staticnet: rank " + std::to_string(rank) + " is out of range for " +
                                    std::to_string(ranks) + " ranks");
}

}  // namespace detail

inline std::string shard_file_name(std::size_t index, std::size_t count) {
    const auto padded = [](std::size_t v) {
        std::string s = std::to_string(v);
        return s.size() < 5 ? std::string(5 - s.size(), '0') + s : s;
    };
    return "shard-" + padded(index) + "-of-" + padded(count) + std::string(shard_extension);
}

inline std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir) {
    const auto fail = [&](const std::string& problem) -> void {
        throw data_error("shard directory '" + dir.string() + "': " + problem);
    };
    std::error_code ec;
    const auto st = std::filesystem::status(dir, ec);
    if (st.type() == std::filesystem::file_type::not_found) fail("the directory does not exist");
    if (!std::filesystem::is_directory(st)) fail("not a directory");

    std::map<std::size_t, std::filesystem::path> found;                     // by index
    std::optional<std::pair<std::size_t, std::filesystem::path>> set_size;  // count, and who said so
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) fail("cannot list the directory: " + ec.message());
    for (; it != std::filesystem::directory_iterator{}; it.increment(ec)) {
        const auto path = it->path();
        const std::string name = path.filename().string();
        if (path.extension() != shard_extension) continue;  // temporary files, notes, ...
        const auto parsed = detail::parse_shard_name(name);
        if (!parsed)
            fail("unexpected file name '" + path.string() + "': shard files must be named like '" +
                 shard_file_name(3, 8) + "'");
        const auto [index, count] = *parsed;
        if (count == 0) fail("invalid shard file name '" + path.string() + "': a set of 0 shards");
        if (index >= count)
            fail("invalid shard file name '" + path.string() + "': index " + std::to_string(index) +
                 " is out of range for a set of " + std::to_string(count));
        if (set_size && set_size->first != count)
            fail("mismatched shard counts: '" + set_size->second.string() + "' belongs to a set of " +
                 std::to_string(set_size->first) + " shards but '" + path.string() + "' to a set of " +
                 std::to_string(count));
        if (!set_size) set_size.emplace(count, path);
        if (const auto dup = found.find(index); dup != found.end())
            fail("duplicate shard index " + std::to_string(index) + ": '" + dup->second.string() + "' and '" +
                 path.string() + "'");
        found.emplace(index, path);
    }
    if (ec) fail("cannot list the directory: " + ec.message());
    if (found.empty()) fail("it holds no shard files (expected files named like '" + shard_file_name(0, 4) + "')");

    std::vector<std::filesystem::path> files;
    for (std::size_t i = 0; i < set_size->first; ++i) {
        const auto f = found.find(i);
        if (f == found.end())
            fail("missing shard file '" + (dir / shard_file_name(i, set_size->first)).string() + "': the set has " +
                 std::to_string(set_size->first) + " shards (named by '" + set_size->second.filename().string() +
                 "') but shard " + std::to_string(i) + " is not in the directory");
        files.push_back(f->second);
    }
    return files;
}

inline void write_class_names(const std::filesystem::path& dir, const std::vector<std::string>& names) {
    const auto file = dir / class_names_file_name;
    std::string text;
    for (const auto& n : names) {
        if (n.find_first_of("\r\n") != std::string::npos)
            throw data_error("cannot write '" + file.string() + "': the class name '" + n + "' holds a line break");
        text += n;
        text += '\n';
    }
    ::staticnet::detail::write_file_atomically<data_error>(file, "cannot write '" + file.string() + "'",
                                                           [&](::staticnet::detail::output_file& out) { out.write(text); });
}

inline std::vector<std::string> read_class_names(const std::filesystem::path& dir) {
    const auto file = dir / class_names_file_name;
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return {};
    const auto bytes = ::staticnet::detail::read_file_bytes<data_error>(file);
    std::vector<std::string> names;
    std::string line;
    for (const std::uint8_t b : bytes) {
        if (b == '\n') {
            names.push_back(std::move(line));
            line.clear();
        } else if (b != '\r') {
            line += static_cast<char>(b);
        }
    }
    if (!line.empty()) names.push_back(std::move(line));
    return names;
}

namespace detail {

/// Sets `d.class_names` from the set's classes.txt, checking that it names every class.
template <typename Data>
void attach_class_names(const std::filesystem::path& dir, Data& d) {
    auto names = read_class_names(dir);
    if (names.empty()) return;
    if (names.size() != d.num_classes)
        throw data_error("shard directory '" + dir.string() + "': '" + std::string(class_names_file_name) + "' names " +
                         std::to_string(names.size()) + " classes but the shards have " + std::to_string(d.num_classes));
    d.class_names = std::move(names);
}

}  // namespace detail

inline std::vector<std::size_t> assign_shards(std::size_t shards, std::size_t rank, std::size_t ranks) {
    detail::check_rank(rank, ranks);
    if (shards == 0) return {};
    if (shards < ranks) return {rank * shards / ranks};
    // Contiguous runs [r*K/R, (r+1)*K/R): sizes differ by at most one file.
    std::vector<std::size_t> mine;
    for (std::size_t s = rank * shards / ranks; s < (rank + 1) * shards / ranks; ++s) mine.push_back(s);
    return mine;
}

namespace detail {
/// `load_shards` into a `dataset` or a `byte_dataset`.
template <typename Data>
Data load_shards_as(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                    std::optional<shape> expected, shard_load_report* report);
}  // namespace detail

inline dataset load_shards(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                           std::optional<shape> expected, shard_load_report* report) {
    return detail::load_shards_as<dataset>(dir, rank, ranks, expected, report);
}

inline byte_dataset load_shard_bytes(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                                     std::optional<shape> expected, shard_load_report* report) {
    return detail::load_shards_as<byte_dataset>(dir, rank, ranks, expected, report);
}

namespace detail {

template <typename Data>
Data load_shards_as(const std::filesystem::path& dir, std::size_t rank, std::size_t ranks,
                    std::optional<shape> expected, shard_load_report* report) {
    detail::check_rank(rank, ranks);
    const auto files = list_shards(dir);
    const std::size_t shards = files.size();
    const auto mine = assign_shards(shards, rank, ranks);
    if (report) *report = shard_load_report{};

    if (shards < ranks) {
        // Every rank sees the same K < R; one warning (from rank 0) is enough for the log.
        if (rank == 0)
            std::cerr
                << "staticnet: warning: " << shards << (shards == 1 ? " shard file" : " shard files") << " in '"
                << dir.string() << "' for " << ranks
                << " ranks: splitting records inside shard files (write at least one shard per rank to avoid this)\n";
        const std::size_t s = mine.front();
        const auto [r0, r1] = detail::ranks_of_shard(s, shards, ranks);
        const std::size_t group = r1 - r0, pos = rank - r0;
        detail::shard_reader reader(files[s]);
        reader.check_shape(expected);
        const std::uint64_t n = reader.header().records;
        // Balanced contiguous ranges: floor(n * k / group), written so that it cannot overflow.
        const auto cut = [&](std::uint64_t k) { return n / group * k + n % group * k / group; };
        const std::uint64_t first = cut(pos), last = cut(pos + 1);
        if (report) {
            report->record_level = true;
            report->opened.push_back({files[s], first, last - first, false});
        }
        Data part = detail::read_part<Data>(reader, first, last - first);
        detail::attach_class_names(dir, part);
        return part;
    }

    // File level: open every file of this rank first, so the result is allocated once.
    std::vector<detail::shard_reader> readers;
    readers.reserve(mine.size());
    std::uint64_t total = 0;
    for (std::size_t s : mine) {
        readers.emplace_back(files[s]);
        auto& r = readers.back();
        const auto& h = r.header();
        if (report) report->opened.push_back({files[s], 0, h.records, true});
        if (expected) {
            r.check_shape(expected);
        } else {
            const auto& h0 = readers.front().header();
            if (h.height != h0.height || h.width != h0.width || h.channels != h0.channels)
                r.fail("shape mismatch: the samples are " + detail::shape_text({h.height, h.width, h.channels}) +
                       " (byte offset 12) but those of '" + readers.front().file().string() + "' are " +
                       detail::shape_text({h0.height, h0.width, h0.channels}));
        }
        if (h.num_classes != readers.front().header().num_classes)
            r.fail("mismatched number of classes: " + std::to_string(h.num_classes) + " (byte offset 28) but '" +
                   readers.front().file().string() + "' has " + std::to_string(readers.front().header().num_classes));
        total += h.records;
    }
    Data d = detail::make_dataset<Data>(total, readers.front().header());
    const auto sample = static_cast<std::size_t>(readers.front().header().sample_bytes());
    std::size_t at = 0;
    for (auto& r : readers) {
        const std::uint64_t n = r.header().records;
        r.read_records(0, n, d.images.data() + at * sample, d.labels.data() + at);
        at += static_cast<std::size_t>(n);
    }
    detail::attach_class_names(dir, d);
    return d;
}

}  // namespace detail

}  // namespace staticnet::data
