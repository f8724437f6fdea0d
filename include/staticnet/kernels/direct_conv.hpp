#pragma once
/// @file
/// Direct convolution of single-channel images: the first layer of a grayscale network.
///
/// With one input channel, im2col turns each output pixel into a row of only K*K values
/// (9 for 3x3), so the GEMM has k = 9: it streams a column matrix nine times the size of
/// the input and its output through memory for very little arithmetic, and ran at about
/// half the FMA peak (benchmarks/LOG.md). Here each output pixel is computed in
/// registers instead: the Filters-wide kernel taps stay in registers for the whole image,
/// every input value is broadcast once per tap, and the bias is the accumulators' start.
/// The weight gradient is the same sweep with the roles swapped: the K*K x Filters gradient
/// lives in registers and every output-gradient vector is multiplied by the K*K input values
/// under its window. Nothing is written but the output (forward) or the gradients
/// (backward).
///
/// Layouts are those of the rest of the library: NHWC images (C = 1), the kernel
/// [K, K, 1, F] (Keras), the output [N, OH, OW, F]. `Filters` must be a multiple of the SIMD
/// width (`fits`); zero padding is read from a padded copy of each input row (on the stack:
/// `fits` also bounds the row width).
///
/// The weight gradient sums over the images in order, on one thread: its result does not
/// depend on the thread count. The forward pass splits the images over threads (each output
/// depends on its own image only).

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "../core/compat.hpp"
#include "../core/thread_pool.hpp"
#include "im2col.hpp"

namespace staticnet::kernels {

template <window_geometry G, std::size_t Filters>
struct direct_conv_single_channel {
    static_assert(G.channels == 1, "direct_conv_single_channel: the input must have one channel");
    /// Whether this kernel handles `Filters` on this SIMD width.
    static constexpr bool fits = Filters % simd::float_lanes == 0 && Filters / simd::float_lanes <= 8 &&
                                 G.kernel * (G.width + 2 * G.kernel) <= 16384;

    /// out = conv(in) + bias, for `images` images; the caller applies the activation.
    static void forward(const float* in, std::size_t images, const float* kernel, const float* bias, float* out) noexcept;

    /// dkernel += sum over pixels of the input window x output gradient, dbias += sum of the
    /// output gradient, for `images` images of `dout` [N, OH, OW, F]. `to_pre_activation(oy_row,
    /// dout_row)` is called first on each output row (OW x F floats, `oy_row` counting rows over
    /// all images): it turns the row of `dout` into the gradient before the activation, in place,
    /// while the row is in L1 (a separate pass over `dout` would stream it through memory twice).
    template <typename RowFunction>
    static void backward_parameters(const float* in, float* dout, std::size_t images, float* dkernel, float* dbias,
                                    RowFunction&& to_pre_activation) noexcept;

private:
    static constexpr std::size_t Kernel = G.kernel;
    /// A padded input row: room for the padding on both sides.
    static constexpr std::size_t width = G.width + 2 * Kernel;
    using batch = simd::float_batch;
    static constexpr std::size_t lanes = simd::float_lanes;
    static constexpr std::size_t vectors = Filters / lanes;
    static constexpr std::size_t taps = Kernel * Kernel;
    /// Output pixels computed together: about 12 accumulator registers.
    static constexpr std::size_t pixels = vectors >= 12 ? 1 : 12 / vectors;

    /// Copies the K input rows under output row `oy` into `rows` (K rows, each zero-padded
    /// so that column `ox * stride + kx` of a padded row is the input column that tap reads).
    static void padded_rows(const float* image, std::size_t oy, float* rows) noexcept {
        for (std::size_t ky = 0; ky < Kernel; ++ky) {
            float* row = rows + ky * width;
            std::fill_n(row, width, 0.0f);
            const auto iy = static_cast<std::ptrdiff_t>(oy * G.stride + ky) - static_cast<std::ptrdiff_t>(G.pad_top);
            if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(G.height)) continue;
            std::memcpy(row + G.pad_left, image + static_cast<std::size_t>(iy) * G.width, G.width * sizeof(float));
        }
    }
};

// ------------------------------------------------------------------ implementation

template <window_geometry G, std::size_t Filters>
void direct_conv_single_channel<G, Filters>::forward(const float* in, std::size_t images, const float* kernel,
                                                     const float* bias, float* out) noexcept {
    static_assert(fits);
    alignas(64) float rows[Kernel * width];
    batch w[taps][vectors], b[vectors];
    for (std::size_t t = 0; t < taps; ++t)
        for (std::size_t v = 0; v < vectors; ++v) w[t][v] = batch::load_unaligned(kernel + t * Filters + v * lanes);
    for (std::size_t v = 0; v < vectors; ++v) b[v] = batch::load_unaligned(bias + v * lanes);

    for (std::size_t n = 0; n < images; ++n) {
        const float* image = in + n * G.image_size();
        for (std::size_t oy = 0; oy < G.out_height; ++oy) {
            padded_rows(image, oy, rows);
            float* out_row = out + ((n * G.out_height + oy) * G.out_width) * Filters;
            std::size_t ox = 0;
            auto block = [&]<std::size_t P>(std::integral_constant<std::size_t, P>) {
                batch acc[P][vectors];
#pragma GCC unroll 16
                for (std::size_t p = 0; p < P; ++p)
#pragma GCC unroll 8
                    for (std::size_t v = 0; v < vectors; ++v) acc[p][v] = b[v];
#pragma GCC unroll 16
                for (std::size_t ky = 0; ky < Kernel; ++ky)
#pragma GCC unroll 16
                    for (std::size_t kx = 0; kx < Kernel; ++kx) {
                        const float* src = rows + ky * width + ox * G.stride + kx;
#pragma GCC unroll 16
                        for (std::size_t p = 0; p < P; ++p) {
                            const batch x(src[p * G.stride]);
#pragma GCC unroll 8
                            for (std::size_t v = 0; v < vectors; ++v)
                                acc[p][v] = simd::fma(x, w[ky * Kernel + kx][v], acc[p][v]);
                        }
                    }
#pragma GCC unroll 16
                for (std::size_t p = 0; p < P; ++p)
#pragma GCC unroll 8
                    for (std::size_t v = 0; v < vectors; ++v) acc[p][v].store_unaligned(out_row + (ox + p) * Filters + v * lanes);
            };
            for (; ox + pixels <= G.out_width; ox += pixels) block(std::integral_constant<std::size_t, pixels>{});
            for (; ox < G.out_width; ++ox) block(std::integral_constant<std::size_t, 1>{});
        }
    }
}

template <window_geometry G, std::size_t Filters>
template <typename RowFunction>
void direct_conv_single_channel<G, Filters>::backward_parameters(const float* in, float* dout, std::size_t images,
                                                                 float* dkernel, float* dbias,
                                                                 RowFunction&& to_pre_activation) noexcept {
    static_assert(fits);
    alignas(64) float rows[Kernel * width];
    // The whole gradient in registers where it fits (K*K*F/lanes + F/lanes vectors: 20 for
    // 3x3 and 32 filters on AVX-512), summed over every pixel in order.
    batch dw[taps][vectors], db[vectors];
    for (std::size_t t = 0; t < taps; ++t)
        for (std::size_t v = 0; v < vectors; ++v) dw[t][v] = batch(0.0f);
    for (std::size_t v = 0; v < vectors; ++v) db[v] = batch(0.0f);

    for (std::size_t n = 0; n < images; ++n) {
        const float* image = in + n * G.image_size();
        for (std::size_t oy = 0; oy < G.out_height; ++oy) {
            padded_rows(image, oy, rows);
            float* dz_row = dout + ((n * G.out_height + oy) * G.out_width) * Filters;
            to_pre_activation(n * G.out_height + oy, dz_row);
            for (std::size_t ox = 0; ox < G.out_width; ++ox) {
                batch dz[vectors];
#pragma GCC unroll 8
                for (std::size_t v = 0; v < vectors; ++v) {
                    dz[v] = batch::load_unaligned(dz_row + ox * Filters + v * lanes);
                    db[v] += dz[v];
                }
#pragma GCC unroll 16
                for (std::size_t ky = 0; ky < Kernel; ++ky)
#pragma GCC unroll 16
                    for (std::size_t kx = 0; kx < Kernel; ++kx) {
                        const batch x(rows[ky * width + ox * G.stride + kx]);
#pragma GCC unroll 8
                        for (std::size_t v = 0; v < vectors; ++v)
                            dw[ky * Kernel + kx][v] = simd::fma(x, dz[v], dw[ky * Kernel + kx][v]);
                    }
            }
        }
    }
    for (std::size_t t = 0; t < taps; ++t)
        for (std::size_t v = 0; v < vectors; ++v) {
            float* p = dkernel + t * Filters + v * lanes;
            (batch::load_unaligned(p) + dw[t][v]).store_unaligned(p);
        }
    for (std::size_t v = 0; v < vectors; ++v) {
        float* p = dbias + v * lanes;
        (batch::load_unaligned(p) + db[v]).store_unaligned(p);
    }
}

}  // namespace staticnet::kernels
