#pragma once
/// @file
/// `print_summary<Net>(os)`: the Keras-like table of a network: each layer with its output
/// shape, parameter count, forward FLOPs per sample and the activation memory it keeps per
/// sample for backward (its output and cache), then the totals.

#include <cstddef>
#include <iomanip>
#include <ostream>
#include <string>
#include <utility>

#include "../core/compat.hpp"
#include "../core/shape.hpp"

namespace staticnet {

namespace detail {
/// 110474 -> "110,474".
inline std::string thousands(std::size_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}
}  // namespace detail

template <typename Net>
void print_summary(std::ostream& os) {
    constexpr int name_w = 28, shape_w = 22, param_w = 12, flop_w = 14, bytes_w = 16;
    const std::string rule(name_w + shape_w + param_w + flop_w + bytes_w, '_');
    const std::string double_rule(rule.size(), '=');
    auto row = [&](const std::string& layer, const std::string& output, const std::string& params,
                   const std::string& flops, const std::string& bytes) {
        os << ' ' << std::left << std::setw(name_w - 1) << layer << std::setw(shape_w) << output << std::right
           << std::setw(param_w) << params << std::setw(flop_w) << flops << std::setw(bytes_w) << bytes << '\n';
    };
    os << "Model: \"sequential\"\n" << rule << '\n';
    row("Layer (type)", "Output Shape", "Param #", "FLOPs/sample", "Act. B/sample");
    os << double_rule << '\n';
    row("input", to_string(Net::input_shape), "0", "0", "0");
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((os << rule << '\n',
          row(std::string(Net::template layer_type<I>::name) + '_' + std::to_string(I + 1) +
                  [] {
                      using L = typename Net::template layer_type<I>;
                      if constexpr (requires { typename L::activation_type; })
                          return " (" + std::string(L::activation_type::name) + ')';
                      else return std::string{};
                  }(),
              to_string(Net::template layer_type<I>::output_shape),
              detail::thousands(Net::template layer_type<I>::parameter_count + Net::template layer_type<I>::state_count),
              detail::thousands(Net::template layer_type<I>::flops_per_sample),
              detail::thousands((Net::template layer_type<I>::output_shape.size() +
                                 Net::template layer_type<I>::cache_floats(1)) *
                                sizeof(float)))),
         ...);
    }(std::make_index_sequence<Net::layer_count>{});
    os << double_rule << '\n';
    os << "Total params: " << detail::thousands(Net::parameter_count) << " ("
       << detail::thousands(Net::parameter_count * sizeof(float)) << " bytes)\n";
    os << "Trainable params: " << detail::thousands(Net::trainable_parameter_count) << '\n';
    os << "Non-trainable params: " << detail::thousands(Net::state_count) << '\n';
    os << "Forward FLOPs per sample: " << detail::thousands(Net::flops_per_sample) << '\n';
    os << "Activation memory per sample: " << detail::thousands(Net::activation_bytes_per_sample) << " bytes\n";
    os << "SIMD: " << simd::arch_name() << " (" << simd::float_lanes << " floats per register)";
    if (simd::narrower_than_cpu()) os << "; this CPU has " << simd::cpu_arch_name() << ": " << simd::wider_simd_advice;
    os << '\n' << rule << '\n';
}

}  // namespace staticnet
