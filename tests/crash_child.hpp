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

// Clones snapshot `snap` (project p1 of cluster `src`) into cluster `dst` again and again, each
// named copy-<tag>-<n> and waited for, printing "ACK <id>" once accepted; every `verify_every`th
// (0: none) asks verifyClone. Returns 1 when a submission is refused; otherwise runs until killed.
inline int clone_forever(Service& svc, const std::string& src, const std::string& dst,
                         const std::string& snap, const std::string& tag, int verify_every = 0) {
  for (int n = 0;; ++n) {
    ThickCloneRequest r;
    r.src = {snap, "p1", src};
    r.dst.name = "copy-" + tag + "-" + std::to_string(n);
    r.dst.cluster_id = dst;
    r.verify_clone = verify_every > 0 && n % verify_every == verify_every - 1;
    auto id = svc.clones().volume(r);
    if (!id.ok()) {
      std::fprintf(stderr, "submit: %s\n", id.status().to_string().c_str());
      return 1;
    }
    std::printf("ACK %s\n", id->str().c_str());
    std::fflush(stdout);
    (void)svc.workflows().wait(*id, std::chrono::seconds(60));
  }
}

}  // namespace dmscore::testing
