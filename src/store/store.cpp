#include "dmscore/store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/schema.hpp"
#include "store/store_backend.hpp"

namespace dmscore {

std::int64_t Row::int64(std::size_t i) const {
  if (auto* v = std::get_if<std::int64_t>(&cols_[i])) return *v;
  if (auto* d = std::get_if<double>(&cols_[i])) return static_cast<std::int64_t>(*d);
  return 0;
}

double Row::real(std::size_t i) const {
  if (auto* d = std::get_if<double>(&cols_[i])) return *d;
  if (auto* v = std::get_if<std::int64_t>(&cols_[i])) return static_cast<double>(*v);
  return 0;
}

std::string Row::text(std::size_t i) const {
  if (auto* s = std::get_if<std::string>(&cols_[i])) return *s;
  if (auto* v = std::get_if<std::int64_t>(&cols_[i])) return std::to_string(*v);
  if (auto* d = std::get_if<double>(&cols_[i])) return std::to_string(*d);
  return {};
}

Result<std::optional<Row>> Txn::query_one(std::string_view sql,
                                          const std::vector<SqlValue>& params) {
  auto rows = query(sql, params);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::optional<Row>();
  return std::optional<Row>(std::move(rows->front()));
}

using detail::run_guarded;

namespace {

// Maps an SQLite result code to a canonical status. Messages name the store, never SQL text.
Status sqlite_status(sqlite3* db, int rc, std::string_view what) {
  std::string msg = "store: ";
  msg += what;
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Aborted(std::move(msg));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return Status::AlreadyExists(std::move(msg));
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return Status::FailedPrecondition(std::move(msg));
      return Status::InvalidArgument(std::move(msg));
    case SQLITE_FULL:
      return Status::ResourceExhausted(std::move(msg));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return Status::Unavailable(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::DataLoss(std::move(msg));
    case SQLITE_IOERR:
      return Status::Unavailable(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

// One SQLite connection with a cache of prepared statements. Not thread-safe.
class Conn {
 public:
  ~Conn() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    if (db_) sqlite3_close_v2(db_);
  }

  Status open(const std::string& path, int flags, int busy_timeout_ms, const char* vfs = nullptr) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) return sqlite_status(db_, rc, "cannot open " + path);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    return Status::Ok();
  }

  sqlite3* db() const { return db_; }

  Status exec_script(const std::string& sql, std::string_view what) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (err) sqlite3_free(err);
    if (rc != SQLITE_OK) return sqlite_status(db_, rc, what);
    return Status::Ok();
  }

  Result<sqlite3_stmt*> prepare(std::string_view sql) {
    if (auto it = cache_.find(sql); it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return sqlite_status(db_, rc, "prepare");
    cache_.emplace(std::string(sql), stmt);
    return stmt;
  }

  // Runs `sql` with `params`; appends rows to `out` when given.
  Status run(std::string_view sql, const std::vector<SqlValue>& params, std::vector<Row>* out) {
    auto st = prepare(sql);
    if (!st.ok()) return st.status();
    sqlite3_stmt* stmt = *st;
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{stmt};
    for (std::size_t i = 0; i < params.size(); ++i) {
      int idx = static_cast<int>(i + 1);
      int rc = std::visit(
          [&](const auto& v) -> int {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::monostate>) {
              return sqlite3_bind_null(stmt, idx);
            } else if constexpr (std::is_same_v<V, std::int64_t>) {
              return sqlite3_bind_int64(stmt, idx, v);
            } else if constexpr (std::is_same_v<V, double>) {
              return sqlite3_bind_double(stmt, idx, v);
            } else {
              return sqlite3_bind_text(stmt, idx, v.data(), static_cast<int>(v.size()),
                                       SQLITE_TRANSIENT);
            }
          },
          params[i]);
      if (rc != SQLITE_OK) return sqlite_status(db_, rc, "bind");
    }
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return Status::Ok();
      if (rc != SQLITE_ROW) return sqlite_status(db_, rc, "step");
      if (!out) continue;
      int n = sqlite3_column_count(stmt);
      std::vector<SqlValue> cols;
      cols.reserve(static_cast<std::size_t>(n));
      for (int c = 0; c < n; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_INTEGER:
            cols.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          case SQLITE_FLOAT:
            cols.emplace_back(sqlite3_column_double(stmt, c));
            break;
          case SQLITE_NULL:
            cols.emplace_back(std::monostate{});
            break;
          default: {
            auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
            cols.emplace_back(
                std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, c))));
          }
        }
      }
      out->emplace_back(std::move(cols));
    }
  }

 private:
  sqlite3* db_ = nullptr;
  // Looked up by string_view: no allocation per statement run.
  struct SqlHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, sqlite3_stmt*, SqlHash, std::equal_to<>> cache_;
};

class ConnTxn final : public Txn {
 public:
  ConnTxn(Conn& conn, bool read_only) : conn_(conn), read_only_(read_only) {}

  Result<std::int64_t> exec(std::string_view sql, const std::vector<SqlValue>& params) override {
    if (read_only_ && !sqlite3_stmt_readonly_check(sql)) {
      return Status::Internal("store: write attempted in a read transaction");
    }
    auto s = conn_.run(sql, params, nullptr);
    if (!s.ok()) return s;
    return static_cast<std::int64_t>(sqlite3_changes64(conn_.db()));
  }

  Result<std::vector<Row>> query(std::string_view sql,
                                 const std::vector<SqlValue>& params) override {
    std::vector<Row> rows;
    auto s = conn_.run(sql, params, &rows);
    if (!s.ok()) return s;
    return rows;
  }

 private:
  bool sqlite3_stmt_readonly_check(std::string_view sql) {
    auto st = conn_.prepare(sql);
    return st.ok() && sqlite3_stmt_readonly(*st);
  }

  Conn& conn_;
  bool read_only_;
};

// A VFS over SQLite's default one that asks an Env before every write, truncate and sync of a
// file, so tests can fail chosen writes of the database or its WAL as a full (ENOSPC) or failing
// (EIO) disk would. Installed only for an Env that injects faults.
class FaultVfs {
 public:
  FaultVfs(Env* env) : env_(env) {
    static std::atomic<int> next{0};
    name_ = "dmscore-fault-" + std::to_string(next++);
    real_ = sqlite3_vfs_find(nullptr);
    std::memset(&vfs_, 0, sizeof vfs_);
    vfs_.iVersion = 3;
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.mxPathname = real_->mxPathname;
    vfs_.zName = name_.c_str();
    vfs_.pAppData = this;
    vfs_.xOpen = &FaultVfs::open;
    vfs_.xDelete = [](sqlite3_vfs* v, const char* n, int d) {
      return real(v)->xDelete(real(v), n, d);
    };
    vfs_.xAccess = [](sqlite3_vfs* v, const char* n, int f, int* o) {
      return real(v)->xAccess(real(v), n, f, o);
    };
    vfs_.xFullPathname = [](sqlite3_vfs* v, const char* n, int k, char* o) {
      return real(v)->xFullPathname(real(v), n, k, o);
    };
    vfs_.xDlOpen = [](sqlite3_vfs* v, const char* n) { return real(v)->xDlOpen(real(v), n); };
    vfs_.xDlError = [](sqlite3_vfs* v, int n, char* o) { real(v)->xDlError(real(v), n, o); };
    vfs_.xDlSym = [](sqlite3_vfs* v, void* h, const char* n) {
      return real(v)->xDlSym(real(v), h, n);
    };
    vfs_.xDlClose = [](sqlite3_vfs* v, void* h) { real(v)->xDlClose(real(v), h); };
    vfs_.xRandomness = [](sqlite3_vfs* v, int n, char* o) {
      return real(v)->xRandomness(real(v), n, o);
    };
    vfs_.xSleep = [](sqlite3_vfs* v, int us) { return real(v)->xSleep(real(v), us); };
    vfs_.xCurrentTime = [](sqlite3_vfs* v, double* t) { return real(v)->xCurrentTime(real(v), t); };
    vfs_.xGetLastError = [](sqlite3_vfs* v, int n, char* o) {
      return real(v)->xGetLastError(real(v), n, o);
    };
    vfs_.xCurrentTimeInt64 = [](sqlite3_vfs* v, sqlite3_int64* t) {
      return real(v)->xCurrentTimeInt64(real(v), t);
    };
    sqlite3_vfs_register(&vfs_, 0);
  }
  ~FaultVfs() { sqlite3_vfs_unregister(&vfs_); }
  FaultVfs(const FaultVfs&) = delete;
  FaultVfs& operator=(const FaultVfs&) = delete;

  const char* name() const { return name_.c_str(); }

 private:
  struct File {
    sqlite3_file base;
    sqlite3_file* real;
    Env* env;
    char path[512];
  };

  static sqlite3_vfs* real(sqlite3_vfs* v) { return static_cast<FaultVfs*>(v->pAppData)->real_; }
  static File* file(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
  static sqlite3_file* inner(sqlite3_file* f) { return file(f)->real; }

  static int fault(sqlite3_file* f, FileOp op) {
    File* sf = file(f);
    int e = sf->env->file_fault(op, sf->path);
    if (e == 0) return SQLITE_OK;
    if (e == ENOSPC || e == EDQUOT) return SQLITE_FULL;
    return op == FileOp::kWrite ? SQLITE_IOERR_WRITE : SQLITE_IOERR_FSYNC;
  }

  static int open(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* f, int flags, int* out) {
    auto* self = static_cast<FaultVfs*>(v->pAppData);
    File* sf = file(f);
    sf->real = reinterpret_cast<sqlite3_file*>(sf + 1);
    sf->env = self->env_;
    std::snprintf(sf->path, sizeof sf->path, "%s", name ? name : "");
    int rc = self->real_->xOpen(self->real_, name, sf->real, flags, out);
    sf->base.pMethods = rc == SQLITE_OK && sf->real->pMethods ? &kMethods : nullptr;
    return rc;
  }

  static const sqlite3_io_methods kMethods;

  Env* env_;
  std::string name_;
  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_;
};

const sqlite3_io_methods FaultVfs::kMethods = {
    3,
    [](sqlite3_file* f) {
      int rc = inner(f)->pMethods->xClose(inner(f));
      f->pMethods = nullptr;
      return rc;
    },
    [](sqlite3_file* f, void* b, int n, sqlite3_int64 o) {
      return inner(f)->pMethods->xRead(inner(f), b, n, o);
    },
    [](sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
      if (int rc = fault(f, FileOp::kWrite); rc != SQLITE_OK) return rc;
      return inner(f)->pMethods->xWrite(inner(f), b, n, o);
    },
    [](sqlite3_file* f, sqlite3_int64 size) {
      if (int rc = fault(f, FileOp::kWrite); rc != SQLITE_OK) return rc;
      return inner(f)->pMethods->xTruncate(inner(f), size);
    },
    [](sqlite3_file* f, int flags) {
      if (int rc = fault(f, FileOp::kSync); rc != SQLITE_OK) return rc;
      return inner(f)->pMethods->xSync(inner(f), flags);
    },
    [](sqlite3_file* f, sqlite3_int64* size) {
      return inner(f)->pMethods->xFileSize(inner(f), size);
    },
    [](sqlite3_file* f, int l) { return inner(f)->pMethods->xLock(inner(f), l); },
    [](sqlite3_file* f, int l) { return inner(f)->pMethods->xUnlock(inner(f), l); },
    [](sqlite3_file* f, int* out) { return inner(f)->pMethods->xCheckReservedLock(inner(f), out); },
    [](sqlite3_file* f, int op, void* arg) {
      return inner(f)->pMethods->xFileControl(inner(f), op, arg);
    },
    [](sqlite3_file* f) { return inner(f)->pMethods->xSectorSize(inner(f)); },
    [](sqlite3_file* f) { return inner(f)->pMethods->xDeviceCharacteristics(inner(f)); },
    [](sqlite3_file* f, int pg, int sz, int ext, void volatile** out) {
      return inner(f)->pMethods->xShmMap(inner(f), pg, sz, ext, out);
    },
    [](sqlite3_file* f, int off, int n, int flags) {
      return inner(f)->pMethods->xShmLock(inner(f), off, n, flags);
    },
    [](sqlite3_file* f) { inner(f)->pMethods->xShmBarrier(inner(f)); },
    [](sqlite3_file* f, int del) { return inner(f)->pMethods->xShmUnmap(inner(f), del); },
    [](sqlite3_file* f, sqlite3_int64 o, int n, void** pp) {
      // Memory-mapped reads would bypass nothing we inject, but keep them off for a simple shim.
      (void)f, (void)o, (void)n;
      *pp = nullptr;
      return SQLITE_OK;
    },
    [](sqlite3_file* f, sqlite3_int64 o, void* p) {
      (void)f, (void)o, (void)p;
      return SQLITE_OK;
    },
};

// Creates `path` with mode 0600 when it does not exist, so that SQLite, which gives its journal
// and WAL the mode of the database file, makes them 0600 too.
Status create_private(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return Status::Ok();
  }
  if (errno == EEXIST) return Status::Ok();
  return Status::Unavailable("store: cannot create " + path + ": " + std::strerror(errno));
}

}  // namespace

class SqliteStore final : public detail::StoreBackend {
 public:
  Status transact(const std::function<Status(Txn&)>& fn) override;
  Status read(const std::function<Status(Txn&)>& fn) override;
  int schema_version() const override { return schema_version_; }
  std::uint64_t commits() const override {
    std::lock_guard lock(write_mu);
    return commits_;
  }
  std::uint64_t commit_batches() const override {
    std::lock_guard lock(write_mu);
    return batches;
  }
  const std::string& location() const override { return path; }
  SqlDialect dialect() const override { return SqlDialect::kSqlite; }

  std::string path;
  StoreOptions options;
  int schema_version_ = 0;
  // Declared first, destroyed last: the connections below use it.
  std::unique_ptr<FaultVfs> vfs;

  Conn writer;
  // Group commit: the front of the queue is the leader; it commits the whole queue prefix.
  struct Waiter {
    const std::function<Status(Txn&)>* fn;
    Status result;
    bool done = false;
    std::condition_variable cv;
  };
  mutable std::mutex write_mu;
  std::deque<Waiter*> waiters;
  std::uint64_t commits_ = 0;
  std::uint64_t batches = 0;

  std::mutex read_mu;
  std::condition_variable read_cv;
  std::vector<std::unique_ptr<Conn>> idle_readers;

  Status run_batch(const std::vector<Waiter*>& batch) {
    Status s = writer.exec_script("BEGIN IMMEDIATE", "begin");
    if (!s.ok()) {
      for (auto* w : batch) w->result = s;
      return s;
    }
    ConnTxn txn(writer, false);
    bool any_ok = false;
    for (auto* w : batch) {
      Status sp = writer.exec_script("SAVEPOINT w", "savepoint");
      if (!sp.ok()) {
        w->result = sp;
        continue;
      }
      w->result = run_guarded(*w->fn, txn);
      if (w->result.ok()) {
        any_ok = true;
        (void)writer.exec_script("RELEASE w", "release");
      } else {
        (void)writer.exec_script("ROLLBACK TO w", "rollback to");
        (void)writer.exec_script("RELEASE w", "release");
      }
    }
    if (!any_ok) return writer.exec_script("ROLLBACK", "rollback");
    Status c = writer.exec_script("COMMIT", "commit");
    if (!c.ok()) {
      (void)writer.exec_script("ROLLBACK", "rollback");
      for (auto* w : batch) {
        if (w->result.ok()) w->result = c;
      }
    }
    return c;
  }
};

struct Store::Impl {
  std::unique_ptr<detail::StoreBackend> backend;
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

bool is_postgres_url(std::string_view location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

static Result<std::unique_ptr<detail::StoreBackend>> open_sqlite(const std::string& path,
                                                                 const StoreOptions& options);

Result<std::unique_ptr<Store>> Store::open(const std::string& path, StoreOptions options) {
  if (path.empty()) return Status::InvalidArgument("path: must not be empty");
  if (options.busy_timeout_ms < 0) return Status::InvalidArgument("busy_timeout_ms: must be >= 0");
  if (options.read_connections < 1 || options.read_connections > 64)
    return Status::InvalidArgument("read_connections: must be 1..64");
  if (options.postgres_connections < 1 || options.postgres_connections > 64)
    return Status::InvalidArgument("postgres_connections: must be 1..64");
  if (options.conflict_retries < 0 || options.conflict_retries > 10000)
    return Status::InvalidArgument("conflict_retries: must be 0..10000");
  if (options.migrations.empty()) options.migrations = builtin_migrations();
  for (std::size_t i = 0; i < options.migrations.size(); ++i) {
    if (options.migrations[i].version != static_cast<int>(i + 1))
      return Status::InvalidArgument("migrations: versions must be 1, 2, 3, ... in order");
  }
  auto backend =
      is_postgres_url(path) ? detail::open_postgres(path, options) : open_sqlite(path, options);
  if (!backend.ok()) return backend.status();
  auto impl = std::make_unique<Impl>();
  impl->backend = std::move(backend).value();
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

static Result<std::unique_ptr<detail::StoreBackend>> open_sqlite(const std::string& path,
                                                                 const StoreOptions& options) {
  const int known = static_cast<int>(options.migrations.size());

  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (!options.create_if_missing)
      return Status::Unavailable("store: " + path + " does not exist");
    if (Status c = create_private(path); !c.ok()) return c;
  }
  auto impl = std::make_unique<SqliteStore>();
  impl->path = path;
  impl->options = options;
  if (options.env && options.env->injects_file_faults())
    impl->vfs = std::make_unique<FaultVfs>(options.env.get());
  const char* vfs = impl->vfs ? impl->vfs->name() : nullptr;
  Conn& w = impl->writer;
  Status s = w.open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout_ms, vfs);
  if (!s.ok()) return s;

  // Inspect before changing anything: a file we refuse must be left exactly as it was.
  std::vector<Row> rows;
  s = w.run("PRAGMA user_version", {}, &rows);
  if (!s.ok()) {
    if (s.code() == Code::kDataLoss)
      return Status::FailedPrecondition(path + " is not a libdmscore database (" + s.message() +
                                        "); move it away or point data_dir elsewhere");
    return s;
  }
  const int on_disk = static_cast<int>(rows.at(0).int64(0));
  if (on_disk > known) {
    return Status::FailedPrecondition(path + " has schema version " + std::to_string(on_disk) +
                                      ", newer than this libdmscore knows (" +
                                      std::to_string(known) + "); open it with a newer release");
  }
  rows.clear();
  s = w.run("PRAGMA quick_check", {}, &rows);
  if (!s.ok() || rows.empty() || rows[0].text(0) != "ok") {
    std::string why =
        s.ok() ? (rows.empty() ? std::string("no answer") : rows[0].text(0)) : s.message();
    return Status::FailedPrecondition(path + " fails its integrity check (" + why +
                                      "); restore it from a backup, nothing was changed");
  }

  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                             "PRAGMA foreign_keys=ON", "PRAGMA wal_autocheckpoint=4000"}) {
    s = w.exec_script(pragma, pragma);
    if (!s.ok()) return s;
  }
  rows.clear();
  s = w.run("PRAGMA journal_mode", {}, &rows);
  if (!s.ok()) return s;
  if (rows.empty() || rows[0].text(0) != "wal")
    return Status::Unavailable(path + ": the file system does not support WAL mode");

  for (int v = on_disk + 1; v <= known; ++v) {
    const auto& m = options.migrations[static_cast<std::size_t>(v - 1)];
    s = w.exec_script("BEGIN IMMEDIATE", "begin migration");
    if (!s.ok()) return s;
    s = w.exec_script(m.sql, "migration " + std::to_string(v));
    if (s.ok()) s = w.exec_script("PRAGMA user_version=" + std::to_string(v), "set version");
    if (s.ok()) s = w.exec_script("COMMIT", "commit migration");
    if (!s.ok()) {
      (void)w.exec_script("ROLLBACK", "rollback migration");
      return s.with_prefix("schema migration to version " + std::to_string(v));
    }
  }
  impl->schema_version_ = known;

  for (int i = 0; i < options.read_connections; ++i) {
    auto c = std::make_unique<Conn>();
    s = c->open(path, SQLITE_OPEN_READONLY, options.busy_timeout_ms, vfs);
    if (!s.ok()) return s;
    impl->idle_readers.push_back(std::move(c));
  }
  return std::unique_ptr<detail::StoreBackend>(std::move(impl));
}

Status SqliteStore::transact(const std::function<Status(Txn&)>& fn) {
  SqliteStore& im = *this;
  Waiter me{&fn, Status::Ok(), false, {}};
  std::unique_lock lock(im.write_mu);
  im.waiters.push_back(&me);
  while (!me.done && im.waiters.front() != &me) me.cv.wait(lock);
  if (me.done) return me.result;

  // Leader: commit everything queued so far as one batch, one fsync.
  constexpr std::size_t kMaxBatch = 128;
  std::vector<Waiter*> batch;
  for (auto* w : im.waiters) {
    if (batch.size() == kMaxBatch) break;
    batch.push_back(w);
  }
  lock.unlock();
  (void)im.run_batch(batch);
  lock.lock();
  im.commits_ += batch.size();
  im.batches += 1;
  for (auto* w : batch) {
    assert(im.waiters.front() == w);
    im.waiters.pop_front();
    w->done = true;
    if (w != &me) w->cv.notify_one();
  }
  if (!im.waiters.empty()) im.waiters.front()->cv.notify_one();
  return me.result;
}

Status SqliteStore::read(const std::function<Status(Txn&)>& fn) {
  SqliteStore& im = *this;
  std::unique_ptr<Conn> conn;
  {
    std::unique_lock lock(im.read_mu);
    im.read_cv.wait(lock, [&] { return !im.idle_readers.empty(); });
    conn = std::move(im.idle_readers.back());
    im.idle_readers.pop_back();
  }
  // Prepared once per connection (Conn::run caches statements), not parsed per read.
  Status s = conn->run("BEGIN", {}, nullptr);
  if (s.ok()) {
    ConnTxn txn(*conn, true);
    s = run_guarded(fn, txn);
    (void)conn->run("COMMIT", {}, nullptr);
  }
  {
    std::lock_guard lock(im.read_mu);
    im.idle_readers.push_back(std::move(conn));
  }
  im.read_cv.notify_one();
  return s;
}

Status Store::transact(const std::function<Status(Txn&)>& fn) {
  return impl_->backend->transact(fn);
}
Status Store::read(const std::function<Status(Txn&)>& fn) { return impl_->backend->read(fn); }

Result<int> Store::peek_schema_version(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::NotFound("store: " + path + " does not exist");
  Conn c;
  if (Status s = c.open(path, SQLITE_OPEN_READONLY, 1000); !s.ok())
    return Status::DataLoss(s.message());
  std::vector<Row> rows;
  Status s = c.run("PRAGMA user_version", {}, &rows);
  if (!s.ok() || rows.empty()) return Status::DataLoss("store: " + path + " is not a database");
  return static_cast<int>(rows[0].int64(0));
}

int Store::schema_version() const { return impl_->backend->schema_version(); }
std::uint64_t Store::commits() const { return impl_->backend->commits(); }
std::uint64_t Store::commit_batches() const { return impl_->backend->commit_batches(); }
const std::string& Store::path() const { return impl_->backend->location(); }
SqlDialect Store::dialect() const { return impl_->backend->dialect(); }

const std::vector<Migration>& builtin_migrations() { return detail::schema_migrations(); }

}  // namespace dmscore
