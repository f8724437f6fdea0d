#pragma once
/// @file
/// The one place that knows which generation of xtensor and xsimd it is built against.
///
/// Debian 12 ships xtensor 0.24 and xsimd 8; vcpkg and Conan users get xtensor >= 0.26
/// (headers moved into sub-folders) and xsimd >= 9 (some functions renamed, the CPU
/// detection's `best` and `arch::version()` removed in 13). Tested with both ends: xtensor
/// 0.24.3 / xsimd 8.1.0 and xtensor 0.27.1 / xsimd 14.3.0 (scripts/test-upstream.sh). Every
/// other staticnet header includes xtensor and xsimd only through this file.

#if __has_include(<xtensor/containers/xtensor.hpp>)
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xtensor.hpp>
#include <xtensor/core/xmath.hpp>
#include <xtensor/views/xview.hpp>
#define STATICNET_XTENSOR_NEW_LAYOUT 1
#else
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>
#define STATICNET_XTENSOR_NEW_LAYOUT 0
#endif

#include <xsimd/xsimd.hpp>

#include <cstdio>
#include <cstdlib>

namespace staticnet::simd {

/// The SIMD register of floats for the architecture chosen by the compiler flags.
using float_batch = xsimd::batch<float>;
inline constexpr std::size_t float_lanes = float_batch::size;

/// Horizontal sum of the lanes (xsimd 8 calls it `hadd`, xsimd >= 9 `reduce_add`).
inline float reduce_add(const float_batch& b) noexcept {
#if XSIMD_VERSION_MAJOR >= 9
    return xsimd::reduce_add(b);
#else
    return xsimd::hadd(b);
#endif
}

/// a * b + c, rounded once where the CPU has FMA. xsimd before 11 (Debian 12 has 8) has no
/// fma of its own for AVX-512 registers: its generic one is a multiply and an add, which GCC
/// contracts into one instruction and clang does not (half the GEMM's throughput there, and
/// other roundings). With AVX-512 flags, xsimd 8's float batch is the 512-bit register.
inline float_batch fma(const float_batch& a, const float_batch& b, const float_batch& c) noexcept {
#if XSIMD_WITH_AVX512F && XSIMD_VERSION_MAJOR < 11
    return _mm512_fmadd_ps(a, b, c);
#else
    return xsimd::fma(a, b, c);
#endif
}

/// c - a * b, rounded once where the CPU has FMA (negating a is exact).
inline float_batch fnma(const float_batch& a, const float_batch& b, const float_batch& c) noexcept {
    return fma(-a, b, c);
}

/// Name of the instruction set xsimd compiled for, e.g. "fma3+avx2".
inline const char* arch_name() noexcept { return xsimd::default_arch::name(); }

namespace detail {

// The instruction sets our kernels tell apart, in the order of what they gain from them
// (register width first, then FMA). xsimd's own ordering (`supported_arch::best`,
// `arch::version()`) changed in every major release and was removed in 13; its
// configuration macros (XSIMD_WITH_*) and the CPU's feature fields read below are spelled
// the same from xsimd 8 to 14, so the comparison is ours.
enum class simd_level { none, sse2, sse4_2, avx, avx2, fma3_avx2, avx512f, avx512bw, neon, neon64 };

/// The level the compiler flags chose (what every kernel in this program runs).
inline constexpr simd_level compiled_level() noexcept {
#if XSIMD_WITH_AVX512BW
    return simd_level::avx512bw;
#elif XSIMD_WITH_AVX512F
    return simd_level::avx512f;
#elif XSIMD_WITH_FMA3_AVX2
    return simd_level::fma3_avx2;
#elif XSIMD_WITH_AVX2
    return simd_level::avx2;
#elif XSIMD_WITH_AVX
    return simd_level::avx;
#elif XSIMD_WITH_SSE4_2
    return simd_level::sse4_2;
#elif XSIMD_WITH_SSE2
    return simd_level::sse2;
#elif XSIMD_WITH_NEON64
    return simd_level::neon64;
#elif XSIMD_WITH_NEON
    return simd_level::neon;
#else
    return simd_level::none;
#endif
}

/// The widest level this CPU runs, from xsimd's run-time detection (CPUID on x86, the
/// auxiliary vector on ARM; read once). On AArch64 NEON is the baseline, and xsimd uses SVE
/// only for a vector length fixed at compile time (-msve-vector-bits), so NEON is the widest
/// level a -march=native build would reach there.
inline simd_level cpu_level() noexcept {
    static const simd_level level = [] {
        const auto cpu = xsimd::available_architectures();
#if defined(__x86_64__) || defined(__i386__)
        if (cpu.avx512bw && cpu.avx512dq && cpu.avx512cd && cpu.avx512f) return simd_level::avx512bw;
        if (cpu.avx512f) return simd_level::avx512f;
        if (cpu.fma3_avx2) return simd_level::fma3_avx2;
        if (cpu.avx2) return simd_level::avx2;
        if (cpu.avx) return simd_level::avx;
        if (cpu.sse4_2) return simd_level::sse4_2;
        return simd_level::sse2;
#elif defined(__aarch64__)
        (void)cpu;
        return simd_level::neon64;
#elif defined(__arm__)
        return cpu.neon ? simd_level::neon : simd_level::none;
#else
        (void)cpu;
        return compiled_level();  // an architecture we do not tell apart: assume the build's
#endif
    }();
    return level;
}

inline constexpr const char* level_name(simd_level level) noexcept {
    switch (level) {
        case simd_level::sse2: return "sse2";
        case simd_level::sse4_2: return "sse4.2";
        case simd_level::avx: return "avx";
        case simd_level::avx2: return "avx2";
        case simd_level::fma3_avx2: return "fma3+avx2";
        case simd_level::avx512f: return "avx512f";
        case simd_level::avx512bw: return "avx512bw";
        case simd_level::neon: return "arm32+neon";
        case simd_level::neon64: return "arm64+neon";
        case simd_level::none: break;
    }
    return "no SIMD";
}

}  // namespace detail

/// Name of the widest instruction set this CPU runs, in xsimd's names (read once).
inline const char* cpu_arch_name() noexcept {
    return detail::cpu_level() == detail::compiled_level() ? arch_name() : detail::level_name(detail::cpu_level());
}

/// Whether this CPU has a better instruction set than the one the code was compiled for (a
/// portable build, e.g. CMake's default flags, gives SSE2: 4 floats per register where
/// AVX-512 has 16). Build with -march=native, or link `staticnet::native`, to use it.
inline bool narrower_than_cpu() noexcept {
    // Only levels of one family compare (an x86 build never runs on an ARM CPU).
    return static_cast<int>(detail::cpu_level()) > static_cast<int>(detail::compiled_level());
}

/// What to do about it, for messages.
inline constexpr const char* wider_simd_advice =
    "build with -march=native (CMake: link staticnet::native) to use it";

/// Says once per process on stderr when `narrower_than_cpu()` (the models call it on rank
/// 0): a portable build trains several times slower than it could, and nothing else would
/// tell. STATICNET_NO_SIMD_WARNING=1 in the environment silences it.
inline void warn_once_if_narrower_than_cpu() {
    static const bool warned = [] {
        if (!narrower_than_cpu() || std::getenv("STATICNET_NO_SIMD_WARNING") != nullptr) return false;
        std::fprintf(stderr, "staticnet: compiled for %s, but this CPU has %s: %s (STATICNET_NO_SIMD_WARNING=1 silences this)\n",
                     arch_name(), cpu_arch_name(), wider_simd_advice);
        return true;
    }();
    (void)warned;
}

}  // namespace staticnet::simd
