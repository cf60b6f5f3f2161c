#pragma once
// Store: the service's durable state. Two kinds, one interface:
//
// - SQLite (the embedded default): one database file in WAL mode. Every change is a
//   transaction committed with synchronous=FULL before the call returns, so a change the caller
//   saw succeed survives a crash or power loss. Concurrent write transactions are batched into
//   one commit (group commit, as LevelDB's write queue does): each keeps its own all-or-nothing
//   semantics through a savepoint, and all share one fsync. Opening refuses a database written
//   by a newer schema than this library knows, and one that fails `PRAGMA quick_check`; neither
//   is modified.
// - PostgreSQL (a "postgresql://" or "postgres://" URL, libpq's syntax): shared by several
//   service instances. Write transactions run SERIALIZABLE, so that every invariant a write
//   transaction keeps on SQLite, where writers run one at a time, holds across instances; a
//   transaction that loses a serialization conflict is rolled back and `fn` runs again (up to
//   StoreOptions::conflict_retries times, with jittered pauses), so `fn` must be safe to re-run
//   (its effects outside the store are recomputed each time). Reads run REPEATABLE READ, READ
//   ONLY. A statement error aborts the whole transaction, so `fn` must pass it on.
//
// SQL is written once, in SQLite's dialect with `?` parameters; for PostgreSQL it is translated
// (parameters to $n, INSERT OR IGNORE to ON CONFLICT DO NOTHING, instr/char to strpos/chr,
// INTEGER columns to BIGINT, AUTOINCREMENT keys to identity columns). What cannot be translated
// is written per dialect (Txn::dialect(), Migration::postgres_sql).
//
// Safe for concurrent use. Reads run on their own connections and never wait for writers.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace dmscore {

enum class SqlDialect { kSqlite, kPostgres };

// A value bound to or read from an SQL statement.
using SqlValue = std::variant<std::monostate, std::int64_t, double, std::string>;

// One row of a query result, columns in SELECT order.
class Row {
 public:
  explicit Row(std::vector<SqlValue> cols) : cols_(std::move(cols)) {}
  std::size_t size() const { return cols_.size(); }
  bool is_null(std::size_t i) const { return std::holds_alternative<std::monostate>(cols_[i]); }
  // 0 for NULL; text is not converted.
  std::int64_t int64(std::size_t i) const;
  // "" for NULL; integers and reals are formatted.
  std::string text(std::size_t i) const;
  double real(std::size_t i) const;

 private:
  std::vector<SqlValue> cols_;
};

// The statements available inside Store::transact and Store::read. Valid only during the
// callback that received it. Not thread-safe.
class Txn {
 public:
  virtual ~Txn() = default;
  // Runs one statement. Returns the number of rows it changed.
  virtual Result<std::int64_t> exec(std::string_view sql,
                                    const std::vector<SqlValue>& params = {}) = 0;
  // Runs a query and returns all its rows.
  virtual Result<std::vector<Row>> query(std::string_view sql,
                                         const std::vector<SqlValue>& params = {}) = 0;
  // Runs a query expected to return at most one row.
  Result<std::optional<Row>> query_one(std::string_view sql,
                                       const std::vector<SqlValue>& params = {});
  // The store's dialect, for the few statements written per dialect.
  virtual SqlDialect dialect() const { return SqlDialect::kSqlite; }
};

// One schema migration: the SQL that takes the schema from version-1 to version.
struct Migration {
  int version;
  std::string sql;
  // The PostgreSQL text where `sql` cannot be translated (triggers); empty: translated.
  std::string postgres_sql = {};
};

struct StoreOptions {
  // Default: 5000 ms.
  int busy_timeout_ms = 5000;
  // Read connections kept open. Default: 4.
  int read_connections = 4;
  // Ordered migrations; the library's own set when empty (tests pass their own).
  // Default: empty.
  std::vector<Migration> migrations;
  // Create the database when the file does not exist (mode 0600; its journal and WAL files
  // get the same mode). false: UNAVAILABLE for a missing file. Default: true.
  bool create_if_missing = true;
  // When it injects file faults (Env::injects_file_faults), every write and sync of the
  // database and its journal asks it first, through a shim over SQLite's file layer; an
  // ENOSPC is reported as SQLite reports a full disk. Default: nullptr (no shim).
  std::shared_ptr<Env> env;
  // PostgreSQL: connections kept open, shared by reads and writes. Default: 8. REQUIRES: 1..64.
  int postgres_connections = 8;
  // PostgreSQL: how often a write transaction that lost a serialization conflict runs again
  // before transact answers ABORTED. Default: 64.
  int conflict_retries = 64;
};

class Store {
 public:
  // Opens or creates the database at `path` (a file, or a PostgreSQL URL) and applies pending
  // migrations, each in its own transaction (on PostgreSQL under an advisory lock, so instances
  // starting together migrate once). PostgreSQL's schema version is kept in `dms_schema`; its
  // tables live in the connection's search_path. Returns:
  //   INVALID_ARGUMENT     bad options or migrations out of order;
  //   FAILED_PRECONDITION  the database has a newer schema than this library, or is not a
  //                        database / fails quick_check (the message says which and what to do);
  //   UNAVAILABLE          the file cannot be opened (permissions, missing directory), or the
  //                        PostgreSQL server cannot be reached (messages never carry the URL's
  //                        password).
  static Result<std::unique_ptr<Store>> open(const std::string& path, StoreOptions options = {});

  // Reads the schema version of the database at `path` without changing anything:
  // NOT_FOUND when there is no such file; DATA_LOSS when it is not an SQLite database.
  static Result<int> peek_schema_version(const std::string& path);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Runs `fn` in a write transaction. When `fn` returns OK the change is committed durably
  // before transact returns OK; otherwise nothing of it remains and its status is returned.
  // A statement error inside `fn` that `fn` passes on rolls back likewise. An exception thrown
  // by `fn` rolls back and is returned as INTERNAL.
  // `fn` may run on another caller's thread (group commit) and must not call back into the
  // Store.
  Status transact(const std::function<Status(Txn&)>& fn);

  // Runs `fn` against a consistent read snapshot. Writes inside `fn` fail.
  Status read(const std::function<Status(Txn&)>& fn);

  // The schema version after migrations.
  int schema_version() const;
  // Total commits and the number of fsync'd batches they were grouped into.
  std::uint64_t commits() const;
  std::uint64_t commit_batches() const;

  // The file, or the URL without its password.
  const std::string& path() const;
  SqlDialect dialect() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when `location` names a PostgreSQL database rather than a file.
bool is_postgres_url(std::string_view location);

// The library's own schema migrations, in order.
const std::vector<Migration>& builtin_migrations();

}  // namespace dmscore
