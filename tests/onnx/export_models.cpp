// Trains two networks briefly on Fashion-MNIST and writes, into OUT_DIR, for each: the ONNX
// file (save_onnx), the first 1,000 test images and staticnet's `predict` probabilities for
// them (raw little-endian float32, NHWC and [1000, 10]). check_interop.py runs them through
// onnx.checker and OpenCV's dnn module and compares.
//
//   export_models OUT_DIR        (exit status 77 when the data set is not installed)
#include <staticnet/io/onnx.hpp>
#include <staticnet/staticnet.hpp>

#include "reference_cnn.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>

namespace sn = staticnet;
namespace fs = std::filesystem;

namespace {

// Every layer kind besides the reference CNN's: stride-2 same-padding convolution,
// batch_norm (on images and on features), standalone tanh, sigmoid and relu, dropout.
using every_layer = sn::sequential<sn::input<28, 28, 1>, sn::conv2d<8, 3, sn::identity, 2, sn::padding::same>,
                                   sn::batch_norm<0.9f, 1e-3f>, sn::tanh, sn::max_pool2d<2>,
                                   sn::conv2d<16, 3, sn::sigmoid, 1, sn::padding::same>, sn::dropout<0.25f>, sn::flatten,
                                   sn::dense<32>, sn::batch_norm<0.9f, 1e-5f>, sn::relu, sn::dense<10, sn::softmax>>;

// The layers of a small ResNet: convolutions without bias, batch_norm, residual blocks with
// an identity shortcut and with a projection, average and global average pooling.
using conv_bn = sn::conv2d<8, 3, sn::identity, 1, sn::padding::same, sn::bias::none>;
using resnet_layers = sn::sequential<
    sn::input<28, 28, 1>, sn::conv2d<8, 3, sn::relu, 1, sn::padding::same>, sn::average_pool2d<2>,
    sn::residual<conv_bn, sn::batch_norm<>, sn::relu, conv_bn, sn::batch_norm<>>, sn::relu,
    sn::residual<sn::projection<sn::conv2d<16, 1, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
                 sn::conv2d<16, 3, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::relu,
                 sn::conv2d<16, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
    sn::relu, sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

// PyTorch's padding: a stride-2 convolution padded 1 and 1 on an even size, max pooling
// padded with -infinity (torchvision's stem), a lopsided explicit padding, and average
// pooling whose zeros count in the mean (a zero Pad, then AveragePool); leaky_relu
// (LeakyRelu), on its own and folded into a convolution. (Not relu6: OpenCV 4.6 has no Clip
// with its bounds as inputs, the only form since opset 11; test_onnx round-trips it.)
using torch_padding = sn::sequential<
    sn::input<28, 28, 1>, sn::conv2d<8, 3, sn::identity, 2, sn::padding::symmetric<1>>, sn::batch_norm<>,
    sn::max_pool2d<3, 2, sn::padding::symmetric<1>>, sn::leaky_relu<0.1f>,
    sn::conv2d<16, 3, sn::leaky_relu<0.2f>, 1, sn::padding::explicit_<2, 0, 1, 1>>,
    sn::average_pool2d<3, 2, sn::padding::symmetric<1>>, sn::conv2d<16, 3, sn::relu, 1, sn::padding::symmetric<1>>,
    sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

// MobileNet's depthwise-separable convolutions (Conv with group = channels): one with
// batch_norm after it, one strided with a channel multiplier of 2 and leaky_relu folded in.
using depthwise = sn::sequential<
    sn::input<28, 28, 1>, sn::conv2d<8, 3, sn::relu, 2, sn::padding::symmetric<1>>,
    sn::depthwise_conv2d<3, sn::identity, 1, sn::padding::symmetric<1>, 1, sn::bias::none>, sn::batch_norm<>, sn::relu,
    sn::conv2d<16, 1, sn::relu>, sn::depthwise_conv2d<3, sn::leaky_relu<0.1f>, 2, sn::padding::same, 2>,
    sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

// Grouped and dilated convolutions (Conv with group and dilations): ResNeXt's grouped 3x3,
// an atrous 3x3 of dilation 2 keeping the size, both at once with stride 2.
using grouped = sn::sequential<
    sn::input<28, 28, 1>, sn::conv2d<16, 3, sn::relu, 2, sn::padding::symmetric<1>>,
    sn::conv2d<16, 3, sn::identity, 1, sn::padding::symmetric<1>, sn::bias::none, 4>, sn::batch_norm<>, sn::relu,
    sn::conv2d<16, 3, sn::relu, 1, sn::padding::symmetric<2>, sn::bias::use, 1, 2>,
    sn::conv2d<16, 3, sn::relu, 2, sn::padding::symmetric<2>, sn::bias::use, 2, 2>, sn::global_average_pool2d,
    sn::dense<10, sn::softmax>>;

// Activations whose derivative needs their input, each a layer of its own, written as PyTorch
// writes them at opset 13: silu (Sigmoid, Mul), gelu (Erf; the tanh form), hard_swish
// (HardSigmoid, Mul).
using smooth_activations = sn::sequential<
    sn::input<28, 28, 1>, sn::conv2d<8, 3, sn::identity, 2, sn::padding::symmetric<1>>, sn::batch_norm<>, sn::silu,
    sn::conv2d<16, 3, sn::identity, 1, sn::padding::same>, sn::gelu<>, sn::max_pool2d<2>,
    sn::conv2d<16, 3, sn::identity, 1, sn::padding::same>, sn::gelu<sn::gelu_approximation::tanh>, sn::conv2d<16, 1>,
    sn::hard_swish, sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

// Concatenated branches (Concat, axis 1): an Inception-style block (1x1, 3x3 and pooled
// branches) and a DenseNet-style one (the input itself and new features).
using concat_branches = sn::sequential<
    sn::input<28, 28, 1>, sn::conv2d<8, 3, sn::relu, 2, sn::padding::same>,
    sn::concat<sn::branch<sn::conv2d<4, 1, sn::relu>>,
               sn::branch<sn::conv2d<8, 3, sn::identity, 1, sn::padding::same, sn::bias::none>, sn::batch_norm<>, sn::relu>,
               sn::branch<sn::max_pool2d<3, 1, sn::padding::same>, sn::conv2d<4, 1, sn::relu>>>,
    sn::max_pool2d<2>,
    sn::concat<sn::branch<>, sn::branch<sn::batch_norm<>, sn::relu, sn::conv2d<8, 3, sn::identity, 1, sn::padding::same>>>,
    sn::global_average_pool2d, sn::dense<10, sn::softmax>>;

void write_floats(const fs::path& file, const float* data, std::size_t n) {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(float)));
    if (!out) throw sn::error("cannot write '" + file.string() + "'");
}

template <typename Net>
void train_and_export(const sn::data::train_test& data, std::size_t steps, const fs::path& out, const char* name) {
    sn::model<Net, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.seed = 3});
    sn::data::dataset part;
    part.images = xt::view(data.train.images, xt::range(0, steps * 32));
    part.labels = xt::view(data.train.labels, xt::range(0, steps * 32));
    part.num_classes = data.train.num_classes;
    m.fit(part, {.epochs = 1, .batch_size = 32, .seed = 3, .verbose = false});
    const xt::xtensor<float, 4> images = xt::view(data.test.images, xt::range(0, 1000));
    const xt::xtensor<float, 2> probabilities = m.predict(images);
    sn::save_onnx(m, out / (std::string(name) + ".onnx"));
    write_floats(out / (std::string(name) + ".images.f32"), images.data(), images.size());
    write_floats(out / (std::string(name) + ".probabilities.f32"), probabilities.data(), probabilities.size());
    std::size_t correct = 0;
    for (std::size_t i = 0; i < 1000; ++i) {
        const auto row = xt::row(probabilities, static_cast<std::ptrdiff_t>(i));
        correct += static_cast<std::int32_t>(std::max_element(row.begin(), row.end()) - row.begin()) == data.test.labels(i);
    }
    std::printf("%s: trained %zu steps, accuracy on the first 1000 test images %.3f\n", name, steps,
                static_cast<double>(correct) / 1000.0);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: export_models OUT_DIR\n");
        return 2;
    }
    if (!fs::exists(sn::data::default_fashion_mnist_dir)) {
        std::printf("SKIP: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)\n");
        return 77;
    }
    try {
        const fs::path out = argv[1];
        fs::create_directories(out);
        const auto data = sn::data::load_fashion_mnist();
        train_and_export<reference_cnn>(data, 300, out, "reference_cnn");
        train_and_export<every_layer>(data, 100, out, "every_layer");
        train_and_export<resnet_layers>(data, 100, out, "resnet_layers");
        train_and_export<torch_padding>(data, 100, out, "torch_padding");
        train_and_export<depthwise>(data, 100, out, "depthwise");
        train_and_export<smooth_activations>(data, 100, out, "smooth_activations");
        train_and_export<concat_branches>(data, 100, out, "concat_branches");
        train_and_export<grouped>(data, 100, out, "grouped");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "export_models: %s\n", e.what());
        return 1;
    }
    return 0;
}
