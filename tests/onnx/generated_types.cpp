// The types staticnet-onnx generated (at build time, from the PyTorch fixtures in
// tests/onnx/fixtures/) compile, take the files' weights through load_onnx_weights, and
// compute what PyTorch computed (the fixtures' JSON files hold inputs and PyTorch's outputs).
//
//   onnx_generated_types FIXTURES_DIR      (exit status 0 when every network matches)
#include <staticnet/io/onnx.hpp>
#include <staticnet/staticnet.hpp>

#include "grouped_dilated.generated.hpp"
#include "inception.generated.hpp"
#include "inverted_residual.generated.hpp"
#include "reference_cnn_torch.generated.hpp"
#include "resnet18_narrow.generated.hpp"
#include "shortcut_first.generated.hpp"
#include "small_torch.generated.hpp"
#include "smooth_activations.generated.hpp"
#include "zero_pad.generated.hpp"

#include "fixture_json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

using staticnet::testing::file_text;
using staticnet::testing::json_numbers;

/// Loads `name`.onnx into a `Net`; with a JSON file beside it, compares the outputs. Returns
/// whether everything held.
template <typename Net>
bool check(const fs::path& fixtures, const std::string& name) {
    auto net = std::make_unique<Net>();
    net->initialize(1);
    staticnet::load_onnx_weights(*net, fixtures / (name + ".onnx"));
    const std::string text = file_text(fixtures / (name + ".json"));
    const auto inputs = json_numbers(text, "inputs_nhwc");
    const auto expected = json_numbers(text, "outputs");
    if (inputs.empty()) {
        std::printf("%s: the generated type took the file's weights\n", name.c_str());
        return true;
    }
    const std::size_t n = inputs.size() / Net::input_shape.size();
    if (n * Net::input_shape.size() != inputs.size() || expected.size() != n * Net::output_shape.size()) {
        std::printf("%s: the fixture's sizes do not fit the generated type\n", name.c_str());
        return false;
    }
    staticnet::thread_pool pool(1);
    net->prepare(n);
    const float* out = net->forward(inputs.data(), {.batch = n, .training = false, .pool = &pool});
    float difference = 0.0f;
    for (std::size_t i = 0; i < expected.size(); ++i) difference = std::max(difference, std::abs(out[i] - expected[i]));
    const bool ok = difference < 1e-5f;
    std::printf("%s: max abs difference to PyTorch %.3g %s\n", name.c_str(), static_cast<double>(difference),
                ok ? "(ok)" : "(more than 1e-5)");
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: onnx_generated_types FIXTURES_DIR\n");
        return 2;
    }
    try {
        const fs::path fixtures = argv[1];
        bool ok = check<resnet18_narrow>(fixtures, "resnet18_narrow");
        ok &= check<shortcut_first>(fixtures, "shortcut_first");
        ok &= check<zero_pad>(fixtures, "zero_pad");
        ok &= check<inverted_residual>(fixtures, "inverted_residual");
        ok &= check<inception>(fixtures, "inception");
        ok &= check<smooth_activations>(fixtures, "smooth_activations");
        ok &= check<grouped_dilated>(fixtures, "grouped_dilated");
        ok &= check<small_torch>(fixtures, "small_torch");
        ok &= check<reference_cnn_torch>(fixtures, "reference_cnn_torch");
        return ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "onnx_generated_types: %s\n", e.what());
        return 1;
    }
}
