// Groups' requests about group snapshots: create (its workflow takes it, see
// workflows/create_cg_snapshot.hpp), list, get, delete.

#include "service/groups_impl.hpp"
#include "workflows/create_cg_snapshot.hpp"

namespace dmscore::detail {

namespace {
constexpr std::size_t kMaxCgSnapshotName = 128;
}  // namespace

Result<CgSnapshot> Groups::create_cg_snapshot(const CreateCgSnapshotRequest& req) {
  Impl& im = *impl_;
  if (!is_uuid(req.consistency_group_id))
    return Status::InvalidArgument("consistencyGroupId: must be a UUID");
  if (!req.name.empty()) {
    if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
    if (req.name.size() > kMaxCgSnapshotName)
      return Status::InvalidArgument("name: must be at most 128 characters");
  }
  if (req.description.size() > 256)
    return Status::InvalidArgument("description: must be at most 256 bytes");
  CgSnapshot c;
  c.id = im.deps.env->new_uuid();
  c.name = req.name.empty() ? "cgsnap-" + c.id.substr(0, 8) : req.name;
  c.description = req.description;
  c.consistency_group_id = req.consistency_group_id;
  c.status = GroupStatus::kCreating;
  c.created_at = from_millis(im.now_ms());
  std::vector<std::string> resources;
  {
    std::shared_lock registry(*im.deps.registry_mu);
    std::lock_guard lock(im.mu);
    auto g = im.snapshot_ready(req.consistency_group_id, "consistencyGroupId");
    if (!g.ok()) return g.status();
    c.cluster_id = g->cluster_id;
    c.project_name = g->project_name;
    resources.push_back("cluster:" + g->cluster_id);
    for (const auto& v : g->volume_ids) resources.push_back("volume:" + v);
    Status s = im.deps.store->transact([&](Txn& t) -> Status {
      Status r = CgSnapshotCatalog::insert(t, c);
      if (r.code() == Code::kAlreadyExists)
        return Status::AlreadyExists("name: the group already has a group snapshot named " +
                                     c.name);
      return r;
    });
    if (!s.ok()) return s;
  }
  auto wf = im.start_workflow(
      kCreateCgSnapshot, CreateCgSnapshotWork{c.id}.to_json(), std::move(resources),
      [&](Txn& t) { return CgSnapshotCatalog::remove(t, c.id); },
      [&](Txn& t, const std::string& w) { return CgSnapshotCatalog::set_workflow(t, c.id, w); });
  if (!wf.ok()) return wf.status();
  c.workflow_id = *wf;
  return c;
}

Result<CgSnapshotPage> Groups::list_cg_snapshots(const PageRequest& page,
                                                 const std::string& group_id) const {
  if (page.page_size < 0 || page.page_size > 1000)
    return Status::InvalidArgument("pageSize: must be 0..1000");
  if (!group_id.empty() && !is_uuid(group_id))
    return Status::InvalidArgument("consistencyGroupId: must be a UUID");
  auto after = parse_page_token(page.page_token, "s");
  if (!after.ok()) return after.status();
  const std::int64_t n = page.page_size == 0 ? 100 : page.page_size;
  return impl_->read<CgSnapshotPage>(
      [&](Txn& t) { return CgSnapshotCatalog::list(t, *after, n, group_id); });
}

Result<CgSnapshot> Groups::get_cg_snapshot(const std::string& id) const {
  return impl_->read_cg_snapshot(id);
}

Status Groups::delete_cg_snapshot(const std::string& id) {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  auto c = im.read_cg_snapshot(id);
  if (!c.ok()) return c.status();
  auto copy =
      im.read<std::string>([&](Txn& t) { return im.deps.links->copy_using_snapshot(t, id); });
  if (!copy.ok()) return copy.status();
  if (!copy->empty())
    return Status::FailedPrecondition("group snapshot " + id + " is the source of copy set " +
                                      *copy + "; detach or resynchronize the copy instead");
  if (c->status != GroupStatus::kAvailable && c->status != GroupStatus::kError &&
      c->status != GroupStatus::kErrorDeleting)
    return Status::FailedPrecondition("group snapshot " + id + " is " +
                                      std::string(to_string(c->status)) +
                                      "; only an available, error or error_deleting one can be "
                                      "deleted");
  for (const auto& m : c->members) {
    auto busy = im.deps.engine->resource_in_use("snapshot:" + m.snapshot_id);
    if (!busy.ok()) return busy.status();
    if (*busy)
      return Status::FailedPrecondition("member snapshot " + m.snapshot_id +
                                        " is read by a running workflow; wait for it or cancel it");
  }
  auto b = im.backend_locked(c->cluster_id);
  if (!b.ok()) return b.status();
  Status s = im.deps.store->transact(
      [&](Txn& t) { return CgSnapshotCatalog::set_status(t, id, GroupStatus::kDeleting, ""); });
  if (!s.ok()) return s;
  lock.unlock();
  Status failed = Status::Ok();
  for (const auto& m : c->members) {
    Status d = (*b)->delete_snapshot(c->project_name, m.snapshot_id);
    if (!d.ok() && d.code() != Code::kNotFound) {
      failed = d;
      break;
    }
  }
  if (failed.ok()) {
    // An error one may hold leftovers of its interrupted creation under the member names.
    failed = im.remove_member_leftovers(**b, *c);
  }
  if (!failed.ok()) {
    (void)im.deps.store->transact([&](Txn& t) {
      return CgSnapshotCatalog::set_status(t, id, GroupStatus::kErrorDeleting, failed.message());
    });
    return failed;
  }
  return im.deps.store->transact([&](Txn& t) { return CgSnapshotCatalog::remove(t, id); });
}

Status Groups::drop_cg_snapshot(const std::string& id) {
  Impl& im = *impl_;
  auto c = im.read_cg_snapshot(id);
  if (!c.ok()) return c.status().is_not_found() ? Status::Ok() : c.status();
  auto b = im.backend_locked(c->cluster_id);
  if (!b.ok()) return b.status();
  for (const auto& m : c->members) {
    Status d = (*b)->delete_snapshot(c->project_name, m.snapshot_id);
    if (!d.ok() && d.code() != Code::kNotFound) return d;
  }
  // Leftovers of an interrupted try are tagged with its id.
  if (Status s = im.remove_member_leftovers(**b, *c); !s.ok()) return s;
  return im.deps.store->transact([&](Txn& t) { return CgSnapshotCatalog::remove(t, id); });
}

}  // namespace dmscore::detail
