#include "catalog/copy_set_catalog.hpp"

#include "base/util.hpp"
#include "catalog/rows.hpp"

namespace dmscore::detail {

namespace {

constexpr const char* kSetCols =
    "id, name, group_id, cluster_id, project, copy_count, partial, create_inactive, created_at, "
    "seq";

std::string text(CopyStatus s) { return std::string(to_string(s)); }

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

}  // namespace

Result<CopySet> CopySetCatalog::get(Txn& t, const std::string& id) {
  auto r = t.query_one(std::string("SELECT ") + kSetCols + " FROM copy_sets WHERE id = ?", {id});
  if (!r.ok()) return r.status();
  if (!*r) return Status::NotFound("copy set " + id + " not found");
  CopySet c = set_from(**r);
  if (Status s = load_copies(t, c); !s.ok()) return s;
  return c;
}

Result<CopySetPage> CopySetCatalog::list(Txn& t, const std::string& group_id, std::int64_t after,
                                         std::int64_t n) {
  auto r = t.query(std::string("SELECT ") + kSetCols +
                       " FROM copy_sets WHERE group_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                   {group_id, after, n + 1});
  if (!r.ok()) return r.status();
  CopySetPage out;
  const auto limit = static_cast<std::size_t>(n);
  for (std::size_t i = 0; i < r->size() && i < limit; ++i) {
    CopySet c = set_from((*r)[i]);
    if (Status l = load_copies(t, c); !l.ok()) return l;
    out.copy_sets.push_back(std::move(c));
  }
  if (r->size() > limit) out.next_page_token = make_page_token("f", (*r)[limit - 1].int64(9));
  return out;
}

Status CopySetCatalog::insert(Txn& t, const CopySet& set, const std::string& sync_snapshot) {
  auto r = t.exec(
      "INSERT INTO copy_sets (id, name, group_id, cluster_id, project, copy_count, partial, "
      "create_inactive, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {set.id, set.name, set.consistency_group_id, set.cluster_id, set.project_name,
       static_cast<std::int64_t>(set.count), std::int64_t{set.partial},
       std::int64_t{set.create_inactive}, to_millis(set.created_at)});
  if (!r.ok()) return r.status();
  for (const auto& f : set.copies) {
    auto c = t.exec(
        "INSERT INTO full_copies (copy_set_id, idx, status, sync_cg_snapshot_id, workflow_id, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        {set.id, static_cast<std::int64_t>(f.index), text(CopyStatus::kCreating), sync_snapshot,
         f.workflow_id, to_millis(set.created_at)});
    if (!c.ok()) return c.status();
    for (std::size_t p = 0; p < f.volumes.size(); ++p) {
      auto v = t.exec(
          "INSERT INTO full_copy_volumes (copy_set_id, idx, position, source_volume_id, name, "
          "size) VALUES (?, ?, ?, ?, ?, ?)",
          {set.id, static_cast<std::int64_t>(f.index), static_cast<std::int64_t>(p),
           f.volumes[p].source_volume_id, f.volumes[p].name,
           static_cast<std::int64_t>(f.volumes[p].size)});
      if (!v.ok()) return v.status();
    }
  }
  return Status::Ok();
}

Result<std::optional<CopySetCatalog::CopyState>> CopySetCatalog::copy_state(
    Txn& t, const std::string& set_id, int idx) {
  auto r = t.query_one(
      "SELECT f.status, (SELECT COUNT(*) FROM full_copy_volumes v WHERE v.copy_set_id = "
      "f.copy_set_id AND v.idx = f.idx AND v.volume_id = ''), f.cg_snapshot_id FROM full_copies "
      "f WHERE f.copy_set_id = ? AND f.idx = ?",
      {set_id, static_cast<std::int64_t>(idx)});
  if (!r.ok()) return r.status();
  if (!*r) return std::optional<CopyState>();
  return std::optional<CopyState>(
      CopyState{copy_status_from((*r)->text(0)), (*r)->int64(1) == 0, (*r)->text(2)});
}

Status CopySetCatalog::update_copy(Txn& t, const std::string& set_id, int idx,
                                   const CopyChange& change, std::int64_t now_ms) {
  std::string sql = "UPDATE full_copies SET ";
  std::vector<SqlValue> params;
  auto set = [&](const char* column, const std::optional<std::string>& v) {
    if (!v) return;
    sql += std::string(column) + " = ?, ";
    params.emplace_back(*v);
  };
  if (change.status) set("status", text(*change.status));
  set("cg_snapshot_id", change.cg_snapshot_id);
  set("sync_cg_snapshot_id", change.sync_cg_snapshot_id);
  set("workflow_id", change.workflow_id);
  if (change.message) set("message", change.message->substr(0, 1024));
  sql += "updated_at = ? WHERE copy_set_id = ? AND idx = ?";
  params.emplace_back(now_ms);
  params.emplace_back(set_id);
  params.emplace_back(static_cast<std::int64_t>(idx));
  return t.exec(sql, params).status();
}

Status CopySetCatalog::fail_copy(Txn& t, const std::string& set_id, int idx, const std::string& why,
                                 std::int64_t now_ms) {
  return t
      .exec(
          "UPDATE full_copies SET status = ?, sync_cg_snapshot_id = '', message = CASE WHEN "
          "message = '' THEN ? ELSE message END, updated_at = ? WHERE copy_set_id = ? AND idx = ?",
          {text(CopyStatus::kError), why, now_ms, set_id, static_cast<std::int64_t>(idx)})
      .status();
}

Status CopySetCatalog::settle_cancelled(Txn& t, const std::string& set_id, int idx,
                                        std::int64_t now_ms) {
  const auto i = static_cast<std::int64_t>(idx);
  auto r = t.exec(
      "UPDATE full_copies SET status = ?, sync_cg_snapshot_id = '', message = 'its workflow was "
      "cancelled before it started', updated_at = ? WHERE copy_set_id = ? AND idx = ? AND "
      "status IN (?, ?)",
      {text(CopyStatus::kError), now_ms, set_id, i, text(CopyStatus::kCreating),
       text(CopyStatus::kSynchronizing)});
  if (!r.ok()) return r.status();
  return t
      .exec(
          "UPDATE full_copies SET status = ?, message = 'the restore was cancelled before it "
          "started', updated_at = ? WHERE copy_set_id = ? AND idx = ? AND status = ?",
          {text(CopyStatus::kSynchronized), now_ms, set_id, i, text(CopyStatus::kRestoring)})
      .status();
}

Status CopySetCatalog::set_volume(Txn& t, const std::string& set_id, int idx, std::size_t position,
                                  const std::string& volume_id) {
  return t
      .exec(
          "UPDATE full_copy_volumes SET volume_id = ? WHERE copy_set_id = ? AND idx = ? AND "
          "position = ?",
          {volume_id, set_id, static_cast<std::int64_t>(idx), static_cast<std::int64_t>(position)})
      .status();
}

Status CopySetCatalog::clear_volumes(Txn& t, const std::string& set_id, int idx) {
  return t
      .exec("UPDATE full_copy_volumes SET volume_id = '' WHERE copy_set_id = ? AND idx = ?",
            {set_id, static_cast<std::int64_t>(idx)})
      .status();
}

Result<std::int64_t> CopySetCatalog::refs_to_snapshot(Txn& t, const std::string& cg_snapshot_id) {
  return rows::integer(
      t, "SELECT COUNT(*) FROM full_copies WHERE cg_snapshot_id = ?1 OR sync_cg_snapshot_id = ?1",
      {cg_snapshot_id});
}

Result<std::int64_t> CopySetCatalog::linked_copies_of_group(Txn& t,
                                                            const std::string& group_id) const {
  return rows::integer(
      t,
      "SELECT COUNT(*) FROM full_copies f JOIN copy_sets c ON c.id = f.copy_set_id "
      "WHERE c.group_id = ? AND f.status <> ?",
      {group_id, text(CopyStatus::kDetached)});
}

Result<std::int64_t> CopySetCatalog::linked_copies_on_cluster(Txn& t,
                                                              const std::string& cluster_id) const {
  return rows::integer(
      t,
      "SELECT COUNT(*) FROM full_copies f JOIN copy_sets c ON c.id = f.copy_set_id "
      "WHERE c.cluster_id = ? AND f.status <> ?",
      {cluster_id, text(CopyStatus::kDetached)});
}

Result<std::string> CopySetCatalog::copy_holding_volume(Txn& t, const std::string& cluster_id,
                                                        const std::string& volume_id) const {
  return rows::first_text(
      t,
      "SELECT v.copy_set_id || ' copy ' || v.idx FROM full_copy_volumes v JOIN full_copies f ON "
      "f.copy_set_id = v.copy_set_id AND f.idx = v.idx JOIN copy_sets c ON c.id = v.copy_set_id "
      "WHERE v.volume_id = ? AND c.cluster_id = ? AND f.status <> ?",
      {volume_id, cluster_id, text(CopyStatus::kDetached)});
}

Result<std::string> CopySetCatalog::copy_using_snapshot(Txn& t,
                                                        const std::string& cg_snapshot_id) const {
  return rows::first_text(
      t,
      "SELECT copy_set_id || ' copy ' || idx FROM full_copies WHERE cg_snapshot_id = "
      "?1 OR sync_cg_snapshot_id = ?1",
      {cg_snapshot_id});
}

}  // namespace dmscore::detail
