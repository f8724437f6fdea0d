// The same layer as misspelled_trait.cpp with the trait spelled right: it compiles, and the
// network knows that its samples are not independent.
#include <staticnet/staticnet.hpp>
namespace sn = staticnet;

template <sn::shape In>
struct batch_centering_layer : sn::layer_defaults {
    static constexpr std::string_view name = "batch_centering";
    static constexpr sn::shape input_shape = In;
    static constexpr sn::shape output_shape = In;
    static constexpr std::size_t flops_per_sample = In.size();
    static constexpr sn::layer_traits traits{.batch_statistics = true};
    void forward(const sn::layer_context&, const sn::forward_buffers&) const {}
    void backward(const sn::layer_context&, const sn::backward_buffers&) const {}
};
struct batch_centering {
    template <sn::shape In, std::size_t>
    using bind = batch_centering_layer<In>;
};

using net = sn::sequential<sn::input<8>, batch_centering, sn::dense<2>>;
static_assert(!net::samples_independent);
int main() { return 0; }
