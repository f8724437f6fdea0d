// The parameter count of every network of the model zoo (benchmarks/zoo/), one JSON line
// each, for tests/check_zoo_twins.py, which compares them with the PyTorch twins'.
#include "zoo/zoo.hpp"

#include <cstdio>

int main() {
    zoo::for_each_network([]<typename Net>(const zoo::network<Net>& n) {
        std::printf("{\"network\": \"%.*s\", \"parameters\": %zu}\n", static_cast<int>(n.key.size()), n.key.data(),
                    Net::trainable_parameter_count);
    });
}
