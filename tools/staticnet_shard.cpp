// staticnet-shard: cuts a data set (IDX files raw or .gz, NumPy files, a CSV file or an
// image folder) into a set of checksummed shard files, and verifies such a set.
//
//   staticnet-shard SOURCE --shards K --out DIR [--seed S] [--classes N]
//                   [--records-per-block B] [--force]
//     SOURCE: --images FILE --labels FILE (IDX) | --npy IMAGES LABELS | --csv FILE [--shape HxWxC]
//             | --image-dir DIR [--shape HxWxC [--resize] [--to-grey]]   (the last when built with stb_image)
//   staticnet-shard --verify DIR
//
// Class names (an image folder's sub-folders) are written next to the shards, one per line
// in DIR/classes.txt (docs/shard_format.md); --verify checks them against the shards.
//
// Refused before anything is written: more shards than records (a shard needs one), and a
// --shape whose channels would drop the colour of colour images (1 or 2 channels) unless
// --to-grey asks for that. A run that fails leaves DIR as it found it: the files it wrote
// are removed, and DIR too when the run made it.
//
// Exit status: 0 success, 1 a data problem (unreadable input, damaged shard), 2 a usage error.
#include <algorithm>
#include <array>
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
#include <staticnet/data/csv.hpp>
#include <staticnet/data/idx.hpp>
#include <staticnet/data/npy.hpp>
#include <staticnet/data/shard_format.hpp>
#include <staticnet/data/shard_set.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tools/command_line.hpp"
#if STATICNET_SHARD_IMAGES
#include <staticnet/data/image_folder.hpp>
#endif

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
    std::string images, labels, out, verify_dir, image_dir, csv, shape_text;
    std::vector<std::string> npy;  ///< images, labels
    std::optional<staticnet::shape> shape;
    bool resize = false, to_grey = false;
    std::size_t shards = 0, classes = 10;
    bool classes_given = false;
    std::uint32_t records_per_block = sd::shard_write_options{}.records_per_block;
    std::optional<std::uint64_t> seed;
    bool force = false;
};

/// Reads the command line, or ends the program: status 0 after --help, 2 and one line on
/// stderr for a bad one (tools/command_line.hpp).
arguments parse(int argc, char** argv) {
    namespace cli = staticnet::tools;
    arguments a;
    CLI::App app{"Cuts a data set into checksummed shard files, or verifies such a set.\n"
                 "  staticnet-shard SOURCE --shards K --out DIR [--seed S] [--classes N]\n"
                 "                  [--records-per-block B] [--force]\n"
                 "      writes DIR/shard-00000-of-0000K.snshard ... (and DIR/classes.txt for an image folder)\n"
                 "  SOURCE: --images FILE --labels FILE (IDX, raw or gzip) | --npy IMAGES LABELS\n"
                 "          | --csv FILE [--shape HxWxC] | --image-dir DIR [--shape HxWxC [--resize]]\n"
                 "  staticnet-shard --verify DIR",
                 program};
    app.footer("Exit status: 0 success, 1 a data problem (unreadable input, damaged or missing shard file),\n"
               "2 a usage error.");
    // An option given twice is an error (CLI11's default), as it always was here.
    auto* images = app.add_option("--images", a.images, "IDX image file")->type_name("FILE");
    auto* labels = app.add_option("--labels", a.labels, "IDX label file")->type_name("FILE");
    auto* npy = app.add_option("--npy", a.npy, "NumPy image and label files (.npy)")->type_name("IMAGES LABELS")->expected(2);
    auto* csv = app.add_option("--csv", a.csv, "CSV file: a label column, then the pixels (0..255)")->type_name("FILE");
    auto* image_dir = app.add_option("--image-dir", a.image_dir, "image folder: DIR/<class>/*.png|jpg|bmp")->type_name("DIR");
    auto* shape = app.add_option("--shape", a.shape_text, "sample shape for --csv and --image-dir, e.g. 28x28x1")
                      ->type_name("HxWxC");
    auto* resize = app.add_flag("--resize", a.resize, "resize images of another size to --shape (bilinear)")->needs(shape);
    auto* to_grey = app.add_flag("--to-grey", a.to_grey, "read colour images as grayscale when --shape has 1 or 2 channels")
                        ->needs(shape);
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
                       ->excludes(images, labels, shards, out, seeded, classes, block, force)
                       ->excludes(npy, csv, image_dir, shape, resize, to_grey);
    images->excludes(npy, csv, image_dir);
    labels->excludes(npy, csv, image_dir);
    npy->excludes(csv, image_dir);
    csv->excludes(image_dir);
    image_dir->excludes(classes);  // the folder's classes are the classes
    cli::parse_or_exit(app, argc, argv);

    if (argc == 1) std::exit(cli::usage_error(program, "no arguments"));
    a.verify = verify->count() != 0;
    if (seeded->count() != 0) a.seed = seed;
    a.classes_given = classes->count() != 0;
    const bool other_source = npy->count() + csv->count() + image_dir->count() != 0;
    std::string missing;
    for (const auto* option : {images, labels, shards, out})
        if (!a.verify && option->count() == 0 && !(other_source && (option == images || option == labels)))
            missing += (missing.empty() ? "" : ", ") + option->get_name();
    if (!missing.empty())
        std::exit(cli::usage_error(program, "missing " + missing + " (or --npy, --csv, --image-dir; or --verify DIR)"));
    if (shape->count() != 0 && csv->count() + image_dir->count() == 0)
        std::exit(cli::usage_error(program, "--shape goes with --csv or --image-dir"));
    if ((resize->count() != 0 || to_grey->count() != 0) && image_dir->count() == 0)
        std::exit(cli::usage_error(program, std::string(resize->count() != 0 ? "--resize" : "--to-grey") +
                                                " goes with --image-dir"));
    if (shape->count() != 0) {
        std::array<std::size_t, 3> d{};
        std::size_t at = 0, k = 0;
        const std::string& t = a.shape_text;
        for (; k < 3; ++k) {
            const std::size_t cut = k < 2 ? t.find('x', at) : t.size();
            const std::string part = cut == std::string::npos ? "" : t.substr(at, cut - at);
            const auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), d[k]);
            if (part.empty() || ec != std::errc{} || p != part.data() + part.size() || d[k] == 0 || d[k] > 65535) break;
            at = cut + 1;
        }
        if (k != 3) std::exit(cli::usage_error(program, "--shape: needs HxWxC, e.g. 28x28x1, not '" + t + "'"));
        a.shape = staticnet::shape{d[0], d[1], d[2]};
    }
#if !STATICNET_SHARD_IMAGES
    if (image_dir->count() != 0)
        std::exit(cli::usage_error(program, "--image-dir: this staticnet-shard was built without stb_image (libstb-dev)"));
#endif
    return a;
}

int verify(const fs::path& dir) {
    const auto files = sd::list_shards(dir);  // a missing shard throws, naming it
    std::vector<std::string> damaged;
    std::uint64_t records = 0;
    std::optional<std::size_t> shard_classes;  // of the first good header
    std::string set_problem;                   // classes.txt
    for (const auto& f : files) {
        const auto info = sd::verify_shard(f);
        std::cout << f.filename().string() << ": ";
        if (info.header_ok) {
            std::cout << info.records << " records of " << info.sample_shape.height() << "x"
                      << info.sample_shape.width() << "x" << info.sample_shape.channels() << ", " << info.num_classes
                      << " classes, " << info.blocks << " blocks, ";
            records += info.records;
            if (!shard_classes) shard_classes = info.num_classes;
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
    // classes.txt, when there, must name as many classes as the shards have.
    try {
        const auto names = sd::read_class_names(dir);
        if (!names.empty()) {
            std::cout << sd::class_names_file_name << ": " << names.size() << " class names\n";
            if (shard_classes && *shard_classes != names.size())
                set_problem = "'" + (dir / sd::class_names_file_name).string() + "' names " +
                              std::to_string(names.size()) + " classes but the shards have " +
                              std::to_string(*shard_classes);
        }
    } catch (const staticnet::data_error& e) {
        set_problem = e.what();
    }
    std::cout << files.size() << " shard files, " << records << " records in good headers\n";
    if (!set_problem.empty()) std::cerr << "staticnet-shard: " << set_problem << "\n";
    if (damaged.empty()) return set_problem.empty() ? EXIT_SUCCESS : EXIT_FAILURE;
    std::cerr << "staticnet-shard: " << damaged.size() << " of " << files.size() << " shard files in '" << dir.string()
              << "' are damaged:\n";
    for (const auto& d : damaged) std::cerr << "  " << d << "\n";
    return EXIT_FAILURE;
}

/// The data set from whichever source the command line names.
sd::dataset load(const arguments& a) {
    // --classes applies to IDX (default 10), NumPy and CSV (default: the largest label + 1).
    const std::size_t classes = a.classes_given ? a.classes : 0;
    if (!a.npy.empty()) return sd::load_npy(a.npy[0], a.npy[1], classes);
    if (!a.csv.empty()) return sd::load_csv(a.csv, {.sample_shape = a.shape, .num_classes = classes});
#if STATICNET_SHARD_IMAGES
    if (!a.image_dir.empty()) {
        sd::image_folder_report report;
        auto d = sd::load_image_folder(
            a.image_dir,
            {.sample_shape = a.shape, .resize = a.resize, .resize_flag = a.shape ? "--resize" : "--shape HxWxC --resize"},
            &report);
        // Colour read into 1 or 2 channels is colour lost: only on request.
        if (report.colour_to_grey != 0 && !a.to_grey)
            throw usage_error{"--shape " + a.shape_text + ": " + std::to_string(report.colour_to_grey) + " of the " +
                              std::to_string(report.images) + " images in '" + a.image_dir + "' are colour, and " +
                              std::to_string(report.sample_shape.channels()) +
                              (report.sample_shape.channels() == 1 ? " channel keeps" : " channels keep") +
                              " grey only; give --shape HxWx3 to keep the colour, or add --to-grey to read them as grayscale"};
        if (report.colour_to_grey != 0)
            std::cout << "read " << report.colour_to_grey << " colour images as grayscale (--to-grey)\n";
        if (report.resized != 0)
            std::cout << "resized " << report.resized << " images to " << report.sample_shape.height() << "x"
                      << report.sample_shape.width() << " (--resize)\n";
        if (report.in_sub_folders != 0)
            std::cout << "read " << report.in_sub_folders << " of the " << report.images
                      << " images from sub-folders of the class folders\n";
        return d;
    }
#endif
    return sd::load_idx(a.images, a.labels, a.classes);
}

/// Undoes a split that did not finish: removes the files it wrote, and the directories it
/// made (each only when empty). Does nothing once `done()`.
class split_cleanup {
public:
    /// Makes `dir` and any parent it lacks, and remembers which it made.
    void make_directories(const fs::path& dir) {
        for (fs::path p = dir; !p.empty() && !fs::exists(p); p = p.parent_path()) {
            made_.push_back(p);
            if (p == p.parent_path()) break;
        }
        fs::create_directories(dir);
    }
    void wrote(fs::path file) { written_.push_back(std::move(file)); }
    void done() noexcept {
        written_.clear();
        made_.clear();
    }
    ~split_cleanup() {
        std::error_code ec;  // best effort: the error that brought us here is the one to report
        for (const auto& f : written_) fs::remove(f, ec);
        for (const auto& d : made_) fs::remove(d, ec);  // innermost first; only if empty
    }

private:
    std::vector<fs::path> made_;
    std::vector<fs::path> written_;
};

int split(const arguments& a) {
    const fs::path out = a.out;
    const std::size_t shards = a.shards;
    const auto& seed = a.seed;
    const sd::shard_write_options options{.records_per_block = a.records_per_block};

    // Refuse to mix with an existing set: list_shards would reject the mixture later anyway.
    std::error_code ec;
    if (fs::exists(out, ec) && !fs::is_directory(out, ec))
        throw usage_error{"--out '" + out.string() + "' exists and is not a directory"};
    if (fs::is_directory(out, ec) && !a.force)
        for (const auto& e : fs::directory_iterator(out))
            if (e.path().extension() == sd::shard_extension)
                throw usage_error{"'" + out.string() + "' already holds shard files (e.g. '" +
                                  e.path().filename().string() + "'); remove them or pass --force to replace them"};

    // Everything that can refuse the job does so before the first file is touched.
    const auto data = load(a);
    const std::size_t classes = data.num_classes;
    const std::size_t n = data.size();
    if (shards > n)
        throw usage_error{"--shards " + std::to_string(shards) + " for " + std::to_string(n) +
                          " records: every shard file needs a record; give --shards " + std::to_string(n) + " or fewer"};
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (seed) {
        staticnet::rng g(*seed);
        staticnet::shuffle(order.begin(), order.end(), g);
    }

    split_cleanup cleanup;
    cleanup.make_directories(out);
    if (a.force)
        for (const auto& e : fs::directory_iterator(out))
            if (e.path().extension() == sd::shard_extension || e.path().filename() == sd::class_names_file_name)
                fs::remove(e.path());
    for (std::size_t k = 0; k < shards; ++k) {
        const std::size_t first = k * n / shards, last = (k + 1) * n / shards;
        const fs::path file = out / sd::shard_file_name(k, shards);
        cleanup.wrote(file);
        sd::write_shard(file, data, std::span<const std::size_t>(order).subspan(first, last - first), options);
        std::cout << file.string() << ": " << (last - first) << " records\n";
    }
    if (!data.class_names.empty()) {
        cleanup.wrote(out / sd::class_names_file_name);
        sd::write_class_names(out, data.class_names);
        std::cout << (out / sd::class_names_file_name).string() << ": " << data.class_names.size() << " class names\n";
    }
    cleanup.done();
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
