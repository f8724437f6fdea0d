// expect: conv2d kernel is larger than its (padded) input image
// expect-gcc: layer_position = 3
// expect-clang: check_conv2d_wiring<3UL, 3UL, 5UL, 1UL, false
// A 5x5 kernel after two poolings of a 12x12 image (3x3 left).
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<12, 12, 1>, sn::max_pool2d<2>, sn::max_pool2d<2>, sn::conv2d<8, 5, sn::relu>,
                           sn::flatten, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
