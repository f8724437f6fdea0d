// staticnet-onnx: prints the staticnet type of the network in an ONNX file.
//
//   staticnet-onnx FILE.onnx [--name NAME] [--output HEADER]
//
// The header it writes declares `using NAME = staticnet::sequential<...>;` with the input
// shape, every layer (residual blocks with their projections, padding, folded activations)
// and, beside each, the node it came from; `staticnet::load_onnx_weights(net, FILE.onnx)`
// then fills a network of that type (tools/onnx_type.hpp says how the graph is read).
// For PyTorch: export with `training=torch.onnx.TrainingMode.PRESERVE` so that batch norms
// stay layers of their own (otherwise they are folded into the convolutions, which then
// have a bias).
//
// Exit status: 0 the header was written, 1 the file cannot be read or holds a node staticnet
// has no layer for (the message names it and why), 2 a usage error.
#include <staticnet/io/onnx.hpp>

#include "tools/command_line.hpp"
#include "tools/onnx_type.hpp"

#include <cctype>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

namespace {

constexpr const char* program = "staticnet-onnx";

bool is_identifier(const std::string& s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string file, name = "net", output;
    CLI::App app{"Prints the staticnet type (a C++ header) of the network in an ONNX file.", program};
    app.add_option("file", file, "the .onnx file (from torch.onnx.export or staticnet::save_onnx)")->required();
    app.add_option("--name", name, "the name of the type (default: net)");
    app.add_option("--output,-o", output, "write the header to this file instead of stdout");
    staticnet::tools::parse_or_exit(app, argc, argv);
    if (!is_identifier(name)) return staticnet::tools::usage_error(program, "--name: needs a C++ identifier, not '" + name + "'");
    try {
        const auto bytes = staticnet::detail::read_file_bytes<staticnet::error>(file);
        staticnet::onnx::model m;
        try {
            m = staticnet::onnx::decode(bytes);
        } catch (const staticnet::error& e) {
            throw staticnet::error("ONNX file '" + file + "': " + e.what());
        }
        const std::string header = staticnet::tools::onnx_network_header(m, file, name);
        if (output.empty()) {
            std::cout << header;
        } else {
            staticnet::detail::write_file_atomically<staticnet::error>(
                output, "cannot write '" + output + "'", [&](staticnet::detail::output_file& out) {
                    out.write(std::string_view(header));
                });
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", program, e.what());
        return 1;
    }
    return 0;
}
