// Kills a service with SIGKILL while it takes group snapshots, again and again, and checks that
// every acknowledged group snapshot ends available with all its members, that nothing else is
// left on the cluster (no member snapshot of a group snapshot that did not finish, no file
// without its row), and that every member equals its volume.
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

#include "crash_harness.hpp"
#include "dmscore/service.hpp"
#include "test_files.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace dmscore::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A group of three volumes with data, made by the child, then `mode` run 25 times, each killed
// with SIGKILL at a random moment, then the rest drained by a last, unkilled run.
struct KilledRuns {
  TempDir dir;
  std::string data = dir / "data";
  std::string cid, gid;
  std::set<std::string> acked;
  int real_kills = 0;

  explicit KilledRuns(const char* mode) {
    auto setup = run_child({DMSCORE_GROUP_CHILD, "setup", data, dir / "c1"}, 0ms);
    REQUIRE(setup.exit_code == 0);
    auto ids = lines_with(setup.out, "IDS ");
    REQUIRE(ids.size() == 1);
    std::istringstream in(ids[0]);
    in >> cid >> gid;
    std::mt19937 rng(Catch::rngSeed());
    for (int i = 0; i < 25; ++i) {
      auto run = run_child({DMSCORE_GROUP_CHILD, mode, data, gid, std::to_string(i)},
                           std::chrono::milliseconds(40 + rng() % 400));
      for (auto& id : lines_with(run.out, "ACK ")) acked.insert(id);
      real_kills += run.killed;
    }
    CHECK(real_kills >= 20);
    auto drain = run_child({DMSCORE_GROUP_CHILD, "drain", data}, 0ms);
    REQUIRE(drain.exit_code == 0);
  }

  std::unique_ptr<Service> reopen() const {
    Options o;
    o.health_check_interval = 0ms;
    return open_test_service(data, o);
  }
};

}  // namespace

TEST_CASE("Group snapshots: SIGKILL at any point leaves complete group snapshots and no orphan") {
  KilledRuns k("snap");
  const auto& [dir, data, cid, gid, acked, real_kills] = k;
  auto svc = k.reopen();
  auto g = svc->groups().get(GroupId(gid));
  REQUIRE(g.ok());
  std::vector<std::vector<unsigned char>> volume_bytes;
  for (const auto& v : g->volume_ids)
    volume_bytes.push_back(file_bytes(svc->volumes().get({ClusterId(cid), "p1", v})->device_path));
  auto page = svc->groups().list_snapshots({1000, ""}, GroupId(gid));
  REQUIRE(page.ok());
  std::set<std::string> member_files;
  int available = 0, error = 0;
  for (const auto& c : page->cg_snapshots) {
    INFO(c.id << " " << to_string(c.status) << " " << c.message);
    if (acked.count(c.id)) CHECK(c.status == GroupStatus::kAvailable);
    REQUIRE((c.status == GroupStatus::kAvailable || c.status == GroupStatus::kError));
    if (c.status == GroupStatus::kError) {
      ++error;
      CHECK(c.members.empty());
      continue;
    }
    ++available;
    REQUIRE(c.members.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      auto sn = svc->volumes().get_snapshot({ClusterId(cid), "p1", c.members[i].snapshot_id});
      REQUIRE(sn.ok());
      CHECK(sn->state == SnapshotState::kAvailable);
      CHECK(file_bytes(dir / ("c1/data/" + sn->id + ".snap")) == volume_bytes[i]);
      member_files.insert(sn->id + ".snap");
    }
  }
  for (const auto& id : acked) CHECK(svc->groups().get_snapshot(CgSnapshotId(id)).ok());
  // No orphans: the cluster holds exactly the members of the available group snapshots.
  std::set<std::string> files;
  for (auto& e : fs::directory_iterator(dir / "c1/data"))
    if (e.path().extension() == ".snap") files.insert(e.path().filename().string());
  CHECK(files == member_files);
  CHECK(svc->volumes().list_snapshots({ClusterId(cid), "p1"}, {1000, ""})->snapshots.size() ==
        member_files.size());
  WARN("kills=" << real_kills << " acknowledged=" << acked.size() << " available=" << available
                << " error=" << error);
}

TEST_CASE("Full copies: SIGKILL at any point leaves every copy complete and no orphan") {
  KilledRuns k("copy");
  const auto& [dir, data, cid, gid, acked, real_kills] = k;
  auto svc = k.reopen();
  auto g = svc->groups().get(GroupId(gid));
  REQUIRE(g.ok());
  std::vector<std::vector<unsigned char>> volume_bytes;
  std::set<std::string> volume_files, snapshot_files;
  for (const auto& v : g->volume_ids) {
    volume_bytes.push_back(file_bytes(svc->volumes().get({ClusterId(cid), "p1", v})->device_path));
    volume_files.insert(v + ".vol");
  }
  auto sets = svc->copy_sets().list(GroupId(gid), {1000, ""});
  REQUIRE(sets.ok());
  std::set<std::string> listed, referenced;
  int copies = 0;
  for (const auto& set : sets->copy_sets) {
    listed.insert(set.id);
    for (const auto& c : set.copies) {
      INFO(set.id << " copy " << c.index << " " << to_string(c.status) << " " << c.message);
      // A kill never fails a copy: every step resumes.
      REQUIRE(c.status == CopyStatus::kSynchronized);
      referenced.insert(c.cg_snapshot_id);
      ++copies;
      REQUIRE(c.volumes.size() == 3);
      for (std::size_t i = 0; i < 3; ++i) {
        auto v = svc->volumes().get({ClusterId(cid), "p1", c.volumes[i].volume_id});
        REQUIRE(v.ok());
        CHECK(v->state == VolumeState::kAvailable);
        CHECK(file_bytes(v->device_path) == volume_bytes[i]);
        volume_files.insert(v->id + ".vol");
      }
    }
  }
  for (const auto& id : acked) CHECK(listed.count(id) == 1);
  // The group snapshots left are exactly the ones copies come from, all available.
  auto snaps = svc->groups().list_snapshots({1000, ""}, GroupId(gid));
  REQUIRE(snaps.ok());
  std::set<std::string> kept;
  for (const auto& c : snaps->cg_snapshots) {
    INFO(c.id << " " << to_string(c.status) << " " << c.message);
    CHECK(c.status == GroupStatus::kAvailable);
    kept.insert(c.id);
    for (const auto& m : c.members) snapshot_files.insert(m.snapshot_id + ".snap");
  }
  CHECK(kept == referenced);
  // No orphan file: volumes are the members and the copies, snapshots the kept members.
  std::set<std::string> vols, snap_files;
  for (auto& e : fs::directory_iterator(dir / "c1/data")) {
    if (e.path().extension() == ".vol") vols.insert(e.path().filename().string());
    if (e.path().extension() == ".snap") snap_files.insert(e.path().filename().string());
  }
  CHECK(vols == volume_files);
  CHECK(snap_files == snapshot_files);
  WARN("kills=" << real_kills << " acknowledged sets=" << acked.size()
                << " sets=" << sets->copy_sets.size() << " copies=" << copies
                << " group snapshots=" << kept.size());
}
