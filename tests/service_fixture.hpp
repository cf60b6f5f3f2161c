#pragma once
// A Service under test on a temporary data directory, with helpers to attach local clusters,
// make sources and wait for workflows; and the same with a LightOS emulator beside it.

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "dmscore/lightbits_backend.hpp"
#include "dmscore/service.hpp"
#include "lightos_emulator.hpp"
#include "service_options.hpp"
#include "test_files.hpp"
#include "test_util.hpp"

namespace dmscore::testing {

using namespace std::chrono_literals;

struct Fixture {
  TempDir tmp;
  std::unique_ptr<Service> svc;
  std::string c1, c2;

  explicit Fixture(Options o = {}) { open(o); }

  void open(Options o = {}) {
    svc.reset();
    o.progress_persist_interval = 20ms;
    o.copy_checkpoint_interval = 20ms;
    auto s = Service::open(dmscore::testing::test_options(tmp / "data", o));
    INFO(s.status().to_string());
    REQUIRE(s.ok());
    svc = std::move(s).value();
  }

  Workflow wait(const std::string& id) {
    auto w = svc->wait_workflow(id, 60s);
    INFO(w.status().to_string());
    REQUIRE(w.ok());
    return *w;
  }

  std::string attach(const std::string& name) {
    auto id = svc->attach_cluster({"file://" + (tmp / name), name});
    REQUIRE(id.ok());
    Workflow w = wait(*id);
    INFO(w.msg);
    REQUIRE(w.state == WorkflowState::kCompleted);
    auto v = boost_free_cluster_id(w.result);
    return v;
  }

  static std::string boost_free_cluster_id(const std::string& result) {
    auto p = result.find("\"clusterId\":\"");
    REQUIRE(p != std::string::npos);
    return result.substr(p + 13, 36);
  }

  void attach_two() {
    c1 = attach("c1");
    c2 = attach("c2");
  }

  // A volume on c1/p1 filled with `extents` random 1 MiB extents, and its snapshot.
  std::pair<Volume, Snapshot> source(std::uint64_t size, int extents,
                                     const std::string& name = "src") {
    auto v = svc->create_volume(c1, {"p1", name, size});
    REQUIRE(v.ok());
    dmscore::testing::make_sparse_image(v->device_path, size, extents, 7);
    auto sn = svc->create_snapshot(c1, {"p1", name + "-snap", v->id, ""});
    REQUIRE(sn.ok());
    return {*v, *sn};
  }

  ThickCloneRequest clone_req(const Snapshot& sn, const std::string& name) {
    ThickCloneRequest r;
    r.src = {sn.id, "p1", c1};
    r.dst.name = name;
    r.dst.cluster_id = c2;
    r.dst.project_name = "p2";
    return r;
  }

  std::string snapshot_path(const std::string& cluster_dir, const Snapshot& sn) {
    return tmp / (cluster_dir + "/data/" + sn.id + ".snap");
  }

  std::string result_field(const std::string& result, const std::string& key) {
    auto p = result.find("\"" + key + "\":\"");
    REQUIRE(p != std::string::npos);
    return result.substr(p + key.size() + 4, 36);
  }
};

struct LightbitsFixture {
  dmscore::testing::LightosEmulator emu;
  std::unique_ptr<Fixture> f;

  explicit LightbitsFixture(Options o = {}) {
    o.cluster_ca_file = emu.ca_file();
    o.cluster_operation_timeout = 20s;
    f = std::make_unique<Fixture>(o);
  }

  void import_key() {
    auto keys = f->svc->identity().keys();
    emu.import_credential("system:" + f->svc->service_credentials().pub_key_id, keys[0].public_pem);
  }

  Workflow attach() {
    auto id = f->svc->attach_cluster({emu.endpoint(), "lb1"});
    REQUIRE(id.ok());
    return f->wait(*id);
  }

  template <typename Pred>
  bool eventually(Pred pred, std::chrono::milliseconds within = 15s) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return pred();
  }
};

}  // namespace dmscore::testing
