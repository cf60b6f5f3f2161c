#pragma once
// The two kinds of Store (dmscore/store.hpp) behind one interface: SQLite (store.cpp) and
// PostgreSQL (postgres_store.cpp), and the translation of the library's SQL to PostgreSQL's
// dialect (sql_dialect.cpp).

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dmscore/store.hpp"

namespace dmscore::detail {

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;
  virtual Status transact(const std::function<Status(Txn&)>& fn) = 0;
  virtual Status read(const std::function<Status(Txn&)>& fn) = 0;
  virtual int schema_version() const = 0;
  virtual std::uint64_t commits() const = 0;
  virtual std::uint64_t commit_batches() const = 0;
  virtual const std::string& location() const = 0;
  virtual SqlDialect dialect() const = 0;
};

// Runs a transaction's body, turning an exception it throws into INTERNAL.
inline Status run_guarded(const std::function<Status(Txn&)>& fn, Txn& txn) {
  try {
    return fn(txn);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("store: transaction threw: ") + e.what());
  } catch (...) {
    return Status::Internal("store: transaction threw");
  }
}

// Opens the PostgreSQL database `url` and applies `options.migrations` (already checked).
Result<std::unique_ptr<StoreBackend>> open_postgres(const std::string& url,
                                                    const StoreOptions& options);

// A statement in the library's dialect (SQLite's, `?` parameters) as PostgreSQL runs it.
std::string to_postgres(std::string_view sql);
// A migration's DDL as PostgreSQL runs it: to_postgres, and INTEGER columns as BIGINT,
// INTEGER PRIMARY KEY AUTOINCREMENT as an identity column, REAL as DOUBLE PRECISION.
std::string postgres_ddl(std::string_view sql);
// `url` with any password replaced by "***", for messages.
std::string redact_url(std::string_view url);

}  // namespace dmscore::detail
