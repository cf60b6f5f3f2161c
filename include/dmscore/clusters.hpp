#pragma once
// Clusters: the registry of attached storage clusters, handed out by Service::clusters().
// Data on a cluster is never touched by attach, refresh or detach. Safe for concurrent use.

#include <optional>
#include <vector>

#include "dmscore/cluster.hpp"
#include "dmscore/ids.hpp"
#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"

namespace dmscore {

class Clusters : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // Starts an ATTACH_CLUSTER workflow; its result is {"clusterId": "<uuid>"}.
  // INVALID_ARGUMENT naming apiEndpoint or name; PERMISSION_DENIED for a local directory
  // outside Options::local_cluster_roots; FAILED_PRECONDITION for a directory that overlaps
  // the data directory or another cluster, or when Options::max_clusters are attached;
  // RESOURCE_EXHAUSTED at maxRunningWorkflows. The workflow fails ALREADY_EXISTS for a cluster
  // attached already.
  Result<WorkflowId> attach(const AttachClusterRequest& request);
  // Every attached cluster, in attach order.
  Result<std::vector<Cluster>> list() const;
  // NOT_FOUND for a cluster that is not attached.
  Result<Cluster> get(const ClusterId& id) const;
  // Starts a REFRESH_CLUSTERS workflow for one cluster, or for all without `id`.
  // NOT_FOUND (naming clusterId) for an unknown cluster.
  Result<WorkflowId> refresh(const std::optional<ClusterId>& id = {});
  // Forgets the cluster; its data stays. NOT_FOUND; FAILED_PRECONDITION while a non-terminal
  // workflow, a consistency group or a copy set uses it.
  Status detach(const ClusterId& id);
  // Starts a REPAIR_CLUSTER workflow that rebuilds a local cluster's metadata from its data
  // files (LocalBackend::repair); its result is {"volumes", "snapshots", "setAside": [...],
  // "missing": [...], "previousMetadata"}. NOT_FOUND; FAILED_PRECONDITION for a Lightbits
  // cluster or one that is not NeedsRepair.
  Result<WorkflowId> repair(const ClusterId& id);
};

}  // namespace dmscore
