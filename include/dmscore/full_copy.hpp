#pragma once
// Full copies of a consistency group (EMC ViPR's volume-group full copies) and thick clones of
// a group snapshot into a new group.
//
// A full-copy request takes one group snapshot of the group and thick clones its members
// (every member, or with `partial` the named ones) `count` times into new volumes, optionally
// on another cluster. The request is a copy set; each of its `count` images is a copy, made by
// its own workflow, so one copy failing does not stop the others. A copy's volumes stay linked
// to the group until the copy is detached:
//
//   creating ──► synchronized ◄──► synchronizing (activate, resynchronize)
//      │  createInactive            ▲    │
//      └──► inactive ── activate ───┘    └──► restoring (restore: the copy onto the sources)
//   any state without a running workflow ── detach ──► detached (ordinary volumes)
//   a failed workflow ──► error (why in `message`)
//
// While a copy is linked its volumes cannot be deleted; while a restore writes the sources,
// Service::write_volume to them is refused. A group with linked copies cannot be deleted.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"

namespace dmscore {

enum class CopyStatus {
  kCreating,
  kInactive,
  kSynchronizing,
  kSynchronized,
  kRestoring,
  kDetached,
  kError
};

// "creating", "inactive", "synchronizing", "synchronized", "restoring", "detached", "error".
std::string_view to_string(CopyStatus status);

struct FullCopyVolume {
  std::string source_volume_id;
  // The copy's volume; empty until it is made (and again after a failed creation).
  std::string volume_id;
  std::string name;
  std::uint64_t size = 0;
};

struct FullCopy {
  // 1..count.
  int index = 1;
  CopyStatus status = CopyStatus::kCreating;
  // The group snapshot the copy's content comes from; empty while inactive.
  std::string cg_snapshot_id;
  // The last workflow that worked on it.
  std::string workflow_id;
  // Why it is in error; empty otherwise.
  std::string message;
  Env::SystemTime updated_at;
  std::vector<FullCopyVolume> volumes;
};

struct CopySet {
  std::string id;
  std::string name;
  std::string consistency_group_id;
  // Where the copies' volumes are.
  std::string cluster_id;
  std::string project_name;
  int count = 1;
  bool partial = false;
  bool create_inactive = false;
  Env::SystemTime created_at;
  std::vector<FullCopy> copies;
};

struct CreateFullCopiesRequest {
  std::string consistency_group_id;
  // REQUIRES: 1-128 characters of [A-Za-z0-9._-], unique among the group's copy sets. Copy
  // volumes are named "<name>-<copy index>-<source volume name>" (cut to 256 characters).
  std::string name;
  // REQUIRES: 1..8.
  int count = 1;
  // With partial, only `volume_ids` (members of the group) are copied; without, all members
  // and `volume_ids` must be empty.
  bool partial = false;
  std::vector<std::string> volume_ids;
  // Make the volumes but copy nothing until activate.
  bool create_inactive = false;
  // Default: the group's cluster and project.
  std::string cluster_id;
  std::string project_name;
};

// What starting work on copies answers: the copy set and one workflow per copy acted on.
struct CopyWorkflow {
  int index = 1;
  std::string workflow_id;
};

struct CopySetWork {
  CopySet copy_set;
  std::vector<CopyWorkflow> workflows;
};

struct CopySetPage {
  std::vector<CopySet> copy_sets;
  std::string next_page_token;
};

enum class CopyAction { kActivate, kDetach, kResynchronize, kRestore };

// "activate", "detach", "resynchronize", "restore".
std::string_view to_string(CopyAction action);

struct CopySetActionRequest {
  CopyAction action = CopyAction::kActivate;
  // The copies acted on (1..count); empty means all of them. restore takes exactly one, and
  // may leave it empty only when the set has one copy.
  std::vector<int> copies;
  // restore overwrites the source volumes: refused unless true.
  bool confirm = false;
};

struct ThickCloneGroupRequest {
  // An available group snapshot.
  std::string src_cg_snapshot_id;
  // The new group: its name (as CreateGroupRequest), cluster and project (default: the
  // group snapshot's). Its volumes are named "<name>-<source volume name>".
  std::string dst_name;
  std::string dst_cluster_id;
  std::string dst_project_name;
  // Read every volume back and compare it with its member snapshot before the group is
  // available.
  bool verify_clone = false;
};

}  // namespace dmscore
