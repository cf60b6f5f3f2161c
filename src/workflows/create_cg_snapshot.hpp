#pragma once
// CREATE_CG_SNAPSHOT: a point-in-time snapshot of every member of a consistency group.
//
//   request {"cgSnapshotId"}: the group snapshot, recorded `creating` by its submitter
//
//   snapshot ─────────────────────────────────────────────────────────────► available
//     │ remove tagged leftovers of an earlier try (a resumed run starts over)
//     │ pre hook ─► raise the write fence ─► one snapshot per member (tagged with the id)
//     │ ─► lower the fence ─► post hook ─► members recorded, status available (one txn)
//     ▼ undo (failure, cancel)
//   no member snapshot stays; the group snapshot ends in error
//
//   cancelled before it started: the group snapshot ends in error in the cancel's transaction.
// Full copies take their group snapshot with the same code (Groups::take_cg_snapshot).

#include <string>
#include <string_view>

#include "dmscore/result.hpp"

namespace dmscore::detail {

struct CreateCgSnapshotWork {
  std::string cg_snapshot_id;

  std::string to_json() const;
  static Result<CreateCgSnapshotWork> from_json(std::string_view request);
};

}  // namespace dmscore::detail
