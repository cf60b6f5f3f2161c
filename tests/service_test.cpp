#include "dmscore/service.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "dmscore/lightbits_backend.hpp"
#include "service_fixture.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::attached_cluster_id;
using dmscore::testing::Fixture;
using dmscore::testing::LightbitsFixture;
using dmscore::testing::result_field;
using dmscore::testing::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

// Volume and snapshot files in a local cluster (not their sidecars); none is half made.
std::size_t data_files(const std::string& dir) {
  std::size_t n = 0;
  for (auto& e : fs::directory_iterator(dir + "/data")) {
    const auto ext = e.path().extension();
    CHECK(ext != ".tmp");
    n += e.is_regular_file() && (ext == ".vol" || ext == ".snap");
  }
  return n;
}

}  // namespace

TEST_CASE("Service: attach two local clusters, list them and read them back") {
  Fixture f;
  f.attach_two();
  auto list = f.svc->clusters().list();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  auto c = f.svc->clusters().get(ClusterId(f.c1));
  REQUIRE(c.ok());
  CHECK(c->name == "c1");
  CHECK(c->kind == ClusterKind::kLocal);
  CHECK(c->access_status == ConnectionStatus::kConnected);
  CHECK(c->api_endpoints == std::vector<std::string>{"file://" + (f.tmp / "c1")});
  CHECK(f.svc->clusters().get(ClusterId("00000000-0000-4000-8000-000000000000")).status().code() ==
        Code::kNotFound);
}

TEST_CASE("Service: local_cluster_roots confines where a local cluster may be attached") {
  TempDir roots;
  Options o;
  o.local_cluster_roots = {roots / "allowed/"};
  Fixture f(o);
  for (std::string bad : {roots / "other", roots / "allowedx", roots.path() + "/elsewhere",
                          std::string("/etc/dms")}) {
    auto id = f.svc->clusters().attach({"file://" + bad, ""});
    CHECK(id.status().code() == Code::kPermissionDenied);
    CHECK_THAT(id.status().message(), Catch::StartsWith("apiEndpoint:"));
    CHECK_FALSE(std::filesystem::exists(bad));
  }
  for (std::string good : {roots / "allowed/c1", roots / "allowed/./c2/"}) {
    auto id = f.svc->clusters().attach({"file://" + good, ""});
    INFO(good);
    REQUIRE(id.ok());
    CHECK(f.wait(*id).state == WorkflowState::kCompleted);
  }
}

TEST_CASE("Service: max_clusters bounds the attached clusters, and a detach makes room again") {
  Options o;
  o.max_clusters = 2;
  Fixture f(o);
  f.attach_two();
  // Refused up front, and nothing is made on disk.
  auto refused = f.svc->clusters().attach({"file://" + (f.tmp / "c3"), ""});
  CHECK(refused.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(refused.status().message(),
             Catch::StartsWith("apiEndpoint:") && Catch::Contains("max_clusters 2"));
  CHECK_FALSE(fs::exists(f.tmp / "c3"));
  // Two attaches that both passed the early check: the workflows admit only what fits.
  REQUIRE(f.svc->clusters().detach(ClusterId(f.c2)).ok());
  auto a = f.svc->clusters().attach({"file://" + (f.tmp / "c3"), ""});
  auto b = f.svc->clusters().attach({"file://" + (f.tmp / "c4"), ""});
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  Workflow wa = f.wait(*a), wb = f.wait(*b);
  CHECK((wa.state == WorkflowState::kCompleted) != (wb.state == WorkflowState::kCompleted));
  const Workflow& lost = wa.state == WorkflowState::kCompleted ? wb : wa;
  CHECK(lost.state == WorkflowState::kFailed);
  CHECK_THAT(lost.msg, Catch::Contains("max_clusters 2"));
  REQUIRE(f.svc->clusters().list().ok());
  CHECK(f.svc->clusters().list()->size() == 2);
}

TEST_CASE(
    "Service: attaching the same cluster twice fails the second workflow with ALREADY_EXISTS") {
  Fixture f;
  f.attach("c1");
  auto id = f.svc->clusters().attach({"file://" + (f.tmp / "c1"), ""});
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("already attached"));
}

TEST_CASE(
    "Service: attach refuses malformed endpoints up front and foreign directories in the "
    "workflow") {
  Fixture f;
  for (std::string bad :
       std::vector<std::string>{"", "file://relative", "file:///a/../b", "file:///a\nb",
                                "file:///" + std::string(5000, 'x')}) {
    auto r = f.svc->clusters().attach({bad, ""});
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().rfind("apiEndpoint:", 0) == 0);
  }
  CHECK(f.svc->clusters().attach({"file:///tmp/x", "bad name"}).status().code() ==
        Code::kInvalidArgument);
  fs::create_directories(f.tmp / "foreign");
  dmscore::testing::write_file(f.tmp / "foreign/file", "x");
  auto id = f.svc->clusters().attach({"file://" + (f.tmp / "foreign"), ""});
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("not empty"));
  CHECK(f.svc->clusters().list()->empty());
}

TEST_CASE(
    "Service: a thick clone volume is byte-identical, as sparse as its source, and independent") {
  Fixture f;
  f.attach_two();
  auto [vol, snap] = f.source(24 * kMiB + 64 * 1024, 7);
  auto req = f.clone_req(snap, "copy-1");
  req.verify_clone = true;
  auto id = f.svc->clones().volume(req);
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  CHECK(w.progress.percent == 100);
  CHECK(w.progress.bytes_total > 0);
  CHECK(w.progress.bytes_done == w.progress.bytes_total);  // a finished copy reads 100% of bytes
  std::string vid = result_field(w.result, "volumeId");
  auto dst = f.svc->volumes().get({ClusterId(f.c2), "p2", vid});
  REQUIRE(dst.ok());
  CHECK(dst->state == VolumeState::kAvailable);
  CHECK(dst->name == "copy-1");
  CHECK(dst->size == vol.size);
  std::string snap_file = f.snapshot_path("c1", snap);
  CHECK(dmscore::testing::file_bytes(dst->device_path) == dmscore::testing::file_bytes(snap_file));
  CHECK(dmscore::testing::allocated_bytes(dst->device_path) <=
        dmscore::testing::allocated_bytes(snap_file));
  auto stats = f.svc->stats();
  REQUIRE(stats.ok());
  CHECK(stats->copy_bytes_total == 7 * kMiB);  // the data extents, not the holes
  CHECK(stats->verify_bytes_total == vol.size);
  bool counted = false;
  for (auto& wc : stats->workflows)
    counted |=
        wc.type == kThickCloneVolume && wc.state == WorkflowState::kCompleted && wc.count == 1;
  CHECK(counted);
  // Independent: writing the clone does not change the source snapshot.
  dmscore::testing::write_file_at(dst->device_path, 0, "zz", 2);
  CHECK(dmscore::testing::file_bytes(snap_file) != dmscore::testing::file_bytes(dst->device_path));
}

TEST_CASE("Service: a source with no data clones to a destination with no allocated blocks") {
  Fixture f;
  f.attach_two();
  auto [vol, snap] = f.source(8 * kMiB, 0);
  auto id = f.svc->clones().volume(f.clone_req(snap, "empty"));
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  REQUIRE(w.state == WorkflowState::kCompleted);
  auto dst = f.svc->volumes().get({ClusterId(f.c2), "p2", result_field(w.result, "volumeId")});
  REQUIRE(dst.ok());
  CHECK(dmscore::testing::allocated_bytes(dst->device_path) == 0);
  CHECK(fs::file_size(dst->device_path) == 8 * kMiB);
}

TEST_CASE(
    "Service: a larger destination keeps the data and reads zero past it, and smaller is refused") {
  Fixture f;
  f.attach_two();
  auto [vol, snap] = f.source(4 * kMiB, 4);
  auto req = f.clone_req(snap, "bigger");
  req.dst.size = 16 * kMiB;
  req.verify_clone = true;
  auto id = f.svc->clones().volume(req);
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  REQUIRE(w.state == WorkflowState::kCompleted);
  auto dst = f.svc->volumes().get({ClusterId(f.c2), "p2", result_field(w.result, "volumeId")});
  REQUIRE(dst.ok());
  CHECK(dst->size == 16 * kMiB);
  auto bytes = dmscore::testing::file_bytes(dst->device_path);
  auto src = dmscore::testing::file_bytes(f.snapshot_path("c1", snap));
  CHECK(std::equal(src.begin(), src.end(), bytes.begin()));
  CHECK(std::all_of(bytes.begin() + static_cast<long>(src.size()), bytes.end(),
                    [](unsigned char c) { return c == 0; }));
  req.dst.name = "smaller";
  req.dst.size = 2 * kMiB;
  auto r = f.svc->clones().volume(req);
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK(r.status().message().rfind("dst.size:", 0) == 0);
}

TEST_CASE("Service: a thick clone snapshot ends as a snapshot and leaves no hidden volume") {
  Fixture f;
  f.attach_two();
  auto [vol, snap] = f.source(6 * kMiB, 3);
  auto req = f.clone_req(snap, "snap-copy");
  req.dst.description = "nightly";
  req.verify_clone = true;
  auto id = f.svc->clones().snapshot(req);
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  auto sn =
      f.svc->volumes().get_snapshot({ClusterId(f.c2), "p2", result_field(w.result, "snapshotId")});
  REQUIRE(sn.ok());
  CHECK(sn->name == "snap-copy");
  CHECK(sn->description == "nightly");
  CHECK(f.svc->volumes().list({ClusterId(f.c2), "p2"}, {})->volumes.empty());
  CHECK(dmscore::testing::file_bytes(f.snapshot_path("c2", *sn)) ==
        dmscore::testing::file_bytes(f.snapshot_path("c1", snap)));
  CHECK(data_files(f.tmp / "c2") == 1);
}

TEST_CASE("Service: thick clone requests are checked field by field before anything is recorded") {
  Fixture f;
  f.attach_two();
  auto [vol, snap] = f.source(4 * kMiB, 1);
  auto expect = [&](ThickCloneRequest r, Code code, const std::string& field,
                    bool snapshot = false) {
    auto id = snapshot ? f.svc->clones().snapshot(r) : f.svc->clones().volume(r);
    INFO(id.status().to_string());
    CHECK(id.status().code() == code);
    CHECK(id.status().message().rfind(field + ":", 0) == 0);
  };
  auto base = f.clone_req(snap, "ok-name");
  auto r = base;
  r.src.snap_id = "not-a-uuid";
  expect(r, Code::kInvalidArgument, "src.snapId");
  r = base;
  r.src.project_name = "";
  expect(r, Code::kInvalidArgument, "src.projectName");
  r = base;
  r.dst.name = "has space";
  expect(r, Code::kInvalidArgument, "dst.name");
  r = base;
  r.dst.name = std::string(300, 'n');
  expect(r, Code::kInvalidArgument, "dst.name");
  r = base;
  r.dst.replica = 4;
  expect(r, Code::kInvalidArgument, "dst.replica");
  r = base;
  r.dst.sector_size = 1000;
  expect(r, Code::kInvalidArgument, "dst.sectorSize");
  r = base;
  r.dst.size = 12345;
  expect(r, Code::kInvalidArgument, "dst.size");
  r = base;
  r.dst.description = "x";
  expect(r, Code::kInvalidArgument, "dst.description");
  r = base;
  r.dst.cluster_id = "00000000-0000-4000-8000-000000000000";
  expect(r, Code::kNotFound, "dst.clusterId");
  r = base;
  r.src.snap_id = "00000000-0000-4000-8000-000000000000";
  expect(r, Code::kNotFound, "src.snapId");
  r = base;
  r.dst.qos_policy_name = "gold";
  expect(r, Code::kNotFound, "dst.qosPolicyName");
  (void)f.svc->volumes().create(ClusterId(f.c2), {"p2", "taken", 4096});
  r = base;
  r.dst.name = "taken";
  expect(r, Code::kAlreadyExists, "dst.name");
  CHECK(f.svc->workflows().list({})->workflows.size() == 2);  // only the two attaches
}

TEST_CASE("Service: cancelling a running clone removes the partial destination") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 8 * kMiB;
  o.copy_chunk_bytes = 256 * 1024;
  Fixture f(o);
  f.attach_two();
  auto [vol, snap] = f.source(32 * kMiB, 16);
  auto id = f.svc->clones().volume(f.clone_req(snap, "doomed"));
  REQUIRE(id.ok());
  for (int i = 0; i < 500; ++i) {
    auto w = f.svc->workflows().get(*id);
    if (w->progress.stage == "copy" && w->progress.bytes_done > 0) break;
    std::this_thread::sleep_for(10ms);
  }
  // Deleting what a workflow uses is refused, and so is detaching its clusters.
  auto dst_vol = f.svc->volumes().list({ClusterId(f.c2), "p2"}, {});
  REQUIRE(dst_vol->volumes.size() == 1);
  CHECK(dst_vol->volumes[0].state == VolumeState::kCreating);
  CHECK(f.svc->volumes().remove({ClusterId(f.c2), "p2", dst_vol->volumes[0].id}).code() ==
        Code::kFailedPrecondition);
  CHECK(f.svc->volumes().remove_snapshot({ClusterId(f.c1), "p1", snap.id}).code() ==
        Code::kFailedPrecondition);
  CHECK(f.svc->clusters().detach(ClusterId(f.c2)).code() == Code::kFailedPrecondition);
  REQUIRE(f.svc->workflows().cancel(*id).ok());
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(f.svc->volumes().list({ClusterId(f.c2), "p2"}, {})->volumes.empty());
  CHECK(data_files(f.tmp / "c2") == 0);
  CHECK(f.svc->clusters().detach(ClusterId(f.c2)).ok());
  CHECK(f.svc->volumes()
            .get_snapshot({ClusterId(f.c1), "p1", snap.id})
            .ok());  // the source is untouched
}

TEST_CASE("Service: verifyClone fails the workflow when the data differ, leaving nothing behind") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 16 * kMiB;
  o.copy_chunk_bytes = 256 * 1024;
  Fixture f(o);
  f.attach_two();
  auto [vol, snap] = f.source(16 * kMiB, 16);
  auto req = f.clone_req(snap, "checked");
  req.verify_clone = true;
  auto id = f.svc->clones().volume(req);
  REQUIRE(id.ok());
  for (int i = 0; i < 500; ++i) {
    auto w = f.svc->workflows().get(*id);
    if (w->progress.bytes_done >= 4 * kMiB) break;
    std::this_thread::sleep_for(10ms);
  }
  // Flip one byte of the source behind the copy: only a read-back can notice.
  auto path = f.snapshot_path("c1", snap);
  auto bytes = dmscore::testing::file_bytes(path);
  unsigned char b = bytes[100] ^ 0xff;
  dmscore::testing::write_file_at(path, 100, &b, 1);
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("verifyClone"));
  CHECK(f.svc->volumes().list({ClusterId(f.c2), "p2"}, {})->volumes.empty());
}

TEST_CASE("Service: maxRunningWorkflows answers RESOURCE_EXHAUSTED and records nothing") {
  Options o;
  o.max_running_workflows = 1;
  o.copy_rate_limit_bytes_per_sec = 4 * kMiB;
  o.copy_chunk_bytes = 256 * 1024;
  Fixture f(o);
  f.attach_two();
  auto [vol, snap] = f.source(8 * kMiB, 8);
  auto first = f.svc->clones().volume(f.clone_req(snap, "one"));
  REQUIRE(first.ok());
  auto second = f.svc->clones().volume(f.clone_req(snap, "two"));
  CHECK(second.status().code() == Code::kResourceExhausted);
  REQUIRE(f.svc->workflows().cancel(*first).ok());
  f.wait(*first);
  CHECK(f.svc->workflows().list({})->workflows.size() == 3);
}

TEST_CASE("Service: clusters survive a restart and refresh notices one that vanished") {
  Fixture f;
  f.attach_two();
  f.open();
  REQUIRE(f.svc->clusters().list()->size() == 2);
  CHECK(f.svc->clusters().get(ClusterId(f.c1))->access_status == ConnectionStatus::kConnected);
  auto r = f.svc->clusters().refresh();
  REQUIRE(r.ok());
  CHECK(f.wait(*r).state == WorkflowState::kCompleted);
  CHECK(f.svc->clusters().get(ClusterId(f.c1))->refreshed_at.has_value());
  fs::remove(f.tmp / "c2/cluster.json");
  r = f.svc->clusters().refresh(ClusterId(f.c2));
  REQUIRE(r.ok());
  f.wait(*r);
  CHECK(f.svc->clusters().get(ClusterId(f.c2))->access_status == ConnectionStatus::kDisconnected);
  CHECK(f.svc->clusters().get(ClusterId(f.c1))->access_status == ConnectionStatus::kConnected);
  CHECK(f.svc->clusters()
            .refresh(ClusterId(std::string("00000000-0000-4000-8000-000000000000")))
            .status()
            .code() == Code::kNotFound);
}

TEST_CASE("Service: the first open bootstraps admin with a generated password file (0600)") {
  Fixture f;
  auto pw_file = f.tmp / "data/admin-password";
  CHECK(dmscore::testing::file_mode(pw_file) == 0600);
  std::string pw = dmscore::testing::read_file(pw_file);
  pw.pop_back();
  auto login = f.svc->auth().login("admin", pw, "127.0.0.1");
  REQUIRE(login.ok());
  CHECK(f.svc->auth().verify(login->id_token)->role == Role::kAdmin);
  CHECK(f.svc->service_credentials().pub_key_id.rfind("dms-", 0) == 0);
  CHECK(f.svc->service_credentials().pub_key_id == f.svc->identity().credentials().pub_key_id);
  CHECK(f.svc->cluster_tokens().token("any-cluster").ok());
  f.open();  // a restart keeps the same identity and users
  CHECK(f.svc->auth().verify(login->id_token).ok());
}

TEST_CASE(
    "Service: health checks mark a vanished cluster Disconnected and a returning one Connected") {
  std::vector<std::string> lines;
  std::mutex mu;
  Options o;
  o.health_check_interval = 50ms;
  o.log = [&](std::string_view l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l);
  };
  Fixture f(o);
  f.attach_two();
  auto status_of = [&](const std::string& id) {
    return f.svc->clusters().get(ClusterId(id))->access_status;
  };
  auto wait_for = [&](const std::string& id, ConnectionStatus want) {
    for (int i = 0; i < 200 && status_of(id) != want; ++i) std::this_thread::sleep_for(10ms);
    return status_of(id) == want;
  };
  std::string saved = dmscore::testing::read_file(f.tmp / "c2/cluster.json");
  fs::remove(f.tmp / "c2/cluster.json");
  CHECK(wait_for(f.c2, ConnectionStatus::kDisconnected));
  CHECK(status_of(f.c1) == ConnectionStatus::kConnected);
  dmscore::testing::write_file(f.tmp / "c2/cluster.json", saved);
  CHECK(wait_for(f.c2, ConnectionStatus::kConnected));
  std::lock_guard lock(mu);
  bool down = false, up = false;
  for (auto& l : lines) {
    down |= l.find("cluster " + f.c2 + " is now Disconnected") != std::string::npos;
    up |= l.find("cluster " + f.c2 + " is now Connected") != std::string::npos;
  }
  CHECK(down);
  CHECK(up);
  Options bad;
  bad.data_dir = "/tmp/x";
  bad.health_check_interval = -1ms;
  CHECK(validate(bad).message().rfind("health_check_interval:", 0) == 0);
}

TEST_CASE("Service: a second process cannot open the same data directory") {
  Fixture f;
  Options o = dmscore::testing::test_options(f.tmp / "data");
  CHECK(Service::open(o).status().code() == Code::kUnavailable);
  o.max_running_workflows = 0;
  CHECK(Service::open(o).status().code() == Code::kInvalidArgument);
}

TEST_CASE("Service: detach removes the cluster from the registry but never its data") {
  Fixture f;
  f.attach_two();
  auto [vol, snap] = f.source(1 * kMiB, 1);
  REQUIRE(f.svc->clusters().detach(ClusterId(f.c1)).ok());
  CHECK(f.svc->clusters().get(ClusterId(f.c1)).status().code() == Code::kNotFound);
  CHECK(f.svc->clusters().detach(ClusterId(f.c1)).code() == Code::kNotFound);
  CHECK(fs::exists(vol.device_path));
  CHECK(f.svc->volumes().list({ClusterId(f.c1), "p1"}, {}).status().code() == Code::kNotFound);
}

TEST_CASE("Service: the cluster list kept in memory never shows what a finished write changed") {
  Fixture f;
  // Readers list all the time, so lists overlap every write below.
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i)
    readers.emplace_back([&] {
      while (!stop) (void)f.svc->clusters().list();
    });
  for (int round = 0; round < 20; ++round) {
    const std::string id = f.attach("r" + std::to_string(round));
    auto listed = f.svc->clusters().list();
    REQUIRE(listed.ok());
    CHECK(std::count_if(listed->begin(), listed->end(),
                        [&](const Cluster& c) { return c.id == id; }) == 1);
    REQUIRE(f.svc->clusters().detach(ClusterId(id)).ok());
    listed = f.svc->clusters().list();
    REQUIRE(listed.ok());
    CHECK(
        std::none_of(listed->begin(), listed->end(), [&](const Cluster& c) { return c.id == id; }));
  }
  stop = true;
  for (auto& t : readers) t.join();
}

TEST_CASE("Service: clones cancelled at random moments leave only the completed copies") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 32 * kMiB;
  o.copy_chunk_bytes = 256 * 1024;
  Fixture f(o);
  f.attach_two();
  auto [vol, snap] = f.source(8 * kMiB, 6);
  std::mt19937 rng(Catch::rngSeed());
  std::size_t completed = 0, cancelled = 0;
  for (int i = 0; i < 12; ++i) {
    auto id = f.svc->clones().volume(f.clone_req(snap, "c" + std::to_string(i)));
    REQUIRE(id.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 250));
    Status s = f.svc->workflows().cancel(*id);
    Workflow w = f.wait(*id);
    if (s.ok()) {
      CHECK(w.state == WorkflowState::kCancelled);
      ++cancelled;
    } else {
      CHECK(s.code() == Code::kFailedPrecondition);  // it had already finished
      CHECK(w.state == WorkflowState::kCompleted);
      ++completed;
    }
  }
  auto vols = f.svc->volumes().list({ClusterId(f.c2), "p2"}, {});
  REQUIRE(vols.ok());
  CHECK(vols->volumes.size() == completed);
  for (auto& v : vols->volumes) {
    CHECK(v.state == VolumeState::kAvailable);
    CHECK(dmscore::testing::file_bytes(v.device_path) ==
          dmscore::testing::file_bytes(f.snapshot_path("c1", snap)));
  }
  CHECK(data_files(f.tmp / "c2") == completed);
  CHECK(cancelled > 0);
}

// ---- Lightbits clusters, against the LightOS emulator ----

TEST_CASE("Service: attaching a Lightbits cluster that refuses the key fails with the lbcli hint") {
  LightbitsFixture lb;
  Workflow w = lb.attach();
  CHECK(w.state == WorkflowState::kFailed);
  std::string id = lb.f->svc->service_credentials().pub_key_id;
  CHECK_THAT(w.msg, Catch::Contains("lbcli create credential --project-name=system "
                                    "--type=rsa256pubkey --id=" +
                                    id + " dms.pem"));
  CHECK_THAT(w.msg, Catch::Contains("dmsctl get service-credentials --pem-out dms.pem"));
  CHECK(lb.f->svc->clusters().list()->empty());
}

TEST_CASE("Service: a Lightbits cluster is attached, refreshed with its new server, and detached") {
  Options o;
  o.host_nqn_file = "/nonexistent/hostnqn";  // a host without an NVMe identity
  LightbitsFixture lb(o);
  lb.import_key();
  std::string cid = attached_cluster_id(lb.attach());
  auto c = lb.f->svc->clusters().get(ClusterId(cid));
  REQUIRE(c.ok());
  CHECK(c->kind == ClusterKind::kLightbits);
  CHECK(c->name == "lb1");
  CHECK(c->access_status == ConnectionStatus::kConnected);
  CHECK_FALSE(c->subsystem_nqn.empty());
  const std::size_t servers = c->servers.size();
  CHECK(servers > 0);
  // The same cluster again: ALREADY_EXISTS.
  Workflow again = lb.attach();
  CHECK(again.state == WorkflowState::kFailed);
  CHECK_THAT(again.msg, Catch::Contains("already attached"));

  lb.emu.control("POST", "/control/servers", R"({"name":"server-new"})");
  auto rid = lb.f->svc->clusters().refresh(ClusterId(cid));
  REQUIRE(rid.ok());
  REQUIRE(lb.f->wait(*rid).state == WorkflowState::kCompleted);
  c = lb.f->svc->clusters().get(ClusterId(cid));
  REQUIRE(c->servers.size() == servers + 1);
  CHECK(std::any_of(c->servers.begin(), c->servers.end(),
                    [](const ClusterServer& s) { return s.name == "server-new"; }));
  CHECK(c->refreshed_at.has_value());

  // Volumes and snapshots go through the cluster's REST API.
  auto v = lb.f->svc->volumes().create(ClusterId(cid), {"default", "vol1", 1 << 30});
  INFO(v.status().to_string());
  REQUIRE(v.ok());
  CHECK(v->state == VolumeState::kAvailable);
  auto s = lb.f->svc->volumes().create_snapshot(ClusterId(cid), {"default", "snap1", v->id, ""});
  REQUIRE(s.ok());

  // Detach is refused while a workflow uses the cluster: a clone stalled reading the snapshot.
  lb.f->c2 = lb.f->attach("local");
  lb.emu.control("POST", "/control/stall",
                 R"({"method":"GET","pathRegex":"/snapshots/","seconds":3,"count":1})");
  ThickCloneRequest r;
  r.src = {s->id, "default", cid};
  r.dst.name = "copy";
  r.dst.cluster_id = lb.f->c2;
  r.dst.project_name = "p2";
  auto clone = lb.f->svc->clones().volume(r);
  REQUIRE(clone.ok());
  CHECK(lb.f->svc->clusters().detach(ClusterId(cid)).code() == Code::kFailedPrecondition);
  Workflow cw = lb.f->wait(*clone);
  // No NVMe host identity here: the clone fails saying how to make one, and leaves nothing
  // behind.
  CHECK(cw.state == WorkflowState::kFailed);
  CHECK_THAT(cw.msg, Catch::Contains("nvme gen-hostnqn"));
  CHECK(lb.f->svc->volumes().list({ClusterId(lb.f->c2), "p2"}, {})->volumes.empty());
  REQUIRE(lb.f->svc->clusters().detach(ClusterId(cid)).ok());
  CHECK(lb.f->svc->clusters().get(ClusterId(cid)).status().code() == Code::kNotFound);
  // Detach never touches the cluster's data.
  lb.import_key();
  auto b = LightbitsBackend::open({{lb.emu.endpoint()},
                                   "x",
                                   lb.emu.ca_file(),
                                   false,
                                   false,
                                   [&](const std::vector<std::string>& aud) {
                                     return lb.f->svc->cluster_tokens().token(aud);
                                   }});
  REQUIRE(b.ok());
  CHECK((*b)->get_volume("default", v->id).ok());
}

TEST_CASE("Service: health checks see a Lightbits cluster go away, come back and lose the key") {
  Options o;
  o.health_check_interval = 200ms;
  o.cluster_request_timeout = 2s;
  LightbitsFixture lb(o);
  lb.import_key();
  std::string cid = attached_cluster_id(lb.attach());
  auto status = [&] { return lb.f->svc->clusters().get(ClusterId(cid))->access_status; };
  CHECK(status() == ConnectionStatus::kConnected);
  lb.emu.control("POST", "/control/stop-api");
  CHECK(lb.eventually([&] { return status() == ConnectionStatus::kDisconnected; }));
  lb.emu.control("POST", "/control/start-api");
  CHECK(lb.eventually([&] { return status() == ConnectionStatus::kConnected; }));
  lb.emu.control("DELETE",
                 "/control/credentials/system:" + lb.f->svc->service_credentials().pub_key_id);
  CHECK(lb.eventually([&] { return status() == ConnectionStatus::kUnauthorized; }));
}

TEST_CASE("Service: a cluster that does not answer delays no other cluster's health check") {
  Options o;
  o.health_check_interval = 200ms;
  o.cluster_request_timeout = 20s;
  LightbitsFixture slow(o);
  dmscore::testing::LightosEmulator other_emu(100, slow.emu.ca_dir());
  slow.import_key();
  dmscore::testing::import_service_key(other_emu, *slow.f->svc);
  Workflow w1 = slow.attach();  // attached first, so probed first
  REQUIRE(w1.state == WorkflowState::kCompleted);
  std::string c2 = dmscore::testing::attach_cluster(*slow.f->svc, {other_emu.endpoint(), "lb2"});
  // The first cluster now takes 6 s to answer each probe; the second goes away.
  slow.emu.control("POST", "/control/stall",
                   R"({"method":"GET","pathRegex":"/clusterinfo","seconds":6,"count":100})");
  other_emu.control("POST", "/control/stop-api");
  auto t0 = std::chrono::steady_clock::now();
  CHECK(slow.eventually(
      [&] {
        return slow.f->svc->clusters().get(ClusterId(c2))->access_status ==
               ConnectionStatus::kDisconnected;
      },
      4s));
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
  slow.emu.control("POST", "/control/reset");
}
