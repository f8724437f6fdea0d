// expect: depthwise_conv2d needs an image input
// expect-gcc: layer_position = 3
// A depthwise convolution after flatten: its input is a vector, not an image.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 4>, sn::depthwise_conv2d<3, sn::relu6>, sn::flatten, sn::depthwise_conv2d<3>,
                           sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
