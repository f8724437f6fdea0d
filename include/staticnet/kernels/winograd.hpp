#pragma once
/// @file
/// Winograd's minimal filtering F(4x4, 3x3) for channels-last (NHWC) 3x3 convolutions with
/// stride 1: the transforms around the products, and their adjoints for the backward pass.
///
/// A 4x4 block of output pixels (a *tile*) needs a 6x6 patch of the input. Per tile and
/// channel pair, Winograd's identity (Lavin and Gray, "Fast Algorithms for Convolutional
/// Neural Networks", 2016) computes the block as
///
///     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
///
/// with 36 multiplications instead of 144 (g: the 3x3 kernel, d: the patch, (.) elementwise).
/// Summed over input channels, the 36 products become 36 independent matrix products:
///
///     M[p] (tiles x filters) = V[p] (tiles x channels) * U[p] (channels x filters),  p < 36
///
/// V = B^T d B is the *input transform*, U = G g G^T the *kernel transform*, Y = A^T M A the
/// *output transform*. The layer runs the 36 products with `gemm`: 4 times fewer
/// multiply-adds than im2col's product on whole tiles (3.1 times on 14x14 images, whose last
/// tile row and column are half outside), and V holds about 2.25 floats per input float where
/// im2col's columns hold 9. F(2x2, 3x3) would round a little less but do 1.8 times the
/// products (measured: the whole ResNet step 8-20% slower with it); the 4x4 tile's results
/// stay within 1e-5 relative of a direct convolution in double (tests/test_layers.cpp).
///
/// Backward is the adjoint of that computation, so it is the exact gradient of what forward
/// computed, up to rounding (finite differences agree with it as with any layer):
///
///     dM[p] = A dY A^T,  dV[p] = dM[p] * U[p]^T,  dU[p] = V[p]^T * dM[p],
///     dd = B dV B^T (patches overlap: summed into the input gradient),  dg = G^T dU G.
///
/// The matrices (points 0, 1, -1, 2, -2 and infinity):
///
///     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
///     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
///     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
///
/// Layouts: V and dV are 36 matrices [tiles x channels], M and dM 36 matrices [tiles x
/// filters], each `tiles` rows long (`tiles * width` floats apart); U and dU are 36 matrices
/// [channels x filters]. Tiles are numbered image by image, row by row. Plain functions of the
/// sizes, not templates of them: every layer shares one copy. Channels that do not fill a
/// register run the same formulas on single floats (a channel's values do not depend on the
/// thread count either way: threads split images and products, not channels).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "../core/compat.hpp"
#include "im2col.hpp"

namespace staticnet::kernels {

/// Output pixels per tile side, input pixels per patch side, and matrices (patch pixels).
inline constexpr std::size_t winograd_tile = 4, winograd_patch = 6, winograd_matrices = 36;

/// Tiles (4x4 output blocks) of one image.
[[nodiscard]] constexpr std::size_t winograd_tiles_per_image(const window_geometry& g) noexcept {
    return ((g.out_height + winograd_tile - 1) / winograd_tile) * ((g.out_width + winograd_tile - 1) / winograd_tile);
}

/// U[p] = (G g G^T)[p] for every filter and the channels [first, last) of a Keras kernel
/// [3, 3, channels, filters] (each channel is independent: threads may take a range each).
inline void winograd_transform_kernel(const float* kernel, std::size_t channels, std::size_t filters, float* u,
                                      std::size_t first, std::size_t last) noexcept;

/// kernel_gradient += G^T dU G for the channels [first, last): the kernel's gradient from dU
/// (36 x [channels x filters]).
inline void winograd_add_kernel_gradient(const float* du, std::size_t channels, std::size_t filters,
                                         float* kernel_gradient, std::size_t first, std::size_t last) noexcept;

/// Floats of the `band` workspace that the input transforms need (per call).
[[nodiscard]] constexpr std::size_t winograd_band_floats(const window_geometry& g) noexcept {
    return winograd_patch * ((g.out_width + winograd_tile - 1) / winograd_tile * winograd_tile + 2) * g.channels;
}

/// V rows [first_tile, ...) for `images` images at `in` (zeros beyond the borders). `band`:
/// `winograd_band_floats(g)` floats of workspace.
inline void winograd_transform_input(const window_geometry& g, const float* in, std::size_t images, float* v,
                                     std::size_t first_tile, std::size_t tiles, float* band) noexcept;

/// The output pixels of `images` images from M rows [first_tile, ...).
inline void winograd_transform_output(const window_geometry& g, std::size_t filters, const float* m, std::size_t first_tile,
                                      std::size_t tiles, std::size_t images, float* out) noexcept;

/// dM rows [first_tile, ...) from the output gradient of `images` images (A dY A^T).
inline void winograd_transform_output_gradient(const window_geometry& g, std::size_t filters, const float* dout,
                                               std::size_t images, float* dm, std::size_t first_tile,
                                               std::size_t tiles) noexcept;

/// The input gradient of `images` images (overwritten) from dV rows [first_tile, ...):
/// B dV B^T, overlapping patches summed in tile order. `band` as for the input transform.
inline void winograd_transform_input_gradient(const window_geometry& g, const float* dv, std::size_t first_tile,
                                              std::size_t tiles, std::size_t images, float* din, float* band) noexcept;

// ------------------------------------------------------------------ implementation

namespace detail::winograd {

template <typename T>
T load_lanes(const float* p) noexcept {
    if constexpr (std::is_same_v<T, float>) return *p;
    else return T::load_unaligned(p);
}

template <typename T>
void store_lanes(float* p, const T& v) noexcept {
    if constexpr (std::is_same_v<T, float>) *p = v;
    else v.store_unaligned(p);
}

/// Calls f.template operator()<T>(i) for every whole register of [0, n) (T = float_batch),
/// then for every element left (T = float).
template <typename F>
void for_lanes(std::size_t n, F&& f) {
    constexpr std::size_t lanes = simd::float_lanes;
    const std::size_t whole = n / lanes * lanes;
    for (std::size_t i = 0; i < whole; i += lanes) f.template operator()<simd::float_batch>(i);
    for (std::size_t i = whole; i < n; ++i) f.template operator()<float>(i);
}

// The one-dimensional transforms, x[k * stride] to y[k * stride]: each 2-D transform is one
// of them down the columns, then along the rows. Written out, not as matrix products,
// because multiplications by 0 and 1 cannot be folded away in IEEE arithmetic.

/// B^T x (six values to six).
template <typename T>
void input_1d(const T* x, T* y, std::size_t stride) noexcept {
    const T x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride], x4 = x[4 * stride], x5 = x[5 * stride];
    const T two(2.0f), four(4.0f), five(5.0f);
    y[0] = four * x0 - five * x2 + x4;
    y[stride] = (x3 + x4) - four * (x1 + x2);
    y[2 * stride] = (x4 - x3) + four * (x1 - x2);
    y[3 * stride] = (x4 - x2) + two * (x3 - x1);
    y[4 * stride] = (x4 - x2) - two * (x3 - x1);
    y[5 * stride] = four * x1 - five * x3 + x5;
}

/// B x: the adjoint of `input_1d`.
template <typename T>
void input_adjoint_1d(const T* x, T* y, std::size_t stride) noexcept {
    const T x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride], x4 = x[4 * stride], x5 = x[5 * stride];
    const T two(2.0f), four(4.0f), five(5.0f);
    y[0] = four * x0;
    y[stride] = four * (x2 - x1 + x5) + two * (x4 - x3);
    y[2 * stride] = -(five * x0 + four * (x1 + x2) + (x3 + x4));
    y[3 * stride] = (x1 - x2) + two * (x3 - x4) - five * x5;
    y[4 * stride] = x0 + x1 + x2 + x3 + x4;
    y[5 * stride] = x5;
}

/// G x (three values to six).
template <typename T>
void kernel_1d(const T* x, T* y, std::size_t stride) noexcept {
    const T x0 = x[0], x1 = x[stride], x2 = x[2 * stride];
    const T quarter(1.0f / 4), sixth(1.0f / 6), twelfth(1.0f / 12), twenty_fourth(1.0f / 24);
    const T outer = x0 + x2, far = twenty_fourth * x0 + sixth * x2, middle = twelfth * x1;
    y[0] = quarter * x0;
    y[stride] = -sixth * (outer + x1);
    y[2 * stride] = -sixth * (outer - x1);
    y[3 * stride] = far + middle;
    y[4 * stride] = far - middle;
    y[5 * stride] = x2;
}

/// G^T x (six values to three): the adjoint of `kernel_1d`.
template <typename T>
void kernel_adjoint_1d(const T* x, T* y, std::size_t stride) noexcept {
    const T x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride], x4 = x[4 * stride], x5 = x[5 * stride];
    const T quarter(1.0f / 4), sixth(1.0f / 6), twelfth(1.0f / 12), twenty_fourth(1.0f / 24);
    y[0] = quarter * x0 - sixth * (x1 + x2) + twenty_fourth * (x3 + x4);
    y[stride] = sixth * (x2 - x1) + twelfth * (x3 - x4);
    y[2 * stride] = sixth * ((x3 + x4) - (x1 + x2)) + x5;
}

/// A^T x (six values to four).
template <typename T>
void output_1d(const T* x, T* y, std::size_t stride) noexcept {
    const T x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride], x4 = x[4 * stride], x5 = x[5 * stride];
    const T two(2.0f), four(4.0f), eight(8.0f);
    const T sum12 = x1 + x2, difference12 = x1 - x2, sum34 = x3 + x4, difference34 = x3 - x4;
    y[0] = x0 + sum12 + sum34;
    y[stride] = difference12 + two * difference34;
    y[2 * stride] = sum12 + four * sum34;
    y[3 * stride] = difference12 + eight * difference34 + x5;
}

/// A x (four values to six): the adjoint of `output_1d`.
template <typename T>
void output_adjoint_1d(const T* x, T* y, std::size_t stride) noexcept {
    const T x0 = x[0], x1 = x[stride], x2 = x[2 * stride], x3 = x[3 * stride];
    const T two(2.0f), four(4.0f), eight(8.0f);
    const T even = x0 + four * x2, odd = two * x1 + eight * x3;
    y[0] = x0;
    y[stride] = x0 + x1 + x2 + x3;
    y[2 * stride] = x0 - x1 + x2 - x3;
    y[3 * stride] = even + odd;
    y[4 * stride] = even - odd;
    y[5 * stride] = x3;
}

/// Where a tile's patch starts in the (unpadded) image, and which of its rows and columns
/// lie inside.
struct patch {
    std::ptrdiff_t y0, x0;
    bool row_inside[winograd_patch], column_inside[winograd_patch];

    patch(const window_geometry& g, std::size_t ty, std::size_t tx) noexcept
        : y0(static_cast<std::ptrdiff_t>(winograd_tile * ty) - static_cast<std::ptrdiff_t>(g.pad_top)),
          x0(static_cast<std::ptrdiff_t>(winograd_tile * tx) - static_cast<std::ptrdiff_t>(g.pad_left)) {
        for (std::size_t i = 0; i < winograd_patch; ++i) {
            const auto d = static_cast<std::ptrdiff_t>(i);
            row_inside[i] = y0 + d >= 0 && y0 + d < static_cast<std::ptrdiff_t>(g.height);
            column_inside[i] = x0 + d >= 0 && x0 + d < static_cast<std::ptrdiff_t>(g.width);
        }
    }
    /// Offset of patch pixel (i, j) in its image, in floats.
    [[nodiscard]] std::ptrdiff_t offset(const window_geometry& g, std::size_t i, std::size_t j) const noexcept {
        return ((y0 + static_cast<std::ptrdiff_t>(i)) * static_cast<std::ptrdiff_t>(g.width) + x0 +
                static_cast<std::ptrdiff_t>(j)) *
               static_cast<std::ptrdiff_t>(g.channels);
    }
};

/// Calls f(n, ty, tx, tile) for every tile of `images` images, numbering tiles from `first_tile`.
template <typename F>
void for_tiles(const window_geometry& g, std::size_t images, std::size_t first_tile, F&& f) {
    const std::size_t tiles_y = (g.out_height + winograd_tile - 1) / winograd_tile;
    const std::size_t tiles_x = (g.out_width + winograd_tile - 1) / winograd_tile;
    std::size_t tile = first_tile;
    for (std::size_t n = 0; n < images; ++n)
        for (std::size_t ty = 0; ty < tiles_y; ++ty)
            for (std::size_t tx = 0; tx < tiles_x; ++tx, ++tile) f(n, ty, tx, tile);
}

}  // namespace detail::winograd

inline void winograd_transform_kernel(const float* kernel, std::size_t channels, std::size_t filters, float* u,
                                      std::size_t first, std::size_t last) noexcept {
    using namespace detail::winograd;
    const std::size_t tap = channels * filters;  // floats between kernel taps, and between U matrices
    for (std::size_t c = first; c < last; ++c)
        for_lanes(filters, [&]<typename T>(std::size_t f) {
            T g[3][3], columns[6][3], result[6][6];
            for (std::size_t k = 0; k < 9; ++k) g[k / 3][k % 3] = load_lanes<T>(kernel + k * tap + c * filters + f);
            for (std::size_t kx = 0; kx < 3; ++kx) kernel_1d(&g[0][kx], &columns[0][kx], 3);
            for (std::size_t i = 0; i < 6; ++i) kernel_1d(&columns[i][0], &result[i][0], 1);
            for (std::size_t p = 0; p < winograd_matrices; ++p) store_lanes(u + p * tap + c * filters + f, result[p / 6][p % 6]);
        });
}

inline void winograd_add_kernel_gradient(const float* du, std::size_t channels, std::size_t filters,
                                         float* kernel_gradient, std::size_t first, std::size_t last) noexcept {
    using namespace detail::winograd;
    const std::size_t tap = channels * filters;
    for (std::size_t c = first; c < last; ++c)
        for_lanes(filters, [&]<typename T>(std::size_t f) {
            T d[6][6], rows[6][3], g[3][3];
            for (std::size_t p = 0; p < winograd_matrices; ++p) d[p / 6][p % 6] = load_lanes<T>(du + p * tap + c * filters + f);
            for (std::size_t i = 0; i < 6; ++i) kernel_adjoint_1d(&d[i][0], &rows[i][0], 1);
            for (std::size_t kx = 0; kx < 3; ++kx) kernel_adjoint_1d(&rows[0][kx], &g[0][kx], 3);
            for (std::size_t k = 0; k < 9; ++k) {
                float* at = kernel_gradient + k * tap + c * filters + f;
                store_lanes(at, load_lanes<T>(at) + g[k / 3][k % 3]);
            }
        });
}

// The input transform and its adjoint work one row of tiles (a *band* of six input rows) at a
// time: the vertical 1-D transform of each column of the band is computed once and shared by
// the two tiles that overlap on it, and the borders are handled per row and per column of the
// band instead of per value. The band buffer [6][columns][channels] stays in L1 for the
// network's sizes (6 x 18 x 32 floats at 14x14x32).

inline void winograd_transform_input(const window_geometry& g, const float* in, std::size_t images, float* v,
                                     std::size_t first_tile, std::size_t tiles, float* band) noexcept {
    using namespace detail::winograd;
    const std::size_t channels = g.channels, matrix_stride = tiles * channels;
    const std::size_t tiles_y = (g.out_height + winograd_tile - 1) / winograd_tile;
    const std::size_t tiles_x = (g.out_width + winograd_tile - 1) / winograd_tile;
    const std::size_t columns = tiles_x * winograd_tile + 2, band_row = columns * channels;
    std::size_t tile = first_tile;
    for (std::size_t n = 0; n < images; ++n) {
        const float* image = in + n * g.image_size();
        for (std::size_t ty = 0; ty < tiles_y; ++ty) {
            const patch rows(g, ty, 0);
            for (std::size_t x = 0; x < columns; ++x) {
                const auto ix = static_cast<std::ptrdiff_t>(x) - static_cast<std::ptrdiff_t>(g.pad_left);
                const bool inside = ix >= 0 && ix < static_cast<std::ptrdiff_t>(g.width);
                float* out = band + x * channels;
                for_lanes(channels, [&]<typename T>(std::size_t c) {
                    T d[6], t[6];
                    for (std::size_t i = 0; i < 6; ++i)
                        d[i] = inside && rows.row_inside[i]
                                   ? load_lanes<T>(image + ((rows.y0 + static_cast<std::ptrdiff_t>(i)) * static_cast<std::ptrdiff_t>(g.width) + ix) *
                                                               static_cast<std::ptrdiff_t>(channels) +
                                                   static_cast<std::ptrdiff_t>(c))
                                   : T(0.0f);
                    input_1d(d, t, 1);
                    for (std::size_t i = 0; i < 6; ++i) store_lanes(out + i * band_row + c, t[i]);
                });
            }
            for (std::size_t tx = 0; tx < tiles_x; ++tx, ++tile) {
                const float* src = band + winograd_tile * tx * channels;
                float* out = v + tile * channels;
                for_lanes(channels, [&]<typename T>(std::size_t c) {
                    for (std::size_t i = 0; i < 6; ++i) {
                        T d[6], t[6];
                        for (std::size_t j = 0; j < 6; ++j) d[j] = load_lanes<T>(src + i * band_row + j * channels + c);
                        input_1d(d, t, 1);
                        for (std::size_t j = 0; j < 6; ++j) store_lanes(out + (6 * i + j) * matrix_stride + c, t[j]);
                    }
                });
            }
        }
    }
}

inline void winograd_transform_output(const window_geometry& g, std::size_t filters, const float* m, std::size_t first_tile,
                                      std::size_t tiles, std::size_t images, float* out) noexcept {
    using namespace detail::winograd;
    const std::size_t matrix_stride = tiles * filters, image_size = g.out_height * g.out_width * filters;
    for_tiles(g, images, first_tile, [&](std::size_t n, std::size_t ty, std::size_t tx, std::size_t tile) {
        const float* src = m + tile * filters;
        const std::size_t y0 = winograd_tile * ty, x0 = winograd_tile * tx;
        const std::size_t rows = std::min(winograd_tile, g.out_height - y0), columns = std::min(winograd_tile, g.out_width - x0);
        float* dst = out + n * image_size + (y0 * g.out_width + x0) * filters;
        for_lanes(filters, [&]<typename T>(std::size_t f) {
            T x[6][6], half[4][6], y[4][4];
            for (std::size_t p = 0; p < winograd_matrices; ++p) x[p / 6][p % 6] = load_lanes<T>(src + p * matrix_stride + f);
            for (std::size_t j = 0; j < 6; ++j) output_1d(&x[0][j], &half[0][j], 6);
            for (std::size_t a = 0; a < rows; ++a) {
                output_1d(&half[a][0], &y[a][0], 1);
                for (std::size_t b = 0; b < columns; ++b) store_lanes(dst + (a * g.out_width + b) * filters + f, y[a][b]);
            }
        });
    });
}

inline void winograd_transform_output_gradient(const window_geometry& g, std::size_t filters, const float* dout,
                                               std::size_t images, float* dm, std::size_t first_tile,
                                               std::size_t tiles) noexcept {
    using namespace detail::winograd;
    const std::size_t matrix_stride = tiles * filters, image_size = g.out_height * g.out_width * filters;
    for_tiles(g, images, first_tile, [&](std::size_t n, std::size_t ty, std::size_t tx, std::size_t tile) {
        float* dst = dm + tile * filters;
        const std::size_t y0 = winograd_tile * ty, x0 = winograd_tile * tx;
        const std::size_t rows = std::min(winograd_tile, g.out_height - y0), columns = std::min(winograd_tile, g.out_width - x0);
        const float* src = dout + n * image_size + (y0 * g.out_width + x0) * filters;
        for_lanes(filters, [&]<typename T>(std::size_t f) {
            T dy[4][4], half[4][6], x[6][6];
            for (std::size_t a = 0; a < 4; ++a)
                for (std::size_t b = 0; b < 4; ++b)
                    dy[a][b] = a < rows && b < columns ? load_lanes<T>(src + (a * g.out_width + b) * filters + f) : T(0.0f);
            for (std::size_t a = 0; a < 4; ++a) output_adjoint_1d(&dy[a][0], &half[a][0], 1);
            for (std::size_t j = 0; j < 6; ++j) output_adjoint_1d(&half[0][j], &x[0][j], 6);
            for (std::size_t p = 0; p < winograd_matrices; ++p) store_lanes(dst + p * matrix_stride + f, x[p / 6][p % 6]);
        });
    });
}

inline void winograd_transform_input_gradient(const window_geometry& g, const float* dv, std::size_t first_tile,
                                              std::size_t tiles, std::size_t images, float* din, float* band) noexcept {
    using namespace detail::winograd;
    const std::size_t channels = g.channels, matrix_stride = tiles * channels;
    const std::size_t tiles_y = (g.out_height + winograd_tile - 1) / winograd_tile;
    const std::size_t tiles_x = (g.out_width + winograd_tile - 1) / winograd_tile;
    const std::size_t columns = tiles_x * winograd_tile + 2, band_row = columns * channels;
    std::memset(din, 0, images * g.image_size() * sizeof(float));
    std::size_t tile = first_tile;
    for (std::size_t n = 0; n < images; ++n) {
        float* image = din + n * g.image_size();
        for (std::size_t ty = 0; ty < tiles_y; ++ty) {
            // Horizontal adjoints of every tile of the band, summed where tiles overlap...
            std::memset(band, 0, winograd_patch * band_row * sizeof(float));
            for (std::size_t tx = 0; tx < tiles_x; ++tx, ++tile) {
                const float* src = dv + tile * channels;
                float* out = band + winograd_tile * tx * channels;
                for_lanes(channels, [&]<typename T>(std::size_t c) {
                    for (std::size_t i = 0; i < 6; ++i) {
                        T x[6], t[6];
                        for (std::size_t j = 0; j < 6; ++j) x[j] = load_lanes<T>(src + (6 * i + j) * matrix_stride + c);
                        input_adjoint_1d(x, t, 1);
                        for (std::size_t j = 0; j < 6; ++j) {
                            float* at = out + i * band_row + j * channels + c;
                            store_lanes(at, load_lanes<T>(at) + t[j]);
                        }
                    }
                });
            }
            // ...then the vertical adjoint of each column, added into the image.
            const patch rows(g, ty, 0);
            for (std::size_t x = 0; x < columns; ++x) {
                const auto ix = static_cast<std::ptrdiff_t>(x) - static_cast<std::ptrdiff_t>(g.pad_left);
                if (ix < 0 || ix >= static_cast<std::ptrdiff_t>(g.width)) continue;
                const float* src = band + x * channels;
                for_lanes(channels, [&]<typename T>(std::size_t c) {
                    T x6[6], d[6];
                    for (std::size_t i = 0; i < 6; ++i) x6[i] = load_lanes<T>(src + i * band_row + c);
                    input_adjoint_1d(x6, d, 1);
                    for (std::size_t i = 0; i < 6; ++i) {
                        if (!rows.row_inside[i]) continue;
                        float* at = image + ((rows.y0 + static_cast<std::ptrdiff_t>(i)) * static_cast<std::ptrdiff_t>(g.width) + ix) *
                                                static_cast<std::ptrdiff_t>(channels) +
                                            static_cast<std::ptrdiff_t>(c);
                        store_lanes(at, load_lanes<T>(at) + d[i]);
                    }
                });
            }
        }
    }
}

}  // namespace staticnet::kernels
