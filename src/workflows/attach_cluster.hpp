#pragma once
// ATTACH_CLUSTER: a cluster joins the registry.
//
//   request: AttachClusterRequest as JSON {"apiEndpoint", "name"} (endpoint normalised by
//   Service::attach_cluster: file:///dir, or https://host:port)
//
//   attach ───────────────────────────────────────────────────────────────► attached
//     local:     refuse an endpoint already attached (or one that overlaps another cluster or
//                the data directory) ─► open the directory (made a cluster when new) ─►
//                record it (NeedsRepair when its metadata says so) ─► driver behind its gate
//     Lightbits: ask the cluster who it is with the service's token (a refusal explains how to
//                import the key) ─► record it ─► driver over every endpoint it reported
//   A resumed run finds the cluster it recorded before the crash (step var clusterId) and
//   succeeds. Nothing to undo: a failed attach recorded nothing.

#include "dmscore/cluster.hpp"  // AttachClusterRequest
