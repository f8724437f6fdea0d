// libFuzzer target for the readers of untrusted files: the shard reader (whole file, record
// ranges, verify), the IDX reader (images, labels, any type), the NumPy and CSV readers, the
// checkpoint and weights readers, and the ONNX reader (the protobuf decoding and
// load_onnx_weights). Built with STATICNET_FUZZ_IMAGES=1 (tests/fuzz/run.sh does when
// stb_image is installed and STATICNET_FUZZ_IMAGES=1 is in the environment), it also decodes
// every input as an image (stb_image, after our PNG chunk check): opt-in, because a finding
// there may be in stb_image rather than in our code.
//
// Each input is written to a temporary file and handed to every reader. A reader may refuse
// it with a staticnet::error; anything else (another exception, a crash, a sanitizer report,
// a hang, a huge allocation) is a finding. Beyond "does not crash", the readers must agree
// with each other: read_shard succeeds exactly when verify_shard says ok, a record range
// equals the same rows of the whole file, and a valid shard re-encodes to identical bytes; an
// ONNX file that load_onnx_weights refuses leaves the network as it was, one it accepts
// exports and loads back to the same parameters, and a decoded model survives encode+decode.
//
// Build and run with tests/fuzz/run.sh SECONDS (clang, -fsanitize=fuzzer,address,undefined).
// With STATICNET_FUZZ_SEED_DIR set, the program writes its seed corpus there and exits.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <staticnet/core/error.hpp>
#include <staticnet/data/csv.hpp>
#include <staticnet/data/idx.hpp>
#include <staticnet/data/npy.hpp>
#include <staticnet/data/shard_format.hpp>
#include <staticnet/io/onnx.hpp>
#include <staticnet/staticnet.hpp>
#include <string>
#include <utility>
#include <vector>

#if STATICNET_FUZZ_IMAGES
#define STBI_MAX_DIMENSIONS 4096  // no allocations of gigabytes for a forged header
#define STATICNET_IMAGE_IMPLEMENTATION
#include <staticnet/data/image_folder.hpp>
#endif

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

namespace fs = std::filesystem;
namespace sd = staticnet::data;

namespace {

using bytes = std::vector<std::uint8_t>;
namespace sn = staticnet;
// No batch_norm or dropout here: their float template arguments need clang >= 18.
using tiny_net = sn::sequential<sn::input<3, 3, 1>, sn::conv2d<2, 2, sn::relu>, sn::flatten, sn::dense<2, sn::softmax>>;
using tiny_model = sn::model<tiny_net, sn::adam, sn::sparse_categorical_crossentropy>;

[[noreturn]] void finding(const char* what) {
    std::fprintf(stderr, "fuzz_readers: FINDING: %s\n", what);
    std::abort();
}

tiny_model& checkpoint_target() {
    static tiny_model m({}, {.threads = 1});
    return m;
}

// A checkpoint or weights file may be refused with checkpoint_error; a file it accepts must
// have the exact size of this network's arenas (anything else would be garbage loaded).
void check_checkpoint(const fs::path& file) {
    try {
        sn::load_checkpoint(checkpoint_target(), file);
        if (fs::file_size(file) != 136 + (tiny_net::arena_size * 3 + tiny_net::state_offsets.back()) * 4 + 4)
            finding("load_checkpoint accepted a file of the wrong size");
    } catch (const sn::error&) {
    }
    try {
        tiny_net net;
        sn::load_weights(net, file);
    } catch (const sn::error&) {
    }
}

// The input with its trailing CRC-32 (checkpoints, weights files) recomputed.
bytes with_repaired_trailing_crc(const std::uint8_t* data, std::size_t size) {
    bytes b(data, data + size);
    if (size < 4) return b;
    const auto c = static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0), b.data(), static_cast<uInt>(size - 4)));
    for (std::size_t i = 0; i < 4; ++i) b[size - 4 + i] = static_cast<std::uint8_t>(c >> (8 * i));
    return b;
}

void write_file(const fs::path& p, const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(p.c_str(), "wb");
    if (f == nullptr) finding("cannot create the temporary input file");
    if (size != 0 && std::fwrite(data, 1, size, f) != size) finding("cannot write the temporary input file");
    std::fclose(f);
}

bytes read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A private directory for this process, in memory when /dev/shm exists (the shard writer
// fsyncs, which would dominate on a disk).
const fs::path& work_dir() {
    static const fs::path dir = [] {
        std::error_code ec;
        const fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
#if STATICNET_FUZZ_IMAGES
#define STBI_MAX_DIMENSIONS 4096  // no allocations of gigabytes for a forged header
#define STATICNET_IMAGE_IMPLEMENTATION
#include <staticnet/data/image_folder.hpp>
#endif

#if __has_include(<unistd.h>)
        const auto id = std::to_string(::getpid());
#else
        const auto id = std::string("0");
#endif
        // libFuzzer leaves with _Exit (no atexit): remove the folders of finished runs here.
        const std::string prefix = "staticnet_fuzz_readers_";
        for (const auto& e : fs::directory_iterator(base, ec)) {
            const std::string name = e.path().filename().string();
            if (name.starts_with(prefix) && !fs::exists("/proc/" + name.substr(prefix.size()), ec))
                fs::remove_all(e.path(), ec);
        }
        fs::path d = base / (prefix + id);
        fs::create_directories(d);
        std::atexit([] {
            std::error_code e;
            fs::remove_all(work_dir(), e);
        });
        return d;
    }();
    return dir;
}

std::vector<float> arenas(const tiny_net& net) {
    std::vector<float> v(net.parameters().begin(), net.parameters().end());
    v.insert(v.end(), net.state().begin(), net.state().end());
    return v;
}

bool bitwise_same(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// What staticnet reads of a model: the nodes' wiring and attributes' names and types, and
// the float initializers.
bool same_graph(const sn::onnx::model& a, const sn::onnx::model& b) {
    if (a.nodes.size() != b.nodes.size() || a.initializers.size() != b.initializers.size()) return false;
    for (std::size_t i = 0; i < a.nodes.size(); ++i) {
        const auto &x = a.nodes[i], &y = b.nodes[i];
        if (x.op_type != y.op_type || x.name != y.name || x.inputs != y.inputs || x.outputs != y.outputs ||
            x.attributes.size() != y.attributes.size())
            return false;
        for (std::size_t j = 0; j < x.attributes.size(); ++j)
            if (x.attributes[j].name != y.attributes[j].name || x.attributes[j].type != y.attributes[j].type) return false;
    }
    for (std::size_t i = 0; i < a.initializers.size(); ++i) {
        const auto &x = a.initializers[i], &y = b.initializers[i];
        if (x.name != y.name || x.dims != y.dims || x.external != y.external ||
            (x.data_type == sn::onnx::float_type && !bitwise_same(x.floats, y.floats)))
            return false;
    }
    return true;
}

void check_onnx(const fs::path& file) {
    std::optional<sn::onnx::model> decoded;
    try {
        decoded = sn::onnx::decode(read_file(file));
    } catch (const sn::error&) {
    }
    if (decoded && !same_graph(sn::onnx::decode(sn::onnx::encode(*decoded)), *decoded))
        finding("an ONNX model changes through encode and decode");

    tiny_net net;
    net.initialize(1);
    const auto before = arenas(net);
    bool loaded = false;
    try {
        sn::load_onnx_weights(net, file);
        loaded = true;
    } catch (const sn::error&) {
    }
    if (!loaded) {
        if (!bitwise_same(arenas(net), before)) finding("a refused ONNX file changed the network");
        return;
    }
    if (!decoded) finding("load_onnx_weights accepted a file that decode refuses");
    const fs::path again = work_dir() / "again.onnx";
    sn::save_onnx(net, again);
    tiny_net copy;
    sn::load_onnx_weights(copy, again);
    if (!bitwise_same(arenas(copy), arenas(net))) finding("an imported network does not export and load back bitwise");
}

bool same(const sd::dataset& a, const sd::dataset& b) {
    return a.images.shape() == b.images.shape() && a.num_classes == b.num_classes &&
           std::equal(a.images.begin(), a.images.end(), b.images.begin()) &&
           std::equal(a.labels.begin(), a.labels.end(), b.labels.begin());
}

void check_shard(const fs::path& file) {
    std::optional<sd::dataset> whole;
    try {
        whole = sd::read_shard(file);
    } catch (const staticnet::error&) {
    }
    const sd::shard_info info = sd::verify_shard(file);
    if (info.ok != whole.has_value()) finding("read_shard and verify_shard disagree");
    if (!whole) return;

    const sd::dataset& d = *whole;
    if (d.size() != info.records) finding("record count differs from verify_shard");
    for (float x : d.images)
        if (!(x >= 0.0f && x <= 1.0f)) finding("pixel outside [0, 1]");
    for (std::int32_t label : d.labels)
        if (label < 0 || static_cast<std::size_t>(label) >= d.num_classes) finding("label out of range accepted");

    // The middle third, read on its own, equals the same rows of the whole file.
    const std::uint64_t first = info.records / 3, count = info.records / 3;
    const sd::dataset part = sd::read_shard_records(file, first, count);
    const std::size_t sample = info.sample_shape.size();
    if (part.size() != count || !std::equal(part.images.begin(), part.images.end(), d.images.data() + first * sample) ||
        !std::equal(part.labels.begin(), part.labels.end(), d.labels.data() + first))
        finding("read_shard_records differs from read_shard");

    // The format is canonical: a valid file re-encodes to the same bytes (when its label
    // type is the one the writer picks for its class count).
    const bool writer_label_type = (info.num_classes <= 256) == (read_file(file)[25] == sd::shard_label_u8);
    if (writer_label_type) {
        const fs::path again = work_dir() / "again.snshard";
        sd::write_shard(again, d, {.records_per_block = info.records_per_block});
        if (read_file(again) != read_file(file)) finding("a valid shard does not re-encode to the same bytes");
        if (!same(sd::read_shard(again), d)) finding("re-encoded shard reads differently");
    }
}

void check_idx(const fs::path& file) {
    std::optional<xt::xtensor<float, 4>> images;
    try {
        images = sd::read_idx_images(file);
    } catch (const staticnet::error&) {
    }
    std::optional<xt::xtensor<std::int32_t, 1>> labels;
    try {
        labels = sd::read_idx_labels(file, 10);
    } catch (const staticnet::error&) {
    }
    std::optional<sd::idx_file> any;
    try {
        any = sd::read_idx(file);
    } catch (const staticnet::error&) {
    }
    try {
        (void)sd::read_idx_header(file);
    } catch (const staticnet::error&) {
    }
    // What the typed readers accept, the generic one must accept with the same bytes.
    if (images) {
        if (!any || any->data.size() != images->size()) finding("read_idx_images accepted what read_idx refused");
        for (std::size_t i = 0; i < any->data.size(); ++i)
            if (images->data()[i] != static_cast<float>(any->data[i]) / 255.0f) finding("IDX image values differ");
    }
    if (labels) {
        if (!any || any->data.size() != labels->size()) finding("read_idx_labels accepted what read_idx refused");
        for (std::int32_t l : *labels)
            if (l < 0 || l >= 10) finding("IDX label out of range accepted");
    }
}

// The input with its shard checksums recomputed (header, and blocks when the header's layout
// matches the size), so the fuzzer also reaches the checks behind the checksums: random
// mutations almost never produce a matching CRC32 by themselves.
bytes with_repaired_checksums(const std::uint8_t* data, std::size_t size) {
    bytes b(data, data + size);
    if (size < sd::shard_header_bytes) return b;
    const auto get = [&](std::size_t at, std::size_t n) {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b[at + i]} << (8 * i);
        return v;
    };
    const auto put_crc = [&](std::size_t at, const std::uint8_t* p, std::size_t n) {
        const auto c = static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0), p, static_cast<uInt>(n)));
        for (std::size_t i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(c >> (8 * i));
    };
    put_crc(60, b.data(), 60);
    using u128 = unsigned __int128;
    const u128 record = u128{get(12, 4)} * get(16, 4) * get(20, 4) + (b[25] == 2 ? 4 : 1);
    const std::uint64_t records = get(32, 8), per_block = get(40, 4);
    if (per_block == 0) return b;
    const std::uint64_t blocks = records == 0 ? 0 : (records - 1) / per_block + 1;
    if (u128{64} + u128{4} * blocks + u128{records} * record != size) return b;
    const std::size_t data_at = 64 + 4 * static_cast<std::size_t>(blocks);
    const auto rec = static_cast<std::size_t>(record);
    for (std::size_t j = 0; j < blocks; ++j) {
        const std::size_t first = j * static_cast<std::size_t>(per_block);
        const std::size_t n =
            std::min<std::size_t>(static_cast<std::size_t>(per_block), static_cast<std::size_t>(records) - first);
        put_crc(64 + 4 * j, b.data() + data_at + first * rec, n * rec);
    }
    return b;
}

bytes idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const bytes& payload) {
    bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
    for (std::uint32_t d : dims)
        for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

// The NumPy reader: a file it accepts has exactly the bytes its header announces, and reads
// as images and labels or is refused with a data_error.
void check_npy(const std::uint8_t* data, std::size_t size) {
    try {
        const auto a = sd::detail::parse_npy(std::span<const std::uint8_t>(data, size), "input");
        if (a.header.data_offset + a.header.elements() * a.header.element_size() != size)
            finding("parse_npy accepted a file whose size does not match its header");
        try {
            (void)sd::detail::npy_images(a, "input");
        } catch (const sn::data_error&) {
        }
        try {
            std::size_t classes = 0;
            (void)sd::detail::npy_labels(a, "input", classes);
        } catch (const sn::data_error&) {
        }
    } catch (const sn::data_error&) {
    }
}

// The CSV reader: with the shape from the first row, and with a shape given.
void check_csv(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (const auto& o : {sd::csv_options{}, sd::csv_options{.sample_shape = sn::shape{2, 2, 1}, .num_classes = 10}}) {
        try {
            const auto d = sd::detail::parse_csv(text, "input", o);
            for (const auto l : d.labels)
                if (l < 0 || static_cast<std::size_t>(l) >= d.num_classes) finding("parse_csv gave a label out of range");
        } catch (const sn::data_error&) {
        }
    }
}

#if STATICNET_FUZZ_IMAGES
void check_image(const std::uint8_t* data, std::size_t size) {
    for (std::size_t channels : {0, 1, 3}) {
        try {
            const auto img = sd::decode_image(std::span<const std::uint8_t>(data, size), "input", channels);
            if (img.pixels.size() != img.height * img.width * img.channels) finding("decode_image: wrong pixel count");
        } catch (const sn::data_error&) {
        }
    }
}
#endif

void write_gz(const fs::path& p, const bytes& b) {
    gzFile f = gzopen(p.c_str(), "wb");
    if (f == nullptr || gzwrite(f, b.data(), static_cast<unsigned>(b.size())) != static_cast<int>(b.size()) ||
        gzclose(f) != Z_OK)
        finding("cannot write a gzip seed");
}

sd::dataset seed_data(std::size_t n, std::size_t h, std::size_t w, std::size_t c, std::size_t classes) {
    sd::dataset d;
    d.images = xt::xtensor<float, 4>(std::array<std::size_t, 4>{n, h, w, c});
    d.labels = xt::xtensor<std::int32_t, 1>(std::array<std::size_t, 1>{n});
    d.num_classes = classes;
    for (std::size_t i = 0; i < d.images.size(); ++i) d.images.data()[i] = static_cast<float>(i * 29 % 256) / 255.0f;
    for (std::size_t i = 0; i < n; ++i) d.labels(i) = static_cast<std::int32_t>(i % classes);
    return d;
}

void write_seeds(const fs::path& dir) {
    fs::create_directories(dir);
    sd::write_shard(dir / "small.snshard", seed_data(5, 2, 3, 1, 10), {.records_per_block = 2});
    sd::write_shard(dir / "rgb.snshard", seed_data(4, 3, 3, 3, 10), {.records_per_block = 3});
    sd::write_shard(dir / "int32-labels.snshard", seed_data(3, 2, 2, 1, 300), {.records_per_block = 1});
    sd::write_shard(dir / "empty.snshard", seed_data(0, 2, 2, 1, 2));
    bytes pixels(3 * 4 * 4);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 37);
    const bytes images = idx_bytes(0x08, {3, 4, 4}, pixels);
    const bytes images4 = idx_bytes(0x08, {2, 2, 2, 3}, bytes(24, 7));
    const bytes labels = idx_bytes(0x08, {6}, bytes{0, 1, 2, 3, 9, 5});
    const bytes floats = idx_bytes(0x0D, {2, 2}, bytes(16, 0x3f));
    const std::pair<const char*, const bytes*> raw[] = {
        {"images.idx", &images}, {"images4.idx", &images4}, {"labels.idx", &labels}, {"floats.idx", &floats}};
    for (const auto& [name, b] : raw) {
        write_file(dir / name, b->data(), b->size());
        write_gz(dir / (std::string(name) + ".gz"), *b);
    }
    // Version 1.0 .npy files, the header padded to 64 bytes as numpy.save does.
    const auto npy = [](std::string header, const std::string& payload) {
        while ((10 + header.size() + 1) % 64 != 0) header += ' ';
        header += '\n';
        std::string b("\x93NUMPY\x01\x00", 8);
        b += static_cast<char>(header.size() & 0xFF);
        b += static_cast<char>(header.size() >> 8);
        return b + header + payload;
    };
    const std::string npy_images = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }",
                                       std::string("\x00\x10\x20\x30\x40\x50\x60\xff", 8));
    const std::string npy_labels = npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
                                       std::string("\x01\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0", 16));
    const std::string csv = "label,p1,p2,p3,p4\r\n3,0,12,255,7\r\n1,1,2,3,4\r\n";
    for (const auto& [name, text] : {std::pair{"images.npy", &npy_images}, std::pair{"labels.npy", &npy_labels},
                                     std::pair{"samples.csv", &csv}})
        write_file(dir / name, reinterpret_cast<const std::uint8_t*>(text->data()), text->size());
    auto& m = checkpoint_target();
    sn::save_checkpoint(m, dir / "tiny.snckpt", m.position());
    sn::save_weights(m.network(), dir / "tiny.snw");
    sn::save_onnx(m.network(), dir / "tiny.onnx");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* seeds = std::getenv("STATICNET_FUZZ_SEED_DIR")) {
        write_seeds(seeds);
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fs::path file = work_dir() / "input";
    write_file(file, data, size);
    check_shard(file);
    check_idx(file);
    check_checkpoint(file);
    check_onnx(file);
    check_npy(data, size);
    check_csv(data, size);
#if STATICNET_FUZZ_IMAGES
    check_image(data, size);
#endif
    const bytes repaired = with_repaired_checksums(data, size);
    if (!std::equal(repaired.begin(), repaired.end(), data)) {
        write_file(file, repaired.data(), repaired.size());
        check_shard(file);
    }
    const bytes crc_fixed = with_repaired_trailing_crc(data, size);
    if (!std::equal(crc_fixed.begin(), crc_fixed.end(), data)) {
        write_file(file, crc_fixed.data(), crc_fixed.size());
        check_checkpoint(file);
    }
    return 0;
}
