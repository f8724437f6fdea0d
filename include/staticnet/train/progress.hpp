#pragma once
/// @file
/// `progress_bar`: Keras-like training progress. On a terminal it redraws one line in place
/// (step/steps, a bar, elapsed or ETA, running loss and accuracy); elsewhere (CI logs,
/// files) it prints one plain line per epoch. `fit` adds one on rank 0 when `verbose` is set.

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "history.hpp"

namespace staticnet {

class progress_bar {
public:
    /// Writes to `os`; `terminal` chooses in-place redrawing (default: whether stdout is a tty).
    explicit progress_bar(std::ostream& os = std::cout, bool terminal = ::isatty(STDOUT_FILENO) != 0)
        : os_(&os), terminal_(terminal) {}

    template <typename Model>
    void on_epoch_begin(Model&, std::size_t epoch, std::size_t epochs) {
        if (terminal_) *os_ << "Epoch " << epoch << '/' << epochs << '\n' << std::flush;
        last_draw_ = clock::time_point{};
    }

    template <typename Model>
    void on_batch_end(Model&, const batch_log& b) {
        if (!terminal_) return;
        const auto now = clock::now();
        if (b.step != b.steps && now - last_draw_ < std::chrono::milliseconds(100)) return;
        last_draw_ = now;
        const double eta = b.step == 0 ? 0.0 : b.seconds / static_cast<double>(b.step) * static_cast<double>(b.steps - b.step);
        std::ostringstream line;
        line << '\r' << counter(b.step, b.steps) << ' ' << bar(b.step, b.steps) << " - ";
        if (b.step < b.steps) line << "ETA: " << duration(eta);
        else line << duration(b.seconds);
        line << " - loss: " << number(b.loss) << " - accuracy: " << number(b.accuracy);
        *os_ << line.str() << std::flush;
        last_steps_ = b.steps;
    }

    template <typename Model>
    void on_epoch_end(Model&, const epoch_log& e) {
        std::ostringstream line;
        if (terminal_) line << '\r' << counter(last_steps_, last_steps_) << ' ' << bar(1, 1) << " - ";
        else line << "Epoch " << e.epoch << '/' << e.epochs << " - ";
        line << duration(e.seconds) << " - loss: " << number(e.loss) << " - accuracy: " << number(e.accuracy);
        if (e.has_validation()) line << " - val_loss: " << number(e.val_loss) << " - val_accuracy: " << number(e.val_accuracy);
        *os_ << line.str() << '\n' << std::flush;
    }

private:
    using clock = std::chrono::steady_clock;

    static std::string counter(std::size_t step, std::size_t steps) {
        const auto width = std::to_string(steps).size();
        std::ostringstream s;
        s << std::setw(static_cast<int>(width)) << step << '/' << steps;
        return s.str();
    }
    static std::string bar(std::size_t step, std::size_t steps) {
        constexpr std::size_t width = 30;
        const std::size_t done = steps == 0 ? width : step * width / steps;
        std::string s(width, '.');
        for (std::size_t i = 0; i < done; ++i) s[i] = '=';
        if (done < width && done > 0) s[done - 1] = '>';
        return '[' + s + ']';
    }
    static std::string duration(double seconds) {
        std::ostringstream s;
        if (seconds < 60) s << std::fixed << std::setprecision(seconds < 10 ? 1 : 0) << seconds << 's';
        else s << static_cast<long>(seconds) / 60 << 'm' << std::setw(2) << std::setfill('0') << static_cast<long>(seconds) % 60 << 's';
        return s.str();
    }
    static std::string number(double v) {
        std::ostringstream s;
        s << std::fixed << std::setprecision(4) << v;
        return s.str();
    }

    std::ostream* os_;
    bool terminal_;
    clock::time_point last_draw_{};
    std::size_t last_steps_ = 0;
};

}  // namespace staticnet
