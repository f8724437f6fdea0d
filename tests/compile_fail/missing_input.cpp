// expect: the first argument of sequential must be input<H, W, C> or input<N>
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::conv2d<8, 3>, sn::flatten, sn::dense<10>>;
int main() { return static_cast<int>(net::parameter_count); }
