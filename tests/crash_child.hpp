#pragma once
// Shared by the crash tests' child processes (clone_crash_child, group_crash_child).

#include <chrono>
#include <thread>

#include "dmscore/service.hpp"

namespace dmscore::testing {

// Waits until no workflow is PENDING or RUNNING (a reopened service finishing what a kill
// interrupted). 0 when idle, 3 after two minutes.
inline int wait_idle(Service& svc) {
  for (int i = 0; i < 12000; ++i) {
    ListWorkflowsRequest r;
    r.state = WorkflowState::kRunning;
    auto running = svc.list_workflows(r);
    r.state = WorkflowState::kPending;
    auto pending = svc.list_workflows(r);
    if (running.ok() && pending.ok() && running->workflows.empty() && pending->workflows.empty())
      return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 3;
}

}  // namespace dmscore::testing
