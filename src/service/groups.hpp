#pragma once
// The service's consistency groups, group snapshots and write path (see group.hpp). The
// Service owns one and forwards to it; it reaches the rest of the service only through Deps.

#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "catalog/group_catalog.hpp"
#include "dmscore/auth.hpp"
#include "dmscore/backend.hpp"
#include "dmscore/group.hpp"
#include "dmscore/options.hpp"
#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"
#include "service/write_fence.hpp"

namespace dmscore::detail {

class Groups {
 public:
  struct Deps {
    Store* store = nullptr;
    WorkflowEngine* engine = nullptr;
    Auth* auth = nullptr;
    std::shared_ptr<Env> env;
    const Options* options = nullptr;
    // Held shared while a driver is looked up, and over checks that deletes (which hold it
    // exclusively) must not interleave with.
    std::shared_mutex* registry_mu = nullptr;
    // The driver of an attached cluster; NOT_FOUND naming `field` when it is not attached.
    // Called with registry_mu held.
    std::function<Result<std::shared_ptr<Backend>>(const std::string& cluster_id,
                                                   const std::string& field)>
        backend;
    // Answers what the group tables must know of full copies' rows.
    const GroupLinks* links = nullptr;
  };

  explicit Groups(Deps deps);
  ~Groups();

  // Before the engine starts: CREATE_CG_SNAPSHOT and CREATE_CONSISTENCY_GROUP. Fails when the
  // engine refuses a type.
  Status register_workflows();
  // After the engine started: group snapshots whose workflow was never recorded end in error.
  Status recover();

  Result<ConsistencyGroup> create(const CreateGroupRequest& request);
  Result<GroupPage> list(const PageRequest& page) const;
  Result<ConsistencyGroup> get(const std::string& id) const;
  Result<ConsistencyGroup> update(const std::string& id, const UpdateGroupRequest& request);
  Status remove(const std::string& id);
  Status reset_status(const std::string& id, GroupStatus status, const std::string& actor);
  Status force_delete(const std::string& id, const std::string& actor);

  Result<CgSnapshot> create_cg_snapshot(const CreateCgSnapshotRequest& request);
  Result<CgSnapshotPage> list_cg_snapshots(const PageRequest& page,
                                           const std::string& group_id) const;
  Result<CgSnapshot> get_cg_snapshot(const std::string& id) const;
  Status delete_cg_snapshot(const std::string& id);

  // FAILED_PRECONDITION when the volume is in a group, the snapshot in a group snapshot, or
  // the cluster holds groups or group snapshots.
  Status check_volume_free(const std::string& cluster_id, const std::string& volume_id) const;
  Status check_snapshot_free(const std::string& snapshot_id) const;
  Status check_cluster_free(const std::string& cluster_id) const;

  // For full copies (full_copies.cpp).
  // The group `id` when a group snapshot of it can be taken now (as create_cg_snapshot checks).
  Result<ConsistencyGroup> snapshot_ready_group(const std::string& id,
                                                const std::string& field) const;
  // Takes group snapshot `id`, recorded `creating`, as CREATE_CG_SNAPSHOT does: OK when it is
  // available already; FAILED_PRECONDITION when it ended in error.
  Status take_cg_snapshot(StepContext& ctx, const std::string& id);
  // Deletes a group snapshot whatever its status: member snapshots, tagged leftovers, record.
  // OK when it does not exist.
  Status drop_cg_snapshot(const std::string& id);
  // While a restore writes `volume_ids` (members of `group_id`), write_volume to them and new
  // group snapshots of the group are refused. begin_restore drains writes in flight.
  Status begin_restore(const std::string& group_id, const std::string& cluster_id,
                       const std::vector<std::string>& volume_ids);
  void end_restore(const std::string& group_id, const std::string& cluster_id,
                   const std::vector<std::string>& volume_ids);

  Status write_volume(const std::string& cluster_id, const std::string& project,
                      const std::string& volume_id, std::uint64_t offset, std::string_view data,
                      bool durable);

  // The state this module's files share (service/groups_impl.hpp).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore::detail
