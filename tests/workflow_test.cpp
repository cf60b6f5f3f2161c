#include "dmscore/workflow.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "dmscore/store.hpp"
#include "engine/engine_txn.hpp"
#include "pg_test_db.hpp"
#include "step_gate.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::TempDir;

namespace {

using Gate = dmscore::testing::StepGate;

// Every engine test runs on SQLite and on PostgreSQL; on PostgreSQL the engine is an instance
// of a shared store (EngineOptions::instance_id: leases, claims, fencing), with short intervals.
struct Fixture {
  explicit Fixture(const std::string& kind = "sqlite") {
    if (kind == "postgres") pg = std::make_unique<dmscore::testing::PgTestDb>();
    reopen_store();
  }
  TempDir dir;
  std::unique_ptr<dmscore::testing::PgTestDb> pg;
  std::unique_ptr<Store> store;
  std::unique_ptr<WorkflowEngine> engine;
  Gate gate;
  std::mutex log_mu;
  std::vector<std::string> log;

  void reopen_store() {
    engine.reset();
    store.reset();
    auto s = Store::open(pg ? pg->url() : dir / "dms.db");
    REQUIRE(s.ok());
    store = std::move(s).value();
  }

  void record(const std::string& what) {
    std::lock_guard l(log_mu);
    log.push_back(what);
  }

  void make_engine(EngineOptions o = {}) {
    if (pg && o.instance_id.empty()) {
      o.instance_id = "test-a";
      o.heartbeat_interval = 50ms;
      o.lease_ttl = 1000ms;
      o.claim_interval = 20ms;
    }
    engine = std::make_unique<WorkflowEngine>(*store, o);
    REQUIRE(engine
                ->register_type({"TWO_STEPS",
                                 {{"first",
                                   [this](StepContext& c) {
                                     record("first");
                                     c.set_var("made", "thing-1");
                                     return Status::Ok();
                                   },
                                   [this](StepContext&) {
                                     record("undo first");
                                     return Status::Ok();
                                   }},
                                  {"second",
                                   [this](StepContext& c) {
                                     record("second:" + c.var("made"));
                                     c.set_result(R"({"thing":")" + c.var("made") + R"("})");
                                     return Status::Ok();
                                   }}}})
                .ok());
    REQUIRE(engine
                ->register_type({"BLOCKS",
                                 {{"prepare",
                                   [this](StepContext&) {
                                     record("prepare");
                                     return Status::Ok();
                                   },
                                   [this](StepContext&) {
                                     record("undo prepare");
                                     return Status::Ok();
                                   }},
                                  {"wait",
                                   [this](StepContext& c) {
                                     if (!gate.wait(c)) return Status::Cancelled("stopped");
                                     return Status::Ok();
                                   },
                                   [this](StepContext&) {
                                     record("undo wait");
                                     return Status::Ok();
                                   }}}})
                .ok());
    // Its submitter's rows: a table the cancel of a PENDING one settles (or refuses to).
    REQUIRE(detail::EngineTxn::register_type(
                *engine, {"SETTLES", {{"only", [](StepContext&) { return Status::Ok(); }}}},
                [this](Txn& t, const std::string& request) -> Status {
                  record("settle " + request);
                  if (request == "refuse") return Status::Aborted("no");
                  return t.exec("UPDATE mine SET status = 'cancelled'").status();
                })
                .ok());
    REQUIRE(engine
                ->register_type(
                    {"FAILS",
                     {{"ok", [](StepContext&) { return Status::Ok(); },
                       [this](StepContext&) {
                         record("undo ok");
                         return Status::Ok();
                       }},
                      {"bad", [](StepContext&) { return Status::Unavailable("cluster went away"); },
                       [this](StepContext&) {
                         record("undo bad");
                         return Status::Ok();
                       }},
                      {"never",
                       [this](StepContext&) {
                         record("never");
                         return Status::Ok();
                       }}}})
                .ok());
    REQUIRE(engine
                ->register_type({"RESUMES",
                                 {{"count",
                                   [this](StepContext& c) {
                                     int from =
                                         c.checkpoint().empty() ? 0 : std::stoi(c.checkpoint());
                                     record("count from " + std::to_string(from) +
                                            (c.resumed() ? " resumed" : ""));
                                     for (int i = from; i < 10; ++i) {
                                       if (i == 5 && !c.resumed()) {
                                         Status s = c.save_checkpoint("5");
                                         if (!s.ok()) return s;
                                         if (!gate.wait(c)) return Status::Cancelled("stopped");
                                       }
                                     }
                                     return Status::Ok();
                                   }}}})
                .ok());
    REQUIRE(engine
                ->register_type({"FRAGILE",
                                 {{"fragile",
                                   [this](StepContext& c) {
                                     if (!gate.wait(c)) return Status::Cancelled("stopped");
                                     return Status::Ok();
                                   },
                                   [this](StepContext&) {
                                     record("undo fragile");
                                     return Status::Ok();
                                   },
                                   OnCrash::kFail, "the device mapping is gone"}}})
                .ok());
    // Parks until `parks_left` runs have passed, each from the checkpoint the last one saved.
    REQUIRE(engine
                ->register_type(
                    {"PARKS",
                     {{"wait outside",
                       [this](StepContext& c) {
                         const int runs = c.checkpoint().empty() ? 0 : std::stoi(c.checkpoint());
                         record("run " + std::to_string(runs) + (c.resumed() ? " resumed" : ""));
                         if (c.should_stop()) return Status::Cancelled("stopped");
                         if (runs >= parks_left) return Status::Ok();
                         Status s = c.save_checkpoint(std::to_string(runs + 1));
                         if (!s.ok()) return s;
                         c.park(park_for);
                         return Status::Ok();
                       },
                       [this](StepContext&) {
                         record("undo wait outside");
                         return Status::Ok();
                       }},
                      {"after",
                       [this](StepContext&) {
                         record("after");
                         return Status::Ok();
                       }}}})
                .ok());
    REQUIRE(engine->start().ok());
  }

  std::atomic<int> parks_left{2};
  std::chrono::milliseconds park_for{60000};

  // How many times step `idx` of workflow `id` was begun (a park is not a new attempt).
  std::int64_t attempts(const std::string& id, int idx) {
    std::int64_t n = -1;
    REQUIRE(store
                ->read([&](Txn& t) -> Status {
                  auto r = t.query_one(
                      "SELECT attempts FROM workflow_steps WHERE workflow_id = ? AND idx = ?",
                      {id, std::int64_t{idx}});
                  if (r.ok() && *r) n = (*r)->int64(0);
                  return Status::Ok();
                })
                .ok());
    return n;
  }

  // Waits until the log holds `n` entries (a parked workflow's runs).
  void await_log(std::size_t n) {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard l(log_mu);
        if (log.size() >= n) return;
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL("the log never reached " << n << " entries");
  }

  Workflow wait(const std::string& id) {
    auto w = engine->wait(id, 10s);
    REQUIRE(w.ok());
    return *w;
  }
};

}  // namespace

TEST_CASE("WorkflowEngine: a workflow runs its steps in order and completes with a result") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("TWO_STEPS", R"({"x":1})");
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kCompleted);
  CHECK(w.type == "TWO_STEPS");
  CHECK(w.request == R"({"x":1})");
  CHECK(w.result == R"({"thing":"thing-1"})");
  CHECK(w.progress.percent == 100);
  CHECK(w.started_at.has_value());
  CHECK(w.ended_at.has_value());
  CHECK(w.msg.empty());
  CHECK(f.log == std::vector<std::string>{"first", "second:thing-1"});
}

TEST_CASE("WorkflowEngine: get follows a workflow through its states, a finished one stays put") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.threads = 1;
  f.make_engine(o);
  auto id = f.engine->submit("BLOCKS", "{}");
  REQUIRE(id.ok());
  for (int i = 0; i < 500 && f.engine->get(*id)->state != WorkflowState::kRunning; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(f.engine->get(*id)->state == WorkflowState::kRunning);
  f.gate.open();
  Workflow done = f.wait(*id);
  REQUIRE(done.state == WorkflowState::kCompleted);
  // Every later read answers the same finished workflow.
  for (int i = 0; i < 3; ++i) {
    auto again = f.engine->get(*id);
    REQUIRE(again.ok());
    CHECK(again->state == WorkflowState::kCompleted);
    CHECK(again->ended_at == done.ended_at);
    CHECK(again->result == done.result);
  }
  CHECK(f.engine->get("00000000-0000-4000-8000-000000000000").status().code() == Code::kNotFound);
}

TEST_CASE("WorkflowEngine: submit refuses unknown types and works only once started") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  WorkflowEngine engine(*f.store, {});
  CHECK(engine.submit("X", "{}").status().code() == Code::kUnavailable);
  REQUIRE(engine.register_type({"X", {{"s", [](StepContext&) { return Status::Ok(); }}}}).ok());
  REQUIRE(engine.start().ok());
  CHECK(engine.submit("Y", "{}").status().code() == Code::kInvalidArgument);
  CHECK(engine.register_type({"Z", {{"s", [](StepContext&) { return Status::Ok(); }}}}).code() ==
        Code::kFailedPrecondition);
  CHECK(engine.start().code() == Code::kFailedPrecondition);
}

TEST_CASE("WorkflowEngine: register_type rejects malformed definitions") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  WorkflowEngine engine(*f.store, {});
  CHECK(engine.register_type({"", {{"s", [](StepContext&) { return Status::Ok(); }}}}).code() ==
        Code::kInvalidArgument);
  CHECK(engine.register_type({"A", {}}).code() == Code::kInvalidArgument);
  CHECK(engine.register_type({"A", {{"s", nullptr}}}).code() == Code::kInvalidArgument);
  REQUIRE(engine.register_type({"A", {{"s", [](StepContext&) { return Status::Ok(); }}}}).ok());
  CHECK(engine.register_type({"A", {{"s", [](StepContext&) { return Status::Ok(); }}}}).code() ==
        Code::kAlreadyExists);
}

TEST_CASE("WorkflowEngine: bad options are refused at start") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.max_running_workflows = 0;
  WorkflowEngine engine(*f.store, o);
  CHECK(engine.start().code() == Code::kInvalidArgument);
  o.max_running_workflows = 1;
  o.threads = 0;
  CHECK(validate(o).message() == "threads: must be 1..256");
}

TEST_CASE("WorkflowEngine: a failing step ends FAILED and undoes earlier steps newest first") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("FAILS", "{}");
  REQUIRE(id.ok());
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK(w.msg == "bad: cluster went away");
  CHECK(f.log == std::vector<std::string>{"undo bad", "undo ok"});
}

TEST_CASE("WorkflowEngine: admission refuses beyond maxRunningWorkflows and records nothing") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.max_running_workflows = 2;
  o.threads = 1;
  f.make_engine(o);
  auto a = f.engine->submit("BLOCKS", "{}");
  auto b = f.engine->submit("BLOCKS", "{}");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto c = f.engine->submit("BLOCKS", "{}");
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == Code::kResourceExhausted);
  auto page = f.engine->list({});
  REQUIRE(page.ok());
  CHECK(page->workflows.size() == 2);
  f.gate.open();
  f.wait(*a);
  f.wait(*b);
  CHECK(f.engine->submit("BLOCKS", "{}").ok());
}

TEST_CASE("WorkflowEngine: submit_all admits a whole batch or nothing, with the caller's rows") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.max_running_workflows = 3;
  o.threads = 1;
  f.make_engine(o);
  REQUIRE(f.store
              ->transact([](Txn& t) {
                return t.exec("CREATE TABLE mine (workflow_id TEXT NOT NULL)").status();
              })
              .ok());
  auto record = [](Txn& t, const std::vector<std::string>& ids) -> Status {
    for (const auto& id : ids) {
      auto r = t.exec("INSERT INTO mine (workflow_id) VALUES (?)", {id});
      if (!r.ok()) return r.status();
    }
    return Status::Ok();
  };
  auto rows = [&] {
    std::int64_t n = -1;
    REQUIRE(f.store
                ->read([&](Txn& t) -> Status {
                  auto r = t.query_one("SELECT COUNT(*) FROM mine");
                  if (!r.ok()) return r.status();
                  n = (*r)->int64(0);
                  return Status::Ok();
                })
                .ok());
    return n;
  };
  auto batch = [](int n) {
    std::vector<WorkflowEngine::Submission> b;
    for (int i = 0; i < n; ++i) b.push_back({"BLOCKS", "{}", {"thing:" + std::to_string(i)}});
    return b;
  };
  // Four do not fit under three: none is recorded, nor the caller's rows.
  auto big = detail::EngineTxn::submit_all(*f.engine, batch(4), record);
  CHECK(big.status().code() == Code::kResourceExhausted);
  CHECK(rows() == 0);
  CHECK(f.engine->list({})->workflows.empty());
  // The caller's error rolls the batch back too.
  auto refused = detail::EngineTxn::submit_all(
      *f.engine, batch(2),
      [](Txn&, const std::vector<std::string>&) { return Status::AlreadyExists("name: taken"); });
  CHECK(refused.status().code() == Code::kAlreadyExists);
  CHECK(f.engine->list({})->workflows.empty());
  CHECK(!*f.engine->resource_in_use("thing:0"));
  // Three fit: ids in batch order, recorded with the caller's rows, all run.
  auto ok = detail::EngineTxn::submit_all(*f.engine, batch(3), record);
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 3);
  CHECK(rows() == 3);
  CHECK(*f.engine->resource_in_use("thing:2"));
  CHECK(f.engine->submit_all({}).status().code() == Code::kInvalidArgument);
  f.gate.open();
  for (const auto& id : *ok) CHECK(f.wait(id).state == WorkflowState::kCompleted);
}

TEST_CASE("WorkflowEngine: cancelling a PENDING workflow ends it CANCELLED at once") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.threads = 1;
  f.make_engine(o);
  auto a = f.engine->submit("BLOCKS", "{}");
  REQUIRE(a.ok());
  f.gate.await_waiters(1);
  auto b = f.engine->submit("TWO_STEPS", "{}");
  REQUIRE(b.ok());
  REQUIRE(f.engine->cancel(*b).ok());
  auto w = f.engine->get(*b);
  REQUIRE(w.ok());
  CHECK(w->state == WorkflowState::kCancelled);
  CHECK(w->msg == "cancelled by request");
  f.gate.open();
  f.wait(*a);
  CHECK(f.engine->get(*b)->state == WorkflowState::kCancelled);
  CHECK(std::find(f.log.begin(), f.log.end(), "first") == f.log.end());
}

TEST_CASE("WorkflowEngine: a workflow cancelled before it started settles its rows atomically") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.threads = 1;
  f.make_engine(o);
  REQUIRE(f.store
              ->transact([](Txn& t) {
                auto r = t.exec("CREATE TABLE mine (status TEXT NOT NULL)");
                if (!r.ok()) return r.status();
                return t.exec("INSERT INTO mine (status) VALUES ('waiting')").status();
              })
              .ok());
  auto status = [&] {
    std::string out;
    REQUIRE(f.store
                ->read([&](Txn& t) -> Status {
                  auto r = t.query_one("SELECT status FROM mine");
                  if (!r.ok()) return r.status();
                  out = (*r)->text(0);
                  return Status::Ok();
                })
                .ok());
    return out;
  };
  auto busy = f.engine->submit("BLOCKS", "{}");  // holds the one worker
  REQUIRE(busy.ok());
  auto refused = f.engine->submit("SETTLES", "refuse");
  REQUIRE(refused.ok());
  // The type's error aborts the cancel: still PENDING, nothing changed.
  CHECK(f.engine->cancel(*refused).code() == Code::kAborted);
  CHECK(f.engine->get(*refused)->state == WorkflowState::kPending);
  auto id = f.engine->submit("SETTLES", "mine");
  REQUIRE(id.ok());
  REQUIRE(f.engine->cancel(*id).ok());
  CHECK(f.engine->get(*id)->state == WorkflowState::kCancelled);
  CHECK(status() == "cancelled");
  f.gate.open();
  f.wait(*busy);
  f.wait(*refused);  // runs normally: its settle is for a cancel only
  // One settle per cancel, none for the workflow that ran.
  auto settles = std::count_if(f.log.begin(), f.log.end(),
                               [](const std::string& l) { return l.rfind("settle ", 0) == 0; });
  CHECK(settles == 2);
}

TEST_CASE("WorkflowEngine: cancelling a RUNNING workflow stops its step and compensates") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("BLOCKS", "{}");
  REQUIRE(id.ok());
  f.gate.await_waiters(1);
  REQUIRE(f.engine->cancel(*id).ok());
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(w.cancel_requested);
  CHECK(f.log == std::vector<std::string>{"prepare", "undo wait", "undo prepare"});
}

TEST_CASE("WorkflowEngine: a cancel accepted during the last step still ends CANCELLED") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.engine = std::make_unique<WorkflowEngine>(*f.store, EngineOptions{});
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  REQUIRE(f.engine
              ->register_type({"STUBBORN",
                               {{"work",
                                 [&](StepContext& c) {
                                   c.set_result(R"({"made":"x"})");
                                   std::unique_lock l(mu);
                                   entered = true;
                                   cv.notify_all();
                                   cv.wait(
                                       l, [&] { return release; });  // never looks at should_stop()
                                   return Status::Ok();
                                 },
                                 [&](StepContext&) {
                                   f.record("undo work");
                                   return Status::Ok();
                                 }}}})
              .ok());
  REQUIRE(f.engine->start().ok());
  auto id = f.engine->submit("STUBBORN", "{}");
  REQUIRE(id.ok());
  {
    std::unique_lock l(mu);
    cv.wait(l, [&] { return entered; });
  }
  REQUIRE(f.engine->cancel(*id).ok());
  {
    std::lock_guard l(mu);
    release = true;
    cv.notify_all();
  }
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(w.result.empty());
  CHECK(f.log == std::vector<std::string>{"undo work"});
}

TEST_CASE("WorkflowEngine: cancel of a finished or unknown workflow is refused") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("TWO_STEPS", "{}");
  REQUIRE(id.ok());
  f.wait(*id);
  CHECK(f.engine->cancel(*id).code() == Code::kFailedPrecondition);
  CHECK(f.engine->cancel("00000000-0000-4000-8000-000000000000").code() == Code::kNotFound);
  CHECK(f.engine->get("nope").status().code() == Code::kNotFound);
}

TEST_CASE("WorkflowEngine: list pages newest first and filters by state and type") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto id = f.engine->submit(i % 2 ? "FAILS" : "TWO_STEPS", "{}");
    REQUIRE(id.ok());
    ids.push_back(*id);
    f.wait(*id);
  }
  ListWorkflowsRequest req;
  req.page_size = 2;
  std::vector<std::string> seen;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = f.engine->list(req);
    REQUIRE(page.ok());
    for (auto& w : page->workflows) seen.push_back(w.id);
    if (page->next_page_token.empty()) break;
    req.page_token = page->next_page_token;
  }
  CHECK(seen == std::vector<std::string>(ids.rbegin(), ids.rend()));

  ListWorkflowsRequest failed;
  failed.state = WorkflowState::kFailed;
  auto fp = f.engine->list(failed);
  REQUIRE(fp.ok());
  CHECK(fp->workflows.size() == 2);
  ListWorkflowsRequest typed;
  typed.type = "TWO_STEPS";
  CHECK(f.engine->list(typed)->workflows.size() == 3);
}

TEST_CASE("WorkflowEngine: list rejects a bad page size or page token naming the field") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  ListWorkflowsRequest r;
  r.page_size = 1001;
  CHECK(f.engine->list(r).status().message().rfind("pageSize", 0) == 0);
  r.page_size = -1;
  CHECK(f.engine->list(r).status().code() == Code::kInvalidArgument);
  r.page_size = 10;
  for (std::string bad : {"x", "wf1.", "wf1.12a", "wf1.99999999999999999999", "' OR 1=1 --"}) {
    r.page_token = bad;
    auto p = f.engine->list(r);
    CHECK(p.status().code() == Code::kInvalidArgument);
    CHECK(p.status().message().rfind("nextPageToken", 0) == 0);
  }
}

TEST_CASE("WorkflowEngine: parse_workflow_state accepts exactly the contract's names") {
  CHECK(*parse_workflow_state("RUNNING") == WorkflowState::kRunning);
  CHECK(parse_workflow_state("running").status().code() == Code::kInvalidArgument);
  CHECK(is_terminal(WorkflowState::kCancelled));
  CHECK_FALSE(is_terminal(WorkflowState::kPending));
}

TEST_CASE("WorkflowEngine: a step interrupted by shutdown resumes from its checkpoint") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("RESUMES", "{}");
  REQUIRE(id.ok());
  f.gate.await_waiters(1);
  f.engine->stop();
  auto mid = f.engine->get(*id);
  REQUIRE(mid.ok());
  CHECK(mid->state == WorkflowState::kRunning);
  f.reopen_store();
  f.make_engine();
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kCompleted);
  CHECK(f.log == std::vector<std::string>{"count from 0", "count from 5 resumed"});
}

TEST_CASE("WorkflowEngine: a step that cannot resume ends FAILED after a restart, compensated") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("FRAGILE", "{}");
  REQUIRE(id.ok());
  f.gate.await_waiters(1);
  f.engine->stop();
  f.reopen_store();
  f.make_engine();
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK(w.msg == "interrupted by a restart during step fragile: the device mapping is gone");
  CHECK(f.log == std::vector<std::string>{"undo fragile"});
}

TEST_CASE("WorkflowEngine: an interrupted compensation is finished on restart") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("BLOCKS", "{}");
  REQUIRE(id.ok());
  f.gate.await_waiters(1);
  f.engine->stop();
  // As if the process died right after recording that compensation had begun.
  REQUIRE(f.store
              ->transact([&](Txn& t) {
                return t
                    .exec(
                        "UPDATE workflows SET final_state = 'FAILED', final_msg = 'disk gone' "
                        "WHERE id = ?",
                        {*id})
                    .status();
              })
              .ok());
  f.log.clear();
  f.reopen_store();
  f.make_engine();
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK(w.msg == "disk gone");
  CHECK(f.log == std::vector<std::string>{"undo wait", "undo prepare"});
}

TEST_CASE(
    "WorkflowEngine: a cancel that finds a step interrupted by a crash undoes that step too") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("BLOCKS", "{}");
  REQUIRE(id.ok());
  f.gate.await_waiters(1);
  f.engine->stop();  // "wait" stays STARTED, as after a crash
  REQUIRE(f.engine->cancel(*id).ok());
  f.log.clear();
  f.reopen_store();
  f.make_engine();
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(f.log == std::vector<std::string>{"undo wait", "undo prepare"});
}

TEST_CASE("WorkflowEngine: a stored workflow of an unknown type ends FAILED saying so") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  f.engine->stop();
  REQUIRE(f.store
              ->transact([](Txn& t) {
                return t
                    .exec(
                        "INSERT INTO workflows (id, type, state, created_at, request) "
                        "VALUES ('w-1', 'FROM_THE_FUTURE', 'PENDING', 0, '{}')")
                    .status();
              })
              .ok());
  f.reopen_store();
  f.make_engine();
  Workflow w = f.wait("w-1");
  CHECK(w.state == WorkflowState::kFailed);
  CHECK_THAT(w.msg, Catch::Contains("FROM_THE_FUTURE"));
}

TEST_CASE("WorkflowEngine: resources are in use exactly while the workflow is not terminal") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("BLOCKS", "{}", {"cluster:c1", "volume:v1"});
  REQUIRE(id.ok());
  f.gate.await_waiters(1);
  CHECK(*f.engine->resource_in_use("cluster:c1"));
  CHECK(*f.engine->resource_in_use("volume:v1"));
  CHECK_FALSE(*f.engine->resource_in_use("cluster:c2"));
  f.gate.open();
  f.wait(*id);
  CHECK_FALSE(*f.engine->resource_in_use("cluster:c1"));
}

TEST_CASE("WorkflowEngine: progress is visible at once but persisted at a limited rate") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  auto env = std::make_shared<ManualEnv>();
  f.engine = std::make_unique<WorkflowEngine>(*f.store, EngineOptions{8, 2, 500ms, env});
  Gate reported;
  REQUIRE(f.engine
              ->register_type({"PROGRESS",
                               {{"copy",
                                 [&](StepContext& c) {
                                   for (int i = 1; i <= 100; ++i)
                                     c.report_progress({i, "copy", std::uint64_t(i), 100, 1});
                                   env->advance(600ms);
                                   c.report_progress({100, "copy", 100, 100, 1});
                                   if (!f.gate.wait(c)) return Status::Cancelled("stopped");
                                   return Status::Ok();
                                 }}}})
              .ok());
  REQUIRE(f.engine->start().ok());
  auto id = f.engine->submit("PROGRESS", "{}");
  REQUIRE(id.ok());
  f.gate.await_waiters(1);
  auto w = f.engine->get(*id);
  REQUIRE(w.ok());
  CHECK(w->progress.percent == 100);
  CHECK(w->progress.bytes_done == 100);
  // The first report persisted (the interval had elapsed since start), then none for the next
  // 99, then one after the clock moved: 2 progress writes, not 101.
  std::int64_t persisted = -1;
  REQUIRE(f.store
              ->read([&](Txn& t) -> Status {
                auto r = t.query_one("SELECT bytes_done FROM workflows WHERE id = ?", {*id});
                persisted = (*r)->int64(0);
                return Status::Ok();
              })
              .ok());
  CHECK(persisted == 100);
  f.gate.open();
  f.wait(*id);
}

TEST_CASE("WorkflowEngine: 64 submitters never push more than 4 workflows past admission") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.max_running_workflows = 4;
  o.threads = 4;
  std::atomic<int> max_seen{0};
  std::atomic<bool> violated{false};
  f.engine = std::make_unique<WorkflowEngine>(*f.store, o);
  REQUIRE(f.engine
              ->register_type({"SHORT",
                               {{"work",
                                 [&](StepContext&) {
                                   // Checked from inside: what the store holds right now.
                                   auto n = f.engine->active_count();
                                   if (n.ok()) {
                                     int v = *n;
                                     int m = max_seen.load();
                                     while (v > m && !max_seen.compare_exchange_weak(m, v)) {
                                     }
                                     if (v > 4) violated = true;
                                   }
                                   std::this_thread::sleep_for(1ms);
                                   return Status::Ok();
                                 }}}})
              .ok());
  REQUIRE(f.engine->start().ok());
  std::atomic<bool> done{false};
  std::thread monitor([&] {
    while (!done) {
      auto n = f.engine->active_count();
      if (n.ok() && *n > 4) violated = true;
    }
  });
  std::atomic<int> accepted{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  std::mutex ids_mu;
  std::vector<std::string> ids;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto r = f.engine->submit("SHORT", "{}");
        if (r.ok()) {
          ++accepted;
          std::lock_guard l(ids_mu);
          ids.push_back(*r);
        } else if (r.status().code() == Code::kResourceExhausted) {
          ++refused;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& id : ids) CHECK(f.wait(id).state == WorkflowState::kCompleted);
  done = true;
  monitor.join();
  CHECK_FALSE(violated);
  CHECK(other == 0);
  CHECK(accepted + refused == 64 * 20);
  CHECK(accepted > 0);
  CHECK(refused > 0);
  CHECK(max_seen <= 4);
  std::int64_t counter = -1;
  REQUIRE(f.store
              ->read([&](Txn& t) -> Status {
                counter = (*t.query_one("SELECT value FROM workflow_counters"))->int64(0);
                return Status::Ok();
              })
              .ok());
  CHECK(counter == 0);  // the admission counter agrees with the states
  auto page = f.engine->list({1000, "", std::nullopt, ""});
  REQUIRE(page.ok());
  CHECK(static_cast<int>(page->workflows.size()) == std::min(accepted.load(), 1000));
}

TEST_CASE("WorkflowEngine: a parked step gives its thread back and runs again when woken") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  EngineOptions o;
  o.threads = 1;
  f.make_engine(o);
  auto parked = f.engine->submit("PARKS", "{}");
  REQUIRE(parked.ok());
  f.await_log(1);
  // The only thread is free: another workflow runs to its end meanwhile.
  auto other = f.engine->submit("TWO_STEPS", "{}");
  REQUIRE(other.ok());
  CHECK(f.wait(*other).state == WorkflowState::kCompleted);
  auto w = f.engine->get(*parked);
  REQUIRE(w.ok());
  CHECK(w->state == WorkflowState::kRunning);
  f.engine->wake(*parked);
  f.await_log(4);
  f.engine->wake(*parked);
  CHECK(f.wait(*parked).state == WorkflowState::kCompleted);
  CHECK(f.log ==
        std::vector<std::string>{"run 0", "first", "second:thing-1", "run 1", "run 2", "after"});
  // Parking is not a new attempt of the step.
  CHECK(f.attempts(*parked, 0) == 1);
  f.engine->wake("not-a-workflow");  // nothing to wake: no effect
}

TEST_CASE("WorkflowEngine: a parked step runs again by itself when its time is up") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.park_for = 20ms;
  f.parks_left = 3;
  f.make_engine();
  auto id = f.engine->submit("PARKS", "{}");
  REQUIRE(id.ok());
  CHECK(f.wait(*id).state == WorkflowState::kCompleted);
  INFO(f.log.size());
  CHECK(f.log == std::vector<std::string>{"run 0", "run 1", "run 2", "run 3", "after"});
}

TEST_CASE("WorkflowEngine: cancelling a parked workflow wakes it, and it compensates") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("PARKS", "{}");
  REQUIRE(id.ok());
  f.await_log(1);
  REQUIRE(f.engine->cancel(*id).ok());
  Workflow w = f.wait(*id);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(f.log == std::vector<std::string>{"run 0", "undo wait outside"});
}

TEST_CASE("WorkflowEngine: a workflow parked at shutdown resumes its step at the next start") {
  DMS_FOR_EACH_STORE(kind);
  Fixture f(kind);
  f.make_engine();
  auto id = f.engine->submit("PARKS", "{}");
  REQUIRE(id.ok());
  f.await_log(1);
  f.engine->stop();
  f.reopen_store();
  f.parks_left = 1;
  f.make_engine();
  CHECK(f.wait(*id).state == WorkflowState::kCompleted);
  // It runs again from its checkpoint, as after a crash.
  CHECK(f.log == std::vector<std::string>{"run 0", "run 1 resumed", "after"});
}
