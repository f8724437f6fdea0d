#pragma once
/// @file
/// The pieces the zoo's ResNets share, in PyTorch's conventions so that each network's
/// PyTorch twin (benchmarks/pytorch_zoo.py) is the same network: 3x3 convolutions padded by
/// one pixel on every side (`nn.Conv2d(padding=1)`), batch norm with PyTorch's defaults
/// (momentum 0.1, epsilon 1e-5), and torchvision's BasicBlock with a 1x1 stride-2 projection
/// where the shape changes.
#include <staticnet/staticnet.hpp>

#include <cstddef>

namespace zoo {

template <std::size_t Filters, std::size_t Stride = 1>
using conv3x3 = staticnet::conv2d<Filters, 3, staticnet::identity, Stride, staticnet::padding::symmetric<1>,
                                  staticnet::bias::none>;
using torch_bn = staticnet::batch_norm<0.9f, 1e-5f>;

/// torchvision's BasicBlock keeping the shape; the ReLU after the sum follows it.
template <std::size_t C>
using basic_block = staticnet::residual<conv3x3<C>, torch_bn, staticnet::relu, conv3x3<C>, torch_bn>;

/// BasicBlock halving the image and going to C channels, with its 1x1 stride-2 projection.
template <std::size_t C>
using down_block = staticnet::residual<
    staticnet::projection<staticnet::conv2d<C, 1, staticnet::identity, 2, staticnet::padding::valid, staticnet::bias::none>,
                          torch_bn>,
    conv3x3<C, 2>, torch_bn, staticnet::relu, conv3x3<C>, torch_bn>;

}  // namespace zoo
