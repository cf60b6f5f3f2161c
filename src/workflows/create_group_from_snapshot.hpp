#pragma once
// CREATE_CONSISTENCY_GROUP: a new group made from a group snapshot, its members thin clones
// of the member snapshots (POST consistency group with sourceCgSnapshotId).
//
//   request {"consistencyGroupId"}: the group, recorded `creating` by its submitter
//
//   clone ────────────────────────────────────────────────────────────────► available
//     │ one volume per member snapshot, "<group>-<source volume>", owner-labelled; a volume
//     │ of the planned name that clones the planned snapshot and carries this workflow's
//     │ label is adopted (a resumed run) ─► members recorded, status available (one txn)
//     ▼ undo (failure, cancel)
//   the volumes this workflow made go; the group ends in error (kept for the operator)
//
//   cancelled before it started: the group ends in error in the cancel's transaction.

#include <string>
#include <string_view>

#include "dmscore/result.hpp"

namespace dmscore::detail {

struct CreateGroupFromSnapshotWork {
  std::string consistency_group_id;

  std::string to_json() const;
  static Result<CreateGroupFromSnapshotWork> from_json(std::string_view request);
};

}  // namespace dmscore::detail
