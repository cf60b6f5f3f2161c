#pragma once
// Thick clones: a full, independent copy of a snapshot's data into a new volume or a new
// snapshot, on the same or another cluster and project. The copy shares no blocks with its
// source.
//
// A thick clone runs as a workflow (THICK_CLONE_VOLUME or THICK_CLONE_SNAPSHOT):
//
//   resolve-source ─► create-destination (Creating) ─► copy ─► verify (if asked) ─► finalize
//        │                    │ undo: delete it          │ checkpoint: offset reached
//        ▼                    ▼                          ▼
//   NOT_FOUND …          ALREADY_EXISTS …          resumes after a crash from the last
//                                                  checkpoint (fsync'd before it is recorded)
//
// finalize makes a volume Available; for a snapshot clone the copy went into a hidden volume
// (`dms-tmp-<workflow id>`), which is snapshotted and then deleted. Cancel or failure removes
// the partial destination and any hidden volume. The source is only ever read.

#include <cstdint>
#include <optional>
#include <string>

#include "dmscore/result.hpp"

namespace dmscore {

struct ThickCloneSource {
  std::string snap_id;       // REQUIRES: a UUID
  std::string project_name;  // REQUIRES: a valid name
  std::string cluster_id;    // REQUIRES: an attached cluster's id
};

struct ThickCloneDestination {
  std::string name;          // REQUIRES: a valid name, free in the destination project
  std::string project_name;  // Default: the source's
  std::string cluster_id;    // REQUIRES: an attached cluster's id
  // Bytes; at least the source's size. Default: the source's size.
  std::optional<std::uint64_t> size;
  // Default: inherited from the source. REQUIRES: 1..3.
  std::optional<int> replica;
  // Default: inherited from the source. REQUIRES: 512 or 4096.
  std::optional<int> sector_size;
  // Default: inherited from the source.
  std::optional<bool> compression;
  std::string qos_policy_name;
  // Snapshot clones only; at most 256 bytes.
  std::string description;
};

struct ThickCloneRequest {
  ThickCloneSource src;
  ThickCloneDestination dst;
  // Read the destination back and compare it with the source before completing.
  bool verify_clone = false;
};

// Checks fields that need no cluster: INVALID_ARGUMENT naming the field path ("dst.name: ...").
Status validate(const ThickCloneRequest& request, bool snapshot_clone);

}  // namespace dmscore
