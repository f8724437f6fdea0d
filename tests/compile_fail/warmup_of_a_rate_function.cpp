// A warm-up cannot wrap a schedule that depends on the current rate: it sets that rate
// itself at every step, so such a schedule would feed on the warm-up's own output.
// expect: linear_warmup: the target must be a rate (float) or a function of the epoch alone
#include <staticnet/train/schedules.hpp>
namespace sn = staticnet;
float halve(std::size_t epoch, float rate) { return epoch % 10 == 0 ? rate / 2 : rate; }
int main() {
    const sn::linear_warmup<sn::lr_schedule<float (*)(std::size_t, float)>> warmup{.steps = 100, .target = {halve}};
    return warmup(1, 1, 1) > 0.0f ? 0 : 1;
}
