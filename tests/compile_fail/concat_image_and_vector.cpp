// expect: concat's branches must all give images or all give vectors
// A DenseNet-style identity branch beside a branch that flattens: an image and a vector
// cannot be concatenated.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 4>, sn::concat<sn::branch<>, sn::branch<sn::flatten, sn::dense<8>>>,
                           sn::global_average_pool2d, sn::dense<10>>;
int main() { return static_cast<int>(net::parameter_count); }
