#pragma once
// One Service, Router and pair of tokens shared by every input of a fuzz run.
//
// The service lives in a fresh temporary directory removed at exit. Local clusters may only be
// attached under that directory (Options::local_cluster_roots), so inputs cannot make the
// service write anywhere else.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

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
  void renew_tokens() {
    admin_token_ = login("admin", "fuzz-admin-password");
    viewer_token_ = login("viewer", "fuzz-viewer-password");
  }

 private:
  Harness() {
    char tmpl[] = "/tmp/dmscore-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    root_ = tmpl;
    static std::string root_copy = root_;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(root_copy, ec);
    });
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
    o.log = [](std::string_view) {};
    auto svc = Service::open(o);
    if (!svc.ok()) std::abort();
    service_ = std::move(svc).value();
    if (!service_->auth().create_user("viewer", "fuzz-viewer-password", Role::kViewer).ok())
      std::abort();
    http::RouterOptions ro;
    ro.log = [](std::string_view) {};
    router_ = std::make_unique<http::Router>(*service_, ro);
    renew_tokens();
  }

  std::string login(const std::string& user, const std::string& password) {
    auto r = service_->auth().login(user, password, "fuzz-harness");
    if (!r.ok()) std::abort();
    return r->id_token;
  }

  std::string root_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<http::Router> router_;
  std::string admin_token_, viewer_token_;
};

// Checks what every answer must be, whatever the input: a real status, and for JSON answers a
// body that parses; errors carry the contract's error body.
void check_response(const http::Response& r);

}  // namespace dmscore::fuzz
