#pragma once
// The consistency-group tables: consistency_groups and cg_members (groups), cg_snapshots and
// cg_snapshot_members (group snapshots). Only this catalog names them in SQL. Every function
// works inside the caller's transaction, so a change that spans modules still commits once;
// status values are written from the enums, never spelled as SQL literals.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/backend.hpp"
#include "dmscore/group.hpp"
#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail {

// What the group tables must know of rows another module owns (full copies refer to groups,
// their volumes and their group snapshots). The copy-set catalog answers; the groups ask.
class GroupLinks {
 public:
  virtual ~GroupLinks() = default;
  // Full copies of group `group_id` that are still linked (not detached).
  virtual Result<std::int64_t> linked_copies_of_group(Txn& t,
                                                      const std::string& group_id) const = 0;
  // Linked full copies whose volumes live on `cluster_id`.
  virtual Result<std::int64_t> linked_copies_on_cluster(Txn& t,
                                                        const std::string& cluster_id) const = 0;
  // "<copy set> copy <n>" of the linked copy that holds volume `volume_id` of `cluster_id`;
  // "" when none does.
  virtual Result<std::string> copy_holding_volume(Txn& t, const std::string& cluster_id,
                                                  const std::string& volume_id) const = 0;
  // "<copy set> copy <n>" of a copy whose content is, or is being made, from group snapshot
  // `cg_snapshot_id`; "" when none.
  virtual Result<std::string> copy_using_snapshot(Txn& t,
                                                  const std::string& cg_snapshot_id) const = 0;
};

// consistency_groups and cg_members.
class GroupCatalog {
 public:
  // The group with its members in order. NOT_FOUND.
  static Result<ConsistencyGroup> get(Txn& t, const std::string& id);
  // Its status; nullopt when there is no such group.
  static Result<std::optional<GroupStatus>> status_of(Txn& t, const std::string& id);
  // Up to `n` groups after sequence `after`, with the next page's token.
  static Result<GroupPage> list(Txn& t, std::int64_t after, std::int64_t n);

  // Records `g` (id, name, description, cluster, project, status, source group snapshot,
  // workflow, times) and its members in order. ALREADY_EXISTS when the name is taken.
  static Status insert(Txn& t, const ConsistencyGroup& g);
  // Appends volumes after the last member. ALREADY_EXISTS when one is in a group.
  static Status append_members(Txn& t, const std::string& group_id, const std::string& cluster_id,
                               const std::vector<std::string>& volume_ids);
  static Status remove_members(Txn& t, const std::string& group_id,
                               const std::vector<std::string>& volume_ids);
  // New name and description. ALREADY_EXISTS when the name is taken.
  static Status rename(Txn& t, const std::string& id, const std::string& name,
                       const std::string& description, std::int64_t now_ms);
  static Status set_workflow(Txn& t, const std::string& id, const std::string& workflow_id);
  // The status; `message` replaces the message when given.
  static Status set_status(Txn& t, const std::string& id, GroupStatus status, std::int64_t now_ms,
                           const std::optional<std::string>& message = {});
  // A group being made (creating) ends in error with `why` (with keep_message, a message an
  // earlier failing step recorded stays). No change for a group in any other status.
  static Status fail_creation(Txn& t, const std::string& id, const std::string& why,
                              std::int64_t now_ms, bool keep_message = false);
  // The message of a group being made, for the step that failed.
  static Status set_creation_message(Txn& t, const std::string& id, const std::string& message);
  // Its record and membership; its volumes and group snapshots stay.
  static Status remove(Txn& t, const std::string& id);

  // The group volume `volume_id` of `cluster_id` belongs to; "" when none.
  static Result<std::string> group_of_volume(Txn& t, const std::string& cluster_id,
                                             const std::string& volume_id);
  static Result<std::int64_t> count_on_cluster(Txn& t, const std::string& cluster_id);
  // Recovery: groups being made from a group snapshot whose workflow was never recorded end
  // in error.
  static Status fail_unrecorded(Txn& t);
};

// cg_snapshots and cg_snapshot_members.
class CgSnapshotCatalog {
 public:
  // The group snapshot with its members in order. NOT_FOUND.
  static Result<CgSnapshot> get(Txn& t, const std::string& id);
  static Result<std::optional<GroupStatus>> status_of(Txn& t, const std::string& id);
  // Up to `n` after sequence `after`, of one group when `group_id` is not empty.
  static Result<CgSnapshotPage> list(Txn& t, std::int64_t after, std::int64_t n,
                                     const std::string& group_id);

  // Records `c` (creating, no members). `copy_set_id`: the copy set it is taken for, which
  // deletes it when no copy refers to it. ALREADY_EXISTS when the group has one of that name.
  static Status insert(Txn& t, const CgSnapshot& c, const std::string& copy_set_id = "");
  static Status set_workflow(Txn& t, const std::string& id, const std::string& workflow_id);
  // The status and message; with `only_from`, only a group snapshot in that status changes.
  static Status set_status(Txn& t, const std::string& id, GroupStatus status,
                           const std::string& message,
                           std::optional<GroupStatus> only_from = std::nullopt);
  // Records the member snapshots taken, in order, and makes it available.
  static Status complete(Txn& t, const std::string& id, const std::vector<Snapshot>& taken);
  static Status remove(Txn& t, const std::string& id);

  // The id of a group snapshot of `group_id` being taken; "" when none.
  static Result<std::string> creating_of_group(Txn& t, const std::string& group_id);
  static Result<std::int64_t> count_of_group(Txn& t, const std::string& group_id);
  static Result<std::int64_t> count_on_cluster(Txn& t, const std::string& cluster_id);
  // The group snapshot whose member snapshot `snapshot_id` is; "" when none.
  static Result<std::string> holding_snapshot(Txn& t, const std::string& snapshot_id);
  // The copy set group snapshot `id` was taken for; "" when none (or no such row).
  static Result<std::string> copy_set_of(Txn& t, const std::string& id);
  // Every group snapshot taken for a copy set.
  static Result<std::vector<std::string>> taken_for_copy_sets(Txn& t);
  // Recovery: ones recorded without their workflow end in error, interrupted deletes in
  // error_deleting.
  static Status recover(Txn& t);
};

}  // namespace dmscore::detail
