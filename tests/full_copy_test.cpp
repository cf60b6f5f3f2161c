// Group full copies and group thick clones through the Service (full_copy.hpp): copies
// byte-identical to their group snapshot across two clusters, restore, resynchronize,
// createInactive and activate, detach, refusals, and one copy failing beside the others.

#include "dmscore/full_copy.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <thread>

#include "dmscore/service.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::read_file;

namespace {

// Equal contents, as a bool: Catch would print two 4 MiB strings on a mismatch.
bool same(const std::string& a, const std::string& b) { return a == b; }

constexpr std::uint64_t kVolumeBytes = 4 << 20;

// Local clusters c1 and c2, and group "db" of three filled volumes on c1; progress persisted at
// once, no health checks.
struct Fixture : dmscore::testing::ServiceHarness {
  std::string c1, c2;
  std::vector<Volume> vols;
  ConsistencyGroup group;

  explicit Fixture(Options o = {}) {
    wait_timeout = 120s;
    o.progress_persist_interval = 0ms;
    o.copy_checkpoint_interval = 0ms;
    o.health_check_interval = 0ms;
    open_service(o);
    c1 = attach("c1");
    c2 = attach("c2");
    const char* names[] = {"data", "log", "conf"};
    for (int i = 0; i < 3; ++i) {
      auto v = svc->volumes().create(ClusterId(c1), {"p1", names[i], kVolumeBytes});
      REQUIRE(v.ok());
      vols.push_back(*v);
      fill(*v, static_cast<char>('a' + i));
    }
    CreateGroupRequest r;
    r.name = "db";
    r.cluster_id = c1;
    r.project_name = "p1";
    for (const auto& v : vols) r.volume_ids.push_back(v.id);
    auto g = svc->groups().create(r);
    REQUIRE(g.ok());
    group = *g;
  }

  // Distinct content per volume and round: a byte pattern every 64 KiB, holes between.
  void fill(const Volume& v, char tag) {
    for (std::uint64_t off = 0; off < kVolumeBytes; off += 256 << 10) {
      std::string data(4096, tag);
      data += v.id + "@" + std::to_string(off);
      REQUIRE(svc->volumes().write({ClusterId(c1), "p1", v.id}, off, data, true).ok());
    }
  }

  void wait_all(const CopySetWork& w, WorkflowState want = WorkflowState::kCompleted) {
    for (const auto& cw : w.workflows) {
      auto done = wait(cw.workflow_id);
      INFO(done.msg);
      CHECK(done.state == want);
    }
  }

  std::string volume_file(const std::string& cluster_dir, const std::string& id) const {
    return tmp / (cluster_dir + "/data/" + id + ".vol");
  }
  std::string snapshot_file(const std::string& id) const {
    return tmp / ("c1/data/" + id + ".snap");
  }

  CopySet get(const std::string& set_id) {
    auto s = svc->copy_sets().get({GroupId(group.id), CopySetId(set_id)});
    INFO(s.status().to_string());
    REQUIRE(s.ok());
    return *s;
  }

  CreateFullCopiesRequest request(const std::string& name, int count) const {
    CreateFullCopiesRequest r;
    r.consistency_group_id = group.id;
    r.name = name;
    r.count = count;
    return r;
  }

  // A copy set of `count` copies of the group, made.
  CopySetWork copies(const std::string& name, int count) {
    auto w = svc->copy_sets().create(request(name, count));
    INFO(w.status().to_string());
    REQUIRE(w.ok());
    wait_all(*w);
    return *w;
  }

  static CopySetActionRequest restore(int copy = 1) {
    CopySetActionRequest r;
    r.action = CopyAction::kRestore;
    r.confirm = true;
    r.copies = {copy};
    return r;
  }

  std::vector<CgSnapshot> cg_snapshots() {
    auto p = svc->groups().list_snapshots({1000, ""}, GroupId(group.id));
    REQUIRE(p.ok());
    return p->cg_snapshots;
  }
};

}  // namespace

TEST_CASE("Full copies: count 3 on another cluster are byte-identical to the group snapshot") {
  Fixture f;
  auto r = f.request("nightly", 3);
  r.cluster_id = f.c2;
  r.project_name = "copies";
  auto w = f.svc->copy_sets().create(r);
  INFO(w.status().to_string());
  REQUIRE(w.ok());
  REQUIRE(w->workflows.size() == 3);
  std::set<std::string> distinct;
  for (const auto& cw : w->workflows) distinct.insert(cw.workflow_id);
  CHECK(distinct.size() == 3);  // one workflow per copy
  CHECK(w->copy_set.copies.size() == 3);
  f.wait_all(*w);

  // Writes after the copies were requested do not reach them: they are of the snapshot.
  CopySet set = f.get(w->copy_set.id);
  REQUIRE(set.copies.size() == 3);
  const std::string snap_id = set.copies[0].cg_snapshot_id;
  REQUIRE(!snap_id.empty());
  auto snap = f.svc->groups().get_snapshot(CgSnapshotId(snap_id));
  REQUIRE(snap.ok());
  REQUIRE(snap->members.size() == 3);
  std::set<std::string> volume_ids;
  for (const auto& copy : set.copies) {
    CHECK(copy.status == CopyStatus::kSynchronized);
    CHECK(copy.cg_snapshot_id == snap_id);  // all three from the one group snapshot
    REQUIRE(copy.volumes.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      const auto& v = copy.volumes[i];
      CHECK(v.source_volume_id == f.vols[i].id);
      CHECK(v.name == "nightly-" + std::to_string(copy.index) + "-" + f.vols[i].name);
      volume_ids.insert(v.volume_id);
      auto vol = f.svc->volumes().get({ClusterId(f.c2), "copies", v.volume_id});
      REQUIRE(vol.ok());
      CHECK(vol->state == VolumeState::kAvailable);
      CHECK(same(read_file(f.volume_file("c2", v.volume_id)),
                 read_file(f.snapshot_file(snap->members[i].snapshot_id))));
    }
  }
  CHECK(volume_ids.size() == 9);

  // A linked copy's volume cannot be deleted, nor the group, nor the target cluster detached.
  CHECK(f.svc->volumes()
            .remove({ClusterId(f.c2), "copies", set.copies[0].volumes[0].volume_id})
            .code() == Code::kFailedPrecondition);
  CHECK(f.svc->groups().remove(GroupId(f.group.id)).code() == Code::kFailedPrecondition);
  CHECK(f.svc->clusters().detach(ClusterId(f.c2)).code() == Code::kFailedPrecondition);
  // Nor the group snapshot the copies come from.
  CHECK(f.svc->groups().remove_snapshot(CgSnapshotId(snap_id)).code() == Code::kFailedPrecondition);

  auto listed = f.svc->copy_sets().list(GroupId(f.group.id), {0, ""});
  REQUIRE(listed.ok());
  REQUIRE(listed->copy_sets.size() == 1);
  CHECK(listed->copy_sets[0].id == set.id);
}

TEST_CASE("Full copies: restore brings the sources back, resynchronize brings copies forward") {
  Fixture f;
  auto w = f.svc->copy_sets().create(f.request("fc", 2));
  REQUIRE(w.ok());
  f.wait_all(*w);
  CopySet set = f.get(w->copy_set.id);
  const std::string first_snap = set.copies[0].cg_snapshot_id;
  std::vector<std::string> original;
  for (const auto& v : f.vols) original.push_back(read_file(f.volume_file("c1", v.id)));

  // The sources change.
  for (std::size_t i = 0; i < f.vols.size(); ++i) f.fill(f.vols[i], static_cast<char>('x' + i));
  std::vector<std::string> changed;
  for (const auto& v : f.vols) changed.push_back(read_file(f.volume_file("c1", v.id)));
  REQUIRE(changed[0] != original[0]);

  SECTION("restore") {
    CopySetActionRequest bad;
    bad.action = CopyAction::kRestore;
    auto refused = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, bad);
    CHECK(refused.status().code() == Code::kInvalidArgument);
    CHECK(refused.status().message().rfind("confirm:", 0) == 0);
    bad.confirm = true;  // two copies: which one must be named
    refused = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, bad);
    CHECK(refused.status().code() == Code::kInvalidArgument);
    CHECK(refused.status().message().rfind("copies:", 0) == 0);
    for (std::size_t i = 0; i < f.vols.size(); ++i)  // refusals changed nothing
      CHECK(same(read_file(f.volume_file("c1", f.vols[i].id)), changed[i]));

    CopySetActionRequest r;
    r.action = CopyAction::kRestore;
    r.confirm = true;
    r.copies = {2};
    auto started = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, r);
    INFO(started.status().to_string());
    REQUIRE(started.ok());
    REQUIRE(started->workflows.size() == 1);
    CHECK(started->workflows[0].index == 2);
    f.wait_all(*started);
    for (std::size_t i = 0; i < f.vols.size(); ++i)
      CHECK(same(read_file(f.volume_file("c1", f.vols[i].id)), original[i]));
    CHECK(f.get(set.id).copies[1].status == CopyStatus::kSynchronized);
    // The sources are writable again.
    CHECK(f.svc->volumes().write({ClusterId(f.c1), "p1", f.vols[0].id}, 0, "after", true).ok());
  }

  SECTION("resynchronize") {
    CopySetActionRequest r;
    r.action = CopyAction::kResynchronize;
    auto started = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, r);
    INFO(started.status().to_string());
    REQUIRE(started.ok());
    REQUIRE(started->workflows.size() == 2);
    for (const auto& c : started->copy_set.copies) CHECK(c.status == CopyStatus::kSynchronizing);
    f.wait_all(*started);
    CopySet after = f.get(set.id);
    for (const auto& copy : after.copies) {
      CHECK(copy.status == CopyStatus::kSynchronized);
      CHECK(copy.cg_snapshot_id != first_snap);
      for (std::size_t i = 0; i < f.vols.size(); ++i)
        CHECK(same(read_file(f.volume_file("c1", copy.volumes[i].volume_id)), changed[i]));
    }
    // The first group snapshot no copy refers to any more is gone; the new one stays.
    auto snaps = f.cg_snapshots();
    REQUIRE(snaps.size() == 1);
    CHECK(snaps[0].id == after.copies[0].cg_snapshot_id);
    CHECK(f.svc->groups().get_snapshot(CgSnapshotId(first_snap)).status().code() ==
          Code::kNotFound);
  }
}

TEST_CASE("Full copies: createInactive makes empty volumes that activate fills") {
  Fixture f;
  auto r = f.request("cold", 1);
  r.create_inactive = true;
  r.partial = true;
  r.volume_ids = {f.vols[2].id, f.vols[0].id};
  auto w = f.svc->copy_sets().create(r);
  INFO(w.status().to_string());
  REQUIRE(w.ok());
  f.wait_all(*w);
  CopySet set = f.get(w->copy_set.id);
  REQUIRE(set.copies.size() == 1);
  CHECK(set.copies[0].status == CopyStatus::kInactive);
  CHECK(set.copies[0].cg_snapshot_id.empty());
  CHECK(f.cg_snapshots().empty());  // nothing taken yet
  // Only the named members, in the group's order.
  REQUIRE(set.copies[0].volumes.size() == 2);
  CHECK(set.copies[0].volumes[0].source_volume_id == f.vols[0].id);
  CHECK(set.copies[0].volumes[1].source_volume_id == f.vols[2].id);
  for (const auto& v : set.copies[0].volumes)
    CHECK(same(read_file(f.volume_file("c1", v.volume_id)), std::string(kVolumeBytes, '\0')));

  CopySetActionRequest resync;
  resync.action = CopyAction::kResynchronize;
  CHECK(f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, resync).status().code() ==
        Code::kFailedPrecondition);

  CopySetActionRequest act;
  act.action = CopyAction::kActivate;
  auto started = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, act);
  INFO(started.status().to_string());
  REQUIRE(started.ok());
  f.wait_all(*started);
  set = f.get(set.id);
  CHECK(set.copies[0].status == CopyStatus::kSynchronized);
  auto snap = f.svc->groups().get_snapshot(CgSnapshotId(set.copies[0].cg_snapshot_id));
  REQUIRE(snap.ok());
  CHECK(same(read_file(f.volume_file("c1", set.copies[0].volumes[0].volume_id)),
             read_file(f.snapshot_file(snap->members[0].snapshot_id))));
  CHECK(same(read_file(f.volume_file("c1", set.copies[0].volumes[1].volume_id)),
             read_file(f.snapshot_file(snap->members[2].snapshot_id))));
  // Activating an active copy is refused.
  CHECK(f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, act).status().code() ==
        Code::kFailedPrecondition);
}

TEST_CASE("Full copies: detach makes ordinary volumes and lets the group go") {
  Fixture f;
  auto w = f.svc->copy_sets().create(f.request("fc", 2));
  REQUIRE(w.ok());
  f.wait_all(*w);
  CopySetActionRequest d;
  d.action = CopyAction::kDetach;
  d.copies = {1};
  auto one = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w->copy_set.id)}, d);
  INFO(one.status().to_string());
  REQUIRE(one.ok());
  CHECK(one->workflows.empty());
  CHECK(one->copy_set.copies[0].status == CopyStatus::kDetached);
  CHECK(one->copy_set.copies[1].status == CopyStatus::kSynchronized);
  CHECK(f.cg_snapshots().size() == 1);  // copy 2 still refers to it
  // A detached copy cannot be restored or resynchronized.
  CopySetActionRequest r;
  r.action = CopyAction::kResynchronize;
  r.copies = {1};
  CHECK(
      f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w->copy_set.id)}, r).status().code() ==
      Code::kFailedPrecondition);
  // Its volumes are ordinary now.
  const auto& v = one->copy_set.copies[0].volumes[0];
  CHECK(f.svc->volumes().remove({ClusterId(f.c1), "p1", v.volume_id}).ok());

  d.copies = {};
  d.action = CopyAction::kDetach;
  CHECK(
      f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w->copy_set.id)}, d).status().code() ==
      Code::kFailedPrecondition);  // copy 1 is detached already
  d.copies = {2};
  REQUIRE(f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w->copy_set.id)}, d).ok());
  CHECK(f.cg_snapshots().empty());  // no copy refers to it: deleted
  CHECK(f.svc->groups().remove(GroupId(f.group.id)).ok());
  // The copies' volumes outlive the group.
  CHECK(f.svc->volumes()
            .get({ClusterId(f.c1), "p1", one->copy_set.copies[1].volumes[0].volume_id})
            .ok());
}

TEST_CASE("Full copies: bad requests name the field and record nothing") {
  Options o;
  o.max_running_workflows = 4;
  Fixture f(o);
  auto code_of = [&](const CreateFullCopiesRequest& r) {
    auto w = f.svc->copy_sets().create(r);
    return w.ok() ? Code::kOk : w.status().code();
  };
  auto msg_of = [&](const CreateFullCopiesRequest& r) {
    return f.svc->copy_sets().create(r).status().message();
  };
  auto r = f.request("fc", 0);
  CHECK(msg_of(r).rfind("count:", 0) == 0);
  r.count = 9;
  CHECK(msg_of(r).rfind("count:", 0) == 0);
  r = f.request("bad name!", 1);
  CHECK(msg_of(r).rfind("name:", 0) == 0);
  r = f.request("fc", 1);
  r.volume_ids = {f.vols[0].id};
  CHECK(msg_of(r).rfind("volumeIds:", 0) == 0);  // without partial
  r.partial = true;
  r.volume_ids = {};
  CHECK(msg_of(r).rfind("volumeIds:", 0) == 0);
  r.volume_ids = {f.vols[0].id, f.vols[0].id};
  CHECK(msg_of(r).rfind("volumeIds[1]:", 0) == 0);
  r.volume_ids = {"not-a-uuid"};
  CHECK(msg_of(r).rfind("volumeIds[0]:", 0) == 0);
  auto outsider = f.svc->volumes().create(ClusterId(f.c1), {"p1", "outsider", kVolumeBytes});
  REQUIRE(outsider.ok());
  r.volume_ids = {outsider->id};
  CHECK(code_of(r) == Code::kInvalidArgument);
  r = f.request("fc", 1);
  r.cluster_id = "nope";
  CHECK(msg_of(r).rfind("clusterId:", 0) == 0);
  r.cluster_id = "00000000-0000-4000-8000-000000000000";
  CHECK(code_of(r) == Code::kNotFound);
  r = f.request("fc", 1);
  r.consistency_group_id = "00000000-0000-4000-8000-000000000000";
  CHECK(code_of(r) == Code::kNotFound);
  // A copy volume name that is taken.
  auto squatter = f.svc->volumes().create(ClusterId(f.c1), {"p1", "fc-1-log", kVolumeBytes});
  REQUIRE(squatter.ok());
  CHECK(code_of(f.request("fc", 1)) == Code::kAlreadyExists);
  // More copies than maxRunningWorkflows admits: refused whole.
  CHECK(code_of(f.request("many", 5)) == Code::kResourceExhausted);
  auto sets = f.svc->copy_sets().list(GroupId(f.group.id), {0, ""});
  REQUIRE(sets.ok());
  CHECK(sets->copy_sets.empty());
  CHECK(f.cg_snapshots().empty());
  auto wfs = f.svc->workflows().list({});
  REQUIRE(wfs.ok());
  for (const auto& wf : wfs->workflows) CHECK(wf.type != kCreateFullCopy);
  // A taken set name.
  auto ok = f.svc->copy_sets().create(f.request("set", 1));
  REQUIRE(ok.ok());
  f.wait_all(*ok);
  CHECK(code_of(f.request("set", 1)) == Code::kAlreadyExists);
  // Actions: unknown copy numbers.
  CopySetActionRequest a;
  a.action = CopyAction::kResynchronize;
  a.copies = {2};
  auto bad = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(ok->copy_set.id)}, a);
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK(bad.status().message().rfind("copies[0]:", 0) == 0);
  a.copies = {1, 1};
  CHECK(f.svc->copy_sets()
            .act({GroupId(f.group.id), CopySetId(ok->copy_set.id)}, a)
            .status()
            .message()
            .rfind("copies[1]:", 0) == 0);
  // A copy set of another group is not found under this one.
  CHECK(f.svc->copy_sets()
            .get({GroupId("00000000-0000-4000-8000-000000000000"), CopySetId(ok->copy_set.id)})
            .status()
            .code() == Code::kNotFound);
}

TEST_CASE("Full copies: one copy failing does not stop the others") {
  Options o;
  o.workflow_threads = 1;  // the copies run one after another
  o.copy_rate_limit_bytes_per_sec = 16 << 20;
  Fixture f(o);
  auto w = f.svc->copy_sets().create(f.request("fc", 3));
  REQUIRE(w.ok());
  REQUIRE(f.svc->workflows().cancel(WorkflowId(w->workflows[1].workflow_id)).ok());
  f.wait(w->workflows[0].workflow_id);
  f.wait(w->workflows[2].workflow_id);
  CopySet set = f.get(w->copy_set.id);
  CHECK(set.copies[0].status == CopyStatus::kSynchronized);
  CHECK(set.copies[1].status == CopyStatus::kError);
  CHECK(set.copies[2].status == CopyStatus::kSynchronized);
  CHECK(set.copies[1].cg_snapshot_id.empty());
  // The failed copy left no volume behind.
  for (const auto& v : set.copies[1].volumes) CHECK(v.volume_id.empty());
  auto vols = f.svc->volumes().list({ClusterId(f.c1), "p1"}, {1000, ""});
  REQUIRE(vols.ok());
  for (const auto& v : vols->volumes) CHECK(v.name.rfind("fc-2-", 0) != 0);
  // The others are byte-identical to their shared group snapshot.
  auto snap = f.svc->groups().get_snapshot(CgSnapshotId(set.copies[0].cg_snapshot_id));
  REQUIRE(snap.ok());
  CHECK(set.copies[2].cg_snapshot_id == snap->id);
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(same(read_file(f.volume_file("c1", set.copies[2].volumes[i].volume_id)),
               read_file(f.snapshot_file(snap->members[i].snapshot_id))));
  // A failed copy can still be detached (closing it).
  CopySetActionRequest d;
  d.action = CopyAction::kDetach;
  d.copies = {2};
  CHECK(f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(set.id)}, d).ok());
}

TEST_CASE("Full copies: a restore waits for other work on the group and holds off writes") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 4 << 20;  // a restore of 12 MiB takes about 3 s
  Fixture f(o);
  CopySetWork w = f.copies("fc", 1);
  CopySetActionRequest r = Fixture::restore();
  // Refused while another workflow uses the group: a resynchronize of another copy set.
  auto other = f.svc->copy_sets().create(f.request("other", 1));
  REQUIRE(other.ok());
  f.wait_all(*other);
  CopySetActionRequest rs;
  rs.action = CopyAction::kResynchronize;
  auto resync = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(other->copy_set.id)}, rs);
  REQUIRE(resync.ok());
  auto busy = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w.copy_set.id)}, r);
  CHECK(busy.status().code() == Code::kFailedPrecondition);
  CHECK(busy.status().message().find("running") != std::string::npos);
  f.wait_all(*resync);
  auto started = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w.copy_set.id)}, r);
  REQUIRE(started.ok());
  // Refused once the restore holds the sources (or accepted before it does; then retried).
  Status s = Status::Ok();
  for (int i = 0; i < 200 && s.ok(); ++i) {
    s = f.svc->volumes().write({ClusterId(f.c1), "p1", f.vols[1].id}, 0, "racing", false);
    if (s.ok()) std::this_thread::sleep_for(10ms);
  }
  CHECK(s.code() == Code::kFailedPrecondition);
  // A group snapshot is refused meanwhile too, and a second restore.
  CHECK(f.svc->groups().create_snapshot({f.group.id, "", ""}).status().code() ==
        Code::kFailedPrecondition);
  CHECK(
      f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w.copy_set.id)}, r).status().code() ==
      Code::kFailedPrecondition);
  f.wait_all(*started);
  CHECK(f.svc->volumes().write({ClusterId(f.c1), "p1", f.vols[1].id}, 0, "after", false).ok());
}

TEST_CASE("Full copies: a restore cut short leaves the group in error until an admin resets it") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 2 << 20;  // 12 MiB: about 6 s
  Fixture f(o);
  CopySetWork w = f.copies("fc", 1);
  CopySetActionRequest r = Fixture::restore();
  auto started = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w.copy_set.id)}, r);
  REQUIRE(started.ok());
  const std::string wid = started->workflows[0].workflow_id;
  for (int i = 0; i < 500; ++i) {  // until it copies
    auto now = f.svc->workflows().get(WorkflowId(wid));
    REQUIRE(now.ok());
    if (now->progress.bytes_done > 0) break;
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(f.svc->workflows().cancel(WorkflowId(wid)).ok());
  CHECK(f.wait(wid).state == WorkflowState::kCancelled);
  auto g = f.svc->groups().get(GroupId(f.group.id));
  REQUIRE(g.ok());
  CHECK(g->status == GroupStatus::kError);
  CHECK(g->message.find("partly restored") != std::string::npos);
  // The copy is intact and says what happened; the group takes no snapshot until reset.
  CopySet set = f.get(w.copy_set.id);
  CHECK(set.copies[0].status == CopyStatus::kSynchronized);
  CHECK(set.copies[0].message.find("cancelled") != std::string::npos);
  CHECK(f.svc->groups().create_snapshot({f.group.id, "", ""}).status().code() ==
        Code::kFailedPrecondition);
  CHECK(f.svc->volumes()
            .write({ClusterId(f.c1), "p1", f.vols[0].id}, 0, "writable again", false)
            .ok());
  REQUIRE(f.svc->groups().reset_status(GroupId(f.group.id), GroupStatus::kAvailable, "admin").ok());
  // Restoring again finishes the job.
  auto again = f.svc->copy_sets().act({GroupId(f.group.id), CopySetId(w.copy_set.id)}, r);
  REQUIRE(again.ok());
  f.wait_all(*again);
  auto snap = f.svc->groups().get_snapshot(CgSnapshotId(set.copies[0].cg_snapshot_id));
  REQUIRE(snap.ok());
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(same(read_file(f.volume_file("c1", f.vols[i].id)),
               read_file(f.snapshot_file(snap->members[i].snapshot_id))));
}

TEST_CASE("Full copies: a group snapshot thick clones into a new group on another cluster") {
  Fixture f;
  auto c = f.svc->groups().create_snapshot({f.group.id, "s1", ""});
  REQUIRE(c.ok());
  f.wait(c->workflow_id);
  auto snap = f.svc->groups().get_snapshot(CgSnapshotId(c->id));
  REQUIRE(snap.ok());
  ThickCloneGroupRequest r;
  r.src_cg_snapshot_id = c->id;
  r.dst_name = "db-copy";
  r.dst_cluster_id = f.c2;
  r.dst_project_name = "p2";
  r.verify_clone = true;
  auto g = f.svc->clones().group(r);
  INFO(g.status().to_string());
  REQUIRE(g.ok());
  CHECK(g->status == GroupStatus::kCreating);
  auto done = f.wait(g->workflow_id);
  INFO(done.msg);
  REQUIRE(done.state == WorkflowState::kCompleted);
  auto made = f.svc->groups().get(GroupId(g->id));
  REQUIRE(made.ok());
  CHECK(made->status == GroupStatus::kAvailable);
  CHECK(made->cluster_id == f.c2);
  REQUIRE(made->volume_ids.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    auto v = f.svc->volumes().get({ClusterId(f.c2), "p2", made->volume_ids[i]});
    REQUIRE(v.ok());
    CHECK(v->name == "db-copy-" + f.vols[i].name);
    CHECK(v->source_snapshot_id.empty());  // thick: independent of the snapshot
    CHECK(same(read_file(f.volume_file("c2", v->id)),
               read_file(f.snapshot_file(snap->members[i].snapshot_id))));
  }
  // The same name again: ALREADY_EXISTS naming dst.name; a bad id names src.cgSnapshotId.
  auto again = f.svc->clones().group(r);
  CHECK(again.status().code() == Code::kAlreadyExists);
  CHECK(again.status().message().rfind("dst.name:", 0) == 0);
  r.src_cg_snapshot_id = "x";
  CHECK(f.svc->clones().group(r).status().message().rfind("src.cgSnapshotId:", 0) == 0);
  r.src_cg_snapshot_id = "00000000-0000-4000-8000-000000000000";
  CHECK(f.svc->clones().group(r).status().code() == Code::kNotFound);
}

TEST_CASE("Full copies: statuses and actions print as the API spells them") {
  CHECK(to_string(CopyStatus::kSynchronizing) == "synchronizing");
  CHECK(to_string(CopyStatus::kDetached) == "detached");
  CHECK(to_string(CopyAction::kResynchronize) == "resynchronize");
  CHECK(to_string(CopyAction::kRestore) == "restore");
}
