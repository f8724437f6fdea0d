// ONNX: the protobuf wire format, the file model, export, import (from save_onnx's files, from
// PyTorch's layouts, and the committed PyTorch fixture), and every kind of bad file.
#include <catch2/catch.hpp>

#include "reference_cnn.hpp"
#include "onnx/fixture_json.hpp"
#include "temp_dir.hpp"

#include <staticnet/io/onnx.hpp>
#include <staticnet/staticnet.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace sn = staticnet;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

using small_cnn = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::relu>, sn::max_pool2d<2>, sn::flatten,
                                 sn::dense<5, sn::relu>, sn::dense<3, sn::softmax>>;
// Every other layer kind: stride-2 same-padding convolution, batch_norm on images and on
// features, standalone activations, dropout.
using every_layer = sn::sequential<sn::input<9, 9, 2>, sn::conv2d<4, 3, sn::identity, 2, sn::padding::same>,
                                   sn::batch_norm<0.9f, 1e-3f>, sn::tanh, sn::max_pool2d<2, 1>,
                                   sn::conv2d<3, 3, sn::sigmoid, 1, sn::padding::same>, sn::dropout<0.25f>, sn::flatten,
                                   sn::dense<6, sn::identity>, sn::batch_norm<0.9f, 1e-5f>, sn::relu,
                                   sn::dense<3, sn::softmax>>;

using conv_bn = sn::conv2d<4, 3, sn::identity, 1, sn::padding::same, sn::bias::none>;
using resnet_layers = sn::sequential<
    sn::input<8, 8, 2>, sn::conv2d<4, 3, sn::relu, 1, sn::padding::same>, sn::average_pool2d<2>,
    sn::residual<conv_bn, sn::batch_norm<>, sn::relu, conv_bn, sn::batch_norm<>>, sn::relu,
    sn::residual<sn::projection<sn::conv2d<6, 1, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
                 sn::conv2d<6, 3, sn::identity, 2, sn::padding::same, sn::bias::none>, sn::batch_norm<>>,
    sn::relu, sn::global_average_pool2d, sn::dense<3, sn::softmax>>;

// Random parameters and state in every layer (the arenas' alignment padding stays zero).
template <typename Net>
void randomize(Net& net, std::uint64_t seed) {
    sn::rng g(seed);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((std::ranges::for_each(net.template layer_parameters<I>(), [&](float& v) { v = g.uniform() - 0.5f; }),
          std::ranges::for_each(net.template layer_state<I>(), [&](float& v) { v = g.uniform() + 0.25f; })),
         ...);
    }(std::make_index_sequence<Net::layer_count>{});
}

template <typename Net>
std::vector<float> contents(const Net& net) {
    std::vector<float> v(net.parameters().begin(), net.parameters().end());
    v.insert(v.end(), net.state().begin(), net.state().end());
    return v;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// save_onnx of a `Net` randomized with `seed`, then load_onnx_weights into another one:
// whether every parameter and state value came back bit for bit.
template <typename Net>
bool round_trips(const fs::path& file, std::uint64_t seed) {
    Net a, b;
    randomize(a, seed);
    b.initialize(seed + 1);
    sn::save_onnx(a, file);
    sn::load_onnx_weights(b, file);
    return bitwise_equal(contents(a), contents(b));
}

template <typename Net>
std::string load_error(Net& net, const fs::path& file) {
    try {
        sn::load_onnx_weights(net, file);
    } catch (const sn::error& e) {
        return e.what();
    }
    return "(no error)";
}

void write_bytes(const fs::path& file, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> read_bytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

template <typename Net>
xt::xtensor<float, 2> forward(Net& net, const xt::xtensor<float, 4>& images) {
    sn::thread_pool pool(1);
    const std::size_t n = images.shape()[0];
    net.prepare(n);
    const float* out = net.forward(images.data(), {.batch = n, .training = false, .pool = &pool});
    xt::xtensor<float, 2> result = xt::zeros<float>({n, Net::output_shape.size()});
    std::copy_n(out, result.size(), result.data());
    return result;
}

std::vector<std::string> op_types(const sn::onnx::model& m) {
    std::vector<std::string> ops;
    for (const auto& n : m.nodes) ops.push_back(n.op_type);
    return ops;
}

sn::onnx::tensor* initializer(sn::onnx::model& m, const std::string& name) {
    for (auto& t : m.initializers)
        if (t.name == name) return &t;
    return nullptr;
}

using staticnet::testing::file_text;
using staticnet::testing::json_numbers;

}  // namespace

TEST_CASE("the protobuf wire format round-trips and refuses malformed messages", "[onnx][protobuf]") {
    namespace d = sn::detail;
    d::protobuf_writer inner;
    inner.string_field(1, "name");
    d::protobuf_writer w;
    w.varint_field(1, 300);
    w.varint_field(2, -2);
    w.float_field(3, 1.5f);
    w.message_field(4, inner);
    const std::vector<float> floats{1.0f, -2.0f};
    w.packed_floats(5, floats);
    const std::vector<std::int64_t> ints{1, 1000, -1};
    w.packed_varints(6, ints);

    d::protobuf_reader r(w.bytes());
    d::protobuf_field f;
    REQUIRE(r.next(f));
    CHECK((f.field == 1 && f.number == 300));
    REQUIRE(r.next(f));
    CHECK(f.as_int() == -2);
    REQUIRE(r.next(f));
    CHECK(f.as_float() == 1.5f);
    REQUIRE(r.next(f));
    auto nested = d::protobuf_reader::nested(f);
    d::protobuf_field g;
    REQUIRE(nested.next(g));
    CHECK(g.as_string() == "name");
    CHECK_FALSE(nested.next(g));
    REQUIRE(r.next(f));
    std::vector<float> fs_read;
    d::protobuf_reader::append_floats(f, fs_read);
    CHECK(fs_read == floats);
    REQUIRE(r.next(f));
    std::vector<std::int64_t> is_read;
    d::protobuf_reader::append_varints(f, is_read);
    CHECK(is_read == ints);
    CHECK_FALSE(r.next(f));

    auto error_of = [](std::vector<std::uint8_t> bytes) -> std::string {
        try {
            d::protobuf_reader bad(bytes);
            d::protobuf_field x;
            while (bad.next(x)) {
            }
        } catch (const d::protobuf_error& e) {
            return e.what();
        }
        return "(no error)";
    };
    CHECK_THAT(error_of({0x08, 0x80}), Contains("byte 1") && Contains("ends inside a varint"));
    CHECK_THAT(error_of({0x12, 0x05, 0x01}), Contains("announces 5 bytes, 1 are left"));
    CHECK_THAT(error_of({0x0B}), Contains("wire type 3"));
    CHECK_THAT(error_of({0x0D, 0x01}), Contains("needs 4 bytes"));
    CHECK_THAT(error_of({0x00}), Contains("field number 0"));
    CHECK_THAT(error_of(std::vector<std::uint8_t>(12, 0xFF)), Contains("longer than 10 bytes"));
}

TEST_CASE("save_onnx writes the graph staticnet computes, NHWC in, symbolic batch", "[onnx][export]") {
    small_cnn net;
    net.initialize(3);
    const auto m = sn::to_onnx_model(net);
    CHECK(m.ir_version == 7);
    REQUIRE(m.opsets.size() == 1);
    CHECK(m.opsets[0].version == 13);
    CHECK(op_types(m) == std::vector<std::string>{"Transpose", "Conv", "Relu", "MaxPool", "Transpose", "Flatten", "Gemm",
                                                  "Relu", "Gemm", "Softmax"});
    REQUIRE(m.inputs.size() == 1);
    CHECK(m.inputs[0].name == "input");
    REQUIRE(m.inputs[0].dims.size() == 4);
    CHECK(m.inputs[0].dims[0].param == "N");
    CHECK((m.inputs[0].dims[1].value == 8 && m.inputs[0].dims[2].value == 8 && m.inputs[0].dims[3].value == 1));
    REQUIRE(m.outputs.size() == 1);
    CHECK(m.outputs[0].name == "output");
    CHECK(m.nodes.back().outputs[0] == "output");
    CHECK(m.initializers.size() == 6);
    const auto* gemm = &m.nodes[6];
    CHECK(gemm->find("transB")->i == 1);

    // The file decodes to the same model.
    const auto decoded = sn::onnx::decode(sn::onnx::encode(m));
    CHECK(op_types(decoded) == op_types(m));
    REQUIRE(decoded.initializers.size() == m.initializers.size());
    for (std::size_t i = 0; i < m.initializers.size(); ++i) {
        CHECK(decoded.initializers[i].name == m.initializers[i].name);
        CHECK(decoded.initializers[i].dims == m.initializers[i].dims);
        CHECK(bitwise_equal(decoded.initializers[i].floats, m.initializers[i].floats));
    }
    CHECK(decoded.inputs[0].dims[0].param == "N");
    CHECK(decoded.nodes[1].find("pads")->ints == std::vector<std::int64_t>{0, 0, 0, 0});

    // Same padding, stride 2 on 9 pixels: 5 outputs, the odd pixel of padding at the end.
    every_layer e;
    const auto me = sn::to_onnx_model(e);
    CHECK(me.nodes[1].op_type == "Conv");
    CHECK(me.nodes[1].find("pads")->ints == std::vector<std::int64_t>{1, 1, 1, 1});
    CHECK(me.nodes[1].find("strides")->ints == std::vector<std::int64_t>{2, 2});
    CHECK(op_types(me) == std::vector<std::string>{"Transpose", "Conv", "BatchNormalization", "Tanh", "MaxPool", "Conv",
                                                   "Sigmoid", "Identity", "Transpose", "Flatten", "Gemm",
                                                   "BatchNormalization", "Relu", "Gemm", "Softmax"});
    using stride2_even = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<2, 3, sn::relu, 2, sn::padding::same>, sn::flatten,
                                        sn::dense<2>>;
    stride2_even s2;
    CHECK(sn::to_onnx_model(s2).nodes[1].find("pads")->ints == std::vector<std::int64_t>{0, 0, 1, 1});
}

TEST_CASE("save_onnx then load_onnx_weights gives bitwise the same parameters and state", "[onnx][round-trip]") {
    temp_dir dir;
    SECTION("a CNN") {
        CHECK(round_trips<small_cnn>(dir / "a.onnx", 1));
    }
    SECTION("every layer kind") {
        CHECK(round_trips<every_layer>(dir / "e.onnx", 4));
    }
    SECTION("residual blocks (identity and projection shortcuts), average pooling, convolutions without bias") {
        CHECK(round_trips<resnet_layers>(dir / "r.onnx", 6));
    }
    SECTION("explicit padding, padded pooling, leaky_relu (LeakyRelu) and relu6 (Clip)") {
        using padded = sn::sequential<
            sn::input<10, 8, 2>, sn::conv2d<4, 3, sn::relu6, 2, sn::padding::symmetric<1>>, sn::leaky_relu<0.1f>,
            sn::max_pool2d<3, 1, sn::padding::explicit_<1, 0, 1, 1>>, sn::average_pool2d<2, 1, sn::padding::symmetric<1>>,
            sn::conv2d<3, 3, sn::leaky_relu<0.2f>, 1, sn::padding::explicit_<2, 0, 0, 1>>, sn::relu6, sn::flatten,
            sn::dense<4, sn::softmax>>;
        CHECK(round_trips<padded>(dir / "p.onnx", 8));
        const auto ops = op_types(sn::to_onnx_model(padded{}));
        CHECK(std::count(ops.begin(), ops.end(), "Clip") == 2);
        CHECK(std::count(ops.begin(), ops.end(), "LeakyRelu") == 2);
        CHECK(std::count(ops.begin(), ops.end(), "Pad") == 1);  // before the padded AveragePool
    }
    SECTION("depthwise convolutions (Conv with group = channels), with a channel multiplier") {
        using separable = sn::sequential<
            sn::input<8, 8, 3>, sn::depthwise_conv2d<3, sn::relu6, 2, sn::padding::symmetric<1>, 2>, sn::conv2d<4, 1, sn::relu>,
            sn::depthwise_conv2d<3, sn::identity, 1, sn::padding::same, 1, sn::bias::none>, sn::batch_norm<>,
            sn::global_average_pool2d, sn::dense<3, sn::softmax>>;
        CHECK(round_trips<separable>(dir / "d.onnx", 10));
        // A full convolution's file is refused where the depthwise one is expected.
        using full = sn::sequential<sn::input<8, 8, 3>, sn::conv2d<3, 3, sn::relu6, 2, sn::padding::symmetric<1>>,
                                    sn::conv2d<4, 1, sn::relu>, sn::depthwise_conv2d<3>, sn::flatten, sn::dense<3>>;
        using depthwise_first = sn::sequential<sn::input<8, 8, 3>, sn::depthwise_conv2d<3, sn::relu6, 2, sn::padding::symmetric<1>>,
                                               sn::conv2d<4, 1, sn::relu>, sn::depthwise_conv2d<3>, sn::flatten, sn::dense<3>>;
        full f;
        randomize(f, 12);
        sn::save_onnx(f, dir / "f.onnx");
        depthwise_first d;
        CHECK_THROWS_WITH(sn::load_onnx_weights(d, dir / "f.onnx"), Catch::Contains("layer 1 (depthwise_conv2d)"));
    }
    SECTION("grouped and dilated convolutions (Conv with group and dilations)") {
        using grouped = sn::sequential<
            sn::input<9, 9, 4>, sn::conv2d<8, 3, sn::relu, 1, sn::padding::symmetric<1>, sn::bias::use, 2>,
            sn::conv2d<8, 3, sn::identity, 2, sn::padding::same, sn::bias::none, 4, 2>, sn::batch_norm<>, sn::relu,
            sn::conv2d<6, 3, sn::identity, 1, sn::padding::symmetric<2>, sn::bias::use, 1, 2>, sn::flatten,
            sn::dense<3, sn::softmax>>;
        CHECK(round_trips<grouped>(dir / "g.onnx", 14));
        // The same shapes without the dilation: refused, naming the dilations.
        using undilated = sn::sequential<
            sn::input<9, 9, 4>, sn::conv2d<8, 3, sn::relu, 1, sn::padding::symmetric<1>, sn::bias::use, 2>,
            sn::conv2d<8, 3, sn::identity, 2, sn::padding::same, sn::bias::none, 4>, sn::batch_norm<>, sn::relu,
            sn::conv2d<6, 3, sn::identity, 1, sn::padding::symmetric<2>, sn::bias::use, 1, 2>, sn::flatten,
            sn::dense<3, sn::softmax>>;
        grouped g;
        randomize(g, 15);
        sn::save_onnx(g, dir / "g2.onnx");
        undilated u;
        CHECK_THROWS_WITH(sn::load_onnx_weights(u, dir / "g2.onnx"), Catch::Contains("dilations"));
    }
    SECTION("silu, gelu and hard_swish, written as several operators each") {
        using smooth = sn::sequential<sn::input<6, 6, 2>, sn::conv2d<4, 3, sn::identity, 1, sn::padding::same>, sn::silu,
                                      sn::conv2d<4, 3>, sn::gelu<>, sn::conv2d<4, 1>, sn::gelu<sn::gelu_approximation::tanh>,
                                      sn::batch_norm<>, sn::hard_swish, sn::flatten, sn::dense<3, sn::softmax>>;
        CHECK(round_trips<smooth>(dir / "s.onnx", 13));
        const auto ops = op_types(sn::to_onnx_model(smooth{}));
        CHECK(std::count(ops.begin(), ops.end(), "Erf") == 1);
        CHECK(std::count(ops.begin(), ops.end(), "HardSigmoid") == 1);
        // Folded into the layer before: the same operators after its Conv or Gemm.
        using folded = sn::sequential<sn::input<6, 6, 2>, sn::conv2d<4, 3, sn::silu, 1, sn::padding::same>,
                                      sn::depthwise_conv2d<3, sn::hard_swish>, sn::flatten, sn::dense<5, sn::gelu<>>,
                                      sn::dense<3, sn::softmax>>;
        CHECK(round_trips<folded>(dir / "folded.onnx", 16));
        const auto folded_ops = op_types(sn::to_onnx_model(folded{}));
        CHECK(std::count(folded_ops.begin(), folded_ops.end(), "Sigmoid") == 1);
        CHECK(std::count(folded_ops.begin(), folded_ops.end(), "HardSigmoid") == 1);
        CHECK(std::count(folded_ops.begin(), folded_ops.end(), "Erf") == 1);
    }
    SECTION("save_onnx(model, file)") {
        sn::model<small_cnn, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.threads = 1, .seed = 7});
        sn::save_onnx(m, dir / "m.onnx");
        small_cnn b;
        sn::load_onnx_weights(b, dir / "m.onnx");
        CHECK(bitwise_equal(contents(m.network()), contents(b)));
    }
}

TEST_CASE("load_onnx_weights reads PyTorch's layouts: NCHW flatten, Gemm either way, MatMul + Add",
          "[onnx][import]") {
    // The file PyTorch would write for small_cnn: no Transpose before Flatten, so the first
    // dense's weight columns follow (c, y, x). Made from save_onnx's by hand.
    small_cnn a, b;
    randomize(a, 11);
    auto m = sn::to_onnx_model(a);
    constexpr sn::shape pooled{3, 3, 4};
    auto* gemm_weight = initializer(m, "layer4_dense/kernel");  // [5, 36]
    REQUIRE(gemm_weight != nullptr);
    std::vector<float> channels_first(gemm_weight->floats.size());
    for (std::size_t o = 0; o < 5; ++o)
        for (std::size_t i = 0; i < 36; ++i)
            channels_first[o * 36 + sn::detail::channels_first_index(pooled, i)] = gemm_weight->floats[o * 36 + i];
    gemm_weight->floats = channels_first;
    const auto transpose = std::find_if(m.nodes.begin(), m.nodes.end(), [](const auto& n) {
        return n.op_type == "Transpose" && n.name.starts_with("layer3");
    });
    REQUIRE(transpose != m.nodes.end());
    std::next(transpose)->inputs[0] = transpose->inputs[0];
    m.nodes.erase(transpose);

    SECTION("Gemm with transB = 1") {}
    SECTION("Gemm with transB = 0") {
        auto* w = initializer(m, "layer5_dense/kernel");  // [3, 5] -> [5, 3]
        std::vector<float> t(15);
        for (std::size_t o = 0; o < 3; ++o)
            for (std::size_t i = 0; i < 5; ++i) t[i * 3 + o] = w->floats[o * 5 + i];
        w->floats = t;
        w->dims = {5, 3};
        for (auto& n : m.nodes)
            if (n.name == "layer5_dense/Gemm")
                for (auto& attr : n.attributes)
                    if (attr.name == "transB") attr.i = 0;
    }
    SECTION("MatMul + Add") {
        auto* w = initializer(m, "layer5_dense/kernel");
        std::vector<float> t(15);
        for (std::size_t o = 0; o < 3; ++o)
            for (std::size_t i = 0; i < 5; ++i) t[i * 3 + o] = w->floats[o * 5 + i];
        w->floats = t;
        w->dims = {5, 3};
        const auto gemm = std::find_if(m.nodes.begin(), m.nodes.end(), [](const auto& n) { return n.name == "layer5_dense/Gemm"; });
        sn::onnx::node add;
        add.name = "add";
        add.op_type = "Add";
        add.inputs = {"layer5_dense/bias", "matmul_out"};  // the bias first, as some exporters write it
        add.outputs = gemm->outputs;
        gemm->op_type = "MatMul";
        gemm->attributes.clear();
        gemm->inputs.pop_back();
        gemm->outputs = {"matmul_out"};
        m.nodes.insert(std::next(gemm), add);
    }
    temp_dir dir;
    write_bytes(dir / "torch_like.onnx", sn::onnx::encode(m));
    b.initialize(12);
    sn::load_onnx_weights(b, dir / "torch_like.onnx");
    CHECK(bitwise_equal(contents(a), contents(b)));
}

TEST_CASE("Conv's auto_pad is read when it pads as the layer does, and a missing bias reads as zeros", "[onnx][import]") {
    using strided_same = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<2, 3, sn::relu, 2, sn::padding::same>, sn::flatten,
                                        sn::dense<2>>;
    strided_same a, b;
    randomize(a, 41);
    auto m = sn::to_onnx_model(a);
    auto& conv = m.nodes[1];
    REQUIRE(conv.op_type == "Conv");
    std::erase_if(conv.attributes, [](const auto& attr) { return attr.name == "pads"; });
    sn::onnx::attribute auto_pad;
    auto_pad.name = "auto_pad";
    auto_pad.type = sn::onnx::attribute::string_kind;
    auto_pad.s = "SAME_UPPER";
    conv.attributes.push_back(auto_pad);
    temp_dir dir;
    write_bytes(dir / "upper.onnx", sn::onnx::encode(m));
    sn::load_onnx_weights(b, dir / "upper.onnx");
    CHECK(bitwise_equal(contents(a), contents(b)));

    conv.attributes.back().s = "SAME_LOWER";
    write_bytes(dir / "lower.onnx", sn::onnx::encode(m));
    CHECK_THAT(load_error(b, dir / "lower.onnx"), Contains("auto_pad 'SAME_LOWER'") && Contains("pads 0x0x1x1"));

    conv.attributes.back().s = "SAME_UPPER";
    conv.inputs.pop_back();  // no bias
    write_bytes(dir / "no_bias.onnx", sn::onnx::encode(m));
    sn::load_onnx_weights(b, dir / "no_bias.onnx");
    CHECK(b.layer_parameters<0>()[strided_same::layer_type<0>::kernel_count] == 0.0f);
}

TEST_CASE("parameters may come as Constant nodes and Identity copies", "[onnx][import]") {
    small_cnn a, b;
    randomize(a, 31);
    auto m = sn::to_onnx_model(a);
    std::vector<sn::onnx::node> constants;
    for (auto& t : m.initializers) {
        // Every kernel becomes a Constant, every bias an Identity of an initializer.
        sn::onnx::node n;
        n.name = t.name + "_node";
        if (t.name.ends_with("kernel")) {
            n.op_type = "Constant";
            n.outputs = {t.name};
            sn::onnx::attribute value;
            value.name = "value";
            value.type = sn::onnx::attribute::tensor_kind;
            value.t = t;
            n.attributes.push_back(value);
        } else {
            n.op_type = "Identity";
            n.inputs = {t.name + "_stored"};
            n.outputs = {t.name};
        }
        constants.push_back(n);
    }
    std::erase_if(m.initializers, [](const auto& t) { return t.name.ends_with("kernel"); });
    for (auto& t : m.initializers) t.name += "_stored";
    m.nodes.insert(m.nodes.begin(), constants.begin(), constants.end());
    temp_dir dir;
    write_bytes(dir / "constants.onnx", sn::onnx::encode(m));
    const auto decoded = sn::onnx::decode(read_bytes(dir / "constants.onnx"));
    REQUIRE(decoded.nodes[0].find("value") != nullptr);
    CHECK(decoded.nodes[0].find("value")->t->dims == std::vector<std::int64_t>{4, 1, 3, 3});
    b.initialize(32);
    sn::load_onnx_weights(b, dir / "constants.onnx");
    CHECK(bitwise_equal(contents(a), contents(b)));
}

TEST_CASE("mismatched files are refused with messages that name both sides, the network untouched",
          "[onnx][import][errors]") {
    temp_dir dir;
    small_cnn source;
    randomize(source, 21);
    sn::save_onnx(source, dir / "small.onnx");
    every_layer other;
    other.initialize(1);
    sn::save_onnx(other, dir / "other.onnx");

    small_cnn target;
    target.initialize(22);
    const auto before = contents(target);

    SECTION("another architecture: the first layer's kernel differs") {
        CHECK_THAT(load_error(target, dir / "other.onnx"),
                   Contains("other.onnx") && Contains("layer 1 (conv2d)") && Contains("4x2x3x3 in the file") &&
                       Contains("this layer needs 4x1x3x3"));
    }
    SECTION("an operator where another is expected") {
        using dense_first = sn::sequential<sn::input<8, 8, 1>, sn::flatten, sn::dense<3, sn::softmax>>;
        dense_first d;
        CHECK_THAT(load_error(d, dir / "small.onnx"),
                   Contains("layer 2 (dense)") && Contains("expects a 'Gemm' or 'MatMul' node") && Contains("'Conv' node"));
    }
    SECTION("fewer and more layers") {
        using longer = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::relu>, sn::max_pool2d<2>, sn::flatten,
                                      sn::dense<5, sn::relu>, sn::dense<3, sn::relu>, sn::dense<3, sn::softmax>>;
        longer l;
        CHECK_THAT(load_error(l, dir / "small.onnx"), Contains("layer 6 (dense)") && Contains("no more nodes with parameters"));
        using shorter = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::relu>, sn::max_pool2d<2>, sn::flatten,
                                       sn::dense<5, sn::relu>>;
        shorter s;
        CHECK_THAT(load_error(s, dir / "small.onnx"), Contains("has parameters left") && Contains("'Gemm' node"));
    }
    SECTION("stride, padding and epsilon") {
        using strided = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::relu, 2>, sn::flatten, sn::dense<3>>;
        using strided_same =
            sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::relu, 2, sn::padding::same>, sn::flatten, sn::dense<3>>;
        strided s;
        sn::save_onnx(s, dir / "strided.onnx");
        strided_same ss;
        CHECK_THAT(load_error(ss, dir / "strided.onnx"), Contains("pads 0x0x0x0") && Contains("needs 0x0x1x1"));
        using stride1 = sn::sequential<sn::input<8, 8, 1>, sn::conv2d<4, 3, sn::relu>, sn::flatten, sn::dense<3>>;
        stride1 s1;
        CHECK_THAT(load_error(s1, dir / "strided.onnx"), Contains("strides 2x2") && Contains("needs 1x1"));
        using bn3 = sn::sequential<sn::input<4>, sn::batch_norm<0.9f, 1e-3f>, sn::dense<2>>;
        using bn5 = sn::sequential<sn::input<4>, sn::batch_norm<0.9f, 1e-5f>, sn::dense<2>>;
        bn3 a;
        a.initialize(1);
        sn::save_onnx(a, dir / "bn.onnx");
        bn5 b;
        CHECK_THAT(load_error(b, dir / "bn.onnx"), Contains("epsilon 0.001") && Contains("this layer 1e-05"));
    }
    SECTION("corrupt and truncated files") {
        const auto bytes = read_bytes(dir / "small.onnx");
        write_bytes(dir / "truncated.onnx", {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2)});
        CHECK_THAT(load_error(target, dir / "truncated.onnx"), Contains("truncated.onnx") && Contains("malformed protobuf at byte"));
        write_bytes(dir / "empty.onnx", {});
        CHECK_THAT(load_error(target, dir / "empty.onnx"), Contains("empty.onnx") && Contains("no graph"));
        write_bytes(dir / "text.onnx", {'h', 'e', 'l', 'l', 'o', '\n'});
        CHECK_THAT(load_error(target, dir / "text.onnx"), Contains("text.onnx"));
        CHECK_THAT(load_error(target, dir / "missing.onnx"), Contains("cannot open") && Contains("missing.onnx"));
        // A tensor whose data does not fill its dimensions.
        auto m = sn::to_onnx_model(source);
        m.initializers[0].dims[0] = 5;
        write_bytes(dir / "short_tensor.onnx", sn::onnx::encode(m));
        CHECK_THAT(load_error(target, dir / "short_tensor.onnx"),
                   Contains("tensor 'layer1_conv2d/kernel'") && Contains("5x1x3x3") && Contains("bytes of data"));
    }
    CHECK(bitwise_equal(contents(target), before));
}

TEST_CASE("save_onnx writes atomically and names the file it cannot write", "[onnx][export]") {
    temp_dir dir;
    small_cnn net;
    net.initialize(1);
    try {
        sn::save_onnx(net, dir / "no_such_dir" / "x.onnx");
        FAIL("no error");
    } catch (const sn::error& e) {
        CHECK_THAT(std::string(e.what()), Contains("cannot write ONNX file") && Contains("x.onnx"));
    }
    sn::save_onnx(net, dir / "x.onnx");
    CHECK(fs::file_size(dir / "x.onnx") > 4 * small_cnn::parameter_count);
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}) == 1);  // no temporary left
}

TEST_CASE("weights trained in PyTorch: evaluate gives PyTorch's test accuracy and fit continues", "[onnx][pytorch]") {
    // tests/onnx/make_torch_fixture.py trained the reference CNN for one epoch in PyTorch and
    // exported it with torch.onnx.export; its test accuracy is in the .json beside it.
    if (!fs::exists(sn::data::default_fashion_mnist_dir)) {
        WARN("Fashion-MNIST is not installed; PyTorch fixture check skipped");
        return;
    }
    const fs::path fixtures = STATICNET_ONNX_FIXTURES;
    const std::string text = file_text(fixtures / "reference_cnn_torch.json");
    const auto at = text.find("\"test_accuracy\":");
    REQUIRE(at != std::string::npos);
    const double torch_accuracy = std::stod(text.substr(at + 16));

    const auto data = sn::data::load_fashion_mnist();
    sn::model<reference_cnn, sn::adam, sn::sparse_categorical_crossentropy> m({}, {.seed = 1});
    sn::load_onnx_weights(m.network(), fixtures / "reference_cnn_torch.onnx");
    const auto imported = m.evaluate(data.test);
    INFO("PyTorch's test accuracy " << torch_accuracy << ", staticnet's with the imported weights " << imported.accuracy);
    CHECK(std::abs(imported.accuracy - torch_accuracy) <= 0.001);

    // Training continues from the imported weights: the first epoch's loss is that of a
    // trained network (a fresh one starts at ln 10 = 2.3), and accuracy stays.
    sn::data::dataset part;
    part.images = xt::view(data.train.images, xt::range(0, 3200));
    part.labels = xt::view(data.train.labels, xt::range(0, 3200));
    part.num_classes = data.train.num_classes;
    const auto h = m.fit(part, {.epochs = 1, .batch_size = 32, .seed = 2, .verbose = false});
    const auto after = m.evaluate(data.test);
    INFO("100 more steps: training loss " << h.epochs[0].loss << ", test accuracy " << after.accuracy);
    CHECK(h.epochs[0].loss < 0.6);
    CHECK(after.accuracy > torch_accuracy - 0.03);
}

TEST_CASE("a PyTorch network with batch norm, stride 2 and a channels-first flatten computes what PyTorch did",
          "[onnx][pytorch]") {
    // tests/onnx/make_torch_fixture.py: the PyTorch twin of this network, with random batch
    // norm statistics, its inputs and its outputs.
    using small = sn::sequential<sn::input<5, 5, 1>, sn::conv2d<4, 3, sn::identity, 1, sn::padding::same>,
                                 sn::batch_norm<0.9f, 1e-5f>, sn::relu, sn::conv2d<6, 3, sn::tanh, 2, sn::padding::same>,
                                 sn::flatten, sn::dense<3, sn::softmax>>;
    const fs::path fixtures = STATICNET_ONNX_FIXTURES;
    const std::string text = file_text(fixtures / "small_torch.json");
    const auto inputs = json_numbers(text, "inputs_nhwc");
    const auto expected = json_numbers(text, "outputs");
    REQUIRE(inputs.size() == 4 * 25);
    REQUIRE(expected.size() == 4 * 3);
    small net;
    net.initialize(1);
    sn::load_onnx_weights(net, fixtures / "small_torch.onnx");
    xt::xtensor<float, 4> images = xt::zeros<float>({std::size_t{4}, std::size_t{5}, std::size_t{5}, std::size_t{1}});
    std::copy(inputs.begin(), inputs.end(), images.begin());
    const auto got = forward(net, images);
    float difference = 0.0f;
    for (std::size_t i = 0; i < expected.size(); ++i) difference = std::max(difference, std::abs(got.data()[i] - expected[i]));
    INFO("max abs difference to PyTorch " << difference);
    CHECK(difference < 1e-6f);
}

// ------------------------------------------------------------------ PyTorch's ResNets
// tests/onnx/make_torch_resnets.py exported them; the CTest test onnx:import_pytorch_resnets
// runs these cases.

namespace {

template <std::size_t C, std::size_t Stride = 1>
using torch_conv3 = sn::conv2d<C, 3, sn::identity, Stride, sn::padding::symmetric<1>, sn::bias::none>;
using torch_bn = sn::batch_norm<0.9f, 1e-5f>;
// torchvision's BasicBlock, with and without its 1x1 stride-2 projection.
template <std::size_t C>
using basic_block = sn::residual<torch_conv3<C>, torch_bn, sn::relu, torch_conv3<C>, torch_bn>;
template <std::size_t C>
using down_block =
    sn::residual<sn::projection<sn::conv2d<C, 1, sn::identity, 2, sn::padding::valid, sn::bias::none>, torch_bn>,
                 torch_conv3<C, 2>, torch_bn, sn::relu, torch_conv3<C>, torch_bn>;
using resnet18_narrow = sn::sequential<
    sn::input<32, 32, 3>, sn::conv2d<8, 7, sn::identity, 2, sn::padding::symmetric<3>, sn::bias::none>, torch_bn,
    sn::relu, sn::max_pool2d<3, 2, sn::padding::symmetric<1>>,                                      //
    basic_block<8>, sn::relu, basic_block<8>, sn::relu, down_block<16>, sn::relu, basic_block<16>, sn::relu,
    down_block<32>, sn::relu, basic_block<32>, sn::relu, down_block<64>, sn::relu, basic_block<64>, sn::relu,
    sn::global_average_pool2d, sn::dense<10, sn::softmax>>;
using shortcut_first = sn::sequential<
    sn::input<8, 8, 3>, torch_conv3<8>, torch_bn, sn::relu,
    sn::residual<sn::projection<torch_conv3<16, 2>, torch_bn>, torch_conv3<16, 2>, torch_bn, sn::relu, torch_conv3<16>,
                 torch_bn>,
    sn::relu, sn::global_average_pool2d, sn::dense<5, sn::softmax>>;
using zero_pad = sn::sequential<sn::input<12, 12, 3>, sn::conv2d<8, 3, sn::relu, 2, sn::padding::same>,
                                sn::conv2d<8, 3, sn::identity, 1, sn::padding::symmetric<1>>, torch_bn, sn::relu,
                                sn::flatten, sn::dense<4, sn::softmax>>;

// Loads `name`.onnx into Net and compares its outputs with PyTorch's for the inputs beside it.
template <typename Net>
void require_torch_outputs(const std::string& name) {
    const fs::path fixtures = STATICNET_ONNX_FIXTURES;
    const std::string text = file_text(fixtures / (name + ".json"));
    const auto inputs = json_numbers(text, "inputs_nhwc");
    const auto expected = json_numbers(text, "outputs");
    const std::size_t n = 2;
    REQUIRE(inputs.size() == n * Net::input_shape.size());
    REQUIRE(expected.size() == n * Net::output_shape.size());
    Net net;
    net.initialize(1);
    sn::load_onnx_weights(net, fixtures / (name + ".onnx"));
    xt::xtensor<float, 4> images = xt::zeros<float>(
        {n, Net::input_shape.height(), Net::input_shape.width(), Net::input_shape.channels()});
    std::copy(inputs.begin(), inputs.end(), images.begin());
    const auto got = forward(net, images);
    float difference = 0.0f;
    for (std::size_t i = 0; i < expected.size(); ++i) difference = std::max(difference, std::abs(got.data()[i] - expected[i]));
    INFO(name << ": max abs difference to PyTorch " << difference);
    CHECK(difference < 1e-5f);
}

}  // namespace

TEST_CASE("torchvision's ResNet-18 layout imports from PyTorch and computes what PyTorch does",
          "[onnx][import][pytorch_resnets]") {
    require_torch_outputs<resnet18_narrow>("resnet18_narrow");
}

TEST_CASE("a block exported shortcut first imports by the graph, not by the order of its nodes",
          "[onnx][import][pytorch_resnets]") {
    require_torch_outputs<shortcut_first>("shortcut_first");
    // Declared the other way round (the file's body as the projection): the same sum, and
    // each path still takes its own weights.
    using swapped = sn::sequential<
        sn::input<8, 8, 3>, torch_conv3<8>, torch_bn, sn::relu,
        sn::residual<sn::projection<torch_conv3<16, 2>, torch_bn, sn::relu, torch_conv3<16>, torch_bn>, torch_conv3<16, 2>,
                     torch_bn>,
        sn::relu, sn::global_average_pool2d, sn::dense<5, sn::softmax>>;
    require_torch_outputs<swapped>("shortcut_first");
    // A block neither path fits (a 1x1 projection) is refused, naming the block, and loads nothing.
    using other_block = sn::sequential<
        sn::input<8, 8, 3>, torch_conv3<8>, torch_bn, sn::relu,
        sn::residual<sn::projection<sn::conv2d<16, 1, sn::identity, 2, sn::padding::valid, sn::bias::none>, torch_bn>,
                     torch_conv3<16, 2>, torch_bn, sn::relu, torch_conv3<16>, torch_bn>,
        sn::relu, sn::global_average_pool2d, sn::dense<5, sn::softmax>>;
    other_block net;
    net.initialize(1);
    const std::vector<float> before(net.parameters().begin(), net.parameters().end());
    CHECK_THROWS_WITH(sn::load_onnx_weights(net, fs::path(STATICNET_ONNX_FIXTURES) / "shortcut_first.onnx"),
                      Catch::Contains("layer 4 (residual)") && Catch::Contains("where a residual block's paths meet"));
    CHECK(std::equal(before.begin(), before.end(), net.parameters().begin()));  // nothing loaded
}

TEST_CASE("PyTorch's ZeroPad2d before an unpadded convolution imports as that convolution's padding",
          "[onnx][import][pytorch_resnets]") {
    require_torch_outputs<zero_pad>("zero_pad");
    // The same file into a network whose second convolution pads only at the end: refused, naming the pads.
    using other_pads = sn::sequential<sn::input<12, 12, 3>, sn::conv2d<8, 3, sn::relu, 2, sn::padding::same>,
                                      sn::conv2d<8, 3, sn::identity, 1, sn::padding::explicit_<0, 2, 0, 2>>, torch_bn,
                                      sn::relu, sn::flatten, sn::dense<4, sn::softmax>>;
    other_pads net;
    net.initialize(1);
    CHECK_THROWS_WITH(sn::load_onnx_weights(net, fs::path(STATICNET_ONNX_FIXTURES) / "zero_pad.onnx"),
                      Catch::Contains("has pads 1x1x1x1, this layer needs 0x0x2x2"));
}

TEST_CASE("a ResNet whose batch norms torch.onnx.export folded is refused with what to do",
          "[onnx][import][pytorch_resnets]") {
    resnet18_narrow net;
    net.initialize(1);
    CHECK_THROWS_WITH(sn::load_onnx_weights(net, fs::path(STATICNET_ONNX_FIXTURES) / "resnet18_folded.onnx"),
                      Catch::Contains("layer 1 (conv2d)") && Catch::Contains("TrainingMode.PRESERVE"));
}
