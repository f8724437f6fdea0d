// expect: dense needs a vector input but the layer before it gives an image: add flatten before dense
// expect-gcc: layer_position = 3
// expect-clang: check_dense_wiring<3UL, 3UL, 13UL
// expect-gcc: input_height = 13
// Forgot the flatten between the convolutional part and the classifier.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using net = sn::sequential<sn::input<28, 28, 1>, sn::conv2d<32, 3, sn::relu>, sn::max_pool2d<2>,
                           sn::dense<10, sn::softmax>>;
int main() { return static_cast<int>(net::parameter_count); }
