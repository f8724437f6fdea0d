// expect: concat's branches give images of different heights or widths
// expect-gcc: layer_position = 1
// expect-gcc: same_image_size = false
// expect-clang: check_concat_wiring<1UL, 2UL, true, false
// expect: {14, 14, 8}
// expect: {7, 7, 16}
// An Inception-style block whose second branch halves the image: the message says the sizes
// differ, and names the block's position and every branch's output shape.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<14, 14, 1>,
                           sn::concat<sn::branch<sn::conv2d<8, 1, sn::relu>>,
                                      sn::branch<sn::conv2d<16, 3, sn::relu, 2, sn::padding::same>>>,
                           sn::global_average_pool2d, sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
