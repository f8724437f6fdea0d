#pragma once
/// @file
/// Winograd's minimal filtering F(2x2, 3x3) for channels-last (NHWC) 3x3 convolutions with
/// stride 1: the transforms around the products, and their adjoints for the backward pass.
///
/// A 2x2 block of output pixels (a *tile*) needs a 4x4 patch of the input. Per tile and
/// channel pair, Winograd's identity (Lavin and Gray, "Fast Algorithms for Convolutional
/// Neural Networks", 2016) computes the block as
///
///     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
///
/// with 16 multiplications instead of 36 (g: the 3x3 kernel, d: the patch, (.) elementwise).
/// Summed over input channels, the 16 products become 16 independent matrix products:
///
///     M[p] (tiles x filters) = V[p] (tiles x channels) * U[p] (channels x filters),  p < 16
///
/// V = B^T d B is the *input transform*, U = G g G^T the *kernel transform*, Y = A^T M A the
/// *output transform*. The layer runs the 16 products with `gemm`, so a convolution does
/// 2.25 times fewer multiply-adds than im2col's product, and writes 16/9 floats of V per
/// input float instead of im2col's 9.
///
/// Backward is the adjoint of that computation, so it is the exact gradient of what forward
/// computed (finite differences agree with it as with any layer):
///
///     dM[p] = A dY A^T,  dV[p] = dM[p] * U[p]^T,  dU[p] = V[p]^T * dM[p],
///     dd = B dV B^T (patches overlap: summed into the input gradient),  dg = G^T dU G.
///
/// The transforms use only additions, subtractions and multiplications by 1/2 (exact), so
/// the vector and scalar code paths give bitwise the same values. Their matrices:
///
///     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
///     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
///     A^T = [1 1 1 0; 0 1 -1 -1]
///
/// Layouts: V and dV are 16 matrices [tiles x channels], M and dM 16 matrices [tiles x
/// filters], each `tiles` rows long (`matrix_stride = tiles * width` floats apart); U and dU
/// are 16 matrices [channels x filters]. Tiles are numbered image by image, row by row.
/// Plain functions of the sizes, not templates of them: every layer shares one copy.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "../core/compat.hpp"
#include "im2col.hpp"

namespace staticnet::kernels {

/// Tiles (2x2 output blocks) of one image.
[[nodiscard]] constexpr std::size_t winograd_tiles_per_image(const window_geometry& g) noexcept {
    return ((g.out_height + 1) / 2) * ((g.out_width + 1) / 2);
}

/// U[p] = (G g G^T)[p] for every (channel, filter) of a Keras kernel [3, 3, channels, filters].
inline void winograd_transform_kernel(const float* kernel, std::size_t channels, std::size_t filters, float* u) noexcept;

/// kernel_gradient += G^T dU G: the kernel's gradient from dU (16 x [channels x filters]).
inline void winograd_add_kernel_gradient(const float* du, std::size_t channels, std::size_t filters,
                                         float* kernel_gradient) noexcept;

/// V rows [first_tile, ...) for `images` images at `in` (zeros beyond the borders).
inline void winograd_transform_input(const window_geometry& g, const float* in, std::size_t images, float* v,
                                     std::size_t first_tile, std::size_t tiles) noexcept;

/// The output pixels of `images` images from M rows [first_tile, ...).
inline void winograd_transform_output(const window_geometry& g, std::size_t filters, const float* m, std::size_t first_tile,
                                      std::size_t tiles, std::size_t images, float* out) noexcept;

/// dM rows [first_tile, ...) from the output gradient of `images` images (A dY A^T).
inline void winograd_transform_output_gradient(const window_geometry& g, std::size_t filters, const float* dout,
                                               std::size_t images, float* dm, std::size_t first_tile,
                                               std::size_t tiles) noexcept;

/// The input gradient of `images` images (overwritten) from dV rows [first_tile, ...):
/// B dV B^T, overlapping patches summed in tile order.
inline void winograd_transform_input_gradient(const window_geometry& g, const float* dv, std::size_t first_tile,
                                              std::size_t tiles, std::size_t images, float* din) noexcept;

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
/// then for every element left (T = float): the same operations either way.
template <typename F>
void for_lanes(std::size_t n, F&& f) {
    constexpr std::size_t lanes = simd::float_lanes;
    const std::size_t whole = n / lanes * lanes;
    for (std::size_t i = 0; i < whole; i += lanes) f.template operator()<simd::float_batch>(i);
    for (std::size_t i = whole; i < n; ++i) f.template operator()<float>(i);
}

/// B^T x for a column of four values (in place).
template <typename T>
void input_1d(T& x0, T& x1, T& x2, T& x3) noexcept {
    const T y0 = x0 - x2, y1 = x1 + x2, y2 = x2 - x1, y3 = x1 - x3;
    x0 = y0, x1 = y1, x2 = y2, x3 = y3;
}

/// B x for four values (in place): the adjoint of `input_1d`.
template <typename T>
void input_adjoint_1d(T& x0, T& x1, T& x2, T& x3) noexcept {
    const T y0 = x0, y1 = x1 - x2 + x3, y2 = x1 + x2 - x0, y3 = -x3;
    x0 = y0, x1 = y1, x2 = y2, x3 = y3;
}

/// G x for three values, giving four.
template <typename T>
void kernel_1d(const T& x0, const T& x1, const T& x2, T* y) noexcept {
    const T half(0.5f), outer = x0 + x2;
    y[0] = x0, y[1] = (outer + x1) * half, y[2] = (outer - x1) * half, y[3] = x2;
}

/// G^T x for four values, giving three: the adjoint of `kernel_1d`.
template <typename T>
void kernel_adjoint_1d(const T& x0, const T& x1, const T& x2, const T& x3, T* y) noexcept {
    const T half(0.5f), sum = (x1 + x2) * half;
    y[0] = x0 + sum, y[1] = (x1 - x2) * half, y[2] = sum + x3;
}

/// Where a tile's patch starts in the (unpadded) image, and how much of it lies inside.
struct patch {
    std::ptrdiff_t y0, x0;
    bool row_inside[4], column_inside[4];
};

inline patch patch_of(const window_geometry& g, std::size_t ty, std::size_t tx) noexcept {
    patch p;
    p.y0 = static_cast<std::ptrdiff_t>(2 * ty) - static_cast<std::ptrdiff_t>(g.pad_top);
    p.x0 = static_cast<std::ptrdiff_t>(2 * tx) - static_cast<std::ptrdiff_t>(g.pad_left);
    for (std::ptrdiff_t i = 0; i < 4; ++i) {
        p.row_inside[i] = p.y0 + i >= 0 && p.y0 + i < static_cast<std::ptrdiff_t>(g.height);
        p.column_inside[i] = p.x0 + i >= 0 && p.x0 + i < static_cast<std::ptrdiff_t>(g.width);
    }
    return p;
}

}  // namespace detail::winograd

inline void winograd_transform_kernel(const float* kernel, std::size_t channels, std::size_t filters, float* u) noexcept {
    using namespace detail::winograd;
    const std::size_t tap = channels * filters;  // floats between kernel taps, and between U matrices
    for (std::size_t c = 0; c < channels; ++c)
        for_lanes(filters, [&]<typename T>(std::size_t f) {
            const float* g = kernel + c * filters + f;
            T rows[4][3];  // G g: four rows of three
            for (std::size_t kx = 0; kx < 3; ++kx) {
                T column[4];
                kernel_1d(load_lanes<T>(g + kx * tap), load_lanes<T>(g + (3 + kx) * tap), load_lanes<T>(g + (6 + kx) * tap), column);
                for (std::size_t i = 0; i < 4; ++i) rows[i][kx] = column[i];
            }
            for (std::size_t i = 0; i < 4; ++i) {
                T row[4];
                kernel_1d(rows[i][0], rows[i][1], rows[i][2], row);
                for (std::size_t j = 0; j < 4; ++j) store_lanes(u + (4 * i + j) * tap + c * filters + f, row[j]);
            }
        });
}

inline void winograd_add_kernel_gradient(const float* du, std::size_t channels, std::size_t filters,
                                         float* kernel_gradient) noexcept {
    using namespace detail::winograd;
    const std::size_t tap = channels * filters;
    for (std::size_t c = 0; c < channels; ++c)
        for_lanes(filters, [&]<typename T>(std::size_t f) {
            const float* d = du + c * filters + f;
            T rows[4][3];  // dU G: four rows of three
            for (std::size_t i = 0; i < 4; ++i) {
                T row[3];
                kernel_adjoint_1d(load_lanes<T>(d + (4 * i) * tap), load_lanes<T>(d + (4 * i + 1) * tap), load_lanes<T>(d + (4 * i + 2) * tap),
                                  load_lanes<T>(d + (4 * i + 3) * tap), row);
                for (std::size_t kx = 0; kx < 3; ++kx) rows[i][kx] = row[kx];
            }
            for (std::size_t kx = 0; kx < 3; ++kx) {
                T column[3];
                kernel_adjoint_1d(rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx], column);
                for (std::size_t ky = 0; ky < 3; ++ky) {
                    float* at = kernel_gradient + (3 * ky + kx) * tap + c * filters + f;
                    store_lanes(at, load_lanes<T>(at) + column[ky]);
                }
            }
        });
}

inline void winograd_transform_input(const window_geometry& g, const float* in, std::size_t images, float* v,
                                     std::size_t first_tile, std::size_t tiles) noexcept {
    using namespace detail::winograd;
    const std::size_t channels = g.channels, matrix_stride = tiles * channels;
    const std::size_t tiles_y = (g.out_height + 1) / 2, tiles_x = (g.out_width + 1) / 2;
    std::size_t tile = first_tile;
    for (std::size_t n = 0; n < images; ++n) {
        const float* image = in + n * g.image_size();
        for (std::size_t ty = 0; ty < tiles_y; ++ty)
            for (std::size_t tx = 0; tx < tiles_x; ++tx, ++tile) {
                const patch p = patch_of(g, ty, tx);
                float* out = v + tile * channels;
                for_lanes(channels, [&]<typename T>(std::size_t c) {
                    T d[4][4];
                    for (std::size_t i = 0; i < 4; ++i)
                        for (std::size_t j = 0; j < 4; ++j)
                            d[i][j] = p.row_inside[i] && p.column_inside[j]
                                          ? load_lanes<T>(image + ((p.y0 + static_cast<std::ptrdiff_t>(i)) * static_cast<std::ptrdiff_t>(g.width) +
                                                             p.x0 + static_cast<std::ptrdiff_t>(j)) * static_cast<std::ptrdiff_t>(channels) +
                                                    static_cast<std::ptrdiff_t>(c))
                                          : T(0.0f);
                    for (std::size_t j = 0; j < 4; ++j) input_1d(d[0][j], d[1][j], d[2][j], d[3][j]);
                    for (std::size_t i = 0; i < 4; ++i) {
                        input_1d(d[i][0], d[i][1], d[i][2], d[i][3]);
                        for (std::size_t j = 0; j < 4; ++j) store_lanes(out + (4 * i + j) * matrix_stride + c, d[i][j]);
                    }
                });
            }
    }
}

inline void winograd_transform_output(const window_geometry& g, std::size_t filters, const float* m, std::size_t first_tile,
                                      std::size_t tiles, std::size_t images, float* out) noexcept {
    using namespace detail::winograd;
    const std::size_t matrix_stride = tiles * filters;
    const std::size_t tiles_y = (g.out_height + 1) / 2, tiles_x = (g.out_width + 1) / 2;
    const std::size_t image_size = g.out_height * g.out_width * filters;
    std::size_t tile = first_tile;
    for (std::size_t n = 0; n < images; ++n)
        for (std::size_t ty = 0; ty < tiles_y; ++ty)
            for (std::size_t tx = 0; tx < tiles_x; ++tx, ++tile) {
                const float* src = m + tile * filters;
                const bool second_row = 2 * ty + 1 < g.out_height, second_column = 2 * tx + 1 < g.out_width;
                float* dst = out + n * image_size + (2 * ty * g.out_width + 2 * tx) * filters;
                for_lanes(filters, [&]<typename T>(std::size_t f) {
                    T s[2][4];  // A^T M: two rows of four
                    for (std::size_t j = 0; j < 4; ++j) {
                        const T m0 = load_lanes<T>(src + j * matrix_stride + f), m1 = load_lanes<T>(src + (4 + j) * matrix_stride + f),
                                m2 = load_lanes<T>(src + (8 + j) * matrix_stride + f), m3 = load_lanes<T>(src + (12 + j) * matrix_stride + f);
                        s[0][j] = m0 + m1 + m2;
                        s[1][j] = m1 - m2 - m3;
                    }
                    for (std::size_t a = 0; a < (second_row ? 2u : 1u); ++a) {
                        float* row = dst + a * g.out_width * filters + f;
                        store_lanes(row, s[a][0] + s[a][1] + s[a][2]);
                        if (second_column) store_lanes(row + filters, s[a][1] - s[a][2] - s[a][3]);
                    }
                });
            }
}

inline void winograd_transform_output_gradient(const window_geometry& g, std::size_t filters, const float* dout,
                                               std::size_t images, float* dm, std::size_t first_tile,
                                               std::size_t tiles) noexcept {
    using namespace detail::winograd;
    const std::size_t matrix_stride = tiles * filters;
    const std::size_t tiles_y = (g.out_height + 1) / 2, tiles_x = (g.out_width + 1) / 2;
    const std::size_t image_size = g.out_height * g.out_width * filters;
    std::size_t tile = first_tile;
    for (std::size_t n = 0; n < images; ++n)
        for (std::size_t ty = 0; ty < tiles_y; ++ty)
            for (std::size_t tx = 0; tx < tiles_x; ++tx, ++tile) {
                float* dst = dm + tile * filters;
                const bool second_row = 2 * ty + 1 < g.out_height, second_column = 2 * tx + 1 < g.out_width;
                const float* src = dout + n * image_size + (2 * ty * g.out_width + 2 * tx) * filters;
                for_lanes(filters, [&]<typename T>(std::size_t f) {
                    T e[2][4];  // dY A^T: two rows of four
                    for (std::size_t a = 0; a < 2; ++a) {
                        const float* row = src + a * g.out_width * filters + f;
                        const bool inside = a == 0 || second_row;
                        const T y0 = inside ? load_lanes<T>(row) : T(0.0f);
                        const T y1 = inside && second_column ? load_lanes<T>(row + filters) : T(0.0f);
                        e[a][0] = y0, e[a][1] = y0 + y1, e[a][2] = y0 - y1, e[a][3] = -y1;
                    }
                    for (std::size_t j = 0; j < 4; ++j) {
                        store_lanes(dst + j * matrix_stride + f, e[0][j]);
                        store_lanes(dst + (4 + j) * matrix_stride + f, e[0][j] + e[1][j]);
                        store_lanes(dst + (8 + j) * matrix_stride + f, e[0][j] - e[1][j]);
                        store_lanes(dst + (12 + j) * matrix_stride + f, -e[1][j]);
                    }
                });
            }
}

inline void winograd_transform_input_gradient(const window_geometry& g, const float* dv, std::size_t first_tile,
                                              std::size_t tiles, std::size_t images, float* din) noexcept {
    using namespace detail::winograd;
    const std::size_t channels = g.channels, matrix_stride = tiles * channels;
    const std::size_t tiles_y = (g.out_height + 1) / 2, tiles_x = (g.out_width + 1) / 2;
    std::memset(din, 0, images * g.image_size() * sizeof(float));
    std::size_t tile = first_tile;
    for (std::size_t n = 0; n < images; ++n) {
        float* image = din + n * g.image_size();
        for (std::size_t ty = 0; ty < tiles_y; ++ty)
            for (std::size_t tx = 0; tx < tiles_x; ++tx, ++tile) {
                const patch p = patch_of(g, ty, tx);
                const float* src = dv + tile * channels;
                for_lanes(channels, [&]<typename T>(std::size_t c) {
                    T d[4][4];
                    for (std::size_t i = 0; i < 4; ++i) {
                        for (std::size_t j = 0; j < 4; ++j) d[i][j] = load_lanes<T>(src + (4 * i + j) * matrix_stride + c);
                        input_adjoint_1d(d[i][0], d[i][1], d[i][2], d[i][3]);
                    }
                    for (std::size_t j = 0; j < 4; ++j) input_adjoint_1d(d[0][j], d[1][j], d[2][j], d[3][j]);
                    for (std::size_t i = 0; i < 4; ++i) {
                        if (!p.row_inside[i]) continue;
                        for (std::size_t j = 0; j < 4; ++j) {
                            if (!p.column_inside[j]) continue;
                            float* at = image + ((p.y0 + static_cast<std::ptrdiff_t>(i)) * static_cast<std::ptrdiff_t>(g.width) +
                                                 p.x0 + static_cast<std::ptrdiff_t>(j)) * static_cast<std::ptrdiff_t>(channels) +
                                        static_cast<std::ptrdiff_t>(c);
                            store_lanes(at, load_lanes<T>(at) + d[i][j]);
                        }
                    }
                });
            }
    }
}

}  // namespace staticnet::kernels
