// FullCopies::act: activate, resynchronize, restore or detach copies of a copy set.

#include <algorithm>
#include <set>

#include "service/full_copies_impl.hpp"

namespace dmscore::detail {

namespace {

// The copies acted on: those named (each 1..count, once), else every copy; a restore takes
// exactly one (the only copy when the set has one).
Result<std::vector<int>> chosen_copies(const CopySet& set, const CopySetActionRequest& req) {
  std::vector<int> which = req.copies;
  std::set<int> seen;
  for (std::size_t i = 0; i < which.size(); ++i) {
    if (which[i] < 1 || which[i] > set.count)
      return Status::InvalidArgument("copies[" + std::to_string(i) + "]: must be 1.." +
                                     std::to_string(set.count));
    if (!seen.insert(which[i]).second)
      return Status::InvalidArgument("copies[" + std::to_string(i) + "]: listed twice");
  }
  if (req.action == CopyAction::kRestore) {
    if (!req.confirm)
      return Status::InvalidArgument(
          "confirm: must be true; restore overwrites the group's source volumes");
    if (which.size() > 1) return Status::InvalidArgument("copies: restore takes exactly one copy");
    if (which.empty()) {
      if (set.count != 1)
        return Status::InvalidArgument("copies: name the copy to restore from (1.." +
                                       std::to_string(set.count) + ")");
      which.push_back(1);
    }
  } else if (which.empty()) {
    for (int k = 1; k <= set.count; ++k) which.push_back(k);
  }
  return which;
}

// Whether a copy in `status` may be acted on now.
bool eligible(CopyAction action, CopyStatus status, bool has_volumes) {
  switch (action) {
    case CopyAction::kActivate:
      return status == CopyStatus::kInactive || (status == CopyStatus::kError && has_volumes);
    case CopyAction::kResynchronize:
      return status == CopyStatus::kSynchronized || (status == CopyStatus::kError && has_volumes);
    case CopyAction::kRestore:
      return status == CopyStatus::kSynchronized && has_volumes;
    case CopyAction::kDetach:
      return status == CopyStatus::kInactive || status == CopyStatus::kSynchronized ||
             status == CopyStatus::kError;
  }
  return false;
}

const char* needs(CopyAction action) {
  switch (action) {
    case CopyAction::kActivate:
      return "an inactive copy";
    case CopyAction::kResynchronize:
    case CopyAction::kRestore:
      return "a synchronized copy";
    case CopyAction::kDetach:
      return "a copy without a running workflow";
  }
  return "";
}

// Every chosen copy is eligible; checked inside the transaction that records the action, so
// two concurrent requests cannot both pass.
Status check_in(Txn& t, const std::string& set_id, const std::vector<int>& which,
                const CopySetActionRequest& req) {
  for (std::size_t i = 0; i < which.size(); ++i) {
    auto st = CopySetCatalog::copy_state(t, set_id, which[i]);
    if (!st.ok()) return st.status();
    if (!*st) return Status::NotFound("copy " + std::to_string(which[i]) + " not found");
    if (!eligible(req.action, (*st)->status, (*st)->has_volumes))
      return Status::FailedPrecondition(
          (req.copies.empty() ? "copy " : "copies[" + std::to_string(i) + "]: copy ") +
          std::to_string(which[i]) + " is " + std::string(to_string((*st)->status)) + "; " +
          std::string(to_string(req.action)) + " needs " + needs(req.action));
  }
  return Status::Ok();
}

// Detached copies keep their volumes (now the operator's) and release their group snapshots.
Status detach(FullCopies::Impl& im, const std::string& set_id, const std::vector<int>& which,
              const CopySetActionRequest& req) {
  std::vector<std::string> released;
  Status s = im.deps.store->transact([&](Txn& t) -> Status {
    released.clear();  // a transaction that lost a conflict runs again (PostgreSQL)
    if (Status e = check_in(t, set_id, which, req); !e.ok()) return e;
    for (int k : which) {
      auto st = CopySetCatalog::copy_state(t, set_id, k);
      if (!st.ok()) return st.status();
      if (*st) released.push_back((*st)->cg_snapshot_id);
      Status u = CopySetCatalog::update_copy(
          t, set_id, k, {.status = CopyStatus::kDetached, .cg_snapshot_id = "", .message = ""},
          im.now_ms());
      if (!u.ok()) return u;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  for (const auto& snap : released) im.release_snapshot(snap);
  return Status::Ok();
}

// RESTORE_FULL_COPY of copy `f` onto the members of `g`: refused while a source or copy volume,
// or the group, is used by a running workflow.
Result<WorkflowEngine::Submission> restore_submission(FullCopies::Impl& im, const CopySet& set,
                                                      const ConsistencyGroup& g,
                                                      const FullCopy& f) {
  if (g.status != GroupStatus::kAvailable)
    return Status::FailedPrecondition("consistency group " + g.id + " is " +
                                      std::string(to_string(g.status)) +
                                      "; restore needs it available");
  std::vector<std::string> resources{"group:" + g.id, "cluster:" + g.cluster_id,
                                     "cluster:" + set.cluster_id};
  for (const auto& v : f.volumes) {
    if (std::find(g.volume_ids.begin(), g.volume_ids.end(), v.source_volume_id) ==
        g.volume_ids.end())
      return Status::FailedPrecondition("volume " + v.source_volume_id +
                                        " is no longer a member of the group; nothing to "
                                        "restore it onto");
    for (const std::string& r : {"volume:" + v.source_volume_id, "volume:" + v.volume_id}) {
      auto busy = im.deps.engine->resource_in_use(r);
      if (!busy.ok()) return busy.status();
      if (*busy)
        return Status::FailedPrecondition(
            r.substr(7) == v.source_volume_id
                ? "source volume " + v.source_volume_id + " is used by a running workflow"
                : "copy volume " + v.volume_id + " is used by a running workflow");
    }
    resources.push_back("volume:" + v.source_volume_id);
    resources.push_back("volume:" + v.volume_id);
  }
  auto busy = im.deps.engine->resource_in_use("group:" + g.id);
  if (!busy.ok()) return busy.status();
  if (*busy)
    return Status::FailedPrecondition("consistency group " + g.id +
                                      " has a full-copy workflow running; wait for it");
  return WorkflowEngine::Submission{kRestoreFullCopy, FullCopyWork{set.id, f.index, ""}.to_json(),
                                    std::move(resources)};
}

}  // namespace

Result<CopySetWork> FullCopies::act(const std::string& group_id, const std::string& id,
                                    const CopySetActionRequest& req) {
  Impl& im = *impl_;
  auto set = get(group_id, id);
  if (!set.ok()) return set.status();
  auto which = chosen_copies(*set, req);
  if (!which.ok()) return which.status();
  CopySetWork out;
  auto answer = [&]() -> Result<CopySetWork> {
    auto fresh = get(group_id, id);
    if (!fresh.ok()) return fresh.status();
    out.copy_set = std::move(fresh).value();
    return out;
  };
  if (req.action == CopyAction::kDetach) {
    if (Status s = detach(im, id, *which, req); !s.ok()) return s;
    return answer();
  }
  const bool restore = req.action == CopyAction::kRestore;
  auto g = restore ? im.deps.groups->get(group_id)
                   : im.deps.groups->snapshot_ready_group(group_id, "id");
  if (!g.ok()) return g.status();
  std::vector<WorkflowEngine::Submission> batch;
  std::string snap;
  if (restore) {
    auto sub =
        restore_submission(im, *set, *g, set->copies[static_cast<std::size_t>((*which)[0] - 1)]);
    if (!sub.ok()) return sub.status();
    batch.push_back(std::move(sub).value());
  } else {
    snap = im.deps.env->new_uuid();
    for (int k : *which)
      batch.push_back(
          {req.action == CopyAction::kActivate ? kActivateFullCopy : kResynchronizeFullCopy,
           FullCopyWork{id, k, snap}.to_json(),
           {"group:" + g->id, "cluster:" + g->cluster_id, "cluster:" + set->cluster_id}});
  }
  auto ids = EngineTxn::submit_all(
      *im.deps.engine, std::move(batch), [&](Txn& t, const std::vector<std::string>& wf) -> Status {
        if (Status e = check_in(t, id, *which, req); !e.ok()) return e;
        if (restore) {
          // No group snapshot of the sources may be in progress either.
          auto c = CgSnapshotCatalog::creating_of_group(t, g->id);
          if (!c.ok()) return c.status();
          if (!c->empty())
            return Status::FailedPrecondition("group snapshot " + *c +
                                              " of the group is being taken; wait for it");
        } else if (Status s = im.insert_snapshot(t, snap, *g, *set, wf[0]); !s.ok()) {
          return s;
        }
        for (std::size_t i = 0; i < which->size(); ++i) {
          Status u = CopySetCatalog::update_copy(
              t, id, (*which)[i],
              {.status = restore ? CopyStatus::kRestoring : CopyStatus::kSynchronizing,
               .sync_cg_snapshot_id = snap,
               .workflow_id = wf[i],
               .message = ""},
              im.now_ms());
          if (!u.ok()) return u;
        }
        return Status::Ok();
      });
  if (!ids.ok()) return ids.status();
  for (std::size_t i = 0; i < which->size(); ++i) out.workflows.push_back({(*which)[i], (*ids)[i]});
  return answer();
}

}  // namespace dmscore::detail
