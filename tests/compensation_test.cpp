// Compensation undoes only its own work: a workflow deletes what its steps recorded making, or
// what carries its owner label, never an object it merely found under the name it wanted.

#include <catch2/catch.hpp>
#include <filesystem>

#include "service_fixture.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::Fixture;
using dmscore::testing::read_file;
using dmscore::testing::result_field;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

// Two workflows running clones that take a while: while they hold both engine threads, the
// workflows submitted after them wait in PENDING; cancelling them lets the waiting ones start
// at the same moment.
struct Racing {
  Fixture f;
  Snapshot sn;

  Racing() : f(options()) {
    f.attach_two();
    sn = f.source(16 * kMiB, 16).second;
  }

  static Options options() {
    Options o;
    o.workflow_threads = 2;
    o.copy_rate_limit_bytes_per_sec = 8 * kMiB;  // a 16 MiB copy takes about 2 s
    o.copy_chunk_bytes = 1 * kMiB;
    return o;
  }

  std::vector<WorkflowId> blockers() {
    std::vector<WorkflowId> ids;
    for (const char* name : {"blocker-1", "blocker-2"}) {
      auto id = f.svc->clones().volume(f.clone_req(sn, name));
      REQUIRE(id.ok());
      ids.push_back(*id);
    }
    for (const auto& id : ids) {
      for (int i = 0; i < 500; ++i) {
        auto w = f.svc->workflows().get(WorkflowId(id));
        if (w->progress.stage == "copy") break;
        std::this_thread::sleep_for(10ms);
      }
    }
    return ids;
  }
};

}  // namespace

TEST_CASE("Compensation: two clones racing for one destination name leave the winner intact") {
  Racing r;
  auto blockers = r.blockers();
  // Both are admitted: no volume of that name exists yet.
  auto a = r.f.svc->clones().volume(r.f.clone_req(r.sn, "contested"));
  auto b = r.f.svc->clones().volume(r.f.clone_req(r.sn, "contested"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (const auto& id : blockers) REQUIRE(r.f.svc->workflows().cancel(id).ok());
  Workflow wa = r.f.wait(*a), wb = r.f.wait(*b);
  INFO(wa.msg << " / " << wb.msg);
  // Exactly one made the volume; the other failed on the taken name and its undo left the
  // winner's volume (still being filled when it ran) alone.
  REQUIRE(((wa.state == WorkflowState::kCompleted) != (wb.state == WorkflowState::kCompleted)));
  const Workflow& winner = wa.state == WorkflowState::kCompleted ? wa : wb;
  const Workflow& loser = wa.state == WorkflowState::kCompleted ? wb : wa;
  CHECK(loser.state == WorkflowState::kFailed);
  CHECK_THAT(loser.msg, Catch::Contains("already exists"));
  auto v =
      r.f.svc->volumes().get({ClusterId(r.f.c2), "p2", result_field(winner.result, "volumeId")});
  REQUIRE(v.ok());
  CHECK(v->state == VolumeState::kAvailable);
  CHECK(read_file(v->device_path) == read_file(r.f.snapshot_path("c1", r.sn)));
}
