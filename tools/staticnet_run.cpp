// staticnet-run: runs a training program under mpirun (or srun) and, when a rank dies or the
// job fails, runs it again from its newest valid checkpoint, on fewer ranks if fewer are left.
//
//   staticnet-run --np P [--min-np M] [--hostfile FILE] --checkpoint DIR --max-restarts N
//                 [--max-repeats K] [--restart-delay S] [--launcher mpirun|srun]
//                 [--mpirun PATH] [--launcher-args "ARGS"] [--no-probe] [--dry-run]
//                 -- PROGRAM ARGS...
//
// The program is started as `PROGRAM ARGS... --checkpoint DIR`, plus `--resume` once DIR
// holds a valid checkpoint (the convention of the examples: docs/distributed.md, "Elastic
// restarts"). Before every attempt the hostfile is read again and each host is probed with a
// one-rank mpirun; the job runs on min(P, slots that answered) ranks, and waits out a
// failed attempt when fewer than M are left. In deterministic mode the result does not
// depend on the rank count, so a job restarted on fewer ranks ends bitwise where an
// uninterrupted one would.
//
// It stops after N restarts, or as soon as the job failed the same way K times in a row
// (default 3) without writing a newer checkpoint: bad data or a bug would otherwise loop.
// Every restart is logged on stderr with why, from which checkpoint and on how many ranks.
//
// Exit status: 0 the job finished, 1 it was given up (the reason is the last line), 2 a usage
// error, 128 + N when signal N (SIGINT, SIGTERM) stopped it.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <staticnet/io/checkpoint.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tools/command_line.hpp"
#include "tools/elastic.hpp"

namespace fs = std::filesystem;
namespace elastic = staticnet::tools::elastic;

namespace {

constexpr const char* program = "staticnet-run";

struct arguments {
    std::size_t np = 0, min_np = 0, max_restarts = 0, max_repeats = 3;
    double restart_delay = 1.0, probe_timeout = 20.0;
    std::string hostfile, checkpoint, launcher = "mpirun", mpirun = "mpirun", launcher_args;
    bool probe = true, dry_run = false;
    std::vector<std::string> job;  ///< PROGRAM ARGS...
};

// ------------------------------------------------------------------ signals

std::atomic<int> stop_signal{0};
std::atomic<pid_t> running_child{0};

extern "C" void on_stop_signal(int sig) {
    stop_signal.store(sig);
    if (const pid_t child = running_child.load(); child > 0) ::kill(child, sig);  // mpirun ends its ranks
}

void install_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    for (const int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &action, nullptr);
}

// ------------------------------------------------------------------ processes

void log(const std::string& line) { std::cerr << program << ": " << line << std::endl; }

std::string join(const std::vector<std::string>& words) {
    std::string s;
    for (const auto& w : words) s += (s.empty() ? "" : " ") + w;
    return s;
}

std::vector<std::string> split_words(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    return words;
}

/// exec's argument vector; the strings must outlive it.
std::vector<char*> argv_of(const std::vector<std::string>& command) {
    std::vector<char*> argv;
    for (const auto& s : command) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    return argv;
}

int exit_code_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 1;
    return exit_code_of(status);
}

/// Runs `command`, passing its standard error through while keeping its last lines, which
/// say why it failed. Returns the exit code (128 + N for signal N).
int run_job(const std::vector<std::string>& command, std::vector<std::string>& stderr_lines) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    auto argv = argv_of(command);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDERR_FILENO);
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "%s: cannot run '%s': %s\n", program, argv[0], std::strerror(errno));
        std::_Exit(127);
    }
    running_child.store(pid);
    ::close(pipe_fds[1]);
    std::deque<std::string> last;  // a bounded tail: a chatty job must not grow this
    std::string partial;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::fwrite(buffer, 1, static_cast<std::size_t>(n), stderr);
        std::fflush(stderr);
        partial.append(buffer, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
            last.push_back(partial.substr(0, nl));
            partial.erase(0, nl + 1);
            if (last.size() > 400) last.pop_front();
        }
    }
    if (!partial.empty()) last.push_back(partial);
    ::close(pipe_fds[0]);
    const int code = wait_for(pid);
    running_child.store(0);
    stderr_lines.assign(last.begin(), last.end());
    return code;
}

/// Runs the `commands` at once, silently; for each, whether it succeeded within `timeout_s`
/// (probing a hundred hosts one after another would take minutes).
std::vector<bool> run_quietly(const std::vector<std::vector<std::string>>& commands, double timeout_s) {
    std::vector<pid_t> pids;
    for (const auto& command : commands) {
        auto argv = argv_of(command);
        const pid_t pid = ::fork();
        if (pid == 0) {
            if (std::FILE* null = std::fopen("/dev/null", "w"); null != nullptr) {
                ::dup2(::fileno(null), STDOUT_FILENO);
                ::dup2(::fileno(null), STDERR_FILENO);
            }
            ::execvp(argv[0], argv.data());
            std::_Exit(127);
        }
        pids.push_back(pid);  // -1 when fork failed: counts as a failure
    }
    std::vector<bool> ok(pids.size(), false);
    std::size_t running = 0;
    for (const pid_t pid : pids) running += pid > 0 ? 1 : 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (running > 0) {
        const bool give_up = std::chrono::steady_clock::now() > deadline || stop_signal.load() != 0;
        for (std::size_t i = 0; i < pids.size(); ++i) {
            if (pids[i] <= 0) continue;
            int status = 0;
            const pid_t done = ::waitpid(pids[i], &status, WNOHANG);
            if (done == pids[i] || (done < 0 && errno != EINTR)) {
                ok[i] = done == pids[i] && exit_code_of(status) == 0;
            } else if (give_up) {
                ::kill(pids[i], SIGKILL);
                wait_for(pids[i]);
            } else {
                continue;
            }
            pids[i] = 0;
            --running;
        }
        if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return ok;
}

/// A temporary file, removed when it goes out of scope however the launcher ends.
class temporary_file {
public:
    temporary_file() = default;
    explicit temporary_file(fs::path path) : path_(std::move(path)) {}
    temporary_file(const temporary_file&) = delete;
    temporary_file& operator=(const temporary_file&) = delete;
    ~temporary_file() {
        std::error_code ec;
        if (!path_.empty()) fs::remove(path_, ec);
    }
    [[nodiscard]] const fs::path& path() const noexcept { return path_; }

private:
    fs::path path_;
};

/// The first line `command --version` prints, or nothing if it cannot be run.
std::optional<std::string> version_of(const std::string& command) {
    const std::string line = command + " --version 2>&1";
    std::FILE* p = ::popen(line.c_str(), "r");
    if (p == nullptr) return std::nullopt;
    std::string out;
    char buffer[256];
    while (std::fgets(buffer, sizeof buffer, p) != nullptr) out += buffer;
    if (::pclose(p) != 0 || out.empty()) return std::nullopt;
    return out.substr(0, out.find('\n'));
}

void sleep_unless_stopped(double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until && stop_signal.load() == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// ------------------------------------------------------------------ the launcher

class launcher {
public:
    explicit launcher(arguments a) : args_(std::move(a)) {}

    int run() {
        if (args_.launcher == "mpirun") {
            const auto version = version_of(args_.mpirun);
            if (!version) throw std::runtime_error("cannot run '" + args_.mpirun + " --version' (is Open MPI or MPICH installed? --mpirun PATH)");
            // Open MPI refuses root unless told; containers and CI run as root.
            open_mpi_ = version->find("Open MPI") != std::string::npos || version->find("OpenRTE") != std::string::npos;
        }
        const temporary_file hosts(args_.hostfile.empty() ? fs::path{}
                                                          : fs::temp_directory_path() /
                                                                ("staticnet-run-" + std::to_string(::getpid()) + ".hosts"));
        hosts_file_ = hosts.path();
        elastic::restart_policy policy(args_.max_restarts, args_.max_repeats);
        for (std::size_t attempt = 1;; ++attempt) {
            if (stop_signal.load() != 0) return stopped();
            const auto start = staticnet::newest_valid_checkpoint(args_.checkpoint);
            const std::size_t ranks = available_ranks();
            std::optional<elastic::failure> failed;
            if (ranks < std::max<std::size_t>(1, args_.min_np)) {
                const std::string why = "only " + std::to_string(ranks) + " of " + std::to_string(args_.np) +
                                        " ranks available (--min-np " + std::to_string(args_.min_np) + ")";
                failed = elastic::failure{why, why};
                log("attempt " + std::to_string(attempt) + " cannot start: " + why);
            } else {
                const auto command = job_command(ranks, start.has_value());
                log("attempt " + std::to_string(attempt) + ": " + std::to_string(ranks) + (ranks == 1 ? " rank, " : " ranks, ") +
                    (start ? "resuming from " + describe(*start) : std::string("from the start")));
                if (args_.dry_run) {
                    std::cout << join(command) << std::endl;
                    return 0;
                }
                std::vector<std::string> job_stderr;
                const int code = run_job(command, job_stderr);
                if (stop_signal.load() != 0) return stopped();
                if (code == 0) {
                    log("the job finished after " + std::to_string(policy.restarts()) +
                        (policy.restarts() == 1 ? " restart" : " restarts"));
                    return 0;
                }
                failed = elastic::explain_failure(code, job_stderr);
                log("attempt " + std::to_string(attempt) + " failed: " + failed->reason);
            }
            const auto end = staticnet::newest_valid_checkpoint(args_.checkpoint);
            const bool progressed = end && (!start || end->steps_done > start->steps_done);
            if (const auto give_up = policy.after_failure(*failed, progressed)) {
                log(*give_up);
                return 1;
            }
            log("restart " + std::to_string(policy.restarts()) + " of " + std::to_string(args_.max_restarts) + " in " +
                format_seconds(args_.restart_delay) + ", " +
                (end ? "from " + describe(*end) : std::string("from the start (no valid checkpoint yet)")) + "; because " +
                failed->reason);
            sleep_unless_stopped(args_.restart_delay);
        }
    }

private:
    arguments args_;
    bool open_mpi_ = false;
    fs::path hosts_file_;  ///< the hosts that answered, for mpirun (owned by run())

    static std::string describe(const staticnet::checkpoint_info& c) {
        const std::string where = c.step == 0 ? "after epoch " + std::to_string(c.epoch)
                                              : "epoch " + std::to_string(c.epoch + 1) + ", step " + std::to_string(c.step) + " of it";
        return c.file.filename().string() + " (" + where + ", " + std::to_string(c.steps_done) + " steps done)";
    }
    static std::string format_seconds(double s) {
        std::ostringstream out;
        out << s << " s";
        return out.str();
    }

    /// How many ranks this attempt may use: --np, or fewer when the hostfile (read again now,
    /// so that an operator or a scheduler can drop a failed host) and the probes offer fewer.
    /// Writes the hosts that answered for mpirun.
    std::size_t available_ranks() {
        if (args_.hostfile.empty()) return args_.np;
        std::ifstream in(args_.hostfile);
        if (!in) throw std::runtime_error("cannot read hostfile '" + args_.hostfile + "'");
        std::stringstream text;
        text << in.rdbuf();
        const auto listed = elastic::parse_hostfile(text.str(), args_.hostfile);
        std::vector<std::vector<std::string>> probes;
        for (const auto& h : listed) probes.push_back(probe_command(h.host));
        const auto answered = args_.probe ? run_quietly(probes, args_.probe_timeout) : std::vector<bool>(listed.size(), true);
        std::vector<elastic::host_slots> alive;
        for (std::size_t i = 0; i < listed.size(); ++i) {
            if (answered[i]) alive.push_back(listed[i]);
            else log("host " + listed[i].host + " does not answer (a one-rank mpirun on it failed): left out of this attempt");
        }
        std::ofstream out(hosts_file_, std::ios::trunc);
        out << elastic::hostfile_text(alive);
        if (!out.flush()) throw std::runtime_error("cannot write " + hosts_file_.string());
        const std::size_t slots = elastic::total_slots(alive);
        if (slots < args_.np)
            log("the hosts of " + args_.hostfile + " that answer offer " + std::to_string(slots) + " of the " +
                std::to_string(args_.np) + " slots asked for (--np)");
        return std::min(args_.np, slots);
    }

    /// A one-rank mpirun on `host`: it answers if Open MPI can start a process there.
    std::vector<std::string> probe_command(const std::string& host) const {
        std::vector<std::string> command{args_.mpirun};
        if (open_mpi_ && ::geteuid() == 0) command.push_back("--allow-run-as-root");
        for (const auto& w : {std::string("--host"), host + ":1", std::string("-np"), std::string("1"), std::string("true")})
            command.push_back(w);
        return command;
    }

    std::vector<std::string> job_command(std::size_t ranks, bool resume) const {
        std::vector<std::string> c;
        if (args_.launcher == "srun") {
            // --kill-on-bad-exit: a rank that dies ends the step, as mpirun does.
            c = {"srun", "--ntasks=" + std::to_string(ranks), "--kill-on-bad-exit=1"};
        } else {
            c = {args_.mpirun, "-np", std::to_string(ranks)};
            if (open_mpi_ && ::geteuid() == 0) c.push_back("--allow-run-as-root");
            if (!hosts_file_.empty()) {
                c.push_back("--hostfile");
                c.push_back(hosts_file_.string());
            }
        }
        for (auto& w : split_words(args_.launcher_args)) c.push_back(std::move(w));
        c.insert(c.end(), args_.job.begin(), args_.job.end());
        c.push_back("--checkpoint");
        c.push_back(args_.checkpoint);
        if (resume) c.push_back("--resume");
        return c;
    }

    int stopped() {
        log(std::string("stopped by signal ") + strsignal(stop_signal.load()));
        return 128 + stop_signal.load();
    }
};

arguments parse(int argc, char** argv) {
    // Everything after "--" is the job's, untouched by our parser.
    int ours = argc;
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--") {
            ours = i;
            break;
        }
    arguments a;
    CLI::App app{"Runs a training program under mpirun and restarts it from its newest valid checkpoint when it fails.",
                 program};
    app.add_option("--np", a.np, "ranks to run")->required()->check(staticnet::tools::whole_number(1));
    app.add_option("--min-np", a.min_np, "fewest ranks to continue with when hosts are lost (default: --np)")
        ->check(staticnet::tools::whole_number(1));
    app.add_option("--hostfile", a.hostfile, "hosts and slots (Open MPI's 'host slots=N' or MPICH's 'host:N'), read again before every attempt");
    app.add_option("--checkpoint", a.checkpoint, "checkpoint directory, passed to the program as --checkpoint DIR")->required();
    app.add_option("--max-restarts", a.max_restarts, "restarts at most")->required()->check(staticnet::tools::whole_number(0));
    app.add_option("--max-repeats", a.max_repeats,
                   "stop when the job fails the same way this many times in a row without a newer checkpoint (0: never)")
        ->capture_default_str()
        ->check(staticnet::tools::whole_number(0));
    app.add_option("--restart-delay", a.restart_delay, "seconds between a failure and the restart")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--probe-timeout", a.probe_timeout, "seconds a host has to answer its probe")
        ->capture_default_str()
        ->check(staticnet::tools::positive_real());
    app.add_option("--launcher", a.launcher, "mpirun or srun (inside a Slurm allocation)")
        ->capture_default_str()
        ->check(CLI::IsMember({"mpirun", "srun"}));
    app.add_option("--mpirun", a.mpirun, "the mpirun to use")->capture_default_str();
    app.add_option("--launcher-args", a.launcher_args, "more arguments for mpirun or srun, split at spaces (e.g. \"--bind-to none\")");
    app.add_flag("!--no-probe", a.probe, "do not probe the hostfile's hosts before an attempt");
    app.add_flag("--dry-run", a.dry_run, "print the first attempt's command line and exit");
    app.footer("After the options: -- PROGRAM ARGS...  (the program gets --checkpoint DIR, and --resume once a valid checkpoint exists)");
    staticnet::tools::parse_or_exit(app, ours, argv);
    for (int i = ours + 1; i < argc; ++i) a.job.emplace_back(argv[i]);
    if (a.job.empty()) std::exit(staticnet::tools::usage_error(program, "no program to run: put it after '--'"));
    if (a.min_np == 0) a.min_np = a.np;
    if (a.min_np > a.np) std::exit(staticnet::tools::usage_error(program, "--min-np must not exceed --np"));
    if (a.launcher == "srun" && !a.hostfile.empty())
        std::exit(staticnet::tools::usage_error(program, "--hostfile goes with --launcher mpirun (Slurm places the ranks itself)"));
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    install_signal_handlers();
    try {
        return launcher(args).run();
    } catch (const std::exception& e) {
        log(std::string("error: ") + e.what());
        return 1;
    }
}
