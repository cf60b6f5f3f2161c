#include "service/full_copies.hpp"

#include <algorithm>
#include <set>

#include "base/codec.hpp"
#include "catalog/rows.hpp"
#include "dmscore/service.hpp"
#include "service/full_copies_impl.hpp"

namespace dmscore {

std::string_view to_string(CopyStatus s) {
  switch (s) {
    case CopyStatus::kCreating:
      return "creating";
    case CopyStatus::kInactive:
      return "inactive";
    case CopyStatus::kSynchronizing:
      return "synchronizing";
    case CopyStatus::kSynchronized:
      return "synchronized";
    case CopyStatus::kRestoring:
      return "restoring";
    case CopyStatus::kDetached:
      return "detached";
    case CopyStatus::kError:
      return "error";
  }
  return "error";
}

std::string_view to_string(CopyAction a) {
  switch (a) {
    case CopyAction::kActivate:
      return "activate";
    case CopyAction::kDetach:
      return "detach";
    case CopyAction::kResynchronize:
      return "resynchronize";
    case CopyAction::kRestore:
      return "restore";
  }
  return "activate";
}

namespace detail {

namespace {

constexpr int kMaxCopies = 8;

VolumeCopy::Deps pipeline_deps(const FullCopies::Deps& d) {
  VolumeCopy::Deps p;
  p.options = d.options;
  p.env = d.env;
  p.backend = [mu = d.registry_mu, backend = d.backend](const std::string& cluster_id) {
    std::shared_lock lock(*mu);
    return backend(cluster_id, "clusterId");
  };
  p.copy_bytes = d.copy_bytes;
  p.verify_bytes = d.verify_bytes;
  return p;
}

}  // namespace

std::string target_name(const std::string& prefix, const std::string& volume_name,
                        std::size_t position) {
  std::string n = prefix + "-" + volume_name;
  return n.size() <= 256 && !volume_name.empty() ? n : prefix + "-" + std::to_string(position + 1);
}

// ---- Impl ----

Result<CopySet> FullCopies::Impl::read_set(const std::string& id) const {
  return rows::read<CopySet>(*deps.store, [&](Txn& t) { return CopySetCatalog::get(t, id); });
}

Status FullCopies::Impl::change_copy(const std::string& set_id, int idx,
                                     const CopySetCatalog::CopyChange& c) {
  return deps.store->transact(
      [&](Txn& t) { return CopySetCatalog::update_copy(t, set_id, idx, c, now_ms()); });
}

void FullCopies::Impl::release_snapshot(const std::string& id) {
  if (id.empty()) return;
  std::int64_t refs = 1;
  std::string owner;
  Status s = deps.store->read([&](Txn& t) -> Status {
    auto r = CopySetCatalog::refs_to_snapshot(t, id);
    if (!r.ok()) return r.status();
    refs = *r;
    auto o = CgSnapshotCatalog::copy_set_of(t, id);
    if (!o.ok()) return o.status();
    owner = *o;
    return Status::Ok();
  });
  if (!s.ok() || refs > 0 || owner.empty()) return;
  Status d = deps.groups->drop_cg_snapshot(id);
  if (!d.ok())
    deps.options->log("copy set " + owner + ": cannot delete group snapshot " + id + ": " +
                      d.message());
}

Status FullCopies::Impl::release_orphans() {
  std::vector<std::string> taken;
  Status s = deps.store->read([&](Txn& t) -> Status {
    auto o = CgSnapshotCatalog::taken_for_copy_sets(t);
    if (!o.ok()) return o.status();
    taken = std::move(o).value();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  for (const auto& id : taken) release_snapshot(id);  // keeps those a copy refers to
  return Status::Ok();
}

Status FullCopies::Impl::insert_snapshot(Txn& t, const std::string& snap_id,
                                         const ConsistencyGroup& g, const CopySet& set,
                                         const std::string& workflow_id) {
  CgSnapshot c;
  c.id = snap_id;
  c.consistency_group_id = g.id;
  c.name = set.name.substr(0, kMaxCopySetName - 9) + "-" + snap_id.substr(0, 8);
  c.description = "full copies " + set.id;
  c.cluster_id = g.cluster_id;
  c.project_name = g.project_name;
  c.workflow_id = workflow_id;
  c.created_at = from_millis(now_ms());
  return CgSnapshotCatalog::insert(t, c, set.id);
}

FullCopies::FullCopies(Deps deps) : impl_(new Impl(deps, VolumeCopy(pipeline_deps(deps)))) {}
FullCopies::~FullCopies() = default;

Status FullCopies::register_workflows() {
  WorkflowEngine& engine = *impl_->deps.engine;
  if (Status s = register_full_copy_workflows(engine, *impl_); !s.ok()) return s;
  if (Status s = register_restore_full_copy(engine, *impl_); !s.ok()) return s;
  return register_thick_clone_group(engine, *impl_);
}

Status FullCopies::recover() { return impl_->release_orphans(); }

Status FullCopies::workflow_cancelled() { return impl_->release_orphans(); }

namespace {

Status check_create(const CreateFullCopiesRequest& req, std::set<std::string>& wanted) {
  if (!is_uuid(req.consistency_group_id))
    return Status::InvalidArgument("consistencyGroupId: must be a UUID");
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.name.size() > kMaxCopySetName)
    return Status::InvalidArgument("name: must be at most 128 characters");
  if (req.count < 1 || req.count > kMaxCopies)
    return Status::InvalidArgument("count: must be 1..8");
  if (!req.partial && !req.volume_ids.empty())
    return Status::InvalidArgument(
        "volumeIds: only with partial (without it every member is copied)");
  if (req.partial && req.volume_ids.empty())
    return Status::InvalidArgument("volumeIds: partial needs at least one member volume");
  for (std::size_t i = 0; i < req.volume_ids.size(); ++i) {
    if (!is_uuid(req.volume_ids[i]))
      return Status::InvalidArgument("volumeIds[" + std::to_string(i) + "]: must be a UUID");
    if (!wanted.insert(req.volume_ids[i]).second)
      return Status::InvalidArgument("volumeIds[" + std::to_string(i) + "]: " + req.volume_ids[i] +
                                     " is listed twice");
  }
  if (!req.cluster_id.empty() && !is_uuid(req.cluster_id))
    return Status::InvalidArgument("clusterId: must be a UUID");
  if (!req.project_name.empty()) {
    if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  }
  return Status::Ok();
}

// The copies `set` plans for: one volume per copied member, each name free on the destination.
Status plan_copies(const FullCopies::Impl& im, CopySet& set, const ConsistencyGroup& g,
                   const CreateFullCopiesRequest& req, const std::set<std::string>& wanted) {
  std::shared_lock registry(*im.deps.registry_mu);
  auto src = im.deps.backend(g.cluster_id, "clusterId");
  if (!src.ok()) return src.status();
  auto dst = im.deps.backend(set.cluster_id, "clusterId");
  if (!dst.ok()) return dst.status();
  std::vector<Volume> sources;
  for (const auto& vid : g.volume_ids) {
    if (req.partial && !wanted.count(vid)) continue;
    auto v = (*src)->get_volume(g.project_name, vid);
    if (!v.ok()) return v.status();
    sources.push_back(std::move(v).value());
  }
  for (int k = 1; k <= req.count; ++k) {
    FullCopy f;
    f.index = k;
    for (std::size_t p = 0; p < sources.size(); ++p) {
      FullCopyVolume fv;
      fv.source_volume_id = sources[p].id;
      fv.name = target_name(req.name + "-" + std::to_string(k), sources[p].name, p);
      fv.size = sources[p].size;
      auto taken = (*dst)->find_volume(set.project_name, fv.name);
      if (taken.ok())
        return Status::AlreadyExists("name: a volume named " + fv.name +
                                     " already exists in project " + set.project_name);
      if (!taken.status().is_not_found()) return taken.status();
      f.volumes.push_back(std::move(fv));
    }
    set.copies.push_back(std::move(f));
  }
  return Status::Ok();
}

}  // namespace

Result<CopySetWork> FullCopies::create(const CreateFullCopiesRequest& req) {
  Impl& im = *impl_;
  std::set<std::string> wanted;
  if (Status s = check_create(req, wanted); !s.ok()) return s;
  auto g = im.deps.groups->snapshot_ready_group(req.consistency_group_id, "consistencyGroupId");
  if (!g.ok()) return g.status();
  for (std::size_t i = 0; i < req.volume_ids.size(); ++i) {
    if (std::find(g->volume_ids.begin(), g->volume_ids.end(), req.volume_ids[i]) ==
        g->volume_ids.end())
      return Status::InvalidArgument("volumeIds[" + std::to_string(i) + "]: volume " +
                                     req.volume_ids[i] + " is not a member of the group");
  }
  CopySet set;
  set.id = im.deps.env->new_uuid();
  set.name = req.name;
  set.consistency_group_id = g->id;
  set.cluster_id = req.cluster_id.empty() ? g->cluster_id : req.cluster_id;
  set.project_name = req.project_name.empty() ? g->project_name : req.project_name;
  set.count = req.count;
  set.partial = req.partial;
  set.create_inactive = req.create_inactive;
  set.created_at = from_millis(im.now_ms());
  if (Status s = plan_copies(im, set, *g, req, wanted); !s.ok()) return s;
  const std::string snap = req.create_inactive ? "" : im.deps.env->new_uuid();
  std::vector<WorkflowEngine::Submission> batch;
  for (int k = 1; k <= req.count; ++k)
    batch.push_back({kCreateFullCopy,
                     FullCopyWork{set.id, k, snap}.to_json(),
                     {"group:" + g->id, "cluster:" + g->cluster_id, "cluster:" + set.cluster_id}});
  auto ids = EngineTxn::submit_all(
      *im.deps.engine, std::move(batch), [&](Txn& t, const std::vector<std::string>& wf) -> Status {
        for (auto& f : set.copies) {
          f.workflow_id = wf[static_cast<std::size_t>(f.index - 1)];
          f.updated_at = set.created_at;
        }
        Status r = CopySetCatalog::insert(t, set, snap);
        if (r.code() == Code::kAlreadyExists)
          return Status::AlreadyExists("name: the group already has a copy set named " + set.name);
        if (!r.ok()) return r;
        if (!snap.empty()) return im.insert_snapshot(t, snap, *g, set, wf[0]);
        return Status::Ok();
      });
  if (!ids.ok()) return ids.status();
  CopySetWork out;
  out.copy_set = std::move(set);
  for (const auto& f : out.copy_set.copies) out.workflows.push_back({f.index, f.workflow_id});
  return out;
}

Result<CopySetPage> FullCopies::list(const std::string& group_id, const PageRequest& page) const {
  if (page.page_size < 0 || page.page_size > 1000)
    return Status::InvalidArgument("pageSize: must be 0..1000");
  auto after = parse_page_token(page.page_token, "f");
  if (!after.ok()) return after.status();
  auto g = impl_->deps.groups->get(group_id);
  if (!g.ok()) return g.status();
  const std::int64_t n = page.page_size == 0 ? 100 : page.page_size;
  return rows::read<CopySetPage>(
      *impl_->deps.store, [&](Txn& t) { return CopySetCatalog::list(t, group_id, *after, n); });
}

Result<CopySet> FullCopies::get(const std::string& group_id, const std::string& id) const {
  auto g = impl_->deps.groups->get(group_id);
  if (!g.ok()) return g.status();
  auto c = impl_->read_set(id);
  if (!c.ok()) return c.status();
  if (c->consistency_group_id != group_id)
    return Status::NotFound("copy set " + id + " not found in consistency group " + group_id);
  return c;
}

}  // namespace detail
}  // namespace dmscore
