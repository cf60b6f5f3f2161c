#pragma once
// PostgreSQL for tests: the server scripts/test.sh starts (an unprivileged initdb cluster on a
// private socket directory and port), named by $DMSCORE_TEST_POSTGRES. Each PgTestDb is a fresh
// schema on it, dropped with everything in it on destruction, so tests never see each other's
// rows. Where the server is not there the PostgreSQL half of a test is skipped with a warning,
// unless $DMSCORE_REQUIRE_POSTGRES is set (scripts/test.sh sets it): then it fails.

#include <libpq-fe.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include "test_util.hpp"

namespace dmscore::testing {

inline const char* postgres_base_url() {
  const char* u = std::getenv("DMSCORE_TEST_POSTGRES");
  return u && *u ? u : nullptr;
}

inline bool postgres_required() {
  const char* r = std::getenv("DMSCORE_REQUIRE_POSTGRES");
  return r && *r && std::string(r) != "0";
}

// Runs `sql` on a new connection to `url`; throws with the server's message on failure.
inline void pg_admin(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string m = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("test PostgreSQL: " + m);
  }
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  std::string m = ok ? "" : PQerrorMessage(c);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error("test PostgreSQL: " + m);
}

// One row, one column of `sql`, as text ("" when there is none).
inline std::string pg_value(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  std::string out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

class PgTestDb {
 public:
  PgTestDb() {
    const char* base = postgres_base_url();
    if (!base) throw std::runtime_error("DMSCORE_TEST_POSTGRES is not set");
    base_ = base;
    std::random_device rd;
    schema_ = "t_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000000u);
    pg_admin(base_, "CREATE SCHEMA " + schema_);
  }
  ~PgTestDb() {
    try {
      pg_admin(base_, "DROP SCHEMA " + schema_ + " CASCADE");
    } catch (...) {
    }
  }
  PgTestDb(const PgTestDb&) = delete;
  PgTestDb& operator=(const PgTestDb&) = delete;

  // The store URL: the server, with this schema first in the search path and as the
  // connections' application_name (so a test can find its own in pg_stat_activity).
  std::string url() const {
    const std::string sep = base_.find('?') == std::string::npos ? "?" : "&";
    return base_ + sep + "options=-csearch_path%3D" + schema_ + "&application_name=" + schema_;
  }
  const std::string& schema() const { return schema_; }
  // Runs `sql` with this schema as the search path.
  void exec(const std::string& sql) const { pg_admin(url(), sql); }
  std::string value(const std::string& sql) const { return pg_value(url(), sql); }

 private:
  std::string base_;
  std::string schema_;
};

// Where a test that runs against both stores keeps its store: an SQLite file in a temporary
// directory, or a fresh PostgreSQL schema.
class StoreSite {
 public:
  explicit StoreSite(bool postgres) {
    if (postgres) pg_ = std::make_unique<PgTestDb>();
  }
  bool postgres() const { return pg_ != nullptr; }
  // The store's location: `name` in the directory, or the schema's URL.
  std::string location(const std::string& name = "dms.db") const {
    return pg_ ? pg_->url() : dir_ / name;
  }
  const TempDir& dir() const { return dir_; }
  PgTestDb* pg() const { return pg_.get(); }

 private:
  TempDir dir_;
  std::unique_ptr<PgTestDb> pg_;
};

}  // namespace dmscore::testing

// Declares `kind` ("sqlite", then "postgres") for a test that runs against both stores; the
// PostgreSQL run is skipped (or failed, when required) without the test server.
#define DMS_FOR_EACH_STORE(kind)                                                \
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");   \
  if (kind == "postgres" && !::dmscore::testing::postgres_base_url()) {         \
    if (::dmscore::testing::postgres_required())                                \
      FAIL("DMSCORE_REQUIRE_POSTGRES is set but DMSCORE_TEST_POSTGRES is not"); \
    WARN("no test PostgreSQL (DMSCORE_TEST_POSTGRES): its half is skipped");    \
    return;                                                                     \
  }                                                                             \
  INFO("store: " << kind)
