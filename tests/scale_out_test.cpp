// Scale-out: several instances of the service on one PostgreSQL store. Engines in this process,
// each with its own store connections (as separate instances have), for admission, placement,
// holds and cancels; real processes, stopped with SIGSTOP and killed with SIGKILL, for leases,
// takeover and fencing (scale_out_child); and three `dmsctl serve` processes for a thick clone
// taken over mid-copy and a logout seen everywhere.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "dmscore/service.hpp"
#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"
#include "pg_test_db.hpp"
#include "process.hpp"
#include "step_gate.hpp"
#include "test_support.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::PgTestDb;
using dmscore::testing::Process;
using dmscore::testing::TempDir;

namespace {

#define NEED_POSTGRES()                                                         \
  if (!::dmscore::testing::postgres_base_url()) {                               \
    if (::dmscore::testing::postgres_required())                                \
      FAIL("DMSCORE_REQUIRE_POSTGRES is set but DMSCORE_TEST_POSTGRES is not"); \
    WARN("no test PostgreSQL (DMSCORE_TEST_POSTGRES): skipped");                \
    return;                                                                     \
  }

using Gate = dmscore::testing::StepGate;

// One instance: its own store connections and engine.
struct Instance {
  std::unique_ptr<Store> store;
  std::unique_ptr<WorkflowEngine> engine;
};

struct Cluster3 {
  PgTestDb db;
  Gate gate;
  std::mutex mu;
  std::map<std::string, std::string> ran_on;  // workflow -> instance that ran its step
  std::vector<Instance> instances;

  void add(const std::string& id, int max_running, std::vector<std::string> reached = {"x"}) {
    Instance in;
    auto s = Store::open(db.url());
    REQUIRE(s.ok());
    in.store = std::move(s).value();
    EngineOptions o;
    o.instance_id = id;
    o.max_running_workflows = max_running;
    o.threads = 8;
    o.heartbeat_interval = 50ms;
    o.lease_ttl = 1000ms;
    o.claim_interval = 20ms;
    o.reach = [reached](std::vector<std::string>& placed, std::vector<std::string>& got) {
      placed.push_back("cluster:x");
      for (const auto& r : reached) got.push_back("cluster:" + r);
    };
    in.engine = std::make_unique<WorkflowEngine>(*in.store, o);
    REQUIRE(in.engine
                ->register_type({"BLOCK",
                                 {{"wait",
                                   [this, id](StepContext& c) {
                                     {
                                       std::lock_guard l(mu);
                                       ran_on[c.workflow_id()] = id;
                                     }
                                     if (!gate.wait(c)) return Status::Cancelled("stopped");
                                     return Status::Ok();
                                   },
                                   [](StepContext&) { return Status::Ok(); }}}})
                .ok());
    REQUIRE(in.engine->start().ok());
    instances.push_back(std::move(in));
  }

  std::int64_t active() {
    std::int64_t n = -1;
    (void)instances[0].store->read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT COUNT(*) FROM workflows WHERE state IN ('PENDING', 'RUNNING')");
      if (r.ok()) n = (*r)->int64(0);
      return Status::Ok();
    });
    return n;
  }

  // Waits for workflow `id` to end (through the first instance); REQUIREs it ended `state`.
  void await(const std::string& id, WorkflowState state) {
    auto w = instances[0].engine->wait(id, 20s);
    REQUIRE(w.ok());
    CHECK(w->state == state);
  }

  std::string owner(const std::string& id) {
    std::string o;
    (void)instances[0].store->read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT owner FROM workflows WHERE id = ?", {id});
      if (r.ok() && *r) o = (*r)->text(0);
      return Status::Ok();
    });
    return o;
  }

  ~Cluster3() {
    gate.open();
    for (auto& in : instances) in.engine->stop();
  }
};

}  // namespace

TEST_CASE("Scale-out: 64 submissions racing over three instances never over-admit") {
  NEED_POSTGRES();
  Cluster3 c;
  constexpr int kMax = 8;
  for (const char* id : {"a", "b", "c"}) c.add(id, kMax);
  std::atomic<int> admitted{0}, refused{0}, other{0};
  std::atomic<bool> done{false};
  std::atomic<std::int64_t> peak{0};
  std::thread sampler([&] {
    while (!done) {
      peak = std::max<std::int64_t>(peak, c.active());
      std::this_thread::sleep_for(2ms);
    }
  });
  std::vector<std::thread> submitters;
  std::vector<std::string> ids(64);
  for (int i = 0; i < 64; ++i) {
    submitters.emplace_back([&, i] {
      auto id = c.instances[static_cast<std::size_t>(i % 3)].engine->submit("BLOCK", "{}");
      if (id.ok()) {
        ++admitted;
        ids[static_cast<std::size_t>(i)] = *id;
      } else if (id.status().code() == Code::kResourceExhausted) {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : submitters) t.join();
  CHECK(admitted == kMax);
  CHECK(refused == 64 - kMax);
  CHECK(other == 0);
  CHECK(c.active() == kMax);
  // The admitted ones are claimed and run, spread over the instances.
  auto ran = [&] {
    std::lock_guard l(c.mu);
    return c.ran_on.size();
  };
  for (int i = 0; i < 500 && ran() < static_cast<std::size_t>(kMax); ++i)
    std::this_thread::sleep_for(10ms);
  {
    std::lock_guard l(c.mu);
    CHECK(c.ran_on.size() == static_cast<std::size_t>(kMax));
  }
  c.gate.open();
  for (const auto& id : ids)
    if (!id.empty()) c.await(id, WorkflowState::kCompleted);
  done = true;
  sampler.join();
  CHECK(peak <= kMax);
  CHECK(c.active() == 0);
  // Room again: a new submission through any instance is admitted.
  CHECK(c.instances[2].engine->submit("BLOCK", "{}").ok());
}

TEST_CASE("Scale-out: a workflow runs only on an instance that reaches its placed resources") {
  NEED_POSTGRES();
  Cluster3 c;
  c.add("reaches", 100, {"x"});
  c.add("blind-1", 100, {});
  c.add("blind-2", 100, {});
  c.gate.open();
  std::vector<std::string> placed, free;
  for (int i = 0; i < 6; ++i) {
    auto id = c.instances[static_cast<std::size_t>(1 + i % 2)].engine->submit("BLOCK", "{}",
                                                                              {"cluster:x"});
    REQUIRE(id.ok());
    placed.push_back(*id);
    auto f = c.instances[static_cast<std::size_t>(1 + i % 2)].engine->submit(
        "BLOCK", "{}", {"volume:v" + std::to_string(i)});
    REQUIRE(f.ok());
    free.push_back(*f);
  }
  for (const auto& id : placed) {
    c.await(id, WorkflowState::kCompleted);
    std::lock_guard l(c.mu);
    CHECK(c.ran_on[id] == "reaches");
  }
  for (const auto& id : free) c.await(id, WorkflowState::kCompleted);
}

TEST_CASE("Scale-out: a hold on one instance refuses submissions and holds on the others") {
  NEED_POSTGRES();
  Cluster3 c;
  c.add("a", 100);
  c.add("b", 100);
  auto hold = c.instances[0].engine->claim({"volume:v1"}, "deleted");
  REQUIRE(hold.ok());
  auto refused = c.instances[1].engine->submit("BLOCK", "{}", {"volume:v1"});
  CHECK(refused.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(refused.status().message(), Catch::Contains("volume v1 is being deleted"));
  CHECK(c.instances[1].engine->claim({"volume:v1"}, "moved").status().code() ==
        Code::kFailedPrecondition);
  *hold = WorkflowEngine::Claim();  // released
  auto id = c.instances[1].engine->submit("BLOCK", "{}", {"volume:v1"});
  REQUIRE(id.ok());
  // And a workflow using it refuses holds everywhere.
  CHECK(c.instances[0].engine->claim({"volume:v1"}, "deleted").status().code() ==
        Code::kFailedPrecondition);
  c.gate.open();
  c.await(*id, WorkflowState::kCompleted);
}

TEST_CASE("Scale-out: a cancel asked through another instance stops the run, which compensates") {
  NEED_POSTGRES();
  Cluster3 c;
  c.add("runner", 100, {"x"});
  c.add("other", 100, {});
  auto id = c.instances[1].engine->submit("BLOCK", "{}", {"cluster:x"});
  REQUIRE(id.ok());
  for (int i = 0; i < 500 && c.owner(*id) != "runner"; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(c.owner(*id) == "runner");
  REQUIRE(c.instances[1].engine->cancel(*id).ok());
  c.await(*id, WorkflowState::kCancelled);
}

TEST_CASE("Scale-out: readiness follows the lease, and instances lists every one with its lease") {
  NEED_POSTGRES();
  Cluster3 c;
  c.add("a", 10);
  c.add("b", 10);
  CHECK(c.instances[0].engine->ready());
  auto list = c.instances[1].engine->instances();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].id == "a");
  CHECK((*list)[0].alive);
  CHECK((*list)[0].lease_until > (*list)[0].heartbeat_at);
  // An engine not yet started is not ready; a stopped one gives its lease up at once.
  c.instances[0].engine->stop();
  CHECK_FALSE(c.instances[0].engine->ready());
  list = c.instances[1].engine->instances();
  REQUIRE(list.ok());
  CHECK_FALSE((*list)[0].alive);
  CHECK((*list)[1].alive);
  // Bad instance options name their field.
  EngineOptions bad;
  bad.instance_id = "no spaces";
  CHECK_THAT(validate(bad).message(), Catch::Contains("instance_id"));
  bad.instance_id = "ok";
  bad.heartbeat_interval = 2000ms;
  bad.lease_ttl = 3000ms;
  CHECK_THAT(validate(bad).message(), Catch::Contains("lease_ttl"));
}

namespace {

// Lines of a child's output file that start with `prefix`.
std::vector<std::string> lines_of(const std::string& path, const std::string& prefix) {
  std::istringstream in(dmscore::testing::read_file(path));
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);)
    if (l.rfind(prefix, 0) == 0) out.push_back(l);
  return out;
}

// The n of "<WORD> <instance> <workflow> <n>" lines of `instance`.
std::vector<int> ticks_of(const std::string& path, const std::string& word,
                          const std::string& instance) {
  std::vector<int> out;
  for (const auto& l : lines_of(path, word + " " + instance + " ")) {
    std::istringstream in(l);
    std::string w, i, wf;
    int n = 0;
    in >> w >> i >> wf >> n;
    out.push_back(n);
  }
  return out;
}

bool await_lines(const std::string& path, const std::string& prefix, std::size_t n,
                 std::chrono::milliseconds within) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    if (lines_of(path, prefix).size() >= n) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::string submit_ticks(const std::string& url, const TempDir& dir, int ticks, int tick_ms) {
  Process p(
      {DMSCORE_SCALE_OUT_CHILD, "submit", url, "1", std::to_string(ticks), std::to_string(tick_ms)},
      {}, dir / "submit.log");
  REQUIRE(p.wait(30s) == std::optional<int>(0));
  auto ids = lines_of(dir / "submit.log", "ID ");
  REQUIRE(!ids.empty());
  return ids.back().substr(3);
}

std::string workflow_state(const std::string& url, const std::string& id) {
  return dmscore::testing::pg_value(url, "SELECT state FROM workflows WHERE id = '" + id + "'");
}

}  // namespace

TEST_CASE("Scale-out: an instance stopped with SIGSTOP cannot commit after its lease is taken") {
  NEED_POSTGRES();
  PgTestDb db;
  TempDir dir;
  {
    auto s = Store::open(db.url());
    REQUIRE(s.ok());
  }
  const std::string a_log = dir / "a.log", b_log = dir / "b.log";
  Process a({DMSCORE_SCALE_OUT_CHILD, "run", db.url(), "a", "1500", "250"}, {}, a_log);
  REQUIRE(await_lines(a_log, "READY a", 1, 30s));
  const std::string wf = submit_ticks(db.url(), dir, 80, 50);
  // A runs it: some ticks commit.
  REQUIRE(await_lines(a_log, "COMMITTED a", 5, 30s));
  a.signal(SIGSTOP);
  Process b({DMSCORE_SCALE_OUT_CHILD, "run", db.url(), "b", "1500", "250"}, {}, b_log);
  // B takes it over once A's lease ran out, and goes on from A's last committed tick.
  REQUIRE(await_lines(b_log, "COMMITTED b", 3, 30s));
  const auto resumed = ticks_of(b_log, "RESUMED", "b");
  REQUIRE(resumed.size() == 1);
  const int taken_at = resumed[0];
  CHECK(taken_at >= 5);
  // A wakes up, still running the step it was in: its next checkpoint is refused.
  a.signal(SIGCONT);
  REQUIRE(await_lines(a_log, "FENCED a", 1, 30s));
  CHECK_THAT(lines_of(a_log, "FENCED a")[0], Catch::Contains("no longer holds"));
  // B finishes; A never committed a tick past the one B took over from.
  for (int i = 0; i < 1500 && workflow_state(db.url(), wf) != "COMPLETED"; ++i)
    std::this_thread::sleep_for(20ms);
  CHECK(workflow_state(db.url(), wf) == "COMPLETED");
  for (int n : ticks_of(a_log, "COMMITTED", "a")) CHECK(n <= taken_at);
  const auto b_ticks = ticks_of(b_log, "COMMITTED", "b");
  REQUIRE(!b_ticks.empty());
  CHECK(b_ticks.front() == taken_at + 1);
  CHECK(b_ticks.back() == 80);
  // A undid nothing of what is now B's (the step's undo would say UNDO); it still serves.
  CHECK(lines_of(a_log, "UNDO").empty());
  CHECK(a.running());
  a.stop(SIGTERM);
  b.stop(SIGTERM);
}

TEST_CASE(
    "Scale-out: kill -9 of the running instance: another resumes the workflow from its "
    "checkpoint within the lease") {
  NEED_POSTGRES();
  PgTestDb db;
  TempDir dir;
  {
    auto s = Store::open(db.url());
    REQUIRE(s.ok());
  }
  const std::string a_log = dir / "a.log", b_log = dir / "b.log", n_log = dir / "n.log";
  Process a({DMSCORE_SCALE_OUT_CHILD, "run", db.url(), "a", "2000", "250"}, {}, a_log);
  REQUIRE(await_lines(a_log, "READY a", 1, 30s));
  // An instance that does not reach the workflow's site never takes it.
  Process blind({DMSCORE_SCALE_OUT_CHILD, "run", db.url(), "n", "2000", "250", "noreach"}, {},
                n_log);
  REQUIRE(await_lines(n_log, "READY n", 1, 30s));
  const std::string wf = submit_ticks(db.url(), dir, 60, 50);
  REQUIRE(await_lines(a_log, "COMMITTED a", 5, 30s));
  Process b({DMSCORE_SCALE_OUT_CHILD, "run", db.url(), "b", "2000", "250"}, {}, b_log);
  REQUIRE(await_lines(b_log, "READY b", 1, 30s));
  a.stop(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  const int last_a = ticks_of(a_log, "COMMITTED", "a").back();
  REQUIRE(await_lines(b_log, "COMMITTED b", 1, 30s));
  const auto took = std::chrono::steady_clock::now() - killed;
  CHECK(took < 30s);
  const auto resumed = ticks_of(b_log, "RESUMED", "b");
  REQUIRE(resumed.size() == 1);
  // From the checkpoint, not from 0 (A may have committed one more tick than it printed).
  CHECK(resumed[0] >= last_a);
  CHECK(resumed[0] <= last_a + 1);
  for (int i = 0; i < 1500 && workflow_state(db.url(), wf) != "COMPLETED"; ++i)
    std::this_thread::sleep_for(20ms);
  CHECK(workflow_state(db.url(), wf) == "COMPLETED");
  CHECK(lines_of(n_log, "RESUMED").empty());
  b.stop(SIGTERM);
  blind.stop(SIGTERM);
}

namespace {

// A store key file: 32 random bytes, mode 0600.
std::string make_store_key(const TempDir& dir, const std::string& name = "store.key") {
  const std::string path = dir / name;
  std::string key(32, '\0');
  std::random_device rd;
  for (auto& ch : key) ch = static_cast<char>(rd());
  dmscore::testing::write_file(path, key);
  ::chmod(path.c_str(), 0600);
  return path;
}

std::unique_ptr<Service> open_instance(const TempDir& dir, const std::string& name,
                                       const std::string& url, const std::string& key_file) {
  Options o;
  o.store = url;
  o.store_key_file = key_file;
  o.admin_password = "scale-out-admin-pw";
  o.instance_lease = 1500ms;
  o.instance_heartbeat = 100ms;
  o.health_check_interval = 0ms;
  return dmscore::testing::open_test_service(dir / name, o);
}

}  // namespace

TEST_CASE("Scale-out: services on one store share users, tokens, clusters and the key pair") {
  NEED_POSTGRES();
  PgTestDb db;
  TempDir dir;
  const std::string key = make_store_key(dir);
  auto a = open_instance(dir, "a", db.url(), key);
  auto b = open_instance(dir, "b", db.url(), key);
  CHECK(a->ready());
  CHECK(a->instance_id() != b->instance_id());
  auto list = b->instances();
  REQUIRE(list.ok());
  CHECK(list->size() == 2);
  // One identity, kept only in the store: nothing of it in the data directories.
  CHECK(a->service_credentials().pub_key_id == b->service_credentials().pub_key_id);
  CHECK_FALSE(std::filesystem::exists(dir / "a/identity"));
  CHECK_FALSE(std::filesystem::exists(dir / "a/dms.db"));
  CHECK(dmscore::testing::read_file(dir / "a/instance-id").size() > 4);
  const std::string sealed = db.value("SELECT sealed FROM service_keys WHERE slot = 'current'");
  CHECK(sealed.rfind("v1.", 0) == 0);
  CHECK(sealed.find("PRIVATE KEY") == std::string::npos);

  // A token from one instance passes on the other; a logout on one revokes it on both at once.
  auto login = a->auth().login("admin", "scale-out-admin-pw", "127.0.0.1");
  REQUIRE(login.ok());
  CHECK(b->auth().verify(login->id_token).ok());
  REQUIRE(b->auth().verify(login->id_token).ok());  // cached on b now
  REQUIRE(a->auth().logout(login->id_token).ok());
  CHECK(b->auth().verify(login->id_token).status().code() == Code::kUnauthenticated);
  CHECK(a->auth().verify(login->id_token).status().code() == Code::kUnauthenticated);
  // A user made through b logs in through a.
  REQUIRE(b->auth().create_user("ops", "ops-password-1", Role::kViewer).ok());
  CHECK(a->auth().login("ops", "ops-password-1", "127.0.0.1").ok());

  // A cluster attached through one is listed by the other at once.
  REQUIRE(b->clusters().list().ok());  // b's cluster list is cached now
  auto attach = a->clusters().attach({"file://" + (dir / "c1"), ""});
  REQUIRE(attach.ok());
  const std::string cid =
      dmscore::testing::attached_cluster_id(dmscore::testing::wait_workflow(*a, *attach));
  // The attach ran where it was asked (the folder is that instance's to check and open).
  CHECK(db.value("SELECT owner FROM workflows WHERE id = '" + attach->str() + "'") ==
        a->instance_id());
  auto seen = b->clusters().list();
  REQUIRE(seen.ok());
  REQUIRE(seen->size() == 1);
  CHECK(seen->front().id == cid);

  // A key rotation through one is what the other hands out next.
  const std::string before = b->service_credentials().pub_key_id;
  REQUIRE(a->identity().rotate().ok());
  CHECK(b->service_credentials().pub_key_id != before);
  CHECK(b->service_credentials().pub_key_id == a->service_credentials().pub_key_id);
  CHECK(b->identity().keys().size() == 2);
  REQUIRE(b->identity().confirm_rotation().ok());
  CHECK(a->identity().keys().size() == 1);

  // When the folder's holder goes and an empty directory stands where the cluster was (a mount
  // point not mounted), the other instance does not make a new cluster of it.
  a.reset();
  std::filesystem::rename(dir / "c1", dir / "c1-away");
  std::filesystem::create_directories(dir / "c1");
  std::this_thread::sleep_for(600ms);  // several heartbeats of b
  CHECK(std::filesystem::is_empty(dir / "c1"));
  CHECK(db.value("SELECT COUNT(*) FROM instance_reach WHERE resource = 'cluster:" + cid + "'") ==
        "0");
  // Put back, the folder is taken up by b at a heartbeat.
  std::filesystem::remove(dir / "c1");
  std::filesystem::rename(dir / "c1-away", dir / "c1");
  std::string holder;
  for (int i = 0; i < 100 && holder.empty(); ++i) {
    holder = db.value("SELECT instance_id FROM instance_reach WHERE resource = 'cluster:" + cid +
                      "' AND instance_id = '" + b->instance_id() + "'");
    if (holder.empty()) std::this_thread::sleep_for(50ms);
  }
  CHECK(holder == b->instance_id());
}

TEST_CASE("Scale-out: the store key file must be private, long enough and the same everywhere") {
  NEED_POSTGRES();
  PgTestDb db;
  TempDir dir;
  const std::string key = make_store_key(dir);
  { auto first = open_instance(dir, "a", db.url(), key); }
  Options o = dmscore::testing::test_options(dir / "b");
  o.store = db.url();
  o.store_key_file = make_store_key(dir, "other.key");
  auto wrong = Service::open(o);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(wrong.status().message(), Catch::Contains("same file"));
  ::chmod(o.store_key_file.c_str(), 0644);
  o.data_dir = dir / "c";
  auto open_mode = Service::open(o);
  CHECK(open_mode.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(open_mode.status().message(), Catch::Contains("chmod 600"));
  dmscore::testing::write_file(dir / "short.key", "too short");
  ::chmod((dir / "short.key").c_str(), 0600);
  o.store_key_file = dir / "short.key";
  o.data_dir = dir / "d";
  auto short_key = Service::open(o);
  CHECK(short_key.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(short_key.status().message(), Catch::Contains("32 bytes"));
  o.store_key_file.clear();
  CHECK_THAT(Service::open(o).status().message(), Catch::Contains("store_key_file"));
  o.store = "mysql://x";
  o.store_key_file = key;
  CHECK_THAT(Service::open(o).status().message(), Catch::Contains("store:"));
  // Nothing of the refused opens reached the store: still the first instance alone.
  CHECK(db.value("SELECT COUNT(*) FROM instances") == "1");
}

#ifdef DMSCORE_DMSCTL
namespace {

namespace bj = boost::json;
const std::string kPw = "scale-out-admin-pw";

// Three `dmsctl serve` processes on one PostgreSQL store, each with its own data directory and
// port, and the same store key file.
class Serve3 {
 public:
  Serve3(const TempDir& dir, const std::string& url, const std::string& key,
         std::uint64_t rate_limit)
      : dir_(dir) {
    for (int i = 0; i < 3; ++i) {
      ports_.push_back(dmscore::testing::free_loopback_port());
      start(i, url, key, rate_limit);
    }
  }

  void start(int i, const std::string& url, const std::string& key, std::uint64_t rate_limit) {
    const std::string name = "s" + std::to_string(i);
    procs_[i] =
        Process({DMSCORE_DMSCTL, "serve", "--listen",
                 "127.0.0.1:" + std::to_string(ports_[static_cast<std::size_t>(i)]), "--data-dir",
                 dir_ / name, "--store", url, "--store-key-file", key, "--copy-rate-limit",
                 std::to_string(rate_limit)},
                {"DMS_ADMIN_PASSWORD=" + kPw, "PATH=/usr/bin:/bin"}, dir_ / (name + ".log"));
    for (int t = 0; t < 1200; ++t) {
      auto r = client(i).request("GET", "/readyz");
      if (r.ok() && r->status == 200) return;
      std::this_thread::sleep_for(25ms);
    }
    FAIL("instance " << i << " did not come up: "
                     << dmscore::testing::read_file(dir_ / (name + ".log")));
  }

  void kill(int i) { procs_[i].stop(SIGKILL); }
  std::string endpoint(int i) const {
    return "http://127.0.0.1:" + std::to_string(ports_[static_cast<std::size_t>(i)]);
  }

  dmscore::http::Client& client(int i) {
    auto& c = clients_[i];
    if (!c) {
      dmscore::http::ClientOptions o;
      o.endpoints = {endpoint(i)};
      o.connect_timeout = 1000ms;
      c = std::move(dmscore::http::Client::create(o)).value();
    }
    return *c;
  }

  std::pair<int, std::string> call(int i, const std::string& method, const std::string& target,
                                   const std::string& token, const std::string& body = "") {
    auto r =
        client(i).request(method, target, body, {{"Authorization", "Bearer " + token}}, 20000ms);
    if (!r.ok()) return {0, r.status().to_string()};
    return {r->status, r->body};
  }

  std::string login(int i) {
    auto r = client(i).request("POST", "/api/v1/login",
                               bj::serialize(bj::object{{"username", "admin"}, {"password", kPw}}));
    REQUIRE(r.ok());
    INFO(r->body);
    REQUIRE(r->status == 200);
    return std::string(bj::parse(r->body).at("idToken").as_string());
  }

  bj::value ok_json(int i, const std::string& method, const std::string& target,
                    const std::string& token, const std::string& body = "") {
    auto r = call(i, method, target, token, body);
    INFO(method << " " << target << " -> " << r.first << " " << r.second);
    REQUIRE(r.first == 200);
    return bj::parse(r.second);
  }

 private:
  const TempDir& dir_;
  std::vector<int> ports_;
  Process procs_[3];
  std::unique_ptr<dmscore::http::Client> clients_[3];
};

}  // namespace

TEST_CASE(
    "Scale-out: three dmsctl serve instances: kill -9 of the one cloning, the clone "
    "completes elsewhere byte-identical, and a logout on one revokes everywhere") {
  NEED_POSTGRES();
  PgTestDb db;
  TempDir dir;
  const std::string key = make_store_key(dir);
  constexpr std::uint64_t kSize = 256ull << 20, kRate = 32ull << 20;
  Serve3 s(dir, db.url(), key, kRate);
  const std::string token = s.login(0);

  // `dmsctl list instances` shows the three, alive.
  {
    const std::string out_file = dir / "instances.json";
    Process cli({DMSCORE_DMSCTL, "list", "instances", "-o", "json"},
                {"DMS_ENDPOINT=" + s.endpoint(1), "DMS_TOKEN=" + token, "HOME=" + dir.path(),
                 "PATH=/usr/bin:/bin"},
                out_file);
    REQUIRE(cli.wait(30s) == std::optional<int>(0));
    auto answer = bj::parse(dmscore::testing::read_file(out_file));
    INFO(bj::serialize(answer));
    const auto& listed = answer.at("instances");
    REQUIRE(listed.is_array());
    CHECK(listed.as_array().size() == 3);
    for (const auto& i : listed.as_array()) CHECK(i.at("alive").as_bool());
  }

  // A local cluster: whichever instance runs the attach holds its folder.
  auto attach = s.ok_json(0, "POST", "/api/v1/clusters", token,
                          bj::serialize(bj::object{{"apiEndpoint", "file://" + (dir / "c1")}}));
  const std::string attach_wf(attach.at("workflowId").as_string());
  std::string cid;
  for (int t = 0; t < 1200 && cid.empty(); ++t) {
    auto w = s.ok_json(0, "GET", "/api/v1/workflows/" + attach_wf, token).at("workflow");
    if (w.at("state").as_string() == "COMPLETED")
      cid = std::string(w.at("result").at("clusterId").as_string());
    else
      std::this_thread::sleep_for(25ms);
  }
  REQUIRE(!cid.empty());
  std::string holder_id;
  for (int t = 0; t < 600 && holder_id.empty(); ++t) {
    holder_id =
        db.value("SELECT instance_id FROM instance_reach WHERE resource = 'cluster:" + cid + "'");
    if (holder_id.empty()) std::this_thread::sleep_for(25ms);
  }
  REQUIRE(!holder_id.empty());
  int h = -1;
  for (int i = 0; i < 3; ++i)
    if (s.ok_json(i, "GET", "/api/v1/instances", token).at("self").as_string() == holder_id) h = i;
  REQUIRE(h >= 0);
  const int other = (h + 1) % 3;

  // A 256 MiB source with random data, its snapshot, and a thick clone of it, asked of the
  // instance that holds the cluster.
  const std::string vols = "/api/v1/clusters/" + cid + "/projects/p1/volumes";
  auto vol = s.ok_json(h, "POST", vols, token,
                       bj::serialize(bj::object{{"name", "src"}, {"size", std::to_string(kSize)}}))
                 .at("volume");
  const std::string src_path(vol.at("devicePath").as_string());
  {
    std::mt19937_64 rng(42);
    std::string chunk(1 << 20, '\0');
    int fd = ::open(src_path.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    for (std::uint64_t off = 0; off < kSize; off += chunk.size()) {
      for (std::size_t k = 0; k < chunk.size(); k += 8) {
        const std::uint64_t v = rng();
        std::memcpy(&chunk[k], &v, 8);
      }
      REQUIRE(::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(off)) ==
              static_cast<ssize_t>(chunk.size()));
    }
    ::fsync(fd);
    ::close(fd);
  }
  auto snap = s.ok_json(h, "POST", "/api/v1/clusters/" + cid + "/projects/p1/snapshots", token,
                        bj::serialize(bj::object{{"name", "s1"}, {"sourceVolumeId", vol.at("id")}}))
                  .at("snapshot");
  auto clone = s.ok_json(
      h, "POST", "/api/v1/volumes/thickclone", token,
      bj::serialize(bj::object{
          {"src", bj::object{{"snapId", snap.at("id")}, {"projectName", "p1"}, {"clusterId", cid}}},
          {"dst", bj::object{{"name", "copy"}, {"clusterId", cid}}}}));
  const std::string wf(clone.at("workflowId").as_string());

  // Mid-copy (a quarter done, watched through another instance), the holder is killed.
  std::uint64_t done_at_kill = 0;
  for (int t = 0; t < 2400; ++t) {
    auto w = s.ok_json(other, "GET", "/api/v1/workflows/" + wf, token).at("workflow");
    done_at_kill = std::stoull(std::string(w.at("progress").at("bytesDone").as_string()));
    if (done_at_kill >= kSize / 4) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(done_at_kill >= kSize / 4);
  REQUIRE(done_at_kill < kSize);
  CHECK(db.value("SELECT owner FROM workflows WHERE id = '" + wf + "'") == holder_id);
  s.kill(h);
  const auto killed = std::chrono::steady_clock::now();

  // Another instance takes the folder and the workflow over, within the 10 s lease plus a
  // heartbeat and a claim: well under 30 s.
  std::string new_owner;
  for (int t = 0; t < 3000; ++t) {
    new_owner = db.value("SELECT owner FROM workflows WHERE id = '" + wf + "'");
    if (new_owner != holder_id) break;
    std::this_thread::sleep_for(10ms);
  }
  const auto takeover = std::chrono::steady_clock::now() - killed;
  REQUIRE(new_owner != holder_id);
  CHECK(takeover < 30s);
  std::string state;
  bj::value final_wf;
  for (int t = 0; t < 6000; ++t) {
    final_wf = s.ok_json(other, "GET", "/api/v1/workflows/" + wf, token).at("workflow");
    state = std::string(final_wf.at("state").as_string());
    if (state != "PENDING" && state != "RUNNING") break;
    std::this_thread::sleep_for(20ms);
  }
  const auto finished = std::chrono::steady_clock::now() - killed;
  INFO(bj::serialize(final_wf));
  REQUIRE(state == "COMPLETED");
  // Within 30 s of the kill plus what was left to copy at the rate limit.
  const auto remaining = std::chrono::milliseconds((kSize - done_at_kill) * 1000 / kRate);
  CHECK(finished < 30s + remaining + 5s);
  const std::string copy_id(final_wf.at("result").at("volumeId").as_string());
  // The volume is read through the instance that holds the cluster now (only it reaches the
  // folder; the others answer 503 for a local cluster's objects).
  int survivor = -1;
  for (int i = 0; i < 3; ++i)
    if (i != h &&
        s.ok_json(i, "GET", "/api/v1/instances", token).at("self").as_string() == new_owner)
      survivor = i;
  REQUIRE(survivor >= 0);
  auto copy = s.ok_json(survivor, "GET", vols + "/" + copy_id, token).at("volume");
  CHECK(copy.at("state").as_string() == "Available");
  CHECK(dmscore::testing::read_file(std::string(copy.at("devicePath").as_string())) ==
        dmscore::testing::read_file(src_path));

  // A logout through one instance revokes the token on the others at once.
  const int s1 = (h + 1) % 3, s2 = (h + 2) % 3;
  const std::string t2 = s.login(s1);
  CHECK(s.call(s2, "GET", "/api/v1/workflows", t2).first == 200);
  CHECK(s.call(s1, "POST", "/api/v1/logout", t2, "{}").first == 200);
  CHECK(s.call(s2, "GET", "/api/v1/workflows", t2).first == 401);
  CHECK(s.call(s1, "GET", "/api/v1/workflows", t2).first == 401);
  // Each instance's metrics carry its id; the survivor that took the clone over counts it.
  {
    auto m = s.client(s1).request("GET", "/metrics");
    REQUIRE(m.ok());
    auto m2 = s.client(s2).request("GET", "/metrics");
    REQUIRE(m2.ok());
    const std::string self1(
        s.ok_json(s1, "GET", "/api/v1/instances", s.login(s1)).at("self").as_string());
    CHECK_THAT(m->body, Catch::Contains("dms_instance_lease_held{instance=\"" + self1 + "\"} 1"));
    const std::string takeovers = "dms_instance_takeovers_total{instance=\"" + new_owner + "\"} ";
    const std::string& owner_metrics = self1 == new_owner ? m->body : m2->body;
    const auto at = owner_metrics.find(takeovers);
    REQUIRE(at != std::string::npos);
    CHECK(std::stoi(owner_metrics.substr(at + takeovers.size())) >= 1);
  }
  // The killed instance is listed, no longer alive.
  auto inst = s.ok_json(s2, "GET", "/api/v1/instances", s.login(s2)).at("instances");
  REQUIRE(inst.as_array().size() == 3);
  for (const auto& i : inst.as_array())
    CHECK(i.at("alive").as_bool() == (i.at("id").as_string() != holder_id));
}
TEST_CASE("Scale-out: dmsctl serve refuses bad store options, naming them, and starts nothing") {
  TempDir dir;
  const std::string key = make_store_key(dir);
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--store", "mysql://db/dms", "--store-key-file", key}, "--store: must be a postgresql"},
      {{"--store", "postgresql://dms@db/dms"}, "--store-key-file: required"},
      {{"--store-key-file", key}, "--store-key-file: only with --store"},
      {{"--store", "postgresql://dms:hunter2-secret@db/dms", "--store-key-file", key},
       "PGPASSFILE"},
      {{"--store", "postgresql://db/dms?password=hunter2-secret", "--store-key-file", key},
       "PGPASSFILE"},
      {{"--store", "postgresql://db/dms", "--store-key-file", key, "--instance-lease-ms", "5"},
       "--instance-lease-ms"},
  };
  int n = 0;
  for (const auto& c : cases) {
    INFO(c.says);
    const std::string log = dir / ("serve" + std::to_string(n++) + ".log");
    std::vector<std::string> argv = {DMSCORE_DMSCTL, "serve",      "--listen",
                                     "127.0.0.1:0",  "--data-dir", dir / "data"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Process p(argv, {"PATH=/usr/bin:/bin"}, log);
    CHECK(p.wait(30s) == std::optional<int>(2));
    const std::string out = dmscore::testing::read_file(log);
    CHECK_THAT(out, Catch::Contains(c.says));
    CHECK_THAT(out, !Catch::Contains("hunter2-secret"));
  }
  CHECK_FALSE(std::filesystem::exists(dir / "data/instance-id"));
}
#endif
