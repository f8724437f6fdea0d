#pragma once
/// @file
/// `mpi_communicator`: data parallelism over MPI (Boost.MPI + Open MPI). Link `staticnet::mpi`.
///
///     int main(int argc, char** argv) {
///         staticnet::mpi_communicator comm{argc, argv};      // owns MPI_Init / MPI_Finalize
///         staticnet::model<net, sn::adam, sn::categorical_crossentropy, staticnet::mpi_communicator> m{comm};
///         ...
///     }
///
/// It either owns the MPI environment (constructed from argc/argv) or wraps a communicator
/// of a larger MPI program (`mpi_communicator{MPI_COMM_WORLD}` or any sub-communicator),
/// which it then never initialises nor finalises. Collectives work in place on raw buffers
/// with `MPI_IN_PLACE`: no serialisation, no copies. `abort` ends every rank of the job with
/// a message, which is how a rank that fails keeps its peers from waiting in a collective.
///
/// Construction is collective over the communicator: the ranks that share a node
/// (`MPI_COMM_TYPE_SHARED`) exchange their CPU affinity masks once, so that `placement()`
/// can tell each rank how many of them compete for its CPUs (comm/placement.hpp).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <mpi.h>

#include "../core/cpu_mask.hpp"
#include "../core/error.hpp"
#include "communicator.hpp"
#include "launch.hpp"
#include "placement.hpp"

namespace staticnet {

class mpi_communicator {
public:
    /// Initialises MPI (thread level "funneled": only the calling thread talks to MPI) and
    /// finalises it when destroyed.
    mpi_communicator(int& argc, char**& argv)
        : environment_(std::make_unique<boost::mpi::environment>(argc, argv, boost::mpi::threading::funneled)),
          comm_(MPI_COMM_WORLD, boost::mpi::comm_attach) {
        pending_.reserve(64);  // no allocation in the training step
        placement_ = find_placement(native());
    }

    /// Wraps a communicator of a program that manages MPI itself (MPI must be initialised).
    explicit mpi_communicator(MPI_Comm comm) : comm_(comm, boost::mpi::comm_attach) {
        pending_.reserve(64);
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (initialized == 0) throw error("mpi_communicator: MPI is not initialised; construct it from argc/argv instead");
        placement_ = find_placement(native());
    }

    mpi_communicator(const mpi_communicator&) = delete;
    mpi_communicator& operator=(const mpi_communicator&) = delete;

    [[nodiscard]] int rank() const { return comm_.rank(); }
    [[nodiscard]] int size() const { return comm_.size(); }
    /// The underlying MPI communicator.
    [[nodiscard]] MPI_Comm native() const { return static_cast<MPI_Comm>(comm_); }
    /// This rank's CPUs and the ranks of its node that may run on them (found at construction).
    [[nodiscard]] const rank_placement& placement() const noexcept { return placement_; }

    void allreduce_sum(std::span<float> values) { allreduce(values.data(), values.size(), MPI_FLOAT); }
    void allreduce_sum(std::span<double> values) { allreduce(values.data(), values.size(), MPI_DOUBLE); }
    void allreduce_sum(std::span<std::int64_t> values) { allreduce(values.data(), values.size(), MPI_INT64_T); }

    /// Starts a sum over ranks of `values` in place; `wait_all` completes it. The buffer must
    /// not be touched in between.
    void start_allreduce_sum(std::span<float> values) {
        MPI_Request request;
        check(MPI_Iallreduce(MPI_IN_PLACE, values.data(), count(values.size()), MPI_FLOAT, MPI_SUM, native(), &request),
              "MPI_Iallreduce");
        pending_.push_back(request);
    }
    void wait_all() {
        if (pending_.empty()) return;
        check(MPI_Waitall(static_cast<int>(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
        pending_.clear();
    }

    void broadcast(std::span<float> values, int root) { bcast(values.data(), values.size(), MPI_FLOAT, root); }
    void broadcast(std::span<std::uint64_t> values, int root) { bcast(values.data(), values.size(), MPI_UINT64_T, root); }
    void broadcast(std::span<double> values, int root) { bcast(values.data(), values.size(), MPI_DOUBLE, root); }
    void broadcast(std::span<std::byte> values, int root) { bcast(values.data(), values.size(), MPI_BYTE, root); }

    void barrier() { check(MPI_Barrier(native()), "MPI_Barrier"); }

    /// Prints `message` (with this rank) and ends every rank of the job.
    [[noreturn]] void abort(std::string_view message) {
        // One write of the whole line: the ranks that fail together share one stderr pipe,
        // and launchers (staticnet-run) read the cause from it.
        const std::string line = "staticnet: rank " + std::to_string(rank()) + " of " + std::to_string(size()) + ": " +
                                 std::string(message) + "\n";
        std::cerr.write(line.data(), static_cast<std::streamsize>(line.size())).flush();
        MPI_Abort(native(), EXIT_FAILURE);
        std::abort();  // MPI_Abort does not return; this is for the compiler
    }

private:
    static int count(std::size_t n) {
        if (n > static_cast<std::size_t>(INT32_MAX)) throw error("mpi_communicator: buffer too large for one MPI call");
        return static_cast<int>(n);
    }
    static void check(int code, const char* what) {
        if (code != MPI_SUCCESS) throw error(std::string("mpi_communicator: ") + what + " failed with code " + std::to_string(code));
    }
    void allreduce(void* data, std::size_t n, MPI_Datatype type) {
        if (n == 0 || size() == 1) return;
        check(MPI_Allreduce(MPI_IN_PLACE, data, count(n), type, MPI_SUM, native()), "MPI_Allreduce");
    }
    /// Gathers the affinity masks of the ranks of `comm` on this node (collective).
    static rank_placement find_placement(MPI_Comm comm) {
        MPI_Comm node = MPI_COMM_NULL;
        check(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
        int ranks = 1;
        MPI_Comm_size(node, &ranks);
        const cpu_mask own = cpu_mask::of_this_process();
        constexpr int words = static_cast<int>(cpu_mask::word_count);
        std::vector<std::uint64_t> all(static_cast<std::size_t>(ranks) * cpu_mask::word_count);
        const int gathered = MPI_Allgather(own.words().data(), words, MPI_UINT64_T, all.data(), words, MPI_UINT64_T, node);
        MPI_Comm_free(&node);
        check(gathered, "MPI_Allgather");
        std::vector<cpu_mask> masks;
        for (std::size_t r = 0; r < static_cast<std::size_t>(ranks); ++r)
            masks.push_back(cpu_mask::from_words(std::span<const std::uint64_t, cpu_mask::word_count>(
                all.data() + r * cpu_mask::word_count, cpu_mask::word_count)));
        // An MPI that cannot tell which ranks share the node (each alone in its "node"), e.g.
        // a PMI without locality information under srun: trust the launcher's count, and take
        // the ranks it names, whose masks are unknown, as competing for this rank's CPUs.
        if (const auto launch = launch_info::from_environment(); ranks == 1 && launch.local_size > 1)
            masks.resize(launch.local_size);
        return rank_placement::from_masks(own, masks);
    }
    void bcast(void* data, std::size_t n, MPI_Datatype type, int root) {
        if (n == 0 || size() == 1) return;
        check(MPI_Bcast(data, count(n), type, root, native()), "MPI_Bcast");
    }

    std::unique_ptr<boost::mpi::environment> environment_;  // null when wrapping a communicator
    boost::mpi::communicator comm_;
    std::vector<MPI_Request> pending_;
    rank_placement placement_;
};

static_assert(communicator<mpi_communicator>);

}  // namespace staticnet
