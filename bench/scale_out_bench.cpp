// Scale-out: durable workflow submissions per second with one and with three instances on one
// PostgreSQL store, against one instance on SQLite, all in the same run; and the time another
// instance takes to resume a workflow after the instance running it is killed with SIGKILL
// (p50 and max over --kills kills, with the default 10 s lease and 2 s heartbeat).
//
//   scale_out_bench --postgres URL [--dir DIR] [--total N] [--submitters N] [--kills N]
//
// URL: a PostgreSQL server to create schemas in (scripts/test-postgres.sh start DIR prints one).
// DIR: where the SQLite store goes (default /var/tmp). Instances here are engines with their own
// store connections in this process for the submissions, and child processes (this program
// again) for the kills. The server runs on the same two cores as the instances.
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"

using namespace dmscore;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

std::string pg_value(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  std::string out;
  if (PQstatus(c) == CONNECTION_OK) {
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
      std::fprintf(stderr, "bench: %s", PQerrorMessage(c));
    PQclear(r);
  } else {
    std::fprintf(stderr, "bench: %s", PQerrorMessage(c));
  }
  PQfinish(c);
  return out;
}

// A fresh schema on the server: its URL.
std::string fresh_schema(const std::string& base, const std::string& name) {
  pg_value(base, "DROP SCHEMA IF EXISTS " + name + " CASCADE");
  pg_value(base, "CREATE SCHEMA " + name);
  return base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
         name;
}

WorkflowType noop() {
  return {"NOOP", {{"noop", [](StepContext&) { return Status::Ok(); }}}};
}

struct Result3 {
  double per_second = 0;
  int acked = 0, refused = 0;
};

// `instances` engines on `location`, `submitters` threads spread over them, `total` submissions.
Result3 submissions(const std::string& location, int instances, int submitters, int total) {
  std::vector<std::unique_ptr<Store>> stores;
  std::vector<std::unique_ptr<WorkflowEngine>> engines;
  for (int i = 0; i < instances; ++i) {
    auto s = Store::open(location);
    if (!s.ok()) {
      std::fprintf(stderr, "bench: %s\n", s.status().to_string().c_str());
      std::exit(1);
    }
    stores.push_back(std::move(s).value());
    EngineOptions o;
    o.max_running_workflows = 10000;
    o.threads = 4;
    if (is_postgres_url(location)) o.instance_id = "bench-" + std::to_string(i);
    engines.push_back(std::make_unique<WorkflowEngine>(*stores.back(), o));
    (void)engines.back()->register_type(noop());
    if (Status st = engines.back()->start(); !st.ok()) {
      std::fprintf(stderr, "bench: %s\n", st.to_string().c_str());
      std::exit(1);
    }
  }
  std::atomic<int> acked{0}, refused{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < submitters; ++s) {
    threads.emplace_back([&, s] {
      auto& e = *engines[static_cast<std::size_t>(s % instances)];
      for (int i = 0; i < total / submitters; ++i) {
        if (e.submit("NOOP", R"({"src":{"snapId":"x"}})").ok())
          ++acked;
        else
          ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& e : engines) e->stop();
  return {acked / secs, acked.load(), refused.load()};
}

// ---- takeover: child instances ----

WorkflowType ticks() {
  WorkflowType t{"TICKS", {}};
  t.steps.push_back({"tick", [](StepContext& c) -> Status {
                       int n = c.checkpoint().empty() ? 0 : std::stoi(c.checkpoint());
                       for (;;) {
                         if (c.should_stop()) return Status::Cancelled("stopped");
                         std::this_thread::sleep_for(std::chrono::milliseconds(20));
                         if (Status s = c.save_checkpoint(std::to_string(++n)); !s.ok()) return s;
                       }
                     }});
  return t;
}

int run_instance(const std::string& url, const std::string& id) {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  auto store = Store::open(url);
  if (!store.ok()) return 3;
  EngineOptions o;  // default lease (10 s) and heartbeat (2 s)
  o.instance_id = id;
  o.reach = [](std::vector<std::string>& placed, std::vector<std::string>& reached) {
    placed.push_back("site:t");
    reached.push_back("site:t");
  };
  WorkflowEngine engine(**store, o);
  (void)engine.register_type(ticks());
  if (!engine.start().ok()) return 3;
  int sig = 0;
  sigwait(&sigs, &sig);
  engine.stop();
  return 0;
}

pid_t spawn(const std::string& self, const std::string& url, const std::string& id) {
  pid_t p = ::fork();
  if (p == 0) {
    ::execl(self.c_str(), self.c_str(), "--instance", url.c_str(), id.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return p;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--instance") return run_instance(argv[2], argv[3]);
  std::string postgres, dir = "/var/tmp";
  int total = 8000;
  int submitters = 16, kills = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--postgres")
      postgres = v;
    else if (k == "--dir")
      dir = v;
    else if (k == "--total")
      total = std::stoi(v);
    else if (k == "--submitters")
      submitters = std::stoi(v);
    else if (k == "--kills")
      kills = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (postgres.empty()) {
    std::fprintf(stderr,
                 "usage: scale_out_bench --postgres URL [--dir DIR] [--total N] "
                 "[--submitters N] [--kills N]\n");
    return 2;
  }
  std::printf(
      "durable submissions: %d by %d submitters on a fresh store each, the workflows running "
      "meanwhile (every acknowledged one committed: SQLite synchronous=FULL, PostgreSQL "
      "synchronous_commit=on)\n",
      total, submitters);
  const std::string sqlite_dir = dir + "/dms-scale-out-bench";
  fs::remove_all(sqlite_dir);
  fs::create_directories(sqlite_dir);
  auto sq = submissions(sqlite_dir + "/dms.db", 1, submitters, total);
  auto p1 = submissions(fresh_schema(postgres, "bench_p1"), 1, submitters, total);
  auto p3 = submissions(fresh_schema(postgres, "bench_p3"), 3, submitters, total);
  fs::remove_all(sqlite_dir);
  std::printf("  SQLite, 1 instance      %8.0f /s  (acked %d, refused %d)\n", sq.per_second,
              sq.acked, sq.refused);
  std::printf("  PostgreSQL, 1 instance  %8.0f /s  (acked %d, refused %d)  %.2fx SQLite\n",
              p1.per_second, p1.acked, p1.refused, p1.per_second / sq.per_second);
  std::printf(
      "  PostgreSQL, 3 instances %8.0f /s  (acked %d, refused %d)  %.2fx SQLite, %.2fx "
      "1 instance\n",
      p3.per_second, p3.acked, p3.refused, p3.per_second / sq.per_second,
      p3.per_second / p1.per_second);
  std::fflush(stdout);

  if (kills <= 0) return 0;
  const std::string url = fresh_schema(postgres, "bench_takeover");
  const std::string self = fs::canonical("/proc/self/exe").string();
  std::vector<pid_t> pids = {spawn(self, url, "ta"), spawn(self, url, "tb")};
  std::vector<std::string> ids = {"ta", "tb"};
  {
    auto store = Store::open(url);
    if (!store.ok()) return 1;
    EngineOptions o;
    o.instance_id = "bench-submitter";
    o.threads = 1;
    // It runs nothing itself: a placed resource it does not reach.
    o.reach = [](std::vector<std::string>& placed, std::vector<std::string>&) {
      placed.push_back("site:t");
    };
    WorkflowEngine e(**store, o);
    (void)e.register_type(ticks());
    (void)e.start();
    auto id = e.submit("TICKS", "{}", {"site:t"});
    if (!id.ok()) return 1;
    e.stop();
    std::printf("takeover after SIGKILL (lease 10 s, heartbeat 2 s), workflow %s\n", id->c_str());
    std::vector<double> took;
    const std::string q =
        "SELECT owner || ' ' || (SELECT checkpoint FROM workflow_steps WHERE "
        "workflow_id = w.id AND idx = 0) FROM workflows w WHERE id = '" +
        *id + "'";
    for (int k = 0; k < kills; ++k) {
      // Wait until someone runs it and has committed ticks.
      std::string owner, ckpt;
      for (int t = 0; t < 3000; ++t) {
        auto v = pg_value(url, q);
        auto sp = v.find(' ');
        owner = sp == std::string::npos ? "" : v.substr(0, sp);
        ckpt = sp == std::string::npos ? "" : v.substr(sp + 1);
        if (!owner.empty() && owner != "bench-submitter" && !ckpt.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      const std::size_t victim = owner == ids[0] ? 0 : 1;
      ::kill(pids[victim], SIGKILL);
      ::waitpid(pids[victim], nullptr, 0);
      const auto t0 = Clock::now();
      const std::string ckpt_at_kill = ckpt;
      // Resumed: another owner, whose run has committed a tick past the one at the kill.
      for (;;) {
        auto v = pg_value(url, q);
        auto sp = v.find(' ');
        const std::string o = sp == std::string::npos ? "" : v.substr(0, sp);
        const std::string c = sp == std::string::npos ? "" : v.substr(sp + 1);
        if (o != owner && !c.empty() && c != ckpt_at_kill) break;
        if (Clock::now() - t0 > std::chrono::seconds(120)) {
          std::fprintf(stderr, "bench: no takeover within 120 s\n");
          return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      took.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      std::printf("  kill %2d: %s killed, resumed by the other after %.2f s\n", k + 1,
                  owner.c_str(), took.back());
      std::fflush(stdout);
      pids[victim] = spawn(self, url, ids[victim]);  // a replacement joins
    }
    std::printf("  takeover p50 %.2f s, max %.2f s over %d kills\n", percentile(took, 0.5),
                *std::max_element(took.begin(), took.end()), kills);
  }
  for (auto p : pids) {
    ::kill(p, SIGTERM);
    ::waitpid(p, nullptr, 0);
  }
  pg_value(postgres, "DROP SCHEMA bench_p1 CASCADE");
  pg_value(postgres, "DROP SCHEMA bench_p3 CASCADE");
  pg_value(postgres, "DROP SCHEMA bench_takeover CASCADE");
  return 0;
}
