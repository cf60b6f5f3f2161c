// The service never destroys what it cannot prove it made: a local cluster whose metadata was
// lost waits for an operator's repair, and clusters never overlap each other or the service's
// own data directory.

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "dmscore/service.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::read_file;
using dmscore::testing::remove_cluster_db;
namespace fs = std::filesystem;

namespace {

// The service's log lines are kept in `log`.
struct Fixture : dmscore::testing::ServiceHarness {
  Fixture() { open(); }

  void open() {
    Options o;
    o.log = log_sink();
    open_service(o);
  }

  // Attach must be refused before anything is recorded or created.
  Status attach_refused(const std::string& dir) {
    auto id = svc->clusters().attach({"file://" + dir, ""});
    return id.status();
  }
};

}  // namespace

TEST_CASE("Data safety: a local cluster that lost its metadata waits for REPAIR_CLUSTER") {
  Fixture f;
  const std::string dir = f.tmp / "c1";
  const std::string cid = f.attach_dir(dir);
  auto v = f.svc->volumes().create(ClusterId(cid), {"p1", "precious", 1 << 20});
  REQUIRE(v.ok());
  REQUIRE(f.svc->volumes()
              .write({ClusterId(cid), "p1", v->id}, 8192, "the only copy of this", true)
              .ok());
  auto sn = f.svc->volumes().create_snapshot(ClusterId(cid), {"p1", "precious-snap", v->id, ""});
  REQUIRE(sn.ok());
  const std::string vol_bytes = read_file(v->device_path);
  f.svc.reset();
  remove_cluster_db(dir);

  f.open();
  auto c = f.svc->clusters().get(ClusterId(cid));
  REQUIRE(c.ok());
  CHECK(c->access_status == ConnectionStatus::kNeedsRepair);
  CHECK(c->data_status == ConnectionStatus::kNeedsRepair);
  CHECK_THAT(c->status_message, Catch::Contains("cluster.db is missing"));
  CHECK(read_file(v->device_path) == vol_bytes);  // the file survived the restart
  auto listed = f.svc->volumes().list({ClusterId(cid), "p1"}, {});
  CHECK(listed.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(listed.status().message(), Catch::Contains("dmsctl repair cluster " + cid));

  auto id = f.svc->clusters().repair(ClusterId(cid));
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  CHECK_THAT(w.result, Catch::Contains("\"volumes\":1") && Catch::Contains("\"snapshots\":1"));
  c = f.svc->clusters().get(ClusterId(cid));
  CHECK(c->access_status == ConnectionStatus::kConnected);
  CHECK(c->status_message.empty());
  auto back = f.svc->volumes().get({ClusterId(cid), "p1", v->id});
  REQUIRE(back.ok());
  CHECK(back->name == "precious");
  CHECK(read_file(back->device_path) == vol_bytes);
  CHECK(f.svc->volumes().get_snapshot({ClusterId(cid), "p1", sn->id}).ok());
  // Nothing more to repair now.
  CHECK(f.svc->clusters().repair(ClusterId(cid)).status().code() == Code::kFailedPrecondition);
  CHECK(
      f.svc->clusters().repair(ClusterId("00000000-0000-4000-8000-000000000000")).status().code() ==
      Code::kNotFound);
}

TEST_CASE("Data safety: a cluster.db restored from an older copy reports what is missing") {
  Fixture f;
  const std::string dir = f.tmp / "c1";
  const std::string cid = f.attach_dir(dir);
  auto old = f.svc->volumes().create(ClusterId(cid), {"p1", "old", 1 << 20});
  REQUIRE(old.ok());
  f.svc.reset();
  fs::copy_file(dir + "/cluster.db", f.tmp / "backup.db");
  f.open();
  REQUIRE(f.svc->volumes().remove({ClusterId(cid), "p1", old->id}).ok());
  auto fresh = f.svc->volumes().create(ClusterId(cid), {"p1", "fresh", 1 << 20});
  REQUIRE(fresh.ok());
  f.svc.reset();
  remove_cluster_db(dir);
  fs::copy_file(f.tmp / "backup.db", dir + "/cluster.db");

  f.open();
  CHECK(f.svc->clusters().get(ClusterId(cid))->access_status == ConnectionStatus::kNeedsRepair);
  CHECK(fs::exists(fresh->device_path));
  Workflow w = f.wait(*f.svc->clusters().repair(ClusterId(cid)));
  REQUIRE(w.state == WorkflowState::kCompleted);
  CHECK_THAT(w.result, Catch::Contains(old->id));  // named in "missing"
  CHECK_THAT(w.result, Catch::Contains("lost+found/cluster.db."));
  CHECK(f.svc->volumes().get({ClusterId(cid), "p1", fresh->id}).ok());
}

TEST_CASE("Data safety: files a cluster cannot explain are set aside and counted") {
  Fixture f;
  const std::string dir = f.tmp / "c1";
  const std::string cid = f.attach_dir(dir);
  f.svc.reset();
  dmscore::testing::write_file(dir + "/data/stray.img", "not ours");
  f.open();
  auto stats = f.svc->stats();
  REQUIRE(stats.ok());
  REQUIRE(stats->set_aside_files.size() == 1);
  CHECK(stats->set_aside_files[0] == std::make_pair(cid, std::uint64_t{1}));
  CHECK(read_file(dir + "/lost+found/stray.img") == "not ours");
  bool logged = false;
  for (const auto& l : f.log) logged |= l.find("stray.img") != std::string::npos;
  CHECK(logged);
}

TEST_CASE("Data safety: clusters never overlap each other or the service's data directory") {
  Fixture f;
  const std::string a = f.tmp / "site/a";
  const std::string cid = f.attach_dir(a);
  struct Case {
    std::string dir;
    std::string names;
  };
  fs::create_symlink(a + "/data", f.tmp / "link-into-a");
  for (const Case& c :
       {Case{a + "/data/inner", cid}, Case{a + "/nested/deeper", cid}, Case{f.tmp / "site", cid},
        Case{f.tmp / "link-into-a/x", cid}, Case{f.tmp / "data", "data directory"},
        Case{f.tmp / "data/clusters", "data directory"}, Case{f.tmp.path(), "data directory"}}) {
    INFO(c.dir);
    Status s = f.attach_refused(c.dir);
    CHECK(s.code() == Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::StartsWith("apiEndpoint:") && Catch::Contains(c.names));
  }
  CHECK_FALSE(fs::exists(a + "/data/inner"));
  CHECK_FALSE(fs::exists(a + "/nested"));
  CHECK(f.svc->clusters().list()->size() == 1);
  // A sibling is fine.
  f.attach_dir(f.tmp / "site/b");
  // Nothing of the refusals shows after a restart either.
  f.svc.reset();
  f.open();
  CHECK(f.svc->clusters().get(ClusterId(cid))->access_status == ConnectionStatus::kConnected);
  CHECK(f.svc->clusters().list()->size() == 2);
}
