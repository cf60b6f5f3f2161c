// Kills a repair of a local cluster with SIGKILL at random points, again and again: every
// volume and snapshot comes back byte for byte, whatever the moment of each kill, and every
// file the repair could not explain is in lost+found/, whole.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>

#include "crash_harness.hpp"
#include "dmscore/local_backend.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace dmscore::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::map<std::string, std::string> objects_on_disk(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::directory_iterator(dir + "/data")) {
    const auto ext = e.path().extension();
    if (ext == ".vol" || ext == ".snap")
      out[e.path().filename().string()] = read_file(e.path().string());
  }
  return out;
}

}  // namespace

TEST_CASE("Local repair: SIGKILL at any point of a repair loses nothing, and the next one finishes") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  constexpr int kObjects = 120;
  auto setup = run_child({DMSCORE_REPAIR_CHILD, "setup", dir, std::to_string(kObjects)}, 0ms);
  REQUIRE(setup.exit_code == 0);
  const auto pristine = objects_on_disk(dir);
  REQUIRE(pristine.size() == 2 * kObjects);

  const int rounds = env_int("DMSCORE_REPAIR_ROUNDS", 22);
  std::mt19937 rng(Catch::rngSeed());
  int kills_mid_repair = 0;
  for (int round = 0; round < rounds; ++round) {
    // The damage: the metadata is lost, and a stray file sits among the data.
    remove_cluster_db(dir);
    const std::string stray = "stray-" + std::to_string(round) + ".txt";
    write_file(dir + "/data/" + stray, "round " + std::to_string(round));

    bool finished = false;
    for (int attempt = 0; attempt < 40 && !finished; ++attempt) {
      // Early attempts are killed at random moments; a last one runs to its end.
      const bool kill = attempt < 6;
      auto run = kill ? run_child_kill_after_line({DMSCORE_REPAIR_CHILD, "repair", dir}, "OPEN",
                                                  std::chrono::microseconds(rng() % 10000))
                      : run_child({DMSCORE_REPAIR_CHILD, "repair", dir}, 0ms);
      const bool opened_needing = !lines_with(run.out, "OPEN 1").empty();
      const bool done = !lines_with(run.out, "DONE").empty() || !lines_with(run.out, "CLEAN").empty();
      if (run.killed && opened_needing && !done) ++kills_mid_repair;
      if (!run.killed) {
        INFO(run.out);
        REQUIRE(run.exit_code == 0);
        finished = done;
      }
    }
    REQUIRE(finished);

    auto b = LocalBackend::open(dir);
    REQUIRE(b.ok());
    REQUIRE((*b)->repair_needed().ok());
    CHECK(objects_on_disk(dir) == pristine);
    auto vols = (*b)->list_volumes("p1", {1000, ""});
    auto snaps = (*b)->list_snapshots("p1", {1000, ""});
    REQUIRE(vols.ok());
    REQUIRE(snaps.ok());
    CHECK(vols->volumes.size() == kObjects);
    CHECK(snaps->snapshots.size() == kObjects);
    for (const auto& v : vols->volumes) CHECK(v.state == VolumeState::kAvailable);
    CHECK(read_file(dir + "/lost+found/" + stray) == "round " + std::to_string(round));
    for (auto& e : fs::directory_iterator(dir + "/data")) {
      INFO(e.path());
      CHECK(e.path().extension() != ".tmp");
    }
    CHECK_FALSE(fs::exists(dir + "/cluster.db.repair"));
  }
  WARN("kills in the middle of a repair: " << kills_mid_repair);
  CHECK(kills_mid_repair >= 20);
}
