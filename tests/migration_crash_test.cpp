// Crash test of source migrations: real processes, `dmsctl serve` and `dmsctl agent`, one of
// them killed with SIGKILL at a random point of the full replication or of a sync, then
// started again. Every migration must complete, each volume byte-identical to its image at
// cutover, having resent at most one window of chunks per kill.
//
// DMS_MIGRATION_CRASH_RUNS sets the number of runs (default 24: each kill target in each phase
// six times), DMS_CRASH_SEED the seed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "crash_harness.hpp"
#include "dmscore/http/client.hpp"
#include "process.hpp"
#include "test_files.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
namespace json = boost::json;
using dmscore::testing::Process;

namespace {

constexpr std::uint64_t kMiB = 1u << 20;
constexpr std::uint64_t kWindow = 32 * kMiB;  // the unacknowledged payload a stream may have
const std::string kAdminPassword = "crash-admin-password";

class Site {
 public:
  explicit Site(dmscore::testing::TempDir& tmp)
      : tmp_(tmp), port_(dmscore::testing::free_loopback_port()) {
    start_service();
    admin_ = login("admin", kAdminPassword);
    REQUIRE(call("POST", "/api/v1/users",
                 R"({"username":"agent1","role":"agent","password":"agent-password-1"})")
                .first == 200);
    agent_token_ = login("agent1", "agent-password-1");
    auto r = call("POST", "/api/v1/clusters",
                  json::serialize(json::object{{"apiEndpoint", "file://" + (tmp_ / "c1")}}));
    REQUIRE(r.first == 200);
    const std::string wf(json::parse(r.second).at("workflowId").as_string());
    REQUIRE(await_workflow(wf) == "COMPLETED");
    auto w = json::parse(call("GET", "/api/v1/workflows/" + wf).second);
    cluster_ = std::string(w.at("workflow").at("result").at("clusterId").as_string());
  }

  void start_service() {
    service_ =
        Process({DMSCORE_DMSCTL, "serve", "--listen", "127.0.0.1:" + std::to_string(port_),
                 "--data-dir", tmp_ / "data"},
                {"DMS_ADMIN_PASSWORD=" + kAdminPassword, "PATH=/usr/bin:/bin"}, tmp_ / "serve.log");
    for (int i = 0; i < 600; ++i) {
      if (client().request("GET", "/readyz").ok()) return;
      std::this_thread::sleep_for(25ms);
    }
    FAIL("the service did not come up: " << dmscore::testing::read_file(tmp_ / "serve.log"));
  }
  void kill_service() { service_.stop(SIGKILL); }

  void start_agent(const std::vector<std::string>& disks) {
    std::vector<std::string> argv = {
        DMSCORE_DMSCTL,       "agent",  "--endpoint",
        endpoint(),           "--root", std::string(DMSCORE_SOURCE_DIR) + "/tests/data/agent_root",
        "--poll-interval-ms", "50"};
    for (const auto& d : disks) {
      argv.push_back("--disk");
      argv.push_back(d);
    }
    std::filesystem::create_directories(tmp_ / "home");
    agent_ = Process(argv,
                     {"HOME=" + (tmp_ / "home"), "DMS_TOKEN=" + agent_token_, "PATH=/usr/bin:/bin"},
                     tmp_ / "agent.log");
  }
  void kill_agent() { agent_.stop(SIGKILL); }
  void stop_agent() { agent_.stop(SIGTERM); }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& cluster() const { return cluster_; }

  // A request; {0, error} while the service is down.
  std::pair<int, std::string> call(const std::string& method, const std::string& target,
                                   const std::string& body = "") {
    auto r = client().request(method, target, body, {{"Authorization", "Bearer " + admin_}},
                              std::chrono::milliseconds(20000));
    if (!r.ok()) return {0, r.status().to_string()};
    return {r->status, r->body};
  }

  // GET that waits for the service to answer (it may be restarting).
  json::value get(const std::string& target) {
    for (int i = 0; i < 2400; ++i) {
      auto r = call("GET", target);
      if (r.first == 200) return json::parse(r.second);
      std::this_thread::sleep_for(25ms);
    }
    FAIL("GET " << target << " never answered");
    return {};
  }

  std::string await_workflow(const std::string& id) {
    for (int i = 0; i < 2400; ++i) {
      auto w = get("/api/v1/workflows/" + id);
      const std::string state(w.at("workflow").at("state").as_string());
      if (state != "PENDING" && state != "RUNNING") return state;
      std::this_thread::sleep_for(25ms);
    }
    return "TIMEOUT";
  }

  // Waits until `pred` holds for the source's migration.
  json::value await_migration(const std::string& source,
                              const std::function<bool(const json::value&)>& pred) {
    for (int i = 0; i < 2400; ++i) {
      auto r = call("GET", "/api/v1/source-servers/" + source + "/migration");
      if (r.first == 200) {
        json::value m = json::parse(r.second).at("migration");
        if (pred(m)) return m;
      }
      std::this_thread::sleep_for(25ms);
    }
    FAIL("the migration never got there: " << dmscore::testing::read_file(tmp_ / "agent.log"));
    return {};
  }

  std::string source_id() {
    for (int i = 0; i < 800; ++i) {
      auto page = get("/api/v1/source-servers");
      const auto& a = page.at("sourceServers").as_array();
      if (!a.empty()) return std::string(a[0].at("id").as_string());
      std::this_thread::sleep_for(25ms);
    }
    FAIL("no source registered: " << dmscore::testing::read_file(tmp_ / "agent.log"));
    return {};
  }

  std::string volume_path(const std::string& id) { return tmp_ / ("c1/data/" + id + ".vol"); }

 private:
  std::string login(const std::string& user, const std::string& password) {
    auto r =
        client().request("POST", "/api/v1/login",
                         json::serialize(json::object{{"username", user}, {"password", password}}));
    REQUIRE(r.ok());
    INFO(r->body);
    REQUIRE(r->status == 200);
    return std::string(json::parse(r->body).at("idToken").as_string());
  }

  dmscore::http::Client& client() {
    if (!client_) {
      dmscore::http::ClientOptions o;
      o.endpoints = {endpoint()};
      o.connect_timeout = 1000ms;
      client_ = std::move(dmscore::http::Client::create(o)).value();
    }
    return *client_;
  }

  dmscore::testing::TempDir& tmp_;
  int port_;
  std::string admin_, agent_token_, cluster_;
  Process service_, agent_;
  std::unique_ptr<dmscore::http::Client> client_;
};

bool pass_done(const json::value& m, std::int64_t pass) {
  if (m.at("pass").to_number<std::int64_t>() != pass) return false;
  for (const auto& d : m.at("disks").as_array())
    if (d.at("pass").to_number<std::int64_t>() != pass ||
        d.at("ackedOffset").as_string() != d.at("size").as_string())
      return false;
  return true;
}

std::uint64_t field(const json::value& v, const char* key) {
  return std::stoull(std::string(v.at(key).as_string()));
}

}  // namespace

TEST_CASE("Migrations: SIGKILL of the service or the agent while streaming loses nothing") {
  const int runs = dmscore::testing::env_int("DMS_MIGRATION_CRASH_RUNS", 24);
  const unsigned seed = static_cast<unsigned>(dmscore::testing::env_int("DMS_CRASH_SEED", 1234));
  std::mt19937_64 rng(seed);
  dmscore::testing::TempDir tmp;
  Site site(tmp);
  int completed = 0, mid_stream = 0;
  for (int run = 0; run < runs; ++run) {
    const bool kill_service = run % 2 == 0;
    const bool during_sync = (run / 2) % 2 == 1;
    INFO("run " << run << " (seed " << seed << "): kill the "
                << (kill_service ? "service" : "agent") << " during the "
                << (during_sync ? "sync" : "replication"));
    // Two disks: 64 MiB at 30% data, 16 MiB at 50%; fresh images per run.
    const std::string a = tmp / ("a" + std::to_string(run) + ".img");
    const std::string b = tmp / ("b" + std::to_string(run) + ".img");
    std::vector<std::uint64_t> slots_a, slots_b;
    for (std::uint64_t i = 0; i < 64; ++i)
      if (rng() % 10 < 3) slots_a.push_back(i);
    for (std::uint64_t i = 0; i < 16; ++i)
      if (rng() % 2) slots_b.push_back(i);
    dmscore::testing::write_random_slots(a, 64, slots_a, rng);
    dmscore::testing::write_random_slots(b, 16, slots_b, rng);
    const std::uint64_t data_bytes = (slots_a.size() + slots_b.size()) * kMiB;
    site.start_agent({"a=" + a, "b=" + b});
    const std::string source = site.source_id();
    // 24 MiB/s: the replication lasts about a second, long enough to be cut in its middle.
    auto started = site.call(
        "POST", "/api/v1/source-servers/" + source + "/migrations",
        json::serialize(json::object{{"clusterId", site.cluster()},
                                     {"syncing", true},
                                     {"rateLimitBytesPerSec", std::to_string(24 * kMiB)}}));
    INFO(started.second);
    REQUIRE(started.first == 200);
    const std::string mid(json::parse(started.second).at("workflowId").as_string());
    auto kill_and_restart = [&](int max_ms, std::int64_t pass) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % max_ms));
      // Whether the kill lands while the pass is streaming (counted, not required per run).
      auto now = site.call("GET", "/api/v1/source-servers/" + source + "/migration");
      if (now.first == 200 && !pass_done(json::parse(now.second).at("migration"), pass))
        ++mid_stream;
      if (kill_service) {
        site.kill_service();
        site.start_service();
      } else {
        site.kill_agent();
        site.start_agent({"a=" + a, "b=" + b});
      }
    };
    if (!during_sync) kill_and_restart(900, 0);
    site.await_migration(
        source, [](const json::value& m) { return m.at("stage") == "syncing" && pass_done(m, 0); });
    // Some of the extents change (8 of a's data slots: a sync long enough to be cut), then a
    // sync.
    std::vector<std::uint64_t> change(slots_a.begin(),
                                      slots_a.begin() + std::min<std::size_t>(8, slots_a.size()));
    dmscore::testing::write_random_slots(a, 64, change, rng);
    const std::uint64_t changed = change.size() * kMiB;
    REQUIRE(site.call("POST", "/api/v1/source-servers/" + source + "/sync", "{}").first == 200);
    if (during_sync) kill_and_restart(300, 1);
    site.await_migration(source, [](const json::value& m) { return pass_done(m, 1); });
    REQUIRE(site.call("POST", "/api/v1/source-servers/" + source + "/cutover", "{}").first == 200);
    REQUIRE(site.await_workflow(mid) == "COMPLETED");
    const json::value m =
        site.get("/api/v1/source-servers/" + source + "/migrations/" + mid).at("migration");
    CHECK(m.at("state") == "MIGRATE_SUCCESS");
    const auto& disks = m.at("disks").as_array();
    REQUIRE(disks.size() == 2);
    std::uint64_t total = 0, resent = 0;
    for (std::size_t i = 0; i < 2; ++i) {
      const std::string image = dmscore::testing::read_file(i == 0 ? a : b);
      const std::string vol = dmscore::testing::read_file(
          site.volume_path(std::string(disks[i].at("volumeId").as_string())));
      REQUIRE(vol.size() == image.size());
      CHECK((vol == image));
      total += field(disks[i], "totalBytes");
      resent += field(disks[i], "resentBytes");
    }
    // At most one window sent again for the one kill, on top of what had to be sent.
    CHECK(resent <= kWindow);
    CHECK(total <= data_bytes + changed + kWindow);
    site.stop_agent();
    ++completed;
  }
  CHECK(completed == runs);
  WARN(runs << " runs, " << mid_stream << " kills landed while a pass was streaming");
  // Most kills cut a pass: the test exercises resumption, not just restarts between passes.
  CHECK(mid_stream * 2 >= runs);
}
