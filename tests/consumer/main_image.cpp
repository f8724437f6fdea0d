// A consumer of staticnet::image: reads an image folder with data/image_folder.hpp, linking
// nothing but staticnet::image (without it, a consumer got "undefined reference to
// stbi_load_from_memory" until it added stb by hand). It writes its own two-class folder of
// 2x2 grayscale BMP files, so it needs no data set.
#include <staticnet/data/image_folder.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

/// A 2x2 24-bit BMP whose pixels are all `grey`.
void write_bmp(const fs::path& file, std::uint8_t grey) {
    std::vector<std::uint8_t> b(54 + 2 * 8, 0);  // two rows of 2 pixels, padded to 8 bytes
    auto put32 = [&](std::size_t at, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
    };
    b[0] = 'B';
    b[1] = 'M';
    put32(2, static_cast<std::uint32_t>(b.size()));
    put32(10, 54);
    put32(14, 40);
    put32(18, 2);
    put32(22, 2);
    b[26] = 1;
    b[28] = 24;
    put32(34, 16);
    for (std::size_t row = 0; row < 2; ++row)
        for (std::size_t i = 0; i < 6; ++i) b[54 + row * 8 + i] = grey;
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

int main() {
    const fs::path dir = fs::temp_directory_path() / ("staticnet-consumer-images-" + std::to_string(::getpid()));
    fs::create_directories(dir / "dark");
    fs::create_directories(dir / "light");
    write_bmp(dir / "dark" / "a.bmp", 10);
    write_bmp(dir / "light" / "b.bmp", 240);
    const auto d = staticnet::data::load_image_folder_bytes(dir, {.sample_shape = staticnet::shape{2, 2, 1}});
    fs::remove_all(dir);
    const bool ok = d.size() == 2 && d.num_classes == 2 && d.images(0, 1, 1, 0) == 10 && d.images(1, 0, 0, 0) == 240 &&
                    d.labels(1) == 1;
    std::printf("consumer_image: %zu images of %zu classes: %s\n", d.size(), d.num_classes, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
