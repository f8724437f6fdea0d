// expect: residual block's projection gives a shape that differs from the output of its layers
// expect-gcc: layer_position = 2
// expect-clang: check_residual_wiring<2UL
// The projection forgot the stride: it keeps 14x14 while the block's layers give 7x7.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<14, 14, 16>, sn::relu,
                           sn::residual<sn::projection<sn::conv2d<32, 1>, sn::batch_norm<>>,
                                        sn::conv2d<32, 3, sn::identity, 2, sn::padding::same>, sn::batch_norm<>>,
                           sn::global_average_pool2d, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
