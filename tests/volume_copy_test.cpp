// The volume-copy pipeline every copying workflow shares: one checkpoint format, and
// workflows checkpointed by an earlier release resume from where they were.

#include "workflows/volume_copy.hpp"

#include <sqlite3.h>

#include <catch2/catch.hpp>

#include "service_fixture.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::Fixture;
using dmscore::testing::result_field;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

void sql(const std::string& db_path, const std::string& statement) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

std::string query_one(const std::string& db_path, const std::string& statement) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, statement.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW) {
    auto* t = sqlite3_column_text(st, 0);
    out = t ? reinterpret_cast<const char*>(t) : "";
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE(
    "Volume copy: the checkpoint is <item>:<offset>, an earlier release's <offset> is item 0") {
  using detail::parse_copy_checkpoint;
  CHECK(parse_copy_checkpoint("") == std::make_pair(std::size_t{0}, std::uint64_t{0}));
  CHECK(parse_copy_checkpoint("2:4096") == std::make_pair(std::size_t{2}, std::uint64_t{4096}));
  CHECK(parse_copy_checkpoint("8388608") == std::make_pair(std::size_t{0}, std::uint64_t{8388608}));
  // Anything else starts over rather than trusting it.
  for (const char* bad : {"x", "1:", ":5", "1:2:3", "-1:0", "99999999999999999999:0"})
    CHECK(parse_copy_checkpoint(bad) == std::make_pair(std::size_t{0}, std::uint64_t{0}));
}

TEST_CASE("Volume copy: a thick clone checkpointed by an earlier release resumes from it") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 16 * kMiB;
  o.copy_chunk_bytes = 1 * kMiB;
  Fixture f(o);
  f.attach_two();
  auto [vol, sn] = f.source(48 * kMiB, 48);
  auto id = f.svc->clones().volume(f.clone_req(sn, "upgraded"));
  REQUIRE(id.ok());
  for (int i = 0; i < 500 && f.svc->workflows().get(*id)->progress.bytes_done < 16 * kMiB; ++i)
    std::this_thread::sleep_for(10ms);
  f.svc.reset();  // stops mid-copy: the workflow stays RUNNING with its checkpoint

  // Make the rows what the earlier release wrote: the copy's checkpoint as "<offset>", the
  // destination's intent as "creating".
  const std::string db = f.tmp / "data/dms.db";
  const std::string cp =
      query_one(db, "SELECT checkpoint FROM workflow_steps WHERE workflow_id = '" + id->str() +
                        "' AND state = 'STARTED'");
  INFO(cp);
  REQUIRE(cp.rfind("0:", 0) == 0);
  const std::string offset = cp.substr(2);
  REQUIRE(std::stoull(offset) > 0);
  sql(db, "UPDATE workflow_steps SET checkpoint = '" + offset + "' WHERE workflow_id = '" +
              id->str() + "' AND state = 'STARTED'");
  sql(db,
      "UPDATE workflows SET vars = REPLACE(vars, '\"creating0\"', '\"creating\"') WHERE id = '" +
          id->str() + "'");

  f.open(o);
  Workflow w = f.wait(*id);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  // It went on from the old checkpoint, not from byte 0, and the copy is whole.
  CHECK_THAT(query_one(db, "SELECT vars FROM workflows WHERE id = '" + id->str() + "'"),
             Catch::Contains("\"copyResumedFrom\":\"" + offset + "\""));
  auto v = f.svc->volumes().get({ClusterId(f.c2), "p2", result_field(w.result, "volumeId")});
  REQUIRE(v.ok());
  CHECK(dmscore::testing::read_file(v->device_path) ==
        dmscore::testing::read_file(f.snapshot_path("c1", sn)));
}
