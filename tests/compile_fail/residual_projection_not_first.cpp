// expect: projection<...> is allowed only as the first argument of residual<...>
// The projection written after the block's layers.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<14, 14, 16>,
                           sn::residual<sn::conv2d<32, 3, sn::identity, 2, sn::padding::same>, sn::batch_norm<>,
                                        sn::projection<sn::conv2d<32, 1, sn::identity, 2>, sn::batch_norm<>>>,
                           sn::global_average_pool2d, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
