// expect: max_pool2d window does not fit its input image
// expect-gcc: layer_position = 7
// expect-clang: check_max_pool2d_wiring<7UL
// The reference CNN with one pooling layer too many: the fourth pool sees a 1x1 image.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<28, 28, 1>, sn::conv2d<32, 3, sn::relu>, sn::max_pool2d<2>,
                           sn::conv2d<64, 3, sn::relu>, sn::max_pool2d<2>, sn::conv2d<128, 3, sn::relu>,
                           sn::max_pool2d<2>, sn::max_pool2d<2>, sn::flatten, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
