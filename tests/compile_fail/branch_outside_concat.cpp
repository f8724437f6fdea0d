// expect: branch<...> is allowed only as an argument of concat<...>
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 4>, sn::branch<sn::conv2d<4, 1>>, sn::global_average_pool2d, sn::dense<10>>;
int main() { return static_cast<int>(net::parameter_count); }
