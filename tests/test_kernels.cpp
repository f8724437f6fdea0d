// SIMD kernels against plain scalar references on random data.
#include <catch2/catch.hpp>

#include <staticnet/core/random.hpp>
#include <staticnet/kernels/gemm.hpp>

#include <cmath>
#include <vector>

namespace sn = staticnet;
namespace k = staticnet::kernels;

namespace {

std::vector<float> random_vector(std::size_t n, sn::rng& g) {
    std::vector<float> v(n);
    for (auto& x : v) x = g.uniform(-1.0f, 1.0f);
    return v;
}

// C = op(A) op(B) in double precision, the reference every gemm variant is checked against.
std::vector<double> reference_gemm(std::size_t m, std::size_t n, std::size_t kk, const std::vector<float>& a,
                                   k::op op_a, const std::vector<float>& b, k::op op_b) {
    std::vector<double> c(m * n, 0.0);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0;
            for (std::size_t p = 0; p < kk; ++p) {
                const double x = op_a == k::op::none ? a[i * kk + p] : a[p * m + i];
                const double y = op_b == k::op::none ? b[p * n + j] : b[j * kk + p];
                s += x * y;
            }
            c[i * n + j] = s;
        }
    return c;
}

}  // namespace

TEST_CASE("gemm matches the scalar reference for every transpose and awkward sizes", "[kernels][gemm]") {
    sn::rng g(42);
    sn::thread_pool pool(2);
    const std::size_t sizes[][3] = {{1, 1, 1}, {1, 17, 3}, {7, 1, 5}, {6, 16, 9}, {13, 33, 29}, {64, 64, 64}, {97, 45, 130}};
    for (auto [m, n, kk] : sizes)
        for (auto op_a : {k::op::none, k::op::transpose})
            for (auto op_b : {k::op::none, k::op::transpose})
                for (bool accumulate : {false, true}) {
                    auto a = random_vector(m * kk, g);
                    auto b = random_vector(kk * n, g);
                    auto c = random_vector(m * n, g);
                    auto ref = reference_gemm(m, n, kk, a, op_a, b, op_b);
                    if (accumulate)
                        for (std::size_t i = 0; i < m * n; ++i) ref[i] += c[i];
                    const std::size_t lda = op_a == k::op::none ? kk : m;
                    const std::size_t ldb = op_b == k::op::none ? n : kk;
                    k::gemm(m, n, kk, a.data(), lda, op_a, b.data(), ldb, op_b, c.data(), n, accumulate, &pool);
                    INFO("m=" << m << " n=" << n << " k=" << kk << " accumulate=" << accumulate);
                    for (std::size_t i = 0; i < m * n; ++i)
                        REQUIRE(std::abs(c[i] - ref[i]) <= 1e-5 * (1.0 + std::sqrt(double(kk))) + 1e-5 * std::abs(ref[i]));
                }
}
