#pragma once
/// @file
/// `template_float`: a float hyper-parameter written as a template argument, on every C++20
/// compiler.
///
/// `template <float F>` needs floating-point non-type template parameters (P1907), which
/// clang before 18 and Apple's clang lack, and which clang 19 still does not announce in
/// `__cpp_nontype_template_args`. A class type holding the float's bits is accepted by every
/// compiler that takes class-type template parameters (GCC 11, clang 12, MSVC 19.28), and
/// converts from a float or double literal, so `dropout<0.25f>` and `dropout<0.25>` read as
/// before. Two arguments are the same template argument when their float values have the
/// same bits.

#include <bit>
#include <concepts>
#include <cstdint>

namespace staticnet {

struct template_float {
    /// The bits of the float (public: a class used as a template parameter must be structural).
    std::uint32_t bits = 0;

    constexpr template_float(float value) noexcept : bits(std::bit_cast<std::uint32_t>(value)) {}
    /// A double literal is rounded to float, as `float x = 0.25;` would.
    constexpr template_float(double value) noexcept : template_float(static_cast<float>(value)) {}
    /// An integer literal (`dropout<0>`) as the float of its value.
    template <std::integral I>
    constexpr template_float(I value) noexcept : template_float(static_cast<float>(value)) {}

    [[nodiscard]] constexpr float value() const noexcept { return std::bit_cast<float>(bits); }
    constexpr operator float() const noexcept { return value(); }
};

}  // namespace staticnet
