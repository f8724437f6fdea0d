#pragma once
/// @file
/// `byte_dataset`: labelled images whose pixels stay the bytes they were stored as, a
/// quarter of the memory of `dataset`'s floats. `fit`, `evaluate` and `predict` take it like
/// a `dataset`; pixel v becomes v / 255.0f only when a batch is assembled, the value every
/// reader gives for that byte in a `dataset`, so training from either form is bitwise the
/// same.
///
///     auto data = sn::data::load_fashion_mnist_bytes();   // 55 MB instead of 220 MB
///     model.fit(data.train, {.epochs = 10, .validation = &data.test});

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/compat.hpp"
#include "dataset.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// Images in NHWC order as stored (8-bit pixels, value v meaning v / 255), with one integer
/// class label per image: the counterpart of `dataset` for data read from files.
struct byte_dataset {
    xt::xtensor<std::uint8_t, 4> images;   ///< [N, H, W, C]
    xt::xtensor<std::int32_t, 1> labels;   ///< [N], each in [0, num_classes)
    std::size_t num_classes = 0;
    /// Names of the classes by label, or empty when the source has none.
    std::vector<std::string> class_names;

    [[nodiscard]] std::size_t size() const noexcept { return images.shape()[0]; }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
};

/// The float value of a stored pixel byte: v / 255.0f, the nearest float to v / 255 (a
/// division, not a multiplication by 1/255, which rounds some values differently).
[[nodiscard]] constexpr float pixel_value(std::uint8_t v) noexcept { return static_cast<float>(v) / 255.0f; }

/// The same data as a float `dataset` (4 bytes per pixel), for code that needs floats.
[[nodiscard]] inline dataset to_dataset(const byte_dataset& d);

/// The training and test halves of a data set kept as bytes.
struct byte_train_test {
    byte_dataset train;
    byte_dataset test;
};

// ===================================================================== implementation

inline dataset to_dataset(const byte_dataset& d) {
    dataset f;
    f.images = xt::xtensor<float, 4>(d.images.shape());
    const std::uint8_t* in = d.images.data();
    float* out = f.images.data();
    for (std::size_t i = 0; i < d.images.size(); ++i) out[i] = pixel_value(in[i]);
    f.labels = d.labels;
    f.num_classes = d.num_classes;
    f.class_names = d.class_names;
    return f;
}

}  // namespace staticnet::data
