#pragma once
/// @file
/// A MobileNetV2 (Sandler et al. 2018) for 32x32x3 images, 10 classes: inverted residual
/// blocks, each a 1x1 expansion to 6 times the channels, a 3x3 depthwise convolution and a 1x1
/// projection, batch norm after each and ReLU6 after the first two; the input added back where
/// the block keeps the shape. Stages of 16, 24, 32 and 64 channels (the last three starting with
/// a stride-2 depthwise convolution: 32x32 -> 4x4), a 1x1 head of 256 channels, global average
/// pooling, a dense classifier. Twin: `mobilenet()` in benchmarks/pytorch_zoo.py.
#include "blocks.hpp"

namespace zoo {

namespace mobile {
using staticnet::relu6;
/// A 1x1 convolution without bias (batch norm follows).
template <std::size_t Filters>
using pointwise = staticnet::conv2d<Filters, 1, staticnet::identity, 1, staticnet::padding::valid, staticnet::bias::none>;
/// A 3x3 depthwise convolution padded by one pixel (PyTorch's padding=1), without bias.
template <std::size_t Stride>
using depthwise = staticnet::depthwise_conv2d<3, staticnet::identity, Stride, staticnet::padding::symmetric<1>, 1,
                                              staticnet::bias::none>;
/// The inverted residual block that keeps its shape: C channels, expanded to 6 C.
template <std::size_t C>
using inverted_residual = staticnet::residual<pointwise<6 * C>, torch_bn, relu6, depthwise<1>, torch_bn, relu6,
                                              pointwise<C>, torch_bn>;
}  // namespace mobile

// The blocks that change the shape have no shortcut, so their layers are written out. The
// input is a parameter: `mobilenet` is the zoo's (32x32x3), and examples/fashion_mnist_mobilenet.cpp
// trains `mobilenet_for<staticnet::input<28, 28, 1>>` (28 -> 14 -> 7 -> 4 through the stages).
template <typename Input>
using mobilenet_for = staticnet::sequential<
    Input, conv3x3<32>, torch_bn, mobile::relu6,                                                                 // 32x32x32
    mobile::depthwise<1>, torch_bn, mobile::relu6, mobile::pointwise<16>, torch_bn,                              // 32x32x16 (t = 1)
    mobile::pointwise<96>, torch_bn, mobile::relu6, mobile::depthwise<2>, torch_bn, mobile::relu6,               //
    mobile::pointwise<24>, torch_bn, mobile::inverted_residual<24>,                                              // 16x16x24
    mobile::pointwise<144>, torch_bn, mobile::relu6, mobile::depthwise<2>, torch_bn, mobile::relu6,              //
    mobile::pointwise<32>, torch_bn, mobile::inverted_residual<32>, mobile::inverted_residual<32>,               // 8x8x32
    mobile::pointwise<192>, torch_bn, mobile::relu6, mobile::depthwise<2>, torch_bn, mobile::relu6,              //
    mobile::pointwise<64>, torch_bn, mobile::inverted_residual<64>,                                              // 4x4x64
    mobile::pointwise<256>, torch_bn, mobile::relu6, staticnet::global_average_pool2d,                           //
    staticnet::dense<10, staticnet::softmax>>;

using mobilenet = mobilenet_for<staticnet::input<32, 32, 3>>;

}  // namespace zoo
