#include "catalog/group_catalog.hpp"

#include "base/util.hpp"
#include "catalog/rows.hpp"

namespace dmscore::detail {

namespace {

constexpr const char* kGroupCols =
    "id, name, description, cluster_id, project, status, source_cg_snapshot_id, created_at, "
    "updated_at, seq, workflow_id, message";
constexpr const char* kCgSnapshotCols =
    "id, name, description, group_id, cluster_id, project, status, workflow_id, message, "
    "created_at, seq";
constexpr std::size_t kMaxMessage = 1024;

std::string text(GroupStatus s) { return std::string(to_string(s)); }

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

Result<std::optional<GroupStatus>> status_in(Txn& t, std::string_view sql, const std::string& id) {
  auto r = t.query_one(sql, {id});
  if (!r.ok()) return r.status();
  if (!*r) return std::optional<GroupStatus>();
  return std::optional<GroupStatus>(status_from((*r)->text(0)));
}

}  // namespace

// ---- groups ----

Result<ConsistencyGroup> GroupCatalog::get(Txn& t, const std::string& id) {
  auto r = t.query_one(
      std::string("SELECT ") + kGroupCols + " FROM consistency_groups WHERE id = ?", {id});
  if (!r.ok()) return r.status();
  if (!*r) return Status::NotFound("consistency group " + id + " not found");
  ConsistencyGroup g = group_from(**r);
  if (Status s = load_members(t, g); !s.ok()) return s;
  return g;
}

Result<std::optional<GroupStatus>> GroupCatalog::status_of(Txn& t, const std::string& id) {
  return status_in(t, "SELECT status FROM consistency_groups WHERE id = ?", id);
}

Result<GroupPage> GroupCatalog::list(Txn& t, std::int64_t after, std::int64_t n) {
  auto r = t.query(std::string("SELECT ") + kGroupCols +
                       " FROM consistency_groups WHERE seq > ? ORDER BY seq LIMIT ?",
                   {after, n + 1});
  if (!r.ok()) return r.status();
  GroupPage out;
  if (Status s = fill_page(t, *r, n, 9, "g", out.groups, out.next_page_token, group_from); !s.ok())
    return s;
  return out;
}

Status GroupCatalog::insert(Txn& t, const ConsistencyGroup& g) {
  auto r = t.exec(
      "INSERT INTO consistency_groups (id, name, description, cluster_id, project, status, "
      "source_cg_snapshot_id, workflow_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
      "?, ?, ?)",
      {g.id, g.name, g.description, g.cluster_id, g.project_name, text(g.status),
       g.source_cg_snapshot_id, g.workflow_id, to_millis(g.created_at), to_millis(g.updated_at)});
  if (!r.ok()) return r.status();
  return append_members(t, g.id, g.cluster_id, g.volume_ids);
}

Status GroupCatalog::append_members(Txn& t, const std::string& group_id,
                                    const std::string& cluster_id,
                                    const std::vector<std::string>& volume_ids) {
  if (volume_ids.empty()) return Status::Ok();
  auto last = rows::integer(
      t, "SELECT COALESCE(MAX(position), -1) FROM cg_members WHERE group_id = ?", {group_id});
  if (!last.ok()) return last.status();
  std::int64_t pos = *last;
  for (const auto& v : volume_ids) {
    auto m = t.exec(
        "INSERT INTO cg_members (cluster_id, volume_id, group_id, position) VALUES (?, ?, ?, ?)",
        {cluster_id, v, group_id, ++pos});
    if (!m.ok()) return m.status();
  }
  return Status::Ok();
}

Status GroupCatalog::remove_members(Txn& t, const std::string& group_id,
                                    const std::vector<std::string>& volume_ids) {
  for (const auto& v : volume_ids) {
    auto d = t.exec("DELETE FROM cg_members WHERE group_id = ? AND volume_id = ?", {group_id, v});
    if (!d.ok()) return d.status();
  }
  return Status::Ok();
}

Status GroupCatalog::rename(Txn& t, const std::string& id, const std::string& name,
                            const std::string& description, std::int64_t now_ms) {
  return t
      .exec("UPDATE consistency_groups SET name = ?, description = ?, updated_at = ? WHERE id = ?",
            {name, description, now_ms, id})
      .status();
}

Status GroupCatalog::set_workflow(Txn& t, const std::string& id, const std::string& workflow_id) {
  return t.exec("UPDATE consistency_groups SET workflow_id = ? WHERE id = ?", {workflow_id, id})
      .status();
}

Status GroupCatalog::set_status(Txn& t, const std::string& id, GroupStatus status,
                                std::int64_t now_ms, const std::optional<std::string>& message) {
  if (message)
    return t
        .exec("UPDATE consistency_groups SET status = ?, message = ?, updated_at = ? WHERE id = ?",
              {text(status), message->substr(0, kMaxMessage), now_ms, id})
        .status();
  return t
      .exec("UPDATE consistency_groups SET status = ?, updated_at = ? WHERE id = ?",
            {text(status), now_ms, id})
      .status();
}

Status GroupCatalog::fail_creation(Txn& t, const std::string& id, const std::string& why,
                                   std::int64_t now_ms, bool keep_message) {
  return t
      .exec(std::string("UPDATE consistency_groups SET status = ?, message = ") +
                (keep_message ? "CASE WHEN message = '' THEN ? ELSE message END" : "?") +
                ", updated_at = ? WHERE id = ? AND status = ?",
            {text(GroupStatus::kError), why.substr(0, kMaxMessage), now_ms, id,
             text(GroupStatus::kCreating)})
      .status();
}

Status GroupCatalog::set_creation_message(Txn& t, const std::string& id,
                                          const std::string& message) {
  return t
      .exec("UPDATE consistency_groups SET message = ? WHERE id = ? AND status = ?",
            {message.substr(0, kMaxMessage), id, text(GroupStatus::kCreating)})
      .status();
}

Status GroupCatalog::remove(Txn& t, const std::string& id) {
  // The membership goes with it (ON DELETE CASCADE).
  return t.exec("DELETE FROM consistency_groups WHERE id = ?", {id}).status();
}

Result<std::string> GroupCatalog::group_of_volume(Txn& t, const std::string& cluster_id,
                                                  const std::string& volume_id) {
  return rows::first_text(t,
                          "SELECT group_id FROM cg_members WHERE cluster_id = ? AND volume_id = ?",
                          {cluster_id, volume_id});
}

Result<std::int64_t> GroupCatalog::count_on_cluster(Txn& t, const std::string& cluster_id) {
  return rows::integer(t, "SELECT COUNT(*) FROM consistency_groups WHERE cluster_id = ?",
                       {cluster_id});
}

Status GroupCatalog::fail_unrecorded(Txn& t) {
  return t
      .exec(
          "UPDATE consistency_groups SET status = ?, message = 'interrupted before its workflow "
          "was recorded' WHERE status = ? AND workflow_id = '' AND source_cg_snapshot_id <> ''",
          {text(GroupStatus::kError), text(GroupStatus::kCreating)})
      .status();
}

// ---- group snapshots ----

Result<CgSnapshot> CgSnapshotCatalog::get(Txn& t, const std::string& id) {
  auto r = t.query_one(std::string("SELECT ") + kCgSnapshotCols + " FROM cg_snapshots WHERE id = ?",
                       {id});
  if (!r.ok()) return r.status();
  if (!*r) return Status::NotFound("group snapshot " + id + " not found");
  CgSnapshot c = cg_snapshot_from(**r);
  if (Status s = load_members(t, c); !s.ok()) return s;
  return c;
}

Result<std::optional<GroupStatus>> CgSnapshotCatalog::status_of(Txn& t, const std::string& id) {
  return status_in(t, "SELECT status FROM cg_snapshots WHERE id = ?", id);
}

Result<CgSnapshotPage> CgSnapshotCatalog::list(Txn& t, std::int64_t after, std::int64_t n,
                                               const std::string& group_id) {
  auto r = group_id.empty()
               ? t.query(std::string("SELECT ") + kCgSnapshotCols +
                             " FROM cg_snapshots WHERE seq > ? ORDER BY seq LIMIT ?",
                         {after, n + 1})
               : t.query(std::string("SELECT ") + kCgSnapshotCols +
                             " FROM cg_snapshots WHERE seq > ? AND group_id = ? ORDER BY seq "
                             "LIMIT ?",
                         {after, group_id, n + 1});
  if (!r.ok()) return r.status();
  CgSnapshotPage out;
  if (Status s =
          fill_page(t, *r, n, 10, "s", out.cg_snapshots, out.next_page_token, cg_snapshot_from);
      !s.ok())
    return s;
  return out;
}

Status CgSnapshotCatalog::insert(Txn& t, const CgSnapshot& c, const std::string& copy_set_id) {
  return t
      .exec(
          "INSERT INTO cg_snapshots (id, group_id, name, description, cluster_id, project, "
          "status, workflow_id, created_at, copy_set_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          {c.id, c.consistency_group_id, c.name, c.description, c.cluster_id, c.project_name,
           text(GroupStatus::kCreating), c.workflow_id, to_millis(c.created_at), copy_set_id})
      .status();
}

Status CgSnapshotCatalog::set_workflow(Txn& t, const std::string& id,
                                       const std::string& workflow_id) {
  return t.exec("UPDATE cg_snapshots SET workflow_id = ? WHERE id = ?", {workflow_id, id}).status();
}

Status CgSnapshotCatalog::set_status(Txn& t, const std::string& id, GroupStatus status,
                                     const std::string& message,
                                     std::optional<GroupStatus> only_from) {
  if (only_from)
    return t
        .exec("UPDATE cg_snapshots SET status = ?, message = ? WHERE id = ? AND status = ?",
              {text(status), message.substr(0, kMaxMessage), id, text(*only_from)})
        .status();
  return t
      .exec("UPDATE cg_snapshots SET status = ?, message = ? WHERE id = ?",
            {text(status), message.substr(0, kMaxMessage), id})
      .status();
}

Status CgSnapshotCatalog::complete(Txn& t, const std::string& id,
                                   const std::vector<Snapshot>& taken) {
  for (std::size_t i = 0; i < taken.size(); ++i) {
    auto m = t.exec(
        "INSERT INTO cg_snapshot_members (cg_snapshot_id, position, volume_id, snapshot_id, "
        "size) VALUES (?, ?, ?, ?, ?)",
        {id, static_cast<std::int64_t>(i), taken[i].source_volume_id, taken[i].id,
         static_cast<std::int64_t>(taken[i].size)});
    if (!m.ok()) return m.status();
  }
  return set_status(t, id, GroupStatus::kAvailable, "");
}

Status CgSnapshotCatalog::remove(Txn& t, const std::string& id) {
  return t.exec("DELETE FROM cg_snapshots WHERE id = ?", {id}).status();
}

Result<std::string> CgSnapshotCatalog::creating_of_group(Txn& t, const std::string& group_id) {
  return rows::first_text(t,
                          "SELECT id FROM cg_snapshots WHERE group_id = ? AND status = ? LIMIT 1",
                          {group_id, text(GroupStatus::kCreating)});
}

Result<std::int64_t> CgSnapshotCatalog::count_of_group(Txn& t, const std::string& group_id) {
  return rows::integer(t, "SELECT COUNT(*) FROM cg_snapshots WHERE group_id = ?", {group_id});
}

Result<std::int64_t> CgSnapshotCatalog::count_on_cluster(Txn& t, const std::string& cluster_id) {
  return rows::integer(t, "SELECT COUNT(*) FROM cg_snapshots WHERE cluster_id = ?", {cluster_id});
}

Result<std::string> CgSnapshotCatalog::holding_snapshot(Txn& t, const std::string& snapshot_id) {
  return rows::first_text(t, "SELECT cg_snapshot_id FROM cg_snapshot_members WHERE snapshot_id = ?",
                          {snapshot_id});
}

Result<std::string> CgSnapshotCatalog::copy_set_of(Txn& t, const std::string& id) {
  return rows::first_text(t, "SELECT copy_set_id FROM cg_snapshots WHERE id = ?", {id});
}

Result<std::vector<std::string>> CgSnapshotCatalog::taken_for_copy_sets(Txn& t) {
  auto r = t.query("SELECT id FROM cg_snapshots WHERE copy_set_id <> '' ORDER BY seq");
  if (!r.ok()) return r.status();
  std::vector<std::string> out;
  for (auto& row : *r) out.push_back(row.text(0));
  return out;
}

Status CgSnapshotCatalog::recover(Txn& t) {
  // A crash between recording the group snapshot and its workflow: no member was taken. (Its
  // workflow, if it was recorded after all, sees the error and ends FAILED.)
  auto r = t.exec(
      "UPDATE cg_snapshots SET status = ?, message = 'interrupted before its workflow was "
      "recorded' WHERE status = ? AND workflow_id = ''",
      {text(GroupStatus::kError), text(GroupStatus::kCreating)});
  if (!r.ok()) return r.status();
  // A crash during a delete: some member snapshots may be gone.
  return t
      .exec(
          "UPDATE cg_snapshots SET status = ?, message = 'a restart interrupted the delete; "
          "delete it again' WHERE status = ?",
          {text(GroupStatus::kErrorDeleting), text(GroupStatus::kDeleting)})
      .status();
}

}  // namespace dmscore::detail
