#pragma once
/// @file
/// Command-line parsing shared by our programs (`staticnet-shard`, `fashion_mnist`), on
/// CLI11. Not part of the library: staticnet's users never need CLI11.
///
/// Every program behaves the same way:
///  - `--help` (or `-h`) prints the usage on stdout and exits with status 0;
///  - a bad command line prints ONE line on stderr, `<program>: <what is wrong> (see
///    <program> --help)`, and exits with status 2 (CLI11's own exit codes, 100 and up, would
///    surprise scripts that know the convention: 1 a failure, 2 a usage error).
///
/// Numbers are checked here rather than by CLI11's conversion, which goes through
/// `strtoull` in CLI11 2.1 and so reads "-1" as 18446744073709551615.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <locale>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace staticnet::tools {

/// A CLI11 check: a whole number written in decimal digits only (no sign, space or hex),
/// from `min` to `max`.
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max = std::numeric_limits<std::uint64_t>::max());

/// A CLI11 check: a finite real number greater than 0 once read as a float.
CLI::Validator positive_real();

/// Prints `message` as one line, `<program>: <message> (see <program> --help)`, on stderr;
/// returns 2, the exit status of a usage error.
int usage_error(std::string_view program, std::string message);

/// Parses the command line into the options bound to `app`, or ends the program: status 0
/// after `--help`, status 2 and one line on stderr for anything CLI11 rejects. An option
/// `app` does not have is reported first, as the option it most likely meant ("--epoch: no
/// such option; did you mean --epochs?"): CLI11 would report it after the options'
/// requirements ("--train-dir requires --test-dir" for a mistyped "--tests-dir"), or as "The
/// following arguments were not expected".
void parse_or_exit(CLI::App& app, int argc, char** argv);

// ---------------------------------------------------------------- implementation

namespace detail {

/// The float written in `text` (the whole of it, no leading space or sign '+'), read the
/// same in every locale; nothing otherwise. libc++ before 20 has no floating-point
/// `std::from_chars` (it then leaves `__cpp_lib_to_chars` undefined): a stream in the
/// classic locale reads the same numbers there.
inline std::optional<float> read_float(std::string_view text) {
    if (text.empty() || text.front() == '+' || std::isspace(static_cast<unsigned char>(text.front()))) return std::nullopt;
    float v = 0;
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
    const char* const end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc{} || ptr != end) return std::nullopt;
#else
    std::istringstream in{std::string(text)};
    in.imbue(std::locale::classic());
    in >> std::noskipws >> v;
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) return std::nullopt;
#endif
    return v;
}

/// The range in words, " >= 1" or " from 1 to 9"; empty for any number.
inline std::string range_text(std::uint64_t min, std::uint64_t max) {
    if (max == std::numeric_limits<std::uint64_t>::max()) return min == 0 ? "" : " >= " + std::to_string(min);
    return " from " + std::to_string(min) + " to " + std::to_string(max);
}

/// The number of single-character edits (insert, delete, replace) from `a` to `b`.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/// The first "--name" of the command line that `app` has no option for, with the option it
/// most likely meant; empty when every one is known. Values of known options are skipped
/// (`--launcher-args "--bind-to none"`), and so is everything after a bare "--".
inline std::string unknown_option(const CLI::App& app, int argc, char** argv) {
    const auto options = app.get_options();
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--") return {};
        if (!arg.starts_with("--")) continue;
        const std::string name(arg.substr(2, arg.find('=') == std::string_view::npos ? std::string_view::npos
                                                                                       : arg.find('=') - 2));
        const CLI::Option* known = nullptr;
        for (const auto* o : options)
            for (const auto& l : o->get_lnames())
                if (l == name) known = o;
        if (known != nullptr) {
            if (arg.find('=') == std::string_view::npos) i += std::max(0, known->get_items_expected_min());
            continue;
        }
        // The closest name, if it is close: 2 edits at most, and fewer than half the name's
        // letters (so "--x" does not become "--seed").
        std::string best;
        std::size_t best_distance = 3;
        for (const auto* o : options)
            for (const auto& l : o->get_lnames()) {
                const std::size_t d = edit_distance(name, l);
                if (d < best_distance && 2 * d < std::max(name.size(), l.size())) {
                    best = l;
                    best_distance = d;
                }
            }
        return "--" + name + ": no such option" + (best.empty() ? std::string() : "; did you mean --" + best + "?");
    }
    return {};
}

}  // namespace detail

inline CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
    const std::string range = detail::range_text(min, max);
    return CLI::Validator(
        [=](std::string& text) -> std::string {
            std::uint64_t v = 0;
            const char* const end = text.data() + text.size();
            const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
            if (!digits || std::from_chars(text.data(), end, v).ptr != end || v < min || v > max)
                return "needs a whole number" + range + ", not '" + text + "'";
            return {};
        },
        range.empty() ? range : range.substr(1), "whole_number");  // --help shows "N:>= 1"
}

inline CLI::Validator positive_real() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            const std::optional<float> v = detail::read_float(text);
            if (!v || !std::isfinite(*v) || !(*v > 0))
                return "needs a number > 0, not '" + text + "'";
            return {};
        },
        "> 0", "positive_real");
}

inline int usage_error(std::string_view program, std::string message) {
    for (char& c : message)
        if (c == '\n' || c == '\r') c = ' ';  // one line, whatever the message was
    std::cerr << program << ": " << message << " (see " << program << " --help)\n";
    return 2;
}

inline void parse_or_exit(CLI::App& app, int argc, char** argv) {
    if (const std::string problem = detail::unknown_option(app, argc, argv); !problem.empty())
        std::exit(usage_error(app.get_name(), problem));
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        std::exit(EXIT_SUCCESS);
    } catch (const CLI::ParseError& e) {
        std::exit(usage_error(app.get_name(), e.what()));
    }
}

}  // namespace staticnet::tools
