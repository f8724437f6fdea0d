// expect: residual block changes the shape of its input, so the identity cannot be its shortcut: name a projection
// expect-gcc: layer_position = 4
// expect-clang: check_residual_wiring<4UL, 5UL, 14UL, 14UL, 16UL, 7UL, 7UL, 32UL, false
// A block that halves the image and doubles the channels, without the projection its
// shortcut needs: the message says so and names the block's position and both shapes.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
template <std::size_t F, std::size_t S = 1>
using conv = sn::conv2d<F, 3, sn::identity, S, sn::padding::same, sn::bias::none>;
using net = sn::sequential<sn::input<28, 28, 1>, conv<16>, sn::max_pool2d<2>, sn::relu,
                           sn::residual<conv<32, 2>, sn::batch_norm<>, sn::relu, conv<32>, sn::batch_norm<>>, sn::relu,
                           sn::global_average_pool2d, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
