#pragma once
/// @file
/// The CIFAR ResNet-20 (He et al. 2016, section 4.2) on 32x32x3 images, 10 classes: a 3x3
/// stem of 16 channels, three stages of three BasicBlocks with 16, 32 and 64 channels (the
/// first block of each later stage halving the image), global average pooling, a dense
/// classifier. The shortcuts that change shape are 1x1 projections with batch norm (the
/// paper's option B, as most PyTorch versions write it; option A pads with zero channels).
/// Twin: `resnet20()` in benchmarks/pytorch_zoo.py.
#include "blocks.hpp"

namespace zoo {

using resnet20 = staticnet::sequential<
    staticnet::input<32, 32, 3>, conv3x3<16>, torch_bn, staticnet::relu,                                   // 32x32x16
    basic_block<16>, staticnet::relu, basic_block<16>, staticnet::relu, basic_block<16>, staticnet::relu,  //
    down_block<32>, staticnet::relu, basic_block<32>, staticnet::relu, basic_block<32>, staticnet::relu,   // 16x16x32
    down_block<64>, staticnet::relu, basic_block<64>, staticnet::relu, basic_block<64>, staticnet::relu,   // 8x8x64
    staticnet::global_average_pool2d, staticnet::dense<10, staticnet::softmax>>;

}  // namespace zoo
