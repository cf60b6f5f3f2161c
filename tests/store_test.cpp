#include "dmscore/store.hpp"

#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace dmscore;
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

TEST_CASE("Store: the library's own migrations apply to a fresh database") {
  TempDir dir;
  auto s = Store::open(dir / "dms.db");
  REQUIRE(s.ok());
  CHECK((*s)->schema_version() == static_cast<int>(builtin_migrations().size()));
}

TEST_CASE("Store: transact commits everything or nothing") {
  TempDir dir;
  auto store = open_kv(dir / "a.db");
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

TEST_CASE("Store: a failing statement rolls back the transaction that passed it on") {
  TempDir dir;
  auto store = open_kv(dir / "a.db");
  Status s = store->transact([](Txn& t) -> Status {
    auto r = t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)");
    if (!r.ok()) return r.status();
    return t.exec("INSERT INTO kv (k, v) VALUES ('a', 2)").status();
  });
  CHECK(s.code() == Code::kAlreadyExists);
  CHECK(count_rows(*store) == 0);
}

TEST_CASE("Store: an exception inside a transaction rolls it back as INTERNAL") {
  TempDir dir;
  auto store = open_kv(dir / "a.db");
  Status s = store->transact([](Txn& t) -> Status {
    (void)t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)");
    throw std::runtime_error("boom");
  });
  CHECK(s.code() == Code::kInternal);
  CHECK(count_rows(*store) == 0);
}

TEST_CASE("Store: reads cannot write") {
  TempDir dir;
  auto store = open_kv(dir / "a.db");
  Status s =
      store->read([](Txn& t) { return t.exec("INSERT INTO kv (k, v) VALUES ('a', 1)").status(); });
  CHECK_FALSE(s.ok());
  CHECK(count_rows(*store) == 0);
}

TEST_CASE("Store: committed data survives reopening") {
  TempDir dir;
  {
    auto store = open_kv(dir / "a.db");
    REQUIRE(store
                ->transact([](Txn& t) {
                  return t
                      .exec("INSERT INTO kv (k, v, note) VALUES (?, ?, ?)",
                            {std::string("x"), std::int64_t{42}, std::string("hi")})
                      .status();
                })
                .ok());
  }
  auto store = open_kv(dir / "a.db");
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

TEST_CASE("Store: migrations run in order and only once") {
  TempDir dir;
  {
    auto store = open_kv(dir / "a.db", {kv_migrations()[0]});
    CHECK(store->schema_version() == 1);
  }
  auto store = open_kv(dir / "a.db");
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

TEST_CASE("Store: concurrent transactions are grouped into fewer commits and none is lost") {
  TempDir dir;
  auto store = open_kv(dir / "a.db");
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

TEST_CASE("Store: one failing transaction in a group does not undo its neighbours") {
  TempDir dir;
  auto store = open_kv(dir / "a.db");
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
