#pragma once
/// @file
/// The one place that knows which generation of xtensor and xsimd it is built against.
///
/// Debian 12 ships xtensor 0.24 and xsimd 8; vcpkg and Conan users get xtensor >= 0.26
/// (headers moved into sub-folders) and xsimd >= 9 (some functions renamed). Every other
/// staticnet header includes xtensor and xsimd only through this file.

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

/// Name of the instruction set xsimd compiled for, e.g. "fma3+avx2".
inline const char* arch_name() noexcept { return xsimd::default_arch::name(); }

}  // namespace staticnet::simd
