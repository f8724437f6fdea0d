// Checkpoints and weight files: exact resume, and every kind of bad file.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <staticnet/staticnet.hpp>

#include <csignal>
#include <fstream>
#include <sstream>

#include <sys/resource.h>

namespace sn = staticnet;
namespace fs = std::filesystem;

namespace {

using net = sn::sequential<sn::input<6, 6, 1>, sn::conv2d<4, 3, sn::relu>, sn::max_pool2d<2>, sn::batch_norm<>,
                           sn::flatten, sn::dropout<0.1f>, sn::dense<3, sn::softmax>>;
using other_net = sn::sequential<sn::input<6, 6, 1>, sn::conv2d<5, 3, sn::relu>, sn::flatten, sn::dense<3, sn::softmax>>;
using trainer = sn::model<net, sn::adam, sn::sparse_categorical_crossentropy>;

sn::data::dataset samples(std::size_t n = 60) {
    sn::data::dataset d;
    d.images = xt::zeros<float>({n, std::size_t{6}, std::size_t{6}, std::size_t{1}});
    d.labels = xt::zeros<std::int32_t>({n});
    sn::rng g(1);
    for (auto& v : d.images) v = g.uniform();
    for (std::size_t i = 0; i < n; ++i) d.labels(i) = static_cast<std::int32_t>(i % 3);
    return d;
}

std::vector<float> weights_of(trainer& m) {
    std::vector<float> v(m.network().parameters().begin(), m.network().parameters().end());
    v.insert(v.end(), m.network().state().begin(), m.network().state().end());
    v.insert(v.end(), m.optimizer_state().state().begin(), m.optimizer_state().state().end());
    return v;
}

void flip_byte(const fs::path& file, std::size_t offset) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
}

}  // namespace

TEST_CASE("resuming from a checkpoint gives bitwise the weights of an uninterrupted run", "[checkpoint][resume]") {
    const auto d = samples();
    const sn::fit_options full{.epochs = 4, .batch_size = 8, .seed = 5, .verbose = false};
    trainer reference({}, {.threads = 2, .seed = 1});
    const auto h_ref = reference.fit(d, full);

    for (std::size_t every_steps : {0, 3}) {  // at epoch ends, and in the middle of epochs
        temp_dir dir;
        trainer first({}, {.threads = 2, .seed = 1});
        auto stop_early = full;
        stop_early.epochs = 2;
        first.fit(d, stop_early, sn::checkpoint_callback{.directory = dir.path, .every_epochs = 1, .every_steps = every_steps});

        trainer resumed({}, {.threads = 1, .seed = 99});  // other seed and threads: the file decides
        const auto file = sn::resume_latest(resumed, dir.path);
        REQUIRE(file.has_value());
        auto rest = full;
        rest.resume = true;
        const auto h = resumed.fit(d, rest);
        INFO("checkpoint every " << every_steps << " steps, resumed from " << *file);
        CHECK(weights_of(resumed) == weights_of(reference));
        CHECK(resumed.steps_done() == reference.steps_done());
        REQUIRE(h.size() == 2);  // epochs 3 and 4, numbered as such
        CHECK(h.epochs[0].epoch == 3);
        CHECK(h.back().loss == h_ref.back().loss);
    }
}

TEST_CASE("weights files round-trip and predict the same", "[checkpoint][weights]") {
    temp_dir dir;
    const auto d = samples();
    trainer m({}, {.threads = 1});
    m.fit(d, {.epochs = 2, .batch_size = 8, .verbose = false});
    sn::save_weights(m.network(), dir.path / "model.snw");
    trainer fresh({}, {.threads = 1, .seed = 3});
    sn::load_weights(fresh.network(), dir.path / "model.snw");
    const auto p = m.predict(d.images);
    const auto q = fresh.predict(d.images);
    CHECK(std::equal(p.begin(), p.end(), q.begin()));

    other_net other;
    CHECK_THROWS_WITH(sn::load_weights(other, dir.path / "model.snw"),
                      Catch::Contains("another architecture") && Catch::Contains(sn::detail::hex_text(net::fingerprint, 16)) &&
                          Catch::Contains(sn::detail::hex_text(other_net::fingerprint, 16)));
}

TEST_CASE("damaged or foreign checkpoints are refused with a clear message", "[checkpoint][errors]") {
    temp_dir dir;
    const auto d = samples();
    trainer m({}, {.threads = 1});
    m.fit(d, {.epochs = 1, .batch_size = 8, .verbose = false});
    const fs::path good = dir.path / "checkpoint-000000000001.snckpt";
    sn::save_checkpoint(m, good, m.position());
    const auto size = fs::file_size(good);
    auto copy = [&](const char* name) {
        const fs::path p = dir.path / name;
        fs::copy_file(good, p, fs::copy_options::overwrite_existing);
        return p;
    };
    trainer target({}, {.threads = 1});

    SECTION("another architecture: both fingerprints named") {
        sn::model<other_net, sn::adam, sn::sparse_categorical_crossentropy> other({}, {.threads = 1});
        CHECK_THROWS_WITH(sn::load_checkpoint(other, good),
                          Catch::Contains("another architecture") && Catch::Contains(sn::detail::hex_text(net::fingerprint, 16)) &&
                              Catch::Contains(sn::detail::hex_text(other_net::fingerprint, 16)));
    }
    SECTION("another optimizer") {
        sn::model<net, sn::sgd, sn::sparse_categorical_crossentropy> other({}, {.threads = 1});
        CHECK_THROWS_WITH(sn::load_checkpoint(other, good), Catch::Contains("optimizer 'adam'"));
    }
    SECTION("truncated") {
        const auto p = copy("truncated.snckpt");
        fs::resize_file(p, size / 2);
        CHECK_THROWS_WITH(sn::load_checkpoint(target, p), Catch::Contains("truncated.snckpt") && Catch::Contains("checksum"));
        fs::resize_file(p, 20);
        CHECK_THROWS_WITH(sn::load_checkpoint(target, p), Catch::Contains("truncated"));
    }
    SECTION("a flipped byte anywhere") {
        for (std::size_t offset : {std::size_t{60}, std::size_t{200}, size - 100, size - 2}) {
            const auto p = copy("flipped.snckpt");
            flip_byte(p, offset);
            CHECK_THROWS_WITH(sn::load_checkpoint(target, p), Catch::Contains("flipped.snckpt") && Catch::Contains("checksum mismatch"));
        }
    }
    SECTION("wrong magic and wrong version") {
        auto p = copy("magic.snckpt");
        flip_byte(p, 0);
        CHECK_THROWS_WITH(sn::load_checkpoint(target, p), Catch::Contains("wrong magic"));
        p = copy("version.snckpt");
        flip_byte(p, 9);  // version is the u32 at offset 8
        CHECK_THROWS_WITH(sn::load_checkpoint(target, p), Catch::Contains("format version"));
    }
    SECTION("a missing file or directory") {
        CHECK_THROWS_WITH(sn::load_checkpoint(target, dir.path / "nope.snckpt"), Catch::Contains("cannot open") && Catch::Contains("nope.snckpt"));
        CHECK_THROWS_WITH(sn::resume_latest(target, dir.path / "missing"), Catch::Contains("does not exist"));
    }
    SECTION("no checkpoint loaded leaves the model untouched") {
        const auto before = weights_of(target);
        const auto p = copy("bad.snckpt");
        flip_byte(p, 300);
        CHECK_THROWS(sn::load_checkpoint(target, p));
        CHECK(weights_of(target) == before);
    }
}

TEST_CASE("resume_latest skips damaged newer checkpoints and refuses when none is valid", "[checkpoint][resume]") {
    temp_dir dir;
    const auto d = samples();
    trainer m({}, {.threads = 1});
    m.fit(d, {.epochs = 3, .batch_size = 8, .verbose = false}, sn::checkpoint_callback{.directory = dir.path, .keep = 2});
    auto files = sn::list_checkpoints(dir.path);
    REQUIRE(files.size() == 2);  // keep = 2 of 3
    flip_byte(files.back(), 150);
    trainer target({}, {.threads = 1});
    std::ostringstream log;
    const auto loaded = sn::resume_latest(target, dir.path, log);
    REQUIRE(loaded.has_value());
    CHECK(*loaded == files.front());
    CHECK_THAT(log.str(), Catch::Contains("skipping") && Catch::Contains(files.back().filename().string()));
    CHECK(target.position().epoch == 2);

    flip_byte(files.front(), 150);
    CHECK_THROWS_WITH(sn::resume_latest(target, dir.path, log),
                      Catch::Contains("no valid checkpoint") && Catch::Contains(files.front().filename().string()) &&
                          Catch::Contains(files.back().filename().string()));
    fs::remove_all(dir.path);
    fs::create_directories(dir.path);
    CHECK_FALSE(sn::resume_latest(target, dir.path, log).has_value());  // empty: a fresh start is the caller's call
}

TEST_CASE("inspect_checkpoint and newest_valid_checkpoint read a run's progress without its model", "[checkpoint][tools]") {
    temp_dir dir;
    CHECK_FALSE(sn::newest_valid_checkpoint(dir.path / "missing").has_value());
    CHECK_FALSE(sn::newest_valid_checkpoint(dir.path).has_value());
    const auto d = samples();
    trainer m({}, {.threads = 1});
    m.fit(d, {.epochs = 2, .batch_size = 8, .seed = 5, .verbose = false},
          sn::checkpoint_callback{.directory = dir.path, .every_steps = 3, .keep = 2});
    const auto files = sn::list_checkpoints(dir.path);
    REQUIRE(files.size() == 2);
    const auto newest = sn::inspect_checkpoint(files.back());
    CHECK(newest.steps_done == m.steps_done());  // 2 epochs of 8 steps (60 samples, batch 8)
    CHECK(newest.epoch == 2);
    CHECK(newest.step == 0);
    CHECK(newest.batch_size == 8);
    CHECK(newest.seed == 5);
    CHECK(newest.fingerprint == net::fingerprint);
    const auto latest = sn::newest_valid_checkpoint(dir.path);
    REQUIRE(latest.has_value());
    CHECK(latest->file == files.back());

    flip_byte(files.back(), 150);
    CHECK_THROWS_WITH(sn::inspect_checkpoint(files.back()),
                      Catch::Contains(files.back().filename().string()) && Catch::Contains("checksum"));
    const auto older = sn::newest_valid_checkpoint(dir.path);  // the damaged newest is skipped
    REQUIRE(older.has_value());
    CHECK(older->file == files.front());
    CHECK(older->steps_done < newest.steps_done);
    fs::resize_file(files.front(), 100);
    CHECK_THROWS_WITH(sn::inspect_checkpoint(files.front()), Catch::Contains("truncated"));
    CHECK_FALSE(sn::newest_valid_checkpoint(dir.path).has_value());
}

TEST_CASE("a write that fails half-way leaves the previous checkpoint loadable", "[checkpoint][errors]") {
    temp_dir dir;
    const auto d = samples();
    trainer m({}, {.threads = 1});
    m.fit(d, {.epochs = 1, .batch_size = 8, .verbose = false});
    const fs::path file = dir.path / "checkpoint-000000000001.snckpt";
    sn::save_checkpoint(m, file, m.position());
    const auto saved = weights_of(m);
    m.fit(d, {.epochs = 1, .batch_size = 8, .verbose = false});  // the model moves on

    // A full disk, simulated: a file-size limit makes write() fail with EFBIG part-way.
    rlimit old{};
    getrlimit(RLIMIT_FSIZE, &old);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit tiny = old;
    tiny.rlim_cur = 1000;
    setrlimit(RLIMIT_FSIZE, &tiny);
    CHECK_THROWS_WITH(sn::save_checkpoint(m, file, m.position()), Catch::Contains("cannot write"));
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);

    trainer target({}, {.threads = 1});
    sn::load_checkpoint(target, file);
    CHECK(weights_of(target) == saved);
    std::size_t leftovers = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) leftovers += e.path() != file;
    CHECK(leftovers == 0);  // the temporary file is gone

    SECTION("an unwritable place") {
        CHECK_THROWS_WITH(sn::save_checkpoint(m, dir.path / "no" / "such" / "dir.snckpt", m.position()),
                          Catch::Contains("cannot create"));
    }
}

TEST_CASE("a diverging run stops with the step and keeps its last checkpoint", "[checkpoint][errors]") {
    temp_dir dir;
    auto d = samples();
    trainer m({.learning_rate = 1e-3f}, {.threads = 1});
    m.fit(d, {.epochs = 1, .batch_size = 8, .verbose = false}, sn::checkpoint_callback{.directory = dir.path});
    d.images(50, 2, 2, 0) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(m.fit(d, {.epochs = 2, .batch_size = 8, .shuffle = false, .verbose = false},
                            sn::checkpoint_callback{.directory = dir.path}),
                      Catch::Contains("step 15") && Catch::Contains("not finite"));
    trainer target({}, {.threads = 1});
    REQUIRE(sn::resume_latest(target, dir.path).has_value());
    CHECK(target.position().epoch == 1);
}
