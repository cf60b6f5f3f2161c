#include "workflows/full_copy.hpp"

#include <algorithm>

#include "service/full_copies_impl.hpp"
#include "workflows/request_json.hpp"
#include "workflows/step_builder.hpp"

namespace dmscore::detail {

namespace json = boost::json;

std::string FullCopyWork::to_json() const {
  json::object o{{"copySetId", copy_set_id}, {"copy", copy}};
  if (!cg_snapshot_id.empty()) o["cgSnapshotId"] = cg_snapshot_id;
  return json::serialize(o);
}

Result<FullCopyWork> FullCopyWork::from_json(std::string_view request) {
  auto o = request_json::object(request);
  if (!o.ok()) return o.status();
  FullCopyWork w;
  auto set = request_json::string(*o, "copySetId");
  if (!set.ok()) return set.status();
  w.copy_set_id = *set;
  auto idx = request_json::integer(*o, "copy");
  if (!idx.ok()) return idx.status();
  if (*idx < 1 || *idx > 1000) return Status::InvalidArgument("request.copy: out of range");
  w.copy = static_cast<int>(*idx);
  w.cg_snapshot_id = request_json::string_or_empty(*o, "cgSnapshotId");
  return w;
}

Result<FullCopyJob> load_full_copy_job(const FullCopies::Impl& im, const std::string& request) {
  auto w = FullCopyWork::from_json(request);
  if (!w.ok()) return w.status();
  FullCopyJob j;
  j.work = std::move(w).value();
  auto set = im.read_set(j.work.copy_set_id);
  if (!set.ok()) return set.status();
  j.set = std::move(set).value();
  if (j.work.copy > static_cast<int>(j.set.copies.size()))
    return Status::InvalidArgument("request.copy: out of range");
  j.copy = j.set.copies[static_cast<std::size_t>(j.work.copy - 1)];
  auto g = im.deps.groups->get(j.set.consistency_group_id);
  if (!g.ok()) return g.status();
  j.group_cluster = g->cluster_id;
  j.group_project = g->project_name;
  return j;
}

Status copy_failing(FullCopies::Impl& im, const FullCopyJob& j, Status s) {
  if (!s.ok() && s.code() != Code::kCancelled)
    (void)im.change_copy(j.set.id, j.copy.index, {.message = s.message()});
  return s;
}

namespace {

// Copy `j`'s volumes as items: from the group snapshot's member snapshots into the copy.
Result<std::vector<CopyItem>> copy_items_of(const FullCopies::Impl& im, const FullCopyJob& j,
                                            bool with_sources) {
  std::optional<CgSnapshot> snap;
  if (with_sources) {
    auto s = im.deps.groups->get_cg_snapshot(j.work.cg_snapshot_id);
    if (!s.ok()) return s.status();
    snap = std::move(s).value();
  }
  std::vector<CopyItem> items;
  for (const auto& v : j.copy.volumes) {
    CopyItem it;
    it.src_cluster = j.group_cluster;
    it.src_project = j.group_project;
    if (snap) {
      auto m = std::find_if(
          snap->members.begin(), snap->members.end(),
          [&](const CgSnapshotMember& x) { return x.volume_id == v.source_volume_id; });
      if (m == snap->members.end())
        return Status::FailedPrecondition("volume " + v.source_volume_id +
                                          " is no longer a member of consistency group " +
                                          j.set.consistency_group_id);
      it.src_snapshot_id = m->snapshot_id;
      it.src_cluster = snap->cluster_id;
      it.src_project = snap->project_name;
    }
    it.src_volume_id = v.source_volume_id;
    it.dst_cluster = j.set.cluster_id;
    it.dst_project = j.set.project_name;
    it.dst_name = v.name;
    it.dst_volume_id = v.volume_id;
    it.size = v.size;
    items.push_back(std::move(it));
  }
  return items;
}

// The copy in error (keeping a message its failing step recorded), its use of the group
// snapshot it was copying from ended; with `forget_volumes` its volumes are forgotten too.
Status end_in_error(FullCopies::Impl& im, StepContext& c, const FullCopyJob& j,
                    bool forget_volumes) {
  Status s = im.deps.store->transact([&](Txn& t) -> Status {
    if (forget_volumes) {
      if (Status f = CopySetCatalog::clear_volumes(t, j.set.id, j.copy.index); !f.ok()) return f;
    }
    return CopySetCatalog::fail_copy(t, j.set.id, j.copy.index,
                                     c.should_stop() ? "cancelled" : "the workflow failed",
                                     im.now_ms());
  });
  if (!s.ok()) return s;
  im.release_snapshot(j.work.cg_snapshot_id);
  return Status::Ok();
}

Status create_targets_step(FullCopies::Impl& im, StepContext& c) {
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status();
  auto items = copy_items_of(im, *j, false);
  if (!items.ok()) return copy_failing(im, *j, items.status());
  // Attributes of the source volumes (replicas, sector size, compression).
  auto src = im.backend_locked(j->group_cluster);
  for (auto& it : *items) {
    if (!src.ok()) break;
    auto v = (*src)->get_volume(j->group_project, it.src_volume_id);
    if (!v.ok()) continue;
    it.replica = v->replica_count;
    it.sector_size = v->sector_size;
    it.compression = v->compression;
  }
  Status s = im.pipeline.create_targets(c, *items, [&](std::size_t i, const std::string& id) {
    return im.deps.store->transact(
        [&](Txn& t) { return CopySetCatalog::set_volume(t, j->set.id, j->copy.index, i, id); });
  });
  return copy_failing(im, *j, s);
}

// Compensation of a copy's creation: its volumes go; the copy ends in error.
Status create_targets_undo(FullCopies::Impl& im, StepContext& c) {
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status().is_not_found() ? Status::Ok() : j.status();
  auto items = copy_items_of(im, *j, false);
  if (!items.ok()) return items.status();
  if (Status s = im.pipeline.delete_targets(c, *items); !s.ok()) return s;
  return end_in_error(im, c, *j, true);
}

Status snapshot_step(FullCopies::Impl& im, StepContext& c) {
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status();
  if (j->work.cg_snapshot_id.empty()) return Status::Ok();  // inactive: nothing to copy yet
  std::lock_guard lock(im.take_mu);
  c.report_progress({5, "group-snapshot", 0, 0, 0});
  return copy_failing(im, *j, im.deps.groups->take_cg_snapshot(c, j->work.cg_snapshot_id));
}

Status snapshot_undo(FullCopies::Impl& im, StepContext& c) {
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status().is_not_found() ? Status::Ok() : j.status();
  return end_in_error(im, c, *j, false);
}

Status copy_step(FullCopies::Impl& im, StepContext& c, bool fresh_targets) {
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status();
  if (j->work.cg_snapshot_id.empty()) return Status::Ok();
  auto items = copy_items_of(im, *j, true);
  if (!items.ok()) return copy_failing(im, *j, items.status());
  return copy_failing(im, *j, im.pipeline.copy(c, *items, fresh_targets, "copy", 10, 99));
}

Status finalize_step(FullCopies::Impl& im, StepContext& c) {
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status();
  auto items = copy_items_of(im, *j, false);
  if (!items.ok()) return copy_failing(im, *j, items.status());
  if (Status s = im.pipeline.make_available(*items); !s.ok()) return copy_failing(im, *j, s);
  const std::string& snap = j->work.cg_snapshot_id;
  const bool inactive = snap.empty();
  const std::string previous = j->copy.cg_snapshot_id;
  Status s = im.change_copy(j->set.id, j->copy.index,
                            {.status = inactive ? CopyStatus::kInactive : CopyStatus::kSynchronized,
                             .cg_snapshot_id = snap,
                             .sync_cg_snapshot_id = "",
                             .message = ""});
  if (!s.ok()) return s;
  if (previous != snap) im.release_snapshot(previous);
  json::array ids;
  for (const auto& it : *items) ids.push_back(json::value(it.dst_volume_id));
  json::object result{{"copySetId", j->set.id},
                      {"copy", j->copy.index},
                      {"clusterId", j->set.cluster_id},
                      {"projectName", j->set.project_name},
                      {"volumeIds", std::move(ids)}};
  if (!inactive) result["cgSnapshotId"] = snap;
  c.set_result(json::serialize(result));
  c.report_progress({100, "done", 0, 0, 0});
  return Status::Ok();
}

}  // namespace

std::function<Status(Txn&, const std::string&)> settle_cancelled_copy(FullCopies::Impl& im) {
  return [&im](Txn& t, const std::string& request) -> Status {
    auto w = FullCopyWork::from_json(request);
    if (!w.ok()) return Status::Ok();
    return CopySetCatalog::settle_cancelled(t, w->copy_set_id, w->copy, im.now_ms());
  };
}

Status register_full_copy_workflows(WorkflowEngine& engine, FullCopies::Impl& im) {
  WorkflowType create{kCreateFullCopy, {}};
  create.steps.push_back(make_step("create-targets", im, create_targets_step, create_targets_undo));
  create.steps.push_back(make_step("group-snapshot", im, snapshot_step));
  auto release = [](FullCopies::Impl& i, StepContext& c) { return i.pipeline.release_data(c); };
  create.steps.push_back(make_step(
      "copy", im, [](FullCopies::Impl& i, StepContext& c) { return copy_step(i, c, true); },
      release));
  create.steps.push_back(make_step("finalize", im, finalize_step));
  if (Status s = EngineTxn::register_type(engine, std::move(create), settle_cancelled_copy(im));
      !s.ok())
    return s;

  for (const char* type : {kActivateFullCopy, kResynchronizeFullCopy}) {
    WorkflowType sync{type, {}};
    sync.steps.push_back(make_step("group-snapshot", im, snapshot_step, snapshot_undo));
    sync.steps.push_back(make_step(
        "copy", im, [](FullCopies::Impl& i, StepContext& c) { return copy_step(i, c, false); },
        release));
    sync.steps.push_back(make_step("finalize", im, finalize_step));
    if (Status s = EngineTxn::register_type(engine, std::move(sync), settle_cancelled_copy(im));
        !s.ok())
      return s;
  }
  return Status::Ok();
}

}  // namespace dmscore::detail
