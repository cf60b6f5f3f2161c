#include "service/groups.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "base/codec.hpp"
#include "dmscore/service.hpp"
#include "base/hook.hpp"
#include "base/util.hpp"

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

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxMembers = 64;
constexpr std::size_t kMaxGroupDescription = 1024;
constexpr std::size_t kMaxCgSnapshotName = 128;
constexpr const char* kGroupCols =
    "id, name, description, cluster_id, project, status, source_cg_snapshot_id, created_at, "
    "updated_at, seq, workflow_id, message";
constexpr const char* kCgSnapshotCols =
    "id, name, description, group_id, cluster_id, project, status, workflow_id, message, "
    "created_at, seq";

GroupStatus status_from(const std::string& s) {
  auto r = parse_group_status(s, "status");
  return r.ok() ? *r : GroupStatus::kError;
}

ConsistencyGroup group_from(const Row& r) {
  ConsistencyGroup g;
  g.id = r.text(0);
  g.name = r.text(1);
  g.description = r.text(2);
  g.cluster_id = r.text(3);
  g.project_name = r.text(4);
  g.status = status_from(r.text(5));
  g.source_cg_snapshot_id = r.text(6);
  g.created_at = from_millis(r.int64(7));
  g.updated_at = from_millis(r.int64(8));
  g.workflow_id = r.text(10);
  g.message = r.text(11);
  return g;
}

CgSnapshot cg_snapshot_from(const Row& r) {
  CgSnapshot c;
  c.id = r.text(0);
  c.name = r.text(1);
  c.description = r.text(2);
  c.consistency_group_id = r.text(3);
  c.cluster_id = r.text(4);
  c.project_name = r.text(5);
  c.status = status_from(r.text(6));
  c.workflow_id = r.text(7);
  c.message = r.text(8);
  c.created_at = from_millis(r.int64(9));
  return c;
}

Status load_members(Txn& t, ConsistencyGroup& g) {
  auto r = t.query("SELECT volume_id FROM cg_members WHERE group_id = ? ORDER BY position", {g.id});
  if (!r.ok()) return r.status();
  for (auto& row : *r) g.volume_ids.push_back(row.text(0));
  return Status::Ok();
}

Status load_members(Txn& t, CgSnapshot& c) {
  auto r = t.query(
      "SELECT volume_id, snapshot_id, size FROM cg_snapshot_members WHERE cg_snapshot_id = ? "
      "ORDER BY position",
      {c.id});
  if (!r.ok()) return r.status();
  for (auto& row : *r)
    c.members.push_back({row.text(0), row.text(1), static_cast<std::uint64_t>(row.int64(2))});
  return Status::Ok();
}

// The first `n` of `rows` (a query for n + 1) into `items` with their members, and the token
// of the next page when there is one (from the row's sequence column `seq_col`).
template <class T>
Status fill_page(Txn& t, const std::vector<Row>& rows, std::int64_t n, std::size_t seq_col,
                 std::string_view prefix, std::vector<T>& items, std::string& token,
                 T (*from)(const Row&)) {
  const auto limit = static_cast<std::size_t>(n);
  for (std::size_t i = 0; i < rows.size() && i < limit; ++i) {
    T item = from(rows[i]);
    if (Status m = load_members(t, item); !m.ok()) return m;
    items.push_back(std::move(item));
  }
  if (rows.size() > limit) token = make_page_token(prefix, rows[limit - 1].int64(seq_col));
  return Status::Ok();
}

// The id a workflow's request names under `key` ({"cgSnapshotId": ...}).
Result<std::string> request_id(const std::string& request, const char* key) {
  auto v = parse_json(request);
  if (!v.ok()) return v.status();
  const json::value* idv = v->is_object() ? v->as_object().if_contains(key) : nullptr;
  if (!idv || !idv->is_string()) return Status::InvalidArgument(std::string(key) + ": missing");
  return std::string(idv->as_string());
}

Status check_ids(const std::vector<std::string>& ids, const std::string& field) {
  if (ids.size() > kMaxMembers)
    return Status::InvalidArgument(field + ": at most " + std::to_string(kMaxMembers) + " volumes");
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

// The member snapshot of `volume` in the group snapshot named `name`.
std::string member_snapshot_name(const std::string& name, const Volume& volume) {
  std::string n = name + "-" + volume.name;
  return n.size() <= 256 ? n : name + "-" + volume.id;
}

// The volume made from member `index` of group snapshot `c` for group `group`:
// "<group>-<source volume name>", the volume name read off the member snapshot's name.
std::string member_volume_name(const std::string& group, const CgSnapshot& c,
                               const Snapshot& member, std::size_t index) {
  std::string vol = member.name;
  if (vol.rfind(c.name + "-", 0) == 0) vol = vol.substr(c.name.size() + 1);
  std::string n = group + "-" + vol;
  return n.size() <= 256 && !vol.empty() ? n : group + "-" + std::to_string(index + 1);
}

// Member snapshots carry this description, which tells a leftover of an interrupted try from
// a snapshot someone else made with the same name.
std::string member_tag(const std::string& cg_snapshot_id) {
  return "cg-snapshot " + cg_snapshot_id;
}

std::string fence_key(const std::string& cluster_id, const std::string& volume_id) {
  return cluster_id + "/" + volume_id;
}

}  // namespace

struct Groups::Impl {
  Deps deps;
  WriteFence fence;
  // Serialises changes of group membership and status with the checks that precede them.
  mutable std::mutex mu;

  std::int64_t now_ms() const { return to_millis(deps.env->now()); }

  // The first column of the first row, "" when there is none.
  Result<std::string> first_text(std::string_view sql, const std::vector<SqlValue>& params) const {
    std::string out;
    Status s = deps.store->read([&](Txn& t) -> Status {
      auto r = t.query_one(sql, params);
      if (!r.ok()) return r.status();
      if (*r) out = (*r)->text(0);
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return out;
  }

  Result<std::shared_ptr<Backend>> backend_locked(const std::string& cluster_id) const {
    std::shared_lock lock(*deps.registry_mu);
    return deps.backend(cluster_id, "clusterId");
  }

  Result<ConsistencyGroup> load_group(Txn& t, const std::string& id) const {
    auto r = t.query_one(
        std::string("SELECT ") + kGroupCols + " FROM consistency_groups WHERE id = ?", {id});
    if (!r.ok()) return r.status();
    if (!*r) return Status::NotFound("consistency group " + id + " not found");
    ConsistencyGroup g = group_from(**r);
    if (Status s = load_members(t, g); !s.ok()) return s;
    return g;
  }

  Result<ConsistencyGroup> read_group(const std::string& id) const {
    std::optional<ConsistencyGroup> out;
    Status s = deps.store->read([&](Txn& t) -> Status {
      auto g = load_group(t, id);
      if (!g.ok()) return g.status();
      out = std::move(g).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return *out;
  }

  Result<CgSnapshot> read_cg_snapshot(const std::string& id) const {
    std::optional<CgSnapshot> out;
    Status s = deps.store->read([&](Txn& t) -> Status {
      auto r = t.query_one(
          std::string("SELECT ") + kCgSnapshotCols + " FROM cg_snapshots WHERE id = ?", {id});
      if (!r.ok()) return r.status();
      if (!*r) return Status::NotFound("group snapshot " + id + " not found");
      out = cg_snapshot_from(**r);
      return load_members(t, *out);
    });
    if (!s.ok()) return s;
    return *out;
  }

  // Each volume exists in the cluster and project and is Available.
  Result<std::vector<Volume>> check_volumes(Backend& b, const std::string& project,
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

  // Volumes of `ids` already in a group: FAILED_PRECONDITION naming the first.
  Status check_not_grouped(Txn& t, const std::string& cluster_id,
                           const std::vector<std::string>& ids, const std::string& field) const {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      auto r = t.query_one("SELECT group_id FROM cg_members WHERE cluster_id = ? AND volume_id = ?",
                           {cluster_id, ids[i]});
      if (!r.ok()) return r.status();
      if (*r)
        return Status::FailedPrecondition(field + "[" + std::to_string(i) + "]: volume " + ids[i] +
                                          " already belongs to consistency group " + (*r)->text(0));
    }
    return Status::Ok();
  }

  // Starts the workflow of an object recorded as `creating` in `table` (its row is the
  // workflow's subject) and records its id there. When the workflow cannot be recorded (429)
  // the row goes too, so nothing is left. `table` is one of this file's constants.
  Result<std::string> start_workflow(const char* table, const char* type, const char* key,
                                     const std::string& id, std::vector<std::string> resources) {
    auto wf =
        deps.engine->submit(type, json::serialize(json::object{{key, id}}), std::move(resources));
    if (!wf.ok()) {
      (void)deps.store->transact([&](Txn& t) {
        return t.exec(std::string("DELETE FROM ") + table + " WHERE id = ?", {id}).status();
      });
      return wf.status();
    }
    Status s = deps.store->transact([&](Txn& t) {
      return t.exec(std::string("UPDATE ") + table + " SET workflow_id = ? WHERE id = ?", {*wf, id})
          .status();
    });
    if (!s.ok()) return s;
    return *wf;
  }

  Status set_cg_snapshot_error(const std::string& id, const std::string& why) {
    return deps.store->transact([&](Txn& t) {
      return t
          .exec(
              "UPDATE cg_snapshots SET status = 'error', message = ? WHERE id = ? AND status = "
              "'creating'",
              {why.substr(0, 1024), id})
          .status();
    });
  }

  // Deletes the member snapshots an earlier try of group snapshot `id` may have left.
  Status remove_leftovers(Backend& b, const std::string& project,
                          const std::vector<std::string>& names, const std::string& id) {
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

  // remove_leftovers under the names group snapshot `c` gives the group's current members (OK
  // when the group is gone).
  Status remove_member_leftovers(Backend& b, const CgSnapshot& c) {
    auto g = read_group(c.consistency_group_id);
    if (!g.ok()) return Status::Ok();
    std::vector<std::string> names;
    for (const auto& vid : g->volume_ids) {
      auto v = b.get_volume(c.project_name, vid);
      if (v.ok()) names.push_back(member_snapshot_name(c.name, *v));
    }
    return remove_leftovers(b, c.project_name, names, c.id);
  }

  std::vector<std::pair<std::string, std::string>> hook_env(const ConsistencyGroup& g,
                                                            const CgSnapshot& c,
                                                            const char* phase) const {
    std::string ids;
    for (const auto& v : g.volume_ids) ids += (ids.empty() ? "" : " ") + v;
    return {{"DMS_HOOK_PHASE", phase},        {"DMS_CG_ID", g.id},
            {"DMS_CG_NAME", g.name},          {"DMS_CG_SNAPSHOT_ID", c.id},
            {"DMS_CLUSTER_ID", g.cluster_id}, {"DMS_PROJECT", g.project_name},
            {"DMS_VOLUME_IDS", ids}};
  }

  void post_hook(const ConsistencyGroup& g, const CgSnapshot& c, bool ok) {
    const Options& o = *deps.options;
    if (o.group_snapshot_post_hook.empty()) return;
    auto env = hook_env(g, c, "post");
    env.emplace_back("DMS_CG_SNAPSHOT_RESULT", ok ? "ok" : "error");
    Status s = run_hook(o.group_snapshot_post_hook, env, o.group_snapshot_hook_timeout);
    if (!s.ok()) o.log("group snapshot " + c.id + ": post hook failed: " + s.message());
  }

  // The group `id` when a group snapshot of it can be taken now: available, with members that
  // are all Available, not being restored. Called with registry_mu (shared) and mu held.
  Result<ConsistencyGroup> snapshot_ready(const std::string& id, const std::string& field) const {
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

  Status snapshot_step(StepContext& ctx);
  Status snapshot_undo(StepContext& ctx);
  // Takes group snapshot `id` (recorded `creating`): what snapshot_step does.
  Status take(StepContext& ctx, const std::string& id);

  // Volumes a restore is writing ("<cluster>/<volume>") and their groups, with how many
  // restores hold each.
  mutable std::mutex restore_mu;
  std::map<std::string, int> restoring_volumes;
  std::map<std::string, int> restoring_groups;
  bool restoring_group(const std::string& group_id) const {
    std::lock_guard lock(restore_mu);
    return restoring_groups.count(group_id) > 0;
  }
  bool restoring_volume(const std::string& key) const {
    std::lock_guard lock(restore_mu);
    return restoring_volumes.count(key) > 0;
  }

  Result<ConsistencyGroup> create_from_snapshot(const CreateGroupRequest& req);
  // The volumes a group made from a group snapshot gets: (name, member) in member order.
  Result<std::vector<std::pair<std::string, CgSnapshotMember>>> planned_volumes(
      Backend& b, const ConsistencyGroup& g, const CgSnapshot& c) const;
  Status clone_group_step(StepContext& ctx);
  Status clone_group_undo(StepContext& ctx);

  Status set_group_error(const std::string& id, const std::string& why) {
    return deps.store->transact([&](Txn& t) {
      return t
          .exec(
              "UPDATE consistency_groups SET status = 'error', message = ?, updated_at = ? "
              "WHERE id = ? AND status = 'creating'",
              {why.substr(0, 1024), now_ms(), id})
          .status();
    });
  }
};

Groups::Groups(Deps deps) : impl_(new Impl{std::move(deps), {}, {}}) {}
Groups::~Groups() = default;

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
    auto r = t.exec(
        "INSERT INTO consistency_groups (id, name, description, cluster_id, project, status, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'available', ?, ?)",
        {g.id, g.name, g.description, g.cluster_id, g.project_name, to_millis(g.created_at),
         to_millis(g.updated_at)});
    if (!r.ok()) {
      if (r.status().code() == Code::kAlreadyExists)
        return Status::AlreadyExists("name: a consistency group named " + g.name +
                                     " already exists");
      return r.status();
    }
    for (std::size_t i = 0; i < g.volume_ids.size(); ++i) {
      auto m = t.exec(
          "INSERT INTO cg_members (cluster_id, volume_id, group_id, position) VALUES (?, ?, ?, ?)",
          {g.cluster_id, g.volume_ids[i], g.id, static_cast<std::int64_t>(i)});
      if (!m.ok()) return m.status();
    }
    return Status::Ok();
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
  GroupPage out;
  Status s = impl_->deps.store->read([&](Txn& t) -> Status {
    auto r = t.query(std::string("SELECT ") + kGroupCols +
                         " FROM consistency_groups WHERE seq > ? ORDER BY seq LIMIT ?",
                     {*after, n + 1});
    if (!r.ok()) return r.status();
    return fill_page(t, *r, n, 9, "g", out.groups, out.next_page_token, group_from);
  });
  if (!s.ok()) return s;
  return out;
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
        kMaxMembers)
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
      auto busy = t.query_one(
          "SELECT id FROM cg_snapshots WHERE group_id = ? AND status = 'creating' LIMIT 1", {id});
      if (!busy.ok()) return busy.status();
      if (*busy)
        return Status::FailedPrecondition("group snapshot " + (*busy)->text(0) +
                                          " of the group is being taken; retry when it is done");
      if (Status c = im.check_not_grouped(t, g->cluster_id, req.add_volume_ids, "addVolumeIds");
          !c.ok())
        return c;
    }
    auto r = t.exec(
        "UPDATE consistency_groups SET name = ?, description = ?, updated_at = ? WHERE id = ?",
        {req.name.value_or(g->name), req.description.value_or(g->description), im.now_ms(), id});
    if (!r.ok()) {
      if (r.status().code() == Code::kAlreadyExists)
        return Status::AlreadyExists("name: a consistency group named " + *req.name +
                                     " already exists");
      return r.status();
    }
    for (const auto& v : req.remove_volume_ids) {
      auto d = t.exec("DELETE FROM cg_members WHERE group_id = ? AND volume_id = ?", {id, v});
      if (!d.ok()) return d.status();
    }
    auto last =
        t.query_one("SELECT COALESCE(MAX(position), -1) FROM cg_members WHERE group_id = ?", {id});
    if (!last.ok()) return last.status();
    std::int64_t pos = (*last)->int64(0);
    for (const auto& v : req.add_volume_ids) {
      auto m = t.exec(
          "INSERT INTO cg_members (cluster_id, volume_id, group_id, position) VALUES (?, ?, ?, ?)",
          {g->cluster_id, v, id, ++pos});
      if (!m.ok()) return m.status();
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return im.read_group(id);
}

Status Groups::remove(const std::string& id) {
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  return im.deps.store->transact([&](Txn& t) -> Status {
    auto g = im.load_group(t, id);
    if (!g.ok()) return g.status();
    if (g->status != GroupStatus::kAvailable && g->status != GroupStatus::kError)
      return Status::FailedPrecondition("consistency group " + id + " is " +
                                        std::string(to_string(g->status)) +
                                        "; only an available or error group can be deleted");
    // Linked copies first: their group snapshots go with them.
    auto copies = t.query_one(
        "SELECT COUNT(*) FROM full_copies f JOIN copy_sets c ON c.id = f.copy_set_id "
        "WHERE c.group_id = ? AND f.status <> 'detached'",
        {id});
    if (!copies.ok()) return copies.status();
    if ((*copies)->int64(0) > 0)
      return Status::FailedPrecondition("consistency group " + id + " has " +
                                        std::to_string((*copies)->int64(0)) +
                                        " linked full copy(ies); detach them first");
    auto snaps = t.query_one("SELECT COUNT(*) FROM cg_snapshots WHERE group_id = ?", {id});
    if (!snaps.ok()) return snaps.status();
    if ((*snaps)->int64(0) > 0)
      return Status::FailedPrecondition("consistency group " + id + " has " +
                                        std::to_string((*snaps)->int64(0)) +
                                        " group snapshot(s); delete them first");
    // Its volumes stay: only the membership goes (ON DELETE CASCADE).
    return t.exec("DELETE FROM consistency_groups WHERE id = ?", {id}).status();
  });
}

Status Groups::reset_status(const std::string& id, GroupStatus status, const std::string& actor) {
  Impl& im = *impl_;
  std::string before;
  {
    std::lock_guard lock(im.mu);
    Status s = im.deps.store->transact([&](Txn& t) -> Status {
      auto g = im.load_group(t, id);
      if (!g.ok()) return g.status();
      before = std::string(to_string(g->status));
      return t
          .exec("UPDATE consistency_groups SET status = ?, updated_at = ? WHERE id = ?",
                {std::string(to_string(status)), im.now_ms(), id})
          .status();
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
      auto g = im.load_group(t, id);
      if (!g.ok()) return g.status();
      name = g->name;
      // Whatever its status and group snapshots: the record and the membership go, the volumes
      // and any group snapshots stay.
      return t.exec("DELETE FROM consistency_groups WHERE id = ?", {id}).status();
    });
    if (!s.ok()) return s;
  }
  im.deps.auth->audit("cg_force_delete",
                      {{"user", actor}, {"consistencyGroupId", id}, {"name", name}});
  return Status::Ok();
}

// ---- group snapshots ----

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
      auto r = t.exec(
          "INSERT INTO cg_snapshots (id, group_id, name, description, cluster_id, project, "
          "status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'creating', ?)",
          {c.id, c.consistency_group_id, c.name, c.description, c.cluster_id, c.project_name,
           to_millis(c.created_at)});
      if (!r.ok() && r.status().code() == Code::kAlreadyExists)
        return Status::AlreadyExists("name: the group already has a group snapshot named " +
                                     c.name);
      return r.status();
    });
    if (!s.ok()) return s;
  }
  auto wf = im.start_workflow("cg_snapshots", kCreateCgSnapshot, "cgSnapshotId", c.id,
                              std::move(resources));
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
  CgSnapshotPage out;
  Status s = impl_->deps.store->read([&](Txn& t) -> Status {
    auto r = group_id.empty()
                 ? t.query(std::string("SELECT ") + kCgSnapshotCols +
                               " FROM cg_snapshots WHERE seq > ? ORDER BY seq LIMIT ?",
                           {*after, n + 1})
                 : t.query(std::string("SELECT ") + kCgSnapshotCols +
                               " FROM cg_snapshots WHERE seq > ? AND group_id = ? ORDER BY seq "
                               "LIMIT ?",
                           {*after, group_id, n + 1});
    if (!r.ok()) return r.status();
    return fill_page(t, *r, n, 10, "s", out.cg_snapshots, out.next_page_token, cg_snapshot_from);
  });
  if (!s.ok()) return s;
  return out;
}

Result<CgSnapshot> Groups::get_cg_snapshot(const std::string& id) const {
  return impl_->read_cg_snapshot(id);
}

Status Groups::delete_cg_snapshot(const std::string& id) {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  auto c = im.read_cg_snapshot(id);
  if (!c.ok()) return c.status();
  auto copy = im.first_text(
      "SELECT copy_set_id || ' copy ' || idx FROM full_copies WHERE cg_snapshot_id = ?1 OR "
      "sync_cg_snapshot_id = ?1",
      {id});
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
  Status s = im.deps.store->transact([&](Txn& t) {
    return t.exec("UPDATE cg_snapshots SET status = 'deleting', message = '' WHERE id = ?", {id})
        .status();
  });
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
      return t
          .exec("UPDATE cg_snapshots SET status = 'error_deleting', message = ? WHERE id = ?",
                {failed.message().substr(0, 1024), id})
          .status();
    });
    return failed;
  }
  return im.deps.store->transact(
      [&](Txn& t) { return t.exec("DELETE FROM cg_snapshots WHERE id = ?", {id}).status(); });
}

// The one step of CREATE_CG_SNAPSHOT. Idempotent: a resumed run first removes what an earlier
// run left, then takes every member snapshot again behind the fence.
Status Groups::Impl::snapshot_step(StepContext& ctx) {
  auto rid = request_id(ctx.request(), "cgSnapshotId");
  if (!rid.ok()) return rid.status();
  return take(ctx, *rid);
}

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
    (void)set_cg_snapshot_error(id, why.message());
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
  std::vector<Snapshot> taken;
  Status failure = Status::Ok();
  {
    std::optional<WriteFence::Hold> hold;
    if (o.group_snapshot_write_fence) {
      std::vector<std::string> keys;
      for (const auto& vid : g->volume_ids) keys.push_back(fence_key(c->cluster_id, vid));
      ctx.report_progress({20, "fence", 0, 0, 0});
      auto h = fence.raise(keys, o.group_snapshot_fence_timeout);
      if (!h.ok())
        failure = h.status().with_prefix("write fence");
      else
        hold = std::move(h).value();
    }
    ctx.report_progress({30, "snapshot", 0, 0, 0});
    for (std::size_t i = 0; failure.ok() && i < vols->size(); ++i) {
      CreateSnapshotRequest r;
      r.project_name = c->project_name;
      r.name = names[i];
      r.source_volume_id = (*vols)[i].id;
      r.description = member_tag(id);
      auto sn = (*b)->create_snapshot(r);
      if (!sn.ok())
        failure = sn.status().with_prefix("member " + std::to_string(i + 1) + " (volume " +
                                          (*vols)[i].id + ")");
      else
        taken.push_back(std::move(sn).value());
    }
  }  // the fence is lowered here
  if (!failure.ok()) {
    for (const auto& sn : taken) {
      Status d = (*b)->delete_snapshot(c->project_name, sn.id);
      if (!d.ok() && d.code() != Code::kNotFound)
        o.log("group snapshot " + id + ": cannot remove member snapshot " + sn.id + ": " +
              d.message());
    }
    post_hook(*g, *c, false);
    return fail(failure);
  }
  post_hook(*g, *c, true);
  bool gone = false;
  Status s = deps.store->transact([&](Txn& t) -> Status {
    auto row = t.query_one("SELECT status FROM cg_snapshots WHERE id = ?", {id});
    if (!row.ok()) return row.status();
    if (!*row || (*row)->text(0) != "creating") {
      gone = true;  // force-deleted or reset meanwhile
      return Status::Ok();
    }
    for (std::size_t i = 0; i < taken.size(); ++i) {
      auto m = t.exec(
          "INSERT INTO cg_snapshot_members (cg_snapshot_id, position, volume_id, snapshot_id, "
          "size) VALUES (?, ?, ?, ?, ?)",
          {id, static_cast<std::int64_t>(i), taken[i].source_volume_id, taken[i].id,
           static_cast<std::int64_t>(taken[i].size)});
      if (!m.ok()) return m.status();
    }
    return t.exec("UPDATE cg_snapshots SET status = 'available', message = '' WHERE id = ?", {id})
        .status();
  });
  if (!s.ok() || gone) {
    for (const auto& sn : taken) (void)(*b)->delete_snapshot(c->project_name, sn.id);
    return s.ok() ? Status::Aborted("group snapshot " + id + " changed status while it was taken")
                  : s;
  }
  json::array ids;
  for (const auto& sn : taken) ids.push_back(json::value(sn.id));
  ctx.set_result(
      json::serialize(json::object{{"cgSnapshotId", id}, {"snapshotIds", std::move(ids)}}));
  ctx.report_progress({100, "done", 0, 0, 0});
  return Status::Ok();
}

// Compensation (failure, cancellation): no member snapshot stays, the group snapshot ends in
// error.
Status Groups::Impl::snapshot_undo(StepContext& ctx) {
  auto rid = request_id(ctx.request(), "cgSnapshotId");
  if (!rid.ok()) return Status::Ok();
  const std::string& id = *rid;
  auto c = read_cg_snapshot(id);
  if (!c.ok() || c->status != GroupStatus::kCreating) return Status::Ok();
  auto b = backend_locked(c->cluster_id);
  if (b.ok()) {
    if (Status s = remove_member_leftovers(**b, *c); !s.ok()) return s;
  }
  return set_cg_snapshot_error(id, ctx.should_stop() ? "cancelled" : "the workflow failed");
}

// ---- groups made from a group snapshot ----

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
      auto r = t.exec(
          "INSERT INTO consistency_groups (id, name, description, cluster_id, project, status, "
          "source_cg_snapshot_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'creating', ?, "
          "?, ?)",
          {g.id, g.name, g.description, g.cluster_id, g.project_name, g.source_cg_snapshot_id,
           to_millis(g.created_at), to_millis(g.updated_at)});
      if (!r.ok() && r.status().code() == Code::kAlreadyExists)
        return Status::AlreadyExists("name: a consistency group named " + g.name +
                                     " already exists");
      return r.status();
    });
    if (!s.ok()) return s;
  }
  auto wf = start_workflow("consistency_groups", kCreateConsistencyGroup, "consistencyGroupId",
                           g.id, std::move(resources));
  if (!wf.ok()) return wf.status();
  g.workflow_id = *wf;
  return g;
}

Result<std::vector<std::pair<std::string, CgSnapshotMember>>> Groups::Impl::planned_volumes(
    Backend& b, const ConsistencyGroup& g, const CgSnapshot& c) const {
  std::vector<std::pair<std::string, CgSnapshotMember>> out;
  for (std::size_t i = 0; i < c.members.size(); ++i) {
    auto sn = b.get_snapshot(c.project_name, c.members[i].snapshot_id);
    if (!sn.ok()) return sn.status();
    out.emplace_back(member_volume_name(g.name, c, *sn, i), c.members[i]);
  }
  return out;
}

// The one step of CREATE_CONSISTENCY_GROUP: a thin clone of every member snapshot, then the
// group available with them as members. Idempotent: a volume of the planned name that is a
// clone of the planned snapshot is one an earlier run made.
Status Groups::Impl::clone_group_step(StepContext& ctx) {
  auto id = request_id(ctx.request(), "consistencyGroupId");
  if (!id.ok()) return id.status();
  auto g = read_group(*id);
  if (!g.ok()) return g.status();
  if (g->status == GroupStatus::kAvailable) {
    ctx.set_result(json::serialize(json::object{{"consistencyGroupId", *id}}));
    return Status::Ok();
  }
  if (g->status != GroupStatus::kCreating)
    return Status::FailedPrecondition("consistency group " + *id + " is " +
                                      std::string(to_string(g->status)));
  auto fail = [&](const Status& why) {
    (void)set_group_error(*id, why.message());
    return why;
  };
  auto c = read_cg_snapshot(g->source_cg_snapshot_id);
  if (!c.ok()) return fail(c.status());
  auto b = backend_locked(g->cluster_id);
  if (!b.ok()) return fail(b.status());
  auto plan = planned_volumes(**b, *g, *c);
  if (!plan.ok()) return fail(plan.status());
  std::vector<std::string> made;
  for (std::size_t i = 0; i < plan->size(); ++i) {
    if (ctx.should_stop()) return Status::Cancelled("stopped");
    const auto& [name, member] = (*plan)[i];
    ctx.report_progress({static_cast<int>(i * 100 / plan->size()), "clone", 0, 0, 0});
    auto existing = (*b)->find_volume(g->project_name, name);
    if (existing.ok()) {
      if (existing->source_snapshot_id != member.snapshot_id ||
          !detail::made_by(existing->labels, ctx.workflow_id()))
        return fail(Status::AlreadyExists("member " + std::to_string(i + 1) + ": a volume named " +
                                          name + " already exists"));
      made.push_back(existing->id);
      continue;
    }
    if (existing.status().code() != Code::kNotFound) return fail(existing.status());
    CreateVolumeRequest r;
    r.project_name = g->project_name;
    r.name = name;
    r.size = member.size;
    r.source_snapshot_id = member.snapshot_id;
    r.labels[kOwnerLabel] = ctx.workflow_id();
    auto v = (*b)->create_volume(r);
    if (!v.ok())
      return fail(v.status().with_prefix("member " + std::to_string(i + 1) + " (snapshot " +
                                         member.snapshot_id + ")"));
    made.push_back(v->id);
  }
  Status s = deps.store->transact([&](Txn& t) -> Status {
    auto row = t.query_one("SELECT status FROM consistency_groups WHERE id = ?", {*id});
    if (!row.ok()) return row.status();
    if (!*row || (*row)->text(0) != "creating")
      return Status::Aborted("consistency group " + *id + " changed while it was made");
    if (Status cs = check_not_grouped(t, g->cluster_id, made, "volumeIds"); !cs.ok()) return cs;
    for (std::size_t i = 0; i < made.size(); ++i) {
      auto m = t.exec(
          "INSERT INTO cg_members (cluster_id, volume_id, group_id, position) VALUES (?, ?, ?, ?)",
          {g->cluster_id, made[i], *id, static_cast<std::int64_t>(i)});
      if (!m.ok()) return m.status();
    }
    return t
        .exec(
            "UPDATE consistency_groups SET status = 'available', message = '', updated_at = ? "
            "WHERE id = ?",
            {now_ms(), *id})
        .status();
  });
  if (!s.ok()) return fail(s);
  json::array ids;
  for (const auto& v : made) ids.push_back(json::value(v));
  ctx.set_result(
      json::serialize(json::object{{"consistencyGroupId", *id}, {"volumeIds", std::move(ids)}}));
  ctx.report_progress({100, "done", 0, 0, 0});
  return Status::Ok();
}

// Compensation: the volumes it made go, the group ends in error (it stays, for the operator to
// see why, until deleted).
Status Groups::Impl::clone_group_undo(StepContext& ctx) {
  auto id = request_id(ctx.request(), "consistencyGroupId");
  if (!id.ok()) return Status::Ok();
  auto g = read_group(*id);
  if (!g.ok() || g->status == GroupStatus::kAvailable) return Status::Ok();
  auto c = read_cg_snapshot(g->source_cg_snapshot_id);
  auto b = backend_locked(g->cluster_id);
  if (c.ok() && b.ok()) {
    auto plan = planned_volumes(**b, *g, *c);
    if (!plan.ok()) return plan.status();
    for (const auto& [name, member] : *plan) {
      auto v = (*b)->find_volume(g->project_name, name);
      if (!v.ok() || !detail::made_by(v->labels, ctx.workflow_id())) continue;
      Status d = (*b)->delete_volume(g->project_name, v->id);
      if (!d.ok() && d.code() != Code::kNotFound) return d;
    }
  }
  return set_group_error(*id, ctx.should_stop() ? "cancelled" : "the workflow failed");
}

void Groups::register_workflows() {
  Impl* im = impl_.get();
  Step step;
  step.name = "snapshot";
  step.run = [im](StepContext& c) { return im->snapshot_step(c); };
  step.undo = [im](StepContext& c) { return im->snapshot_undo(c); };
  // Cancelled before it ran: nothing was taken; the group snapshot ends in error.
  auto settle = [](const char* table, const char* key) {
    return [table, key](Txn& t, const std::string& request) -> Status {
      auto id = request_id(request, key);
      if (!id.ok()) return Status::Ok();
      return t
          .exec(std::string("UPDATE ") + table +
                    " SET status = 'error', message = 'cancelled before it started' WHERE id = ? "
                    "AND status = 'creating'",
                {*id})
          .status();
    };
  };
  (void)im->deps.engine->register_type(
      {kCreateCgSnapshot, {std::move(step)}, settle("cg_snapshots", "cgSnapshotId")});
  Step clone;
  clone.name = "clone";
  clone.run = [im](StepContext& c) { return im->clone_group_step(c); };
  clone.undo = [im](StepContext& c) { return im->clone_group_undo(c); };
  (void)im->deps.engine->register_type({kCreateConsistencyGroup,
                                        {std::move(clone)},
                                        settle("consistency_groups", "consistencyGroupId")});
}

Status Groups::recover() {
  Impl& im = *impl_;
  return im.deps.store->transact([&](Txn& t) -> Status {
    // A crash between recording the group snapshot and its workflow: no member was taken. (Its
    // workflow, if it was recorded after all, sees the error and ends FAILED.)
    auto r = t.exec(
        "UPDATE cg_snapshots SET status = 'error', message = 'interrupted before its workflow "
        "was recorded' WHERE status = 'creating' AND workflow_id = ''");
    if (!r.ok()) return r.status();
    r = t.exec(
        "UPDATE consistency_groups SET status = 'error', message = 'interrupted before its "
        "workflow was recorded' WHERE status = 'creating' AND workflow_id = '' AND "
        "source_cg_snapshot_id <> ''");
    if (!r.ok()) return r.status();
    // A crash during a delete: some member snapshots may be gone.
    return t
        .exec(
            "UPDATE cg_snapshots SET status = 'error_deleting', message = 'a restart interrupted "
            "the delete; delete it again' WHERE status = 'deleting'")
        .status();
  });
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
  return im.deps.store->transact(
      [&](Txn& t) { return t.exec("DELETE FROM cg_snapshots WHERE id = ?", {id}).status(); });
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
  auto group =
      impl_->first_text("SELECT group_id FROM cg_members WHERE cluster_id = ? AND volume_id = ?",
                        {cluster_id, volume_id});
  if (!group.ok()) return group.status();
  if (!group->empty())
    return Status::FailedPrecondition("volume " + volume_id + " belongs to consistency group " +
                                      *group + "; remove it from the group first");
  auto copy = impl_->first_text(
      "SELECT v.copy_set_id || ' copy ' || v.idx FROM full_copy_volumes v JOIN full_copies f ON "
      "f.copy_set_id = v.copy_set_id AND f.idx = v.idx JOIN copy_sets c ON c.id = v.copy_set_id "
      "WHERE v.volume_id = ? AND c.cluster_id = ? AND f.status <> 'detached'",
      {volume_id, cluster_id});
  if (!copy.ok()) return copy.status();
  if (!copy->empty())
    return Status::FailedPrecondition("volume " + volume_id + " is a full copy (copy set " + *copy +
                                      "); detach the copy first");
  return Status::Ok();
}

Status Groups::check_snapshot_free(const std::string& snapshot_id) const {
  auto cg = impl_->first_text(
      "SELECT cg_snapshot_id FROM cg_snapshot_members WHERE snapshot_id = ?", {snapshot_id});
  if (!cg.ok()) return cg.status();
  if (!cg->empty())
    return Status::FailedPrecondition("snapshot " + snapshot_id + " belongs to group snapshot " +
                                      *cg + "; delete the group snapshot instead");
  return Status::Ok();
}

Status Groups::check_cluster_free(const std::string& cluster_id) const {
  std::int64_t groups = 0, snaps = 0;
  Status s = impl_->deps.store->read([&](Txn& t) -> Status {
    auto g =
        t.query_one("SELECT COUNT(*) FROM consistency_groups WHERE cluster_id = ?", {cluster_id});
    if (!g.ok()) return g.status();
    groups = (*g)->int64(0);
    auto c = t.query_one("SELECT COUNT(*) FROM cg_snapshots WHERE cluster_id = ?", {cluster_id});
    if (!c.ok()) return c.status();
    snaps = (*c)->int64(0);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  std::int64_t copies = 0;
  s = impl_->deps.store->read([&](Txn& t) -> Status {
    auto c = t.query_one(
        "SELECT COUNT(*) FROM full_copies f JOIN copy_sets c ON c.id = f.copy_set_id WHERE "
        "c.cluster_id = ? AND f.status <> 'detached'",
        {cluster_id});
    if (!c.ok()) return c.status();
    copies = (*c)->int64(0);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (copies > 0)
    return Status::FailedPrecondition("cluster " + cluster_id + " holds " + std::to_string(copies) +
                                      " linked full copy(ies); detach them first");
  if (groups > 0 || snaps > 0)
    return Status::FailedPrecondition("cluster " + cluster_id + " holds " + std::to_string(groups) +
                                      " consistency group(s) and " + std::to_string(snaps) +
                                      " group snapshot(s); delete them first");
  return Status::Ok();
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
  auto sink = (*b)->open_volume_sink(project, volume_id, false);
  if (!sink.ok()) return sink.status();
  if (!data.empty()) {
    if (Status s = (*sink)->write_at(offset, data.data(), data.size()); !s.ok()) return s;
  }
  if (durable) return (*sink)->sync();
  return Status::Ok();
}

}  // namespace detail
}  // namespace dmscore
