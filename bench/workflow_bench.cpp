// Durable submissions per second (1 and 16 submitters) and list() latency with 100,000
// workflows stored. Every acknowledged submission is committed with synchronous=FULL.
//
//   workflow_bench [DIR]        DIR must be on the disk to measure (default: /var/tmp)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"

using namespace dmscore;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void submissions(const std::string& dir, int submitters, int total) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto store = Store::open(dir + "/dms.db");
  if (!store.ok()) std::abort();
  EngineOptions o;
  o.max_running_workflows = 10000;
  o.threads = 4;
  WorkflowEngine engine(**store, o);
  (void)engine.register_type({"NOOP", {{"noop", [](StepContext&) { return Status::Ok(); }}}});
  (void)engine.start();
  std::atomic<int> acked{0}, refused{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < submitters; ++s) {
    threads.emplace_back([&] {
      for (int i = 0; i < total / submitters; ++i) {
        auto r = engine.submit("NOOP", R"({"src":{"snapId":"x"}})");
        if (r.ok())
          ++acked;
        else
          ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = seconds_since(t0);
  std::printf(
      "submit  submitters=%-3d acknowledged=%-6d refused=%-4d %8.0f/s  (commits %llu in %llu "
      "fsync'd batches)\n",
      submitters, acked.load(), refused.load(), acked / secs,
      static_cast<unsigned long long>((*store)->commits()),
      static_cast<unsigned long long>((*store)->commit_batches()));
  engine.stop();
}

void list_latency(const std::string& dir, int stored) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto store = Store::open(dir + "/dms.db");
  if (!store.ok()) std::abort();
  const char* states[] = {"COMPLETED", "FAILED", "CANCELLED", "COMPLETED"};
  for (int base = 0; base < stored; base += 10000) {
    (void)(*store)->transact([&](Txn& t) -> Status {
      for (int i = base; i < std::min(stored, base + 10000); ++i) {
        char id[40];
        std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
        auto r = t.exec(
            "INSERT INTO workflows (id, type, state, created_at, started_at, ended_at, request, "
            "result) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            {std::string(id), std::string(i % 3 ? "THICK_CLONE_VOLUME" : "ATTACH_CLUSTER"),
             std::string(states[i % 4]), std::int64_t{1700000000000 + i},
             std::int64_t{1700000000000 + i}, std::int64_t{1700000000500 + i},
             std::string(
                 R"({"src":{"snapId":"8d3f...","projectName":"p1","clusterId":"c"},"dst":{"name":"copy"}})"),
             std::string(R"({"volumeId":"v"})")});
        if (!r.ok()) return r.status();
      }
      return Status::Ok();
    });
  }
  WorkflowEngine engine(**store, {});
  (void)engine.start();
  auto measure = [&](const char* what, ListWorkflowsRequest req, bool deep) {
    if (deep) {  // page to the middle first, then measure from there
      for (int i = 0; i < 500; ++i) req.page_token = engine.list(req)->next_page_token;
    }
    std::vector<double> us;
    for (int i = 0; i < 300; ++i) {
      auto t0 = Clock::now();
      auto page = engine.list(req);
      us.push_back(seconds_since(t0) * 1e6);
      if (!page.ok() || page->workflows.size() != static_cast<std::size_t>(req.page_size))
        std::abort();
    }
    std::sort(us.begin(), us.end());
    std::printf("list    %-34s stored=%d page=%d  p50 %7.0f us  p99 %7.0f us\n", what, stored,
                req.page_size, us[us.size() / 2], us[us.size() * 99 / 100]);
  };
  measure("first page", {100, "", std::nullopt, ""}, false);
  measure("page 500 (token)", {100, "", std::nullopt, ""}, true);
  measure("state=FAILED", {100, "", WorkflowState::kFailed, ""}, false);
  measure("type=ATTACH_CLUSTER", {100, "", std::nullopt, "ATTACH_CLUSTER"}, false);
  engine.stop();
}

}  // namespace

int main(int argc, char** argv) {
  std::string base = argc > 1 ? argv[1] : "/var/tmp";
  std::string dir = base + "/dmscore-workflow-bench-" + std::to_string(getpid());
  submissions(dir, 1, 3000);
  submissions(dir, 16, 9600);
  list_latency(dir, 100000);
  fs::remove_all(dir);
}
