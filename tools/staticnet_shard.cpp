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

namespace fs = std::filesystem;
namespace sd = staticnet::data;

namespace {

constexpr const char* usage_text =
    "usage:\n"
    "  staticnet-shard --images FILE --labels FILE --shards K --out DIR [--seed S] [--classes N]\n"
    "                  [--records-per-block B] [--force]\n"
    "      Split IDX image and label files (raw or gzip) into K shard files\n"
    "      DIR/shard-00000-of-0000K.snshard ... Records keep their order unless --seed S is\n"
    "      given, which shuffles them first. --classes N (default 10) is the number of classes;\n"
    "      every label must be below it. --force replaces shard files already in DIR.\n"
    "  staticnet-shard --verify DIR\n"
    "      Check every shard file of the set in DIR; prints each file's record count and\n"
    "      checksum status and exits with status 1 when any file is missing or damaged.\n";

struct usage_error {
    std::string message;
};

std::uint64_t parse_number(std::string_view option, std::string_view text, std::uint64_t min, std::uint64_t max) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        throw usage_error{std::string(option) + " needs a non-negative whole number, not '" + std::string(text) + "'"};
    if (v < min || v > max)
        throw usage_error{std::string(option) + " must be between " + std::to_string(min) + " and " +
                          std::to_string(max) + ", not " + std::to_string(v)};
    return v;
}

struct arguments {
    std::map<std::string, std::string, std::less<>> values;
    bool force = false;
};

arguments parse(int argc, char** argv) {
    static const std::vector<std::string_view> with_value{
        "--images", "--labels", "--shards", "--out", "--seed", "--classes", "--records-per-block", "--verify"};
    arguments a;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::cout << usage_text;
            std::exit(EXIT_SUCCESS);
        }
        if (arg == "--force") {
            a.force = true;
            continue;
        }
        if (std::find(with_value.begin(), with_value.end(), arg) == with_value.end())
            throw usage_error{"unknown argument '" + std::string(arg) + "'"};
        if (i + 1 >= argc) throw usage_error{std::string(arg) + " needs a value"};
        if (a.values.count(arg) != 0) throw usage_error{std::string(arg) + " is given twice"};
        a.values.emplace(std::string(arg), argv[++i]);
    }
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
    const auto need = [&](const char* option) -> const std::string& {
        const auto it = a.values.find(option);
        if (it == a.values.end()) throw usage_error{std::string("missing ") + option};
        return it->second;
    };
    const fs::path images = need("--images"), labels = need("--labels"), out = need("--out");
    const std::size_t shards = parse_number("--shards", need("--shards"), 1, 99999);
    std::size_t classes = 10;
    if (auto it = a.values.find("--classes"); it != a.values.end())
        classes = parse_number("--classes", it->second, 1, std::numeric_limits<std::int32_t>::max());
    sd::shard_write_options options;
    if (auto it = a.values.find("--records-per-block"); it != a.values.end())
        options.records_per_block =
            static_cast<std::uint32_t>(parse_number("--records-per-block", it->second, 1, 1u << 24));
    std::optional<std::uint64_t> seed;
    if (auto it = a.values.find("--seed"); it != a.values.end())
        seed = parse_number("--seed", it->second, 0, std::numeric_limits<std::uint64_t>::max());

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
    try {
        const arguments a = parse(argc, argv);
        if (argc == 1) throw usage_error{"no arguments"};
        if (const auto it = a.values.find("--verify"); it != a.values.end()) {
            if (a.values.size() != 1 || a.force) throw usage_error{"--verify DIR takes no other option"};
            return verify(it->second);
        }
        return split(a);
    } catch (const usage_error& e) {
        std::cerr << "staticnet-shard: " << e.message << "\n\n" << usage_text;
        return 2;
    } catch (const staticnet::error& e) {
        std::cerr << "staticnet-shard: " << e.what() << "\n";
        return EXIT_FAILURE;
    } catch (const std::exception& e) {
        std::cerr << "staticnet-shard: " << e.what() << "\n";
        return EXIT_FAILURE;
    }
}
