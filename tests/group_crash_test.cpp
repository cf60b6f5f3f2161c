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
#include "test_util.hpp"

using namespace dmscore;
using namespace dmscore::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST_CASE("Group snapshots: SIGKILL at any point leaves complete group snapshots and no orphan") {
  TempDir dir;
  const std::string data = dir / "data";
  auto setup = run_child({DMSCORE_GROUP_CHILD, "setup", data, dir / "c1"}, 0ms);
  REQUIRE(setup.exit_code == 0);
  auto ids = lines_with(setup.out, "IDS ");
  REQUIRE(ids.size() == 1);
  std::istringstream in(ids[0]);
  std::string cid, gid;
  in >> cid >> gid;

  const int kills = 25;
  std::mt19937 rng(Catch::rngSeed());
  std::set<std::string> acked;
  int real_kills = 0;
  for (int i = 0; i < kills; ++i) {
    auto run = run_child({DMSCORE_GROUP_CHILD, "snap", data, gid, std::to_string(i)},
                         std::chrono::milliseconds(40 + rng() % 400));
    for (auto& id : lines_with(run.out, "ACK ")) acked.insert(id);
    real_kills += run.killed;
  }
  CHECK(real_kills >= 20);
  auto drain = run_child({DMSCORE_GROUP_CHILD, "drain", data}, 0ms);
  REQUIRE(drain.exit_code == 0);

  Options o;
  o.data_dir = data;
  o.rsa_bits = 2048;
  o.health_check_interval = 0ms;
  o.log = [](std::string_view) {};
  auto svc = Service::open(o);
  REQUIRE(svc.ok());
  auto g = (*svc)->get_consistency_group(gid);
  REQUIRE(g.ok());
  std::vector<std::vector<unsigned char>> volume_bytes;
  for (const auto& v : g->volume_ids)
    volume_bytes.push_back(file_bytes((*svc)->get_volume(cid, "p1", v)->device_path));
  auto page = (*svc)->list_cg_snapshots({1000, ""}, gid);
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
      auto sn = (*svc)->get_snapshot(cid, "p1", c.members[i].snapshot_id);
      REQUIRE(sn.ok());
      CHECK(sn->state == SnapshotState::kAvailable);
      CHECK(file_bytes(dir / ("c1/data/" + sn->id + ".snap")) == volume_bytes[i]);
      member_files.insert(sn->id + ".snap");
    }
  }
  for (const auto& id : acked) CHECK((*svc)->get_cg_snapshot(id).ok());
  // No orphans: the cluster holds exactly the members of the available group snapshots.
  std::set<std::string> files;
  for (auto& e : fs::directory_iterator(dir / "c1/data"))
    if (e.path().extension() == ".snap") files.insert(e.path().filename().string());
  CHECK(files == member_files);
  CHECK((*svc)->list_snapshots(cid, "p1", {1000, ""})->snapshots.size() == member_files.size());
  WARN("kills=" << real_kills << " acknowledged=" << acked.size() << " available=" << available
                << " error=" << error);
}
