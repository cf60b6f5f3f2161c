#pragma once
// The state and helpers of Groups shared by its requests (groups.cpp, group_snapshots.cpp) and
// its workflows (workflows/create_cg_snapshot.cpp, workflows/create_group_from_snapshot.cpp).
// Rows are read and written only through the group catalog.

#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/codec.hpp"
#include "base/util.hpp"
#include "catalog/group_catalog.hpp"
#include "catalog/rows.hpp"
#include "dmscore/service.hpp"
#include "service/groups.hpp"

namespace dmscore::detail {

inline constexpr std::size_t kMaxGroupMembers = 64;

// The member snapshot of `volume` in the group snapshot named `name`.
std::string member_snapshot_name(const std::string& name, const Volume& volume);
// Member snapshots carry this description, which tells a leftover of an interrupted try from
// a snapshot someone else made with the same name.
std::string member_tag(const std::string& cg_snapshot_id);
// The write fence's key of a volume.
std::string fence_key(const std::string& cluster_id, const std::string& volume_id);

struct Groups::Impl {
  Deps deps;
  WriteFence fence;
  // Serialises changes of group membership and status with the checks that precede them.
  mutable std::mutex mu;

  // Volumes a restore is writing ("<cluster>/<volume>") and their groups, with how many
  // restores hold each.
  mutable std::mutex restore_mu;
  std::map<std::string, int> restoring_volumes;
  std::map<std::string, int> restoring_groups;

  explicit Impl(Deps d) : deps(std::move(d)) {}

  std::int64_t now_ms() const { return to_millis(deps.env->now()); }

  Result<std::shared_ptr<Backend>> backend_locked(const std::string& cluster_id) const {
    std::shared_lock lock(*deps.registry_mu);
    return deps.backend(cluster_id, "clusterId");
  }

  // What `body(Txn&)` answers, read in one read transaction.
  template <class T, class F>
  Result<T> read(F&& body) const {
    return rows::read<T>(*deps.store, std::forward<F>(body));
  }

  Result<ConsistencyGroup> read_group(const std::string& id) const {
    return read<ConsistencyGroup>([&](Txn& t) { return GroupCatalog::get(t, id); });
  }
  Result<CgSnapshot> read_cg_snapshot(const std::string& id) const {
    return read<CgSnapshot>([&](Txn& t) { return CgSnapshotCatalog::get(t, id); });
  }

  bool restoring_group(const std::string& group_id) const {
    std::lock_guard lock(restore_mu);
    return restoring_groups.count(group_id) > 0;
  }
  bool restoring_volume(const std::string& key) const {
    std::lock_guard lock(restore_mu);
    return restoring_volumes.count(key) > 0;
  }

  // Each volume exists in the cluster and project and is Available.
  Result<std::vector<Volume>> check_volumes(Backend& b, const std::string& project,
                                            const std::vector<std::string>& ids,
                                            const std::string& field) const;
  // Volumes of `ids` already in a group: FAILED_PRECONDITION naming the first.
  Status check_not_grouped(Txn& t, const std::string& cluster_id,
                           const std::vector<std::string>& ids, const std::string& field) const;
  // The group `id` when a group snapshot of it can be taken now: available, with members that
  // are all Available, not being restored. Called with registry_mu (shared) and mu held.
  Result<ConsistencyGroup> snapshot_ready(const std::string& id, const std::string& field) const;

  // Starts workflow `type` for an object recorded in `creating` (its row is the workflow's
  // subject) and records its id there with `record`. When the workflow cannot be recorded (429)
  // `drop` removes the row, so nothing is left.
  Result<std::string> start_workflow(const char* type, std::string request,
                                     std::vector<std::string> resources,
                                     const std::function<Status(Txn&)>& drop,
                                     const std::function<Status(Txn&, const std::string&)>& record);

  // Deletes the member snapshots an earlier try of group snapshot `id` may have left under
  // `names` (only those tagged with its id).
  Status remove_leftovers(Backend& b, const std::string& project,
                          const std::vector<std::string>& names, const std::string& id);
  // remove_leftovers under the names group snapshot `c` gives the group's current members (OK
  // when the group is gone).
  Status remove_member_leftovers(Backend& b, const CgSnapshot& c);

  // ---- workflows (workflows/create_cg_snapshot.cpp, workflows/create_group_from_snapshot.cpp)
  // Takes group snapshot `id` (recorded `creating`): what CREATE_CG_SNAPSHOT's step does.
  Status take(StepContext& ctx, const std::string& id);
  Result<ConsistencyGroup> create_from_snapshot(const CreateGroupRequest& req);
};

// The workflow types of groups, registered on the service's engine.
Status register_create_cg_snapshot(WorkflowEngine& engine, Groups::Impl& groups);
Status register_create_group_from_snapshot(WorkflowEngine& engine, Groups::Impl& groups);

}  // namespace dmscore::detail
