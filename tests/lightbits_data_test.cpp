// The Lightbits data path end to end: thick clones between Lightbits clusters (emulated, with
// their data plane) and local ones, over the modelled NVMe/TCP host (nvme-cli stand-in, sysfs
// tree and device nodes in the test's directory). What is checked each time: the copy is
// byte-identical, and nothing made to reach the data stays (no temporary volume, no ACL entry
// naming the host, no connection) however the workflow ends.

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "dmscore/service.hpp"
#include "lightbits_data_fixture.hpp"
#include "service_fixture.hpp"
#include "test_files.hpp"

using namespace dmscore;
using namespace dmscore::testing;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kMiB = 1u << 20;

struct DataPath {
  TempDir host_dir;
  ModelHost host{host_dir.path()};
  LightosEmulator emu1{50};
  LightosEmulator emu2{50, emu1.ca_dir()};
  std::unique_ptr<Fixture> f;
  std::string lb1, lb2, local;

  explicit DataPath(Options o = {}) {
    o.cluster_ca_file = emu1.ca_file();
    o.cluster_operation_timeout = 20s;
    host.configure(o);
    f = std::make_unique<Fixture>(o);
    import_service_key(emu1, *f->svc);
    import_service_key(emu2, *f->svc);
    lb1 = attach_cluster(*f->svc, {emu1.endpoint(), "lb1"});
    lb2 = attach_cluster(*f->svc, {emu2.endpoint(), "lb2"});
    local = f->attach("c1");
  }

  LightosEmulator& emu(const std::string& cluster) { return cluster == lb1 ? emu1 : emu2; }

  // A volume on `cluster`/p1 with `extents` random 1 MiB extents, and its snapshot.
  std::pair<Volume, Snapshot> source(const std::string& cluster, std::uint64_t size, int extents,
                                     const std::string& name = "src") {
    auto v = f->svc->volumes().create(ClusterId(cluster), {"p1", name, size});
    INFO(v.status().to_string());
    REQUIRE(v.ok());
    const std::string data = cluster == local ? v->device_path : emulator_data(emu(cluster), v->id);
    make_sparse_image(data, size, extents, 7);
    auto sn =
        f->svc->volumes().create_snapshot(ClusterId(cluster), {"p1", name + "-snap", v->id, ""});
    INFO(sn.status().to_string());
    REQUIRE(sn.ok());
    return {*v, *sn};
  }

  // Where the data of `id` on `cluster` is.
  std::string data_of(const std::string& cluster, const std::string& id, bool snapshot) {
    if (cluster != local) return emulator_data(emu(cluster), id);
    return f->tmp / ("c1/data/" + id + (snapshot ? ".snap" : ".vol"));
  }

  ThickCloneRequest request(const std::string& from, const Snapshot& sn, const std::string& to,
                            const std::string& name) {
    ThickCloneRequest r;
    r.src = {sn.id, "p1", from};
    r.dst.name = name;
    r.dst.cluster_id = to;
    r.dst.project_name = "p2";
    r.verify_clone = true;
    return r;
  }

  // Clones `sn` from `from` into a new volume `name` on `to` (project p2, verified) and waits
  // for the workflow to end.
  Workflow clone(const std::string& from, const Snapshot& sn, const std::string& to,
                 const std::string& name) {
    auto id = f->svc->clones().volume(request(from, sn, to, name));
    INFO(id.status().to_string());
    REQUIRE(id.ok());
    return f->wait(*id);
  }

  std::string leftovers() {
    return data_path_leftovers(emu1) + data_path_leftovers(emu2) +
           (host.controllers().empty() ? "" : "a controller in sysfs; ");
  }
};

std::string result_field(const Workflow& w, const char* key) {
  auto v = boost::json::parse(w.result).as_object();
  return std::string(v.at(key).as_string());
}

void check_identical(const std::string& a, const std::string& b, std::uint64_t size) {
  auto x = file_bytes(a), y = file_bytes(b);
  REQUIRE(x.size() >= size);
  REQUIRE(y.size() >= size);
  x.resize(size);
  y.resize(size);
  CHECK((x == y));  // (not decomposed: megabytes would be printed)
}

}  // namespace

TEST_CASE(
    "Lightbits data path: a thick clone between two Lightbits clusters is byte-identical "
    "and leaves nothing behind") {
  DataPath d;
  auto [v, sn] = d.source(d.lb1, 64 * kMiB, 12);
  Workflow w = d.clone(d.lb1, sn, d.lb2, "copy");
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  const std::string vol = result_field(w, "volumeId");
  check_identical(d.data_of(d.lb1, sn.id, true), d.data_of(d.lb2, vol, false), 64 * kMiB);
  CHECK(d.leftovers().empty());
  // The destination is a volume of its own, Available, its ACL back to none.
  auto dst = d.f->svc->volumes().get({ClusterId(d.lb2), "p2", vol});
  REQUIRE(dst.ok());
  CHECK(dst->state == VolumeState::kAvailable);
  CHECK_THAT(d.emu2.control("GET", "/control/state"), Catch::Contains("ALLOW_NONE"));
  // The source was read through a temporary volume made from the snapshot, this host alone in
  // its ACL, and the destination had the host added with an ETag-guarded update.
  bool temp_made = false, acl_put = false;
  for (const auto& c : d.emu1.calls())
    temp_made |= c.at("method") == "POST" &&
                 c.at("path").as_string().find("/projects/p1/volumes") != std::string::npos;
  for (const auto& c : d.emu2.calls())
    acl_put |= c.at("method") == "PUT" && c.at("ifMatch").is_string();
  CHECK(temp_made);
  CHECK(acl_put);
}

TEST_CASE(
    "Lightbits data path: a clone within one Lightbits cluster, and a snapshot clone, are "
    "byte-identical") {
  DataPath d;
  auto [v, sn] = d.source(d.lb1, 32 * kMiB, 9);
  Workflow w = d.clone(d.lb1, sn, d.lb1, "same-cluster");
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  check_identical(d.data_of(d.lb1, sn.id, true),
                  d.data_of(d.lb1, result_field(w, "volumeId"), false), 32 * kMiB);
  auto sid = d.f->svc->clones().snapshot(d.request(d.lb1, sn, d.lb2, "snap-copy"));
  REQUIRE(sid.ok());
  Workflow ws = d.f->wait(*sid);
  INFO(ws.msg);
  REQUIRE(ws.state == WorkflowState::kCompleted);
  const std::string snap = result_field(ws, "snapshotId");
  auto got = d.f->svc->volumes().get_snapshot({ClusterId(d.lb2), "p2", snap});
  REQUIRE(got.ok());
  CHECK(got->state == SnapshotState::kAvailable);
  check_identical(d.data_of(d.lb1, sn.id, true), d.data_of(d.lb2, snap, true), 32 * kMiB);
  CHECK(d.leftovers().empty());
  // The hidden volume the snapshot was taken of is gone.
  const auto state = emulator_state(d.emu2);
  for (const auto& vol : state.at("volumes").as_array())
    CHECK(vol.at("name").as_string().find("dms-tmp-") == std::string::npos);
}

TEST_CASE("Lightbits data path: local to Lightbits and Lightbits to local are byte-identical") {
  DataPath d;
  {
    auto [v, sn] = d.source(d.local, 48 * kMiB, 10, "from-local");
    Workflow w = d.clone(d.local, sn, d.lb1, "to-lightbits");
    INFO(w.msg);
    REQUIRE(w.state == WorkflowState::kCompleted);
    check_identical(d.data_of(d.local, sn.id, true),
                    d.data_of(d.lb1, result_field(w, "volumeId"), false), 48 * kMiB);
  }
  {
    auto [v, sn] = d.source(d.lb2, 40 * kMiB, 7, "from-lightbits");
    Workflow w = d.clone(d.lb2, sn, d.local, "to-local");
    INFO(w.msg);
    REQUIRE(w.state == WorkflowState::kCompleted);
    auto dst = d.f->svc->volumes().get({ClusterId(d.local), "p2", result_field(w, "volumeId")});
    REQUIRE(dst.ok());
    check_identical(d.data_of(d.lb2, sn.id, true), dst->device_path, 40 * kMiB);
    // All-zero chunks read from the device were not written: the local copy stays sparse (7
    // chunks of 4 MiB at most hold the 7 extents of data).
    CHECK(allocated_bytes(dst->device_path) <= 7 * 4 * kMiB);
  }
  CHECK(d.leftovers().empty());
}

TEST_CASE("Lightbits data path: the service's host NQN is shown with its credentials") {
  DataPath d;
  CHECK(d.f->svc->service_credentials().host_nqn == kTestHostNqn);
}

TEST_CASE(
    "Lightbits data path: a cluster that refuses the ACL update fails the clone naming "
    "what to fix, and nothing stays") {
  DataPath d;
  auto [v, sn] = d.source(d.local, 16 * kMiB, 4);
  d.emu1.control("POST", "/control/fail",
                 R"({"method": "PUT", "pathRegex": "/volumes/", "status": 403, "count": 1000})");
  Workflow w = d.clone(d.local, sn, d.lb1, "refused");
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("ACL") && Catch::Contains(kTestHostNqn) &&
                        Catch::Contains("HTTP 403"));
  d.emu1.control("POST", "/control/reset");
  CHECK(d.leftovers().empty());
  CHECK_THAT(d.emu1.control("GET", "/control/state"), !Catch::Contains("\"refused\""));
}

TEST_CASE(
    "Lightbits data path: a namespace that never appears fails the clone, and nothing "
    "stays") {
  Options o;
  o.nvme_device_timeout = 1500ms;
  DataPath d(o);
  auto [v, sn] = d.source(d.lb1, 16 * kMiB, 4);
  d.emu1.control("POST", "/control/nvme/hide", R"({"namePrefix": "dms-read-"})");
  Workflow w = d.clone(d.lb1, sn, d.local, "never");
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("did not appear"));
  CHECK(d.leftovers().empty());
}

TEST_CASE(
    "Lightbits data path: a target that refuses the connection fails the clone saying "
    "what to check") {
  DataPath d;
  auto [v, sn] = d.source(d.lb1, 16 * kMiB, 4);
  d.emu1.control("POST", "/control/nvme/refuse", R"({"count": 1000})");
  Workflow w = d.clone(d.lb1, sn, d.local, "no-path");
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg,
             Catch::Contains("cannot connect to NVMe subsystem") && Catch::Contains("nvme-tcp"));
  CHECK(d.leftovers().empty());
}

namespace {

// Waits until workflow `id` has copied some data.
void wait_copying(Fixture& f, const WorkflowId& id) {
  for (int i = 0; i < 600; ++i) {
    auto w = f.svc->workflows().get(id);
    REQUIRE(w.ok());
    REQUIRE_FALSE(is_terminal(w->state));
    if (w->progress.stage == "copy" && w->progress.bytes_done > 0) return;
    std::this_thread::sleep_for(20ms);
  }
  FAIL("the copy did not start");
}

}  // namespace

TEST_CASE(
    "Lightbits data path: a path that drops mid-copy is reconnected and the copy resumes, "
    "byte-identical") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 24 * kMiB;  // slow enough to be caught in the middle
  DataPath d(o);
  auto [v, sn] = d.source(d.lb1, 96 * kMiB, 48);
  auto id = d.f->svc->clones().volume(d.request(d.lb1, sn, d.lb2, "survivor"));
  REQUIRE(id.ok());
  wait_copying(*d.f, *id);
  CHECK_THAT(d.emu1.control("POST", "/control/nvme/drop-path", R"({"namePrefix": "dms-read-"})"),
             Catch::Contains("\"dropped\": 1"));
  Workflow w = d.f->wait(*id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  check_identical(d.data_of(d.lb1, sn.id, true),
                  d.data_of(d.lb2, result_field(w, "volumeId"), false), 96 * kMiB);
  // It connected again: two temporary volumes were made from the snapshot, one after the other.
  int temps = 0;
  for (const auto& c : d.emu1.calls())
    temps += c.at("method") == "POST" && c.at("status") == 200 &&
             c.at("path").as_string().find("/projects/p1/volumes") != std::string::npos;
  CHECK(temps >= 2);
  CHECK(d.leftovers().empty());
}

TEST_CASE(
    "Lightbits data path: a path that stays down fails the clone after its retries, and "
    "nothing stays") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 24 * kMiB;
  o.copy_path_retries = 1;
  DataPath d(o);
  auto [v, sn] = d.source(d.lb1, 96 * kMiB, 48);
  auto id = d.f->svc->clones().volume(d.request(d.lb1, sn, d.lb2, "doomed"));
  REQUIRE(id.ok());
  wait_copying(*d.f, *id);
  d.emu1.control("POST", "/control/nvme/refuse", R"({"count": 1000})");
  d.emu1.control("POST", "/control/nvme/drop-path",
                 R"({"namePrefix": "dms-read-", "restore": false})");
  Workflow w = d.f->wait(*id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_FALSE(w.msg.empty());
  d.emu1.control("POST", "/control/reset");
  CHECK(d.leftovers().empty());
  // The partial destination went with the workflow's undo.
  CHECK_THAT(d.emu2.control("GET", "/control/state"), !Catch::Contains("\"doomed\""));
}

TEST_CASE("Lightbits data path: a clone cancelled mid-copy leaves nothing behind") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 16 * kMiB;
  DataPath d(o);
  auto [v, sn] = d.source(d.lb1, 96 * kMiB, 48);
  auto id = d.f->svc->clones().volume(d.request(d.lb1, sn, d.lb2, "cancelled"));
  REQUIRE(id.ok());
  wait_copying(*d.f, *id);
  REQUIRE(d.f->svc->workflows().cancel(*id).ok());
  Workflow w = d.f->wait(*id);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(d.leftovers().empty());
  CHECK_THAT(d.emu2.control("GET", "/control/state"), !Catch::Contains("\"cancelled\""));
}
