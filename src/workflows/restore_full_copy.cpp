#include "workflows/restore_full_copy.hpp"

#include "service/full_copies_impl.hpp"
#include "workflows/full_copy.hpp"

namespace dmscore::detail {

namespace json = boost::json;

namespace {

Status restore_step(FullCopies::Impl& im, StepContext& c) {
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status();
  std::vector<CopyItem> items;
  std::vector<std::string> sources;
  for (const auto& v : j->copy.volumes) {
    CopyItem it;
    it.src_cluster = j->set.cluster_id;
    it.src_project = j->set.project_name;
    it.src_volume_id = v.volume_id;
    it.dst_cluster = j->group_cluster;
    it.dst_project = j->group_project;
    it.dst_volume_id = v.source_volume_id;
    it.size = v.size;
    items.push_back(std::move(it));
    sources.push_back(v.source_volume_id);
  }
  Status held =
      im.deps.groups->begin_restore(j->set.consistency_group_id, j->group_cluster, sources);
  if (!held.ok()) return copy_failing(im, *j, held);
  Status s = im.pipeline.copy(c, items, false, "restore", 0, 99);
  im.deps.groups->end_restore(j->set.consistency_group_id, j->group_cluster, sources);
  if (!s.ok()) return copy_failing(im, *j, s);
  s = im.change_copy(j->set.id, j->copy.index,
                     {.status = CopyStatus::kSynchronized, .message = ""});
  if (!s.ok()) return s;
  c.set_result(json::serialize(json::object{{"copySetId", j->set.id},
                                            {"copy", j->copy.index},
                                            {"consistencyGroupId", j->set.consistency_group_id}}));
  c.report_progress({100, "done", 0, 0, 0});
  return Status::Ok();
}

Status restore_undo(FullCopies::Impl& im, StepContext& c) {
  if (Status s = im.pipeline.release_data(c); !s.ok()) return s;
  auto j = load_full_copy_job(im, c.request());
  if (!j.ok()) return j.status().is_not_found() ? Status::Ok() : j.status();
  const std::string why = "restore from copy set " + j->set.id + " copy " +
                          std::to_string(j->copy.index) +
                          (c.should_stop() ? " was cancelled" : " failed") +
                          "; the source volumes hold partly restored data";
  return im.deps.store->transact([&](Txn& t) -> Status {
    Status r = CopySetCatalog::update_copy(t, j->set.id, j->copy.index,
                                           {.status = CopyStatus::kSynchronized, .message = why},
                                           im.now_ms());
    if (!r.ok()) return r;
    return GroupCatalog::set_status(t, j->set.consistency_group_id, GroupStatus::kError,
                                    im.now_ms(), why);
  });
}

}  // namespace

Status register_restore_full_copy(WorkflowEngine& engine, FullCopies::Impl& im) {
  Step step;
  step.name = "restore";
  step.run = [&im](StepContext& c) { return restore_step(im, c); };
  step.undo = [&im](StepContext& c) { return restore_undo(im, c); };
  return EngineTxn::register_type(engine, {kRestoreFullCopy, {std::move(step)}},
                                  settle_cancelled_copy(im));
}

}  // namespace dmscore::detail
