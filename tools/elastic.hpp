#pragma once
/// @file
/// The decisions of `staticnet-run` (tools/staticnet_run.cpp), kept free of processes so
/// that tests can drive them: which hosts a restart may use, why an attempt failed, and
/// whether to try again. Not part of the library.
///
/// - `parse_hostfile` reads Open MPI's (`node1 slots=4`) and MPICH's (`node1:4`) hostfile
///   lines; `hostfile_text` writes the hosts that answered back in Open MPI's form.
/// - `explain_failure` turns an exit status and the job's standard error into one line: the
///   message of the rank that failed (`staticnet: rank R of P: ...`, what
///   `mpi_communicator::abort` prints), else mpirun's note of a rank killed by a signal, else
///   the last line the job wrote, else the exit status.
/// - `restart_policy` counts restarts and stops a job that fails the same way again and
///   again without writing a newer checkpoint (bad data, a bug), instead of looping.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace staticnet::tools::elastic {

/// One line of a hostfile: a host and the ranks it may run.
struct host_slots {
    std::string host;
    std::size_t slots = 1;
    friend bool operator==(const host_slots&, const host_slots&) = default;
};

/// The hosts of a hostfile's `text` (`file` names it in errors). Blank lines and `#`
/// comments are skipped; a line without a slot count counts as one slot. Throws
/// `std::runtime_error` naming the file and line for anything else.
std::vector<host_slots> parse_hostfile(std::string_view text, std::string_view file);

/// `hosts` as an Open MPI hostfile, one `host slots=N` line each.
std::string hostfile_text(const std::vector<host_slots>& hosts);

/// The slots of `hosts` together.
std::size_t total_slots(const std::vector<host_slots>& hosts);

/// Why an attempt failed, for the log, and the same text without numbers that differ from
/// one run to the next (process ids), to tell a repeated failure.
struct failure {
    std::string reason;
    std::string signature;
};

/// `exit_code` is the job's exit status (128 + N when a signal N ended it), `job_stderr` what
/// it wrote on standard error, line by line.
failure explain_failure(int exit_code, const std::vector<std::string>& job_stderr);

/// When to give up. An attempt *progressed* when it left a newer valid checkpoint than the
/// one it started from.
class restart_policy {
public:
    restart_policy(std::size_t max_restarts, std::size_t max_repeats) : max_restarts_(max_restarts), max_repeats_(max_repeats) {}

    /// Records a failed attempt. Returns why the job must stop, or nothing when it may
    /// restart (then `restarts()` counts this restart).
    std::optional<std::string> after_failure(const failure& f, bool progressed);

    [[nodiscard]] std::size_t restarts() const noexcept { return restarts_; }

private:
    std::size_t max_restarts_, max_repeats_;
    std::size_t restarts_ = 0;
    std::size_t repeats_ = 0;  ///< attempts in a row that failed the same way without progress
    std::string last_signature_;
};

// ---------------------------------------------------------------- implementation

namespace detail {

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

inline std::optional<std::size_t> whole_number(std::string_view s) {
    std::size_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

/// `text` with every run of digits replaced by `#`.
inline std::string without_numbers(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (std::isdigit(static_cast<unsigned char>(text[i]))) {
            if (out.empty() || out.back() != '#') out += '#';
        } else {
            out += text[i];
        }
    }
    return out;
}

/// Lines of mpirun's own banners, which say nothing about the cause.
inline bool is_launcher_noise(std::string_view line) {
    line = trim(line);
    return line.empty() || line.starts_with("----") || line.starts_with("MPI_ABORT was invoked") ||
           line.starts_with("with errorcode") || line.starts_with("NOTE: invoking MPI_ABORT") ||
           line.starts_with("You may or may not see output") || line.starts_with("exactly when Open MPI kills") ||
           line.starts_with("Primary job") || line.starts_with("a non-zero exit code") ||
           line.starts_with("[") /* "[host:pid] n more processes have sent help message" */;
}

}  // namespace detail

inline std::vector<host_slots> parse_hostfile(std::string_view text, std::string_view file) {
    std::vector<host_slots> hosts;
    std::size_t line_number = 0;
    while (!text.empty()) {
        const std::size_t end = std::min(text.find('\n'), text.size());
        std::string_view line = text.substr(0, end);
        text.remove_prefix(std::min(end + 1, text.size()));
        ++line_number;
        line = detail::trim(line.substr(0, line.find('#')));
        if (line.empty()) continue;
        const auto bad = [&](const std::string& what) {
            return std::runtime_error(std::string(file) + ":" + std::to_string(line_number) + ": " + what);
        };
        host_slots h;
        const std::size_t space = std::min(line.find_first_of(" \t"), line.size());
        std::string_view name = line.substr(0, space);
        std::string_view rest = detail::trim(line.substr(space));
        if (const auto colon = name.find(':'); colon != std::string_view::npos) {  // MPICH: host:N
            const auto n = detail::whole_number(name.substr(colon + 1));
            if (!n || *n == 0) throw bad("'" + std::string(name) + "': the slot count after ':' must be a whole number >= 1");
            h.slots = *n;
            name = name.substr(0, colon);
        }
        h.host = std::string(name);
        while (!rest.empty()) {  // Open MPI: slots=N max_slots=M ...
            const std::size_t gap = std::min(rest.find_first_of(" \t"), rest.size());
            const std::string_view word = rest.substr(0, gap);
            rest = detail::trim(rest.substr(gap));
            if (word.starts_with("slots=")) {
                const auto n = detail::whole_number(word.substr(6));
                if (!n || *n == 0) throw bad("'" + std::string(word) + "': slots must be a whole number >= 1");
                h.slots = *n;
            } else if (!word.starts_with("max_slots=") && !word.starts_with("max-slots=")) {
                throw bad("'" + std::string(word) + "' is not understood (expected 'HOST [slots=N]' or 'HOST:N')");
            }
        }
        hosts.push_back(std::move(h));
    }
    return hosts;
}

inline std::string hostfile_text(const std::vector<host_slots>& hosts) {
    std::string text;
    for (const auto& h : hosts) text += h.host + " slots=" + std::to_string(h.slots) + "\n";
    return text;
}

inline std::size_t total_slots(const std::vector<host_slots>& hosts) {
    std::size_t n = 0;
    for (const auto& h : hosts) n += h.slots;
    return n;
}

inline failure explain_failure(int exit_code, const std::vector<std::string>& job_stderr) {
    // 1. A rank's own message: the cause, when the program reported one.
    for (const auto& line : job_stderr) {
        const std::string_view l = detail::trim(line);
        if (const auto at = l.rfind("staticnet: rank "); at != std::string_view::npos) {
            std::string reason(l.substr(at + std::string_view("staticnet: ").size()));
            return {reason, detail::without_numbers(reason)};
        }
    }
    // 2. Open MPI's note of a rank that a signal ended (kill -9, the OOM killer, a crash):
    //    "mpirun noticed that process rank 1 with PID 4242 on node a exited on signal 9 (Killed)."
    for (const auto& line : job_stderr) {
        const std::string_view l = detail::trim(line);
        if (const auto at = l.find("noticed that process rank "); at != std::string_view::npos) {
            std::string reason(l.substr(at + std::string_view("noticed that process ").size()));
            if (!reason.empty() && reason.back() == '.') reason.pop_back();
            if (const auto pid = reason.find(" with PID "); pid != std::string::npos) {
                const auto next = reason.find(' ', pid + 10);
                reason.erase(pid, next == std::string::npos ? std::string::npos : next - pid);
            }
            return {reason, detail::without_numbers(reason)};
        }
    }
    // 3. The last thing the job said, then 4. its exit status alone.
    std::string status = exit_code > 128 ? "ended by signal " + std::to_string(exit_code - 128)
                                         : "exit status " + std::to_string(exit_code);
    for (auto line = job_stderr.rbegin(); line != job_stderr.rend(); ++line) {
        if (detail::is_launcher_noise(*line)) continue;
        std::string reason = std::string(detail::trim(*line)) + " (" + status + ")";
        return {reason, detail::without_numbers(reason)};
    }
    return {status, status};
}

inline std::optional<std::string> restart_policy::after_failure(const failure& f, bool progressed) {
    repeats_ = !progressed && f.signature == last_signature_ ? repeats_ + 1 : 1;
    last_signature_ = f.signature;
    if (max_repeats_ != 0 && repeats_ >= max_repeats_)
        return "failed the same way " + std::to_string(repeats_) + " times in a row without a newer checkpoint: " + f.reason;
    if (restarts_ >= max_restarts_)
        return "gave up after " + std::to_string(restarts_) + (restarts_ == 1 ? " restart" : " restarts") +
               " (--max-restarts " + std::to_string(max_restarts_) + "); the last attempt failed: " + f.reason;
    ++restarts_;
    return std::nullopt;
}

}  // namespace staticnet::tools::elastic
