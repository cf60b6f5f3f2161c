#pragma once
// One Service, Router and pair of tokens shared by every input of a fuzz run.
//
// The service lives in a fresh temporary directory removed at exit. Local clusters may only be
// attached under that directory (Options::local_cluster_roots), so inputs cannot make the
// service write anywhere else.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <tuple>

#include "dmscore/http/router.hpp"
#include "dmscore/service.hpp"

namespace dmscore::fuzz {

class Harness {
 public:
  static Harness& get() {
    static Harness* h = new Harness();  // never destroyed: libFuzzer may exit from any thread
    return *h;
  }

  http::Router& router() { return *router_; }
  Service& service() { return *service_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& viewer_token() const { return viewer_token_; }
  const std::string& root() const { return root_; }

  // Logs in again. Inputs may log a user out, which revokes every earlier token of that user.
  // The harness's own users have names no input knows (inputs do fail logins as "admin" and
  // "viewer", and five failures throttle a name for minutes, correct password or not).
  void renew_tokens() {
    admin_token_ = login(admin_name_, "fuzz-admin-password");
    viewer_token_ = login(viewer_name_, "fuzz-viewer-password");
  }

 private:
  Harness() {
    char tmpl[] = "/tmp/dmscore-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    root_ = tmpl;
    Options o;
    o.data_dir = root_ + "/data";
    o.rsa_bits = 2048;
    o.scrypt_log2_n = 10;
    o.max_running_workflows = 2;
    o.workflow_threads = 1;
    o.health_check_interval = std::chrono::milliseconds(0);
    o.progress_persist_interval = std::chrono::milliseconds(0);
    o.admin_password = "fuzz-admin-password";
    o.local_cluster_roots = {root_ + "/clusters"};
    // The fuzzer learns the root from the comparisons it sees and attaches clusters under it;
    // each holds open files, so a few are enough.
    o.max_clusters = 16;
    // Attach requests name hosts that do not exist: fail them fast.
    o.cluster_request_timeout = std::chrono::milliseconds(500);
    o.cluster_operation_timeout = std::chrono::milliseconds(1000);
    o.log = [](std::string_view) {};
    auto svc = Service::open(o);
    if (!svc.ok()) std::abort();
    service_ = std::move(svc).value();
    // Random names (the temporary directory's suffix is random) for the harness's users.
    const std::string tag = root_.substr(root_.size() - 6);
    admin_name_ = "harness-admin-" + tag;
    viewer_name_ = "harness-viewer-" + tag;
    // "viewer" exists too, for inputs to log in as.
    for (auto [name, password, role] :
         {std::tuple{std::string("viewer"), "fuzz-viewer-password", Role::kViewer},
          std::tuple{admin_name_, "fuzz-admin-password", Role::kAdmin},
          std::tuple{viewer_name_, "fuzz-viewer-password", Role::kViewer}}) {
      if (!service_->auth().create_user(name, password, role).ok()) std::abort();
    }
    http::RouterOptions ro;
    ro.log = [](std::string_view) {};
    router_ = std::make_unique<http::Router>(*service_, ro);
    renew_tokens();
    // When the run ends, libFuzzer calls exit() while workflows may still run on the engine's
    // threads, and exit() destroys statics in the reverse order of their construction. So:
    // first run the workflows inputs start (an attach of a host that refuses, a refresh), which
    // constructs the statics their code uses, then register the service's shutdown, which
    // therefore runs before any of those statics is destroyed.
    AttachClusterRequest attach;
    attach.api_endpoint = "https://127.0.0.1:1";
    // A local cluster too: inputs attach local clusters under the root.
    AttachClusterRequest local{"file://" + root_ + "/clusters/warm-up", "warm-up"};
    // One at a time: max_running_workflows is 2.
    for (const auto& start : std::initializer_list<std::function<Result<WorkflowId>()>>{
             [&] { return service_->clusters().attach(attach); },
             [&] { return service_->clusters().attach(local); },
             [&] { return service_->clusters().refresh(); }}) {
      auto id = start();
      if (!id.ok() || !service_->workflows().wait(*id, std::chrono::seconds(60)).ok()) std::abort();
    }
    static Harness* self = this;
    std::atexit([] { self->shutdown(); });
  }

  void shutdown() {
    router_.reset();
    service_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  std::string login(const std::string& user, const std::string& password) {
    auto r = service_->auth().login(user, password, "fuzz-harness");
    if (!r.ok()) {
      std::fprintf(stderr, "harness: login as %s failed: %s\n", user.c_str(),
                   r.status().to_string().c_str());
      std::abort();
    }
    return r->id_token;
  }

  std::string root_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<http::Router> router_;
  std::string admin_name_, viewer_name_;
  std::string admin_token_, viewer_token_;
};

// Checks what every answer must be, whatever the input: a real status, and for JSON answers a
// body that parses; errors carry the contract's error body.
void check_response(const http::Response& r);

}  // namespace dmscore::fuzz
