// Consistency groups and group snapshots through the Service (group.hpp): point in time under
// concurrent writers (with the fence, and without it to show the test can fail), all or
// nothing, quiesce hooks, the write path and recovery.

#include "dmscore/group.hpp"

#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "dmscore/service.hpp"
#include "dmscore/store.hpp"
#include "service/write_fence.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::TempDir;
using dmscore::testing::write_script;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kVolumeBytes = 1 << 20;
constexpr std::uint64_t kRecord = 16;  // {writer seq u64, writer id u64}
constexpr std::uint64_t kSlotsPerWriter = 2048;

// Local cluster c1 with `volumes` volumes of kVolumeBytes; progress persisted at once, no
// health checks.
struct Fixture : dmscore::testing::ServiceHarness {
  std::string cid;
  std::vector<Volume> vols;

  explicit Fixture(Options o = {}, int volumes = 3) {
    wait_timeout = 120s;
    open(o);
    cid = attach("c1");
    const char* names[] = {"data", "log", "conf", "index", "spare"};
    for (int i = 0; i < volumes; ++i) {
      auto v = svc->volumes().create(ClusterId(cid), {"p1", names[i], kVolumeBytes});
      REQUIRE(v.ok());
      vols.push_back(*v);
    }
  }

  void open(Options o) {
    o.progress_persist_interval = 0ms;
    o.copy_checkpoint_interval = 0ms;
    o.health_check_interval = 0ms;
    open_service(o);
  }

  ConsistencyGroup group(const std::string& name = "db") {
    CreateGroupRequest r;
    r.name = name;
    r.cluster_id = cid;
    r.project_name = "p1";
    for (const auto& v : vols) r.volume_ids.push_back(v.id);
    auto g = svc->groups().create(r);
    INFO(g.status().to_string());
    REQUIRE(g.ok());
    return *g;
  }

  // Takes a group snapshot and waits for its workflow.
  std::pair<CgSnapshot, Workflow> snapshot(const ConsistencyGroup& g, const std::string& name) {
    auto c = svc->groups().create_snapshot({g.id, name, ""});
    INFO(c.status().to_string());
    REQUIRE(c.ok());
    Workflow w = wait(c->workflow_id);
    auto after = svc->groups().get_snapshot(CgSnapshotId(c->id));
    REQUIRE(after.ok());
    return {*after, w};
  }

  std::string snapshot_file(const std::string& snapshot_id) const {
    return tmp / ("c1/data/" + snapshot_id + ".snap");
  }

  std::vector<Snapshot> snapshots() {
    auto p = svc->volumes().list_snapshots({ClusterId(cid), "p1"}, {1000, ""});
    REQUIRE(p.ok());
    return p->snapshots;
  }
};

// Writer w's newest sequence number in an image: the largest seq among its slots.
std::uint64_t newest(const std::string& image, std::uint64_t writer) {
  std::uint64_t best = 0;
  for (std::uint64_t slot = 0; slot < kSlotsPerWriter; ++slot) {
    std::uint64_t off = (writer * kSlotsPerWriter + slot) * kRecord;
    std::uint64_t seq = 0;
    std::memcpy(&seq, image.data() + off, 8);
    best = std::max(best, seq);
  }
  return best;
}

// Writers that each write record n to volume 0, then 1, then 2 ... through the service, so that
// at any instant volume i holds n or n-1 where volume i-1 holds n: a group snapshot at one
// instant sees every writer's newest records in non-increasing order across the volumes, at
// most one apart.
class Writers {
 public:
  Writers(Service& svc, std::string cid, std::vector<Volume> vols, int writers)
      : svc_(svc), cid_(std::move(cid)), vols_(std::move(vols)) {
    for (int w = 0; w < writers; ++w) threads_.emplace_back([this, w] { run(w); });
  }
  ~Writers() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::uint64_t writes() const { return writes_; }
  const std::string& error() const { return error_; }

 private:
  void run(int w) {
    for (std::uint64_t seq = 1; !stop_; ++seq) {
      char rec[kRecord];
      std::uint64_t id = static_cast<std::uint64_t>(w);
      std::memcpy(rec, &seq, 8);
      std::memcpy(rec + 8, &id, 8);
      std::uint64_t off = (id * kSlotsPerWriter + seq % kSlotsPerWriter) * kRecord;
      for (const auto& v : vols_) {
        Status s = svc_.volumes().write({ClusterId(cid_), "p1", v.id}, off,
                                        std::string_view(rec, kRecord));
        if (!s.ok()) {
          std::lock_guard lock(mu_);
          error_ = s.to_string();
          return;
        }
        ++writes_;
      }
    }
  }

  Service& svc_;
  std::string cid_;
  std::vector<Volume> vols_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> writes_{0};
  std::mutex mu_;
  std::string error_;
  std::vector<std::thread> threads_;
};

// "" when the group snapshot's members show one instant, else what is wrong.
std::string check_point_in_time(Fixture& f, const CgSnapshot& c, int writers) {
  std::vector<std::string> images;
  for (const auto& m : c.members)
    images.push_back(dmscore::testing::read_file(f.snapshot_file(m.snapshot_id)));
  for (int w = 0; w < writers; ++w) {
    for (std::size_t i = 1; i < images.size(); ++i) {
      std::uint64_t prev = newest(images[i - 1], w), cur = newest(images[i], w);
      if (cur > prev || prev - cur > 1)
        return "writer " + std::to_string(w) + ": member " + std::to_string(i - 1) + " has " +
               std::to_string(prev) + ", member " + std::to_string(i) + " has " +
               std::to_string(cur);
    }
  }
  return "";
}

void require_ok(const Status& s) {
  INFO(s.to_string());
  REQUIRE(s.ok());
}

}  // namespace

TEST_CASE("Groups: group snapshots taken under concurrent writers show one instant") {
  Fixture f;
  ConsistencyGroup g = f.group();
  constexpr int kWriters = 2;
  Writers writers(*f.svc, f.cid, f.vols, kWriters);
  int checked = 0;
  for (int i = 0; i < 200; ++i) {
    auto [c, w] = f.snapshot(g, "s" + std::to_string(i));
    INFO(w.msg);
    REQUIRE(w.state == WorkflowState::kCompleted);
    REQUIRE(c.status == GroupStatus::kAvailable);
    REQUIRE(c.members.size() == 3);
    std::string problem = check_point_in_time(f, c, kWriters);
    INFO("group snapshot " << i << ": " << problem);
    REQUIRE(problem.empty());
    ++checked;
    require_ok(f.svc->groups().remove_snapshot(CgSnapshotId(c.id)));
  }
  writers.stop();
  INFO(writers.error());
  CHECK(writers.error().empty());
  CHECK(checked == 200);
  CHECK(writers.writes() > 0);
  CHECK(f.snapshots().empty());
}

TEST_CASE("Groups: without the write fence the same check finds a torn group snapshot") {
  // Shows that the test above can fail: the fence is what makes it pass.
  Options o;
  o.group_snapshot_write_fence = false;
  Fixture f(o);
  ConsistencyGroup g = f.group();
  Writers writers(*f.svc, f.cid, f.vols, 2);
  std::string found;
  for (int i = 0; i < 200 && found.empty(); ++i) {
    auto [c, w] = f.snapshot(g, "s" + std::to_string(i));
    REQUIRE(w.state == WorkflowState::kCompleted);
    found = check_point_in_time(f, c, 2);
    require_ok(f.svc->groups().remove_snapshot(CgSnapshotId(c.id)));
  }
  writers.stop();
  INFO("violation: " << found);
  CHECK(!found.empty());
}

TEST_CASE("Groups: a failure at the third member leaves no member snapshot behind") {
  Fixture f({}, 4);
  ConsistencyGroup g = f.group();
  // The third member's snapshot name is taken: its creation fails after two were taken.
  auto blocker = f.svc->volumes().create_snapshot(ClusterId(f.cid),
                                                  {"p1", "nightly-conf", f.vols[0].id, "mine"});
  REQUIRE(blocker.ok());
  auto [c, w] = f.snapshot(g, "nightly");
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("member 3"));
  CHECK(c.status == GroupStatus::kError);
  CHECK_THAT(c.message, Catch::Contains("member 3"));
  CHECK(c.members.empty());
  auto left = f.snapshots();
  REQUIRE(left.size() == 1);  // only the one that was there before
  CHECK(left[0].id == blocker->id);
  // Nothing on disk either but the blocker.
  int files = 0;
  for (const auto& e : fs::directory_iterator(f.tmp / "c1/data"))
    files += e.path().extension() == ".snap";
  CHECK(files == 1);
  // An error group snapshot can be deleted; the group is usable again.
  require_ok(f.svc->groups().remove_snapshot(CgSnapshotId(c.id)));
  require_ok(f.svc->volumes().remove_snapshot({ClusterId(f.cid), "p1", blocker->id}));
  auto [c2, w2] = f.snapshot(g, "nightly");
  CHECK(w2.state == WorkflowState::kCompleted);
  CHECK(c2.members.size() == 4);
}

TEST_CASE("Groups: quiesce hooks run around the fence, a failing pre hook takes nothing") {
  TempDir hooks;
  const std::string log = hooks / "log";
  Options o;
  o.group_snapshot_pre_hook = hooks / "pre";
  o.group_snapshot_post_hook = hooks / "post";
  o.group_snapshot_hook_timeout = 5s;
  write_script(o.group_snapshot_post_hook, "echo post >> " + log);
  SECTION("both hooks run, with the group's details, before and after the members are taken") {
    Fixture f(o);
    write_script(o.group_snapshot_pre_hook,
                 "echo \"pre $DMS_HOOK_PHASE $DMS_CG_ID $DMS_CLUSTER_ID $DMS_PROJECT "
                 "$(ls " +
                     (f.tmp / "c1/data") + " | grep -c 'snap$')\" >> " + log +
                     "\necho \"$DMS_VOLUME_IDS\" >> " + log);
    write_script(o.group_snapshot_post_hook, "echo \"post $DMS_CG_SNAPSHOT_RESULT $(ls " +
                                                 (f.tmp / "c1/data") + " | grep -c 'snap$')\" >> " +
                                                 log);
    ConsistencyGroup g = f.group();
    auto [c, w] = f.snapshot(g, "hooked");
    REQUIRE(w.state == WorkflowState::kCompleted);
    std::string text = dmscore::testing::read_file(log);
    std::string ids = f.vols[0].id + " " + f.vols[1].id + " " + f.vols[2].id;
    CHECK(text == "pre pre " + g.id + " " + f.cid + " p1 0\n" + ids + "\npost ok 3\n");
  }
  SECTION("a failing pre hook fails the group snapshot; the post hook does not run") {
    write_script(o.group_snapshot_pre_hook, "echo pre >> " + log + "\nexit 3");
    Fixture f(o);
    ConsistencyGroup g = f.group();
    auto [c, w] = f.snapshot(g, "hooked");
    CHECK(w.state == WorkflowState::kFailed);
    CHECK_THAT(w.msg, Catch::Contains("pre hook") && Catch::Contains("status 3"));
    CHECK(c.status == GroupStatus::kError);
    CHECK(f.snapshots().empty());
    CHECK(dmscore::testing::read_file(log) == "pre\n");
  }
  SECTION("a pre hook that outlives its timeout is killed and fails the group snapshot") {
    write_script(o.group_snapshot_pre_hook, "sleep 30");
    o.group_snapshot_hook_timeout = 300ms;
    Fixture f(o);
    ConsistencyGroup g = f.group();
    auto t0 = std::chrono::steady_clock::now();
    auto [c, w] = f.snapshot(g, "hooked");
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);
    CHECK(w.state == WorkflowState::kFailed);
    CHECK_THAT(w.msg, Catch::Contains("killed"));
    CHECK(f.snapshots().empty());
  }
  SECTION("a hook that does not exist fails the group snapshot") {
    o.group_snapshot_pre_hook = hooks / "missing";
    Fixture f(o);
    ConsistencyGroup g = f.group();
    auto [c, w] = f.snapshot(g, "hooked");
    CHECK(w.state == WorkflowState::kFailed);
    CHECK_THAT(w.msg, Catch::Contains("cannot be started"));
  }
}

TEST_CASE("Groups: group rules: membership, status, deletes that keep volumes") {
  Fixture f({}, 4);
  CreateGroupRequest r{"db", "", f.cid, "p1", {f.vols[0].id, f.vols[1].id}};
  auto g = f.svc->groups().create(r);
  REQUIRE(g.ok());
  CHECK(g->status == GroupStatus::kAvailable);
  // A volume is in one group at most.
  CreateGroupRequest r2{"other", "", f.cid, "p1", {f.vols[2].id, f.vols[1].id}};
  auto dup = f.svc->groups().create(r2);
  CHECK(dup.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(dup.status().message(), Catch::StartsWith("volumeIds[1]:"));
  CHECK(f.svc->groups().list({}).value().groups.size() == 1);
  // Unknown volume, other project.
  auto other_project = f.svc->volumes().create(ClusterId(f.cid), {"p2", "x", kVolumeBytes});
  REQUIRE(other_project.ok());
  CreateGroupRequest r3{"third", "", f.cid, "p1", {other_project->id}};
  CHECK(f.svc->groups().create(r3).status().code() == Code::kNotFound);
  // Updates.
  UpdateGroupRequest u;
  u.add_volume_ids = {f.vols[2].id};
  u.remove_volume_ids = {f.vols[0].id};
  u.description = "orders";
  auto g2 = f.svc->groups().update(GroupId(g->id), u);
  REQUIRE(g2.ok());
  CHECK(g2->volume_ids == std::vector<std::string>{f.vols[1].id, f.vols[2].id});
  CHECK(g2->description == "orders");
  UpdateGroupRequest both;
  both.add_volume_ids = {f.vols[3].id};
  both.remove_volume_ids = {f.vols[3].id};
  CHECK(f.svc->groups().update(GroupId(g->id), both).status().code() == Code::kInvalidArgument);
  // Members cannot be deleted; the one removed can.
  CHECK(f.svc->volumes().remove({ClusterId(f.cid), "p1", f.vols[1].id}).code() ==
        Code::kFailedPrecondition);
  CHECK(f.svc->volumes().remove({ClusterId(f.cid), "p1", f.vols[0].id}).ok());
  // Status rules.
  require_ok(f.svc->groups().reset_status(GroupId(g->id), GroupStatus::kError, "admin"));
  UpdateGroupRequest add;
  add.add_volume_ids = {f.vols[3].id};
  CHECK(f.svc->groups().update(GroupId(g->id), add).status().code() == Code::kFailedPrecondition);
  CHECK(f.svc->groups().create_snapshot({g->id, "", ""}).status().code() ==
        Code::kFailedPrecondition);
  require_ok(f.svc->groups().reset_status(GroupId(g->id), GroupStatus::kAvailable, "admin"));
  auto [c, w] = f.snapshot(*g2, "");
  REQUIRE(w.state == WorkflowState::kCompleted);
  CHECK(c.name == "cgsnap-" + c.id.substr(0, 8));
  CHECK(f.svc->groups().remove(GroupId(g->id)).code() == Code::kFailedPrecondition);
  CHECK(f.svc->clusters().detach(ClusterId(f.cid)).code() == Code::kFailedPrecondition);
  require_ok(f.svc->groups().remove_snapshot(CgSnapshotId(c.id)));
  require_ok(f.svc->groups().remove(GroupId(g->id)));
  // The volumes are still there.
  CHECK(f.svc->volumes().get({ClusterId(f.cid), "p1", f.vols[1].id}).ok());
  CHECK(f.svc->volumes().get({ClusterId(f.cid), "p1", f.vols[2].id}).ok());
  CHECK(f.svc->groups().get(GroupId(g->id)).status().code() == Code::kNotFound);
}

TEST_CASE("Groups: the write path checks its bounds and the volume's state") {
  Fixture f({}, 1);
  const auto& v = f.vols[0];
  CHECK(f.svc->volumes().write({ClusterId(f.cid), "p1", v.id}, kVolumeBytes - 4, "12345").code() ==
        Code::kInvalidArgument);
  CHECK(f.svc->volumes().write({ClusterId(f.cid), "p1", v.id}, ~std::uint64_t{0}, "1").code() ==
        Code::kInvalidArgument);
  CHECK(f.svc->volumes()
            .write({ClusterId(f.cid), "p1", "5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e"}, 0, "1")
            .code() == Code::kNotFound);
  CHECK(f.svc->volumes()
            .write({ClusterId("5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e"), "p1", v.id}, 0, "1")
            .code() == Code::kNotFound);
  require_ok(
      f.svc->volumes().write({ClusterId(f.cid), "p1", v.id}, kVolumeBytes - 5, "12345", true));
  std::string data = dmscore::testing::read_file(v.device_path);
  REQUIRE(data.size() == kVolumeBytes);
  CHECK(data.substr(kVolumeBytes - 5) == "12345");
  CHECK(data.substr(0, 5) == std::string(5, '\0'));
}

TEST_CASE("Groups: a group snapshot whose workflow was never recorded ends in error on open") {
  Fixture f({}, 2);
  ConsistencyGroup g = f.group();
  f.svc.reset();
  {
    auto store = Store::open(f.tmp / "data/dms.db", {});
    REQUIRE(store.ok());
    REQUIRE((*store)
                ->transact([&](Txn& t) {
                  return t
                      .exec(
                          "INSERT INTO cg_snapshots (id, group_id, name, cluster_id, project, "
                          "status, created_at) VALUES ('11111111-2222-4333-8444-555555555555', "
                          "?, 'cut', ?, 'p1', 'creating', 0)",
                          {g.id, f.cid})
                      .status();
                })
                .ok());
  }
  f.open({});
  auto c = f.svc->groups().get_snapshot(CgSnapshotId("11111111-2222-4333-8444-555555555555"));
  REQUIRE(c.ok());
  CHECK(c->status == GroupStatus::kError);
  CHECK_THAT(c->message, Catch::Contains("interrupted"));
  require_ok(f.svc->groups().remove_snapshot(CgSnapshotId(c->id)));
}

TEST_CASE("Groups: statuses print and parse as Manila's") {
  for (auto s : {GroupStatus::kCreating, GroupStatus::kAvailable, GroupStatus::kError,
                 GroupStatus::kDeleting, GroupStatus::kErrorDeleting}) {
    auto p = parse_group_status(to_string(s), "status");
    REQUIRE(p.ok());
    CHECK(*p == s);
  }
  auto bad = parse_group_status("migrating", "resetStatus.status");
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::StartsWith("resetStatus.status:"));
}

TEST_CASE("Groups: a group made from a group snapshot gets a clone of every member") {
  Fixture f;
  ConsistencyGroup g = f.group();
  for (std::size_t i = 0; i < f.vols.size(); ++i)
    require_ok(f.svc->volumes().write({ClusterId(f.cid), "p1", f.vols[i].id}, 4096 * i,
                                      "member " + std::to_string(i), true));
  auto [c, w] = f.snapshot(g, "base");
  REQUIRE(w.state == WorkflowState::kCompleted);
  // Writes after the group snapshot are not in the new group.
  require_ok(f.svc->volumes().write({ClusterId(f.cid), "p1", f.vols[0].id}, 0, "later", true));

  CreateGroupRequest bad{"copy", "", f.cid, "", {}, c.id};
  CHECK_THAT(f.svc->groups().create(bad).status().message(), Catch::StartsWith("clusterId:"));
  CreateGroupRequest unknown{"copy", "", "", "", {}, "5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e"};
  CHECK(f.svc->groups().create(unknown).status().code() == Code::kNotFound);
  CreateGroupRequest not_uuid{"copy", "", "", "", {}, "base"};
  CHECK_THAT(f.svc->groups().create(not_uuid).status().message(),
             Catch::StartsWith("sourceCgSnapshotId:"));

  SECTION("every member is cloned, in order, with the snapshot's data") {
    CreateGroupRequest r{"copy", "from base", "", "", {}, c.id};
    auto made = f.svc->groups().create(r);
    require_ok(made.status());
    CHECK(made->status == GroupStatus::kCreating);
    CHECK(made->cluster_id == f.cid);
    REQUIRE(!made->workflow_id.empty());
    Workflow mw = f.wait(made->workflow_id);
    INFO(mw.msg);
    REQUIRE(mw.state == WorkflowState::kCompleted);
    CHECK(mw.type == kCreateConsistencyGroup);
    auto copy = f.svc->groups().get(GroupId(made->id));
    require_ok(copy.status());
    CHECK(copy->status == GroupStatus::kAvailable);
    CHECK(copy->source_cg_snapshot_id == c.id);
    REQUIRE(copy->volume_ids.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      auto v = f.svc->volumes().get({ClusterId(f.cid), "p1", copy->volume_ids[i]});
      require_ok(v.status());
      CHECK(v->name == "copy-" + f.vols[i].name);
      CHECK(v->source_snapshot_id == c.members[i].snapshot_id);
      std::string data = dmscore::testing::read_file(v->device_path);
      CHECK(data.substr(4096 * i, 8) == "member " + std::to_string(i));
    }
    CHECK(dmscore::testing::read_file(
              f.svc->volumes().get({ClusterId(f.cid), "p1", copy->volume_ids[0]})->device_path)
              .substr(0, 5) != "later");
    // Its source's member snapshots are what it was made from; the new group works on its own.
    auto [c2, w2] = f.snapshot(*copy, "of-copy");
    CHECK(w2.state == WorkflowState::kCompleted);
  }
  SECTION("a failure at the second member leaves the group in error and no volume behind") {
    auto taken = f.svc->volumes().create(ClusterId(f.cid), {"p1", "copy-log", kVolumeBytes});
    REQUIRE(taken.ok());
    CreateGroupRequest r{"copy", "", "", "", {}, c.id};
    auto made = f.svc->groups().create(r);
    require_ok(made.status());
    Workflow mw = f.wait(made->workflow_id);
    CHECK(mw.state == WorkflowState::kFailed);
    CHECK_THAT(mw.msg, Catch::Contains("member 2"));
    auto copy = f.svc->groups().get(GroupId(made->id));
    require_ok(copy.status());
    CHECK(copy->status == GroupStatus::kError);
    CHECK_THAT(copy->message, Catch::Contains("member 2"));
    CHECK(copy->volume_ids.empty());
    auto vols = f.svc->volumes().list({ClusterId(f.cid), "p1"}, {1000, ""});
    REQUIRE(vols.ok());
    for (const auto& v : vols->volumes) CHECK(v.name != "copy-data");
    CHECK(vols->volumes.size() == 4);  // the three members and the one in the way
    require_ok(f.svc->groups().remove(GroupId(made->id)));
  }
}

TEST_CASE("Groups: the write fence wins over a steady stream of overlapping writes") {
  // Writers that always overlap one another would starve a reader-preferring lock; the fence
  // must still go up, and then hold every new write.
  dmscore::detail::WriteFence fence;
  std::atomic<bool> stop{false};
  std::atomic<int> entered{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([&] {
      while (!stop) {
        auto pass = fence.enter("c/v", 10s);
        if (!pass.ok()) continue;
        ++entered;
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  while (entered < 20) std::this_thread::yield();
  auto raised = fence.raise({"c/v", "c/w"}, 5s);
  require_ok(raised.status());
  const int at_raise = entered.load();
  std::this_thread::sleep_for(50ms);
  CHECK(entered.load() <= at_raise + 4);  // only writers already past the gate, if any
  CHECK(fence.enter("c/w", 20ms).status().code() == Code::kUnavailable);
  raised->release();
  std::this_thread::sleep_for(20ms);
  CHECK(entered.load() > at_raise + 4);  // writes flow again
  stop = true;
  for (auto& t : writers) t.join();
  CHECK(fence.active_keys() == 0);
}

TEST_CASE("Groups: a group snapshot refused at maxRunningWorkflows leaves nothing recorded") {
  TempDir hooks;
  Options o;
  o.max_running_workflows = 1;
  o.group_snapshot_pre_hook = hooks / "pre";
  write_script(o.group_snapshot_pre_hook, "sleep 1");
  Fixture f(o);
  ConsistencyGroup g = f.group();
  auto first = f.svc->groups().create_snapshot({g.id, "first", ""});
  require_ok(first.status());
  auto second = f.svc->groups().create_snapshot({g.id, "second", ""});
  CHECK(second.status().code() == Code::kResourceExhausted);
  auto page = f.svc->groups().list_snapshots({}, GroupId(g.id));
  require_ok(page.status());
  REQUIRE(page->cg_snapshots.size() == 1);
  CHECK(page->cg_snapshots[0].id == first->id);
  CHECK(f.wait(first->workflow_id).state == WorkflowState::kCompleted);
}

TEST_CASE("Groups: a group snapshot cancelled before its workflow started ends in error") {
  TempDir hooks;
  Options o;
  o.workflow_threads = 1;
  o.group_snapshot_pre_hook = hooks / "pre";
  o.group_snapshot_hook_timeout = 10s;
  write_script(o.group_snapshot_pre_hook, "sleep 1");  // keeps the one worker busy
  Fixture f(o);
  auto g = f.group();
  auto first = f.svc->groups().create_snapshot({g.id, "first", ""});
  REQUIRE(first.ok());
  auto second = f.svc->groups().create_snapshot({g.id, "second", ""});
  REQUIRE(second.ok());
  REQUIRE(f.svc->workflows().cancel(WorkflowId(second->workflow_id)).ok());
  auto w = f.wait(second->workflow_id);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(!w.started_at.has_value());  // it never ran
  auto c = f.svc->groups().get_snapshot(CgSnapshotId(second->id));
  REQUIRE(c.ok());
  CHECK(c->status == GroupStatus::kError);
  CHECK(c->message == "cancelled before it started");
  CHECK(f.wait(first->workflow_id).state == WorkflowState::kCompleted);
  CHECK(f.svc->groups()
            .remove_snapshot(CgSnapshotId(second->id))
            .ok());  // an error one can be deleted
}
