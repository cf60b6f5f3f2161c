#include "service/groups.hpp"

#include <algorithm>
#include <set>

#include "base/codec.hpp"
#include "service/groups_impl.hpp"

namespace dmscore {

std::string_view to_string(GroupStatus s) {
  switch (s) {
    case GroupStatus::kCreating:
      return "creating";
    case GroupStatus::kAvailable:
      return "available";
    case GroupStatus::kError:
      return "error";
    case GroupStatus::kDeleting:
      return "deleting";
    case GroupStatus::kErrorDeleting:
      return "error_deleting";
  }
  return "error";
}

Result<GroupStatus> parse_group_status(std::string_view text, const std::string& field) {
  for (auto s : {GroupStatus::kCreating, GroupStatus::kAvailable, GroupStatus::kError,
                 GroupStatus::kDeleting, GroupStatus::kErrorDeleting}) {
    if (to_string(s) == text) return s;
  }
  return Status::InvalidArgument(
      field + ": must be one of creating, available, error, deleting, error_deleting");
}

namespace detail {

namespace {

constexpr std::size_t kMaxGroupDescription = 1024;

Status check_ids(const std::vector<std::string>& ids, const std::string& field) {
  if (ids.size() > kMaxGroupMembers)
    return Status::InvalidArgument(field + ": at most " + std::to_string(kMaxGroupMembers) +
                                   " volumes");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!is_uuid(ids[i]))
      return Status::InvalidArgument(field + "[" + std::to_string(i) + "]: must be a UUID");
    if (!seen.insert(ids[i]).second)
      return Status::InvalidArgument(field + "[" + std::to_string(i) + "]: " + ids[i] +
                                     " is listed twice");
  }
  return Status::Ok();
}

}  // namespace

std::string member_snapshot_name(const std::string& name, const Volume& volume) {
  std::string n = name + "-" + volume.name;
  return n.size() <= 256 ? n : name + "-" + volume.id;
}

std::string member_tag(const std::string& cg_snapshot_id) {
  return "cg-snapshot " + cg_snapshot_id;
}

std::string fence_key(const std::string& cluster_id, const std::string& volume_id) {
  return cluster_id + "/" + volume_id;
}

// ---- Impl ----

Result<std::vector<Volume>> Groups::Impl::check_volumes(Backend& b, const std::string& project,
                                                        const std::vector<std::string>& ids,
                                                        const std::string& field) const {
  std::vector<Volume> out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto v = b.get_volume(project, ids[i]);
    const std::string where = field + "[" + std::to_string(i) + "]: ";
    if (!v.ok()) {
      if (v.status().code() == Code::kNotFound)
        return Status::NotFound(where + "volume " + ids[i] + " not found in project " + project);
      return v.status();
    }
    if (v->state != VolumeState::kAvailable)
      return Status::FailedPrecondition(where + "volume " + ids[i] + " is " +
                                        std::string(to_string(v->state)) +
                                        "; members must be Available");
    out.push_back(std::move(v).value());
  }
  return out;
}

Status Groups::Impl::check_not_grouped(Txn& t, const std::string& cluster_id,
                                       const std::vector<std::string>& ids,
                                       const std::string& field) const {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto g = GroupCatalog::group_of_volume(t, cluster_id, ids[i]);
    if (!g.ok()) return g.status();
    if (!g->empty())
      return Status::FailedPrecondition(field + "[" + std::to_string(i) + "]: volume " + ids[i] +
                                        " already belongs to consistency group " + *g);
  }
  return Status::Ok();
}

Result<ConsistencyGroup> Groups::Impl::snapshot_ready(const std::string& id,
                                                      const std::string& field) const {
  auto g = read_group(id);
  if (!g.ok()) return naming(g.status(), field);
  if (g->status != GroupStatus::kAvailable)
    return Status::FailedPrecondition("consistency group " + g->id + " is " +
                                      std::string(to_string(g->status)) +
                                      "; a group snapshot needs it available");
  if (g->volume_ids.empty())
    return Status::FailedPrecondition("consistency group " + g->id + " has no volumes");
  if (restoring_group(g->id))
    return Status::FailedPrecondition("consistency group " + g->id +
                                      " is being restored from a full copy");
  auto b = deps.backend(g->cluster_id, "clusterId");
  if (!b.ok()) return b.status();
  auto vols = check_volumes(**b, g->project_name, g->volume_ids, "volumeIds");
  if (!vols.ok()) return vols.status();
  return g;
}

Result<std::string> Groups::Impl::start_workflow(
    const char* type, std::string request, std::vector<std::string> resources,
    const std::function<Status(Txn&)>& drop,
    const std::function<Status(Txn&, const std::string&)>& record) {
  auto wf = deps.engine->submit(type, std::move(request), std::move(resources));
  if (!wf.ok()) {
    (void)deps.store->transact(drop);  // best effort: recovery settles a row left behind
    return wf.status();
  }
  Status s = deps.store->transact([&](Txn& t) { return record(t, *wf); });
  if (!s.ok()) return s;
  return *wf;
}

Status Groups::Impl::remove_leftovers(Backend& b, const std::string& project,
                                      const std::vector<std::string>& names,
                                      const std::string& id) {
  for (const auto& n : names) {
    auto sn = b.find_snapshot(project, n);
    if (!sn.ok()) {
      if (sn.status().code() == Code::kNotFound) continue;
      return sn.status();
    }
    if (sn->description != member_tag(id)) continue;  // not ours
    Status s = b.delete_snapshot(project, sn->id);
    if (!s.ok() && s.code() != Code::kNotFound) return s;
  }
  return Status::Ok();
}

Status Groups::Impl::remove_member_leftovers(Backend& b, const CgSnapshot& c) {
  auto g = read_group(c.consistency_group_id);
  if (!g.ok()) return Status::Ok();
  std::vector<std::string> names;
  for (const auto& vid : g->volume_ids) {
    auto v = b.get_volume(c.project_name, vid);
    if (v.ok()) names.push_back(member_snapshot_name(c.name, *v));
  }
  return remove_leftovers(b, c.project_name, names, c.id);
}

Groups::Groups(Deps deps) : impl_(new Impl(std::move(deps))) {}
Groups::~Groups() = default;

Status Groups::register_workflows() {
  if (Status s = register_create_cg_snapshot(*impl_->deps.engine, *impl_); !s.ok()) return s;
  return register_create_group_from_snapshot(*impl_->deps.engine, *impl_);
}

Status Groups::recover() {
  return impl_->deps.store->transact([&](Txn& t) -> Status {
    if (Status s = CgSnapshotCatalog::recover(t); !s.ok()) return s;
    return GroupCatalog::fail_unrecorded(t);
  });
}

// ---- groups ----

Result<ConsistencyGroup> Groups::create(const CreateGroupRequest& req) {
  Impl& im = *impl_;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.description.size() > kMaxGroupDescription)
    return Status::InvalidArgument("description: must be at most 1024 bytes");
  if (!req.source_cg_snapshot_id.empty()) return im.create_from_snapshot(req);
  if (req.cluster_id.empty()) return Status::InvalidArgument("clusterId: is required");
  if (!is_uuid(req.cluster_id)) return Status::InvalidArgument("clusterId: must be a UUID");
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = check_ids(req.volume_ids, "volumeIds"); !s.ok()) return s;
  std::shared_lock registry(*im.deps.registry_mu);
  auto b = im.deps.backend(req.cluster_id, "clusterId");
  if (!b.ok()) return b.status();
  std::lock_guard lock(im.mu);
  auto vols = im.check_volumes(**b, req.project_name, req.volume_ids, "volumeIds");
  if (!vols.ok()) return vols.status();
  ConsistencyGroup g;
  g.id = im.deps.env->new_uuid();
  g.name = req.name;
  g.description = req.description;
  g.cluster_id = req.cluster_id;
  g.project_name = req.project_name;
  g.status = GroupStatus::kAvailable;
  g.volume_ids = req.volume_ids;
  g.created_at = g.updated_at = from_millis(im.now_ms());
  Status s = im.deps.store->transact([&](Txn& t) -> Status {
    if (Status c = im.check_not_grouped(t, g.cluster_id, g.volume_ids, "volumeIds"); !c.ok())
      return c;
    Status r = GroupCatalog::insert(t, g);
    if (r.code() == Code::kAlreadyExists)
      return Status::AlreadyExists("name: a consistency group named " + g.name + " already exists");
    return r;
  });
  if (!s.ok()) return s;
  return g;
}

Result<GroupPage> Groups::list(const PageRequest& page) const {
  if (page.page_size < 0 || page.page_size > 1000)
    return Status::InvalidArgument("pageSize: must be 0..1000");
  auto after = parse_page_token(page.page_token, "g");
  if (!after.ok()) return after.status();
  const std::int64_t n = page.page_size == 0 ? 100 : page.page_size;
  return impl_->read<GroupPage>([&](Txn& t) { return GroupCatalog::list(t, *after, n); });
}

Result<ConsistencyGroup> Groups::get(const std::string& id) const { return impl_->read_group(id); }

Result<ConsistencyGroup> Groups::update(const std::string& id, const UpdateGroupRequest& req) {
  Impl& im = *impl_;
  if (req.name) {
    if (Status s = validate_object_name(*req.name, "name"); !s.ok()) return s;
  }
  if (req.description && req.description->size() > kMaxGroupDescription)
    return Status::InvalidArgument("description: must be at most 1024 bytes");
  if (Status s = check_ids(req.add_volume_ids, "addVolumeIds"); !s.ok()) return s;
  if (Status s = check_ids(req.remove_volume_ids, "removeVolumeIds"); !s.ok()) return s;
  for (const auto& v : req.add_volume_ids) {
    if (std::find(req.remove_volume_ids.begin(), req.remove_volume_ids.end(), v) !=
        req.remove_volume_ids.end())
      return Status::InvalidArgument("addVolumeIds: " + v + " is also in removeVolumeIds");
  }
  std::shared_lock registry(*im.deps.registry_mu);
  std::lock_guard lock(im.mu);
  auto g = im.read_group(id);
  if (!g.ok()) return g.status();
  const bool membership = !req.add_volume_ids.empty() || !req.remove_volume_ids.empty();
  if (membership) {
    if (g->status != GroupStatus::kAvailable)
      return Status::FailedPrecondition("consistency group " + id + " is " +
                                        std::string(to_string(g->status)) +
                                        "; members change only while it is available");
    for (std::size_t i = 0; i < req.remove_volume_ids.size(); ++i) {
      const auto& v = req.remove_volume_ids[i];
      if (std::find(g->volume_ids.begin(), g->volume_ids.end(), v) == g->volume_ids.end())
        return Status::InvalidArgument("removeVolumeIds[" + std::to_string(i) + "]: volume " + v +
                                       " is not a member");
    }
    if (g->volume_ids.size() + req.add_volume_ids.size() - req.remove_volume_ids.size() >
        kMaxGroupMembers)
      return Status::InvalidArgument("addVolumeIds: a group holds at most 64 volumes");
  }
  if (!req.add_volume_ids.empty()) {
    auto b = im.deps.backend(g->cluster_id, "clusterId");
    if (!b.ok()) return b.status();
    auto vols = im.check_volumes(**b, g->project_name, req.add_volume_ids, "addVolumeIds");
    if (!vols.ok()) return vols.status();
  }
  Status s = im.deps.store->transact([&](Txn& t) -> Status {
    if (membership) {
      auto busy = CgSnapshotCatalog::creating_of_group(t, id);
      if (!busy.ok()) return busy.status();
      if (!busy->empty())
        return Status::FailedPrecondition("group snapshot " + *busy +
                                          " of the group is being taken; retry when it is done");
      if (Status c = im.check_not_grouped(t, g->cluster_id, req.add_volume_ids, "addVolumeIds");
          !c.ok())
        return c;
    }
    Status r = GroupCatalog::rename(t, id, req.name.value_or(g->name),
                                    req.description.value_or(g->description), im.now_ms());
    if (r.code() == Code::kAlreadyExists)
      return Status::AlreadyExists("name: a consistency group named " + *req.name +
                                   " already exists");
    if (!r.ok()) return r;
    if (Status d = GroupCatalog::remove_members(t, id, req.remove_volume_ids); !d.ok()) return d;
    return GroupCatalog::append_members(t, id, g->cluster_id, req.add_volume_ids);
  });
  if (!s.ok()) return s;
  return im.read_group(id);
}

Status Groups::remove(const std::string& id) {
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  return im.deps.store->transact([&](Txn& t) -> Status {
    auto g = GroupCatalog::get(t, id);
    if (!g.ok()) return g.status();
    if (g->status != GroupStatus::kAvailable && g->status != GroupStatus::kError)
      return Status::FailedPrecondition("consistency group " + id + " is " +
                                        std::string(to_string(g->status)) +
                                        "; only an available or error group can be deleted");
    // Linked copies first: their group snapshots go with them.
    auto copies = im.deps.links->linked_copies_of_group(t, id);
    if (!copies.ok()) return copies.status();
    if (*copies > 0)
      return Status::FailedPrecondition("consistency group " + id + " has " +
                                        std::to_string(*copies) +
                                        " linked full copy(ies); detach them first");
    auto snaps = CgSnapshotCatalog::count_of_group(t, id);
    if (!snaps.ok()) return snaps.status();
    if (*snaps > 0)
      return Status::FailedPrecondition("consistency group " + id + " has " +
                                        std::to_string(*snaps) +
                                        " group snapshot(s); delete them first");
    // Its volumes stay: only the membership goes.
    return GroupCatalog::remove(t, id);
  });
}

Status Groups::reset_status(const std::string& id, GroupStatus status, const std::string& actor) {
  Impl& im = *impl_;
  std::string before;
  {
    std::lock_guard lock(im.mu);
    Status s = im.deps.store->transact([&](Txn& t) -> Status {
      auto g = GroupCatalog::status_of(t, id);
      if (!g.ok()) return g.status();
      if (!*g) return Status::NotFound("consistency group " + id + " not found");
      before = std::string(to_string(**g));
      return GroupCatalog::set_status(t, id, status, im.now_ms());
    });
    if (!s.ok()) return s;
  }
  im.deps.auth->audit("cg_reset_status", {{"user", actor},
                                          {"consistencyGroupId", id},
                                          {"from", before},
                                          {"to", std::string(to_string(status))}});
  return Status::Ok();
}

Status Groups::force_delete(const std::string& id, const std::string& actor) {
  Impl& im = *impl_;
  std::string name;
  {
    std::lock_guard lock(im.mu);
    Status s = im.deps.store->transact([&](Txn& t) -> Status {
      auto g = GroupCatalog::get(t, id);
      if (!g.ok()) return g.status();
      name = g->name;
      // Whatever its status and group snapshots: the record and the membership go, the volumes
      // and any group snapshots stay.
      return GroupCatalog::remove(t, id);
    });
    if (!s.ok()) return s;
  }
  im.deps.auth->audit("cg_force_delete",
                      {{"user", actor}, {"consistencyGroupId", id}, {"name", name}});
  return Status::Ok();
}

// ---- for full copies ----

Result<ConsistencyGroup> Groups::snapshot_ready_group(const std::string& id,
                                                      const std::string& field) const {
  const Impl& im = *impl_;
  std::shared_lock registry(*im.deps.registry_mu);
  std::lock_guard lock(im.mu);
  return im.snapshot_ready(id, field);
}

Status Groups::take_cg_snapshot(StepContext& ctx, const std::string& id) {
  return impl_->take(ctx, id);
}

Status Groups::begin_restore(const std::string& group_id, const std::string& cluster_id,
                             const std::vector<std::string>& volume_ids) {
  Impl& im = *impl_;
  std::vector<std::string> keys;
  {
    std::lock_guard lock(im.restore_mu);
    ++im.restoring_groups[group_id];
    for (const auto& v : volume_ids) {
      keys.push_back(fence_key(cluster_id, v));
      ++im.restoring_volumes[keys.back()];
    }
  }
  // Writes that passed the check before it was set are drained by raising the fence once.
  auto hold = im.fence.raise(keys, im.deps.options->group_snapshot_fence_timeout);
  if (!hold.ok()) {
    end_restore(group_id, cluster_id, volume_ids);
    return hold.status().with_prefix("write fence");
  }
  return Status::Ok();
}

void Groups::end_restore(const std::string& group_id, const std::string& cluster_id,
                         const std::vector<std::string>& volume_ids) {
  Impl& im = *impl_;
  std::lock_guard lock(im.restore_mu);
  auto drop = [](std::map<std::string, int>& m, const std::string& k) {
    auto it = m.find(k);
    if (it != m.end() && --it->second <= 0) m.erase(it);
  };
  drop(im.restoring_groups, group_id);
  for (const auto& v : volume_ids) drop(im.restoring_volumes, fence_key(cluster_id, v));
}

// ---- refusals ----

Status Groups::check_volume_free(const std::string& cluster_id,
                                 const std::string& volume_id) const {
  const Impl& im = *impl_;
  return im.deps.store->read([&](Txn& t) -> Status {
    auto group = GroupCatalog::group_of_volume(t, cluster_id, volume_id);
    if (!group.ok()) return group.status();
    if (!group->empty())
      return Status::FailedPrecondition("volume " + volume_id + " belongs to consistency group " +
                                        *group + "; remove it from the group first");
    auto copy = im.deps.links->copy_holding_volume(t, cluster_id, volume_id);
    if (!copy.ok()) return copy.status();
    if (!copy->empty())
      return Status::FailedPrecondition("volume " + volume_id + " is a full copy (copy set " +
                                        *copy + "); detach the copy first");
    return Status::Ok();
  });
}

Status Groups::check_snapshot_free(const std::string& snapshot_id) const {
  return impl_->deps.store->read([&](Txn& t) -> Status {
    auto cg = CgSnapshotCatalog::holding_snapshot(t, snapshot_id);
    if (!cg.ok()) return cg.status();
    if (!cg->empty())
      return Status::FailedPrecondition("snapshot " + snapshot_id + " belongs to group snapshot " +
                                        *cg + "; delete the group snapshot instead");
    return Status::Ok();
  });
}

Status Groups::check_cluster_free(const std::string& cluster_id) const {
  const Impl& im = *impl_;
  return im.deps.store->read([&](Txn& t) -> Status {
    auto groups = GroupCatalog::count_on_cluster(t, cluster_id);
    if (!groups.ok()) return groups.status();
    auto snaps = CgSnapshotCatalog::count_on_cluster(t, cluster_id);
    if (!snaps.ok()) return snaps.status();
    auto copies = im.deps.links->linked_copies_on_cluster(t, cluster_id);
    if (!copies.ok()) return copies.status();
    if (*copies > 0)
      return Status::FailedPrecondition("cluster " + cluster_id + " holds " +
                                        std::to_string(*copies) +
                                        " linked full copy(ies); detach them first");
    if (*groups > 0 || *snaps > 0)
      return Status::FailedPrecondition("cluster " + cluster_id + " holds " +
                                        std::to_string(*groups) + " consistency group(s) and " +
                                        std::to_string(*snaps) +
                                        " group snapshot(s); delete them first");
    return Status::Ok();
  });
}

// ---- write path ----

Status Groups::write_volume(const std::string& cluster_id, const std::string& project,
                            const std::string& volume_id, std::uint64_t offset,
                            std::string_view data, bool durable) {
  Impl& im = *impl_;
  constexpr std::size_t kMaxWrite = 64u << 20;
  if (data.size() > kMaxWrite) return Status::InvalidArgument("data: at most 64 MiB per write");
  auto b = im.backend_locked(cluster_id);
  if (!b.ok()) return b.status();
  auto v = (*b)->get_volume(project, volume_id);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable)
    return Status::FailedPrecondition("volume " + volume_id + " is " +
                                      std::string(to_string(v->state)));
  if (offset > v->size || data.size() > v->size - offset)
    return Status::InvalidArgument("offset: the write ends past the volume's " +
                                   std::to_string(v->size) + " bytes");
  if (im.restoring_volume(fence_key(cluster_id, volume_id)))
    return Status::FailedPrecondition("volume " + volume_id +
                                      " is being restored from a full copy; retry when the "
                                      "restore has ended");
  // Held for the whole write, so a group snapshot sees all of it or none of it.
  auto pass = im.fence.enter(fence_key(cluster_id, volume_id),
                             im.deps.options->group_snapshot_fence_timeout * 2);
  if (!pass.ok()) return pass.status();
  auto sink = (*b)->open_volume_sink(project, volume_id, false, DataAccess{});
  if (!sink.ok()) return sink.status();
  if (!data.empty()) {
    if (Status s = (*sink)->write_at(offset, data.data(), data.size()); !s.ok()) return s;
  }
  if (durable) return (*sink)->sync();
  return Status::Ok();
}

}  // namespace detail
}  // namespace dmscore
