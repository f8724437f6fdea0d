// staticnet-run's decisions (tools/elastic.hpp): hostfiles, the cause of a failure, when to
// stop restarting. The processes themselves are tested end to end by tests/fault/elastic.sh.
#include <catch2/catch.hpp>

#include "tools/elastic.hpp"

namespace el = staticnet::tools::elastic;

TEST_CASE("hostfiles in Open MPI's and MPICH's forms", "[launcher]") {
    const auto hosts = el::parse_hostfile("# two nodes\nnode1 slots=4 max_slots=8\n\n  node2:2  # MPICH\nnode3\n", "hosts");
    REQUIRE(hosts.size() == 3);
    CHECK(hosts[0] == el::host_slots{"node1", 4});
    CHECK(hosts[1] == el::host_slots{"node2", 2});
    CHECK(hosts[2] == el::host_slots{"node3", 1});
    CHECK(el::total_slots(hosts) == 7);
    CHECK(el::hostfile_text(hosts) == "node1 slots=4\nnode2 slots=2\nnode3 slots=1\n");
    CHECK(el::parse_hostfile(el::hostfile_text(hosts), "again") == hosts);
    CHECK(el::parse_hostfile("", "empty").empty());

    CHECK_THROWS_WITH(el::parse_hostfile("a slots=2\nb slots=x\n", "h.txt"), Catch::StartsWith("h.txt:2: 'slots=x'"));
    CHECK_THROWS_WITH(el::parse_hostfile("a slots=0", "h"), Catch::Contains("slots must be a whole number >= 1"));
    CHECK_THROWS_WITH(el::parse_hostfile("a:-1", "h"), Catch::StartsWith("h:1: 'a:-1'"));
    CHECK_THROWS_WITH(el::parse_hostfile("\n\na cpus=2", "h"), Catch::StartsWith("h:3: 'cpus=2' is not understood"));
}

TEST_CASE("the cause of a failure, from what the job wrote", "[launcher]") {
    SECTION("a rank's own message comes first") {
        const auto f = el::explain_failure(1, {"epoch 1/3 ...", "staticnet: rank 1 of 2: label 9 of sample 5 is outside [0, 4)",
                                               "--------", "MPI_ABORT was invoked on rank 1 in communicator MPI_COMM_WORLD"});
        CHECK(f.reason == "rank 1 of 2: label 9 of sample 5 is outside [0, 4)");
        // Another rank failing first the same way is the same failure.
        CHECK(el::explain_failure(1, {"staticnet: rank 0 of 2: label 9 of sample 5 is outside [0, 4)"}).signature == f.signature);
    }
    SECTION("a rank ended by a signal, without its process id") {
        const auto f = el::explain_failure(
            137, {"-----", "mpirun noticed that process rank 2 with PID 4242 on node vm exited on signal 9 (Killed).", "-----"});
        CHECK(f.reason == "rank 2 on node vm exited on signal 9 (Killed)");
    }
    SECTION("otherwise the last line the job wrote, or the status") {
        CHECK(el::explain_failure(2, {"prog: --epochs: needs a whole number", "", "------"}).reason ==
              "prog: --epochs: needs a whole number (exit status 2)");
        CHECK(el::explain_failure(139, {}).reason == "ended by signal 11");
    }
}

TEST_CASE("restarts: at most N, and never the same failure again and again without progress", "[launcher]") {
    const el::failure killed{"rank 1 killed", "rank # killed"}, bad_data{"label 9", "label #"};
    SECTION("--max-restarts") {
        el::restart_policy p(2, 0);
        CHECK_FALSE(p.after_failure(killed, true).has_value());
        CHECK_FALSE(p.after_failure(killed, false).has_value());
        CHECK(p.restarts() == 2);
        const auto stop = p.after_failure(killed, true);
        REQUIRE(stop.has_value());
        CHECK_THAT(*stop, Catch::StartsWith("gave up after 2 restarts (--max-restarts 2)") && Catch::EndsWith("rank 1 killed"));
    }
    SECTION("--max-repeats counts the same failure without a newer checkpoint") {
        el::restart_policy p(100, 3);
        CHECK_FALSE(p.after_failure(bad_data, false).has_value());
        CHECK_FALSE(p.after_failure(bad_data, false).has_value());
        CHECK_FALSE(p.after_failure(killed, false).has_value());  // another cause: counting starts again
        CHECK_FALSE(p.after_failure(killed, true).has_value());   // progress: so does it
        CHECK_FALSE(p.after_failure(killed, false).has_value());
        const auto stop = p.after_failure(killed, false);
        REQUIRE(stop.has_value());
        CHECK(*stop == "failed the same way 3 times in a row without a newer checkpoint: rank 1 killed");
    }
    SECTION("no restarts at all") {
        el::restart_policy p(0, 3);
        CHECK(p.after_failure(killed, true).has_value());
    }
}
