// expect: concat needs at least one branch<...>
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 4>, sn::concat<>, sn::global_average_pool2d, sn::dense<10>>;
int main() { return static_cast<int>(net::parameter_count); }
