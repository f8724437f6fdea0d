#pragma once
// The reference network of docs/architecture.md (Keras notation):
//   Conv2D(32, 3x3, relu) -> MaxPool 2x2 -> Conv2D(64, 3x3, relu) -> MaxPool 2x2
//   -> Conv2D(128, 3x3, relu) -> MaxPool 2x2 -> Flatten -> Dense(128, relu) -> Dense(10, softmax)
// shared by the Fashion-MNIST example and the benchmarks.
#include <staticnet/staticnet.hpp>

using reference_cnn = staticnet::sequential<staticnet::input<28, 28, 1>,                                        //
                                            staticnet::conv2d<32, 3, staticnet::relu>, staticnet::max_pool2d<2>,  //
                                            staticnet::conv2d<64, 3, staticnet::relu>, staticnet::max_pool2d<2>,  //
                                            staticnet::conv2d<128, 3, staticnet::relu>, staticnet::max_pool2d<2>, //
                                            staticnet::flatten,                                                   //
                                            staticnet::dense<128, staticnet::relu>,                               //
                                            staticnet::dense<10, staticnet::softmax>>;

static_assert(reference_cnn::output_shape == staticnet::shape{10});
static_assert(reference_cnn::parameter_count == 110474, "the same count as Keras");
