// Shows what the training augmentations (data/augmentation.hpp) do: a grid of Fashion-MNIST
// test images tinted to colour (no colour data set is installed), one per row, each as it is
// and as `fit` would give it to the network under several augmentations, written as a PNG.
//
//   augmentation_grid [--data DIR] [--output FILE.png] [--rows N] [--seed N]
//
// Columns: the tinted original; two random resized crops (torchvision's defaults, scale
// [0.08, 1], ratio [3/4, 4/3]); two colour jitters (brightness, contrast and saturation 0.5);
// three of everything together (resized crop, flip, jitter), as with
//   fit(train, {.flip = true, .random_resized_crop = data::random_resized_crop{},
//               .color_jitter = {.brightness = 0.5f, .contrast = 0.5f, .saturation = 0.5f}})
// Each column is another epoch of the same seed: the draws of a sample depend on (seed,
// epoch, sample) alone. docs/images/augmentations.png is this program's output with its
// defaults (docs/data.md).
#include <staticnet/data/augmentation.hpp>
#include <staticnet/data/idx.hpp>
#include <staticnet/io/png.hpp>

#include <CLI/CLI.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace sn = staticnet;
namespace sd = staticnet::data;

namespace {

constexpr std::size_t side = 28, channels = 3, zoom = 3, gap = 4;

// Object and background colours, one pair per class: the grey level g of a pixel becomes
// background * (1 - g) + object * g.
constexpr std::array<std::array<float, 6>, 10> tints{{
    {0.95f, 0.55f, 0.20f, 0.10f, 0.20f, 0.35f}, {0.30f, 0.75f, 0.95f, 0.25f, 0.10f, 0.10f},
    {0.90f, 0.85f, 0.30f, 0.15f, 0.25f, 0.15f}, {0.85f, 0.30f, 0.55f, 0.10f, 0.25f, 0.25f},
    {0.45f, 0.90f, 0.45f, 0.30f, 0.15f, 0.30f}, {0.95f, 0.35f, 0.30f, 0.15f, 0.15f, 0.30f},
    {0.60f, 0.55f, 0.95f, 0.25f, 0.25f, 0.10f}, {0.95f, 0.80f, 0.60f, 0.20f, 0.10f, 0.25f},
    {0.40f, 0.90f, 0.85f, 0.30f, 0.10f, 0.20f}, {0.90f, 0.90f, 0.90f, 0.35f, 0.15f, 0.10f},
}};

struct column {
    const char* name;
    sd::augmentation augment;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Writes a grid of Fashion-MNIST images, tinted, under staticnet's training augmentations."};
    std::string data_dir = sd::default_fashion_mnist_dir.string();
    std::string output = "docs/images/augmentations.png";
    std::size_t rows = 6;
    std::uint64_t seed = 2026;
    app.add_option("--data", data_dir, "Fashion-MNIST folder (the IDX files)")->capture_default_str();
    app.add_option("--output", output, "the PNG file to write")->capture_default_str();
    app.add_option("--rows", rows, "images (one per row, of different classes)")->capture_default_str()->check(CLI::Range(1, 10));
    app.add_option("--seed", seed, "seed of the augmentations")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    try {
        const sd::byte_dataset test = sd::load_idx_bytes(sd::find_idx_file(data_dir, "t10k-images-idx3-ubyte"),
                                                         sd::find_idx_file(data_dir, "t10k-labels-idx1-ubyte"), 10);
        // The first image of each of the first `rows` classes, tinted.
        std::vector<float> images;
        std::vector<std::size_t> picked;
        for (std::size_t label = 0; label < rows; ++label) {
            std::size_t i = 0;
            while (static_cast<std::size_t>(test.labels(i)) != label) ++i;
            picked.push_back(i);
            const auto& t = tints[label];
            for (std::size_t p = 0; p < side * side; ++p) {
                const float g = sd::pixel_value(test.images.data()[i * side * side + p]);
                for (std::size_t c = 0; c < channels; ++c) images.push_back(t[3 + c] * (1.0f - g) + t[c] * g);
            }
        }

        const sd::color_jitter jitter{.brightness = 0.5f, .contrast = 0.5f, .saturation = 0.5f};
        const std::vector<column> columns{
            {"original", {}},
            {"random_resized_crop", {.random_resized_crop = sd::random_resized_crop{}}},
            {"random_resized_crop", {.random_resized_crop = sd::random_resized_crop{}}},
            {"color_jitter", {.color_jitter = jitter}},
            {"color_jitter", {.color_jitter = jitter}},
            {"all", {.flip = true, .random_resized_crop = sd::random_resized_crop{}, .color_jitter = jitter}},
            {"all", {.flip = true, .random_resized_crop = sd::random_resized_crop{}, .color_jitter = jitter}},
            {"all", {.flip = true, .random_resized_crop = sd::random_resized_crop{}, .color_jitter = jitter}},
        };

        const std::size_t cell = side * zoom, width = gap + columns.size() * (cell + gap), height = gap + rows * (cell + gap);
        std::vector<std::uint8_t> canvas(width * height * channels, 255);
        std::vector<float> out(side * side * channels);
        for (std::size_t k = 0; k < columns.size(); ++k) {
            sd::sample_transform transform(columns[k].augment, {}, side, side, channels);
            transform.start_epoch(seed, k);
            for (std::size_t r = 0; r < rows; ++r) {
                transform(images.data() + r * side * side * channels, picked[r], out.data());
                for (std::size_t y = 0; y < cell; ++y)
                    for (std::size_t x = 0; x < cell; ++x)
                        for (std::size_t c = 0; c < channels; ++c) {
                            const float v = out[((y / zoom) * side + x / zoom) * channels + c];
                            canvas[((gap + r * (cell + gap) + y) * width + gap + k * (cell + gap) + x) * channels + c] =
                                static_cast<std::uint8_t>(v * 255.0f + 0.5f);
                        }
            }
        }
        const std::vector<std::uint8_t> png = sn::encode_png(canvas, width, height, channels);
        std::ofstream file(output, std::ios::binary);
        file.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
        if (!file) throw std::runtime_error("cannot write '" + output + "'");
        std::cout << "wrote " << output << " (" << width << "x" << height << "): columns";
        for (const auto& c : columns) std::cout << ' ' << c.name;
        std::cout << '\n';
    } catch (const std::exception& e) {
        std::cerr << "augmentation_grid: " << e.what() << '\n';
        return 1;
    }
}
