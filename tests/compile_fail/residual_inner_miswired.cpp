// expect: dense needs a vector input but the layer before it gives an image: add flatten before dense
// expect-gcc: layer_position = 3
// A mis-wired layer inside a block is reported like any other, at the block's position.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 4>, sn::relu, sn::residual<sn::batch_norm<>, sn::dense<4>>,
                           sn::global_average_pool2d, sn::dense<10>>;
int main() { return static_cast<int>(net::parameter_count); }
