// expect: conv2d needs an image input
// expect-gcc: layer_position = 2
// expect-clang: check_conv2d_wiring<2UL, 1UL
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<28, 28, 1>, sn::flatten, sn::conv2d<8, 3>>;
int main() { return static_cast<int>(net::parameter_count); }
