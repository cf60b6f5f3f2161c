// Store on PostgreSQL (libpq): a pool of connections; write transactions SERIALIZABLE and run
// again when they lose a serialization conflict; reads REPEATABLE READ, READ ONLY; statements
// translated from the library's dialect once per connection and prepared.

#include <libpq-fe.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/store_backend.hpp"

namespace dmscore::detail {

namespace {

// Type OIDs (pg_type.dat) of the columns converted to numbers.
constexpr Oid kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kFloat4 = 700,
              kFloat8 = 701, kNumeric = 1700;

struct PgError {
  std::string sqlstate;
  std::string message;
};

// Maps a server error to a canonical status. Messages name the store, never SQL text.
Status pg_status(const PgError& e, std::string_view what) {
  std::string msg = "store: ";
  msg += what;
  msg += ": ";
  msg += e.message;
  const std::string& st = e.sqlstate;
  if (st == "40001" || st == "40P01" || st == "55P03") return Status::Aborted(std::move(msg));
  if (st == "23505") return Status::AlreadyExists(std::move(msg));
  if (st == "23503") return Status::FailedPrecondition(std::move(msg));
  if (st.rfind("23", 0) == 0) return Status::InvalidArgument(std::move(msg));
  if (st == "53100") return Status::ResourceExhausted(std::move(msg));
  if (st.rfind("08", 0) == 0 || st.rfind("57P", 0) == 0 || st == "53300" || st.empty())
    return Status::Unavailable(std::move(msg));
  if (st == "25006") return Status::Internal("store: write attempted in a read transaction");
  return Status::Internal(std::move(msg));
}

std::string trim_message(const char* m) {
  std::string s = m ? m : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// One connection with its prepared statements. Not thread-safe.
class PgConn {
 public:
  explicit PgConn(const std::string& url) : url_(url) {}
  ~PgConn() {
    if (c_) PQfinish(c_);
  }

  Status connect() {
    if (c_) PQfinish(c_);
    prepared_.clear();
    c_ = PQconnectdb(url_.c_str());
    if (!c_ || PQstatus(c_) != CONNECTION_OK) {
      PgError e{"08006", trim_message(c_ ? PQerrorMessage(c_) : "out of memory")};
      // libpq's messages name host and port, never the password.
      return pg_status(e, "cannot connect to PostgreSQL at " + redact_url(url_));
    }
    PQsetNoticeProcessor(
        c_, [](void*, const char*) {}, nullptr);
    return Status::Ok();
  }

  bool healthy() const { return c_ && PQstatus(c_) == CONNECTION_OK; }

  // Runs `sql` as it stands (no parameters; several statements allowed).
  Status script(const std::string& sql, std::string_view what, PgError* err = nullptr) {
    PGresult* r = PQexec(c_, sql.c_str());
    Status s = check(r, what, err);
    PQclear(r);
    return s;
  }

  // Runs a statement of the library's dialect. Rows go to `out` when given; the rows changed
  // to `changed`.
  Status run(std::string_view sql, const std::vector<SqlValue>& params, std::vector<Row>* out,
             std::int64_t* changed, PgError* err) {
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      std::string name = "s" + std::to_string(prepared_.size());
      const std::string text = to_postgres(sql);
      PGresult* r = PQprepare(c_, name.c_str(), text.c_str(), 0, nullptr);
      Status s = check(r, "prepare", err);
      PQclear(r);
      if (!s.ok()) return s;
      it = prepared_.emplace(std::string(sql), std::move(name)).first;
    }
    std::vector<std::string> text(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (std::holds_alternative<std::monostate>(params[i])) continue;
      if (auto* v = std::get_if<std::int64_t>(&params[i])) {
        text[i] = std::to_string(*v);
      } else if (auto* d = std::get_if<double>(&params[i])) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", *d);
        text[i] = buf;
      } else {
        text[i] = std::get<std::string>(params[i]);
        if (text[i].find('\0') != std::string::npos)
          return Status::InvalidArgument("store: text with a NUL character");
      }
      values[i] = text[i].c_str();
    }
    PGresult* r = PQexecPrepared(c_, it->second.c_str(), static_cast<int>(params.size()),
                                 values.data(), nullptr, nullptr, 0);
    Status s = check(r, "statement", err);
    if (s.ok()) {
      if (changed) {
        const char* n = PQcmdTuples(r);
        *changed = n && *n ? std::strtoll(n, nullptr, 10) : 0;
      }
      if (out) read_rows(r, *out);
    }
    PQclear(r);
    return s;
  }

 private:
  Status check(PGresult* r, std::string_view what, PgError* err) {
    const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Status::Ok();
    PgError e;
    if (r) {
      const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      e.sqlstate = code ? code : "";
      e.message = trim_message(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
    }
    if (e.message.empty()) e.message = trim_message(PQerrorMessage(c_));
    if (PQstatus(c_) != CONNECTION_OK) e.sqlstate = "08006";  // lost: reconnect next time
    if (err) *err = e;
    return pg_status(e, what);
  }

  static void read_rows(PGresult* r, std::vector<Row>& out) {
    const int rows = PQntuples(r), cols = PQnfields(r);
    out.reserve(out.size() + static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      std::vector<SqlValue> v;
      v.reserve(static_cast<std::size_t>(cols));
      for (int c = 0; c < cols; ++c) {
        if (PQgetisnull(r, i, c)) {
          v.emplace_back(std::monostate{});
          continue;
        }
        const char* p = PQgetvalue(r, i, c);
        const Oid type = PQftype(r, c);
        if (type == kInt8 || type == kInt4 || type == kInt2 || type == kOid) {
          v.emplace_back(static_cast<std::int64_t>(std::strtoll(p, nullptr, 10)));
        } else if (type == kBool) {
          v.emplace_back(std::int64_t{p[0] == 't' ? 1 : 0});
        } else if (type == kFloat4 || type == kFloat8) {
          v.emplace_back(std::strtod(p, nullptr));
        } else if (type == kNumeric) {
          if (std::strpbrk(p, ".eE"))
            v.emplace_back(std::strtod(p, nullptr));
          else
            v.emplace_back(static_cast<std::int64_t>(std::strtoll(p, nullptr, 10)));
        } else {
          v.emplace_back(std::string(p, static_cast<std::size_t>(PQgetlength(r, i, c))));
        }
      }
      out.emplace_back(std::move(v));
    }
  }

  std::string url_;
  PGconn* c_ = nullptr;
  struct SqlHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::string, SqlHash, std::equal_to<>> prepared_;
};

class PgTxn final : public Txn {
 public:
  explicit PgTxn(PgConn& conn) : conn_(conn) {}

  Result<std::int64_t> exec(std::string_view sql, const std::vector<SqlValue>& params) override {
    std::int64_t changed = 0;
    Status s = guard(conn_.run(sql, params, nullptr, &changed, &err_));
    if (!s.ok()) return s;
    return changed;
  }

  Result<std::vector<Row>> query(std::string_view sql,
                                 const std::vector<SqlValue>& params) override {
    std::vector<Row> rows;
    Status s = guard(conn_.run(sql, params, &rows, nullptr, &err_));
    if (!s.ok()) return s;
    return rows;
  }

  SqlDialect dialect() const override { return SqlDialect::kPostgres; }

  // A statement lost a serialization conflict (or a deadlock): the transaction may run again.
  bool conflicted() const { return conflicted_; }
  bool failed() const { return failed_; }

 private:
  Status guard(Status s) {
    if (!s.ok()) {
      failed_ = true;
      if (err_.sqlstate == "40001" || err_.sqlstate == "40P01") conflicted_ = true;
    }
    return s;
  }

  PgConn& conn_;
  PgError err_;
  bool conflicted_ = false;
  bool failed_ = false;
};

class PostgresStore final : public StoreBackend {
 public:
  PostgresStore(std::string url, StoreOptions options)
      : url_(std::move(url)), shown_(redact_url(url_)), options_(std::move(options)) {
    env_ = options_.env ? options_.env : Env::Default();
  }

  Status open() {
    auto first = std::make_unique<PgConn>(url_);
    if (Status s = first->connect(); !s.ok()) return s;
    if (Status s = migrate(*first); !s.ok()) return s;
    idle_.push_back(std::move(first));
    for (int i = 1; i < options_.postgres_connections; ++i) {
      auto c = std::make_unique<PgConn>(url_);
      if (Status s = c->connect(); !s.ok()) return s;
      idle_.push_back(std::move(c));
    }
    return Status::Ok();
  }

  Status transact(const std::function<Status(Txn&)>& fn) override {
    for (int attempt = 0;; ++attempt) {
      bool conflicted = false;
      Status s = with_conn([&](PgConn& c) -> Status {
        if (Status b = c.script("BEGIN ISOLATION LEVEL SERIALIZABLE", "begin"); !b.ok()) return b;
        PgTxn txn(c);
        Status r = run_guarded(fn, txn);
        if (!r.ok() || txn.failed()) {
          (void)c.script("ROLLBACK", "rollback");
          conflicted = txn.conflicted();
          if (r.ok()) r = Status::Internal("store: a statement failed and was not passed on");
          return r;
        }
        PgError err;
        Status cs = c.script("COMMIT", "commit", &err);
        if (!cs.ok()) {
          conflicted = err.sqlstate == "40001" || err.sqlstate == "40P01";
          if (!conflicted && !c.healthy())
            return Status::Unavailable(
                "store: the connection to PostgreSQL was lost during commit; the outcome is "
                "unknown");
        }
        return cs;
      });
      if (s.ok()) {
        commits_.fetch_add(1, std::memory_order_relaxed);
        return s;
      }
      if (!conflicted || attempt >= options_.conflict_retries) {
        if (conflicted)
          return Status::Aborted("store: the transaction kept losing serialization conflicts (" +
                                 std::to_string(attempt + 1) + " tries)");
        return s;
      }
      conflicts_.fetch_add(1, std::memory_order_relaxed);
      // Jittered pause, growing to about 50 ms: competing writers spread out.
      std::uint32_t r = 0;
      env_->random_bytes(&r, sizeof r);
      const int cap_us = 500 << std::min(attempt, 6);
      env_->sleep_for(std::chrono::microseconds(100 + r % static_cast<std::uint32_t>(cap_us)));
    }
  }

  Status read(const std::function<Status(Txn&)>& fn) override {
    return with_conn([&](PgConn& c) -> Status {
      if (Status b = c.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin"); !b.ok())
        return b;
      PgTxn txn(c);
      Status r = run_guarded(fn, txn);
      (void)c.script(r.ok() && !txn.failed() ? "COMMIT" : "ROLLBACK", "end read");
      return r;
    });
  }

  int schema_version() const override { return schema_version_; }
  std::uint64_t commits() const override { return commits_.load(); }
  std::uint64_t commit_batches() const override { return commits_.load(); }
  const std::string& location() const override { return shown_; }
  SqlDialect dialect() const override { return SqlDialect::kPostgres; }

 private:
  // Runs `fn` on a pooled connection, reconnecting one that was lost.
  Status with_conn(const std::function<Status(PgConn&)>& fn) {
    std::unique_ptr<PgConn> c;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty(); });
      c = std::move(idle_.back());
      idle_.pop_back();
    }
    Status s = c->healthy() ? Status::Ok() : c->connect();
    if (s.ok()) s = fn(*c);
    {
      std::lock_guard lock(mu_);
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
    return s;
  }

  // Applies pending migrations, each in its own transaction under an advisory lock, so that
  // instances starting together apply each once.
  Status migrate(PgConn& c) {
    const int known = static_cast<int>(options_.migrations.size());
    static const std::string kLock =
        "SELECT pg_advisory_xact_lock(hashtext('dmscore schema ' || current_schema()))";
    for (;;) {
      if (Status s = c.script("BEGIN", "begin migration"); !s.ok()) return s;
      Status s = c.script(kLock, "lock schema");
      if (s.ok())
        s = c.script(
            "CREATE TABLE IF NOT EXISTS dms_schema (id INTEGER PRIMARY KEY CHECK (id = 1), "
            "version INTEGER NOT NULL); INSERT INTO dms_schema VALUES (1, 0) ON CONFLICT DO "
            "NOTHING",
            "schema table");
      std::vector<Row> rows;
      if (s.ok())
        s = c.run("SELECT version FROM dms_schema WHERE id = 1", {}, &rows, nullptr, nullptr);
      if (!s.ok()) {
        (void)c.script("ROLLBACK", "rollback");
        if (s.code() == Code::kInternal && current_schema_missing(c))
          return Status::FailedPrecondition(
              "store: " + shown_ +
              " has no schema to create tables in (its search_path names "
              "none that exists); create it first");
        return s;
      }
      const int on_disk = rows.empty() ? 0 : static_cast<int>(rows[0].int64(0));
      if (on_disk > known) {
        (void)c.script("ROLLBACK", "rollback");
        return Status::FailedPrecondition(
            shown_ + " has schema version " + std::to_string(on_disk) +
            ", newer than this libdmscore knows (" + std::to_string(known) +
            "); open it with a newer release");
      }
      if (on_disk == known) {
        schema_version_ = known;
        return c.script("COMMIT", "commit");
      }
      const Migration& m = options_.migrations[static_cast<std::size_t>(on_disk)];
      s = c.script(m.postgres_sql.empty() ? postgres_ddl(m.sql) : m.postgres_sql,
                   "migration " + std::to_string(m.version));
      if (s.ok())
        s = c.script("UPDATE dms_schema SET version = " + std::to_string(m.version), "set version");
      if (s.ok()) s = c.script("COMMIT", "commit migration");
      if (!s.ok()) {
        (void)c.script("ROLLBACK", "rollback");
        return s.with_prefix("schema migration to version " + std::to_string(m.version));
      }
    }
  }

  static bool current_schema_missing(PgConn& c) {
    std::vector<Row> rows;
    return c.run("SELECT current_schema() IS NULL", {}, &rows, nullptr, nullptr).ok() &&
           !rows.empty() && rows[0].int64(0) == 1;
  }

  std::string url_;
  std::string shown_;
  StoreOptions options_;
  std::shared_ptr<Env> env_;
  int schema_version_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConn>> idle_;
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> conflicts_{0};
};

}  // namespace

Result<std::unique_ptr<StoreBackend>> open_postgres(const std::string& url,
                                                    const StoreOptions& options) {
  auto store = std::make_unique<PostgresStore>(url, options);
  if (Status s = store->open(); !s.ok()) return s;
  return std::unique_ptr<StoreBackend>(std::move(store));
}

}  // namespace dmscore::detail
