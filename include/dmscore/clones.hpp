#pragma once
// Clones: thick clones (full, independent copies) of snapshots and group snapshots, handed out
// by Service::clones(). Each request is validated up front (INVALID_ARGUMENT naming the field,
// NOT_FOUND for an unknown cluster or snapshot, ALREADY_EXISTS for a taken name), then admitted
// (RESOURCE_EXHAUSTED at maxRunningWorkflows, nothing recorded) and durably recorded before
// it returns. Safe for concurrent use.

#include "dmscore/clone.hpp"
#include "dmscore/full_copy.hpp"
#include "dmscore/group.hpp"
#include "dmscore/ids.hpp"
#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"

namespace dmscore {

class Clones : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // A THICK_CLONE_VOLUME workflow: the snapshot's data into a new volume (clone.hpp).
  Result<WorkflowId> volume(const ThickCloneRequest& request);
  // A THICK_CLONE_SNAPSHOT workflow: the same, ending as a snapshot on the destination.
  Result<WorkflowId> snapshot(const ThickCloneRequest& request);
  // A new consistency group, `creating` with its THICK_CLONE_CONSISTENCY_GROUP workflow id,
  // whose volumes are thick clones of the group snapshot's members; `available` when they are
  // made. FAILED_PRECONDITION unless the group snapshot is available.
  Result<ConsistencyGroup> group(const ThickCloneGroupRequest& request);
};

}  // namespace dmscore
