#pragma once
/// @file
/// `print_summary<Net>(os)`: the Keras-like table of a network: each layer with its output
/// shape, parameter count, forward FLOPs per sample, the activation memory it keeps per
/// sample for backward (its output and cache) and, for a convolution, the algorithm its shape
/// chose (a layer's `algorithm`, docs/performance.md), then the totals. The layers inside a residual
/// block are listed under it, indented.

#include <cstddef>
#include <iomanip>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

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

/// One row of the table, as plain values: the per-layer templates below only collect these,
/// and one function prints them (a template that printed would be compiled once per layer
/// type, for nothing).
struct summary_row {
    std::string label;
    shape output;
    std::size_t values = 0, flops = 0, bytes = 0;
    std::string_view algorithm{};
};

/// The layer before the K-th of a tuple of layers (void for the first).
template <std::size_t K, typename Layers>
struct layer_before {
    using type = std::tuple_element_t<K - 1, Layers>;
};
template <typename Layers>
struct layer_before<0, Layers> {
    using type = void;
};

/// The row of bound layer `L`, labelled `label`, and below it, for a composite layer (a
/// residual block), a row per inner layer, indented: the body, then the shortcut's layers
/// marked "shortcut:" (a concat block: each branch's, marked "branch k:"). An inner row's bytes are part of its block's. An activation layer
/// folded into the layer before it (`Before`; layer.hpp, `applies_output_activation`) shares
/// that layer's output: its row counts no output bytes.
template <typename L, typename Before = void>
void summary_rows(std::vector<summary_row>& rows, std::string label, const std::string& indent) {
    constexpr bool shares_output = [] {
        if constexpr (std::is_void_v<Before>) return false;
        else return folds_into<Before, L>();
    }();
    label.insert(0, indent);
    if constexpr (!activation_name<L>().empty()) label += " (" + std::string(activation_name<L>()) + ')';
    std::string_view algorithm{};
    if constexpr (requires { L::algorithm; }) algorithm = L::algorithm;
    rows.push_back({std::move(label), L::output_shape, L::parameter_count + L::state_count, L::flops_per_sample,
                    ((shares_output ? 0 : L::output_shape.size()) + L::cache_floats(1)) * sizeof(float), algorithm});
    if constexpr (composite_layer<L>) {
        const std::string inner_indent = indent + "  ";
        auto chain = [&]<typename... Inner>(std::tuple<Inner...>*, const std::string& prefix) {
            using chain_type = std::tuple<Inner...>;
            [&]<std::size_t... K>(std::index_sequence<K...>) {
                (summary_rows<std::tuple_element_t<K, chain_type>, typename layer_before<K, chain_type>::type>(
                     rows, prefix + std::string(std::tuple_element_t<K, chain_type>::name), inner_indent),
                 ...);
            }(std::index_sequence_for<Inner...>{});
        };
        if constexpr (branching_layer<L>) {
            // Each branch's layers marked with its number; an empty branch is the identity.
            [&]<typename... Branch>(std::tuple<Branch...>*) {
                std::size_t k = 0;
                const auto one = [&]<typename B>(B* b) {
                    const std::string prefix = "branch " + std::to_string(k++) + ": ";
                    if constexpr (std::tuple_size_v<B> == 0) rows.push_back({inner_indent + prefix + "identity", L::input_shape, 0, 0, 0});
                    else chain(b, prefix);
                };
                (one(static_cast<Branch*>(nullptr)), ...);
            }(static_cast<typename L::branch_layers*>(nullptr));
        } else {
            chain(static_cast<typename L::body_layers*>(nullptr), "");
            chain(static_cast<typename L::shortcut_layers*>(nullptr), "shortcut: ");
        }
    }
}

/// Totals of a network, under its rows.
struct summary_totals {
    std::size_t parameters = 0, trainable = 0, state = 0, flops = 0, activation_bytes = 0;
};

/// Prints the table: `layers` holds each top-level layer's rows (its own first, then its
/// inner layers').
inline void print_summary_table(std::ostream& os, shape input, const std::vector<std::vector<summary_row>>& layers,
                                const summary_totals& totals) {
    constexpr int name_w = 28, shape_w = 22, param_w = 12, flop_w = 14, bytes_w = 16, algorithm_w = 26;
    const std::string rule(name_w + shape_w + param_w + flop_w + bytes_w + algorithm_w, '_');
    const std::string double_rule(rule.size(), '=');
    auto row = [&](const std::string& layer, const std::string& output, const std::string& params,
                   const std::string& flops, const std::string& bytes, std::string_view algorithm) {
        os << ' ' << std::left << std::setw(name_w - 1) << layer << std::setw(shape_w) << output << std::right
           << std::setw(param_w) << params << std::setw(flop_w) << flops << std::setw(bytes_w) << bytes;
        if (!algorithm.empty()) os << "  " << algorithm;
        os << '\n';
    };
    os << "Model: \"sequential\"\n" << rule << '\n';
    row("Layer (type)", "Output Shape", "Param #", "FLOPs/sample", "Act. B/sample", "Algorithm");
    os << double_rule << '\n';
    row("input", to_string(input), "0", "0", "0", {});
    for (const auto& rows : layers) {
        os << rule << '\n';
        for (const auto& r : rows)
            row(r.label, to_string(r.output), thousands(r.values), thousands(r.flops), thousands(r.bytes), r.algorithm);
    }
    os << double_rule << '\n';
    os << "Total params: " << thousands(totals.parameters) << " (" << thousands(totals.parameters * sizeof(float))
       << " bytes)\n";
    os << "Trainable params: " << thousands(totals.trainable) << '\n';
    os << "Non-trainable params: " << thousands(totals.state) << '\n';
    os << "Forward FLOPs per sample: " << thousands(totals.flops) << '\n';
    os << "Activation memory per sample: " << thousands(totals.activation_bytes) << " bytes\n";
    os << "SIMD: " << simd::arch_name() << " (" << simd::float_lanes << " floats per register)";
    if (simd::narrower_than_cpu()) os << "; this CPU has " << simd::cpu_arch_name() << ": " << simd::wider_simd_advice;
    os << '\n' << rule << '\n';
}

}  // namespace detail

template <typename Net>
void print_summary(std::ostream& os) {
    std::vector<std::vector<detail::summary_row>> layers(Net::layer_count);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (detail::summary_rows<typename Net::template layer_type<I>,
                              typename detail::layer_before<I, typename Net::layers_type>::type>(
             layers[I], std::string(Net::template layer_type<I>::name) + '_' + std::to_string(I + 1), ""),
         ...);
    }(std::make_index_sequence<Net::layer_count>{});
    detail::print_summary_table(os, Net::input_shape, layers,
                                {.parameters = Net::parameter_count, .trainable = Net::trainable_parameter_count,
                                 .state = Net::state_count, .flops = Net::flops_per_sample,
                                 .activation_bytes = Net::activation_bytes_per_sample});
}

}  // namespace staticnet
