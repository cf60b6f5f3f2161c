#pragma once
// The service tests' scenario fixtures: a Service under test with local clusters and a source to
// clone (the basics, open, wait and attach, are ServiceHarness's in test_support.hpp); and the
// same with a LightOS emulator beside it.

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "dmscore/lightbits_backend.hpp"
#include "dmscore/service.hpp"
#include "lightos_emulator.hpp"
#include "test_files.hpp"
#include "test_support.hpp"

namespace dmscore::testing {

using namespace std::chrono_literals;

// A Service with progress and copy checkpoints persisted every 20 ms, and local clusters c1 and
// c2 attached on demand.
struct Fixture : ServiceHarness {
  std::string c1, c2;

  explicit Fixture(Options o = {}) { open(o); }

  // Opens the service, closing the one open before.
  void open(Options o = {}) {
    o.progress_persist_interval = 20ms;
    o.copy_checkpoint_interval = 20ms;
    open_service(o);
  }

  void attach_two() {
    c1 = attach("c1");
    c2 = attach("c2");
  }

  // A volume on c1/p1 filled with `extents` random 1 MiB extents, and its snapshot.
  std::pair<Volume, Snapshot> source(std::uint64_t size, int extents,
                                     const std::string& name = "src") {
    auto v = svc->volumes().create(ClusterId(c1), {"p1", name, size});
    REQUIRE(v.ok());
    dmscore::testing::make_sparse_image(v->device_path, size, extents, 7);
    auto sn = svc->volumes().create_snapshot(ClusterId(c1), {"p1", name + "-snap", v->id, ""});
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
};

// Makes `emu` trust the service's key, as an operator's `lbcli create credential` does.
inline void import_service_key(LightosEmulator& emu, Service& svc) {
  emu.import_credential("system:" + svc.service_credentials().pub_key_id,
                        svc.identity().keys()[0].public_pem);
}

// A Fixture beside a LightOS emulator whose CA it trusts.
struct LightbitsFixture {
  dmscore::testing::LightosEmulator emu;
  std::unique_ptr<Fixture> f;

  explicit LightbitsFixture(Options o = {}) {
    o.cluster_ca_file = emu.ca_file();
    o.cluster_operation_timeout = 20s;
    f = std::make_unique<Fixture>(o);
  }

  void import_key() { import_service_key(emu, *f->svc); }

  Workflow attach() {
    auto id = f->svc->clusters().attach({emu.endpoint(), "lb1"});
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
