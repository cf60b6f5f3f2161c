#pragma once
// Workflows: the durable long operations (workflow.hpp), handed out by Service::workflows().
// Safe for concurrent use.

#include <chrono>

#include "dmscore/ids.hpp"
#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"
#include "dmscore/workflow.hpp"

namespace dmscore {

class Workflows : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // NOT_FOUND for an unknown workflow.
  Result<Workflow> get(const WorkflowId& id) const;
  // INVALID_ARGUMENT naming a bad filter or page token.
  Result<WorkflowPage> list(const ListWorkflowsRequest& request) const;
  // Asks a workflow to stop; it ends CANCELLED after undoing what it made. NOT_FOUND;
  // FAILED_PRECONDITION for a finished workflow.
  Status cancel(const WorkflowId& id);
  // The workflow once it is terminal. DEADLINE_EXCEEDED when it is not after `timeout`;
  // NOT_FOUND for an unknown workflow.
  Result<Workflow> wait(const WorkflowId& id, std::chrono::milliseconds timeout) const;
};

}  // namespace dmscore
