// staticnet-shard: cuts an IDX data set (raw or .gz) into a set of checksummed shard files,
// and verifies such a set.
//
//   staticnet-shard --images FILE --labels FILE --shards K --out DIR [--seed S] [--classes N]
//                   [--records-per-block B] [--force]
//   staticnet-shard --verify DIR
//
// Exit status: 0 success, 1 a data problem (unreadable input, damaged shard), 2 a usage error.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <staticnet/core/random.hpp>
#include <staticnet/data/idx.hpp>
#include <staticnet/data/shard_format.hpp>
#include <staticnet/data/shard_set.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tools/command_line.hpp"

namespace fs = std::filesystem;
namespace sd = staticnet::data;

namespace {

constexpr const char* program = "staticnet-shard";

/// A usage problem found after parsing (the --out directory); main reports it like a parse error.
struct usage_error {
    std::string message;
};

struct arguments {
    bool verify = false;  ///< --verify DIR: check a set; otherwise split
    std::string images, labels, out, verify_dir;
    std::size_t shards = 0, classes = 10;
    std::uint32_t records_per_block = sd::shard_write_options{}.records_per_block;
    std::optional<std::uint64_t> seed;
    bool force = false;
};

/// Reads the command line, or ends the program: status 0 after --help, 2 and one line on
/// stderr for a bad one (tools/command_line.hpp).
arguments parse(int argc, char** argv) {
    namespace cli = staticnet::tools;
    arguments a;
    CLI::App app{"Cuts an IDX data set (raw or gzip) into checksummed shard files, or verifies such a set.\n"
                 "  staticnet-shard --images FILE --labels FILE --shards K --out DIR [--seed S] [--classes N]\n"
                 "                  [--records-per-block B] [--force]\n"
                 "      writes DIR/shard-00000-of-0000K.snshard ...\n"
                 "  staticnet-shard --verify DIR",
                 program};
    app.footer("Exit status: 0 success, 1 a data problem (unreadable input, damaged or missing shard file),\n"
               "2 a usage error.");
    // An option given twice is an error (CLI11's default), as it always was here.
    auto* images = app.add_option("--images", a.images, "IDX image file")->type_name("FILE");
    auto* labels = app.add_option("--labels", a.labels, "IDX label file")->type_name("FILE");
    auto* shards = app.add_option("--shards", a.shards, "number of shard files")
                       ->type_name("K")->check(cli::whole_number(1, 99999));
    auto* out = app.add_option("--out", a.out, "directory of the shard files (made if missing)")->type_name("DIR");
    std::uint64_t seed = 0;
    auto* seeded = app.add_option("--seed", seed, "shuffle the records with this seed first (default: file order)")
                       ->type_name("S")->check(cli::whole_number(0));
    auto* classes = app.add_option("--classes", a.classes, "number of classes; every label must be below it")
                        ->type_name("N")->check(cli::whole_number(1, std::numeric_limits<std::int32_t>::max()))
                        ->capture_default_str();
    auto* block = app.add_option("--records-per-block", a.records_per_block, "records per checksummed block")
                      ->type_name("B")->check(cli::whole_number(1, 1u << 24))
                      ->capture_default_str();
    auto* force = app.add_flag("--force", a.force, "replace the shard files already in DIR");
    auto* verify = app.add_option("--verify", a.verify_dir, "check every shard file of the set in DIR")
                       ->type_name("DIR")
                       ->excludes(images, labels, shards, out, seeded, classes, block, force);
    cli::parse_or_exit(app, argc, argv);

    if (argc == 1) std::exit(cli::usage_error(program, "no arguments"));
    a.verify = verify->count() != 0;
    if (seeded->count() != 0) a.seed = seed;
    std::string missing;
    for (const auto* option : {images, labels, shards, out})
        if (!a.verify && option->count() == 0) missing += (missing.empty() ? "" : ", ") + option->get_name();
    if (!missing.empty()) std::exit(cli::usage_error(program, "missing " + missing + " (or --verify DIR)"));
    return a;
}

int verify(const fs::path& dir) {
    const auto files = sd::list_shards(dir);  // a missing shard throws, naming it
    std::vector<std::string> damaged;
    std::uint64_t records = 0;
    for (const auto& f : files) {
        const auto info = sd::verify_shard(f);
        std::cout << f.filename().string() << ": ";
        if (info.header_ok) {
            std::cout << info.records << " records of " << info.sample_shape.height() << "x"
                      << info.sample_shape.width() << "x" << info.sample_shape.channels() << ", " << info.num_classes
                      << " classes, " << info.blocks << " blocks, ";
            records += info.records;
        }
        if (info.ok) {
            std::cout << "checksums OK\n";
        } else {
            if (!info.bad_blocks.empty())
                std::cout << info.bad_blocks.size() << (info.bad_blocks.size() == 1 ? " bad block, " : " bad blocks, ");
            if (info.bad_labels != 0) std::cout << info.bad_labels << " labels out of range, ";
            std::cout << "DAMAGED\n";
            damaged.push_back(info.problem);
        }
    }
    std::cout << files.size() << " shard files, " << records << " records in good headers\n";
    if (damaged.empty()) return EXIT_SUCCESS;
    std::cerr << "staticnet-shard: " << damaged.size() << " of " << files.size() << " shard files in '" << dir.string()
              << "' are damaged:\n";
    for (const auto& d : damaged) std::cerr << "  " << d << "\n";
    return EXIT_FAILURE;
}

int split(const arguments& a) {
    const fs::path images = a.images, labels = a.labels, out = a.out;
    const std::size_t shards = a.shards, classes = a.classes;
    const auto& seed = a.seed;
    const sd::shard_write_options options{.records_per_block = a.records_per_block};

    // Refuse to mix with an existing set: list_shards would reject the mixture later anyway.
    std::error_code ec;
    if (fs::exists(out, ec) && !fs::is_directory(out, ec))
        throw usage_error{"--out '" + out.string() + "' exists and is not a directory"};
    fs::create_directories(out);
    for (const auto& e : fs::directory_iterator(out)) {
        if (e.path().extension() != sd::shard_extension) continue;
        if (!a.force)
            throw usage_error{"'" + out.string() + "' already holds shard files (e.g. '" +
                              e.path().filename().string() + "'); remove them or pass --force to replace them"};
    }
    if (a.force)
        for (const auto& e : fs::directory_iterator(out))
            if (e.path().extension() == sd::shard_extension) fs::remove(e.path());

    const auto data = sd::load_idx(images, labels, classes);
    const std::size_t n = data.size();
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (seed) {
        staticnet::rng g(*seed);
        staticnet::shuffle(order.begin(), order.end(), g);
    }
    if (shards > n)
        std::cerr << "staticnet-shard: warning: " << shards << " shards for " << n
                  << " records: some shard files will be empty\n";
    for (std::size_t k = 0; k < shards; ++k) {
        const std::size_t first = k * n / shards, last = (k + 1) * n / shards;
        const fs::path file = out / sd::shard_file_name(k, shards);
        sd::write_shard(file, data, std::span<const std::size_t>(order).subspan(first, last - first), options);
        std::cout << file.string() << ": " << (last - first) << " records\n";
    }
    std::cout << "wrote " << shards << " shard files with " << n << " records of " << data.images.shape()[1] << "x"
              << data.images.shape()[2] << "x" << data.images.shape()[3] << ", " << classes << " classes"
              << (seed ? ", shuffled with seed " + std::to_string(*seed) : std::string(", in file order")) << "\n";
    return EXIT_SUCCESS;
}

}  // namespace

int main(int argc, char** argv) {
    const arguments a = parse(argc, argv);
    try {
        return a.verify ? verify(a.verify_dir) : split(a);
    } catch (const usage_error& e) {
        return staticnet::tools::usage_error(program, e.message);
    } catch (const std::exception& e) {  // staticnet::error and the rest: a data problem
        std::cerr << program << ": " << e.what() << "\n";
        return EXIT_FAILURE;
    }
}
