// A layer without an ONNX mapping: the network trains, but save_onnx says what is missing.
// expect: this layer has no ONNX mapping: specialize staticnet::onnx::layer_mapping
#include <staticnet/staticnet.hpp>
#include <cstring>
namespace sn = staticnet;

template <sn::shape In, std::size_t Position>
struct copy_layer : sn::layer_defaults {
    static constexpr sn::shape input_shape = In, output_shape = In;
    static constexpr std::string_view name = "copy";
    static constexpr std::size_t flops_per_sample = 0;
    void forward(const sn::layer_context& ctx, const sn::forward_buffers& b) const {
        std::memcpy(b.output, b.input, ctx.batch * In.size() * sizeof(float));
    }
    void backward(const sn::layer_context&, const sn::backward_buffers&) const {}
};
struct copy {
    template <sn::shape In, std::size_t Position>
    using bind = copy_layer<In, Position>;
};

using net = sn::sequential<sn::input<4>, copy, sn::dense<2>>;
void save(const net& n) { sn::save_onnx(n, "net.onnx"); }
int main() {}
