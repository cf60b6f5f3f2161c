#pragma once
// The registry's maintenance workflows.
//
// REFRESH_CLUSTERS: every attached cluster (or one) asked again who it is.
//
//   request {"clusterId"?}
//
//   refresh ─────────────────────────────────────────────────────────────► {clusters, connected}
//     for each cluster, in attach order: probe (opening a driver that was not open) ─►
//     record what it reported and its status (NeedsRepair when its driver says so)
//   Cancel stops between clusters. Nothing to undo: each record is whole.
//
// REPAIR_CLUSTER: a local cluster that needs repair rebuilt from its sidecars.
//
//   request {"clusterId"}
//
//   repair ──────────────────────────────────────────────────────────────► the repair report
//     LocalBackend::repair (unexplained files kept aside in lost+found) ─► Connected
//   A resumed run whose repair finished before the restart reports repairedBeforeRestart.

#include <string>
#include <string_view>

#include "dmscore/result.hpp"

namespace dmscore::detail {

struct ClusterWork {
  // The cluster; "" for every cluster (REFRESH_CLUSTERS only).
  std::string cluster_id;

  std::string to_json() const;
  static Result<ClusterWork> from_json(std::string_view request);
};

}  // namespace dmscore::detail
