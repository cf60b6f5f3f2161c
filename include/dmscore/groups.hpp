#pragma once
// ConsistencyGroups: consistency groups and their point-in-time group snapshots (group.hpp),
// handed out by Service::groups(). Safe for concurrent use.

#include <string>

#include "dmscore/group.hpp"
#include "dmscore/ids.hpp"
#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"

namespace dmscore {

class ConsistencyGroups : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // INVALID_ARGUMENT naming the field; NOT_FOUND for an unknown cluster or volume;
  // FAILED_PRECONDITION for a volume that is not Available or already in a group;
  // ALREADY_EXISTS for a taken name. The group is available at once, or, made from a group
  // snapshot, `creating` with its workflow id until its volumes are made.
  Result<ConsistencyGroup> create(const CreateGroupRequest& request);
  Result<GroupPage> list(const PageRequest& page) const;
  // NOT_FOUND for an unknown group.
  Result<ConsistencyGroup> get(const GroupId& id) const;
  // Members change only while the group is available and no group snapshot is being taken
  // (FAILED_PRECONDITION otherwise); INVALID_ARGUMENT naming the field.
  Result<ConsistencyGroup> update(const GroupId& id, const UpdateGroupRequest& request);
  // Never deletes the volumes. FAILED_PRECONDITION unless available or error, or while the
  // group has group snapshots or copy sets.
  Status remove(const GroupId& id);
  // Admin actions, recorded in the audit log with `actor`.
  Status reset_status(const GroupId& id, GroupStatus status, const std::string& actor);
  Status force_remove(const GroupId& id, const std::string& actor);

  // Answers the group snapshot in `creating` with its workflow id (CREATE_CG_SNAPSHOT); the
  // group and every member must be available (FAILED_PRECONDITION). The workflow takes every
  // member snapshot behind the write fence, all or nothing.
  Result<CgSnapshot> create_snapshot(const CreateCgSnapshotRequest& request);
  // Every group's group snapshots, or only `group`'s when it is not empty.
  Result<CgSnapshotPage> list_snapshots(const PageRequest& page,
                                        const GroupId& group = GroupId()) const;
  // NOT_FOUND for an unknown group snapshot.
  Result<CgSnapshot> get_snapshot(const CgSnapshotId& id) const;
  // Deletes the member snapshots, then the record. FAILED_PRECONDITION unless available, error
  // or error_deleting; a member that cannot be deleted leaves it error_deleting.
  Status remove_snapshot(const CgSnapshotId& id);
};

}  // namespace dmscore
