#include "catalog/migration_catalog.hpp"

namespace dmscore::detail {

namespace {

constexpr const char* kCols =
    "id, source_id, cluster_id, project_name, syncing, state, stage, pass, passes_wanted, "
    "cutover, cutover_pass, stopped, error, chunk_bytes, window_bytes, rate_limit, created_at, "
    "pass_started, finished";

std::uint64_t u64(const Row& r, std::size_t i) { return static_cast<std::uint64_t>(r.int64(i)); }
std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

SourceMigration from(const Row& r) {
  SourceMigration m;
  m.id = r.text(0);
  m.source_id = r.text(1);
  m.cluster_id = r.text(2);
  m.project_name = r.text(3);
  m.syncing = r.int64(4) != 0;
  m.state = r.text(5);
  m.stage = r.text(6);
  m.pass = r.int64(7);
  m.passes_wanted = r.int64(8);
  m.cutover_requested = r.int64(9) != 0;
  m.cutover_pass = r.int64(10);
  m.stopped = r.int64(11) != 0;
  m.error = r.text(12);
  m.chunk_bytes = u64(r, 13);
  m.window_bytes = u64(r, 14);
  m.rate_limit_bytes_per_sec = u64(r, 15);
  m.start_date = r.int64(16);
  m.pass_started = r.int64(17);
  m.finished = r.int64(18) != 0;
  return m;
}

Result<std::optional<SourceMigration>> with_disks(Txn& t, Result<std::optional<Row>> row) {
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<SourceMigration>();
  SourceMigration m = from(**row);
  auto disks = t.query(
      "SELECT name, size, volume_name, volume_id, pass, acked, pass_bytes, total_bytes, "
      "resent_bytes, sessions FROM migration_disks WHERE migration_id = ? ORDER BY idx",
      {m.id});
  if (!disks.ok()) return disks.status();
  for (const Row& r : *disks) {
    MigrationDisk d;
    d.name = r.text(0);
    d.size = u64(r, 1);
    d.volume_name = r.text(2);
    d.volume_id = r.text(3);
    d.pass = r.int64(4);
    d.acked = u64(r, 5);
    d.pass_bytes = u64(r, 6);
    d.total_bytes = u64(r, 7);
    d.resent_bytes = u64(r, 8);
    d.sessions = r.int64(9);
    m.total_size += d.size;
    m.replicate_size += d.acked;
    m.disks.push_back(std::move(d));
  }
  return std::optional<SourceMigration>(std::move(m));
}

}  // namespace

Result<std::optional<SourceMigration>> MigrationCatalog::by_id(Txn& t, const std::string& id) {
  return with_disks(
      t, t.query_one(std::string("SELECT ") + kCols + " FROM migrations WHERE id = ?", {id}));
}

Result<std::optional<SourceMigration>> MigrationCatalog::latest_of(Txn& t,
                                                                   const std::string& source_id) {
  return with_disks(t, t.query_one(std::string("SELECT ") + kCols +
                                       " FROM migrations WHERE source_id = ? "
                                       "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                                   {source_id}));
}

Status MigrationCatalog::insert(Txn& t, const SourceMigration& m, std::int64_t now_ms) {
  auto known = t.query_one("SELECT 1 FROM migrations WHERE id = ?", {m.id});
  if (!known.ok()) return known.status();
  if (*known) return Status::AlreadyExists("migration " + m.id + " exists");
  auto r = t.exec(
      "INSERT INTO migrations (id, source_id, cluster_id, project_name, syncing, state, stage, "
      "pass, passes_wanted, cutover, cutover_pass, stopped, error, chunk_bytes, window_bytes, "
      "rate_limit, created_at, pass_started) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, '', ?, "
      "?, ?, ?, ?)",
      {m.id, m.source_id, m.cluster_id, m.project_name, std::int64_t{m.syncing ? 1 : 0}, m.state,
       m.stage, i64(m.chunk_bytes), i64(m.window_bytes), i64(m.rate_limit_bytes_per_sec), now_ms,
       now_ms});
  if (!r.ok()) return r.status();
  for (std::size_t i = 0; i < m.disks.size(); ++i) {
    const MigrationDisk& d = m.disks[i];
    r = t.exec(
        "INSERT INTO migration_disks (migration_id, idx, name, size, volume_name) "
        "VALUES (?, ?, ?, ?, ?)",
        {m.id, static_cast<std::int64_t>(i), d.name, i64(d.size), d.volume_name});
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

Status MigrationCatalog::update(Txn& t, const SourceMigration& m) {
  auto r = t.exec(
      "UPDATE migrations SET state = ?, stage = ?, pass = ?, passes_wanted = ?, cutover = ?, "
      "cutover_pass = ?, stopped = ?, error = ?, pass_started = ?, finished = ? WHERE id = ?",
      {m.state, m.stage, m.pass, m.passes_wanted, std::int64_t{m.cutover_requested ? 1 : 0},
       m.cutover_pass, std::int64_t{m.stopped ? 1 : 0}, m.error, m.pass_started,
       std::int64_t{m.finished ? 1 : 0}, m.id});
  if (!r.ok()) return r.status();
  if (*r == 0) return Status::NotFound("migration " + m.id + " not found");
  return Status::Ok();
}

Status MigrationCatalog::update_disk(Txn& t, const std::string& migration_id, std::size_t idx,
                                     const MigrationDisk& d) {
  auto r = t.exec(
      "UPDATE migration_disks SET volume_id = ?, pass = ?, acked = ?, pass_bytes = ?, "
      "total_bytes = ?, resent_bytes = ?, sessions = ? WHERE migration_id = ? AND idx = ?",
      {d.volume_id, d.pass, i64(d.acked), i64(d.pass_bytes), i64(d.total_bytes),
       i64(d.resent_bytes), d.sessions, migration_id, static_cast<std::int64_t>(idx)});
  if (!r.ok()) return r.status();
  if (*r == 0)
    return Status::NotFound("migration " + migration_id + " has no disk " + std::to_string(idx));
  return Status::Ok();
}

Status MigrationCatalog::add_held(Txn& t, const std::string& migration_id,
                                  const std::string& line) {
  return t
      .exec(
          "UPDATE migrations SET data_held = data_held || ? || char(10) WHERE id = ? AND "
          "instr(char(10) || data_held, char(10) || ? || char(10)) = 0",
          {line, migration_id, line})
      .status();
}

Result<std::vector<std::string>> MigrationCatalog::held(Txn& t, const std::string& migration_id) {
  auto r = t.query_one("SELECT data_held FROM migrations WHERE id = ?", {migration_id});
  if (!r.ok()) return r.status();
  std::vector<std::string> out;
  if (!*r) return out;
  const std::string all = (*r)->text(0);
  std::size_t pos = 0;
  while (pos < all.size()) {
    std::size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    if (nl > pos) out.push_back(all.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

Status MigrationCatalog::clear_held(Txn& t, const std::string& migration_id) {
  return t.exec("UPDATE migrations SET data_held = '' WHERE id = ?", {migration_id}).status();
}

Status MigrationCatalog::begin_pass(Txn& t, const std::string& migration_id, std::int64_t pass,
                                    std::int64_t now_ms) {
  auto r = t.exec(
      "UPDATE migration_disks SET pass = ?, acked = 0, pass_bytes = 0, sessions = 0 "
      "WHERE migration_id = ?",
      {pass, migration_id});
  if (!r.ok()) return r.status();
  return t
      .exec("UPDATE migrations SET pass = ?, pass_started = ? WHERE id = ?",
            {pass, now_ms, migration_id})
      .status();
}

}  // namespace dmscore::detail
