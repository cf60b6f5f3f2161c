#pragma once
// Consistency groups and group snapshots.
//
// A consistency group names volumes of one cluster and project that must be captured at one
// instant: a database's data, log and configuration volumes. A group snapshot (cg snapshot)
// holds one snapshot per member, all showing the members as they were at the same point in
// time with respect to writes made through the service (Service::write_volume): while the
// member snapshots are taken, such writes to every member wait (the write fence). Operator
// hooks (Options::group_snapshot_pre_hook / _post_hook) run before the fence is raised and
// after it is lowered, so applications writing by other means can be quiesced too.
//
// Statuses follow OpenStack Manila's consistency groups: creating, available, error,
// deleting, error_deleting. A volume belongs to at most one group; deleting a group never
// deletes its volumes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"

namespace dmscore {

enum class GroupStatus { kCreating, kAvailable, kError, kDeleting, kErrorDeleting };

// "creating", "available", "error", "deleting", "error_deleting".
std::string_view to_string(GroupStatus status);
// INVALID_ARGUMENT naming `field` for anything else.
Result<GroupStatus> parse_group_status(std::string_view text, const std::string& field);

struct ConsistencyGroup {
  std::string id;
  std::string name;
  std::string description;
  std::string cluster_id;
  std::string project_name;
  GroupStatus status = GroupStatus::kCreating;
  // The members, in the order their snapshots are taken.
  std::vector<std::string> volume_ids;
  // Set when the group was made from a group snapshot, with the CREATE_CONSISTENCY_GROUP
  // workflow that makes its volumes and, when that failed, why.
  std::string source_cg_snapshot_id;
  std::string workflow_id;
  std::string message;
  Env::SystemTime created_at;
  Env::SystemTime updated_at;
};

struct CreateGroupRequest {
  // REQUIRES: 1-256 characters of [A-Za-z0-9._-].
  std::string name;
  // At most 1024 bytes.
  std::string description;
  std::string cluster_id;
  std::string project_name;
  // 0..64 distinct volumes, each Available and in no other group.
  std::vector<std::string> volume_ids;
  // Instead of the three fields above: an available group snapshot. The group is made in its
  // cluster and project, `creating` until a CREATE_CONSISTENCY_GROUP workflow has made one new
  // volume per member (a thin clone of the member snapshot, named "<name>-<source volume
  // name>"), then `available`; `error` with nothing left behind when that fails.
  std::string source_cg_snapshot_id;
};

struct UpdateGroupRequest {
  std::optional<std::string> name;
  std::optional<std::string> description;
  // Volumes to add (Available, in the group's cluster and project, in no group) and to remove
  // (members). A volume may not be in both lists.
  std::vector<std::string> add_volume_ids;
  std::vector<std::string> remove_volume_ids;
};

struct GroupPage {
  std::vector<ConsistencyGroup> groups;
  std::string next_page_token;
};

struct CgSnapshotMember {
  std::string volume_id;
  std::string snapshot_id;
  std::uint64_t size = 0;
};

struct CgSnapshot {
  std::string id;
  std::string name;
  std::string description;
  std::string consistency_group_id;
  std::string cluster_id;
  std::string project_name;
  GroupStatus status = GroupStatus::kCreating;
  // The workflow that takes it.
  std::string workflow_id;
  // Why it is in error; empty otherwise.
  std::string message;
  Env::SystemTime created_at;
  // Filled once it is available (and kept for one in error_deleting).
  std::vector<CgSnapshotMember> members;
};

struct CreateCgSnapshotRequest {
  std::string consistency_group_id;
  // Default: "cgsnap-" and the first 8 characters of its id. REQUIRES: 1-128 characters of
  // [A-Za-z0-9._-]. Member snapshots are named "<name>-<volume name>", cut to 256 characters.
  std::string name;
  // At most 256 bytes.
  std::string description;
};

struct CgSnapshotPage {
  std::vector<CgSnapshot> cg_snapshots;
  std::string next_page_token;
};

}  // namespace dmscore
