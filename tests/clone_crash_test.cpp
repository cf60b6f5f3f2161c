// Kills a service with SIGKILL in the middle of thick clones, again and again, and checks that
// every clone resumes from its checkpoint and ends byte-identical, with no orphan files.
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

#include "crash_harness.hpp"
#include "dmscore/service.hpp"
#include "dmscore/store.hpp"
#include "test_files.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace dmscore::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST_CASE("Thick clone: SIGKILL mid-copy resumes from the checkpoint to a byte-identical copy") {
  TempDir dir;
  const std::string data = dir / "data";
  auto setup = run_child({DMSCORE_CLONE_CHILD, "setup", data, dir / "c1", dir / "c2"}, 0ms);
  REQUIRE(setup.exit_code == 0);
  auto ids = lines_with(setup.out, "IDS ");
  REQUIRE(ids.size() == 1);
  std::istringstream in(ids[0]);
  std::string c1, c2, snap;
  in >> c1 >> c2 >> snap;

  const int kills = env_int("DMSCORE_CLONE_KILLS", 25);
  std::mt19937 rng(Catch::rngSeed());
  std::set<std::string> acked;
  int real_kills = 0;
  for (int i = 0; i < kills; ++i) {
    auto run = run_child({DMSCORE_CLONE_CHILD, "clone", data, c1, c2, snap, std::to_string(i)},
                         std::chrono::milliseconds(60 + rng() % 700));
    for (auto& id : lines_with(run.out, "ACK ")) acked.insert(id);
    real_kills += run.killed;
  }
  CHECK(real_kills >= 20);
  auto drain = run_child({DMSCORE_CLONE_CHILD, "drain", data}, 0ms);
  REQUIRE(drain.exit_code == 0);

  // Resumption evidence straight from the store: copies that restarted from an offset > 0.
  int resumed = 0;
  {
    auto store = Store::open(data + "/dms.db");
    REQUIRE(store.ok());
    REQUIRE((*store)
                ->read([&](Txn& t) -> Status {
                  auto r =
                      t.query("SELECT vars FROM workflows WHERE vars LIKE '%copyResumedFrom%'");
                  REQUIRE(r.ok());
                  resumed = static_cast<int>(r->size());
                  return Status::Ok();
                })
                .ok());
  }
  CHECK(resumed > 0);

  auto svc = open_test_service(data);
  const std::string src_file = dir / ("c1/data/" + snap + ".snap");
  const auto src_bytes = file_bytes(src_file);
  const auto src_alloc = allocated_bytes(src_file);
  std::set<std::string> made;
  for (const auto& vid : completed_results(*svc, kThickCloneVolume, "volumeId")) {
    auto v = svc->volumes().get({ClusterId(c2), "p1", vid});
    REQUIRE(v.ok());
    CHECK(v->state == VolumeState::kAvailable);
    CHECK(file_bytes(v->device_path) == src_bytes);
    CHECK(allocated_bytes(v->device_path) <= src_alloc);
    made.insert(vid + ".vol");
  }
  for (const auto& id : acked) CHECK(svc->workflows().get(WorkflowId(id)).ok());
  // No orphans: the destination holds exactly the completed clones' files and their sidecars,
  // and recovery set nothing aside (it only ever finishes or undoes its own intents).
  std::set<std::string> files, want;
  for (auto& e : fs::directory_iterator(dir / "c2/data"))
    files.insert(e.path().filename().string());
  for (const auto& m : made) {
    want.insert(m);
    want.insert(m + ".meta");
  }
  CHECK(files == want);
  CHECK((!fs::exists(dir / "c2/lost+found") || fs::is_empty(dir / "c2/lost+found")));
  CHECK(svc->volumes().list({ClusterId(c2), "p1"}, {1000, ""})->volumes.size() == made.size());
  WARN("kills=" << real_kills << " clones=" << made.size()
                << " resumed from a checkpoint=" << resumed);
}
