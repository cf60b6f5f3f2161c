#include "service/full_copies.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <mutex>
#include <optional>
#include <set>

#include "base/codec.hpp"
#include "workflows/volume_copy.hpp"
#include "copy/copy_options.hpp"
#include "dmscore/copy.hpp"
#include "dmscore/service.hpp"
#include "base/util.hpp"

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

namespace json = boost::json;

namespace {

constexpr int kMaxCopies = 8;
constexpr std::size_t kMaxSetName = 128;
constexpr const char* kSetCols =
    "id, name, group_id, cluster_id, project, copy_count, partial, create_inactive, created_at, "
    "seq";

CopyStatus copy_status_from(const std::string& s) {
  for (auto c : {CopyStatus::kCreating, CopyStatus::kInactive, CopyStatus::kSynchronizing,
                 CopyStatus::kSynchronized, CopyStatus::kRestoring, CopyStatus::kDetached}) {
    if (to_string(c) == s) return c;
  }
  return CopyStatus::kError;
}

CopySet set_from(const Row& r) {
  CopySet c;
  c.id = r.text(0);
  c.name = r.text(1);
  c.consistency_group_id = r.text(2);
  c.cluster_id = r.text(3);
  c.project_name = r.text(4);
  c.count = static_cast<int>(r.int64(5));
  c.partial = r.int64(6) != 0;
  c.create_inactive = r.int64(7) != 0;
  c.created_at = from_millis(r.int64(8));
  return c;
}

Status load_copies(Txn& t, CopySet& c) {
  auto r = t.query(
      "SELECT idx, status, cg_snapshot_id, workflow_id, message, updated_at FROM full_copies "
      "WHERE copy_set_id = ? ORDER BY idx",
      {c.id});
  if (!r.ok()) return r.status();
  for (auto& row : *r) {
    FullCopy f;
    f.index = static_cast<int>(row.int64(0));
    f.status = copy_status_from(row.text(1));
    f.cg_snapshot_id = row.text(2);
    f.workflow_id = row.text(3);
    f.message = row.text(4);
    f.updated_at = from_millis(row.int64(5));
    c.copies.push_back(std::move(f));
  }
  auto v = t.query(
      "SELECT idx, source_volume_id, volume_id, name, size FROM full_copy_volumes WHERE "
      "copy_set_id = ? ORDER BY idx, position",
      {c.id});
  if (!v.ok()) return v.status();
  for (auto& row : *v) {
    auto i = static_cast<std::size_t>(row.int64(0));
    if (i < 1 || i > c.copies.size()) continue;
    c.copies[i - 1].volumes.push_back(
        {row.text(1), row.text(2), row.text(3), static_cast<std::uint64_t>(row.int64(4))});
  }
  return Status::Ok();
}

// "<prefix>-<source volume name>", or "<prefix>-<position>" when that is too long.
std::string target_name(const std::string& prefix, const std::string& volume_name,
                        std::size_t position) {
  std::string n = prefix + "-" + volume_name;
  return n.size() <= 256 && !volume_name.empty() ? n : prefix + "-" + std::to_string(position + 1);
}

}  // namespace

struct FullCopies::Impl {
  Deps deps;
  VolumeCopy pipeline;
  // One group snapshot is taken at a time on behalf of copies, so the copies of one request
  // that share it do not take it twice.
  std::mutex take_mu;

  std::int64_t now_ms() const { return to_millis(deps.env->now()); }

  Result<std::shared_ptr<Backend>> backend_locked(const std::string& cluster_id,
                                                  const std::string& field = "clusterId") const {
    std::shared_lock lock(*deps.registry_mu);
    return deps.backend(cluster_id, field);
  }

  Result<CopySet> read_set(const std::string& id) const {
    std::optional<CopySet> out;
    Status s = deps.store->read([&](Txn& t) -> Status {
      auto r =
          t.query_one(std::string("SELECT ") + kSetCols + " FROM copy_sets WHERE id = ?", {id});
      if (!r.ok()) return r.status();
      if (!*r) return Status::NotFound("copy set " + id + " not found");
      out = set_from(**r);
      return load_copies(t, *out);
    });
    if (!s.ok()) return s;
    return *out;
  }

  Status set_copy(const std::string& set_id, int idx, const std::string& assignments,
                  std::vector<SqlValue> params) {
    params.push_back(now_ms());
    params.push_back(set_id);
    params.push_back(static_cast<std::int64_t>(idx));
    return deps.store->transact([&](Txn& t) {
      return t
          .exec("UPDATE full_copies SET " + assignments +
                    ", updated_at = ? WHERE copy_set_id = ? AND idx = ?",
                params)
          .status();
    });
  }

  // Deletes group snapshot `id` when it belongs to a copy set and no copy refers to it.
  void release_snapshot(const std::string& id) {
    if (id.empty()) return;
    std::int64_t refs = 1;
    std::string owner;
    Status s = deps.store->read([&](Txn& t) -> Status {
      auto r = t.query_one(
          "SELECT COUNT(*) FROM full_copies WHERE cg_snapshot_id = ?1 OR sync_cg_snapshot_id = ?1",
          {id});
      if (!r.ok()) return r.status();
      refs = (*r)->int64(0);
      auto o = t.query_one("SELECT copy_set_id FROM cg_snapshots WHERE id = ?", {id});
      if (!o.ok()) return o.status();
      if (*o) owner = (*o)->text(0);
      return Status::Ok();
    });
    if (!s.ok() || refs > 0 || owner.empty()) return;
    Status d = deps.groups->drop_cg_snapshot(id);
    if (!d.ok())
      deps.options->log("copy set " + owner + ": cannot delete group snapshot " + id + ": " +
                        d.message());
  }

  // Group snapshots taken for copies that no copy refers to any more (their last copy was
  // cancelled before it ran, or a crash came between a copy's end and the release) go.
  Status release_orphans() {
    std::vector<std::string> orphans;
    Status s = deps.store->read([&](Txn& t) -> Status {
      auto o = t.query(
          "SELECT id FROM cg_snapshots s WHERE copy_set_id <> '' AND NOT EXISTS (SELECT 1 FROM "
          "full_copies f WHERE f.cg_snapshot_id = s.id OR f.sync_cg_snapshot_id = s.id)");
      if (!o.ok()) return o.status();
      for (auto& row : *o) orphans.push_back(row.text(0));
      return Status::Ok();
    });
    if (!s.ok()) return s;
    for (const auto& id : orphans) release_snapshot(id);
    return Status::Ok();
  }

  // WorkflowType::cancelled_before_start of the copy workflows: the copy leaves its busy
  // status in the cancel's transaction (a restore that never ran leaves the copy as it was).
  static Status settle_copy(Txn& t, const std::string& request, std::int64_t now) {
    auto v = parse_json(request);
    const auto* o = v.ok() ? v->if_object() : nullptr;
    if (!o || !o->contains("copySetId") || !o->contains("copy")) return Status::Ok();
    const std::string set(o->at("copySetId").as_string());
    const auto idx = o->at("copy").to_number<std::int64_t>();
    auto r = t.exec(
        "UPDATE full_copies SET status = 'error', sync_cg_snapshot_id = '', message = 'its "
        "workflow was cancelled before it started', updated_at = ? WHERE copy_set_id = ? AND "
        "idx = ? AND status IN ('creating', 'synchronizing')",
        {now, set, idx});
    if (!r.ok()) return r.status();
    return t
        .exec(
            "UPDATE full_copies SET status = 'synchronized', message = 'the restore was "
            "cancelled before it started', updated_at = ? WHERE copy_set_id = ? AND idx = ? AND "
            "status = 'restoring'",
            {now, set, idx})
        .status();
  }

  static Status settle_group(Txn& t, const std::string& request, std::int64_t now) {
    auto v = parse_json(request);
    const auto* o = v.ok() ? v->if_object() : nullptr;
    const auto* id = o ? o->if_contains("consistencyGroupId") : nullptr;
    if (!id || !id->is_string()) return Status::Ok();
    return t
        .exec(
            "UPDATE consistency_groups SET status = 'error', message = 'its workflow was "
            "cancelled before it started', updated_at = ? WHERE id = ? AND status = 'creating'",
            {now, std::string(id->as_string())})
        .status();
  }

  // ---- shared by copies and group thick clones ----

  // ---- copies ----

  struct Job {
    CopySet set;
    FullCopy copy;
    std::string group_cluster;
    std::string group_project;
    // The group snapshot this workflow copies from ("" for an inactive copy's creation).
    std::string cg_snapshot_id;
  };

  Result<Job> load_job(StepContext& c) const {
    auto v = parse_json(c.request());
    if (!v.ok()) return v.status();
    const auto* o = v->if_object();
    if (!o || !o->contains("copySetId") || !o->contains("copy"))
      return Status::InvalidArgument("request: copySetId and copy are required");
    Job j;
    auto set = read_set(std::string(o->at("copySetId").as_string()));
    if (!set.ok()) return set.status();
    j.set = std::move(set).value();
    const auto idx = o->at("copy").to_number<std::int64_t>();
    if (idx < 1 || idx > static_cast<std::int64_t>(j.set.copies.size()))
      return Status::InvalidArgument("request: copy out of range");
    j.copy = j.set.copies[static_cast<std::size_t>(idx - 1)];
    if (const auto* s = o->if_contains("cgSnapshotId"); s && s->is_string())
      j.cg_snapshot_id = std::string(s->as_string());
    auto g = deps.groups->get(j.set.consistency_group_id);
    if (!g.ok()) return g.status();
    j.group_cluster = g->cluster_id;
    j.group_project = g->project_name;
    return j;
  }

  // Copy `j`'s volumes as items: from the group snapshot's member snapshots into the copy.
  Result<std::vector<CopyItem>> copy_items_of(const Job& j, bool with_sources) const {
    std::optional<CgSnapshot> snap;
    if (with_sources) {
      auto s = deps.groups->get_cg_snapshot(j.cg_snapshot_id);
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

  // The copy's failure: its message now (its status goes to error in compensation).
  Status failing(const Job& j, Status s) {
    if (!s.ok() && s.code() != Code::kCancelled)
      (void)set_copy(j.set.id, j.copy.index, "message = ?", {s.message().substr(0, 1024)});
    return s;
  }

  Status create_targets_step(StepContext& c) {
    auto j = load_job(c);
    if (!j.ok()) return j.status();
    auto items = copy_items_of(*j, false);
    if (!items.ok()) return failing(*j, items.status());
    // Attributes of the source volumes (replicas, sector size, compression).
    auto src = backend_locked(j->group_cluster);
    for (auto& it : *items) {
      if (!src.ok()) break;
      auto v = (*src)->get_volume(j->group_project, it.src_volume_id);
      if (!v.ok()) continue;
      it.replica = v->replica_count;
      it.sector_size = v->sector_size;
      it.compression = v->compression;
    }
    Status s = pipeline.create_targets(c, *items, [&](std::size_t i, const std::string& id) {
      return deps.store->transact([&](Txn& t) {
        return t
            .exec(
                "UPDATE full_copy_volumes SET volume_id = ? WHERE copy_set_id = ? AND idx = ? "
                "AND position = ?",
                {id, j->set.id, static_cast<std::int64_t>(j->copy.index),
                 static_cast<std::int64_t>(i)})
            .status();
      });
    });
    return failing(*j, s);
  }

  // Compensation of a copy's creation: its volumes go; the copy ends in error.
  Status create_targets_undo(StepContext& c) {
    auto j = load_job(c);
    if (!j.ok()) return j.status().is_not_found() ? Status::Ok() : j.status();
    auto items = copy_items_of(*j, false);
    if (!items.ok()) return items.status();
    if (Status s = pipeline.delete_targets(c, *items); !s.ok()) return s;
    return end_in_error(c, *j, "UPDATE full_copy_volumes SET volume_id = ''");
  }

  // The copy in error (keeping a message its failing step recorded), its use of the group
  // snapshot it was copying from ended.
  Status end_in_error(StepContext& c, const Job& j, const char* also = nullptr) {
    Status s = deps.store->transact([&](Txn& t) -> Status {
      if (also) {
        auto r = t.exec(std::string(also) + " WHERE copy_set_id = ? AND idx = ?",
                        {j.set.id, static_cast<std::int64_t>(j.copy.index)});
        if (!r.ok()) return r.status();
      }
      return t
          .exec(
              "UPDATE full_copies SET status = 'error', sync_cg_snapshot_id = '', message = "
              "CASE WHEN message = '' THEN ? ELSE message END, updated_at = ? WHERE "
              "copy_set_id = ? AND idx = ?",
              {std::string(c.should_stop() ? "cancelled" : "the workflow failed"), now_ms(),
               j.set.id, static_cast<std::int64_t>(j.copy.index)})
          .status();
    });
    if (!s.ok()) return s;
    release_snapshot(j.cg_snapshot_id);
    return Status::Ok();
  }

  Status snapshot_step(StepContext& c) {
    auto j = load_job(c);
    if (!j.ok()) return j.status();
    if (j->cg_snapshot_id.empty()) return Status::Ok();  // inactive: nothing to copy yet
    std::lock_guard lock(take_mu);
    c.report_progress({5, "group-snapshot", 0, 0, 0});
    return failing(*j, deps.groups->take_cg_snapshot(c, j->cg_snapshot_id));
  }

  Status snapshot_undo(StepContext& c) {
    auto j = load_job(c);
    if (!j.ok()) return j.status().is_not_found() ? Status::Ok() : j.status();
    return end_in_error(c, *j);
  }

  Status copy_step(StepContext& c, bool fresh_targets) {
    auto j = load_job(c);
    if (!j.ok()) return j.status();
    if (j->cg_snapshot_id.empty()) return Status::Ok();
    auto items = copy_items_of(*j, true);
    if (!items.ok()) return failing(*j, items.status());
    return failing(*j, pipeline.copy(c, *items, fresh_targets, "copy", 10, 99));
  }

  Status finalize_step(StepContext& c) {
    auto j = load_job(c);
    if (!j.ok()) return j.status();
    auto items = copy_items_of(*j, false);
    if (!items.ok()) return failing(*j, items.status());
    if (Status s = pipeline.make_available(*items); !s.ok()) return failing(*j, s);
    const bool inactive = j->cg_snapshot_id.empty();
    const std::string previous = j->copy.cg_snapshot_id;
    Status s = set_copy(j->set.id, j->copy.index,
                        "status = ?, cg_snapshot_id = ?, sync_cg_snapshot_id = '', message = ''",
                        {std::string(inactive ? "inactive" : "synchronized"), j->cg_snapshot_id});
    if (!s.ok()) return s;
    if (previous != j->cg_snapshot_id) release_snapshot(previous);
    json::array ids;
    for (const auto& it : *items) ids.push_back(json::value(it.dst_volume_id));
    json::object result{{"copySetId", j->set.id},
                        {"copy", j->copy.index},
                        {"clusterId", j->set.cluster_id},
                        {"projectName", j->set.project_name},
                        {"volumeIds", std::move(ids)}};
    if (!inactive) result["cgSnapshotId"] = j->cg_snapshot_id;
    c.set_result(json::serialize(result));
    c.report_progress({100, "done", 0, 0, 0});
    return Status::Ok();
  }

  // RESTORE_FULL_COPY's one step: the copy's volumes onto the group's source volumes, with
  // writes to the sources refused meanwhile.
  Status restore_step(StepContext& c) {
    auto j = load_job(c);
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
        deps.groups->begin_restore(j->set.consistency_group_id, j->group_cluster, sources);
    if (!held.ok()) return failing(*j, held);
    Status s = pipeline.copy(c, items, false, "restore", 0, 99);
    deps.groups->end_restore(j->set.consistency_group_id, j->group_cluster, sources);
    if (!s.ok()) return failing(*j, s);
    s = set_copy(j->set.id, j->copy.index, "status = 'synchronized', message = ''", {});
    if (!s.ok()) return s;
    c.set_result(
        json::serialize(json::object{{"copySetId", j->set.id},
                                     {"copy", j->copy.index},
                                     {"consistencyGroupId", j->set.consistency_group_id}}));
    c.report_progress({100, "done", 0, 0, 0});
    return Status::Ok();
  }

  // A failed restore leaves the sources partly overwritten: the group goes to error so that no
  // group snapshot is taken of them until an operator has looked (resetStatus). The copy is
  // intact and stays synchronized.
  Status restore_undo(StepContext& c) {
    auto j = load_job(c);
    if (!j.ok()) return j.status().is_not_found() ? Status::Ok() : j.status();
    const std::string why = "restore from copy set " + j->set.id + " copy " +
                            std::to_string(j->copy.index) +
                            (c.should_stop() ? " was cancelled" : " failed") +
                            "; the source volumes hold partly restored data";
    Status s = deps.store->transact([&](Txn& t) -> Status {
      auto r = t.exec(
          "UPDATE full_copies SET status = 'synchronized', message = ?, updated_at = ? WHERE "
          "copy_set_id = ? AND idx = ?",
          {why, now_ms(), j->set.id, static_cast<std::int64_t>(j->copy.index)});
      if (!r.ok()) return r.status();
      return t
          .exec(
              "UPDATE consistency_groups SET status = 'error', message = ?, updated_at = ? WHERE "
              "id = ?",
              {why, now_ms(), j->set.consistency_group_id})
          .status();
    });
    return s;
  }

  // ---- group thick clones ----

  struct CloneJob {
    std::string group_id;
    CgSnapshot snap;
    std::vector<std::string> names;
    bool verify = false;
  };

  Result<CloneJob> load_clone(StepContext& c) const {
    auto v = parse_json(c.request());
    if (!v.ok()) return v.status();
    const auto* o = v->if_object();
    if (!o || !o->contains("consistencyGroupId") || !o->contains("cgSnapshotId") ||
        !o->contains("names"))
      return Status::InvalidArgument("request: consistencyGroupId, cgSnapshotId, names required");
    CloneJob j;
    j.group_id = std::string(o->at("consistencyGroupId").as_string());
    auto s = deps.groups->get_cg_snapshot(std::string(o->at("cgSnapshotId").as_string()));
    if (!s.ok()) return s.status();
    j.snap = std::move(s).value();
    for (const auto& n : o->at("names").as_array()) j.names.emplace_back(n.as_string());
    if (const auto* vc = o->if_contains("verifyClone"); vc && vc->is_bool())
      j.verify = vc->as_bool();
    if (j.names.size() != j.snap.members.size())
      return Status::FailedPrecondition("group snapshot " + j.snap.id + " changed");
    return j;
  }

  Result<std::vector<CopyItem>> clone_items(StepContext& c, const CloneJob& j) const {
    auto g = deps.groups->get(j.group_id);
    if (!g.ok()) return g.status();
    auto src = backend_locked(j.snap.cluster_id);
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
      it.dst_name = j.names[i];
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

  Status set_group_error(const std::string& id, const std::string& why) {
    return deps.store->transact([&](Txn& t) {
      return t
          .exec(
              "UPDATE consistency_groups SET status = 'error', message = CASE WHEN message = '' "
              "THEN ? ELSE message END, updated_at = ? WHERE id = ? AND status = 'creating'",
              {why.substr(0, 1024), now_ms(), id})
          .status();
    });
  }

  Status clone_failing(const std::string& group_id, Status s) {
    if (!s.ok() && s.code() != Code::kCancelled)
      (void)deps.store->transact([&](Txn& t) {
        return t
            .exec("UPDATE consistency_groups SET message = ? WHERE id = ? AND status = 'creating'",
                  {s.message().substr(0, 1024), group_id})
            .status();
      });
    return s;
  }

  Status clone_create_step(StepContext& c) {
    auto j = load_clone(c);
    if (!j.ok()) return j.status();
    auto items = clone_items(c, *j);
    if (!items.ok()) return clone_failing(j->group_id, items.status());
    return clone_failing(j->group_id,
                         pipeline.create_targets(c, *items, [&c](std::size_t i, const std::string& id) {
                           c.set_var("vol" + std::to_string(i), id);
                           return c.save_checkpoint("made:" + std::to_string(i));
                         }));
  }

  Status clone_create_undo(StepContext& c) {
    auto v = parse_json(c.request());
    std::string gid;
    if (v.ok() && v->is_object())
      if (const auto* g = v->as_object().if_contains("consistencyGroupId"); g && g->is_string())
        gid = std::string(g->as_string());
    auto j = load_clone(c);
    if (j.ok()) {
      auto items = clone_items(c, *j);
      if (items.ok()) {
        if (Status s = pipeline.delete_targets(c, *items); !s.ok()) return s;
      }
    }
    return gid.empty()
               ? Status::Ok()
               : set_group_error(gid, c.should_stop() ? "cancelled" : "the workflow failed");
  }

  Status clone_copy_step(StepContext& c) {
    auto j = load_clone(c);
    if (!j.ok()) return j.status();
    auto items = clone_items(c, *j);
    if (!items.ok()) return clone_failing(j->group_id, items.status());
    return clone_failing(j->group_id, pipeline.copy(c, *items, true, "copy", 5, j->verify ? 90 : 99));
  }

  Status clone_verify_step(StepContext& c) {
    auto j = load_clone(c);
    if (!j.ok()) return j.status();
    if (!j->verify) return Status::Ok();
    auto items = clone_items(c, *j);
    if (!items.ok()) return clone_failing(j->group_id, items.status());
    return clone_failing(j->group_id, pipeline.verify(c, *items));
  }

  Status clone_finalize_step(StepContext& c) {
    auto j = load_clone(c);
    if (!j.ok()) return j.status();
    auto items = clone_items(c, *j);
    if (!items.ok()) return clone_failing(j->group_id, items.status());
    if (Status s = pipeline.make_available(*items); !s.ok()) return clone_failing(j->group_id, s);
    Status s = deps.store->transact([&](Txn& t) -> Status {
      auto row = t.query_one("SELECT status, cluster_id FROM consistency_groups WHERE id = ?",
                             {j->group_id});
      if (!row.ok()) return row.status();
      if (!*row) return Status::Aborted("consistency group " + j->group_id + " was deleted");
      if ((*row)->text(0) == "available") return Status::Ok();  // done before a crash
      if ((*row)->text(0) != "creating")
        return Status::Aborted("consistency group " + j->group_id + " changed while it was made");
      for (std::size_t i = 0; i < items->size(); ++i) {
        auto m = t.exec(
            "INSERT INTO cg_members (cluster_id, volume_id, group_id, position) VALUES (?, ?, ?, "
            "?)",
            {(*row)->text(1), (*items)[i].dst_volume_id, j->group_id,
             static_cast<std::int64_t>(i)});
        if (!m.ok()) return m.status();
      }
      return t
          .exec(
              "UPDATE consistency_groups SET status = 'available', message = '', updated_at = ? "
              "WHERE id = ?",
              {now_ms(), j->group_id})
          .status();
    });
    if (!s.ok()) return clone_failing(j->group_id, s);
    json::array ids;
    for (const auto& it : *items) ids.push_back(json::value(it.dst_volume_id));
    c.set_result(json::serialize(
        json::object{{"consistencyGroupId", j->group_id}, {"volumeIds", std::move(ids)}}));
    c.report_progress({100, "done", 0, 0, 0});
    return Status::Ok();
  }

  // ---- requests ----

  // A group snapshot row owned by copy set `set_id`, for the copies' workflows to take.
  Status insert_snapshot(Txn& t, const std::string& snap_id, const ConsistencyGroup& g,
                         const CopySet& set, const std::string& workflow_id) {
    std::string base = set.name.substr(0, kMaxSetName - 9);
    return t
        .exec(
            "INSERT INTO cg_snapshots (id, group_id, name, description, cluster_id, project, "
            "status, workflow_id, created_at, copy_set_id) VALUES (?, ?, ?, ?, ?, ?, 'creating', "
            "?, ?, ?)",
            {snap_id, g.id, base + "-" + snap_id.substr(0, 8), "full copies " + set.id,
             g.cluster_id, g.project_name, workflow_id, now_ms(), set.id})
        .status();
  }

  static std::string copy_request(const std::string& set_id, int idx, const std::string& snap) {
    json::object o{{"copySetId", set_id}, {"copy", idx}};
    if (!snap.empty()) o["cgSnapshotId"] = snap;
    return json::serialize(o);
  }
};

namespace {

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

FullCopies::FullCopies(Deps deps)
    : impl_(new Impl{deps, VolumeCopy(pipeline_deps(deps)), {}}) {}
FullCopies::~FullCopies() = default;

void FullCopies::register_workflows() {
  Impl* im = impl_.get();
  auto step = [](const char* name, std::function<Status(StepContext&)> run,
                 std::function<Status(StepContext&)> undo = {}) {
    Step s;
    s.name = name;
    s.run = std::move(run);
    s.undo = std::move(undo);
    return s;
  };
  auto settle_copy = [im](Txn& t, const std::string& request) {
    return Impl::settle_copy(t, request, im->now_ms());
  };
  WorkflowType create{kCreateFullCopy, {}, settle_copy};
  create.steps.push_back(step(
      "create-targets", [im](StepContext& c) { return im->create_targets_step(c); },
      [im](StepContext& c) { return im->create_targets_undo(c); }));
  create.steps.push_back(
      step("group-snapshot", [im](StepContext& c) { return im->snapshot_step(c); }));
  create.steps.push_back(step("copy", [im](StepContext& c) { return im->copy_step(c, true); }));
  create.steps.push_back(step("finalize", [im](StepContext& c) { return im->finalize_step(c); }));
  (void)im->deps.engine->register_type(std::move(create));

  for (const char* type : {kActivateFullCopy, kResynchronizeFullCopy}) {
    WorkflowType sync{type, {}, settle_copy};
    sync.steps.push_back(step(
        "group-snapshot", [im](StepContext& c) { return im->snapshot_step(c); },
        [im](StepContext& c) { return im->snapshot_undo(c); }));
    sync.steps.push_back(step("copy", [im](StepContext& c) { return im->copy_step(c, false); }));
    sync.steps.push_back(step("finalize", [im](StepContext& c) { return im->finalize_step(c); }));
    (void)im->deps.engine->register_type(std::move(sync));
  }

  WorkflowType restore{kRestoreFullCopy, {}, settle_copy};
  restore.steps.push_back(step(
      "restore", [im](StepContext& c) { return im->restore_step(c); },
      [im](StepContext& c) { return im->restore_undo(c); }));
  (void)im->deps.engine->register_type(std::move(restore));

  WorkflowType clone{kThickCloneConsistencyGroup, {}, [im](Txn& t, const std::string& request) {
                       return Impl::settle_group(t, request, im->now_ms());
                     }};
  clone.steps.push_back(step(
      "create-destination", [im](StepContext& c) { return im->clone_create_step(c); },
      [im](StepContext& c) { return im->clone_create_undo(c); }));
  clone.steps.push_back(step("copy", [im](StepContext& c) { return im->clone_copy_step(c); }));
  clone.steps.push_back(step("verify", [im](StepContext& c) { return im->clone_verify_step(c); }));
  clone.steps.push_back(
      step("finalize", [im](StepContext& c) { return im->clone_finalize_step(c); }));
  (void)im->deps.engine->register_type(std::move(clone));
}

Status FullCopies::recover() { return impl_->release_orphans(); }

Status FullCopies::workflow_cancelled() { return impl_->release_orphans(); }

Result<CopySetWork> FullCopies::create(const CreateFullCopiesRequest& req) {
  Impl& im = *impl_;
  if (!is_uuid(req.consistency_group_id))
    return Status::InvalidArgument("consistencyGroupId: must be a UUID");
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.name.size() > kMaxSetName)
    return Status::InvalidArgument("name: must be at most 128 characters");
  if (req.count < 1 || req.count > kMaxCopies)
    return Status::InvalidArgument("count: must be 1..8");
  if (!req.partial && !req.volume_ids.empty())
    return Status::InvalidArgument(
        "volumeIds: only with partial (without it every member is copied)");
  if (req.partial && req.volume_ids.empty())
    return Status::InvalidArgument("volumeIds: partial needs at least one member volume");
  std::set<std::string> wanted;
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
  std::vector<Volume> sources;
  {
    std::shared_lock registry(*im.deps.registry_mu);
    auto src = im.deps.backend(g->cluster_id, "clusterId");
    if (!src.ok()) return src.status();
    auto dst = im.deps.backend(set.cluster_id, "clusterId");
    if (!dst.ok()) return dst.status();
    for (const auto& vid : g->volume_ids) {
      if (req.partial && !wanted.count(vid)) continue;
      auto v = (*src)->get_volume(g->project_name, vid);
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
  }
  const std::string snap = req.create_inactive ? "" : im.deps.env->new_uuid();
  std::vector<WorkflowEngine::Submission> batch;
  for (int k = 1; k <= req.count; ++k)
    batch.push_back({kCreateFullCopy,
                     Impl::copy_request(set.id, k, snap),
                     {"group:" + g->id, "cluster:" + g->cluster_id, "cluster:" + set.cluster_id}});
  auto ids = im.deps.engine->submit_all(
      std::move(batch), [&](Txn& t, const std::vector<std::string>& wf) -> Status {
        auto r = t.exec(
            "INSERT INTO copy_sets (id, name, group_id, cluster_id, project, copy_count, partial, "
            "create_inactive, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {set.id, set.name, set.consistency_group_id, set.cluster_id, set.project_name,
             static_cast<std::int64_t>(set.count), std::int64_t{set.partial},
             std::int64_t{set.create_inactive}, to_millis(set.created_at)});
        if (!r.ok()) {
          if (r.status().code() == Code::kAlreadyExists)
            return Status::AlreadyExists("name: the group already has a copy set named " +
                                         set.name);
          return r.status();
        }
        if (!snap.empty()) {
          if (Status s = im.insert_snapshot(t, snap, *g, set, wf[0]); !s.ok()) return s;
        }
        for (auto& f : set.copies) {
          f.workflow_id = wf[static_cast<std::size_t>(f.index - 1)];
          f.updated_at = set.created_at;
          auto c = t.exec(
              "INSERT INTO full_copies (copy_set_id, idx, status, sync_cg_snapshot_id, "
              "workflow_id, updated_at) VALUES (?, ?, 'creating', ?, ?, ?)",
              {set.id, static_cast<std::int64_t>(f.index), snap, f.workflow_id,
               to_millis(set.created_at)});
          if (!c.ok()) return c.status();
          for (std::size_t p = 0; p < f.volumes.size(); ++p) {
            auto v = t.exec(
                "INSERT INTO full_copy_volumes (copy_set_id, idx, position, source_volume_id, "
                "name, size) VALUES (?, ?, ?, ?, ?, ?)",
                {set.id, static_cast<std::int64_t>(f.index), static_cast<std::int64_t>(p),
                 f.volumes[p].source_volume_id, f.volumes[p].name,
                 static_cast<std::int64_t>(f.volumes[p].size)});
            if (!v.ok()) return v.status();
          }
        }
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
  CopySetPage out;
  Status s = impl_->deps.store->read([&](Txn& t) -> Status {
    auto r = t.query(std::string("SELECT ") + kSetCols +
                         " FROM copy_sets WHERE group_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                     {group_id, *after, n + 1});
    if (!r.ok()) return r.status();
    for (std::size_t i = 0; i < r->size() && i < static_cast<std::size_t>(n); ++i) {
      CopySet c = set_from((*r)[i]);
      if (Status l = load_copies(t, c); !l.ok()) return l;
      out.copy_sets.push_back(std::move(c));
    }
    if (r->size() > static_cast<std::size_t>(n))
      out.next_page_token = make_page_token("f", (*r)[static_cast<std::size_t>(n) - 1].int64(9));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
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

Result<CopySetWork> FullCopies::act(const std::string& group_id, const std::string& id,
                                    const CopySetActionRequest& req) {
  Impl& im = *impl_;
  auto set = get(group_id, id);
  if (!set.ok()) return set.status();
  // The copies acted on.
  std::vector<int> which = req.copies;
  {
    std::set<int> seen;
    for (std::size_t i = 0; i < which.size(); ++i) {
      if (which[i] < 1 || which[i] > set->count)
        return Status::InvalidArgument("copies[" + std::to_string(i) + "]: must be 1.." +
                                       std::to_string(set->count));
      if (!seen.insert(which[i]).second)
        return Status::InvalidArgument("copies[" + std::to_string(i) + "]: listed twice");
    }
  }
  if (req.action == CopyAction::kRestore) {
    if (!req.confirm)
      return Status::InvalidArgument(
          "confirm: must be true; restore overwrites the group's source volumes");
    if (which.size() > 1) return Status::InvalidArgument("copies: restore takes exactly one copy");
    if (which.empty()) {
      if (set->count != 1)
        return Status::InvalidArgument("copies: name the copy to restore from (1.." +
                                       std::to_string(set->count) + ")");
      which.push_back(1);
    }
  } else if (which.empty()) {
    for (int k = 1; k <= set->count; ++k) which.push_back(k);
  }
  const std::string action(to_string(req.action));
  // Whether copy `f` may be acted on now; checked again inside the transaction that records the
  // action, so two concurrent requests cannot both pass.
  auto eligible = [&](const std::string& status, bool has_volumes) -> bool {
    switch (req.action) {
      case CopyAction::kActivate:
        return status == "inactive" || (status == "error" && has_volumes);
      case CopyAction::kResynchronize:
        return status == "synchronized" || (status == "error" && has_volumes);
      case CopyAction::kRestore:
        return status == "synchronized" && has_volumes;
      case CopyAction::kDetach:
        return status == "inactive" || status == "synchronized" || status == "error";
    }
    return false;
  };
  auto check_in = [&](Txn& t) -> Status {
    for (std::size_t i = 0; i < which.size(); ++i) {
      auto r = t.query_one(
          "SELECT f.status, (SELECT COUNT(*) FROM full_copy_volumes v WHERE v.copy_set_id = "
          "f.copy_set_id AND v.idx = f.idx AND v.volume_id = '') FROM full_copies f WHERE "
          "f.copy_set_id = ? AND f.idx = ?",
          {id, static_cast<std::int64_t>(which[i])});
      if (!r.ok()) return r.status();
      if (!*r) return Status::NotFound("copy " + std::to_string(which[i]) + " not found");
      const std::string status = (*r)->text(0);
      if (!eligible(status, (*r)->int64(1) == 0))
        return Status::FailedPrecondition(
            (req.copies.empty() ? "copy " : "copies[" + std::to_string(i) + "]: copy ") +
            std::to_string(which[i]) + " is " + status + "; " + action + " needs " +
            (req.action == CopyAction::kActivate        ? "an inactive copy"
             : req.action == CopyAction::kResynchronize ? "a synchronized copy"
             : req.action == CopyAction::kRestore       ? "a synchronized copy"
                                                        : "a copy without a running workflow"));
    }
    return Status::Ok();
  };

  CopySetWork out;
  if (req.action == CopyAction::kDetach) {
    std::vector<std::string> released;
    Status s = im.deps.store->transact([&](Txn& t) -> Status {
      if (Status e = check_in(t); !e.ok()) return e;
      for (int k : which) {
        auto r =
            t.query_one("SELECT cg_snapshot_id FROM full_copies WHERE copy_set_id = ? AND idx = ?",
                        {id, static_cast<std::int64_t>(k)});
        if (!r.ok()) return r.status();
        if (*r) released.push_back((*r)->text(0));
        auto u = t.exec(
            "UPDATE full_copies SET status = 'detached', cg_snapshot_id = '', message = '', "
            "updated_at = ? WHERE copy_set_id = ? AND idx = ?",
            {im.now_ms(), id, static_cast<std::int64_t>(k)});
        if (!u.ok()) return u.status();
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    for (const auto& snap : released) im.release_snapshot(snap);
    auto fresh = get(group_id, id);
    if (!fresh.ok()) return fresh.status();
    out.copy_set = std::move(fresh).value();
    return out;
  }

  auto g = req.action == CopyAction::kRestore
               ? im.deps.groups->get(group_id)
               : im.deps.groups->snapshot_ready_group(group_id, "id");
  if (!g.ok()) return g.status();
  std::vector<WorkflowEngine::Submission> batch;
  std::string snap;
  if (req.action == CopyAction::kRestore) {
    if (g->status != GroupStatus::kAvailable)
      return Status::FailedPrecondition("consistency group " + g->id + " is " +
                                        std::string(to_string(g->status)) +
                                        "; restore needs it available");
    const FullCopy& f = set->copies[static_cast<std::size_t>(which[0] - 1)];
    std::vector<std::string> resources{"group:" + g->id, "cluster:" + g->cluster_id,
                                       "cluster:" + set->cluster_id};
    for (std::size_t i = 0; i < f.volumes.size(); ++i) {
      const auto& v = f.volumes[i];
      if (std::find(g->volume_ids.begin(), g->volume_ids.end(), v.source_volume_id) ==
          g->volume_ids.end())
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
    auto busy = im.deps.engine->resource_in_use("group:" + g->id);
    if (!busy.ok()) return busy.status();
    if (*busy)
      return Status::FailedPrecondition("consistency group " + g->id +
                                        " has a full-copy workflow running; wait for it");
    batch.push_back({kRestoreFullCopy, Impl::copy_request(id, which[0], ""), std::move(resources)});
  } else {
    snap = im.deps.env->new_uuid();
    for (int k : which)
      batch.push_back(
          {req.action == CopyAction::kActivate ? kActivateFullCopy : kResynchronizeFullCopy,
           Impl::copy_request(id, k, snap),
           {"group:" + g->id, "cluster:" + g->cluster_id, "cluster:" + set->cluster_id}});
  }
  auto ids = im.deps.engine->submit_all(
      std::move(batch), [&](Txn& t, const std::vector<std::string>& wf) -> Status {
        if (Status e = check_in(t); !e.ok()) return e;
        if (req.action == CopyAction::kRestore) {
          // No group snapshot of the sources may be in progress either.
          auto c = t.query_one(
              "SELECT id FROM cg_snapshots WHERE group_id = ? AND status = 'creating'", {g->id});
          if (!c.ok()) return c.status();
          if (*c)
            return Status::FailedPrecondition("group snapshot " + (*c)->text(0) +
                                              " of the group is being taken; wait for it");
        } else if (Status s = im.insert_snapshot(t, snap, *g, *set, wf[0]); !s.ok()) {
          return s;
        }
        for (std::size_t i = 0; i < which.size(); ++i) {
          auto u = t.exec(
              "UPDATE full_copies SET status = ?, sync_cg_snapshot_id = ?, workflow_id = ?, "
              "message = '', updated_at = ? WHERE copy_set_id = ? AND idx = ?",
              {std::string(req.action == CopyAction::kRestore ? "restoring" : "synchronizing"),
               snap, wf[i], im.now_ms(), id, static_cast<std::int64_t>(which[i])});
          if (!u.ok()) return u.status();
        }
        return Status::Ok();
      });
  if (!ids.ok()) return ids.status();
  for (std::size_t i = 0; i < which.size(); ++i) out.workflows.push_back({which[i], (*ids)[i]});
  auto fresh = get(group_id, id);
  if (!fresh.ok()) return fresh.status();
  out.copy_set = std::move(fresh).value();
  return out;
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
  json::array names;
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
      names.push_back(json::value(name));
      resources.push_back("snapshot:" + m.snapshot_id);
    }
  }
  std::vector<WorkflowEngine::Submission> batch;
  batch.push_back({kThickCloneConsistencyGroup,
                   json::serialize(json::object{{"consistencyGroupId", g.id},
                                                {"cgSnapshotId", snap->id},
                                                {"names", names},
                                                {"verifyClone", req.verify_clone}}),
                   std::move(resources)});
  auto ids = im.deps.engine->submit_all(
      std::move(batch), [&](Txn& t, const std::vector<std::string>& wf) -> Status {
        g.workflow_id = wf[0];
        auto r = t.exec(
            "INSERT INTO consistency_groups (id, name, description, cluster_id, project, status, "
            "source_cg_snapshot_id, workflow_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, "
            "'creating', ?, ?, ?, ?)",
            {g.id, g.name, g.description, g.cluster_id, g.project_name, g.source_cg_snapshot_id,
             g.workflow_id, to_millis(g.created_at), to_millis(g.updated_at)});
        if (!r.ok() && r.status().code() == Code::kAlreadyExists)
          return Status::AlreadyExists("dst.name: a consistency group named " + g.name +
                                       " already exists");
        return r.status();
      });
  if (!ids.ok()) return ids.status();
  return g;
}

}  // namespace detail
}  // namespace dmscore
