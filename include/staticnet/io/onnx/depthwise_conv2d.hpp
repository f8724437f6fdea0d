#pragma once
/// @file
/// ONNX mapping of `depthwise_conv2d` (layers/depthwise_conv2d.hpp): `Conv` with `group` equal
/// to the input channels and a [C * Multiplier, 1, K, K] kernel, as PyTorch exports
/// `Conv2d(C, C * M, K, groups=C)`.

#include "../../layers/depthwise_conv2d.hpp"
#include "conv2d.hpp"

namespace staticnet::onnx {

template <std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding, std::size_t Multiplier, bias Bias,
          shape In, std::size_t Position>
struct layer_mapping<staticnet::detail::depthwise_conv2d_layer<Kernel, Activation, Stride, Padding, Multiplier, Bias, In, Position>>
    : conv2d_mapping<staticnet::detail::depthwise_conv2d_layer<Kernel, Activation, Stride, Padding, Multiplier, Bias, In, Position>> {};

}  // namespace staticnet::onnx
