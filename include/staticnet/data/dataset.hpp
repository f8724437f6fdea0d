#pragma once
/// @file
/// `dataset`: labelled images in memory, the unit `fit`, `evaluate` and the readers exchange.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/compat.hpp"

namespace staticnet::data {

/// Images in NHWC order scaled to [0, 1], with one integer class label per image.
/// `targets` is optional: one-hot (or any soft) targets of shape [N, classes]; when it is
/// empty, losses that need targets one-hot encode `labels` on the fly.
struct dataset {
    xt::xtensor<float, 4> images;          ///< [N, H, W, C]
    xt::xtensor<std::int32_t, 1> labels;   ///< [N], each in [0, num_classes)
    xt::xtensor<float, 2> targets;         ///< [N, num_classes] or empty
    std::size_t num_classes = 0;
    /// Names of the classes by label (an image folder's sub-folder names), or empty when the
    /// source has none (IDX, NumPy, CSV).
    std::vector<std::string> class_names;

    [[nodiscard]] std::size_t size() const noexcept { return images.shape()[0]; }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
};

}  // namespace staticnet::data
