// expect: its dilated span) is larger than its (padded) input image
// expect-gcc: layer_position = 1
// A 3x3 kernel of dilation 3 spans 7 pixels: more than the 6x6 image without padding.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<6, 6, 2>, sn::conv2d<4, 3, sn::relu, 1, sn::padding::valid, sn::bias::use, 1, 3>,
                           sn::flatten, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
