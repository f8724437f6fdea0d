// SIMD kernels against plain scalar references on random data.
#include <catch2/catch.hpp>

#include <staticnet/core/random.hpp>
#include <staticnet/kernels/direct_conv.hpp>
#include <staticnet/kernels/elementwise.hpp>
#include <staticnet/kernels/gemm.hpp>
#include <staticnet/kernels/im2col.hpp>
#include <staticnet/kernels/normalization.hpp>
#include <staticnet/kernels/transpose.hpp>
#include <staticnet/layers/activations.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <cstring>
#include <limits>
#include <string>
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

namespace {

// A row-major matrix stored inside a wider one: `rows x cols` logical, `ld` >= cols physical,
// with NaN in the padding so that a kernel reading outside the logical part poisons C.
struct strided_matrix {
    std::size_t rows, cols, ld;
    std::vector<float> data;
    strided_matrix(std::size_t r, std::size_t c, std::size_t pad, sn::rng& g)
        : rows(r), cols(c), ld(c + pad), data(r * (c + pad), std::numeric_limits<float>::quiet_NaN()) {
        for (std::size_t i = 0; i < r; ++i)
            for (std::size_t j = 0; j < c; ++j) data[i * ld + j] = g.uniform(-1.0f, 1.0f);
    }
    float at(std::size_t i, std::size_t j) const { return data[i * ld + j]; }
    std::vector<float> dense() const {
        std::vector<float> v(rows * cols);
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < cols; ++j) v[i * cols + j] = at(i, j);
        return v;
    }
};

struct gemm_case {
    std::size_t m, n, k;
    k::op op_a, op_b;
    bool accumulate;
};

// Runs gemm on padded operands and checks C against the double reference, and that C's
// padding is untouched. Returns the logical part of C for bitwise comparisons.
std::vector<float> check_gemm(const gemm_case& t, std::size_t pad, sn::thread_pool* pool, std::uint64_t seed) {
    sn::rng g(seed);
    const bool ta = t.op_a == k::op::transpose, tb = t.op_b == k::op::transpose;
    const strided_matrix a(ta ? t.k : t.m, ta ? t.m : t.k, pad, g);
    const strided_matrix b(tb ? t.n : t.k, tb ? t.k : t.n, pad + 1, g);
    strided_matrix c(t.m, t.n, pad + 2, g);
    constexpr float sentinel = 12345.0f;
    for (std::size_t i = 0; i < t.m; ++i)
        for (std::size_t j = t.n; j < c.ld; ++j) c.data[i * c.ld + j] = sentinel;
    auto ref = reference_gemm(t.m, t.n, t.k, a.dense(), t.op_a, b.dense(), t.op_b);
    if (t.accumulate)
        for (std::size_t i = 0; i < t.m; ++i)
            for (std::size_t j = 0; j < t.n; ++j) ref[i * t.n + j] += c.at(i, j);

    k::gemm(t.m, t.n, t.k, a.data.data(), a.ld, t.op_a, b.data.data(), b.ld, t.op_b, c.data.data(), c.ld,
            t.accumulate, pool);

    INFO("m=" << t.m << " n=" << t.n << " k=" << t.k << " op_a=" << ta << " op_b=" << tb
              << " accumulate=" << t.accumulate << " pad=" << pad << " threads=" << (pool ? pool->size() : 1));
    const double tolerance = 2e-6 * std::sqrt(double(t.k)) + 1e-6;
    std::size_t bad = 0, bad_padding = 0;
    for (std::size_t i = 0; i < t.m; ++i) {
        for (std::size_t j = 0; j < t.n; ++j) {
            const double r = ref[i * t.n + j];
            if (!(std::abs(c.at(i, j) - r) <= tolerance * (1.0 + std::abs(r)))) ++bad;
        }
        for (std::size_t j = t.n; j < c.ld; ++j) bad_padding += c.data[i * c.ld + j] != sentinel;
    }
    CHECK(bad == 0);
    CHECK(bad_padding == 0);
    return c.dense();
}

}  // namespace

TEST_CASE("gemm: edges of the micro-tile and cache blocks, sub-matrices, long k", "[kernels][gemm]") {
    // Sizes straddle the register tile (mr = 6 or 12 rows, nr = 16 or 32 columns), the
    // k blocks (384 for op_a none, 128 for transpose), the packed column block (512), and
    // the 4 mr rows up to which B is read in place.
    const std::size_t sizes[][3] = {
        {1, 1, 1},     {1, 1, 1000},  {2, 3, 4},       {12, 32, 384},   {13, 33, 385},  {11, 31, 1000},
        {25, 47, 77},  {6, 16, 1},    {7, 17, 769},    {200, 70, 9},    {193, 97, 50},  {5, 530, 20},
        {9, 32, 2000}, {40, 10, 128}, {128, 10, 40},   {24, 64, 300},   {30, 65, 17},   {3, 600, 390},
        {48, 64, 20},  {49, 35, 70},  {25, 33, 129},  {20, 48, 50}};
    std::uint64_t seed = 1;
    for (auto [m, n, kk] : sizes)
        for (auto op_a : {k::op::none, k::op::transpose})
            for (auto op_b : {k::op::none, k::op::transpose})
                for (bool accumulate : {false, true})
                    for (std::size_t pad : {0, 3}) check_gemm({m, n, kk, op_a, op_b, accumulate}, pad, nullptr, ++seed);
}

TEST_CASE("gemm: k == 0 clears C or leaves it, and an empty C is a no-op", "[kernels][gemm]") {
    std::vector<float> c(12, 3.0f);
    const float a = 1.0f, b = 1.0f;
    k::gemm(3, 4, 0, &a, 1, k::op::none, &b, 4, k::op::none, c.data(), 4, true);
    for (float x : c) CHECK(x == 3.0f);
    k::gemm(3, 4, 0, &a, 1, k::op::none, &b, 4, k::op::none, c.data(), 4, false);
    for (float x : c) CHECK(x == 0.0f);
    k::gemm(0, 4, 5, nullptr, 5, k::op::none, nullptr, 4, k::op::none, nullptr, 4, false);
    k::gemm(3, 0, 5, nullptr, 5, k::op::none, nullptr, 0, k::op::none, nullptr, 0, false);
}

TEST_CASE("gemm: 1, 2 and 3 threads give bitwise identical results", "[kernels][gemm][threads]") {
    // Large enough to be split: by rows (tall C), by columns (short C), both with edges.
    const gemm_case cases[] = {
        {300, 200, 100, k::op::none, k::op::none, false},      {301, 67, 900, k::op::transpose, k::op::none, true},
        {9, 256, 1000, k::op::transpose, k::op::none, true},   {13, 200, 700, k::op::none, k::op::transpose, false},
        {1000, 33, 40, k::op::none, k::op::transpose, false},  {150, 150, 150, k::op::transpose, k::op::transpose, true},
        // Each thread's rows are few enough to read B in place, the whole C's are not.
        {100, 40, 700, k::op::none, k::op::none, true},
    };
    sn::thread_pool two(2), three(3);
    std::uint64_t seed = 100;
    for (const auto& t : cases) {
        ++seed;
        const auto one_thread = check_gemm(t, 1, nullptr, seed);
        const auto two_threads = check_gemm(t, 1, &two, seed);
        const auto three_threads = check_gemm(t, 1, &three, seed);
        INFO("m=" << t.m << " n=" << t.n << " k=" << t.k);
        CHECK(std::memcmp(one_thread.data(), two_threads.data(), one_thread.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(one_thread.data(), three_threads.data(), one_thread.size() * sizeof(float)) == 0);
    }
}

// ------------------------------------------------------------------ allocation counting
// The training step must not allocate: count every global operator new in this program.
// All the replaceable forms are replaced (a sanitizer runtime would otherwise pair its own
// with ours); they behave like the defaults otherwise, and stay out of line so that GCC
// does not pair an inlined malloc() or free() with the other operator and warn.
namespace {
std::atomic<std::size_t> heap_allocations{0};

void* counted_allocation(std::size_t bytes, std::size_t alignment) noexcept {
    heap_allocations.fetch_add(1, std::memory_order_relaxed);
    bytes = std::max<std::size_t>(bytes, 1);
    if (alignment <= alignof(std::max_align_t)) return std::malloc(bytes);
    return std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
}
void* counted_or_throw(std::size_t bytes, std::size_t alignment) {
    if (void* p = counted_allocation(bytes, alignment)) return p;
    throw std::bad_alloc();
}
constexpr std::size_t plain = 0;
}  // namespace

// clang-format off
[[gnu::noinline]] void* operator new(std::size_t n) { return counted_or_throw(n, plain); }
[[gnu::noinline]] void* operator new[](std::size_t n) { return counted_or_throw(n, plain); }
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t a) { return counted_or_throw(n, std::size_t(a)); }
[[gnu::noinline]] void* operator new[](std::size_t n, std::align_val_t a) { return counted_or_throw(n, std::size_t(a)); }
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_allocation(n, plain); }
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_allocation(n, plain); }
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_allocation(n, std::size_t(a)); }
[[gnu::noinline]] void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_allocation(n, std::size_t(a)); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
// clang-format on

TEST_CASE("gemm allocates nothing once warm", "[kernels][gemm][allocation]") {
    sn::rng g(5);
    const auto a = random_vector(700 * 300, g);
    const auto b = random_vector(300 * 600, g);
    auto c = random_vector(700 * 600, g);
    sn::thread_pool pool(2);
    auto run_all = [&] {
        for (auto op_a : {k::op::none, k::op::transpose})
            for (auto op_b : {k::op::none, k::op::transpose}) {
                k::gemm(700, 600, 300, a.data(), op_a == k::op::none ? 300 : 700, op_a, b.data(),
                        op_b == k::op::none ? 600 : 300, op_b, c.data(), 600, false, &pool);
                k::gemm(9, 32, 700, a.data(), op_a == k::op::none ? 700 : 9, op_a, b.data(),
                        op_b == k::op::none ? 32 : 700, op_b, c.data(), 32, true, nullptr);
            }
    };
    run_all();  // warm-up: per-thread packing buffers
    const std::size_t before = heap_allocations.load();
    run_all();
    CHECK(heap_allocations.load() == before);
    // The counter sees allocations at all (the test could fail). The volatile keeps the
    // compiler from eliding the pair.
    void* volatile probe = ::operator new(16);
    ::operator delete(probe);
    CHECK(heap_allocations.load() == before + 1);
}

TEST_CASE("transpose: every element in its place, whole registers and edges, strided rows", "[kernels][transpose]") {
    sn::rng g(6);
    // Sizes below, at and around one register (8 and 16 lanes), and strides wider than a row.
    for (const auto& [rows, columns] : {std::pair<std::size_t, std::size_t>{1, 1}, {3, 17}, {16, 16}, {8, 8}, {33, 40},
                                       {128, 64}, {17, 1}, {50, 129}}) {
        const std::size_t src_stride = columns + 3, dst_stride = rows + 5;
        const auto src = random_vector(rows * src_stride, g);
        std::vector<float> dst(columns * dst_stride, -7.0f);
        k::transpose(rows, columns, src.data(), src_stride, dst.data(), dst_stride);
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < columns; ++j) REQUIRE(dst[j * dst_stride + i] == src[i * src_stride + j]);
        // The padding between destination rows is untouched.
        for (std::size_t j = 0; j < columns; ++j)
            for (std::size_t i = rows; i < dst_stride; ++i) REQUIRE(dst[j * dst_stride + i] == -7.0f);
    }
}

TEST_CASE("im2col_rows: any split of the rows writes the same matrix as im2col", "[kernels][im2col]") {
    sn::rng g(12);
    // A 7x7 stride-2 stem on 3 channels (as ResNet's) and a 3x3 with padding, two images each.
    for (const k::window_geometry& geo : {k::window_geometry{12, 10, 3, 7, 2, 3, 3, 6, 5},
                                         k::window_geometry{5, 6, 4, 3, 1, 1, 1, 5, 6}}) {
        const std::size_t images = 2, rows = images * geo.rows_per_image();
        const auto in = random_vector(images * geo.image_size(), g);
        std::vector<float> whole(rows * geo.column_width()), pieces(whole.size(), -7.0f);
        k::im2col(geo, in.data(), images, whole.data());
        for (std::size_t first = 0; first < rows;) {
            const std::size_t last = std::min(rows, first + 1 + first % 7);  // pieces of 1 to 7 rows, across images
            k::im2col_rows(geo, in.data(), first, last, pieces.data());
            first = last;
        }
        REQUIRE(pieces == whole);
    }
}

// ---------------------------------------------------------------- element-wise, im2col, pooling

namespace {
/// Bound on |computed - exact| of a float a * b + c, in units of |a * b| + |c|: two roundings
/// of half a float epsilon each, or one when the two are fused into an FMA.
constexpr double term_rounding = std::numeric_limits<float>::epsilon();
}  // namespace

TEST_CASE("element-wise kernels match scalar loops at every length, tails included", "[kernels][elementwise]") {
    sn::rng g(7);
    for (std::size_t n : {std::size_t{1}, std::size_t{3}, sn::simd::float_lanes - 1, sn::simd::float_lanes,
                          sn::simd::float_lanes + 1, std::size_t{2} * sn::simd::float_lanes + 5, std::size_t{1000}}) {
        INFO("n = " << n);
        auto x = random_vector(n, g), y = random_vector(n, g);
        std::vector<float> out(n);
        k::map(n, [](auto a, auto b) { return a * b + a; }, out.data(), x.data(), y.data());
        for (std::size_t i = 0; i < n; ++i) {
            // Against the exact value, within the rounding of its terms: near cancellation
            // (a * b close to -a) a relative test fails when one side is contracted to an FMA.
            const double a = x[i], b = y[i];
            INFO("a = " << a << ", b = " << b << ", a * b + a = " << out[i]);
            REQUIRE(std::abs(out[i] - (a * b + a)) <= term_rounding * (std::abs(a * b) + std::abs(a)));
        }

        auto relu = x;
        sn::relu::forward(relu.data(), 1, n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(relu[i] == std::max(x[i], 0.0f));
        auto sig = x;
        sn::sigmoid::forward(sig.data(), 1, n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(sig[i] == Approx(1.0f / (1.0f + std::exp(-x[i]))).epsilon(1e-5));
        auto th = x;
        sn::tanh::forward(th.data(), 1, n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(th[i] == Approx(std::tanh(x[i])).epsilon(1e-5).margin(1e-6));

        // Bias and column sums over a [rows x n] matrix.
        const std::size_t rows = 3;
        auto m = random_vector(rows * n, g);
        auto with_bias = m;
        k::add_bias(with_bias.data(), y.data(), rows, n);
        std::vector<float> sums(n, 0.5f);
        k::accumulate_column_sums(m.data(), rows, n, sums.data());
        for (std::size_t c = 0; c < n; ++c) {
            float expect = 0.5f;
            for (std::size_t r = 0; r < rows; ++r) {
                REQUIRE(with_bias[r * n + c] == m[r * n + c] + y[c]);
                expect += m[r * n + c];
            }
            REQUIRE(sums[c] == expect);  // the same additions in the same (row) order
        }

        // Softmax rows and its Jacobian-vector product against double precision.
        auto soft = m;
        k::softmax_rows(soft.data(), rows, n);
        auto grad = random_vector(rows * n, g);
        auto back = grad;
        k::softmax_rows_backward(soft.data(), back.data(), rows, n);
        for (std::size_t r = 0; r < rows; ++r) {
            double top = -1e30, total = 0, dot = 0;
            for (std::size_t c = 0; c < n; ++c) top = std::max(top, double(m[r * n + c]));
            for (std::size_t c = 0; c < n; ++c) total += std::exp(m[r * n + c] - top);
            for (std::size_t c = 0; c < n; ++c) dot += grad[r * n + c] * std::exp(m[r * n + c] - top) / total;
            for (std::size_t c = 0; c < n; ++c) {
                const double p = std::exp(m[r * n + c] - top) / total;
                REQUIRE(soft[r * n + c] == Approx(p).epsilon(1e-5).margin(1e-7));
                REQUIRE(back[r * n + c] == Approx(p * (grad[r * n + c] - dot)).epsilon(1e-4).margin(1e-6));
            }
        }
    }
}

TEST_CASE("batch normalisation kernels: every channel count gives each element the same value", "[kernels][batch_norm]") {
    // Rows of whole registers go register by register, few channels against their values
    // repeated over a period of registers, other widths row by row through map (with a
    // padded tail): an element must come out the same on each path (a thread's share of the
    // rows, or a network's channel count, may not change a result). Each layout's channel c
    // holds the widest one's values of channel c.
    constexpr std::size_t lanes = sn::simd::float_lanes, rows = 37, wide = 2 * lanes + 3;
    sn::rng g(31);
    auto per_channel = [&] { return random_vector(wide, g); };
    const auto mean = per_channel(), gamma = per_channel(), beta = per_channel(), mean_dy = per_channel(),
               mean_dy_x_hat = per_channel(), scale = per_channel();
    auto inv_std = per_channel();
    for (auto& v : inv_std) v = 0.5f + std::abs(v);
    const auto x_wide = random_vector(rows * wide, g), dy_wide = random_vector(rows * wide, g);
    auto run = [&](std::size_t channels) {
        std::vector<float> x(rows * channels), dy(rows * channels);
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t c = 0; c < channels; ++c) {
                x[r * channels + c] = x_wide[r * wide + c];
                dy[r * channels + c] = dy_wide[r * wide + c];
            }
        std::vector<float> y(rows * channels), shifted(rows * channels), dx(rows * channels);
        k::normalize(x.data(), rows, channels, mean.data(), inv_std.data(), gamma.data(), beta.data(), y.data());
        k::scale_and_shift(x.data(), rows, channels, scale.data(), beta.data(), shifted.data());
        k::normalization_input_gradient(dy.data(), x.data(), rows, channels, mean.data(), inv_std.data(), scale.data(),
                                        mean_dy.data(), mean_dy_x_hat.data(), dx.data());
        return std::array<std::vector<float>, 3>{y, shifted, dx};
    };
    const auto by_row = run(wide);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < wide; ++c) {
            INFO("row " << r << ", channel " << c);
            const std::size_t at = r * wide + c;
            const double xh = static_cast<float>((x_wide[at] - mean[c]) * inv_std[c]);
            const double expected[3] = {gamma[c] * xh + beta[c], double(x_wide[at]) * scale[c] + beta[c],
                                        scale[c] * (dy_wide[at] - double(mean_dy[c]) - xh * mean_dy_x_hat[c])};
            for (std::size_t i = 0; i < 3; ++i) CHECK(by_row[i][at] == Approx(expected[i]).margin(1e-5));
#if defined(__FMA__) || defined(__AVX512F__) || defined(__ARM_FEATURE_FMA)
            // With FMA hardware, the exact roundings of the scalar formulas these kernels
            // replaced (as GCC contracted them), so trained networks keep their digits.
            const float xh_f = (x_wide[at] - mean[c]) * inv_std[c];
            CHECK(by_row[0][at] == std::fma(gamma[c], xh_f, beta[c]));
            CHECK(by_row[1][at] == std::fma(x_wide[at], scale[c], beta[c]));
            CHECK(by_row[2][at] == scale[c] * std::fma(-xh_f, mean_dy_x_hat[c], dy_wide[at] - mean_dy[c]));
#endif
        }
    // Whole registers; a half register (periods of two rows and a last row alone); three
    // channels (periods of 16 rows with AVX-512, then single rows); one register and a bit.
    for (std::size_t channels : {2 * lanes, lanes / 2, std::size_t{3}, lanes + 1}) {
        INFO("channels: " << channels);
        const auto result = run(channels);
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t i = 0; i < 3; ++i) REQUIRE(result[i][r * channels + c] == by_row[i][r * wide + c]);
    }

    // The sums: each channel's rows in order, in double, for any range of channels.
    std::vector<double> sums(wide), squares(wide), sum_dy(wide), sum_dy_x_hat(wide);
    std::vector<double> mean_d(mean.begin(), mean.end());
    k::add_channel_sums(x_wide.data(), rows, wide, 0, 5, sums.data());
    k::add_channel_sums(x_wide.data(), rows, wide, 5, wide, sums.data());
    k::add_squared_deviations(x_wide.data(), rows, wide, 0, wide, mean_d.data(), squares.data());
    k::add_gradient_sums(dy_wide.data(), x_wide.data(), rows, wide, 0, wide, mean.data(), inv_std.data(), sum_dy.data(),
                         sum_dy_x_hat.data());
    for (std::size_t c = 0; c < wide; ++c) {
        double s = 0, q = 0, d = 0, dx = 0;
        for (std::size_t r = 0; r < rows; ++r) {
            const std::size_t at = r * wide + c;
            s += x_wide[at];
            q += (x_wide[at] - mean_d[c]) * (x_wide[at] - mean_d[c]);
            d += dy_wide[at];
            dx += double(dy_wide[at]) * static_cast<float>((x_wide[at] - mean[c]) * inv_std[c]);
        }
        // Plain sums in the same order are exact; products may be contracted to FMAs on
        // either side, which moves the last bits only.
        CHECK(sums[c] == s);
        CHECK(sum_dy[c] == d);
        CHECK(squares[c] == Approx(q).epsilon(1e-12));
        CHECK(sum_dy_x_hat[c] == Approx(dx).epsilon(1e-12));
    }
}

TEST_CASE("im2col + gemm is the direct convolution, and col2im is its adjoint", "[kernels][im2col]") {
    sn::rng g(11);
    struct conv_case {
        std::size_t h, w, c, kernel, stride, pad_top, pad_left;
    };
    for (const conv_case t : {conv_case{5, 4, 3, 3, 1, 0, 0}, conv_case{7, 6, 2, 3, 2, 1, 1}, conv_case{1, 1, 1, 1, 1, 0, 0},
                              conv_case{4, 5, 1, 2, 1, 1, 0}, conv_case{6, 6, 4, 3, 3, 1, 1}}) {
        const std::size_t oh = (t.h + 2 * t.pad_top - t.kernel) / t.stride + 1;
        const std::size_t ow = (t.w + 2 * t.pad_left - t.kernel) / t.stride + 1;
        const k::window_geometry geo{t.h, t.w, t.c, t.kernel, t.stride, t.pad_top, t.pad_left, oh, ow};
        const std::size_t images = 2, filters = 3;
        auto in = random_vector(images * geo.image_size(), g);
        auto kernel = random_vector(geo.column_width() * filters, g);
        std::vector<float> columns(images * geo.rows_per_image() * geo.column_width()), out(images * oh * ow * filters);
        k::im2col(geo, in.data(), images, columns.data());
        k::gemm(images * oh * ow, filters, geo.column_width(), columns.data(), geo.column_width(), k::op::none,
                kernel.data(), filters, k::op::none, out.data(), filters, false);
        // The direct definition, with zero padding.
        auto pixel = [&](std::size_t n, std::ptrdiff_t y, std::ptrdiff_t x, std::size_t c) -> double {
            if (y < 0 || x < 0 || y >= std::ptrdiff_t(t.h) || x >= std::ptrdiff_t(t.w)) return 0.0;
            return in[((n * t.h + std::size_t(y)) * t.w + std::size_t(x)) * t.c + c];
        };
        for (std::size_t n = 0; n < images; ++n)
            for (std::size_t oy = 0; oy < oh; ++oy)
                for (std::size_t ox = 0; ox < ow; ++ox)
                    for (std::size_t f = 0; f < filters; ++f) {
                        double s = 0;
                        for (std::size_t ky = 0; ky < t.kernel; ++ky)
                            for (std::size_t kx = 0; kx < t.kernel; ++kx)
                                for (std::size_t c = 0; c < t.c; ++c)
                                    s += pixel(n, std::ptrdiff_t(oy * t.stride + ky) - std::ptrdiff_t(t.pad_top),
                                               std::ptrdiff_t(ox * t.stride + kx) - std::ptrdiff_t(t.pad_left), c) *
                                         kernel[((ky * t.kernel + kx) * t.c + c) * filters + f];
                        REQUIRE(out[((n * oh + oy) * ow + ox) * filters + f] == Approx(s).epsilon(1e-5).margin(1e-5));
                    }
        // <im2col(x), y> == <x, col2im(y)> for random y: col2im is the exact adjoint.
        auto y = random_vector(columns.size(), g);
        std::vector<float> back(in.size());
        k::col2im(geo, y.data(), images, back.data());
        // Both sums can nearly cancel, so the tolerance scales with their terms, not their value.
        double lhs = 0, rhs = 0, terms = 0;
        for (std::size_t i = 0; i < columns.size(); ++i) {
            lhs += double(columns[i]) * y[i];
            terms += std::abs(double(columns[i]) * y[i]);
        }
        for (std::size_t i = 0; i < in.size(); ++i) rhs += double(in[i]) * back[i];
        REQUIRE(std::abs(lhs - rhs) <= 1e-6 * terms);
    }
}

namespace {
// conv(in) + bias and the parameter gradients of one-channel images in double precision:
// the reference of the direct kernel.
template <k::window_geometry G, std::size_t F>
void check_direct_conv(std::uint64_t seed) {
    using direct = k::direct_conv_single_channel<G, F>;
    STATIC_REQUIRE(direct::fits);
    sn::rng g(seed);
    const std::size_t images = 3;
    const auto in = random_vector(images * G.image_size(), g);
    const auto kernel = random_vector(G.kernel * G.kernel * F, g);
    const auto bias = random_vector(F, g);
    const auto dout = random_vector(images * G.rows_per_image() * F, g);
    auto pixel = [&](std::size_t n, std::size_t oy, std::size_t ox, std::size_t ky, std::size_t kx) -> double {
        const auto iy = static_cast<std::ptrdiff_t>(oy * G.stride + ky) - static_cast<std::ptrdiff_t>(G.pad_top);
        const auto ix = static_cast<std::ptrdiff_t>(ox * G.stride + kx) - static_cast<std::ptrdiff_t>(G.pad_left);
        if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(G.height) || ix >= static_cast<std::ptrdiff_t>(G.width))
            return 0.0;
        return in[n * G.image_size() + static_cast<std::size_t>(iy) * G.width + static_cast<std::size_t>(ix)];
    };
    std::vector<float> out(images * G.rows_per_image() * F, -7.0f);
    direct::forward(in.data(), images, kernel.data(), bias.data(), out.data());
    std::vector<double> dkernel_ref(kernel.size(), 0.0), dbias_ref(F, 0.0);
    for (std::size_t n = 0; n < images; ++n)
        for (std::size_t oy = 0; oy < G.out_height; ++oy)
            for (std::size_t ox = 0; ox < G.out_width; ++ox)
                for (std::size_t f = 0; f < F; ++f) {
                    const std::size_t at = ((n * G.out_height + oy) * G.out_width + ox) * F + f;
                    double s = bias[f];
                    for (std::size_t ky = 0; ky < G.kernel; ++ky)
                        for (std::size_t kx = 0; kx < G.kernel; ++kx) {
                            s += pixel(n, oy, ox, ky, kx) * kernel[(ky * G.kernel + kx) * F + f];
                            dkernel_ref[(ky * G.kernel + kx) * F + f] += pixel(n, oy, ox, ky, kx) * dout[at];
                        }
                    dbias_ref[f] += dout[at];
                    INFO("forward at image " << n << ", pixel (" << oy << ", " << ox << "), filter " << f);
                    REQUIRE(out[at] == Approx(s).margin(1e-5));
                }
    // The gradients are added to what is there.
    std::vector<float> dkernel(kernel.size(), 0.5f), dbias(F, -0.25f);
    // The row callback sees every output row once, in order, before the row is used.
    auto dz = dout;
    for (auto& v : dz) v *= 0.5f;
    std::size_t next_row = 0;
    direct::backward_parameters(in.data(), dz.data(), images, dkernel.data(), dbias.data(),
                                [&](std::size_t row, float* values) {
                                    REQUIRE(row == next_row++);
                                    for (std::size_t i = 0; i < G.out_width * F; ++i) values[i] *= 2.0f;
                                });
    REQUIRE(next_row == images * G.out_height);
    for (std::size_t i = 0; i < dkernel.size(); ++i) REQUIRE(dkernel[i] == Approx(dkernel_ref[i] + 0.5).margin(1e-4));
    for (std::size_t f = 0; f < F; ++f) REQUIRE(dbias[f] == Approx(dbias_ref[f] - 0.25).margin(1e-4));
}
}  // namespace

TEST_CASE("direct single-channel convolution matches the scalar reference", "[kernels][direct_conv]") {
    constexpr std::size_t lanes = sn::simd::float_lanes;
    // 28x28, 3x3 valid: the reference network's first layer (32 filters on AVX-512).
    check_direct_conv<k::window_geometry{28, 28, 1, 3, 1, 0, 0, 26, 26}, 2 * lanes>(1);
    // 'same' padding, stride 2, an odd width, one register of filters.
    check_direct_conv<k::window_geometry{9, 7, 1, 3, 2, 1, 1, 5, 4}, lanes>(2);
    // 5x5 'same' (pads of 2), several registers of filters, widths not a multiple of the pixel block.
    check_direct_conv<k::window_geometry{6, 13, 1, 5, 1, 2, 2, 6, 13}, 4 * lanes>(3);
}

TEST_CASE("the SIMD level names the instruction set the build chose, on every architecture", "[kernels][simd]") {
    namespace d = sn::simd::detail;
    constexpr d::simd_level built = d::compiled_level();
    INFO("compiled for " << sn::simd::arch_name() << " (" << d::level_name(built) << "), CPU " << sn::simd::cpu_arch_name());
    // The level agrees with the register xsimd chose for the kernels.
    constexpr std::size_t lanes = sn::simd::float_lanes;
    switch (built) {
        case d::simd_level::avx512f:
        case d::simd_level::avx512bw: CHECK(lanes == 16); break;
        case d::simd_level::avx:
        case d::simd_level::avx2:
        case d::simd_level::fma3_avx2: CHECK(lanes == 8); break;
        case d::simd_level::sse2:
        case d::simd_level::sse4_2:
        case d::simd_level::neon:
        case d::simd_level::neon64: CHECK(lanes == 4); break;
        case d::simd_level::none: FAIL("no SIMD level recognised for this build"); break;
    }
#if defined(__aarch64__)
    CHECK(built == d::simd_level::neon64);
    CHECK(std::string(sn::simd::arch_name()).find("neon") != std::string::npos);
    CHECK(std::string(sn::simd::cpu_arch_name()).find("neon") != std::string::npos);
#elif defined(__x86_64__)
    CHECK(static_cast<int>(built) >= static_cast<int>(d::simd_level::sse2));
    CHECK(static_cast<int>(built) <= static_cast<int>(d::simd_level::avx512bw));
#endif
    // A CPU never runs less than what the program was compiled for (it would not start), and a
    // build for this CPU's widest level is not narrower than it.
    CHECK(static_cast<int>(d::cpu_level()) >= static_cast<int>(built));
    CHECK(sn::simd::narrower_than_cpu() == (d::cpu_level() != built));
    if (!sn::simd::narrower_than_cpu()) CHECK(std::string(sn::simd::cpu_arch_name()) == sn::simd::arch_name());
}
