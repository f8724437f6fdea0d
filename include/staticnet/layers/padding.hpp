#pragma once
/// @file
/// How a sliding window (a convolution, a pooling) treats the border of its image:
///
///     sn::padding::valid                  // whole windows only, no padding (the default)
///     sn::padding::same                   // ceil(input / stride) outputs, the odd pixel at the end (TensorFlow)
///     sn::padding::symmetric<1>           // 1 pixel on every side (PyTorch's padding=1)
///     sn::padding::explicit_<0, 1, 0, 1>  // top, bottom, left, right (PyTorch's ZeroPad2d + padding=0)
///
/// Each is a value of the structural type `padding_rule`, so any of them goes where a layer
/// takes its padding (`conv2d<8, 3, relu, 2, sn::padding::symmetric<1>>`), and the output
/// shape, FLOPs and memory follow from it at compile time. `same` depends on the input size;
/// the others pad a fixed number of pixels. What the padded pixels hold is the layer's
/// choice: zeros for convolutions and average pooling, -infinity for max pooling.

#include <cstddef>

namespace staticnet {

/// The padding of a window layer: a fixed number of pixels per side, or TensorFlow's `same`.
/// A structural type (all members public), so that it can be a template argument.
struct padding_rule {
    bool same = false;  ///< pad so that the output has ceil(input / stride) pixels
    std::size_t top = 0, bottom = 0, left = 0, right = 0;  ///< the pixels added when not `same`

    friend constexpr bool operator==(const padding_rule&, const padding_rule&) = default;
};

/// The padding rules, as a layer's template argument takes them.
namespace padding {
/// Whole windows only, no padding.
inline constexpr padding_rule valid{};
/// Zeros around the image so that the output has ceil(input / stride) pixels; an odd number
/// of padded pixels puts the extra one at the bottom and right (TensorFlow's split).
inline constexpr padding_rule same{.same = true};
/// `P` pixels on every side: PyTorch's `padding=P`.
template <std::size_t P>
inline constexpr padding_rule symmetric{.top = P, .bottom = P, .left = P, .right = P};
/// `Top`, `Bottom`, `Left` and `Right` pixels: PyTorch's `ZeroPad2d((Left, Right, Top, Bottom))`
/// before an unpadded layer, or ONNX's `pads` [Top, Left, Bottom, Right].
template <std::size_t Top, std::size_t Bottom, std::size_t Left, std::size_t Right>
inline constexpr padding_rule explicit_{.top = Top, .bottom = Bottom, .left = Left, .right = Right};
}  // namespace padding

/// The pixels a window layer adds on each side of its input, as it computes them.
struct padding_pixels {
    std::size_t top = 0, bottom = 0, left = 0, right = 0;

    [[nodiscard]] constexpr bool none() const noexcept { return top == 0 && bottom == 0 && left == 0 && right == 0; }
    friend constexpr bool operator==(const padding_pixels&, const padding_pixels&) = default;
};

namespace detail {

/// One axis of a window layer: `in` pixels, a `window` moved by `stride`, padded by `rule`.
struct padded_axis {
    std::size_t out = 0;     ///< output pixels (0 when not even one window fits)
    std::size_t before = 0;  ///< padding before the first pixel (top or left)
    std::size_t after = 0;   ///< padding after the last one (bottom or right)
};

/// The output size and padding along one axis; `vertical` picks top/bottom over left/right.
constexpr padded_axis pad_axis(const padding_rule& rule, std::size_t in, std::size_t window, std::size_t stride,
                               bool vertical) noexcept {
    if (stride == 0) return {};
    if (rule.same) {
        const std::size_t out = (in + stride - 1) / stride;
        const std::size_t needed = out == 0 ? 0 : (out - 1) * stride + window;
        const std::size_t total = needed > in ? needed - in : 0;
        return {out, total / 2, total - total / 2};
    }
    const std::size_t before = vertical ? rule.top : rule.left, after = vertical ? rule.bottom : rule.right;
    const std::size_t padded = in + before + after;
    return {padded >= window ? (padded - window) / stride + 1 : 0, before, after};
}

/// The pixels added on each side of an `height` x `width` image.
constexpr padding_pixels pad_image(const padding_rule& rule, std::size_t height, std::size_t width, std::size_t window,
                                   std::size_t stride) noexcept {
    const padded_axis v = pad_axis(rule, height, window, stride, true), h = pad_axis(rule, width, window, stride, false);
    return {v.before, v.after, h.before, h.after};
}

}  // namespace detail
}  // namespace staticnet
