// expect: conv2d: the third argument must be an activation
// A layer where the activation belongs: conv2d<8, 3, dense<4>> is not an activation.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::dense<4>>, sn::flatten, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
