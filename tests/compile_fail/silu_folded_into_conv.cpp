// expect: this activation's derivative needs its input
// A convolution cannot fold silu in: it keeps its output, not its pre-activation.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::silu>, sn::flatten, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
