#include "workflows/create_cg_snapshot.hpp"

#include <optional>

#include "base/hook.hpp"
#include "engine/engine_txn.hpp"
#include "service/groups_impl.hpp"
#include "workflows/request_json.hpp"

namespace dmscore::detail {

namespace json = boost::json;

std::string CreateCgSnapshotWork::to_json() const {
  return json::serialize(json::object{{"cgSnapshotId", cg_snapshot_id}});
}

Result<CreateCgSnapshotWork> CreateCgSnapshotWork::from_json(std::string_view request) {
  auto o = request_json::object(request);
  if (!o.ok()) return o.status();
  auto id = request_json::string(*o, "cgSnapshotId");
  if (!id.ok()) return id.status();
  return CreateCgSnapshotWork{*id};
}

namespace {

std::vector<std::pair<std::string, std::string>> hook_env(const ConsistencyGroup& g,
                                                          const CgSnapshot& c, const char* phase) {
  std::string ids;
  for (const auto& v : g.volume_ids) ids += (ids.empty() ? "" : " ") + v;
  return {{"DMS_HOOK_PHASE", phase},        {"DMS_CG_ID", g.id},
          {"DMS_CG_NAME", g.name},          {"DMS_CG_SNAPSHOT_ID", c.id},
          {"DMS_CLUSTER_ID", g.cluster_id}, {"DMS_PROJECT", g.project_name},
          {"DMS_VOLUME_IDS", ids}};
}

void post_hook(const Options& o, const ConsistencyGroup& g, const CgSnapshot& c, bool ok) {
  if (o.group_snapshot_post_hook.empty()) return;
  auto env = hook_env(g, c, "post");
  env.emplace_back("DMS_CG_SNAPSHOT_RESULT", ok ? "ok" : "error");
  Status s = run_hook(o.group_snapshot_post_hook, env, o.group_snapshot_hook_timeout);
  if (!s.ok()) o.log("group snapshot " + c.id + ": post hook failed: " + s.message());
}

Status set_error(Groups::Impl& im, const std::string& id, const std::string& why) {
  return im.deps.store->transact([&](Txn& t) {
    return CgSnapshotCatalog::set_status(t, id, GroupStatus::kError, why, GroupStatus::kCreating);
  });
}

// Member snapshots behind the write fence, in member order; on a failure none stays.
Result<std::vector<Snapshot>> take_members(Groups::Impl& im, StepContext& ctx, Backend& b,
                                           const ConsistencyGroup& g, const CgSnapshot& c,
                                           const std::vector<Volume>& vols,
                                           const std::vector<std::string>& names) {
  const Options& o = *im.deps.options;
  std::vector<Snapshot> taken;
  Status failure = Status::Ok();
  {
    std::optional<WriteFence::Hold> hold;
    if (o.group_snapshot_write_fence) {
      std::vector<std::string> keys;
      for (const auto& vid : g.volume_ids) keys.push_back(fence_key(c.cluster_id, vid));
      ctx.report_progress({20, "fence", 0, 0, 0});
      auto h = im.fence.raise(keys, o.group_snapshot_fence_timeout);
      if (!h.ok())
        failure = h.status().with_prefix("write fence");
      else
        hold = std::move(h).value();
    }
    ctx.report_progress({30, "snapshot", 0, 0, 0});
    for (std::size_t i = 0; failure.ok() && i < vols.size(); ++i) {
      CreateSnapshotRequest r;
      r.project_name = c.project_name;
      r.name = names[i];
      r.source_volume_id = vols[i].id;
      r.description = member_tag(c.id);
      auto sn = b.create_snapshot(r);
      if (!sn.ok())
        failure = sn.status().with_prefix("member " + std::to_string(i + 1) + " (volume " +
                                          vols[i].id + ")");
      else
        taken.push_back(std::move(sn).value());
    }
  }  // the fence is lowered here
  if (failure.ok()) return taken;
  for (const auto& sn : taken) {
    Status d = b.delete_snapshot(c.project_name, sn.id);
    if (!d.ok() && d.code() != Code::kNotFound)
      o.log("group snapshot " + c.id + ": cannot remove member snapshot " + sn.id + ": " +
            d.message());
  }
  return failure;
}

}  // namespace

// Idempotent: a resumed run first removes what an earlier run left, then takes every member
// snapshot again behind the fence.
Status Groups::Impl::take(StepContext& ctx, const std::string& id) {
  auto c = read_cg_snapshot(id);
  if (!c.ok()) return c.status();
  if (c->status == GroupStatus::kAvailable) {  // done before a crash
    ctx.set_result(json::serialize(json::object{{"cgSnapshotId", id}}));
    return Status::Ok();
  }
  if (c->status != GroupStatus::kCreating)
    return Status::FailedPrecondition(
        "group snapshot " + id + " is " + std::string(to_string(c->status)) +
        (c->message.empty() ? std::string() : " (" + c->message + ")"));
  if (restoring_group(c->consistency_group_id))
    return Status::FailedPrecondition("consistency group " + c->consistency_group_id +
                                      " is being restored from a full copy");
  auto fail = [&](const Status& why) {
    (void)set_error(*this, id, why.message());
    return why;
  };
  auto g = read_group(c->consistency_group_id);
  if (!g.ok()) return fail(g.status());
  if (g->volume_ids.empty())
    return fail(Status::FailedPrecondition("consistency group " + g->id + " has no volumes"));
  auto b = backend_locked(c->cluster_id);
  if (!b.ok()) return fail(b.status());
  auto vols = check_volumes(**b, c->project_name, g->volume_ids, "volumeIds");
  if (!vols.ok()) return fail(vols.status());
  std::vector<std::string> names;
  for (const auto& vol : *vols) names.push_back(member_snapshot_name(c->name, vol));
  if (Status s = remove_leftovers(**b, c->project_name, names, id); !s.ok()) return s;
  if (ctx.should_stop()) return Status::Cancelled("group snapshot stopped");

  const Options& o = *deps.options;
  ctx.report_progress({10, "pre-hook", 0, 0, 0});
  if (!o.group_snapshot_pre_hook.empty()) {
    Status h =
        run_hook(o.group_snapshot_pre_hook, hook_env(*g, *c, "pre"), o.group_snapshot_hook_timeout);
    if (!h.ok()) return fail(h.with_prefix("pre hook"));
  }
  auto taken = take_members(*this, ctx, **b, *g, *c, *vols, names);
  post_hook(o, *g, *c, taken.ok());
  if (!taken.ok()) return fail(taken.status());
  bool gone = false;
  Status s = deps.store->transact([&](Txn& t) -> Status {
    gone = false;  // a transaction that lost a conflict runs again (PostgreSQL)
    auto now = CgSnapshotCatalog::status_of(t, id);
    if (!now.ok()) return now.status();
    if (*now != GroupStatus::kCreating) {
      gone = true;  // force-deleted or reset meanwhile
      return Status::Ok();
    }
    return CgSnapshotCatalog::complete(t, id, *taken);
  });
  if (!s.ok() || gone) {
    for (const auto& sn : *taken) (void)(*b)->delete_snapshot(c->project_name, sn.id);
    return s.ok() ? Status::Aborted("group snapshot " + id + " changed status while it was taken")
                  : s;
  }
  json::array ids;
  for (const auto& sn : *taken) ids.push_back(json::value(sn.id));
  ctx.set_result(
      json::serialize(json::object{{"cgSnapshotId", id}, {"snapshotIds", std::move(ids)}}));
  ctx.report_progress({100, "done", 0, 0, 0});
  return Status::Ok();
}

Status register_create_cg_snapshot(WorkflowEngine& engine, Groups::Impl& im) {
  Step step;
  step.name = "snapshot";
  step.run = [&im](StepContext& c) -> Status {
    auto w = CreateCgSnapshotWork::from_json(c.request());
    if (!w.ok()) return w.status();
    return im.take(c, w->cg_snapshot_id);
  };
  // Compensation: no member snapshot stays, the group snapshot ends in error.
  step.undo = [&im](StepContext& c) -> Status {
    auto w = CreateCgSnapshotWork::from_json(c.request());
    if (!w.ok()) return Status::Ok();
    auto snap = im.read_cg_snapshot(w->cg_snapshot_id);
    if (!snap.ok() || snap->status != GroupStatus::kCreating) return Status::Ok();
    auto b = im.backend_locked(snap->cluster_id);
    if (b.ok()) {
      if (Status s = im.remove_member_leftovers(**b, *snap); !s.ok()) return s;
    }
    return set_error(im, w->cg_snapshot_id, c.should_stop() ? "cancelled" : "the workflow failed");
  };
  // Cancelled before it ran: nothing was taken; the group snapshot ends in error.
  auto settle = [](Txn& t, const std::string& request) -> Status {
    auto w = CreateCgSnapshotWork::from_json(request);
    if (!w.ok()) return Status::Ok();
    return CgSnapshotCatalog::set_status(t, w->cg_snapshot_id, GroupStatus::kError,
                                         "cancelled before it started", GroupStatus::kCreating);
  };
  return EngineTxn::register_type(engine, {kCreateCgSnapshot, {std::move(step)}}, settle);
}

}  // namespace dmscore::detail
