#pragma once
// What the tests share around a Service, checked with Catch: one on a temporary data directory
// (ServiceHarness, the base of the service fixtures), waiting for a workflow, attaching a
// cluster and reading the ids of a workflow's JSON result, serving over HTTP; and local clusters
// opened directly. The scenario fixtures (two clusters, a source, Lightbits) are in
// service_fixture.hpp.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/local_backend.hpp"
#include "dmscore/service.hpp"
#include "service_options.hpp"
#include "test_util.hpp"
#include "workflow_result.hpp"

namespace dmscore::testing {

// A Service on `data_dir` with test_options over `o`.
inline std::unique_ptr<Service> open_test_service(const std::string& data_dir, Options o = {}) {
  auto s = Service::open(test_options(data_dir, std::move(o)));
  INFO(s.status().to_string());
  REQUIRE(s.ok());
  return std::move(s).value();
}

// The workflow `id` as it is when it ended or `within` passed, whichever came first.
inline Workflow wait_workflow(Service& svc, const WorkflowId& id,
                              std::chrono::milliseconds within = std::chrono::seconds(60)) {
  auto w = svc.workflows().wait(id, within);
  INFO(w.status().to_string());
  REQUIRE(w.ok());
  return *w;
}

// The string `key` of a workflow's JSON result ("volumeId", "snapshotId", …); required.
inline std::string result_field(const std::string& result, std::string_view key) {
  auto value = result_string(result, key);
  INFO("no string " << key << " in the result " << result);
  REQUIRE(value.has_value());
  return *value;
}

// The cluster id an attach workflow answers; it must have completed.
inline std::string attached_cluster_id(const Workflow& w) {
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  return result_field(w.result, "clusterId");
}

// Attaches a cluster and waits for it: its id.
inline std::string attach_cluster(Service& svc, const AttachClusterRequest& r,
                                  std::chrono::milliseconds within = std::chrono::seconds(60)) {
  auto id = svc.clusters().attach(r);
  INFO(r.api_endpoint << ": " << id.status().to_string());
  REQUIRE(id.ok());
  return attached_cluster_id(wait_workflow(svc, *id, within));
}

// Every workflow of `type` (the first 1000), each REQUIREd to have completed; answers their
// results' `field` ("volumeId", ...).
inline std::vector<std::string> completed_results(Service& svc, const std::string& type,
                                                  std::string_view field) {
  ListWorkflowsRequest lr;
  lr.page_size = 1000;
  lr.type = type;
  auto page = svc.workflows().list(lr);
  REQUIRE(page.ok());
  std::vector<std::string> out;
  for (const auto& w : page->workflows) {
    INFO(w.id << " " << to_string(w.state) << " " << w.msg);
    REQUIRE(w.state == WorkflowState::kCompleted);
    out.push_back(result_field(w.result, field));
  }
  return out;
}

// An HTTP server for `svc`, started on a port of its own (server->port()).
inline std::unique_ptr<http::Server> start_server(Service& svc, http::ServerOptions so = {}) {
  so.port = 0;
  auto server = http::Server::create(svc, std::move(so));
  INFO(server.status().to_string());
  REQUIRE(server.ok());
  REQUIRE((*server)->start().ok());
  return std::move(server).value();
}

// A plain-HTTP client of `server`, on 127.0.0.1.
inline std::unique_ptr<http::Client> local_client(const http::Server& server) {
  http::ClientOptions co;
  co.endpoints = {"http://127.0.0.1:" + std::to_string(server.port())};
  auto c = http::Client::create(co);
  INFO(c.status().to_string());
  REQUIRE(c.ok());
  return std::move(c).value();
}

// A Service under test on tmp/data, and what every service test does with it. Fixtures derive
// from it and choose their options; `log` fills only with options whose log is log_sink().
struct ServiceHarness {
  TempDir tmp;
  std::mutex log_mu;
  std::vector<std::string> log;
  std::unique_ptr<Service> svc;  // after the log: the service may write to it until it is gone
  std::chrono::milliseconds wait_timeout = std::chrono::seconds(60);

  // Opens the service on tmp/data, closing the one open before.
  void open_service(Options o = {}) {
    svc.reset();
    svc = open_test_service(tmp / "data", std::move(o));
  }

  // A log function that adds each line to `log`.
  std::function<void(std::string_view)> log_sink() {
    return [this](std::string_view line) {
      std::lock_guard lock(log_mu);
      log.emplace_back(line);
    };
  }

  Workflow wait(const WorkflowId& id) { return wait_workflow(*svc, id, wait_timeout); }
  Workflow wait(const std::string& id) { return wait(WorkflowId(id)); }

  // Attaches the local cluster in directory `dir` (named `name`, or after the directory): its id.
  std::string attach_dir(const std::string& dir, const std::string& name = "") {
    return attach_cluster(*svc, {"file://" + dir, name}, wait_timeout);
  }

  // Attaches the local cluster `name` in tmp/name: its id.
  std::string attach(const std::string& name) { return attach_dir(tmp / name, name); }
};

// An HTTP answer as a test reads it.
struct HttpReply {
  int status = 0;
  std::string body;
  // The body as JSON; null when it is not JSON.
  boost::json::value json() const {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec);
    return ec ? boost::json::value() : v;
  }
  // The error message of a native ({message}) or SMS ({error_msg}) error body; else the body.
  std::string message() const {
    const boost::json::value v = json();
    if (const auto* o = v.if_object()) {
      for (const char* key : {"message", "error_msg"})
        if (const auto* m = o->if_contains(key); m && m->is_string())
          return std::string(m->as_string());
    }
    return body;
  }
};

// A user of each role with a fresh token: the admin (whose password is `admin_password`),
// "agent1" (agent) and "vera" (viewer).
struct RoleTokens {
  std::string admin, agent, viewer;
};
inline RoleTokens role_tokens(Service& svc, const std::string& admin_password) {
  REQUIRE(svc.auth().create_user("agent1", "agent-password", Role::kAgent).ok());
  REQUIRE(svc.auth().create_user("vera", "viewer-password", Role::kViewer).ok());
  RoleTokens t;
  t.admin = svc.auth().login("admin", admin_password, "127.0.0.1")->id_token;
  t.agent = svc.auth().login("agent1", "agent-password", "127.0.0.1")->id_token;
  t.viewer = svc.auth().login("vera", "viewer-password", "127.0.0.1")->id_token;
  return t;
}

// A local cluster on `dir`, opened without a service.
inline std::unique_ptr<LocalBackend> open_local_cluster(const std::string& dir,
                                                        const std::string& name = "",
                                                        LocalBackendOptions o = {}) {
  auto b = LocalBackend::open(dir, name, std::move(o));
  INFO(b.status().to_string());
  REQUIRE(b.ok());
  return std::move(b).value();
}

// Writes `data` at `off` of the existing file `path`.
inline void write_at(const std::string& path, std::uint64_t off, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) ==
          static_cast<ssize_t>(data.size()));
  ::close(fd);
}

// An executable shell script (a hook) at `path` running `body`.
inline void write_script(const std::string& path, const std::string& body) {
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  REQUIRE(::chmod(path.c_str(), 0755) == 0);
}

}  // namespace dmscore::testing
