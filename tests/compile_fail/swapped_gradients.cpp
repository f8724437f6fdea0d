// expect: swapped_gradients.cpp:13:
// expect-gcc: from 'buffer<staticnet::role::input_gradient,[...]>' to 'buffer<staticnet::role::output_gradient,[...]>'
// expect-clang: no viable conversion from 'const buffer<role::input_gradient, [...]>' to 'buffer<role::output_gradient, [...]>'
// A layer that runs another layer inside it, with the two gradient buffers swapped: each
// buffer's role is part of its type, so this does not compile (layers/layer_buffers.hpp).
// buffers_in_role.cpp is the same code without the swap, and compiles.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;
using inner = sn::dense<4>::bind<sn::shape{8}, 1>;
void inner_backward(const sn::layer_context& ctx, const sn::backward_buffers& b) {
    const sn::backward_buffers for_inner{.input = b.input,
                                         .output = b.output,
                                         .output_gradient = b.input_gradient,
                                         .input_gradient = b.output_gradient,
                                         .parameters = b.parameters,
                                         .parameter_gradients = b.parameter_gradients,
                                         .cache = b.cache};
    inner{}.backward(ctx, for_inner);
}
int main() {}
