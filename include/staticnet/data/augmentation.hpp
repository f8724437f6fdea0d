#pragma once
/// @file
/// What happens to a training image between the data set and the network: the random
/// augmentations of torchvision's usual pipeline and the per-channel normalisation.
///
/// | transform | torchvision | staticnet |
/// | --- | --- | --- |
/// | crop a random box of random area and shape, resize it back (bilinear) | `RandomResizedCrop` | `random_resized_crop` |
/// | mirror left-right with probability 1/2 | `RandomHorizontalFlip` | `fit_options::flip` |
/// | zero-pad by P pixels, crop back at a random offset | `RandomCrop(padding=P)` | `fit_options::crop_padding` |
/// | brightness, contrast, saturation by random factors, in random order | `ColorJitter` | `color_jitter` |
/// | (x - mean) / std per channel | `Normalize` | `normalization` |
///
/// They are applied in that order (the resized crop and the padded crop are alternatives),
/// to one sample at a time, where the batch is assembled (`batch_loader`, on the model's
/// threads). Each sample's random numbers come from (seed, epoch, sample index) alone, so a
/// run is the same for any number of ranks, threads or batch positions, and every number is
/// drawn by staticnet's own `rng` and arithmetic (no `std::` distribution, no libm `exp`),
/// so a seed gives the same images on every platform.
///
/// The pieces are public so that they can be used and checked one by one:
/// `draw_crop_box` (torchvision's `RandomResizedCrop.get_params`), `resized_crop` (its
/// `F.resized_crop`, bilinear with half-pixel centres, without antialiasing: the box is never
/// larger than the output), `draw_jitter` and `apply_jitter` (`ColorJitter`'s factors and its
/// `F.adjust_brightness`, `adjust_contrast`, `adjust_saturation`), `normalization::apply`.
/// `sample_transform` strings them together for the loader.

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../core/random.hpp"
#include "byte_dataset.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// torchvision's `RandomResizedCrop(size, scale, ratio)`: a box whose area is a uniform
/// fraction in `scale` of the image's and whose width / height is log-uniform in `ratio`
/// (after 10 failed tries, the largest centred box within `ratio`), resized to the image size.
struct random_resized_crop {
    std::array<double, 2> scale{0.08, 1.0};              ///< fraction of the image's area
    std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};   ///< width / height of the box
};

/// torchvision's `ColorJitter(brightness, contrast, saturation)`: each factor is uniform in
/// [max(0, 1 - v), 1 + v], and the three adjustments are applied in a random order; 0 leaves
/// that one out. Saturation needs RGB images (1-channel images have none to change, as in
/// torchvision); contrast works on 1 or 3 channels. (No hue: it needs an HSV round trip.)
struct color_jitter {
    float brightness = 0.0f;
    float contrast = 0.0f;
    float saturation = 0.0f;
    [[nodiscard]] bool active() const noexcept { return brightness > 0 || contrast > 0 || saturation > 0; }
};

/// torchvision's `Normalize(mean, std)`: (x - mean[c]) / std[c] for every channel c. Empty:
/// no normalisation. Given to the model (`model_settings::normalization`), it applies to every
/// batch the model sees: training, `evaluate` and `predict`.
struct normalization {
    std::vector<float> mean;
    std::vector<float> std;
    [[nodiscard]] bool active() const noexcept { return !mean.empty() || !std.empty(); }
    /// Throws `std::invalid_argument` naming `where` unless the sizes are `channels` (or both
    /// empty) and every std is positive and finite, every mean finite.
    void check(std::size_t channels, const std::string& where) const;
    /// Normalises `count` images of `channels` channels (channels last), in place.
    void apply(float* images, std::size_t pixels, std::size_t channels) const noexcept;
};

/// A box of an image: rows [top, top + height), columns [left, left + width).
struct crop_box {
    std::size_t top = 0, left = 0, height = 0, width = 0;
    friend bool operator==(const crop_box&, const crop_box&) = default;
};

/// torchvision's `RandomResizedCrop.get_params` for an image of `height` x `width`: up to 10
/// tries of an area and a ratio, rounded half to even as Python's `round`; the first box that
/// fits is placed uniformly; else the centred fallback.
[[nodiscard]] crop_box draw_crop_box(const random_resized_crop& options, std::size_t height, std::size_t width,
                                     rng& g);

/// The `box` of `src` ([height, width, channels], channels last), resized bilinearly to
/// [height, width, channels] in `dst` (PyTorch's `interpolate(mode="bilinear",
/// align_corners=False)`), mirrored left-right if `mirror`. Bytes become v / 255.0f first.
template <typename Pixel>
void resized_crop(const Pixel* src, std::size_t height, std::size_t width, std::size_t channels, const crop_box& box,
                  bool mirror, float* dst);

/// The factors of one `color_jitter` draw and the order they are applied in (0 brightness,
/// 1 contrast, 2 saturation; factor 1 changes nothing).
struct jitter_factors {
    float brightness = 1.0f, contrast = 1.0f, saturation = 1.0f;
    std::array<std::uint8_t, 3> order{0, 1, 2};
};
[[nodiscard]] jitter_factors draw_jitter(const color_jitter& options, rng& g);

/// `F.adjust_brightness`, `adjust_contrast` and `adjust_saturation` by `f`'s factors in `f`'s
/// order, on one image of `pixels` pixels with 1 or 3 channels, in place; each result is
/// clamped to [0, 1] as torchvision does for float images. Grey is 0.2989 R + 0.587 G + 0.114 B.
void apply_jitter(float* image, std::size_t pixels, std::size_t channels, const jitter_factors& f) noexcept;

/// The augmentations of one training run (see the table at the top).
struct augmentation {
    bool flip = false;
    std::size_t crop_padding = 0;
    std::optional<data::random_resized_crop> random_resized_crop{};
    data::color_jitter color_jitter{};
    [[nodiscard]] bool random() const noexcept {
        return flip || crop_padding != 0 || random_resized_crop.has_value() || color_jitter.active();
    }
};

/// One sample from the data set to the network's input: the augmentations (random, for
/// training) and the normalisation. Validates its options for the image shape on construction
/// (`std::invalid_argument` naming the option). `start_epoch` fixes the epoch's random
/// streams; `operator()` is then const and may run on many threads at once.
class sample_transform {
public:
    sample_transform(augmentation augment, normalization normalize, std::size_t height, std::size_t width,
                     std::size_t channels);

    /// The streams of `epoch` for this `rank` (leave it 0 to make the augmentation of a sample
    /// independent of the split over ranks).
    void start_epoch(std::uint64_t seed, std::size_t epoch, std::size_t rank = 0) noexcept;

    /// Sample `index` (its pixels at `src`) into `dst`, [height, width, channels] floats.
    template <typename Pixel>
    void operator()(const Pixel* src, std::size_t index, float* dst) const;

    [[nodiscard]] const augmentation& augment() const noexcept { return augment_; }
    [[nodiscard]] const data::normalization& normalize() const noexcept { return normalize_; }
    /// Whether `operator()` does more than convert the pixels.
    [[nodiscard]] bool transforms() const noexcept { return augment_.random() || normalize_.active(); }

private:
    augmentation augment_;
    data::normalization normalize_;
    std::size_t height_, width_, channels_;
    std::uint64_t epoch_seed_ = 0;
};

// ===================================================================== implementation

namespace detail {

/// A float from a stored pixel: a byte v is v / 255.0f (the readers' value), a float is itself.
template <typename Pixel>
[[nodiscard]] constexpr float pixel_float(Pixel v) noexcept {
    if constexpr (std::same_as<Pixel, std::uint8_t>) return pixel_value(v);
    else return v;
}

/// exp and log from + and * alone: libm's may differ in the last bit between platforms, and
/// a box's size is rounded from them. Accurate to a few ulps over the ratios a crop uses.
[[nodiscard]] constexpr double portable_exp(double x) noexcept {
    // exp(x) = exp(x / 256)^256; the Taylor series of exp(x / 256) converges in 14 terms for
    // |x| <= 8 (log ratios beyond that are not aspect ratios of an image).
    const double r = x / 256.0;
    double term = 1.0, sum = 1.0;
    for (int k = 1; k <= 14; ++k) {
        term *= r / k;
        sum += term;
    }
    for (int k = 0; k < 8; ++k) sum *= sum;
    return sum;
}

[[nodiscard]] inline double portable_log(double x) noexcept {
    // x = m 2^e exactly, m in [sqrt 1/2, sqrt 2); log m = 2 log sqrt m = 4 atanh(z) with
    // z = (sqrt m - 1) / (sqrt m + 1), |z| < 0.09: 12 terms of the series; sqrt is correctly
    // rounded everywhere, and ln 2 is a constant.
    int e = 0;
    double m = std::frexp(x, &e);  // [0.5, 1)
    if (m < 0.70710678118654752) {
        m *= 2.0;
        --e;
    }
    const double r = std::sqrt(m);
    const double z = (r - 1.0) / (r + 1.0), z2 = z * z;
    double power = z, sum = 0.0;
    for (int k = 0; k < 12; ++k) {
        sum += power / (2 * k + 1);
        power *= z2;
    }
    return 4.0 * sum + static_cast<double>(e) * 0.69314718055994530942;
}

/// Python's `round` of v >= 0: to the nearest integer, halves to even (`int(round(v))` in
/// torchvision).
[[nodiscard]] inline std::int64_t round_half_even(double v) noexcept {
    const double below = std::floor(v);
    const double fraction = v - below;
    auto result = static_cast<std::int64_t>(below);
    if (fraction > 0.5 || (fraction == 0.5 && result % 2 != 0)) ++result;
    return result;
}

/// Uniform double in [0, 1) with 53 random bits.
[[nodiscard]] inline double uniform53(rng& g) noexcept { return static_cast<double>(g() >> 11) * 0x1.0p-53; }

inline constexpr float grey_weights[3] = {0.2989f, 0.587f, 0.114f};

[[nodiscard]] inline float clamp01(float v) noexcept { return std::min(1.0f, std::max(0.0f, v)); }

// torchvision's _blend: (f * image + (1 - f) * other), clamped.
[[nodiscard]] inline float blend(float image, float other, float f) noexcept {
    return clamp01(f * image + (1.0f - f) * other);
}

}  // namespace detail

inline void normalization::check(std::size_t channels, const std::string& where) const {
    if (!active()) return;
    if (mean.size() != channels || std.size() != channels)
        throw std::invalid_argument(where + ": normalization has " + std::to_string(mean.size()) + " means and " +
                                    std::to_string(std.size()) + " standard deviations for images of " +
                                    std::to_string(channels) + " channel" + (channels == 1 ? "" : "s"));
    for (std::size_t c = 0; c < channels; ++c) {
        if (!(std[c] > 0.0f) || std[c] > 3.4e38f)
            throw std::invalid_argument(where + ": normalization std[" + std::to_string(c) + "] = " +
                                        std::to_string(std[c]) + " is not a positive finite number");
        if (!(mean[c] >= -3.4e38f && mean[c] <= 3.4e38f))
            throw std::invalid_argument(where + ": normalization mean[" + std::to_string(c) + "] is not finite");
    }
}

inline void normalization::apply(float* images, std::size_t pixels, std::size_t channels) const noexcept {
    if (!active()) return;
    for (std::size_t p = 0; p < pixels; ++p)
        for (std::size_t c = 0; c < channels; ++c) images[p * channels + c] = (images[p * channels + c] - mean[c]) / std[c];
}

inline crop_box draw_crop_box(const random_resized_crop& options, std::size_t height, std::size_t width, rng& g) {
    const double area = static_cast<double>(height) * static_cast<double>(width);
    const double log_lo = detail::portable_log(options.ratio[0]), log_hi = detail::portable_log(options.ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target = area * (options.scale[0] + (options.scale[1] - options.scale[0]) * detail::uniform53(g));
        const double aspect = detail::portable_exp(log_lo + (log_hi - log_lo) * detail::uniform53(g));
        const std::int64_t w = detail::round_half_even(std::sqrt(target * aspect));
        const std::int64_t h = detail::round_half_even(std::sqrt(target / aspect));
        if (w > 0 && h > 0 && static_cast<std::size_t>(w) <= width && static_cast<std::size_t>(h) <= height) {
            const auto bh = static_cast<std::size_t>(h), bw = static_cast<std::size_t>(w);
            const std::size_t top = g.below(height - bh + 1);
            const std::size_t left = g.below(width - bw + 1);
            return {top, left, bh, bw};
        }
    }
    // The largest centred box whose ratio is within the range.
    const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
    std::size_t bw = width, bh = height;
    if (in_ratio < options.ratio[0])
        bh = static_cast<std::size_t>(detail::round_half_even(static_cast<double>(width) / options.ratio[0]));
    else if (in_ratio > options.ratio[1])
        bw = static_cast<std::size_t>(detail::round_half_even(static_cast<double>(height) * options.ratio[1]));
    bh = std::clamp<std::size_t>(bh, 1, height);
    bw = std::clamp<std::size_t>(bw, 1, width);
    return {(height - bh) / 2, (width - bw) / 2, bh, bw};
}

template <typename Pixel>
void resized_crop(const Pixel* src, std::size_t height, std::size_t width, std::size_t channels, const crop_box& box,
                  bool mirror, float* dst) {
    // PyTorch's upsample_bilinear2d (align_corners=False): source coordinate
    // (d + 0.5) * in / out - 0.5, clamped below at 0; the right/lower neighbour clamped to the box.
    const float scale_y = static_cast<float>(box.height) / static_cast<float>(height);
    const float scale_x = static_cast<float>(box.width) / static_cast<float>(width);
    const std::size_t c = channels;
    for (std::size_t y = 0; y < height; ++y) {
        const float sy = std::max(0.0f, (static_cast<float>(y) + 0.5f) * scale_y - 0.5f);
        const auto y0 = static_cast<std::size_t>(sy);
        const std::size_t y1 = y0 + (y0 + 1 < box.height ? 1 : 0);
        const float ly = sy - static_cast<float>(y0), hy = 1.0f - ly;
        const Pixel* row0 = src + ((box.top + y0) * width + box.left) * c;
        const Pixel* row1 = src + ((box.top + y1) * width + box.left) * c;
        for (std::size_t x = 0; x < width; ++x) {
            const float sx = std::max(0.0f, (static_cast<float>(x) + 0.5f) * scale_x - 0.5f);
            const auto x0 = static_cast<std::size_t>(sx);
            const std::size_t x1 = x0 + (x0 + 1 < box.width ? 1 : 0);
            const float lx = sx - static_cast<float>(x0), hx = 1.0f - lx;
            float* out = dst + (y * width + (mirror ? width - 1 - x : x)) * c;
            for (std::size_t k = 0; k < c; ++k) {
                const float p00 = detail::pixel_float(row0[x0 * c + k]), p01 = detail::pixel_float(row0[x1 * c + k]);
                const float p10 = detail::pixel_float(row1[x0 * c + k]), p11 = detail::pixel_float(row1[x1 * c + k]);
                out[k] = hy * (hx * p00 + lx * p01) + ly * (hx * p10 + lx * p11);
            }
        }
    }
}

inline jitter_factors draw_jitter(const color_jitter& options, rng& g) {
    jitter_factors f;
    // A random order of the three (Fisher-Yates), then the factors, each drawn even when
    // unused so that turning one on does not change the others.
    for (std::size_t i = 2; i > 0; --i) std::swap(f.order[i], f.order[g.below(i + 1)]);
    auto factor = [&](float v) {
        const float lo = std::max(0.0f, 1.0f - v), hi = 1.0f + v;
        const float u = g.uniform(lo, hi);
        return v > 0 ? u : 1.0f;
    };
    f.brightness = factor(options.brightness);
    f.contrast = factor(options.contrast);
    f.saturation = factor(options.saturation);
    return f;
}

inline void apply_jitter(float* image, std::size_t pixels, std::size_t channels, const jitter_factors& f) noexcept {
    const std::size_t values = pixels * channels;
    auto grey = [&](std::size_t p) {
        const float* rgb = image + p * 3;
        return detail::grey_weights[0] * rgb[0] + detail::grey_weights[1] * rgb[1] + detail::grey_weights[2] * rgb[2];
    };
    for (const std::uint8_t which : f.order) {
        if (which == 0 && f.brightness != 1.0f) {
            for (std::size_t i = 0; i < values; ++i) image[i] = detail::clamp01(f.brightness * image[i]);
        } else if (which == 1 && f.contrast != 1.0f) {
            // The mean grey level of the whole image (torchvision: of its greyscale version).
            double sum = 0.0;
            for (std::size_t p = 0; p < pixels; ++p) sum += channels == 3 ? grey(p) : image[p];
            const auto mean = static_cast<float>(sum / static_cast<double>(pixels == 0 ? 1 : pixels));
            for (std::size_t i = 0; i < values; ++i) image[i] = detail::blend(image[i], mean, f.contrast);
        } else if (which == 2 && f.saturation != 1.0f && channels == 3) {
            for (std::size_t p = 0; p < pixels; ++p) {
                const float g = grey(p);
                for (std::size_t k = 0; k < 3; ++k) image[p * 3 + k] = detail::blend(image[p * 3 + k], g, f.saturation);
            }
        }
    }
}

inline sample_transform::sample_transform(augmentation augment, normalization normalize, std::size_t height,
                                          std::size_t width, std::size_t channels)
    : augment_(std::move(augment)), normalize_(std::move(normalize)), height_(height), width_(width),
      channels_(channels) {
    const std::string size = std::to_string(height) + "x" + std::to_string(width) + "x" + std::to_string(channels);
    if (augment_.crop_padding > height || augment_.crop_padding > width)
        throw std::invalid_argument("crop padding " + std::to_string(augment_.crop_padding) +
                                    " exceeds the image size " + std::to_string(height) + "x" + std::to_string(width));
    if (const auto& crop = augment_.random_resized_crop) {
        if (augment_.crop_padding != 0)
            throw std::invalid_argument("random_resized_crop and crop_padding are two kinds of random crop: use one");
        if (!(crop->scale[0] > 0.0 && crop->scale[0] <= crop->scale[1] && crop->scale[1] <= 1.0))
            throw std::invalid_argument("random_resized_crop: scale must satisfy 0 < scale[0] <= scale[1] <= 1, got [" +
                                        std::to_string(crop->scale[0]) + ", " + std::to_string(crop->scale[1]) + "]");
        if (!(crop->ratio[0] > 0.0 && crop->ratio[0] <= crop->ratio[1] && crop->ratio[1] < 1e3 &&
              crop->ratio[0] > 1e-3))
            throw std::invalid_argument(
                "random_resized_crop: ratio must satisfy 0.001 < ratio[0] <= ratio[1] < 1000, got [" +
                std::to_string(crop->ratio[0]) + ", " + std::to_string(crop->ratio[1]) + "]");
    }
    const auto& jitter = augment_.color_jitter;
    for (const auto& [name, value] : {std::pair{"brightness", jitter.brightness}, std::pair{"contrast", jitter.contrast},
                                      std::pair{"saturation", jitter.saturation}})
        if (!(value >= 0.0f && value <= 1e6f))
            throw std::invalid_argument(std::string("color_jitter: ") + name + " must be a finite number >= 0, got " +
                                        std::to_string(value));
    if (jitter.active() && channels != 1 && channels != 3)
        throw std::invalid_argument("color_jitter needs images of 1 or 3 channels, these are " + size);
    if (jitter.saturation > 0 && channels != 3)
        throw std::invalid_argument("color_jitter: saturation needs RGB images, these are " + size);
    normalize_.check(channels, "sample_transform");
}

inline void sample_transform::start_epoch(std::uint64_t seed, std::size_t epoch, std::size_t rank) noexcept {
    rng per_epoch = rng::derived(seed, epoch);
    rng per_rank = rng::derived(per_epoch(), rank);
    epoch_seed_ = per_rank();
}

template <typename Pixel>
void sample_transform::operator()(const Pixel* src, std::size_t index, float* dst) const {
    const std::size_t sample = height_ * width_ * channels_;
    if (!augment_.random()) {
        if constexpr (std::same_as<Pixel, float>) {
            if (sample != 0) std::memcpy(dst, src, sample * sizeof(float));
        } else {
            for (std::size_t i = 0; i < sample; ++i) dst[i] = detail::pixel_float(src[i]);
        }
        normalize_.apply(dst, height_ * width_, channels_);
        return;
    }
    // The geometric draws (a flip bit, then the padded crop's offsets or the resized crop's
    // box) always come in this order from this stream, so turning the flip on or off leaves the
    // crops unchanged; the colours have a stream of their own.
    rng g = rng::derived(epoch_seed_, index);
    const bool mirror = (g() >> 63) != 0 && augment_.flip;
    if (augment_.random_resized_crop) {
        const crop_box box = draw_crop_box(*augment_.random_resized_crop, height_, width_, g);
        resized_crop(src, height_, width_, channels_, box, mirror, dst);
    } else {
        const auto pad = static_cast<std::ptrdiff_t>(augment_.crop_padding);
        const std::size_t span = 2 * augment_.crop_padding + 1;
        const std::ptrdiff_t dy = pad == 0 ? 0 : static_cast<std::ptrdiff_t>(g.below(span)) - pad;
        const std::ptrdiff_t dx = pad == 0 ? 0 : static_cast<std::ptrdiff_t>(g.below(span)) - pad;
        const auto h = static_cast<std::ptrdiff_t>(height_), w = static_cast<std::ptrdiff_t>(width_);
        const std::size_t c = channels_;
        // out(y, x) = padded(y + dy, x' + dx) with x' = x or its mirror; outside the image is 0.
        for (std::ptrdiff_t y = 0; y < h; ++y) {
            float* row = dst + static_cast<std::size_t>(y) * width_ * c;
            const std::ptrdiff_t sy = y + dy;
            if (sy < 0 || sy >= h) {
                std::fill(row, row + width_ * c, 0.0f);
                continue;
            }
            const Pixel* src_row = src + static_cast<std::size_t>(sy) * width_ * c;
            for (std::ptrdiff_t x = 0; x < w; ++x) {
                const std::ptrdiff_t sx = (mirror ? w - 1 - x : x) + dx;
                float* out = row + static_cast<std::size_t>(x) * c;
                if (sx < 0 || sx >= w)
                    std::fill(out, out + c, 0.0f);
                else
                    for (std::size_t k = 0; k < c; ++k)
                        out[k] = detail::pixel_float(src_row[static_cast<std::size_t>(sx) * c + k]);
            }
        }
    }
    if (augment_.color_jitter.active()) {
        rng colours = rng::derived(epoch_seed_ ^ 0xC0104E5ULL, index);
        apply_jitter(dst, height_ * width_, channels_, draw_jitter(augment_.color_jitter, colours));
    }
    normalize_.apply(dst, height_ * width_, channels_);
}

}  // namespace staticnet::data
