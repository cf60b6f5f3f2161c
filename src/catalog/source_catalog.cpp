#include "catalog/source_catalog.hpp"

#include "catalog/rows.hpp"

namespace dmscore::detail {

namespace {

constexpr const char* kCols =
    "seq, id, name, ip, ipv6, first_mac, state, migration_cycle, migproject_id, report, checks, "
    "plan, reported_by, workflow_id, add_date, reported_at, state_action_time, "
    "stage_action_time, last_visit_time, replicate_size";

SourceCatalog::Stored from(const Row& r) {
  SourceCatalog::Stored s;
  s.seq = r.int64(0);
  s.id = r.text(1);
  s.name = r.text(2);
  s.ip = r.text(3);
  s.ipv6 = r.text(4);
  s.first_mac = r.text(5);
  s.state = r.text(6);
  s.migration_cycle = r.text(7);
  s.migproject_id = r.text(8);
  s.report = r.text(9);
  s.checks = r.text(10);
  s.plan = r.text(11);
  s.reported_by = r.text(12);
  s.workflow_id = r.text(13);
  s.add_date = r.int64(14);
  s.reported_at = r.int64(15);
  s.state_action_time = r.int64(16);
  s.stage_action_time = r.int64(17);
  s.last_visit_time = r.int64(18);
  s.replicate_size = r.int64(19);
  return s;
}

Result<std::optional<SourceCatalog::Stored>> one(Txn& t, const char* where,
                                                 const std::string& value) {
  auto r = t.query_one(std::string("SELECT ") + kCols + " FROM sources WHERE " + where + " = ?",
                       {value});
  if (!r.ok()) return r.status();
  if (!*r) return std::optional<SourceCatalog::Stored>();
  return std::optional<SourceCatalog::Stored>(from(**r));
}

}  // namespace

Result<std::optional<SourceCatalog::Stored>> SourceCatalog::by_id(Txn& t, const std::string& id) {
  return one(t, "id", id);
}

Result<std::optional<SourceCatalog::Stored>> SourceCatalog::by_mac(Txn& t, const std::string& mac) {
  return one(t, "first_mac", mac);
}

Status SourceCatalog::insert(Txn& t, const Stored& s) {
  auto r = t.exec(
      "INSERT INTO sources (id, name, ip, ipv6, first_mac, state, migration_cycle, "
      "migproject_id, report, checks, plan, reported_by, workflow_id, add_date, reported_at, "
      "state_action_time, stage_action_time, last_visit_time, replicate_size) VALUES "
      "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {s.id, s.name, s.ip, s.ipv6, s.first_mac, s.state, s.migration_cycle, s.migproject_id,
       s.report, s.checks, s.plan, s.reported_by, s.workflow_id, s.add_date, s.reported_at,
       s.state_action_time, s.stage_action_time, s.last_visit_time, s.replicate_size});
  return r.status();
}

Status SourceCatalog::update(Txn& t, const Stored& s) {
  auto r = t.exec(
      "UPDATE sources SET name = ?, ip = ?, ipv6 = ?, first_mac = ?, state = ?, "
      "migration_cycle = ?, migproject_id = ?, report = ?, checks = ?, plan = ?, "
      "reported_by = ?, workflow_id = ?, reported_at = ?, state_action_time = ?, "
      "stage_action_time = ?, last_visit_time = ?, replicate_size = ? WHERE id = ?",
      {s.name, s.ip, s.ipv6, s.first_mac, s.state, s.migration_cycle, s.migproject_id, s.report,
       s.checks, s.plan, s.reported_by, s.workflow_id, s.reported_at, s.state_action_time,
       s.stage_action_time, s.last_visit_time, s.replicate_size, s.id});
  if (!r.ok()) return r.status();
  if (*r == 0) return Status::NotFound("source " + s.id + " not found");
  return Status::Ok();
}

Status SourceCatalog::visit(Txn& t, const std::string& id, std::int64_t now_ms) {
  auto r = t.exec("UPDATE sources SET last_visit_time = ? WHERE id = ?", {now_ms, id});
  if (!r.ok()) return r.status();
  if (*r == 0) return Status::NotFound("source " + id + " not found");
  return Status::Ok();
}

Result<bool> SourceCatalog::remove(Txn& t, const std::string& id) {
  auto r = t.exec("DELETE FROM sources WHERE id = ?", {id});
  if (!r.ok()) return r.status();
  return *r > 0;
}

Result<std::pair<std::int64_t, std::vector<SourceCatalog::Stored>>> SourceCatalog::list(
    Txn& t, const SourceQuery& q, std::int64_t connected_since, std::int64_t before,
    std::int64_t limit) {
  std::string where = " WHERE 1 = 1";
  std::vector<SqlValue> args;
  if (q.state) {
    where += " AND state = ?";
    args.emplace_back(*q.state);
  }
  if (q.name) {
    // Substring match; instr() has no wildcards to escape.
    where += " AND instr(name, ?) > 0";
    args.emplace_back(*q.name);
  }
  if (q.id) {
    where += " AND id = ?";
    args.emplace_back(*q.id);
  }
  if (q.ip) {
    where += " AND (ip = ? OR ipv6 = ?)";
    args.emplace_back(*q.ip);
    args.emplace_back(*q.ip);
  }
  if (q.migproject) {
    where += " AND migproject_id = ?";
    args.emplace_back(*q.migproject);
  }
  if (q.migration_cycle) {
    where += " AND migration_cycle = ?";
    args.emplace_back(*q.migration_cycle);
  }
  if (q.connected) {
    where += *q.connected ? " AND last_visit_time >= ?" : " AND last_visit_time < ?";
    args.emplace_back(connected_since);
  }
  auto count = t.query_one("SELECT COUNT(*) FROM sources" + where, args);
  if (!count.ok()) return count.status();
  std::string sql = std::string("SELECT ") + kCols + " FROM sources" + where;
  if (before > 0) {
    sql += " AND seq < ?";
    args.emplace_back(before);
  }
  sql += " ORDER BY seq DESC LIMIT ? OFFSET ?";
  args.emplace_back(limit);
  args.emplace_back(before > 0 ? std::int64_t{0} : q.offset);
  auto rows = t.query(sql, args);
  if (!rows.ok()) return rows.status();
  std::vector<Stored> out;
  for (const auto& r : *rows) out.push_back(from(r));
  return std::make_pair((*count)->int64(0), std::move(out));
}

Result<std::vector<std::pair<std::string, std::int64_t>>> SourceCatalog::per_state(Txn& t) {
  auto rows = t.query("SELECT state, COUNT(*) FROM sources GROUP BY state ORDER BY state");
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& r : *rows) out.emplace_back(r.text(0), r.int64(1));
  return out;
}

Result<std::int64_t> SourceCatalog::unconfigured(Txn& t) {
  return rows::integer(t, "SELECT COUNT(*) FROM sources WHERE state = ? AND workflow_id = ''",
                       {std::string("waiting")});
}

}  // namespace dmscore::detail
