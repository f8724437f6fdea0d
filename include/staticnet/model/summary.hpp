#pragma once
/// @file
/// `print_summary<Net>(os)`: the Keras-like table of a network: each layer with its output
/// shape, parameter count, forward FLOPs per sample and the activation memory it keeps per
/// sample for backward (its output and cache), then the totals. The layers inside a residual
/// block are listed under it, indented.

#include <cstddef>
#include <iomanip>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>

#include "../core/compat.hpp"
#include "../core/shape.hpp"
#include "../layers/layer_list.hpp"

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

/// The row of bound layer `L`, labelled `label`, and below it, for a composite layer (a
/// residual block), a row per inner layer, indented: the body, then the shortcut's layers
/// marked "shortcut:". An inner row's bytes are part of its block's.
template <typename L, typename Row>
void summary_rows(Row& row, const std::string& label, const std::string& indent) {
    std::string text = indent + label;
    if constexpr (requires { typename L::activation_type; }) text += " (" + std::string(L::activation_type::name) + ')';
    row(text, to_string(L::output_shape), thousands(L::parameter_count + L::state_count), thousands(L::flops_per_sample),
        thousands((L::output_shape.size() + L::cache_floats(1)) * sizeof(float)));
    if constexpr (composite_layer<L>) {
        const std::string inner_indent = indent + "  ";
        auto rows = [&]<typename... Inner>(std::tuple<Inner...>*, const std::string& prefix) {
            (summary_rows<Inner>(row, prefix + std::string(Inner::name), inner_indent), ...);
        };
        rows(static_cast<typename L::body_layers*>(nullptr), "");
        rows(static_cast<typename L::shortcut_layers*>(nullptr), "shortcut: ");
    }
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
          detail::summary_rows<typename Net::template layer_type<I>>(
              row, std::string(Net::template layer_type<I>::name) + '_' + std::to_string(I + 1), "")),
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
