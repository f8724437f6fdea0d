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

#include <cstddef>

#include "../core/thread_pool.hpp"

namespace staticnet::kernels {

enum class op : bool { none, transpose };

/// Row-major C = op(A) * op(B) (+ C when `accumulate`). `lda`/`ldb`/`ldc` are the row
/// strides of the matrices as stored. `pool` may be null (single thread).
inline void gemm(std::size_t m, std::size_t n, std::size_t k,
                 const float* a, std::size_t lda, op op_a,
                 const float* b, std::size_t ldb, op op_b,
                 float* c, std::size_t ldc, bool accumulate, thread_pool* pool = nullptr);

// ------------------------------------------------------------------ implementation

inline void gemm(std::size_t m, std::size_t n, std::size_t k,
                 const float* a, std::size_t lda, op op_a,
                 const float* b, std::size_t ldb, op op_b,
                 float* c, std::size_t ldc, bool accumulate, thread_pool* pool) {
    auto rows = [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
            float* ci = c + i * ldc;
            if (!accumulate)
                for (std::size_t j = 0; j < n; ++j) ci[j] = 0.0f;
            for (std::size_t p = 0; p < k; ++p) {
                const float aip = op_a == op::none ? a[i * lda + p] : a[p * lda + i];
                if (op_b == op::none) {
                    const float* bp = b + p * ldb;
                    for (std::size_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
                } else {
                    for (std::size_t j = 0; j < n; ++j) ci[j] += aip * b[j * ldb + p];
                }
            }
        }
    };
    if (pool != nullptr)
        pool->parallel_for(m, rows, 16);
    else
        rows(0, m);
}

}  // namespace staticnet::kernels
