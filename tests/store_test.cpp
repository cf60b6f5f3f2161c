#include "dmscore/store.hpp"

#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "pg_test_db.hpp"
#include "test_util.hpp"

using namespace dmscore;
using dmscore::testing::StoreSite;
using dmscore::testing::TempDir;

namespace {

std::vector<Migration> kv_migrations() {
  return {{1, "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"},
          {2, "ALTER TABLE kv ADD COLUMN note TEXT NOT NULL DEFAULT '';"}};
}

std::unique_ptr<Store> open_kv(const std::string& path,
                               std::vector<Migration> m = kv_migrations()) {
  StoreOptions o;
  o.migrations = std::move(m);
  auto s = Store::open(path, o);
  REQUIRE(s.ok());
  return std::move(s).value();
}

std::int64_t count_rows(Store& store) {
  std::int64_t n = -1;
  REQUIRE(store
              .read([&](Txn& t) -> Status {
                auto r = t.query_one("SELECT COUNT(*) FROM kv");
                if (!r.ok()) return r.status();
                n = (*r)->int64(0);
                return Status::Ok();
              })
              .ok());
  return n;
}

std::string pragma(const std::string& path, const std::string& name) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, ("PRAGMA " + name).c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE("Store: a new database is in WAL mode at the latest schema version") {
  TempDir dir;
  auto store = open_kv(dir / "a.db");
  CHECK(store->schema_version() == 2);
  CHECK(pragma(dir / "a.db", "journal_mode") == "wal");
  CHECK(pragma(dir / "a.db", "user_version") == "2");
}

TEST_CASE("Store: the library's own migrations apply to a fresh database (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto s = Store::open(site.location());
  REQUIRE(s.ok());
  CHECK((*s)->schema_version() == static_cast<int>(builtin_migrations().size()));
}

TEST_CASE("Store: transact commits everything or nothing (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  REQUIRE(store
              ->transact(
                  [](Txn& t) { return t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)").status(); })
              .ok());
  Status s = store->transact([](Txn& t) -> Status {
    auto r = t.exec("INSERT INTO kv (k, v) VALUES ('b', 2)");
    if (!r.ok()) return r.status();
    return Status::Aborted("changed my mind");
  });
  CHECK(s.code() == Code::kAborted);
  CHECK(count_rows(*store) == 1);
}

TEST_CASE("Store: a failing statement rolls back the transaction that passed it on (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  Status s = store->transact([](Txn& t) -> Status {
    auto r = t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)");
    if (!r.ok()) return r.status();
    return t.exec("INSERT INTO kv (k, v) VALUES ('a', 2)").status();
  });
  CHECK(s.code() == Code::kAlreadyExists);
  CHECK(count_rows(*store) == 0);
}

TEST_CASE("Store: an exception inside a transaction rolls it back as INTERNAL (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  Status s = store->transact([](Txn& t) -> Status {
    (void)t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)");
    throw std::runtime_error("boom");
  });
  CHECK(s.code() == Code::kInternal);
  CHECK(count_rows(*store) == 0);
}

TEST_CASE("Store: reads cannot write (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  Status s =
      store->read([](Txn& t) { return t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)").status(); });
  CHECK_FALSE(s.ok());
  CHECK(count_rows(*store) == 0);
}

TEST_CASE("Store: committed data survives reopening (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  {
    auto store = open_kv(site.location("a.db"));
    REQUIRE(store
                ->transact([](Txn& t) {
                  return t
                      .exec("INSERT INTO kv (k, v, note) VALUES (?, ?, ?)",
                            {std::string("x"), std::int64_t{42}, std::string("hi")})
                      .status();
                })
                .ok());
  }
  auto store = open_kv(site.location("a.db"));
  std::string note;
  std::int64_t v = 0;
  REQUIRE(store
              ->read([&](Txn& t) -> Status {
                auto r = t.query_one("SELECT v, note FROM kv WHERE k = ?", {std::string("x")});
                if (!r.ok()) return r.status();
                REQUIRE(r->has_value());
                v = (*r)->int64(0);
                note = (*r)->text(1);
                return Status::Ok();
              })
              .ok());
  CHECK(v == 42);
  CHECK(note == "hi");
}

TEST_CASE("Store: migrations run in order and only once (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  {
    auto store = open_kv(site.location("a.db"), {kv_migrations()[0]});
    CHECK(store->schema_version() == 1);
  }
  auto store = open_kv(site.location("a.db"));
  CHECK(store->schema_version() == 2);
  CHECK(store
            ->transact([](Txn& t) {
              return t.exec("INSERT INTO kv (k, v, note) VALUES ('a', 1, 'n')").status();
            })
            .ok());
}

TEST_CASE("Store: a database with a newer schema is refused and left untouched") {
  TempDir dir;
  { auto store = open_kv(dir / "a.db"); }
  std::string before = dmscore::testing::read_file(dir / "a.db");
  StoreOptions o;
  o.migrations = {kv_migrations()[0]};
  auto s = Store::open(dir / "a.db", o);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(s.status().message(), Catch::Contains("newer"));
  CHECK(dmscore::testing::read_file(dir / "a.db") == before);
}

TEST_CASE("Store: a file that is not a database is refused and left untouched") {
  TempDir dir;
  std::string junk(8192, 'x');
  dmscore::testing::write_file(dir / "a.db", junk);
  auto s = Store::open(dir / "a.db");
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kFailedPrecondition);
  CHECK(dmscore::testing::read_file(dir / "a.db") == junk);
}

TEST_CASE("Store: a corrupted database fails quick_check and is refused untouched") {
  TempDir dir;
  {
    auto store = open_kv(dir / "a.db");
    REQUIRE(store
                ->transact([](Txn& t) -> Status {
                  for (int i = 0; i < 2000; ++i) {
                    auto r = t.exec("INSERT INTO kv (k, v) VALUES (?, ?)",
                                    {std::string(40, 'a') + std::to_string(i), std::int64_t{i}});
                    if (!r.ok()) return r.status();
                  }
                  return Status::Ok();
                })
                .ok());
  }
  // Checkpointed on close; scribble over the table's root b-tree page (page 2), leaving the
  // file header and schema page intact.
  std::string data = dmscore::testing::read_file(dir / "a.db");
  REQUIRE(data.size() > 4 * 4096);
  for (std::size_t i = 4096; i < 2 * 4096; ++i) data[i] = '\x5a';
  dmscore::testing::write_file(dir / "a.db", data);
  auto s = Store::open(dir / "a.db");
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kFailedPrecondition);
  CHECK(dmscore::testing::read_file(dir / "a.db") == data);
}

TEST_CASE("Store: bad options and out-of-order migrations are INVALID_ARGUMENT") {
  TempDir dir;
  CHECK(Store::open("").status().code() == Code::kInvalidArgument);
  StoreOptions o;
  o.read_connections = 0;
  CHECK(Store::open(dir / "a.db", o).status().code() == Code::kInvalidArgument);
  StoreOptions m;
  m.migrations = {{2, "CREATE TABLE t (x)"}};
  CHECK(Store::open(dir / "b.db", m).status().code() == Code::kInvalidArgument);
}

TEST_CASE("Store: an unopenable path is UNAVAILABLE") {
  auto s = Store::open("/nonexistent-dir-dmscore/x.db");
  CHECK(s.status().code() == Code::kUnavailable);
}

TEST_CASE(
    "Store: concurrent transactions are grouped into fewer commits and none is lost (both "
    "stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  constexpr int kThreads = 16, kEach = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        Status s = store->transact([&](Txn& txn) {
          return txn
              .exec("INSERT INTO kv (k, v) VALUES (?, ?)",
                    {std::to_string(t) + ":" + std::to_string(i), std::int64_t{i}})
              .status();
        });
        if (!s.ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(count_rows(*store) == kThreads * kEach);
  CHECK(store->commits() >= static_cast<std::uint64_t>(kThreads * kEach));
  CHECK(store->commit_batches() <= store->commits());
}

TEST_CASE("Store: one failing transaction in a group does not undo its neighbours (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, dup{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        // Every thread inserts the shared key "dup" once: exactly one may win.
        std::string key = i == 0 ? std::string("dup") : std::to_string(t) + ":" + std::to_string(i);
        Status s = store->transact([&](Txn& txn) {
          return txn.exec("INSERT INTO kv (k, v) VALUES (?, 1)", {key}).status();
        });
        if (s.ok())
          ++ok;
        else if (s.code() == Code::kAlreadyExists)
          ++dup;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(dup == 7);
  CHECK(ok == 8 * 19 + 1);
  CHECK(count_rows(*store) == 8 * 19 + 1);
}

TEST_CASE("Row: typed accessors convert sensibly") {
  Row r({std::int64_t{5}, std::string("x"), std::monostate{}, 2.5});
  CHECK(r.int64(0) == 5);
  CHECK(r.text(0) == "5");
  CHECK(r.text(1) == "x");
  CHECK(r.is_null(2));
  CHECK(r.text(2).empty());
  CHECK(r.real(3) == 2.5);
  CHECK(r.int64(3) == 2);
}

TEST_CASE("Store: read-modify-write transactions racing never lose an update (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  REQUIRE(store
              ->transact(
                  [](Txn& t) { return t.exec("INSERT INTO kv (k, v) VALUES ('n', 0)").status(); })
              .ok());
  constexpr int kThreads = 8, kEach = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < kEach; ++j) {
        // Read, then write what was read plus one: on PostgreSQL two of these overlapping would
        // lose an increment without serializable isolation.
        Status s = store->transact([](Txn& t) -> Status {
          auto r = t.query_one("SELECT v FROM kv WHERE k = 'n'");
          if (!r.ok()) return r.status();
          return t.exec("UPDATE kv SET v = ? WHERE k = 'n'", {(*r)->int64(0) + 1}).status();
        });
        if (!s.ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  std::int64_t n = -1;
  REQUIRE(store
              ->read([&](Txn& t) -> Status {
                auto r = t.query_one("SELECT v FROM kv WHERE k = 'n'");
                if (!r.ok()) return r.status();
                n = (*r)->int64(0);
                return Status::Ok();
              })
              .ok());
  CHECK(n == kThreads * kEach);
}

TEST_CASE("Store: typed values round-trip (both stores)") {
  DMS_FOR_EACH_STORE(kind);
  StoreSite site(kind == "postgres");
  auto store = open_kv(site.location("a.db"));
  const std::string odd = "quote ' and \"double\" and ? and $1 and unicode \xc3\xa9";
  REQUIRE(
      store
          ->transact([&](Txn& t) -> Status {
            auto r = t.exec("INSERT INTO kv (k, v, note) VALUES (?, ?, ?)",
                            {std::string("big"), std::int64_t{INT64_MAX}, odd});
            if (!r.ok()) return r.status();
            r = t.exec("INSERT OR IGNORE INTO kv (k, v) VALUES (?, ?)",
                       {std::string("big"), std::int64_t{1}});
            if (!r.ok()) return r.status();
            CHECK(*r == 0);  // ignored: nothing changed
            return t.exec("INSERT INTO kv (k, v) VALUES ('neg', ?)", {std::int64_t{-7}}).status();
          })
          .ok());
  REQUIRE(store
              ->read([&](Txn& t) -> Status {
                auto r = t.query_one(
                    "SELECT v, note, instr(note, '$1'), note || char(10), NULL, COUNT(*) OVER () "
                    "FROM kv WHERE k = ?",
                    {std::string("big")});
                if (!r.ok()) return r.status();
                REQUIRE(r->has_value());
                const Row& row = **r;
                CHECK(row.int64(0) == INT64_MAX);
                CHECK(row.text(1) == odd);
                CHECK(row.int64(2) == static_cast<std::int64_t>(odd.find("$1") + 1));
                CHECK(row.text(3) == odd + "\n");
                CHECK(row.is_null(4));
                CHECK(row.int64(5) == 1);
                auto neg = t.query_one("SELECT v FROM kv WHERE k = 'neg'");
                if (!neg.ok()) return neg.status();
                CHECK((*neg)->int64(0) == -7);
                return Status::Ok();
              })
              .ok());
}

TEST_CASE("Store (PostgreSQL): a newer schema is refused and nothing is changed") {
  DMS_FOR_EACH_STORE(kind);
  if (kind != "postgres") return;
  StoreSite site(true);
  { auto store = open_kv(site.location()); }
  StoreOptions o;
  o.migrations = {kv_migrations()[0]};
  auto s = Store::open(site.location(), o);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(s.status().message(), Catch::Contains("newer"));
  CHECK(site.pg()->value("SELECT version FROM dms_schema") == "2");
  CHECK(site.pg()->value("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = '" +
                         site.pg()->schema() + "' AND table_name = 'kv'") == "3");
}

TEST_CASE("Store (PostgreSQL): instances opening a new database together migrate it once") {
  DMS_FOR_EACH_STORE(kind);
  if (kind != "postgres") return;
  StoreSite site(true);
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  std::vector<Status> errors(6, Status::Ok());
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto s = Store::open(site.location());
      if (s.ok() && (*s)->schema_version() == static_cast<int>(builtin_migrations().size()))
        ++opened;
      else if (!s.ok())
        errors[static_cast<std::size_t>(i)] = s.status();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) CHECK(e.to_string() == Status::Ok().to_string());
  CHECK(opened == 6);
  CHECK(site.pg()->value("SELECT version FROM dms_schema") ==
        std::to_string(builtin_migrations().size()));
  // The counter trigger exists once and counts.
  auto store = Store::open(site.location());
  REQUIRE(store.ok());
  REQUIRE((*store)
              ->transact([](Txn& t) {
                return t
                    .exec(
                        "INSERT INTO workflows (id, type, state, created_at, request) VALUES "
                        "('w1', 'T', 'PENDING', 1, '{}')")
                    .status();
              })
              .ok());
  CHECK(site.pg()->value("SELECT value FROM workflow_counters WHERE name = 'active'") == "1");
}

TEST_CASE(
    "Store (PostgreSQL): an unreachable server is UNAVAILABLE and no message shows the "
    "password") {
  DMS_FOR_EACH_STORE(kind);
  if (kind != "postgres") return;
  const int port = dmscore::testing::free_loopback_port();
  const std::string url = "postgresql://dms:s3cret-pw@127.0.0.1:" + std::to_string(port) +
                          "/x?connect_timeout=2&password=s3cret-pw";
  auto s = Store::open(url);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kUnavailable);
  CHECK_THAT(s.status().message(), !Catch::Contains("s3cret-pw"));
  CHECK_THAT(s.status().message(), Catch::Contains("127.0.0.1"));
}

TEST_CASE("Store (PostgreSQL): a connection the server dropped is made again") {
  DMS_FOR_EACH_STORE(kind);
  if (kind != "postgres") return;
  StoreSite site(true);
  StoreOptions o;
  o.migrations = kv_migrations();
  o.postgres_connections = 1;
  auto opened = Store::open(site.location(), o);
  REQUIRE(opened.ok());
  auto& store = **opened;
  REQUIRE(
      store
          .transact([](Txn& t) { return t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)").status(); })
          .ok());
  // Every connection of this schema's store ends, as a server restart ends them.
  dmscore::testing::pg_admin(site.pg()->url(),
                             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                             "pg_backend_pid() AND application_name = '" +
                                 site.pg()->schema() + "'");
  // The first use may find the connection gone (UNAVAILABLE, nothing done); the next one
  // reconnects.
  Status first = store.transact(
      [](Txn& t) { return t.exec("INSERT INTO kv (k, v) VALUES ('b', 2)").status(); });
  if (!first.ok()) {
    CHECK(first.code() == Code::kUnavailable);
    REQUIRE(store
                .transact(
                    [](Txn& t) { return t.exec("INSERT INTO kv (k, v) VALUES ('b', 2)").status(); })
                .ok());
  }
  CHECK(count_rows(store) == 2);
}
