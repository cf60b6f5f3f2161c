// Kills a process running workflows with SIGKILL at random moments, many times over one store,
// and checks what survives: every acknowledged workflow exists once, no step's effect happened
// twice, nothing is stuck, every terminal state is legal and failed or cancelled workflows
// leave no files behind.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "crash_harness.hpp"
#include "dmscore/store.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace dmscore::testing;
namespace fs = std::filesystem;

TEST_CASE("WorkflowEngine: SIGKILL at random points loses and duplicates nothing") {
  TempDir dir;
  const std::string db = dir / "dms.db";
  const std::string work = dir / "work";
  fs::create_directories(work);
  const int kills = env_int("DMSCORE_CRASH_KILLS", 60);
  std::mt19937 rng(Catch::rngSeed());
  std::set<std::string> acked;
  int real_kills = 0;
  for (int i = 0; i < kills; ++i) {
    auto ms = std::chrono::milliseconds(15 + rng() % 250);
    auto run = run_child({DMSCORE_CRASH_CHILD, "run", db, work, std::to_string(rng())}, ms);
    for (auto& id : lines_with(run.out, "ACK ")) acked.insert(id);
    real_kills += run.killed;
  }
  CHECK(real_kills >= 50);
  auto drain = run_child({DMSCORE_CRASH_CHILD, "drain", db, work}, std::chrono::milliseconds(0));
  REQUIRE(drain.exit_code == 0);
  REQUIRE(acked.size() > 20);

  auto store = Store::open(db);
  REQUIRE(store.ok());
  std::map<std::string, std::pair<std::string, std::string>> rows;  // id -> (state, msg)
  std::map<std::string, std::int64_t> count_attempts;
  REQUIRE((*store)
              ->read([&](Txn& t) -> Status {
                auto r = t.query("SELECT id, state, msg FROM workflows");
                REQUIRE(r.ok());
                for (auto& row : *r) rows[row.text(0)] = {row.text(1), row.text(2)};
                auto s = t.query(
                    "SELECT workflow_id, attempts FROM workflow_steps WHERE name = 'count'");
                REQUIRE(s.ok());
                for (auto& row : *s) count_attempts[row.text(0)] = row.int64(1);
                auto c = t.query_one("SELECT value FROM workflow_counters WHERE name = 'active'");
                REQUIRE(c.ok());
                CHECK((*c)->int64(0) == 0);  // admission counter exact after every crash
                return Status::Ok();
              })
              .ok());

  // Acknowledged means durable; unacknowledged but committed rows are at most one per kill.
  for (const auto& id : acked) CHECK(rows.count(id) == 1);
  CHECK(rows.size() - acked.size() <= static_cast<std::size_t>(real_kills));

  int completed = 0, failed = 0, cancelled = 0;
  for (const auto& [id, sm] : rows) {
    const auto& [state, msg] = sm;
    INFO(id << " " << state << " " << msg);
    const bool has_count = fs::exists(work + "/" + id + ".count");
    const bool has_done = fs::exists(work + "/" + id + ".done");
    const bool has_data = fs::exists(work + "/" + id + ".data");
    if (state == "COMPLETED") {
      ++completed;
      REQUIRE(has_count);
      CHECK(read_file(work + "/" + id + ".count") == id + "\n");  // exactly once
      CHECK(count_attempts[id] == 1);
      REQUIRE(has_done);
      CHECK_FALSE(has_data);
      std::string data = read_file(work + "/" + id + ".done");
      REQUIRE(data.size() == 64 * 4096);
      for (int b = 0; b < 64; ++b) {
        std::string want = id + " block " + std::to_string(b);
        CHECK(data.compare(static_cast<std::size_t>(b) * 4096, want.size(), want) == 0);
      }
    } else if (state == "FAILED") {
      ++failed;
      // The only legal failure here: a crash inside the non-resumable step.
      CHECK(msg ==
            "interrupted by a restart during step count: the count may or may not have "
            "been taken");
      CHECK_FALSE(has_count);
      CHECK_FALSE(has_done);
      CHECK_FALSE(has_data);
    } else if (state == "CANCELLED") {
      ++cancelled;
      CHECK(msg == "cancelled by request");
      CHECK_FALSE(has_count);
      CHECK_FALSE(has_done);
      CHECK_FALSE(has_data);
    } else {
      FAIL("workflow left " << state);
    }
  }
  // Every file in the work dir belongs to a completed workflow.
  for (auto& e : fs::directory_iterator(work)) {
    std::string id = e.path().stem().string();
    INFO(e.path());
    CHECK(rows.count(id) == 1);
    CHECK(rows[id].first == "COMPLETED");
  }
  CHECK(completed > 0);
  WARN("kills=" << real_kills << " workflows=" << rows.size() << " completed=" << completed
                << " failed=" << failed << " cancelled=" << cancelled);
}
