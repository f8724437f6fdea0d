// Compiles: residual_without_projection.cpp with its projection, and a pre-activation block.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
template <std::size_t F, std::size_t S = 1>
using conv = sn::conv2d<F, 3, sn::identity, S, sn::padding::same, sn::bias::none>;
using net = sn::sequential<
    sn::input<28, 28, 1>, conv<16>, sn::max_pool2d<2>, sn::relu,
    sn::residual<sn::projection<sn::conv2d<32, 1, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
                 conv<32, 2>, sn::batch_norm<>, sn::relu, conv<32>, sn::batch_norm<>>,
    sn::residual<sn::batch_norm<>, sn::relu, conv<32>, sn::batch_norm<>, sn::relu, conv<32>>, sn::relu,
    sn::average_pool2d<2>, sn::global_average_pool2d, sn::dense<10, sn::softmax>>;
static_assert(net::output_shape == sn::shape{10});
int main() { return static_cast<int>(net::parameter_count); }
