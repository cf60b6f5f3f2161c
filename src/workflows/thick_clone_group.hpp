#pragma once
// THICK_CLONE_CONSISTENCY_GROUP: a new group whose members are full, independent copies of a
// group snapshot's member snapshots, on any attached cluster.
//
//   request {"consistencyGroupId", "cgSnapshotId", "names", "verifyClone"}: the new group,
//   recorded `creating` with the workflow in one transaction, and its volumes' names
//
//   create-destination ──► copy ──────────► verify ───────────► finalize
//     │ held volumes      │ volume-copy     │ verifyClone:      │ volumes available; the
//     │ (volume-copy      │ pipeline,       │ chunk compare     │ members recorded and the
//     │ pipeline), ids    │ checkpointed    │                   │ group available (one txn)
//     │ in step vars      │                 │                   │
//     ▼ undo: the volumes this workflow made go; the group ends in error
//
//   cancelled before it started: the group ends in error in the cancel's transaction.

#include <string>
#include <string_view>
#include <vector>

#include "dmscore/result.hpp"

namespace dmscore::detail {

struct ThickCloneGroupWork {
  std::string consistency_group_id;
  std::string cg_snapshot_id;
  // The destination volume of each member, in member order.
  std::vector<std::string> names;
  bool verify = false;

  std::string to_json() const;
  static Result<ThickCloneGroupWork> from_json(std::string_view request);
};

}  // namespace dmscore::detail
