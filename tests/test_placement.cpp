// CPU masks and the default thread count of a rank (comm/placement.hpp): the rule as a pure
// function of the masks, without MPI. (test_mpi checks what the ranks of a real job choose.)
#include <catch2/catch.hpp>

#include <staticnet/comm/launch.hpp>
#include <staticnet/comm/local.hpp>
#include <staticnet/comm/placement.hpp>
#include <staticnet/core/cpu_mask.hpp>
#include <staticnet/core/thread_pool.hpp>

#include <initializer_list>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace sn = staticnet;

namespace {

sn::cpu_mask cpus(std::initializer_list<std::size_t> list) {
    sn::cpu_mask m;
    for (const std::size_t cpu : list) m.insert(cpu);
    return m;
}

sn::cpu_mask cpu_range(std::size_t first, std::size_t last) {
    sn::cpu_mask m;
    for (std::size_t cpu = first; cpu <= last; ++cpu) m.insert(cpu);
    return m;
}

sn::rank_placement place(const sn::cpu_mask& own, const std::vector<sn::cpu_mask>& node, std::size_t hardware = 64) {
    return sn::rank_placement::from_masks(own, node, hardware);
}

}  // namespace

TEST_CASE("cpu_mask: a set of CPUs that survives its words", "[placement][cpu_mask]") {
    const sn::cpu_mask m = cpus({0, 3, 64, 1023, 1024});  // 1024 is past the end: ignored
    CHECK(m.count() == 4);
    CHECK(m.contains(3));
    CHECK_FALSE(m.contains(2));
    CHECK(m.contains(1023));
    CHECK_FALSE(m.contains(1024));
    CHECK(sn::cpu_mask::from_words(m.words()) == m);
    CHECK(m.overlaps(cpus({64})));
    CHECK_FALSE(m.overlaps(cpus({1, 2, 65})));
    CHECK(sn::cpu_mask{}.empty());
    sn::cpu_mask both = cpus({1});
    both |= cpus({2});
    CHECK(both == cpus({1, 2}));
}

TEST_CASE("cpu_mask of this process is what sched_getaffinity reports", "[placement][cpu_mask]") {
    const sn::cpu_mask mine = sn::cpu_mask::of_this_process();
#if defined(__linux__)
    cpu_set_t set;
    REQUIRE(::sched_getaffinity(0, sizeof(set), &set) == 0);
    CHECK(mine.count() == static_cast<std::size_t>(CPU_COUNT(&set)));
    CHECK(sn::available_cpus() == mine.count());
    CHECK(sn::thread_pool{}.size() == mine.count());  // 0 threads: the CPUs it may use
#endif
    CHECK(sn::available_cpus() >= 1);
}

TEST_CASE("default threads: the rank's CPUs shared out among the ranks that may run on them", "[placement]") {
    SECTION("one process alone takes its whole mask") {
        const auto p = place(cpu_range(0, 5), {cpu_range(0, 5)});
        CHECK(p.default_threads() == 6);
        CHECK(p.sharing_ranks == 1);
        CHECK(p.local_ranks == 1);
        CHECK(p.node_cpus == 6);
        CHECK(place(cpus({2}), {cpus({2})}).default_threads() == 1);  // e.g. taskset -c 2
    }
    SECTION("disjoint masks (mpirun bound each rank to its own cores): no sharing") {
        const std::vector<sn::cpu_mask> node{cpus({0}), cpus({1})};
        CHECK(place(node[0], node).default_threads() == 1);
        CHECK(place(node[0], node).sharing_ranks == 1);
        const std::vector<sn::cpu_mask> sockets{cpu_range(0, 15), cpu_range(16, 31)};
        CHECK(place(sockets[1], sockets).default_threads() == 16);
        CHECK(place(sockets[1], sockets).node_cpus == 32);
        CHECK_FALSE(place(sockets[1], sockets).oversubscribed(16));
    }
    SECTION("fully overlapping masks (no binding): the CPUs divided among the ranks, rounded down") {
        const std::vector<sn::cpu_mask> four(4, cpu_range(0, 15));
        CHECK(place(four[0], four).default_threads() == 4);
        const std::vector<sn::cpu_mask> three(3, cpu_range(0, 7));
        CHECK(place(three[2], three).default_threads() == 2);
        CHECK(place(three[2], three).sharing_ranks == 3);
    }
    SECTION("partial overlap: only the ranks that share a CPU with this one count") {
        // Two ranks on socket 0 (CPUs 0-7), one on socket 1, one unbound over both.
        const std::vector<sn::cpu_mask> node{cpu_range(0, 7), cpu_range(0, 7), cpu_range(8, 15), cpu_range(0, 15)};
        CHECK(place(node[0], node).sharing_ranks == 3);
        CHECK(place(node[0], node).default_threads() == 2);  // 8 / 3
        CHECK(place(node[2], node).sharing_ranks == 2);
        CHECK(place(node[2], node).default_threads() == 4);
        CHECK(place(node[3], node).sharing_ranks == 4);
        CHECK(place(node[3], node).default_threads() == 4);
        CHECK(place(node[3], node).node_cpus == 16);
    }
    SECTION("unknown masks: this rank's stands for the machine, and an unknown one is counted as sharing") {
        const sn::cpu_mask unknown;
        const std::vector<sn::cpu_mask> none_known{unknown, unknown};
        const auto p = place(unknown, none_known, 12);
        CHECK(p.cpus == 12);
        CHECK(p.sharing_ranks == 2);
        CHECK(p.default_threads() == 6);
        CHECK(p.node_cpus == 12);
        const std::vector<sn::cpu_mask> one_known{cpus({0, 1}), unknown};
        CHECK(place(one_known[0], one_known, 12).sharing_ranks == 2);
        CHECK(place(one_known[0], one_known, 12).default_threads() == 1);
        CHECK(place(one_known[0], one_known, 12).node_cpus == 12);
        // No masks at all (a communicator that knows nothing of its node): alone, all CPUs.
        CHECK(place(unknown, {}, 12).default_threads() == 12);
        CHECK(place(unknown, {}, 0).default_threads() == 1);  // hardware_concurrency() may be 0
    }
    SECTION("more ranks than CPUs: 1 thread each, and the node is oversubscribed") {
        const std::vector<sn::cpu_mask> five(5, cpu_range(0, 1));
        const auto p = place(five[0], five);
        CHECK(p.default_threads() == 1);
        CHECK(p.oversubscribed(1));
        CHECK(p.node_cpus == 2);
    }
    SECTION("an explicit count is kept, and judged against the node's CPUs") {
        const std::vector<sn::cpu_mask> node{cpus({0}), cpus({1})};
        const auto p = place(node[0], node);
        CHECK_FALSE(p.oversubscribed(p.default_threads()));
        CHECK(p.oversubscribed(2));  // 2 ranks x 2 threads on 2 CPUs
        CHECK(sn::detail::model_threads(3, p, false) == 3);
        CHECK(sn::detail::model_threads(0, p, false) == 1);
    }
    SECTION("a count far above the rank's CPUs is capped at 4 per CPU, and rank 0 says so once") {
        const std::vector<sn::cpu_mask> node{cpu_range(0, 1)};
        const auto p = place(node[0], node);
        CHECK(sn::detail::model_threads(sn::max_threads_per_cpu * 2, p, false) == 8);  // kept
        std::ostringstream said;
        auto* const old = std::cerr.rdbuf(said.rdbuf());
        sn::detail::thread_cap_reported = false;
        const std::size_t capped = sn::detail::model_threads(999, p, true);
        const std::size_t again = sn::detail::model_threads(64, p, true);
        std::cerr.rdbuf(old);
        CHECK(capped == 8);
        CHECK(again == 8);
        CHECK_THAT(said.str(), Catch::Contains("999 threads asked for, but this rank may run on 2 CPUs: using 8"));
        CHECK(said.str().find("64 threads") == std::string::npos);  // once per process
        CHECK(sn::detail::model_threads(sn::thread_pool::max_threads, place(cpus({3}), {cpus({3})}), false) == 4);
    }
}

TEST_CASE("local_communicator: one process with all the CPUs of its mask", "[placement]") {
    const sn::rank_placement p = sn::local_communicator{}.placement();
    CHECK(p.local_ranks == 1);
    CHECK(p.sharing_ranks == 1);
    CHECK(p.default_threads() == sn::available_cpus());
}

namespace {
/// A launcher's environment as a lookup for launch_info::from.
auto environment(std::map<std::string, std::string> variables) {
    return [v = std::move(variables)](const char* name) -> const char* {
        const auto it = v.find(name);
        return it == v.end() ? nullptr : it->second.c_str();
    };
}
}  // namespace

TEST_CASE("launch_info: rank and node-local ranks as mpirun, Hydra and srun give them", "[placement][launch]") {
    SECTION("Open MPI's mpirun") {
        const auto i = sn::launch_info::from(environment({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                                                          {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
        CHECK((i.rank == 5 && i.size == 8 && i.local_rank == 1 && i.local_size == 4));
    }
    SECTION("MPICH's Hydra") {
        const auto i = sn::launch_info::from(
            environment({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "0"}, {"MPI_LOCALNRANKS", "1"}}));
        CHECK((i.rank == 2 && i.size == 3 && i.local_rank == 0 && i.local_size == 1));
    }
    SECTION("Slurm's srun: the node's tasks from the step's tasks per node") {
        // 3 nodes with 2 tasks, then one with 1: task 6 is alone on node 3.
        auto slurm = std::map<std::string, std::string>{{"SLURM_STEP_ID", "0"},          {"SLURM_STEP_NUM_TASKS", "7"},
                                                        {"SLURM_PROCID", "6"},           {"SLURM_NODEID", "3"},
                                                        {"SLURM_LOCALID", "0"},          {"SLURM_STEP_TASKS_PER_NODE", "2(x3),1"}};
        auto i = sn::launch_info::from(environment(slurm));
        CHECK((i.rank == 6 && i.size == 7 && i.local_rank == 0 && i.local_size == 1));
        slurm["SLURM_PROCID"] = "3";
        slurm["SLURM_NODEID"] = "1";
        slurm["SLURM_LOCALID"] = "1";
        i = sn::launch_info::from(environment(slurm));
        CHECK((i.rank == 3 && i.local_rank == 1 && i.local_size == 2));
        // Under srun with PMIx, MPI's own variables win where both are set.
        slurm["OMPI_COMM_WORLD_LOCAL_RANK"] = "0";
        slurm["OMPI_COMM_WORLD_LOCAL_SIZE"] = "2";
        CHECK(sn::launch_info::from(environment(slurm)).local_rank == 0);
    }
    SECTION("a batch script (no step), nothing, or nonsense: unknown") {
        CHECK(sn::launch_info::from(environment({{"SLURM_PROCID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_LOCALID", "0"},
                                                 {"SLURM_TASKS_PER_NODE", "4"}}))
                  .local_size == 0);
        CHECK(sn::launch_info::from(environment({})).size == 0);
        CHECK(sn::launch_info::from(environment({{"OMPI_COMM_WORLD_RANK", "9"}, {"OMPI_COMM_WORLD_SIZE", "8"}})).size == 0);
        CHECK(sn::launch_info::from(environment({{"SLURM_STEP_ID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_LOCALID", "0"},
                                                 {"SLURM_STEP_TASKS_PER_NODE", "2(x"}}))
                  .local_size == 0);
    }
    SECTION("with the placement rule: launcher-counted ranks of unknown masks share this rank's CPUs") {
        // What mpi_communicator does when MPI puts every rank alone on its "node".
        const auto own = cpu_range(0, 7);
        std::vector<sn::cpu_mask> node{own};
        node.resize(4);  // launch_info: 4 ranks on this node
        CHECK(sn::rank_placement::from_masks(own, node, 8).default_threads() == 2);
    }
}
