#pragma once
// The PyTorch fixtures' JSON files (tests/onnx/make_torch_fixture.py, make_torch_resnets.py):
// flat arrays of numbers under a key, read without a JSON library.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace staticnet::testing {

inline std::string file_text(const std::filesystem::path& file) {
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), {}};
}

/// The numbers of the JSON array after "key": in `text`; empty when the key is absent.
inline std::vector<float> json_numbers(const std::string& text, const std::string& key) {
    std::vector<float> values;
    const auto at = text.find("\"" + key + "\":");
    if (at == std::string::npos) return values;
    const char* p = text.c_str() + text.find('[', at) + 1;
    while (*p != ']' && *p != '\0') {
        char* end = nullptr;
        values.push_back(std::strtof(p, &end));
        if (end == p) break;  // not a number: the array ends here
        p = end;
        while (*p == ',' || *p == ' ') ++p;
    }
    return values;
}

}  // namespace staticnet::testing
