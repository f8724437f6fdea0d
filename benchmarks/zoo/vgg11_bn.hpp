#pragma once
/// @file
/// VGG-11 with batch norm on 32x32x3 images, 10 classes, as CIFAR versions write it: eight
/// 3x3 convolutions (64, 128, 256, 256, 512, 512, 512, 512 channels, padded 1, with bias),
/// each followed by batch norm and ReLU, five 2x2 max poolings down to 1x1x512, and one dense
/// classifier. Twin: `vgg11_bn()` in benchmarks/pytorch_zoo.py.
#include "blocks.hpp"

namespace zoo {

template <std::size_t Filters>
using vgg_conv = staticnet::conv2d<Filters, 3, staticnet::identity, 1, staticnet::padding::symmetric<1>>;

using vgg11_bn = staticnet::sequential<
    staticnet::input<32, 32, 3>,                                                                        //
    vgg_conv<64>, torch_bn, staticnet::relu, staticnet::max_pool2d<2>,                                  // 16x16
    vgg_conv<128>, torch_bn, staticnet::relu, staticnet::max_pool2d<2>,                                 // 8x8
    vgg_conv<256>, torch_bn, staticnet::relu, vgg_conv<256>, torch_bn, staticnet::relu, staticnet::max_pool2d<2>,  // 4x4
    vgg_conv<512>, torch_bn, staticnet::relu, vgg_conv<512>, torch_bn, staticnet::relu, staticnet::max_pool2d<2>,  // 2x2
    vgg_conv<512>, torch_bn, staticnet::relu, vgg_conv<512>, torch_bn, staticnet::relu, staticnet::max_pool2d<2>,  // 1x1
    staticnet::flatten, staticnet::dense<10, staticnet::softmax>>;

}  // namespace zoo
