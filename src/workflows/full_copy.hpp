#pragma once
// The copy workflows of a copy set: CREATE_FULL_COPY (a new copy), ACTIVATE_FULL_COPY (an
// inactive copy's first content) and RESYNCHRONIZE_FULL_COPY (fresh content). One workflow per
// copy; the copies of one request share one group snapshot.
//
//   request {"copySetId", "copy", "cgSnapshotId"?}: the copy, and the group snapshot (recorded
//   `creating`, owned by the copy set) it copies from; none for an inactive copy's creation
//
//   CREATE_FULL_COPY:
//   create-targets ──► group-snapshot ──► copy ──────────► finalize
//     │ the copy's       │ taken once      │ volume-copy     │ volumes available; the copy
//     │ volumes, held    │ for all copies  │ pipeline,       │ synchronized (inactive when
//     │ (volume-copy     │ of the request  │ checkpointed    │ there was nothing to copy);
//     │ pipeline)        │                 │                 │ a replaced snapshot released
//     ▼ undo: the volumes this workflow made go, the copy ends in error
//
//   ACTIVATE_FULL_COPY, RESYNCHRONIZE_FULL_COPY:
//   group-snapshot ──► copy (into the existing volumes) ──► finalize
//     ▼ undo: the copy ends in error (its volumes stay: they are the operator's)
//
//   cancelled before it started: the copy ends in error in the cancel's transaction, and a
//   group snapshot no copy refers to any more is released.

#include <string>
#include <string_view>

#include "dmscore/full_copy.hpp"
#include "dmscore/group.hpp"
#include "dmscore/result.hpp"
#include "dmscore/workflow.hpp"

namespace dmscore::detail {

struct FullCopyWork {
  std::string copy_set_id;
  int copy = 0;
  // The group snapshot copied from; "" for an inactive copy's creation and for a restore.
  std::string cg_snapshot_id;

  std::string to_json() const;
  static Result<FullCopyWork> from_json(std::string_view request);
};

// What a copy workflow works on, read fresh at each step.
struct FullCopyJob {
  FullCopyWork work;
  CopySet set;
  FullCopy copy;
  std::string group_cluster;
  std::string group_project;
};

}  // namespace dmscore::detail
