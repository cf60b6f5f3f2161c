#include "workflows/create_group_from_snapshot.hpp"

#include "engine/engine_txn.hpp"
#include "service/groups_impl.hpp"
#include "workflows/request_json.hpp"

namespace dmscore::detail {

namespace json = boost::json;

std::string CreateGroupFromSnapshotWork::to_json() const {
  return json::serialize(json::object{{"consistencyGroupId", consistency_group_id}});
}

Result<CreateGroupFromSnapshotWork> CreateGroupFromSnapshotWork::from_json(
    std::string_view request) {
  auto o = request_json::object(request);
  if (!o.ok()) return o.status();
  auto id = request_json::string(*o, "consistencyGroupId");
  if (!id.ok()) return id.status();
  return CreateGroupFromSnapshotWork{*id};
}

namespace {

// The volume made from member `index` of group snapshot `c` for group `group`:
// "<group>-<source volume name>", the volume name read off the member snapshot's name.
std::string member_volume_name(const std::string& group, const CgSnapshot& c,
                               const Snapshot& member, std::size_t index) {
  std::string vol = member.name;
  if (vol.rfind(c.name + "-", 0) == 0) vol = vol.substr(c.name.size() + 1);
  std::string n = group + "-" + vol;
  return n.size() <= 256 && !vol.empty() ? n : group + "-" + std::to_string(index + 1);
}

// The volumes the group gets: (name, member) in member order.
Result<std::vector<std::pair<std::string, CgSnapshotMember>>> planned_volumes(
    Backend& b, const ConsistencyGroup& g, const CgSnapshot& c) {
  std::vector<std::pair<std::string, CgSnapshotMember>> out;
  for (std::size_t i = 0; i < c.members.size(); ++i) {
    auto sn = b.get_snapshot(c.project_name, c.members[i].snapshot_id);
    if (!sn.ok()) return sn.status();
    out.emplace_back(member_volume_name(g.name, c, *sn, i), c.members[i]);
  }
  return out;
}

Status set_error(Groups::Impl& im, const std::string& id, const std::string& why) {
  return im.deps.store->transact(
      [&](Txn& t) { return GroupCatalog::fail_creation(t, id, why, im.now_ms()); });
}

// Makes (or adopts) the planned volumes; their ids in member order.
Result<std::vector<std::string>> make_volumes(
    StepContext& ctx, Backend& b, const ConsistencyGroup& g,
    const std::vector<std::pair<std::string, CgSnapshotMember>>& plan) {
  std::vector<std::string> made;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (ctx.should_stop()) return Status::Cancelled("stopped");
    const auto& [name, member] = plan[i];
    ctx.report_progress({static_cast<int>(i * 100 / plan.size()), "clone", 0, 0, 0});
    auto existing = b.find_volume(g.project_name, name);
    if (existing.ok()) {
      if (existing->source_snapshot_id != member.snapshot_id ||
          !made_by(existing->labels, ctx.workflow_id()))
        return Status::AlreadyExists("member " + std::to_string(i + 1) + ": a volume named " +
                                     name + " already exists");
      made.push_back(existing->id);
      continue;
    }
    if (existing.status().code() != Code::kNotFound) return existing.status();
    CreateVolumeRequest r;
    r.project_name = g.project_name;
    r.name = name;
    r.size = member.size;
    r.source_snapshot_id = member.snapshot_id;
    r.labels[kOwnerLabel] = ctx.workflow_id();
    auto v = b.create_volume(r);
    if (!v.ok())
      return v.status().with_prefix("member " + std::to_string(i + 1) + " (snapshot " +
                                    member.snapshot_id + ")");
    made.push_back(v->id);
  }
  return made;
}

Status clone_step(Groups::Impl& im, StepContext& ctx) {
  auto w = CreateGroupFromSnapshotWork::from_json(ctx.request());
  if (!w.ok()) return w.status();
  const std::string& id = w->consistency_group_id;
  auto g = im.read_group(id);
  if (!g.ok()) return g.status();
  if (g->status == GroupStatus::kAvailable) {
    ctx.set_result(json::serialize(json::object{{"consistencyGroupId", id}}));
    return Status::Ok();
  }
  if (g->status != GroupStatus::kCreating)
    return Status::FailedPrecondition("consistency group " + id + " is " +
                                      std::string(to_string(g->status)));
  auto fail = [&](const Status& why) {
    (void)set_error(im, id, why.message());
    return why;
  };
  auto c = im.read_cg_snapshot(g->source_cg_snapshot_id);
  if (!c.ok()) return fail(c.status());
  auto b = im.backend_locked(g->cluster_id);
  if (!b.ok()) return fail(b.status());
  auto plan = planned_volumes(**b, *g, *c);
  if (!plan.ok()) return fail(plan.status());
  auto made = make_volumes(ctx, **b, *g, *plan);
  if (!made.ok())
    return made.status().code() == Code::kCancelled ? made.status() : fail(made.status());
  Status s = im.deps.store->transact([&](Txn& t) -> Status {
    auto now = GroupCatalog::status_of(t, id);
    if (!now.ok()) return now.status();
    if (*now != GroupStatus::kCreating)
      return Status::Aborted("consistency group " + id + " changed while it was made");
    if (Status cs = im.check_not_grouped(t, g->cluster_id, *made, "volumeIds"); !cs.ok()) return cs;
    if (Status m = GroupCatalog::append_members(t, id, g->cluster_id, *made); !m.ok()) return m;
    return GroupCatalog::set_status(t, id, GroupStatus::kAvailable, im.now_ms(), "");
  });
  if (!s.ok()) return fail(s);
  json::array ids;
  for (const auto& v : *made) ids.push_back(json::value(v));
  ctx.set_result(
      json::serialize(json::object{{"consistencyGroupId", id}, {"volumeIds", std::move(ids)}}));
  ctx.report_progress({100, "done", 0, 0, 0});
  return Status::Ok();
}

// Compensation: the volumes it made go, the group ends in error (it stays, for the operator to
// see why, until deleted).
Status clone_undo(Groups::Impl& im, StepContext& ctx) {
  auto w = CreateGroupFromSnapshotWork::from_json(ctx.request());
  if (!w.ok()) return Status::Ok();
  const std::string& id = w->consistency_group_id;
  auto g = im.read_group(id);
  if (!g.ok() || g->status == GroupStatus::kAvailable) return Status::Ok();
  auto c = im.read_cg_snapshot(g->source_cg_snapshot_id);
  auto b = im.backend_locked(g->cluster_id);
  if (c.ok() && b.ok()) {
    auto plan = planned_volumes(**b, *g, *c);
    if (!plan.ok()) return plan.status();
    for (const auto& [name, member] : *plan) {
      auto v = (*b)->find_volume(g->project_name, name);
      if (!v.ok() || !made_by(v->labels, ctx.workflow_id())) continue;
      Status d = (*b)->delete_volume(g->project_name, v->id);
      if (!d.ok() && d.code() != Code::kNotFound) return d;
    }
  }
  return set_error(im, id, ctx.should_stop() ? "cancelled" : "the workflow failed");
}

}  // namespace

Result<ConsistencyGroup> Groups::Impl::create_from_snapshot(const CreateGroupRequest& req) {
  for (auto [given, field] : {std::pair{!req.cluster_id.empty(), "clusterId"},
                              std::pair{!req.project_name.empty(), "projectName"},
                              std::pair{!req.volume_ids.empty(), "volumeIds"}}) {
    if (given)
      return Status::InvalidArgument(std::string(field) +
                                     ": not allowed with sourceCgSnapshotId (the group takes "
                                     "its cluster, project and volumes from the group snapshot)");
  }
  if (!is_uuid(req.source_cg_snapshot_id))
    return Status::InvalidArgument("sourceCgSnapshotId: must be a UUID");
  ConsistencyGroup g;
  std::vector<std::string> resources;
  {
    std::shared_lock registry(*deps.registry_mu);
    std::lock_guard lock(mu);
    auto c = read_cg_snapshot(req.source_cg_snapshot_id);
    if (!c.ok()) return naming(c.status(), "sourceCgSnapshotId");
    if (c->status != GroupStatus::kAvailable)
      return Status::FailedPrecondition("sourceCgSnapshotId: group snapshot " + c->id + " is " +
                                        std::string(to_string(c->status)) +
                                        "; a group is made only from an available one");
    auto b = deps.backend(c->cluster_id, "clusterId");
    if (!b.ok()) return b.status();
    g.id = deps.env->new_uuid();
    g.name = req.name;
    g.description = req.description;
    g.cluster_id = c->cluster_id;
    g.project_name = c->project_name;
    g.status = GroupStatus::kCreating;
    g.source_cg_snapshot_id = c->id;
    g.created_at = g.updated_at = from_millis(now_ms());
    resources.push_back("cluster:" + c->cluster_id);
    for (const auto& m : c->members) resources.push_back("snapshot:" + m.snapshot_id);
    Status s = deps.store->transact([&](Txn& t) -> Status {
      Status r = GroupCatalog::insert(t, g);
      if (r.code() == Code::kAlreadyExists)
        return Status::AlreadyExists("name: a consistency group named " + g.name +
                                     " already exists");
      return r;
    });
    if (!s.ok()) return s;
  }
  auto wf = start_workflow(
      kCreateConsistencyGroup, CreateGroupFromSnapshotWork{g.id}.to_json(), std::move(resources),
      [&](Txn& t) { return GroupCatalog::remove(t, g.id); },
      [&](Txn& t, const std::string& w) { return GroupCatalog::set_workflow(t, g.id, w); });
  if (!wf.ok()) return wf.status();
  g.workflow_id = *wf;
  return g;
}

Status register_create_group_from_snapshot(WorkflowEngine& engine, Groups::Impl& im) {
  Step clone;
  clone.name = "clone";
  clone.run = [&im](StepContext& c) { return clone_step(im, c); };
  clone.undo = [&im](StepContext& c) { return clone_undo(im, c); };
  // Cancelled before it ran: nothing was made; the group ends in error.
  auto settle = [&im](Txn& t, const std::string& request) -> Status {
    auto w = CreateGroupFromSnapshotWork::from_json(request);
    if (!w.ok()) return Status::Ok();
    return GroupCatalog::fail_creation(t, w->consistency_group_id, "cancelled before it started",
                                       im.now_ms());
  };
  return EngineTxn::register_type(engine, {kCreateConsistencyGroup, {std::move(clone)}}, settle);
}

}  // namespace dmscore::detail
