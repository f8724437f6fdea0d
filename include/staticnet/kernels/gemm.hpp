#pragma once
/// @file
/// `gemm`: single-precision matrix product, the kernel behind convolution and dense layers.
///
///     C[m x n] = (accumulate ? C : 0) + op(A)[m x k] * op(B)[k x n]
///
/// All matrices are row-major with explicit leading dimensions; `op` reads a stored
/// matrix as is or transposed, which is what the backward passes need (dW = X^T dY,
/// dX = dY W^T). Threads split the output into tiles only, never the k reduction, so the
/// result is bitwise the same for any thread count.
///
/// How it is fast (the Goto/BLIS scheme, written for row-major C). Nearly all the time of a
/// CNN step is spent here, so this is the one place tuned for the cache hierarchy:
///
/// - A register-blocked micro-kernel computes an `mr x nr` tile of C, `nr` = two SIMD
///   registers wide, as `kc` rank-1 updates: per step it loads one row of B (two vectors),
///   broadcasts `mr` values of A and issues `2 mr` fused multiply-adds into accumulators that
///   stay in registers (12 x 32 with AVX-512's 32 registers, 6 x 16 with AVX2's 16). Loads
///   per FMA are few enough that the FMA units, not the loads, set the pace.
/// - B is packed, one `kc x nc` block at a time (sized for L2), into column panels `nr`
///   wide (one register wide for a narrow last panel, so n = 10 does not pay for 32
///   columns), zero-padded on the right. The packing applies op_b; every row sliver of A
///   reuses the block. When C has only a few rows, B is read in place instead (packing it
///   would cost as much as the product).
/// - A is read in place, an `mr x kc` sliver at a time: as rows for op::none, as columns
///   for op::transpose (the kernel is templated on the layout). A sliver is reused by
///   every panel of the block from L1; while the first panel runs, the kernel prefetches
///   the next sliver (rows) or the rows ahead (columns), which hides the memory latency
///   that otherwise costs a third of the time on large im2col matrices. A short last
///   sliver runs a kernel of its exact height, so nothing is read beyond the matrix.
/// - The C tile is prefetched for writing when a kernel starts, and partial tiles (n % nr)
///   go through a small buffer.
/// - k is cut into blocks of at most `kc` (depending on k and op_a only). Every element of
///   C is then the same sequence of FMAs and adds whatever the tiling or the thread split,
///   hence bitwise reproducible.
/// - The packing buffer is per thread, allocated once at its largest size on first use:
///   after warm-up a call allocates nothing.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "../core/compat.hpp"
#include "../core/thread_pool.hpp"
#include "transpose.hpp"

namespace staticnet::kernels {

enum class op : bool { none, transpose };

/// Row-major C = op(A) * op(B) (+ C when `accumulate`). `lda`/`ldb`/`ldc` are the row
/// strides of the matrices as stored. `pool` may be null (single thread).
inline void gemm(std::size_t m, std::size_t n, std::size_t k,
                 const float* a, std::size_t lda, op op_a,
                 const float* b, std::size_t ldb, op op_b,
                 float* c, std::size_t ldc, bool accumulate, thread_pool* pool = nullptr);

// ------------------------------------------------------------------ implementation

namespace detail {

using simd::float_batch;
inline constexpr std::size_t lanes = simd::float_lanes;

// Architectures with 32 vector registers (AVX-512, AArch64) hold a taller tile.
#if XSIMD_WITH_AVX512F || XSIMD_WITH_NEON64
inline constexpr std::size_t vector_registers = 32;
#else
inline constexpr std::size_t vector_registers = 16;
#endif

/// Rows of the micro-tile: 2 mr accumulators + 2 B vectors + 1 broadcast fit the registers
/// (with 32 registers, 8 and 10 measured about as fast as 12, 14 slower).
inline constexpr std::size_t mr = vector_registers >= 32 ? 12 : 6;
/// Columns of the micro-tile: two registers.
inline constexpr std::size_t nr = 2 * lanes;
/// Width of one packed B block: at most kc_max x nc_max floats (768 KiB), kept in L2.
inline constexpr std::size_t nc_max = 512 / nr * nr;
static_assert(nc_max >= nr && mr <= 16);

/// How an mr x kc sliver of op(A) lies in memory, `stride` floats between its rows or
/// columns: element (r, p) at [r * stride + p] (rows: op::none) or at [p * stride + r]
/// (columns: op::transpose).
enum class sliver : bool { rows, columns };

/// Depth of one k block. A row sliver (12 x 384 floats, 18 KiB) stays in L1 beside the
/// B panel's stream. A column sliver reads 12 floats from each of kc rows of A, up to two
/// cache lines per row, so it needs a shallower block to stay in L1 (128 measured best).
template <sliver Layout>
inline constexpr std::size_t kc_max = Layout == sliver::rows ? 384 : 128;
inline constexpr std::size_t kc_largest = std::max(kc_max<sliver::rows>, kc_max<sliver::columns>);

/// Up to this many rows of C (at most 4 slivers reuse a B panel), packing B costs more than
/// it saves: full panels are read where they lie (measured: dense forward with a batch of 32
/// +20%, k = 9 weight gradient +25%; packing wins from a few hundred rows on).
inline constexpr std::size_t direct_b_max_rows = 4 * mr;
/// How far ahead (in k steps) a kernel reading a column sliver prefetches it.
inline constexpr std::size_t prefetch_distance = 16;
/// Below this many multiply-adds per thread, waking another thread costs more than it saves.
inline constexpr std::size_t min_fma_per_thread = std::size_t{1} << 19;

/// Per-thread packing buffer for B, allocated once at its largest size (not zeroed:
/// packing writes every element the kernel reads).
struct pack_buffer {
    struct deleter {
        void operator()(float* p) const noexcept { ::operator delete(p, std::align_val_t{64}); }
    };
    std::unique_ptr<float, deleter> floats{
        static_cast<float*>(::operator new(kc_largest * nc_max * sizeof(float), std::align_val_t{64}))};

    static float* local() {
        static thread_local pack_buffer buffer;
        return buffer.floats.get();
    }
};

/// Asks for the cache line at `address`. An integer, because a prefetch may point past
/// the matrix (the next sliver of the last one): harmless, a prefetch never faults.
inline void prefetch(std::uintptr_t address) noexcept {
    __builtin_prefetch(reinterpret_cast<const void*>(address), 0, 3);
}

/// C[MR x NV*lanes] (+)= A[MR x kc] * B[kc x NV*lanes]: kc rank-1 updates into register
/// accumulators, then one pass over C (`add` adds to C, else overwrites it). B rows are
/// `b_stride` apart (a packed panel or B in place); A is a sliver with `a_stride`.
/// `Prefetch` (the first panel of a sliver) also pulls in what the next kernels read of A.
template <std::size_t MR, std::size_t NV, sliver Layout, bool Prefetch>
inline void micro_kernel(std::size_t kc, const float* __restrict a, std::size_t a_stride, const float* __restrict b,
                         std::size_t b_stride, float* c, std::size_t ldc, bool add) noexcept {
    float_batch acc[MR][NV];
#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] = float_batch(0.0f);
    // The C tile, for writing: its misses overlap the k loop instead of stalling the final
    // stores (this matters when kc is small and C large, e.g. im2col with k = 9).
#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (std::size_t v = 0; v < NV; ++v) __builtin_prefetch(c + r * ldc + v * lanes, 1, 3);

    // Rows: one pointer per group of three rows, advanced a float per step, so that each
    // row is `group + {0, 1, 2} * stride`, an x86 addressing mode: fewer live registers than
    // a pointer per row. Columns: one pointer, advanced a stride per step.
    constexpr std::size_t groups = Layout == sliver::rows ? (MR + 2) / 3 : 1;
    const float* group[groups];
#pragma GCC unroll 8
    for (std::size_t g = 0; g < groups; ++g) group[g] = a + 3 * g * a_stride;

    // Prefetch cursor. Rows: walks the next sliver row by row, a cache line per step (a
    // sliver has 12 x kc/16 lines, fewer than kc steps). Columns: prefetch_distance rows ahead.
    const std::size_t stride_bytes = a_stride * sizeof(float);
    [[maybe_unused]] std::uintptr_t pf_row = reinterpret_cast<std::uintptr_t>(a) +
                                             (Layout == sliver::rows ? MR : prefetch_distance) * stride_bytes;
    [[maybe_unused]] std::uintptr_t pf = pf_row;
    [[maybe_unused]] std::uintptr_t pf_row_end = pf_row + kc * sizeof(float);
    [[maybe_unused]] std::size_t pf_rows_left = MR;

    for (std::size_t p = 0; p < kc; ++p) {
        if constexpr (Prefetch && Layout == sliver::rows) {
            if (pf_rows_left != 0) {
                prefetch(pf);
                pf += 64;
                if (pf >= pf_row_end) {
                    pf_row += stride_bytes;
                    pf_row_end += stride_bytes;
                    pf = pf_row;
                    --pf_rows_left;
                }
            }
        } else if constexpr (Prefetch) {
            prefetch(pf);
            prefetch(pf + (MR - 1) * sizeof(float));  // the row may straddle two lines
            pf += stride_bytes;
        }
        float_batch bv[NV];
#pragma GCC unroll 2
        for (std::size_t v = 0; v < NV; ++v) bv[v] = float_batch::load_unaligned(b + p * b_stride + v * lanes);
#pragma GCC unroll 16
        for (std::size_t r = 0; r < MR; ++r) {
            const float_batch ar(Layout == sliver::rows ? group[r / 3][r % 3 * a_stride] : group[0][r]);
#pragma GCC unroll 2
            for (std::size_t v = 0; v < NV; ++v) acc[r][v] = simd::fma(ar, bv[v], acc[r][v]);
        }
#pragma GCC unroll 8
        for (std::size_t g = 0; g < groups; ++g) group[g] += Layout == sliver::rows ? 1 : a_stride;
    }

#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (std::size_t v = 0; v < NV; ++v) {
            float* cp = c + r * ldc + v * lanes;
            if (add)
                (float_batch::load_unaligned(cp) + acc[r][v]).store_unaligned(cp);
            else
                acc[r][v].store_unaligned(cp);
        }
}

/// `rows` (1..mr) rows of C against one B panel, by the kernel of exactly that height: A
/// is read in place, so a short last sliver cannot be padded. Each element of C is the same
/// FMA sequence whichever kernel computes it.
template <std::size_t NV, sliver Layout, bool Prefetch, std::size_t... H>
inline void tile_rows(std::size_t rows, std::size_t kc, const float* a, std::size_t a_stride, const float* b,
                      std::size_t b_stride, float* c, std::size_t ldc, bool add, std::index_sequence<H...>) noexcept {
    if (rows == mr) {
        micro_kernel<mr, NV, Layout, Prefetch>(kc, a, a_stride, b, b_stride, c, ldc, add);
        return;
    }
    // Heights 1..mr-1: only the last sliver, so there is nothing further to prefetch.
    (void)((rows == H + 1 && (micro_kernel<H + 1, NV, Layout, false>(kc, a, a_stride, b, b_stride, c, ldc, add), true)) ||
           ...);
}

/// Width of the packed panel that holds `cols` (<= nr) columns: one register if they fit.
constexpr std::size_t panel_width(std::size_t cols) noexcept { return cols <= lanes ? lanes : nr; }

/// `rows` x `cols` (<= mr x nr) of C from one sliver of A and one B panel `width` wide.
/// A tile narrower than its panel goes through a buffer (the panel is zero-padded, C is not).
template <sliver Layout, bool Prefetch>
inline void tile(std::size_t rows, std::size_t cols, std::size_t width, std::size_t kc, const float* a,
                 std::size_t a_stride, const float* b, std::size_t b_stride, float* c, std::size_t ldc,
                 bool add) noexcept {
    constexpr auto heights = std::make_index_sequence<mr - 1>{};
    if (cols == width) {
        if (width == nr)
            tile_rows<2, Layout, Prefetch>(rows, kc, a, a_stride, b, b_stride, c, ldc, add, heights);
        else
            tile_rows<1, Layout, Prefetch>(rows, kc, a, a_stride, b, b_stride, c, ldc, add, heights);
        return;
    }
    alignas(64) float buffer[mr * nr];
    if (width == nr)
        tile_rows<2, Layout, Prefetch>(rows, kc, a, a_stride, b, b_stride, buffer, nr, false, heights);
    else
        tile_rows<1, Layout, Prefetch>(rows, kc, a, a_stride, b, b_stride, buffer, nr, false, heights);
    for (std::size_t r = 0; r < rows; ++r) {
        float* cr = c + r * ldc;
        const float* br = buffer + r * nr;
        if (add)
            for (std::size_t j = 0; j < cols; ++j) cr[j] += br[j];
        else
            for (std::size_t j = 0; j < cols; ++j) cr[j] = br[j];
    }
}

/// Packs rows [p0, p0 + kc) x columns [j0, j0 + cols) of op(B) into consecutive panels,
/// each `panel_width` wide and kc rows deep, zero-padded on the right.
inline void pack_b(const float* b, std::size_t ldb, op op_b, std::size_t p0, std::size_t kc, std::size_t j0,
                   std::size_t cols, float* __restrict dst) noexcept {
    for (std::size_t jp = 0; jp < cols; jp += nr) {
        const std::size_t w = std::min(nr, cols - jp);
        const std::size_t width = panel_width(w);
        float* panel = dst + jp * kc;
        if (op_b == op::none) {
            for (std::size_t p = 0; p < kc; ++p) {
                const float* src = b + (p0 + p) * ldb + j0 + jp;
                float* d = panel + p * width;
                if (w == width) {
                    // One or two registers: a memcpy here compiled to `rep movsq`, whose start-up
                    // cost per row was 4% of a ResNet step (its products have 32-64 columns).
                    for (std::size_t j = 0; j < width; j += lanes) float_batch::load_unaligned(src + j).store_unaligned(d + j);
                } else {
                    for (std::size_t j = 0; j < w; ++j) d[j] = src[j];
                    for (std::size_t j = w; j < width; ++j) d[j] = 0.0f;
                }
            }
            continue;
        }
        // op(B) = B transposed: a row of the panel is a column of the stored B, so the panel
        // is the transpose of w stored rows (kernels/transpose.hpp: in-register squares,
        // a fifth of the time (perf samples) of the hardware gathers this used before, which were
        // 17% of a ResNet-18 step here: the transposed weights of every input gradient).
        transpose(w, kc, b + (j0 + jp) * ldb + p0, ldb, panel, width);
        for (std::size_t p = 0; p < kc; ++p)
            for (std::size_t jj = w; jj < width; ++jj) panel[p * width + jj] = 0.0f;
    }
}

/// Whether `workers` threads split C by rows (else by columns), from the work of the
/// busiest thread in multiply-adds. Its tiles cost mr x lanes x k each either way. Split by
/// rows, every thread packs the whole of B (unless its rows are few enough to read B in
/// place); split by columns, a thread packs only its columns of B but streams all of A.
/// Packing a float costs roughly 3 multiply-adds' time transposed (a share of a register
/// transpose) and 2 as is (a copy), streaming one 1. Rough figures: they decide only where
/// one split would repeat a large B, such as the 7x7 stem's weight gradient (13 row slivers
/// of 12, B the 1024 x 64 output gradient of an image).
inline bool split_rows(std::size_t m, std::size_t n, std::size_t k, op op_b, std::size_t workers) noexcept {
    const std::size_t slivers = (m + mr - 1) / mr, groups = (n + lanes - 1) / lanes;
    const std::size_t tile = mr * lanes * k;
    const std::size_t pack = op_b == op::transpose ? 3 : 2;
    const std::size_t rows_each = (slivers + workers - 1) / workers;
    const bool rows_pack = !(op_b == op::none && rows_each * mr <= direct_b_max_rows);
    const bool columns_pack = !(op_b == op::none && m <= direct_b_max_rows);
    const std::size_t by_rows = rows_each * groups * tile + (rows_pack ? pack * k * n : 0) + rows_each * mr * k;
    const std::size_t by_columns = slivers * ((groups + workers - 1) / workers) * tile +
                                   (columns_pack ? pack * k * ((groups + workers - 1) / workers) * lanes : 0) + m * k;
    return by_rows <= by_columns;
}

/// The single-threaded algorithm on a sub-matrix of C (A, B and C already offset to it).
template <sliver Layout>
inline void gemm_serial(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                        const float* b, std::size_t ldb, op op_b, float* c, std::size_t ldc, bool accumulate) {
    float* b_packed = pack_buffer::local();
    // Even k blocks: a function of k and the layout alone, never of the split of C.
    const std::size_t k_blocks = (k + kc_max<Layout> - 1) / kc_max<Layout>;
    const bool direct_b = op_b == op::none && m <= direct_b_max_rows;
    for (std::size_t jc = 0; jc < n; jc += nc_max) {
        const std::size_t cols = std::min(nc_max, n - jc);
        // Read in place, a last panel narrower than its register width still needs packing
        // (zero padding).
        const std::size_t last = cols % nr;
        const bool pack_last = direct_b && last != 0 && last != panel_width(last);
        for (std::size_t kb = 0; kb < k_blocks; ++kb) {
            const std::size_t p0 = k * kb / k_blocks;
            const std::size_t kc = k * (kb + 1) / k_blocks - p0;
            const bool add = accumulate || kb > 0;
            if (!direct_b)
                pack_b(b, ldb, op_b, p0, kc, jc, cols, b_packed);
            else if (pack_last)
                pack_b(b, ldb, op_b, p0, kc, jc + cols - last, last, b_packed);
            for (std::size_t i = 0; i < m; i += mr) {
                const std::size_t rows = std::min(mr, m - i);
                const float* as = Layout == sliver::rows ? a + i * lda + p0 : a + p0 * lda + i;
                float* ct = c + i * ldc + jc;
                for (std::size_t jp = 0; jp < cols; jp += nr) {
                    const std::size_t w = std::min(nr, cols - jp);
                    const std::size_t width = panel_width(w);
                    const bool in_place = direct_b && w == width;
                    const float* panel = in_place ? b + p0 * ldb + jc + jp : b_packed + (direct_b ? 0 : jp * kc);
                    const std::size_t panel_stride = in_place ? ldb : width;
                    // The first panel streams the sliver from memory and prefetches; the
                    // others find it in L1.
                    if (jp == 0)
                        tile<Layout, true>(rows, w, width, kc, as, lda, panel, panel_stride, ct + jp, ldc, add);
                    else
                        tile<Layout, false>(rows, w, width, kc, as, lda, panel, panel_stride, ct + jp, ldc, add);
                }
            }
        }
    }
}

inline void gemm_serial(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, op op_a,
                        const float* b, std::size_t ldb, op op_b, float* c, std::size_t ldc, bool accumulate) {
    if (op_a == op::none)
        gemm_serial<sliver::rows>(m, n, k, a, lda, b, ldb, op_b, c, ldc, accumulate);
    else
        gemm_serial<sliver::columns>(m, n, k, a, lda, b, ldb, op_b, c, ldc, accumulate);
}

}  // namespace detail

inline void gemm(std::size_t m, std::size_t n, std::size_t k,
                 const float* a, std::size_t lda, op op_a,
                 const float* b, std::size_t ldb, op op_b,
                 float* c, std::size_t ldc, bool accumulate, thread_pool* pool) {
    using namespace detail;
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (std::size_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, 0.0f);
        return;
    }
    const std::size_t fmas = m * n * k;
    std::size_t workers = pool == nullptr ? 1 : std::min(pool->size(), std::max<std::size_t>(1, fmas / min_fma_per_thread));
    if (workers <= 1) {
        gemm_serial(m, n, k, a, lda, op_a, b, ldb, op_b, c, ldc, accumulate);
        return;
    }
    // Split C into row slivers or register-wide column groups, whichever costs the busiest
    // thread less; rows win ties (each thread then reads only its own rows of A).
    const std::size_t slivers = (m + mr - 1) / mr;
    const std::size_t groups = (n + lanes - 1) / lanes;
    if (split_rows(m, n, k, op_b, workers)) {
        pool->run([&](std::size_t w, std::size_t count) {
            const std::size_t i0 = std::min(m, slivers * w / count * mr);
            const std::size_t i1 = std::min(m, slivers * (w + 1) / count * mr);
            if (i0 < i1)
                gemm_serial(i1 - i0, n, k, op_a == op::none ? a + i0 * lda : a + i0, lda, op_a, b, ldb, op_b,
                            c + i0 * ldc, ldc, accumulate);
        }, std::min(workers, slivers));
    } else {
        pool->run([&](std::size_t w, std::size_t count) {
            const std::size_t j0 = std::min(n, groups * w / count * lanes);
            const std::size_t j1 = std::min(n, groups * (w + 1) / count * lanes);
            if (j0 < j1)
                gemm_serial(m, j1 - j0, k, a, lda, op_a, op_b == op::none ? b + j0 : b + j0 * ldb, ldb, op_b,
                            c + j0, ldc, accumulate);
        }, std::min(workers, groups));
    }
}

}  // namespace staticnet::kernels
