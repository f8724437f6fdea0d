// The control case: the reference CNN must compile, or the failures above prove nothing.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<28, 28, 1>, sn::conv2d<32, 3, sn::relu>, sn::max_pool2d<2>,
                           sn::conv2d<64, 3, sn::relu>, sn::max_pool2d<2>, sn::conv2d<128, 3, sn::relu>,
                           sn::max_pool2d<2>, sn::flatten, sn::dense<128, sn::relu>, sn::dense<10, sn::softmax>>;
static_assert(net::parameter_count == 110474);
int main() { return 0; }
