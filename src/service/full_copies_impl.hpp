#pragma once
// The state and helpers of FullCopies shared by its requests (full_copies.cpp,
// copy_set_actions.cpp) and its workflows (workflows/full_copy.cpp,
// workflows/restore_full_copy.cpp, workflows/thick_clone_group.cpp). Copy-set rows are read
// and written only through CopySetCatalog, group rows only through the group catalog.

#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/codec.hpp"
#include "base/util.hpp"
#include "catalog/copy_set_catalog.hpp"
#include "catalog/group_catalog.hpp"
#include "dmscore/service.hpp"
#include "engine/engine_txn.hpp"
#include "service/full_copies.hpp"
#include "workflows/full_copy.hpp"
#include "workflows/volume_copy.hpp"

namespace dmscore::detail {

inline constexpr std::size_t kMaxCopySetName = 128;

// "<prefix>-<source volume name>", or "<prefix>-<position>" when that is too long.
std::string target_name(const std::string& prefix, const std::string& volume_name,
                        std::size_t position);

struct FullCopies::Impl {
  Deps deps;
  VolumeCopy pipeline;
  // One group snapshot is taken at a time on behalf of copies, so the copies of one request
  // that share it do not take it twice.
  std::mutex take_mu;

  Impl(Deps d, VolumeCopy p) : deps(std::move(d)), pipeline(std::move(p)) {}

  std::int64_t now_ms() const { return to_millis(deps.env->now()); }

  Result<std::shared_ptr<Backend>> backend_locked(const std::string& cluster_id) const {
    std::shared_lock lock(*deps.registry_mu);
    return deps.backend(cluster_id, "clusterId");
  }

  Result<CopySet> read_set(const std::string& id) const;
  // Changes copy `idx` of set `set_id` in its own transaction.
  Status change_copy(const std::string& set_id, int idx, const CopySetCatalog::CopyChange& c);

  // Deletes group snapshot `id` when it was taken for a copy set and no copy refers to it.
  void release_snapshot(const std::string& id);
  // Group snapshots taken for copies that no copy refers to any more (their last copy was
  // cancelled before it ran, or a crash came between a copy's end and the release) go.
  Status release_orphans();

  // A group snapshot row taken for copy set `set` (creating), for the copies' workflows to take.
  Status insert_snapshot(Txn& t, const std::string& snap_id, const ConsistencyGroup& g,
                         const CopySet& set, const std::string& workflow_id);
};

// Shared by the copy workflows (workflows/full_copy.cpp).
// The copy a workflow's request names, read fresh.
Result<FullCopyJob> load_full_copy_job(const FullCopies::Impl& copies, const std::string& request);
// `s`, after recording a failure as the copy's message (its status goes to error in
// compensation).
Status copy_failing(FullCopies::Impl& copies, const FullCopyJob& job, Status s);
// WorkflowType::cancelled_before_start of the copy workflows: the copy leaves its busy status in
// the cancel's transaction (a restore that never ran leaves the copy as it was).
std::function<Status(Txn&, const std::string&)> settle_cancelled_copy(FullCopies::Impl& copies);

// The workflow types of full copies and group thick clones, registered on the service's engine.
Status register_full_copy_workflows(WorkflowEngine& engine, FullCopies::Impl& copies);
Status register_restore_full_copy(WorkflowEngine& engine, FullCopies::Impl& copies);
Status register_thick_clone_group(WorkflowEngine& engine, FullCopies::Impl& copies);

}  // namespace dmscore::detail
