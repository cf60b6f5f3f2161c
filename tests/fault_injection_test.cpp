// A full or failing disk ends a workflow cleanly: an Env makes chosen writes fail with ENOSPC or
// EIO (the store's database through its file shim, volume data through the data path), as
// leveldb's fault-injection Env does, and the workflow ends FAILED with the right code after
// its compensation freed what it made, never left RUNNING.

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <mutex>

#include "service_fixture.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::Fixture;
using dmscore::testing::result_field;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

// The real clocks and randomness, and a rule deciding the fate of every file write and sync.
class FaultEnv final : public Env {
 public:
  using Rule = std::function<int(FileOp, std::string_view)>;

  SystemTime now() override { return real_->now(); }
  SteadyTime steady_now() override { return real_->steady_now(); }
  void sleep_for(std::chrono::nanoseconds d) override { real_->sleep_for(d); }
  void random_bytes(void* buf, std::size_t len) override { real_->random_bytes(buf, len); }
  bool injects_file_faults() const override { return true; }
  int file_fault(FileOp op, std::string_view path) override {
    std::lock_guard lock(mu_);
    if (!rule_) return 0;
    int e = rule_(op, path);
    if (e != 0) ++injected_;
    return e;
  }

  void set(Rule rule) {
    std::lock_guard lock(mu_);
    rule_ = std::move(rule);
  }
  int injected() {
    std::lock_guard lock(mu_);
    return injected_;
  }

 private:
  std::shared_ptr<Env> real_ = Env::Default();
  std::mutex mu_;
  Rule rule_;
  int injected_ = 0;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

struct Faulty {
  std::shared_ptr<FaultEnv> env = std::make_shared<FaultEnv>();
  std::unique_ptr<Fixture> f;
  Snapshot sn;

  // `retry_budget`: how long the store's writes are retried.
  explicit Faulty(std::chrono::milliseconds retry_budget = 300ms) {
    Options o;
    o.env = env;
    o.store_retry_budget = retry_budget;
    o.copy_chunk_bytes = 1 * kMiB;
    o.copy_rate_limit_bytes_per_sec = 32 * kMiB;  // a 32 MiB copy takes about a second
    f = std::make_unique<Fixture>(o);
    f->attach_two();
    sn = f->source(32 * kMiB, 32).second;
  }

  // The rules a test sets capture its locals, which are gone by the time the service closes
  // (and writes): no rule outlives the test's body.
  ~Faulty() { env->set(nullptr); }

  // The volumes on the destination (files, whatever the metadata says).
  int destination_files() {
    int n = 0;
    for (auto& e : fs::directory_iterator(f->tmp / "c2/data"))
      n += e.path().extension() == ".vol" || e.path().extension() == ".tmp";
    return n;
  }

  void wait_for_copy(const WorkflowId& id) {
    for (int i = 0; i < 500 && f->svc->workflows().get(id)->progress.stage != "copy"; ++i)
      std::this_thread::sleep_for(10ms);
    REQUIRE(f->svc->workflows().get(id)->progress.stage == "copy");
  }
};

}  // namespace

TEST_CASE("Faults: ENOSPC on the destination's data ends the clone FAILED, nothing left") {
  Faulty t;
  const std::string dst = t.f->tmp / "c2/data/";
  std::atomic<int> writes{0};
  t.env->set([&](FileOp op, std::string_view path) {
    if (op == FileOp::kWrite && path.rfind(dst, 0) == 0 && ends_with(path, ".vol") && ++writes > 3)
      return ENOSPC;
    return 0;
  });
  auto id = t.f->svc->clones().volume(t.f->clone_req(t.sn, "full"));
  REQUIRE(id.ok());
  Workflow w = t.f->wait(*id);
  INFO(w.msg);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK(w.error_code == "RESOURCE_EXHAUSTED");
  CHECK_THAT(w.msg, Catch::Contains("No space left"));
  CHECK(t.destination_files() == 0);  // compensation freed the partial destination
  CHECK(t.f->svc->volumes().list({ClusterId(t.f->c2), "p2"}, {})->volumes.empty());
}

TEST_CASE("Faults: EIO on the destination's data ends the clone FAILED, nothing left") {
  Faulty t;
  const std::string dst = t.f->tmp / "c2/data/";
  std::atomic<int> writes{0};
  t.env->set([&](FileOp op, std::string_view path) {
    if (op == FileOp::kWrite && path.rfind(dst, 0) == 0 && ends_with(path, ".vol") && ++writes > 5)
      return EIO;
    return 0;
  });
  Workflow w = t.f->wait(*t.f->svc->clones().volume(t.f->clone_req(t.sn, "failing")));
  INFO(w.msg);
  CHECK(w.state == WorkflowState::kFailed);
  CHECK(w.error_code == "UNAVAILABLE");
  CHECK_THAT(w.msg, Catch::Contains("Input/output error"));
  CHECK(t.destination_files() == 0);
}

TEST_CASE("Faults: a full disk under the store mid-workflow: compensation frees space, FAILED") {
  // The store's disk is full while the clone's partial destination exists (the destination is
  // what filled it): every write of dms.db fails until compensation deleted it.
  Faulty t;
  const std::string data_dir = t.f->tmp / "data/";
  const std::string dst = t.f->tmp / "c2/data/";
  std::atomic<bool> full{false};
  t.env->set([&](FileOp, std::string_view path) {
    if (!full || path.rfind(data_dir, 0) != 0) return 0;
    for (auto& e : fs::directory_iterator(dst))
      if (e.path().extension() == ".vol") return ENOSPC;
    return 0;
  });
  auto id = t.f->svc->clones().volume(t.f->clone_req(t.sn, "store-full"));
  REQUIRE(id.ok());
  t.wait_for_copy(*id);
  full = true;
  Workflow w = t.f->wait(*id);
  INFO(w.msg);
  CHECK(w.state == WorkflowState::kFailed);  // not left RUNNING
  CHECK(w.error_code == "RESOURCE_EXHAUSTED");
  CHECK_THAT(w.msg, Catch::Contains("full") || Catch::Contains("No space"));
  CHECK(t.env->injected() > 0);
  CHECK(t.destination_files() == 0);
  // The outcome is durable: a restart shows the same.
  full = false;
  t.f->open(Options{});
  auto after = t.f->svc->workflows().get(*id);
  REQUIRE(after.ok());
  CHECK(after->state == WorkflowState::kFailed);
  CHECK(after->error_code == "RESOURCE_EXHAUSTED");
}

TEST_CASE("Faults: a store write that fails for a moment is retried and the workflow completes") {
  // Six failures in a row must fit in the budget however they fall on the writes (the backoff
  // doubles from 20 ms: the sixth retry comes 1.26 s after the first failure).
  Faulty t(3s);
  const std::string data_dir = t.f->tmp / "data/";
  std::atomic<int> failures{0};
  auto id = t.f->svc->clones().volume(t.f->clone_req(t.sn, "transient"));
  REQUIRE(id.ok());
  t.wait_for_copy(*id);
  // The next six writes of the service's store fail, then space is back.
  t.env->set([&](FileOp op, std::string_view path) {
    if (op == FileOp::kWrite && path.rfind(data_dir, 0) == 0 && failures < 6) {
      ++failures;
      return ENOSPC;
    }
    return 0;
  });
  Workflow w = t.f->wait(*id);
  INFO(w.msg);
  CHECK(failures.load() == 6);
  CHECK(w.state == WorkflowState::kCompleted);
  auto v = t.f->svc->volumes().get({ClusterId(t.f->c2), "p2", result_field(w.result, "volumeId")});
  REQUIRE(v.ok());
  CHECK(dmscore::testing::read_file(v->device_path) ==
        dmscore::testing::read_file(t.f->snapshot_path("c1", t.sn)));
}
