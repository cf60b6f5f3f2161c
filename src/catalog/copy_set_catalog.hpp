#pragma once
// The full-copy tables: copy_sets, full_copies and full_copy_volumes. Only this catalog names
// them in SQL. Every function works inside the caller's transaction; status values are written
// from CopyStatus, never spelled as SQL literals. It answers the groups' questions about copies
// (GroupLinks).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/group_catalog.hpp"
#include "dmscore/full_copy.hpp"
#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail {

class CopySetCatalog final : public GroupLinks {
 public:
  // The copy set with its copies and their volumes. NOT_FOUND.
  static Result<CopySet> get(Txn& t, const std::string& id);
  // Up to `n` copy sets of group `group_id` after sequence `after`.
  static Result<CopySetPage> list(Txn& t, const std::string& group_id, std::int64_t after,
                                  std::int64_t n);
  // Records `set`, its copies (creating, being made from `sync_snapshot`, with the workflow
  // each names) and their planned volumes. ALREADY_EXISTS when the group has a set of its name.
  static Status insert(Txn& t, const CopySet& set, const std::string& sync_snapshot);

  // One copy's status and whether every one of its volumes was made; nullopt when absent.
  struct CopyState {
    CopyStatus status = CopyStatus::kError;
    bool has_volumes = false;
    std::string cg_snapshot_id;
  };
  static Result<std::optional<CopyState>> copy_state(Txn& t, const std::string& set_id, int idx);

  // The fields of one copy to change (unset ones stay); updated_at is always set.
  struct CopyChange {
    std::optional<CopyStatus> status;
    std::optional<std::string> cg_snapshot_id;
    std::optional<std::string> sync_cg_snapshot_id;
    std::optional<std::string> workflow_id;
    std::optional<std::string> message;
  };
  static Status update_copy(Txn& t, const std::string& set_id, int idx, const CopyChange& change,
                            std::int64_t now_ms);
  // The copy ends in error, no longer being made from a group snapshot; `why` becomes its
  // message unless a failing step recorded one.
  static Status fail_copy(Txn& t, const std::string& set_id, int idx, const std::string& why,
                          std::int64_t now_ms);
  // A copy workflow cancelled before it started: a copy being made or synchronized ends in
  // error, one being restored goes back to synchronized.
  static Status settle_cancelled(Txn& t, const std::string& set_id, int idx, std::int64_t now_ms);
  // The volume made for position `position` of copy `idx`; clear_volumes forgets them all.
  static Status set_volume(Txn& t, const std::string& set_id, int idx, std::size_t position,
                           const std::string& volume_id);
  static Status clear_volumes(Txn& t, const std::string& set_id, int idx);
  // How many copies refer to group snapshot `cg_snapshot_id` (as content or being made).
  static Result<std::int64_t> refs_to_snapshot(Txn& t, const std::string& cg_snapshot_id);

  // GroupLinks.
  Result<std::int64_t> linked_copies_of_group(Txn& t, const std::string& group_id) const override;
  Result<std::int64_t> linked_copies_on_cluster(Txn& t,
                                                const std::string& cluster_id) const override;
  Result<std::string> copy_holding_volume(Txn& t, const std::string& cluster_id,
                                          const std::string& volume_id) const override;
  Result<std::string> copy_using_snapshot(Txn& t, const std::string& cg_snapshot_id) const override;
};

}  // namespace dmscore::detail
