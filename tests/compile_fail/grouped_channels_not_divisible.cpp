// expect: the input channels must divide into the groups
// expect-gcc: layer_position = 2
// Three groups of a 4-channel input: the channels cannot be shared out evenly.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3>,
                           sn::conv2d<6, 3, sn::relu, 1, sn::padding::same, sn::bias::use, 3>, sn::flatten,
                           sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
