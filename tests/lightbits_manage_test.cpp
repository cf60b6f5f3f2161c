// Adopting what a Lightbits cluster holds: the service lists the volumes it does not manage with
// the reason each is not safe, marks one it adopts with a single ETag-guarded update (keeping
// its UUID, project and data), and removes the marks when it gives it back. Against the LightOS
// emulator, with volumes planted as another tool would leave them.

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "service_fixture.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::LightbitsFixture;
namespace json = boost::json;

namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

// A volume another tool made; answers its UUID.
std::string plant(LightbitsFixture& lb, json::object v) {
  auto r = json::parse(lb.emu.control("POST", "/control/volumes", json::serialize(v)));
  return std::string(r.at("UUID").as_string());
}

std::map<std::string, ManageableObject> by_reference(
    const Result<std::vector<ManageableObject>>& r) {
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  std::map<std::string, ManageableObject> out;
  for (const auto& m : *r) out[m.reference] = m;
  return out;
}

json::object emulator_volume(LightbitsFixture& lb, const std::string& id) {
  auto state = json::parse(lb.emu.control("GET", "/control/state"));
  for (const auto& v : state.at("volumes").as_array())
    if (v.at("UUID").as_string() == id) return v.as_object();
  FAIL("no volume " << id << " on the emulator");
  return {};
}

std::map<std::string, std::string> labels_of(const json::object& v) {
  std::map<std::string, std::string> out;
  for (const auto& l : v.at("labels").as_array())
    out[std::string(l.at("key").as_string())] = std::string(l.at("value").as_string());
  return out;
}

struct Attached {
  LightbitsFixture lb;
  std::string cid;
  Attached() {
    lb.import_key();
    Workflow w = lb.attach();
    INFO(w.msg);
    REQUIRE(w.state == WorkflowState::kCompleted);
    cid = dmscore::testing::attached_cluster_id(w);
  }
  Volumes volumes() { return lb.f->svc->volumes(); }
};

}  // namespace

TEST_CASE("Lightbits manageable: every project's volumes, each with why it is not safe") {
  Attached a;
  plant(a.lb, {{"projectName", "p1"}, {"name", "free"}, {"size", "1536mib"}});
  plant(a.lb, {{"projectName", "p1"},
               {"name", "busy"},
               {"connectedHosts", json::array{"nqn.2014-08.org.nvmexpress:uuid:host-1"}}});
  plant(a.lb, {{"projectName", "p2"}, {"name", "updating"}, {"state", "Updating"}});
  plant(a.lb, {{"projectName", "p2"},
               {"name", "theirs"},
               {"labels", json::array{json::object{{"key", kManagedByLabel},
                                                   {"value", "another-service"}}}}});
  plant(a.lb, {{"projectName", "p2"},
               {"name", "workflow-made"},
               {"labels", json::array{json::object{{"key", kOwnerLabel}, {"value", "wf-1"}}}}});
  auto mine = a.volumes().create(ClusterId(a.cid), {"p1", "mine", kGiB});
  REQUIRE(mine.ok());
  CHECK(mine->labels.at(kManagedByLabel).size() == 36);  // what the service creates is marked

  auto all = by_reference(a.volumes().list_manageable(ClusterId(a.cid), {}));
  REQUIRE(all.size() == 6);
  CHECK(all["p1/free"].safe_to_manage);
  CHECK(size_in_gib(all["p1/free"].size) == 2);
  CHECK_FALSE(all["p1/free"].object_id.empty());
  CHECK(all["p1/busy"].reason_not_safe ==
        "connected to host(s): nqn.2014-08.org.nvmexpress:uuid:host-1");
  CHECK(all["p2/updating"].reason_not_safe == "state is Updating");
  CHECK(all["p2/theirs"].reason_not_safe == "managed by another service (another-service)");
  CHECK_THAT(all["p2/workflow-made"].reason_not_safe, Catch::Contains("dms.workflow"));
  CHECK(all["p1/mine"].reason_not_safe == "already managed");
  CHECK(all["p1/mine"].managed_id == mine->id);
  for (const char* unsafe : {"p1/busy", "p2/updating", "p2/theirs", "p2/workflow-made", "p1/mine"})
    CHECK_FALSE(all[unsafe].safe_to_manage);
  // Paged as Cinder pages: by size, then by reference after a marker.
  auto page = a.volumes().list_manageable(
      ClusterId(a.cid),
      {.sort = "reference:asc", .marker = R"({"source-name": "p1/mine"})", .limit = "2"});
  REQUIRE(page.ok());
  REQUIRE(page->size() == 2);
  CHECK((*page)[0].reference == "p2/theirs");
  CHECK((*page)[1].reference == "p2/updating");

  // Refused before any workflow: unsafe, unknown, or in another project than its own.
  auto refused = [&](ManageRequest r) {
    auto s = a.volumes().manage(ClusterId(a.cid), r);
    REQUIRE_FALSE(s.ok());
    return s.status();
  };
  CHECK_THAT(refused({"p1/busy", "p1", ""}).message(), Catch::Contains("connected to host"));
  CHECK(refused({"p1/none", "p1", ""}).code() == Code::kInvalidArgument);
  CHECK(refused({"p1/free", "p1", "mine"}).code() == Code::kAlreadyExists);
}

TEST_CASE("Lightbits manage: one ETag-guarded update marks and grows it, unmanage unmarks it") {
  Attached a;
  const std::string id =
      plant(a.lb, {{"projectName", "p1"},
                   {"name", "legacy-db"},
                   {"size", "1536mib"},
                   {"labels", json::array{json::object{{"key", "app"}, {"value", "db"}}}}});
  const std::string etag = std::string(emulator_volume(a.lb, id).at("ETag").as_string());
  ManageRequest r{"p1/legacy-db", "p1", ""};
  r.description = "the old database";
  auto started = a.volumes().manage(ClusterId(a.cid), r);
  INFO(started.status().to_string());
  REQUIRE(started.ok());
  CHECK(started->volume_id == id);  // a Lightbits volume keeps its UUID
  Workflow w = a.lb.f->wait(started->workflow_id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);

  // One PUT, with the ETag the volume had when the request was accepted.
  int puts = 0;
  for (const auto& c : a.lb.emu.calls()) {
    const auto& o = c.as_object();
    if (o.at("method").as_string() != "PUT") continue;
    ++puts;
    CHECK(o.at("ifMatch").as_string() == etag);
  }
  CHECK(puts == 1);
  json::object now = emulator_volume(a.lb, id);
  auto labels = labels_of(now);
  CHECK(labels.at("app") == "db");  // its own labels stay
  CHECK(labels.at(kManagedByLabel).size() == 36);
  CHECK(labels.at(kAdoptedFromLabel) == "p1/legacy-db");
  CHECK(labels.at(kAdoptedSizeLabel) == std::to_string(1536ull << 20));
  CHECK(labels.at(kOwnerLabel) == started->workflow_id);
  CHECK(now.at("size").as_string() == std::to_string(2 * kGiB));
  CHECK(now.at("name").as_string() == "legacy-db");

  auto v = a.volumes().get({ClusterId(a.cid), "p1", id});
  REQUIRE(v.ok());
  CHECK(v->state == VolumeState::kAvailable);
  CHECK(v->adopted_from == "p1/legacy-db");
  CHECK(v->adopted_size == 1536ull << 20);
  CHECK(v->description == "the old database");
  auto listed = by_reference(a.volumes().list_manageable(ClusterId(a.cid), {}));
  CHECK(listed["p1/legacy-db"].reason_not_safe == "already managed");
  CHECK_THAT(listed["p1/legacy-db"].extra_info, Catch::Contains("adopted from p1/legacy-db"));

  // Given back: the marks go, the volume and its own label stay, grown size and all.
  auto where = a.volumes().unmanage({ClusterId(a.cid), "p1", id});
  INFO(where.status().to_string());
  REQUIRE(where.ok());
  CHECK(*where == "p1/legacy-db");
  now = emulator_volume(a.lb, id);
  CHECK(labels_of(now) == std::map<std::string, std::string>{{"app", "db"}});
  CHECK(now.at("size").as_string() == std::to_string(2 * kGiB));
  CHECK(by_reference(a.volumes().list_manageable(ClusterId(a.cid), {}))["p1/legacy-db"]
            .safe_to_manage);
  CHECK(a.volumes().managed(id).status().code() == Code::kNotFound);

  // Adopted again under a new name: renamed in the same update.
  auto again = a.volumes().manage(ClusterId(a.cid), {"p1/legacy-db", "p1", "db-2024"});
  REQUIRE(again.ok());
  REQUIRE(a.lb.f->wait(again->workflow_id).state == WorkflowState::kCompleted);
  CHECK(emulator_volume(a.lb, id).at("name").as_string() == "db-2024");
  CHECK(a.volumes().get({ClusterId(a.cid), "p1", id})->name == "db-2024");
}

TEST_CASE("Lightbits manage: a volume another tool changes meanwhile is refused and untouched") {
  Attached a;
  const std::string id = plant(a.lb, {{"projectName", "p1"}, {"name", "moving"}});
  // The update finds a stale ETag (the other tool changed the volume between the look and the
  // update): the workflow fails, naming it, and the volume keeps what the other tool set.
  a.lb.emu.control("POST", "/control/fail",
                   R"({"method":"PUT","pathRegex":"/volumes/","status":412,"count":1})");
  auto started = a.volumes().manage(ClusterId(a.cid), {"p1/moving", "p1", ""});
  REQUIRE(started.ok());
  Workflow w = a.lb.f->wait(started->workflow_id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("changed while it was being managed"));
  CHECK(labels_of(emulator_volume(a.lb, id)).empty());
  // The service's record says the adoption failed; the cluster's volume is as it was.
  CHECK(a.volumes().managed(id)->state == VolumeState::kFailed);
  CHECK(a.volumes().get({ClusterId(a.cid), "p1", id})->state == VolumeState::kAvailable);
  // Listed again, it can be adopted: the failed attempt's record is superseded.
  auto retry = a.volumes().manage(ClusterId(a.cid), {"p1/moving", "p1", ""});
  REQUIRE(retry.ok());
  REQUIRE(a.lb.f->wait(retry->workflow_id).state == WorkflowState::kCompleted);
  CHECK(a.volumes().managed(id)->state == VolumeState::kAvailable);
  // Connected to a host meanwhile: unsafe at the next look.
  a.lb.emu.control("PATCH", "/control/volumes/" + id,
                   R"({"connectedHosts":["nqn.2014-08.org.nvmexpress:uuid:h2"]})");
  CHECK(a.volumes().unmanage({ClusterId(a.cid), "p1", id}).ok());
  auto s = a.volumes().manage(ClusterId(a.cid), {"p1/moving", "p1", ""});
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.status().message(), Catch::Contains("connected to host(s)"));
}

TEST_CASE(
    "Lightbits manageable snapshots: adopted by the service's record, the cluster untouched") {
  Attached a;
  const std::string base = plant(a.lb, {{"projectName", "p1"}, {"name", "base"}});
  const std::string other = plant(a.lb, {{"projectName", "p1"}, {"name", "other"}});
  for (const char* ref : {"p1/base", "p1/other"}) {
    auto st = a.volumes().manage(ClusterId(a.cid), {ref, "p1", ""});
    REQUIRE(st.ok());
    REQUIRE(a.lb.f->wait(st->workflow_id).state == WorkflowState::kCompleted);
  }
  auto snap = json::parse(a.lb.emu.control(
      "POST", "/control/snapshots",
      json::serialize(json::object{{"sourceVolumeUUID", base}, {"name", "nightly"}})));
  const std::string sid(snap.at("UUID").as_string());
  auto listed = by_reference(a.volumes().list_manageable_snapshots(ClusterId(a.cid), {}));
  REQUIRE(listed.count("p1/nightly"));
  CHECK(listed["p1/nightly"].safe_to_manage);
  CHECK(listed["p1/nightly"].source_reference == "p1/base");
  CHECK(listed["p1/nightly"].object_id == sid);

  // Of a volume the service does not manage: refused, naming volumeId.
  const std::string loose = plant(a.lb, {{"projectName", "p1"}, {"name", "loose"}});
  a.lb.emu.control("POST", "/control/snapshots",
                   json::serialize(json::object{{"sourceVolumeUUID", loose}, {"name", "stray"}}));
  ManageRequest stray{"p1/stray", "p1", ""};
  stray.volume_id = loose;
  auto st = a.volumes().manage_snapshot(ClusterId(a.cid), stray);
  REQUIRE(st.ok());
  Workflow sw = a.lb.f->wait(st->workflow_id);
  CHECK(sw.state == WorkflowState::kFailed);
  CHECK_THAT(sw.msg, Catch::Contains("is not managed by this service"));

  // As a snapshot of another volume: the workflow fails, naming volumeId.
  ManageRequest r{"p1/nightly", "p1", ""};
  r.volume_id = other;
  auto wrong = a.volumes().manage_snapshot(ClusterId(a.cid), r);
  REQUIRE(wrong.ok());
  Workflow ww = a.lb.f->wait(wrong->workflow_id);
  CHECK(ww.state == WorkflowState::kFailed);
  CHECK_THAT(ww.msg, Catch::Contains("volumeId:"));

  const int puts_before = [&] {
    int n = 0;
    for (const auto& c : a.lb.emu.calls()) n += c.at("method").as_string() != "GET";
    return n;
  }();
  r.volume_id = base;
  auto started = a.volumes().manage_snapshot(ClusterId(a.cid), r);
  INFO(started.status().to_string());
  REQUIRE(started.ok());
  CHECK(started->snapshot_id == sid);
  Workflow w = a.lb.f->wait(started->workflow_id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  auto rec = a.volumes().managed_snapshot(sid);
  REQUIRE(rec.ok());
  CHECK(rec->state == SnapshotState::kAvailable);
  CHECK(rec->snapshot->adopted_from == "p1/nightly");
  // Nothing was written to the cluster; the service's record says it is managed.
  int writes = 0;
  for (const auto& c : a.lb.emu.calls()) writes += c.at("method").as_string() != "GET";
  CHECK(writes == puts_before);
  listed = by_reference(a.volumes().list_manageable_snapshots(ClusterId(a.cid), {}));
  CHECK(listed["p1/nightly"].reason_not_safe == "already managed");
  CHECK(listed["p1/nightly"].managed_id == sid);
  CHECK_FALSE(a.volumes().manage_snapshot(ClusterId(a.cid), r).ok());
  // The volume is not given back while the service manages its snapshot.
  CHECK(a.volumes().unmanage({ClusterId(a.cid), "p1", base}).status().code() ==
        Code::kFailedPrecondition);

  auto back = a.volumes().unmanage_snapshot({ClusterId(a.cid), "p1", sid});
  INFO(back.status().to_string());
  REQUIRE(back.ok());
  CHECK(*back == "p1/nightly");
  CHECK(by_reference(a.volumes().list_manageable_snapshots(ClusterId(a.cid), {}))["p1/nightly"]
            .safe_to_manage);
  // What the service creates carries its mark, and is listed as managed by the cluster itself.
  auto made = a.volumes().create_snapshot(ClusterId(a.cid), {"p1", "made", base, ""});
  REQUIRE(made.ok());
  CHECK(by_reference(a.volumes().list_manageable_snapshots(ClusterId(a.cid), {}))["p1/made"]
            .reason_not_safe == "already managed");
  // It cannot lose that mark, so it is not given back.
  auto kept = a.volumes().unmanage_snapshot({ClusterId(a.cid), "p1", made->id});
  CHECK(kept.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(kept.status().message(), Catch::Contains("carries its mark"));
}
