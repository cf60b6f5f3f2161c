// Manageable volumes through the service and over HTTP: Cinder's sorting and paging, the
// MANAGE_VOLUME workflow, unmanage, and their errors.
#include "dmscore/manageable.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>

#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "test_support.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::read_file;
using dmscore::testing::write_file;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

ManageableObject entry(const std::string& ref, std::uint64_t bytes) {
  ManageableObject m;
  m.reference = ref;
  m.size = bytes;
  m.safe_to_manage = true;
  return m;
}

std::vector<std::string> refs(const Result<std::vector<ManageableObject>>& page) {
  INFO(page.status().to_string());
  REQUIRE(page.ok());
  std::vector<std::string> out;
  for (const auto& m : *page) out.push_back(m.reference);
  return out;
}

// Five entries: sizes 1, 3, 2, 3, 1 GiB (some not whole: Cinder compares the rounded sizes).
std::vector<ManageableObject> five() {
  return {entry("b", kGiB), entry("d", 3 * kGiB), entry("a", kGiB + 1), entry("e", 2 * kGiB + 7),
          entry("c", kGiB - 512)};
}

std::string marker(const std::string& ref) {
  return json::serialize(json::object{{"source-name", ref}});
}

struct Fixture : dmscore::testing::ServiceHarness {
  std::string cid, dir;
  Fixture() {
    Options o;
    o.admin_password = "manageable-admin";
    open_service(o);
    dir = tmp / "c1";
    cid = attach_dir(dir, "c1");
    fs::create_directories(dir + "/import");
  }
};

// The bytes of a verified thick clone of snapshot `snap` (project p1) into a new volume `name`.
std::string cloned_bytes(Fixture& f, const std::string& snap, const std::string& name) {
  ThickCloneRequest r;
  r.src = {snap, "p1", f.cid};
  r.dst.name = name;
  r.dst.cluster_id = f.cid;
  r.verify_clone = true;
  auto clone = f.svc->clones().volume(r);
  REQUIRE(clone.ok());
  Workflow cw = f.wait(*clone);
  INFO(cw.msg);
  REQUIRE(cw.state == WorkflowState::kCompleted);
  auto copy = f.svc->volumes().get(
      {ClusterId(f.cid), "p1", dmscore::testing::result_field(cw.result, "volumeId")});
  REQUIRE(copy.ok());
  return read_file(copy->device_path);
}

}  // namespace

TEST_CASE("Manageable paging: sort keys, directions, marker, limit and offset as Cinder does") {
  using V = std::vector<std::string>;
  auto page = [](ManageableQuery q) { return paginate_manageable(five(), q); };
  // Default: reference, descending.
  CHECK(refs(page({})) == V{"e", "d", "c", "b", "a"});
  CHECK(refs(page({.sort = "reference:asc"})) == V{"a", "b", "c", "d", "e"});
  // Sizes compare in whole GiB (b 1, d 3, a 2, e 3, c 1): ties go to the next key, then keep
  // the input's order.
  CHECK(refs(page({.sort = "size:asc,reference:desc"})) == V{"c", "b", "a", "e", "d"});
  CHECK(refs(page({.sort = "size"})) == V{"d", "e", "a", "b", "c"});  // desc, stable
  CHECK(refs(page({.sort_key = "size", .sort_dir = "asc"})) == V{"b", "c", "a", "d", "e"});
  CHECK(refs(page({.sort = " reference : asc "})) == V{"a", "b", "c", "d", "e"});
  // The marker is the last reference seen: the page starts after it, then offset skips.
  CHECK(refs(page({.sort = "reference:asc", .marker = marker("b")})) == V{"c", "d", "e"});
  CHECK(refs(page({.sort = "reference:asc", .marker = marker("b"), .limit = "1"})) == V{"c"});
  CHECK(refs(page({.sort = "reference:asc", .marker = marker("b"), .limit = "2", .offset = "1"})) ==
        V{"d", "e"});
  CHECK(refs(page({.sort = "reference:asc", .limit = "2", .offset = "4"})) == V{"e"});
  CHECK(refs(page({.sort = "reference:asc", .offset = "9"})).empty());
  CHECK(refs(page({.marker = marker("a")})).empty());  // the last one in descending order
  CHECK(refs(page({.limit = "0"})).empty());
  CHECK(refs(page({.limit = "5000"})).size() == 5);  // capped at 1000, not refused
  CHECK(refs(page({.limit = " +2"})) == V{"e", "d"});
  CHECK(refs(page({.marker = ""})).size() == 5);  // an empty marker is none
}

TEST_CASE("Manageable paging: bad parameters are refused with Cinder's messages") {
  auto error = [](ManageableQuery q) {
    auto r = paginate_manageable(five(), q);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    return r.status().message();
  };
  CHECK(error({.sort = "name"}) == "sort: Invalid sort keys passed: name");
  CHECK(error({.sort = "size:up,reference:down"}) == "sort: Invalid sort dirs passed: up, down");
  CHECK(error({.sort_key = "created_at"}) == "sort: Invalid sort keys passed: created_at");
  CHECK(error({.sort = "size", .sort_dir = "asc"}) ==
        "sort: The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with "
        "the 'sort' parameter.");
  CHECK(error({.marker = "not json"}) ==
        "marker: marker not json can not be analysed, please use json like format");
  CHECK(error({.marker = marker("zz")}) == "marker: marker not found: {'source-name': 'zz'}");
  CHECK(error({.marker = "[1, true, null]"}) == "marker: marker not found: [1, True, None]");
  CHECK(error({.limit = "ten"}) == "limit: limit param must be an integer");
  CHECK(error({.limit = ""}) == "limit: limit param must be an integer");
  CHECK(error({.limit = "1__0"}) == "limit: limit param must be an integer");
  CHECK(error({.limit = "-1"}) == "limit: limit param must be positive");
  CHECK(error({.offset = "x"}) == "offset: offset must be an integer");
  CHECK(error({.offset = "-3"}) == "offset: offset must be >= 0");
  CHECK(error({.offset = "2147483648"}) == "offset: offset must be <= 2147483647");
  CHECK(error({.limit = "99999999999999999999999"}) == "limit: limit param must be an integer");
}

TEST_CASE("Manageable: a candidate is managed by a workflow, thick cloned, then given back") {
  Fixture f;
  const std::string original(3 << 20, 'q');
  write_file(f.dir + "/import/db-2024.img", original);
  auto listed = f.svc->volumes().list_manageable(ClusterId(f.cid), {.sort = "reference:asc"});
  REQUIRE(refs(listed) == std::vector<std::string>{"import/db-2024.img"});
  CHECK((*listed)[0].safe_to_manage);

  auto started = f.svc->volumes().manage(ClusterId(f.cid), {"import/db-2024.img", "p1", ""});
  INFO(started.status().to_string());
  REQUIRE(started.ok());
  Workflow w = f.wait(started->workflow_id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  CHECK(w.type == kManageVolume);
  CHECK(dmscore::testing::result_field(w.result, "volumeId") == started->volume_id);
  auto v = f.svc->volumes().get({ClusterId(f.cid), "p1", started->volume_id});
  REQUIRE(v.ok());
  CHECK(v->name == "db-2024.img");  // named after the file when no name is given
  CHECK(v->state == VolumeState::kAvailable);
  CHECK(v->size == kGiB);
  CHECK(v->adopted_size == original.size());

  // A snapshot of it, thick cloned: the clone holds the adopted bytes.
  auto sn = f.svc->volumes().create_snapshot(ClusterId(f.cid), {"p1", "s1", v->id, ""});
  REQUIRE(sn.ok());
  CHECK(cloned_bytes(f, sn->id, "copy").compare(0, original.size(), original) == 0);

  // Given back: refused while the snapshot exists, then every byte back in import/.
  CHECK(f.svc->volumes().unmanage({ClusterId(f.cid), "p1", v->id}).status().code() ==
        Code::kFailedPrecondition);
  REQUIRE(f.svc->volumes().remove_snapshot({ClusterId(f.cid), "p1", sn->id}).ok());
  auto where = f.svc->volumes().unmanage({ClusterId(f.cid), "p1", v->id});
  REQUIRE(where.ok());
  CHECK(*where == "import/db-2024.img");
  CHECK(read_file(f.dir + "/import/db-2024.img") == original);
  CHECK(f.svc->volumes().get({ClusterId(f.cid), "p1", v->id}).status().code() == Code::kNotFound);
}

TEST_CASE(
    "Manageable snapshots: a snapshot file of an adopted image is adopted, cloned, given back") {
  Fixture f;
  const std::string image(3 << 20, 'q'), monday(3 << 20, 'm');
  write_file(f.dir + "/import/db.img", image);
  write_file(f.dir + "/import/db.img@monday", monday);
  write_file(f.dir + "/import/other.img@x", std::string(4096, 'o'));
  // Snapshot files are not volume candidates; they name the volume file they belong to.
  CHECK(refs(f.svc->volumes().list_manageable(ClusterId(f.cid), {.sort = "reference:asc"})) ==
        std::vector<std::string>{"import/db.img"});
  auto snaps =
      f.svc->volumes().list_manageable_snapshots(ClusterId(f.cid), {.sort = "reference:asc"});
  REQUIRE(refs(snaps) == std::vector<std::string>{"import/db.img@monday", "import/other.img@x"});
  CHECK((*snaps)[0].source_reference == "import/db.img");
  CHECK((*snaps)[0].safe_to_manage);

  // Only as a snapshot of the volume adopted from import/db.img.
  auto plain = f.svc->volumes().create(ClusterId(f.cid), {"p1", "plain", kGiB});
  REQUIRE(plain.ok());
  ManageRequest sr{"import/db.img@monday", "p1", ""};
  sr.volume_id = plain->id;
  auto wrong = f.svc->volumes().manage_snapshot(ClusterId(f.cid), sr);
  CHECK_THAT(wrong.status().message(), Catch::StartsWith("volumeId:"));
  sr.volume_id = "00000000-0000-4000-8000-000000000000";
  CHECK(f.svc->volumes().manage_snapshot(ClusterId(f.cid), sr).status().code() == Code::kNotFound);

  auto vs = f.svc->volumes().manage(ClusterId(f.cid), {"import/db.img", "p1", ""});
  REQUIRE(vs.ok());
  REQUIRE(f.wait(vs->workflow_id).state == WorkflowState::kCompleted);
  sr.volume_id = vs->volume_id;
  sr.description = "monday's image";
  auto ss = f.svc->volumes().manage_snapshot(ClusterId(f.cid), sr);
  INFO(ss.status().to_string());
  REQUIRE(ss.ok());
  Workflow w = f.wait(ss->workflow_id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  CHECK(w.type == kManageSnapshot);
  auto sn = f.svc->volumes().get_snapshot({ClusterId(f.cid), "p1", ss->snapshot_id});
  REQUIRE(sn.ok());
  CHECK(sn->name == "monday");
  CHECK(sn->source_volume_id == vs->volume_id);
  CHECK(sn->size == kGiB);
  CHECK(sn->adopted_from == "import/db.img@monday");
  CHECK(sn->adopted_size == monday.size());
  auto rec = f.svc->volumes().managed_snapshot(ss->snapshot_id);
  REQUIRE(rec.ok());
  CHECK(rec->state == SnapshotState::kAvailable);
  CHECK(rec->description == "monday's image");
  CHECK(rec->volume_id == vs->volume_id);
  auto listed =
      f.svc->volumes().list_manageable_snapshots(ClusterId(f.cid), {.sort = "reference:asc"});
  REQUIRE(listed.ok());
  auto managed = std::find_if(listed->begin(), listed->end(),
                              [&](const ManageableObject& m) { return m.managed_id == sn->id; });
  REQUIRE(managed != listed->end());
  CHECK(managed->reason_not_safe == "already managed");
  CHECK(managed->source_reference == "data/" + vs->volume_id + ".vol");

  // A thick clone of the adopted snapshot holds its bytes.
  CHECK(cloned_bytes(f, sn->id, "from-monday").compare(0, monday.size(), monday) == 0);

  // Given back: the snapshot first (its volume refuses while it exists), each byte for byte.
  CHECK(f.svc->volumes().unmanage({ClusterId(f.cid), "p1", vs->volume_id}).status().code() ==
        Code::kFailedPrecondition);
  auto back = f.svc->volumes().unmanage_snapshot({ClusterId(f.cid), "p1", sn->id});
  INFO(back.status().to_string());
  REQUIRE(back.ok());
  CHECK(*back == "import/db.img@monday");
  CHECK(read_file(f.dir + "/import/db.img@monday") == monday);
  CHECK(f.svc->volumes().managed_snapshot(sn->id).status().code() == Code::kNotFound);
  REQUIRE(f.svc->volumes().unmanage({ClusterId(f.cid), "p1", vs->volume_id}).ok());
  CHECK(read_file(f.dir + "/import/db.img") == image);
}

TEST_CASE("Manageable: manage requests are checked before any workflow starts") {
  Fixture f;
  write_file(f.dir + "/import/ok.img", std::string(4096, 'x'));
  write_file(f.dir + "/import/odd.img", std::string(100, 'x'));
  write_file(f.dir + "/import/has space.img", std::string(4096, 'x'));
  REQUIRE(f.svc->volumes().create(ClusterId(f.cid), {"p1", "taken", 1 << 20}).ok());
  auto code_of = [&](ManageRequest r, const std::string& field) {
    auto s = f.svc->volumes().manage(ClusterId(f.cid), r);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.status().message(), Catch::StartsWith(field + ":"));
    return s.status().code();
  };
  CHECK(code_of({"", "p1", "x"}, "ref") == Code::kInvalidArgument);
  CHECK(code_of({"import/missing.img", "p1", "x"}, "ref") == Code::kInvalidArgument);
  CHECK(code_of({"import/odd.img", "p1", "x"}, "ref") == Code::kInvalidArgument);
  CHECK(code_of({"import/ok.img", "", "x"}, "projectName") == Code::kInvalidArgument);
  CHECK(code_of({"import/ok.img", "p1", "a/b"}, "name") == Code::kInvalidArgument);
  CHECK(code_of({"import/ok.img", "p1", "taken"}, "name") == Code::kAlreadyExists);
  ManageRequest long_text{"import/ok.img", "p1", "x"};
  long_text.description = std::string(256, 'd');
  CHECK(code_of(long_text, "description") == Code::kInvalidArgument);
  long_text.description.clear();
  long_text.metadata[""] = "v";
  CHECK(code_of(long_text, "metadata") == Code::kInvalidArgument);
  long_text.metadata = {{"k", std::string(256, 'v')}};
  CHECK(code_of(long_text, "metadata.k") == Code::kInvalidArgument);
  CHECK(f.svc->volumes()
            .manage(ClusterId("00000000-0000-4000-8000-000000000000"), {"import/ok.img", "p1", "x"})
            .status()
            .code() == Code::kNotFound);
  CHECK(f.svc->workflows().list({})->workflows.size() == 1);  // the attach only
  CHECK(fs::exists(f.dir + "/import/ok.img"));
}

TEST_CASE("Manageable: the service keeps what the request said, and names what has no name") {
  Fixture f;
  write_file(f.dir + "/import/has space.img", std::string(4096, 'x'));
  write_file(f.dir + "/import/taken", std::string(4096, 'y'));
  write_file(f.dir + "/import/plain.img", std::string(4096, 'z'));
  REQUIRE(f.svc->volumes().create(ClusterId(f.cid), {"p1", "taken", 1 << 20}).ok());
  auto adopt = [&](ManageRequest r) {
    auto started = f.svc->volumes().manage(ClusterId(f.cid), r);
    REQUIRE(started.ok());
    REQUIRE(f.wait(started->workflow_id).state == WorkflowState::kCompleted);
    return f.svc->volumes().managed(started->volume_id).value();
  };
  // A file name that is no volume name, one that is taken, and a display name given: each is
  // named volume-<id> on the cluster, as Cinder names what it manages.
  ManagedVolume spaced = adopt({"import/has space.img", "p1", ""});
  CHECK(spaced.volume->name == "volume-" + spaced.id);
  ManagedVolume taken = adopt({"import/taken", "p1", ""});
  CHECK(taken.volume->name == "volume-" + taken.id);
  ManageRequest r{"import/plain.img", "p1", ""};
  r.display_name = "Plain image";
  r.description = "adopted for the test";
  r.metadata = {{"owner", "dba"}, {"tier", "gold"}};
  r.bootable = true;
  ManagedVolume plain = adopt(r);
  CHECK(plain.volume->name == "volume-" + plain.id);
  CHECK(plain.display_name == "Plain image");
  CHECK(plain.bootable);
  CHECK(plain.reference == "import/plain.img");
  CHECK(plain.state == VolumeState::kAvailable);
  // The native read shows the description and metadata too.
  auto v = f.svc->volumes().get({ClusterId(f.cid), "p1", plain.id});
  REQUIRE(v.ok());
  CHECK(v->description == "adopted for the test");
  CHECK(v->metadata == std::map<std::string, std::string>{{"owner", "dba"}, {"tier", "gold"}});
  // Given back, the record goes; so does a deleted volume's.
  REQUIRE(f.svc->volumes().unmanage({ClusterId(f.cid), "p1", plain.id}).ok());
  CHECK(f.svc->volumes().managed(plain.id).status().code() == Code::kNotFound);
  REQUIRE(f.svc->volumes().remove({ClusterId(f.cid), "p1", spaced.id}).ok());
  CHECK(f.svc->volumes().managed(spaced.id).status().code() == Code::kNotFound);
}

TEST_CASE("Manageable: a candidate that changes after the request fails the workflow untouched") {
  // One worker, kept busy by a slow clone: the manage workflow waits its turn while the
  // candidate changes.
  Options o;
  o.admin_password = "manageable-admin";
  o.workflow_threads = 1;
  o.copy_rate_limit_bytes_per_sec = 2 << 20;
  dmscore::testing::ServiceHarness h;
  h.open_service(o);
  const std::string dir = h.tmp / "c1";
  const std::string cid = h.attach_dir(dir, "c1");
  auto big = h.svc->volumes().create(ClusterId(cid), {"p1", "big", 32 << 20});
  REQUIRE(big.ok());
  dmscore::testing::write_at(big->device_path, 0, std::string(32 << 20, 'z'));
  auto sn = h.svc->volumes().create_snapshot(ClusterId(cid), {"p1", "s", big->id, ""});
  REQUIRE(sn.ok());
  ThickCloneRequest slow;
  slow.src = {sn->id, "p1", cid};
  slow.dst.name = "slow";
  slow.dst.cluster_id = cid;
  auto blocker = h.svc->clones().volume(slow);
  REQUIRE(blocker.ok());

  fs::create_directories(dir + "/import");
  write_file(dir + "/import/b.img", std::string(8192, 'b'));
  auto started = h.svc->volumes().manage(ClusterId(cid), {"import/b.img", "p1", "b"});
  REQUIRE(started.ok());
  CHECK(h.svc->workflows().get(WorkflowId(started->workflow_id))->state == WorkflowState::kPending);
  // Announced at once: the volume reads as Creating while the workflow waits.
  auto creating = h.svc->volumes().get({ClusterId(cid), "p1", started->volume_id});
  REQUIRE(creating.ok());
  CHECK(creating->state == VolumeState::kCreating);
  CHECK(creating->name == "b");
  CHECK(h.svc->volumes().unmanage({ClusterId(cid), "p1", started->volume_id}).status().code() ==
        Code::kFailedPrecondition);
  write_file(dir + "/import/b.img", std::string(16384, 'c'));  // rewritten meanwhile
  REQUIRE(h.svc->workflows().cancel(*blocker).ok());
  Workflow w = h.wait(started->workflow_id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("changed since it was listed"));
  CHECK(read_file(dir + "/import/b.img") == std::string(16384, 'c'));
  // The volume the request announced reads as Failed, until it is forgotten.
  const VolumeRef ref{ClusterId(cid), "p1", started->volume_id};
  CHECK(h.svc->volumes().get(ref)->state == VolumeState::kFailed);
  auto rec = h.svc->volumes().managed(started->volume_id);
  REQUIRE(rec.ok());
  CHECK(rec->state == VolumeState::kFailed);
  CHECK_THAT(rec->failure, Catch::Contains("changed since it was listed"));
  CHECK(h.svc->volumes().unmanage(ref).value() == "import/b.img");
  CHECK(h.svc->volumes().get(ref).status().code() == Code::kNotFound);
  CHECK(h.svc->volumes().managed(started->volume_id).status().code() == Code::kNotFound);
  CHECK(read_file(dir + "/import/b.img") == std::string(16384, 'c'));
}

TEST_CASE("Manageable over HTTP: list, detail, manage and unmanage, with their errors") {
  Fixture f;
  auto server = dmscore::testing::start_server(*f.svc);
  const std::string token = f.svc->auth().login("admin", "manageable-admin", "127.0.0.1")->id_token;
  auto client = dmscore::testing::local_client(*server);
  auto call = [&](const std::string& method, const std::string& target,
                  const std::string& body = "") {
    auto r = client->request(method, target, body, {{"Authorization", "Bearer " + token}});
    INFO(method << " " << target << ": " << r.status().to_string());
    REQUIRE(r.ok());
    return *r;
  };
  write_file(f.dir + "/import/a.img", std::string(1 << 20, 'a'));
  write_file(f.dir + "/import/odd.img", std::string(100, 'o'));
  const std::string base = "/api/v1/clusters/" + f.cid + "/manageable-volumes";

  auto summary = call("GET", base + "?sort=reference:asc");
  REQUIRE(summary.status == 200);
  auto list = json::parse(summary.body).at("manageableVolumes").as_array();
  REQUIRE(list.size() == 2);
  CHECK(list[0].at("reference").at("source-name") == "import/a.img");
  CHECK(list[0].at("size") == 1);
  CHECK(list[0].at("safeToManage") == true);
  CHECK_FALSE(list[0].as_object().contains("reasonNotSafe"));
  auto detail = call("GET", base + "/detail?sort=reference:asc&limit=1&marker=" +
                                "%7B%22source-name%22%3A%22import%2Fa.img%22%7D");
  REQUIRE(detail.status == 200);
  auto d = json::parse(detail.body).at("manageableVolumes").as_array();
  REQUIRE(d.size() == 1);
  CHECK(d[0].at("reference").at("source-name") == "import/odd.img");
  CHECK(d[0].at("reasonNotSafe") == "size is not a multiple of 512 bytes");
  CHECK(d[0].at("volumeId").is_null());

  // Malformed, missing, oversized and hostile input: 400 naming the field, nothing made.
  for (auto [target, field] : {std::pair{base + "?sort=bogus", "sort"},
                               {base + "?limit=-1", "limit"},
                               {base + "?offset=x", "offset"},
                               {base + "?marker=%7Bx", "marker"},
                               {base + "?page=2", "page"}}) {
    auto r = call("GET", target);
    INFO(target << " -> " << r.body);
    CHECK(r.status == 400);
    CHECK_THAT(std::string(json::parse(r.body).at("message").as_string()),
               Catch::StartsWith(std::string(field) + ":"));
  }
  for (auto [body, field] :
       {std::pair{std::string("{}"), "ref"},
        {std::string(R"({"ref":"import/a.img","projectName":"p1"})"), "ref"},
        {std::string(R"({"ref":{},"projectName":"p1"})"), "ref.source-name"},
        {std::string(
             R"({"ref":{"source-name":"import/a.img","source-id":"1"},"projectName":"p1"})"),
         "ref.source-id"},
        {std::string(R"({"ref":{"source-name":"import/a.img"}})"), "projectName"},
        {std::string(R"({"ref":{"source-name":"../../etc/passwd"},"projectName":"p1"})"), "ref"},
        {std::string(R"({"ref":{"source-name":"import/a.img"},"projectName":"p1","x":1})"), "x"},
        {std::string(R"({"ref":{"source-name":")") + std::string(5000, 'a') +
             R"("},"projectName":"p1"})",
         "ref"},
        {std::string("[1,2"), "body"}}) {
    auto r = call("POST", base, body);
    INFO(body.substr(0, 200) << " -> " << r.body);
    CHECK(r.status == 400);
    CHECK_THAT(std::string(json::parse(r.body).at("message").as_string()),
               Catch::StartsWith(std::string(field)));
  }
  CHECK(fs::exists(f.dir + "/import/a.img"));

  auto posted =
      call("POST", base,
           R"({"ref":{"source-name":"import/a.img"},"projectName":"p1","name":"adopted"})");
  INFO(posted.body);
  REQUIRE(posted.status == 200);
  auto started = json::parse(posted.body).as_object();
  const std::string vid(started.at("volumeId").as_string());
  Workflow w = f.wait(std::string(started.at("workflowId").as_string()));
  REQUIRE(w.state == WorkflowState::kCompleted);
  auto v = call("GET", "/api/v1/clusters/" + f.cid + "/projects/p1/volumes/" + vid);
  REQUIRE(v.status == 200);
  CHECK(json::parse(v.body).at("volume").at("state") == "Available");

  const std::string unmanage =
      "/api/v1/clusters/" + f.cid + "/projects/p1/volumes/" + vid + "/unmanage";
  CHECK(call("POST", unmanage, R"({"force":true})").status == 400);
  auto back = call("POST", unmanage, "");
  INFO(back.body);
  REQUIRE(back.status == 200);
  CHECK(json::parse(back.body).at("reference").at("source-name") == "import/a.img");
  CHECK(read_file(f.dir + "/import/a.img") == std::string(1 << 20, 'a'));
  CHECK(call("POST", unmanage, "").status == 404);
}
