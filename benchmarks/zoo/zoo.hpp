#pragma once
/// @file
/// The model zoo the speed claims stand on: each network a staticnet type here and a PyTorch
/// twin in benchmarks/pytorch_zoo.py (the same layers and parameter count, batch norm's
/// moving statistics aside), keyed by the names below. `for_each_network` calls `f` with a
/// `network<Net>` for each; bench_zoo and the parameter-count test use it.
#include "../../examples/reference_cnn.hpp"
#include "../../examples/resnet_cnn.hpp"
#include "mobilenet.hpp"
#include "resnet18.hpp"
#include "resnet20.hpp"
#include "vgg11_bn.hpp"

#include <cstddef>
#include <string_view>

namespace zoo {

/// A network of the zoo: its key, its type and the batch its benchmark trains with.
template <typename Net>
struct network {
    using type = Net;
    std::string_view key;
    std::size_t batch = 32;
};

template <typename F>
void for_each_network(F&& f) {
    f(network<::reference_cnn>{"reference_cnn"});  // the seed's CNN, 28x28x1 (examples/reference_cnn.hpp)
    f(network<::resnet_cnn>{"resnet_example"});    // the ResNet example, 28x28x1 (examples/resnet_cnn.hpp)
    f(network<resnet18>{"resnet18"});
    f(network<resnet20>{"resnet20"});
    f(network<vgg11_bn>{"vgg11_bn"});
    f(network<mobilenet>{"mobilenet"});
}

}  // namespace zoo
