#pragma once
// The ResNet-style network of examples/fashion_mnist_resnet.cpp, shared with the benchmarks:
// a 3x3 stem and max pooling, two stages of ResNet v1 basic blocks (the second halves the
// image and doubles the channels, with a 1x1 projection on the shortcut), global average
// pooling and a softmax classifier. Convolutions before a batch_norm have no bias (it would be
// subtracted again).
#include <staticnet/staticnet.hpp>

namespace resnet_example {
namespace sn = staticnet;

template <std::size_t Filters, std::size_t Stride = 1>
using conv3x3 = sn::conv2d<Filters, 3, sn::identity, Stride, sn::padding::same, sn::bias::none>;

/// Two 3x3 convolutions with batch_norm, the identity shortcut.
template <std::size_t Filters>
using basic_block = sn::residual<conv3x3<Filters>, sn::batch_norm<>, sn::relu, conv3x3<Filters>, sn::batch_norm<>>;

/// The same with stride 2 and a projection: half the image, `Filters` channels.
template <std::size_t Filters>
using down_block = sn::residual<sn::projection<sn::conv2d<Filters, 1, sn::identity, 2, sn::padding::same, sn::bias::none>,
                                               sn::batch_norm<>>,
                                conv3x3<Filters, 2>, sn::batch_norm<>, sn::relu, conv3x3<Filters>, sn::batch_norm<>>;

/// A 3x3 stem with `Width` channels, pooled to 14x14; a basic block; a block down to 7x7
/// with twice the channels and another basic block; global average pooling; the classifier.
template <std::size_t Width>
using network = sn::sequential<sn::input<28, 28, 1>,                                              //
                               conv3x3<Width>, sn::batch_norm<>, sn::relu, sn::max_pool2d<2>,      // 14x14
                               basic_block<Width>, sn::relu,                                      //
                               down_block<2 * Width>, sn::relu,                                   // 7x7
                               basic_block<2 * Width>, sn::relu,                                  //
                               sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

/// `network` with every residual block doubled (8 blocks instead of 4): only for
/// benchmarks/compile_time.sh, which checks that compile time grows linearly with depth.
template <std::size_t Width>
using network_twice_the_blocks =
    sn::sequential<sn::input<28, 28, 1>,                                                       //
                   conv3x3<Width>, sn::batch_norm<>, sn::relu, sn::max_pool2d<2>,              //
                   basic_block<Width>, sn::relu, basic_block<Width>, sn::relu,                 //
                   down_block<2 * Width>, sn::relu, basic_block<2 * Width>, sn::relu,          //
                   basic_block<2 * Width>, sn::relu, basic_block<2 * Width>, sn::relu,         //
                   basic_block<2 * Width>, sn::relu, basic_block<2 * Width>, sn::relu,         //
                   sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

}  // namespace resnet_example

#if STATICNET_RESNET_TWICE_THE_BLOCKS
using resnet_cnn = resnet_example::network_twice_the_blocks<32>;
#else
using resnet_cnn = resnet_example::network<32>;
#endif
static_assert(resnet_cnn::output_shape == staticnet::shape{10});
