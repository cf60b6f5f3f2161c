#pragma once
// Shared by the crash tests' child processes (clone_crash_child, group_crash_child).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "dmscore/service.hpp"
#include "workflow_result.hpp"

namespace dmscore::testing {

// Opens the service of a crash test's data directory: progress persisted often (a kill finds
// recent checkpoints), a cheap key, a known admin password, no log; exits 1 when it cannot.
// `o` carries what a child sets on top.
inline std::unique_ptr<Service> open_crash_service(const std::string& data, Options o = {}) {
  o.data_dir = data;
  o.progress_persist_interval = std::chrono::milliseconds(15);
  o.copy_checkpoint_interval = std::chrono::milliseconds(15);
  o.rsa_bits = 2048;
  o.admin_password = "crash-test-admin";
  o.log = [](std::string_view) {};
  auto s = Service::open(o);
  if (!s.ok()) {
    std::fprintf(stderr, "open: %s\n", s.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

// The id of the cluster the attach workflow `id` attached; exits 1, saying why, when it did not
// complete within a minute.
inline std::string attached_cluster_or_exit(Service& svc, const WorkflowId& wid) {
  const std::string& id = wid.str();
  auto w = svc.workflows().wait(wid, std::chrono::seconds(60));
  if (!w.ok() || w->state != WorkflowState::kCompleted) {
    std::fprintf(stderr, "workflow %s: %s\n", id.c_str(), w.ok() ? w->msg.c_str() : "wait failed");
    std::exit(1);
  }
  auto cid = result_string(w->result, "clusterId");
  if (!cid) {
    std::fprintf(stderr, "workflow %s: no clusterId in %s\n", id.c_str(), w->result.c_str());
    std::exit(1);
  }
  return *cid;
}

// Waits until no workflow is PENDING or RUNNING (a reopened service finishing what a kill
// interrupted). 0 when idle, 3 after two minutes.
inline int wait_idle(Service& svc) {
  for (int i = 0; i < 12000; ++i) {
    ListWorkflowsRequest r;
    r.state = WorkflowState::kRunning;
    auto running = svc.workflows().list(r);
    r.state = WorkflowState::kPending;
    auto pending = svc.workflows().list(r);
    if (running.ok() && pending.ok() && running->workflows.empty() && pending->workflows.empty())
      return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 3;
}

}  // namespace dmscore::testing
