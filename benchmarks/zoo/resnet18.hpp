#pragma once
/// @file
/// ResNet-18 in torchvision's layout on 64x64x3 images (Tiny-ImageNet's size), 200 classes:
/// a 7x7 stride-2 stem padded 3 without bias, batch norm, ReLU, 3x3 stride-2 max pooling
/// padded 1, two BasicBlocks in each of four stages of 64-128-256-512 channels (the first of
/// each later stage halving the image, with a 1x1 projection), global average pooling and a
/// dense classifier. Twin: `torchvision.models.resnet18(num_classes=200)`.
#include "blocks.hpp"

namespace zoo {

using resnet18 = staticnet::sequential<
    staticnet::input<64, 64, 3>,
    staticnet::conv2d<64, 7, staticnet::identity, 2, staticnet::padding::symmetric<3>, staticnet::bias::none>, torch_bn,
    staticnet::relu, staticnet::max_pool2d<3, 2, staticnet::padding::symmetric<1>>,          // 16x16x64
    basic_block<64>, staticnet::relu, basic_block<64>, staticnet::relu,                       //
    down_block<128>, staticnet::relu, basic_block<128>, staticnet::relu,                      // 8x8x128
    down_block<256>, staticnet::relu, basic_block<256>, staticnet::relu,                      // 4x4x256
    down_block<512>, staticnet::relu, basic_block<512>, staticnet::relu,                      // 2x2x512
    staticnet::global_average_pool2d, staticnet::dense<200, staticnet::softmax>>;

}  // namespace zoo
