// Compiles: swapped_gradients.cpp without the swap.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using inner = sn::dense<4>::bind<sn::shape{8}, 1>;
void inner_backward(const sn::layer_context& ctx, const sn::backward_buffers& b) {
    const sn::backward_buffers for_inner{.input = b.input,
                                         .output = b.output,
                                         .output_gradient = b.output_gradient,
                                         .input_gradient = b.input_gradient,
                                         .parameters = b.parameters,
                                         .parameter_gradients = b.parameter_gradients,
                                         .cache = b.cache};
    inner{}.backward(ctx, for_inner);
}
int main() {}
