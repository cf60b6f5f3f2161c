#include "workflows/thick_clone_group.hpp"

#include "service/full_copies_impl.hpp"
#include "workflows/request_json.hpp"
#include "workflows/step_builder.hpp"

namespace dmscore::detail {

namespace json = boost::json;

std::string ThickCloneGroupWork::to_json() const {
  json::array n;
  for (const auto& name : names) n.push_back(json::value(name));
  return json::serialize(json::object{{"consistencyGroupId", consistency_group_id},
                                      {"cgSnapshotId", cg_snapshot_id},
                                      {"names", std::move(n)},
                                      {"verifyClone", verify}});
}

Result<ThickCloneGroupWork> ThickCloneGroupWork::from_json(std::string_view request) {
  auto o = request_json::object(request);
  if (!o.ok()) return o.status();
  ThickCloneGroupWork w;
  auto g = request_json::string(*o, "consistencyGroupId");
  if (!g.ok()) return g.status();
  w.consistency_group_id = *g;
  auto s = request_json::string(*o, "cgSnapshotId");
  if (!s.ok()) return s.status();
  w.cg_snapshot_id = *s;
  const auto* names = o->if_contains("names");
  if (!names || !names->is_array())
    return Status::InvalidArgument("request.names: must be an array");
  for (const auto& n : names->as_array()) {
    if (!n.is_string()) return Status::InvalidArgument("request.names: must hold strings");
    w.names.emplace_back(n.as_string());
  }
  w.verify = request_json::boolean_or(*o, "verifyClone", false);
  return w;
}

namespace {

struct CloneJob {
  ThickCloneGroupWork work;
  CgSnapshot snap;
};

Result<CloneJob> load_clone(const FullCopies::Impl& im, const std::string& request) {
  auto w = ThickCloneGroupWork::from_json(request);
  if (!w.ok()) return w.status();
  CloneJob j{std::move(w).value(), {}};
  auto s = im.deps.groups->get_cg_snapshot(j.work.cg_snapshot_id);
  if (!s.ok()) return s.status();
  j.snap = std::move(s).value();
  if (j.work.names.size() != j.snap.members.size())
    return Status::FailedPrecondition("group snapshot " + j.snap.id + " changed");
  return j;
}

Result<std::vector<CopyItem>> clone_items(const FullCopies::Impl& im, StepContext& c,
                                          const CloneJob& j) {
  auto g = im.deps.groups->get(j.work.consistency_group_id);
  if (!g.ok()) return g.status();
  auto src = im.backend_locked(j.snap.cluster_id);
  if (!src.ok()) return src.status();
  std::vector<CopyItem> items;
  for (std::size_t i = 0; i < j.snap.members.size(); ++i) {
    const auto& m = j.snap.members[i];
    CopyItem it;
    it.src_cluster = j.snap.cluster_id;
    it.src_project = j.snap.project_name;
    it.src_snapshot_id = m.snapshot_id;
    it.dst_cluster = g->cluster_id;
    it.dst_project = g->project_name;
    it.dst_name = j.work.names[i];
    it.dst_volume_id = c.var("vol" + std::to_string(i));
    it.size = m.size;
    auto sn = (*src)->get_snapshot(j.snap.project_name, m.snapshot_id);
    if (sn.ok()) {
      it.replica = sn->replica_count;
      it.sector_size = sn->sector_size;
      it.compression = sn->compression;
    }
    items.push_back(std::move(it));
  }
  return items;
}

// `s`, after recording it as the message of the group being made.
Status clone_failing(FullCopies::Impl& im, const std::string& group_id, Status s) {
  if (!s.ok() && s.code() != Code::kCancelled)
    (void)im.deps.store->transact(
        [&](Txn& t) { return GroupCatalog::set_creation_message(t, group_id, s.message()); });
  return s;
}

// Runs `body` on the loaded job and its items; a failure is recorded on the group.
template <class F>
Status with_items(FullCopies::Impl& im, StepContext& c, F&& body) {
  auto j = load_clone(im, c.request());
  if (!j.ok()) return j.status();
  auto items = clone_items(im, c, *j);
  if (!items.ok()) return clone_failing(im, j->work.consistency_group_id, items.status());
  return clone_failing(im, j->work.consistency_group_id, body(*j, *items));
}

Status create_step(FullCopies::Impl& im, StepContext& c) {
  return with_items(im, c, [&](const CloneJob&, std::vector<CopyItem>& items) {
    return im.pipeline.create_targets(c, items, [&c](std::size_t i, const std::string& id) {
      c.set_var("vol" + std::to_string(i), id);
      return c.save_checkpoint("made:" + std::to_string(i));
    });
  });
}

Status create_undo(FullCopies::Impl& im, StepContext& c) {
  auto w = ThickCloneGroupWork::from_json(c.request());
  auto j = load_clone(im, c.request());
  if (j.ok()) {
    auto items = clone_items(im, c, *j);
    if (items.ok()) {
      if (Status s = im.pipeline.delete_targets(c, *items); !s.ok()) return s;
    }
  }
  if (!w.ok()) return Status::Ok();
  return im.deps.store->transact([&](Txn& t) {
    return GroupCatalog::fail_creation(t, w->consistency_group_id,
                                       c.should_stop() ? "cancelled" : "the workflow failed",
                                       im.now_ms(), true);
  });
}

Status copy_step(FullCopies::Impl& im, StepContext& c) {
  return with_items(im, c, [&](const CloneJob& j, std::vector<CopyItem>& items) {
    return im.pipeline.copy(c, items, true, "copy", 5, j.work.verify ? 90 : 99);
  });
}

Status verify_step(FullCopies::Impl& im, StepContext& c) {
  return with_items(im, c, [&](const CloneJob& j, std::vector<CopyItem>& items) {
    return j.work.verify ? im.pipeline.verify(c, items) : Status::Ok();
  });
}

Status finalize_step(FullCopies::Impl& im, StepContext& c) {
  std::vector<std::string> made;
  std::string group_id;
  Status s = with_items(im, c, [&](const CloneJob& j, std::vector<CopyItem>& items) -> Status {
    if (Status a = im.pipeline.make_available(items); !a.ok()) return a;
    group_id = j.work.consistency_group_id;
    for (const auto& it : items) made.push_back(it.dst_volume_id);
    return im.deps.store->transact([&](Txn& t) -> Status {
      auto g = GroupCatalog::get(t, group_id);
      if (!g.ok())
        return g.status().is_not_found()
                   ? Status::Aborted("consistency group " + group_id + " was deleted")
                   : g.status();
      if (g->status == GroupStatus::kAvailable) return Status::Ok();  // done before a crash
      if (g->status != GroupStatus::kCreating)
        return Status::Aborted("consistency group " + group_id + " changed while it was made");
      if (Status m = GroupCatalog::append_members(t, group_id, g->cluster_id, made); !m.ok())
        return m;
      return GroupCatalog::set_status(t, group_id, GroupStatus::kAvailable, im.now_ms(), "");
    });
  });
  if (!s.ok()) return s;
  json::array ids;
  for (const auto& v : made) ids.push_back(json::value(v));
  c.set_result(json::serialize(
      json::object{{"consistencyGroupId", group_id}, {"volumeIds", std::move(ids)}}));
  c.report_progress({100, "done", 0, 0, 0});
  return Status::Ok();
}

// Undo of the copying steps: what was made to reach data goes.
Status release_data_step(FullCopies::Impl& im, StepContext& c) {
  return im.pipeline.release_data(c);
}

}  // namespace

Status register_thick_clone_group(WorkflowEngine& engine, FullCopies::Impl& im) {
  auto settle = [&im](Txn& t, const std::string& request) -> Status {
    auto w = ThickCloneGroupWork::from_json(request);
    if (!w.ok()) return Status::Ok();
    return GroupCatalog::fail_creation(t, w->consistency_group_id,
                                       "its workflow was cancelled before it started", im.now_ms());
  };
  WorkflowType type{kThickCloneConsistencyGroup, {}};
  type.steps.push_back(make_step("create-destination", im, create_step, create_undo));
  type.steps.push_back(make_step("copy", im, copy_step, release_data_step));
  type.steps.push_back(make_step("verify", im, verify_step, release_data_step));
  type.steps.push_back(make_step("finalize", im, finalize_step));
  return EngineTxn::register_type(engine, std::move(type), settle);
}

Result<ConsistencyGroup> FullCopies::thick_clone_group(const ThickCloneGroupRequest& req) {
  Impl& im = *impl_;
  if (!is_uuid(req.src_cg_snapshot_id))
    return Status::InvalidArgument("src.cgSnapshotId: must be a UUID");
  if (Status s = validate_object_name(req.dst_name, "dst.name"); !s.ok()) return s;
  if (!req.dst_cluster_id.empty() && !is_uuid(req.dst_cluster_id))
    return Status::InvalidArgument("dst.clusterId: must be a UUID");
  if (!req.dst_project_name.empty()) {
    if (Status s = validate_object_name(req.dst_project_name, "dst.projectName"); !s.ok()) return s;
  }
  auto snap = im.deps.groups->get_cg_snapshot(req.src_cg_snapshot_id);
  if (!snap.ok()) return naming(snap.status(), "src.cgSnapshotId");
  if (snap->status != GroupStatus::kAvailable)
    return Status::FailedPrecondition("src.cgSnapshotId: group snapshot " + snap->id + " is " +
                                      std::string(to_string(snap->status)) +
                                      "; a group is cloned only from an available one");
  ConsistencyGroup g;
  g.id = im.deps.env->new_uuid();
  g.name = req.dst_name;
  g.cluster_id = req.dst_cluster_id.empty() ? snap->cluster_id : req.dst_cluster_id;
  g.project_name = req.dst_project_name.empty() ? snap->project_name : req.dst_project_name;
  g.status = GroupStatus::kCreating;
  g.source_cg_snapshot_id = snap->id;
  g.created_at = g.updated_at = from_millis(im.now_ms());
  g.description = "thick clone of group snapshot " + snap->id;
  ThickCloneGroupWork work{g.id, snap->id, {}, req.verify_clone};
  std::vector<std::string> resources{"cluster:" + snap->cluster_id, "cluster:" + g.cluster_id};
  {
    std::shared_lock registry(*im.deps.registry_mu);
    auto src = im.deps.backend(snap->cluster_id, "src.cgSnapshotId");
    if (!src.ok()) return src.status();
    auto dst = im.deps.backend(g.cluster_id, "dst.clusterId");
    if (!dst.ok()) return dst.status();
    for (std::size_t i = 0; i < snap->members.size(); ++i) {
      const auto& m = snap->members[i];
      auto sn = (*src)->get_snapshot(snap->project_name, m.snapshot_id);
      if (!sn.ok())
        return sn.status().with_prefix("src.cgSnapshotId: member " + std::to_string(i + 1));
      std::string vol = sn->name;
      if (vol.rfind(snap->name + "-", 0) == 0) vol = vol.substr(snap->name.size() + 1);
      std::string name = target_name(req.dst_name, vol, i);
      auto taken = (*dst)->find_volume(g.project_name, name);
      if (taken.ok())
        return Status::AlreadyExists("dst.name: a volume named " + name +
                                     " already exists in project " + g.project_name);
      if (!taken.status().is_not_found()) return taken.status();
      work.names.push_back(name);
      resources.push_back("snapshot:" + m.snapshot_id);
    }
  }
  std::vector<WorkflowEngine::Submission> batch;
  batch.push_back({kThickCloneConsistencyGroup, work.to_json(), std::move(resources)});
  auto ids = EngineTxn::submit_all(
      *im.deps.engine, std::move(batch), [&](Txn& t, const std::vector<std::string>& wf) -> Status {
        g.workflow_id = wf[0];
        Status r = GroupCatalog::insert(t, g);
        if (r.code() == Code::kAlreadyExists)
          return Status::AlreadyExists("dst.name: a consistency group named " + g.name +
                                       " already exists");
        return r;
      });
  if (!ids.ok()) return ids.status();
  return g;
}

}  // namespace dmscore::detail
