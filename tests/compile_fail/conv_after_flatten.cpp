// expect: conv2d needs an image input
// expect: layer_position = 2
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<28, 28, 1>, sn::flatten, sn::conv2d<8, 3>>;
int main() { return static_cast<int>(net::parameter_count); }
