#pragma once
/// @file
/// `transpose`: dst = src^T for row-major float matrices with explicit row strides, blocked
/// on squares of one SIMD register (16 x 16 floats with AVX-512, 8 x 8 with AVX2) that are
/// transposed in registers. Used where a kernel needs a matrix the other way round: the
/// packing of a transposed B in `gemm`, and Winograd's transformed kernel for the input
/// gradient. A plain copy writes one of the two matrices a float at a time down a column
/// (a cache line touched per float); the squares read and write whole registers.

#include <cstddef>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../core/compat.hpp"

namespace staticnet::kernels {

/// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < columns.
inline void transpose(std::size_t rows, std::size_t columns, const float* src, std::size_t src_stride, float* dst,
                      std::size_t dst_stride) noexcept;

// ------------------------------------------------------------------ implementation

namespace detail {

#if defined(__AVX512F__)
inline constexpr std::size_t square_lanes = 16;
/// dst[q * dst_stride + r] = src[r * src_stride + q] for r, q < 16: sixteen loads, the
/// transpose in four rounds of shuffles (pairs of floats, of pairs, of 128-bit lanes twice),
/// sixteen stores.
inline void transpose_square(const float* src, std::size_t src_stride, float* dst, std::size_t dst_stride) noexcept {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * src_stride);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 16; i += 8)
        for (int q = 0; q < 4; ++q) {
            t[i + q] = _mm512_shuffle_f32x4(r[i + q], r[i + q + 4], 0x88);
            t[i + q + 4] = _mm512_shuffle_f32x4(r[i + q], r[i + q + 4], 0xdd);
        }
    for (int q = 0; q < 8; ++q) {
        r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
        r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xdd);
    }
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * dst_stride, r[i]);
}
#elif defined(__AVX2__)
inline constexpr std::size_t square_lanes = 8;
/// dst[q * dst_stride + r] = src[r * src_stride + q] for r, q < 8, in registers.
inline void transpose_square(const float* src, std::size_t src_stride, float* dst, std::size_t dst_stride) noexcept {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int q = 0; q < 4; ++q) {
        t[q] = _mm256_permute2f128_ps(r[q], r[q + 4], 0x20);
        t[q + 4] = _mm256_permute2f128_ps(r[q], r[q + 4], 0x31);
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * dst_stride, t[i]);
}
#endif

}  // namespace detail

inline void transpose(std::size_t rows, std::size_t columns, const float* src, std::size_t src_stride, float* dst,
                      std::size_t dst_stride) noexcept {
    std::size_t i = 0;
#if defined(__AVX512F__) || defined(__AVX2__)
    constexpr std::size_t lanes = simd::float_lanes;
    static_assert(lanes == detail::square_lanes, "a square is one register wide");
    // Bounds as multiples, not `i + lanes <= rows`: GCC warns that the sum may wrap.
    const std::size_t square_rows = rows / lanes * lanes, square_columns = columns / lanes * lanes;
    for (; i < square_rows; i += lanes) {
        for (std::size_t j = 0; j < square_columns; j += lanes)
            detail::transpose_square(src + i * src_stride + j, src_stride, dst + j * dst_stride + i, dst_stride);
        for (std::size_t j = square_columns; j < columns; ++j)
            for (std::size_t r = i; r < i + lanes; ++r) dst[j * dst_stride + r] = src[r * src_stride + j];
    }
#endif
    for (; i < rows; ++i)
        for (std::size_t j = 0; j < columns; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
}

}  // namespace staticnet::kernels
