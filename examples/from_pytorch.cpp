// From PyTorch to staticnet: a network trained in PyTorch goes on training here.
//
// tests/onnx/fixtures/reference_cnn_torch.onnx is the reference CNN trained one epoch in
// PyTorch and exported with torch.onnx.export (tests/onnx/make_torch_fixture.py; docs/onnx.md
// shows the export). At build time staticnet-onnx reads that file and writes the staticnet
// type of its network into pytorch_reference_cnn.hpp: nobody wrote the type below by hand.
// This program loads the file's weights into it, evaluates it on the Fashion-MNIST test set
// (PyTorch measured 0.8415), trains it one more epoch with staticnet, evaluates again and
// writes the result back out as ONNX. Exit status 1 when the imported accuracy is not
// PyTorch's or training lost it.
//
//   from_pytorch [FILE.onnx] [OUT.onnx]     (exit status 77 when the data set is not installed)
#include <staticnet/io/onnx.hpp>
#include <staticnet/staticnet.hpp>

#include "pytorch_reference_cnn.hpp"  // generated: using pytorch_reference_cnn = staticnet::sequential<...>;

#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>

namespace sn = staticnet;

int main(int argc, char** argv) {
    const std::filesystem::path file = argc > 1 ? argv[1] : STATICNET_PYTORCH_FILE;
    const std::filesystem::path out = argc > 2 ? argv[2] : "from_pytorch.onnx";
    if (!std::filesystem::exists(sn::data::default_fashion_mnist_dir)) {
        std::printf("SKIP: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)\n");
        return 77;
    }
    try {
        const auto data = sn::data::load_fashion_mnist();
        sn::model<pytorch_reference_cnn, sn::adam, sn::sparse_categorical_crossentropy> m({.learning_rate = 1e-3f});
        m.summary(std::cout);
        sn::load_onnx_weights(m.network(), file);
        m.mark_synchronized();
        const auto imported = m.evaluate(data.test);
        std::printf("PyTorch's weights: test accuracy %.4f\n", imported.accuracy);
        m.fit(data.train, {.epochs = 1, .batch_size = 32, .seed = 1, .verbose = false});
        const auto trained = m.evaluate(data.test);
        std::printf("after one more epoch in staticnet: test accuracy %.4f\n", trained.accuracy);
        sn::save_onnx(m, out);
        std::printf("wrote %s\n", out.string().c_str());
        // PyTorch measured 0.8415 with these weights; training on must not lose what was imported.
        return imported.accuracy > 0.83 && trained.accuracy > imported.accuracy - 0.02 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "from_pytorch: %s\n", e.what());
        return 1;
    }
}
