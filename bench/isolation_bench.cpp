// What a hanging cluster and a login spray cost everyone else, over real HTTP on loopback.
//
//   isolation_bench [WORK_DIR] [SECONDS_PER_PHASE]
//
// Runs a service and its HTTP server in this process, a LightOS emulator (tests/lightos_emulator)
// and a local cluster, then measures, one request at a time, GET /healthz, GET of a workflow and
// the local cluster's volume list:
//   1. quiet: nothing else going on (the peer: the same routes, same process, same run);
//   2. hang: while 16 requests to the emulated cluster, whose volume reads stall for minutes, are
//      kept in flight (each refused or timed out one is sent again at once);
// and admin calls (GET workflow, GET volume list) quiet and during a 32-way login spray with
// fresh user names at the production scrypt cost (N = 2^17), with the spray's own answers.
// Prints p50/p99 per route and phase, errors, and the ratios.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "lightos_emulator_process.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::unique_ptr<http::Client> client(const std::string& endpoint) {
  http::ClientOptions co;
  co.endpoints = {endpoint};
  co.request_timeout = 120s;
  return std::move(http::Client::create(co)).value();
}

struct Series {
  std::vector<double> ms;
  int errors = 0;
  double pct(double p) const {
    if (ms.empty()) return 0;
    std::vector<double> v = ms;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  }
};

// One request to each target, interleaved, one at a time, every `every`, for `seconds`.
std::map<std::string, Series> measure(
    http::Client& c, const std::string& token,
    const std::vector<std::pair<std::string, std::string>>& targets, double seconds,
    std::chrono::milliseconds every = 10ms) {
  std::map<std::string, Series> out;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  for (auto next = Clock::now(); Clock::now() < end; next += every) {
    std::this_thread::sleep_until(next);
    for (const auto& [name, target] : targets) {
      auto t0 = Clock::now();
      auto r = c.request("GET", target, "", {{"Authorization", "Bearer " + token}});
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      auto& s = out[name];
      s.ms.push_back(ms);
      if (!r.ok() || r->status != 200) ++s.errors;
    }
  }
  return out;
}

void report(const char* phase, const std::map<std::string, Series>& m) {
  for (const auto& [name, s] : m)
    std::printf("  %-22s %-18s p50 %7.2f ms  p99 %7.2f ms  errors %d/%zu\n", phase, name.c_str(),
                s.pct(0.5), s.pct(0.99), s.errors, s.ms.size());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string work = std::string(argc > 1 ? argv[1] : "/var/tmp") + "/dmscore-isolation-" +
                           std::to_string(getpid());
  const double secs = argc > 2 ? std::atof(argv[2]) : 15;
  fs::create_directories(work);
  dmscore::testing::LightosEmulatorProcess emu;
  if (std::string why = emu.start(work + "/emulator", work + "/ca", 20); !why.empty()) {
    std::fprintf(stderr, "cannot start the LightOS emulator (python3, python3-cryptography): %s\n",
                 why.c_str());
    return 1;
  }
  Options o;
  o.data_dir = work + "/data";
  o.admin_password = "isolation-bench-admin";
  o.cluster_ca_file = emu.ca_file();
  o.health_check_interval = 0ms;
  o.log = [](std::string_view) {};
  auto svc = Service::open(o);
  if (!svc.ok()) {
    std::fprintf(stderr, "%s\n", svc.status().to_string().c_str());
    return 1;
  }
  Service& s = **svc;
  http::ServerOptions so;
  so.port = 0;
  so.io_threads = 2;
  auto server = http::Server::create(s, so);
  if (!server.ok() || !(*server)->start().ok()) return 1;
  const std::string endpoint = "http://127.0.0.1:" + std::to_string((*server)->port());
  const std::string token = s.auth().login("admin", "isolation-bench-admin", "127.0.0.1")->id_token;

  auto control = client(emu.control_endpoint());
  auto keys = s.identity().keys();
  (void)control->request(
      "POST", "/control/credentials",
      json::serialize(json::object{{"id", "system:" + s.service_credentials().pub_key_id},
                                   {"pem", keys[0].public_pem}}));
  auto attach = s.workflows().wait(*s.clusters().attach({emu.endpoint(), "lb"}), 30s);
  auto local =
      s.workflows().wait(*s.clusters().attach({"file://" + work + "/local", "local"}), 30s);
  if (!attach.ok() || attach->state != WorkflowState::kCompleted || !local.ok()) {
    std::fprintf(stderr, "attach failed: %s\n", attach.ok() ? attach->msg.c_str() : "");
    return 1;
  }
  auto cid = [](const std::string& result) {
    return result.substr(result.find("\"clusterId\":\"") + 13, 36);
  };
  const std::string lb = cid(attach->result), lc = cid(local->result);
  for (int i = 0; i < 20; ++i)
    (void)s.volumes().create(ClusterId(lc), {"p1", "v" + std::to_string(i), 1 << 20});
  const std::vector<std::pair<std::string, std::string>> targets = {
      {"GET /healthz", "/healthz"},
      {"GET workflow", "/api/v1/workflows/" + attach->id},
      {"GET local volumes", "/api/v1/clusters/" + lc + "/projects/p1/volumes"}};

  auto c = client(endpoint);
  std::printf(
      "isolation_bench: each route sampled every 10 ms for %.0f s per phase, 2 I/O threads, "
      "loopback; cluster call deadline 10 s, 4 calls per cluster, breaker cooldown 5 s\n",
      secs);
  (void)measure(*c, token, targets, 1);  // warm up
  auto quiet = measure(*c, token, targets, secs);
  report("quiet", quiet);

  // Phase 2: 16 requests to a cluster that hangs, kept in flight.
  (void)control->request(
      "POST", "/control/stall",
      R"({"method":"GET","pathRegex":"/volumes","seconds":600,"count":1000000})");
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0}, timed_out{0}, other{0};
  std::vector<std::thread> hung;
  for (int i = 0; i < 16; ++i) {
    hung.emplace_back([&] {
      auto hc = client(endpoint);
      while (!stop) {
        auto r = hc->request("GET", "/api/v1/clusters/" + lb + "/projects/default/volumes", "",
                             {{"Authorization", "Bearer " + token}});
        if (r.ok() && r->status == 503) {
          ++refused;
          std::this_thread::sleep_for(5ms);  // a client honouring nothing but a short pause
        } else if (r.ok() && r->status == 504) {
          ++timed_out;
        } else {
          ++other;
        }
      }
    });
  }
  std::this_thread::sleep_for(500ms);
  auto hang = measure(*c, token, targets, secs);
  report("16 hung requests", hang);
  stop = true;
  (void)control->request("POST", "/control/reset");
  for (auto& t : hung) t.join();
  std::printf(
      "  hanging cluster's own callers: %d refused at once (503), %d timed out (504), %d other\n",
      refused.load(), timed_out.load(), other.load());

  // Phase 3: a 32-way login spray with fresh names at the production scrypt cost.
  const std::vector<std::pair<std::string, std::string>> admin = {
      {"GET workflow", "/api/v1/workflows/" + attach->id},
      {"GET local volumes", "/api/v1/clusters/" + lc + "/projects/p1/volumes"}};
  auto admin_quiet = measure(*c, token, admin, secs);
  report("quiet (admin)", admin_quiet);
  stop = false;
  std::mutex mu;
  Series spray_429, spray_401;
  int spray_other = 0;
  std::vector<std::thread> spray;
  std::atomic<int> name{0};
  for (int i = 0; i < 32; ++i) {
    spray.emplace_back([&] {
      auto sc = client(endpoint);
      while (!stop) {
        std::string body = json::serialize(json::object{
            {"username", "spray-" + std::to_string(name++)}, {"password", "not-the-password"}});
        auto t0 = Clock::now();
        auto r = sc->request("POST", "/api/v1/login", body);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        std::lock_guard lock(mu);
        if (r.ok() && r->status == 429)
          spray_429.ms.push_back(ms);
        else if (r.ok() && r->status == 401)
          spray_401.ms.push_back(ms);
        else
          ++spray_other;
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  auto admin_spray = measure(*c, token, admin, secs);
  stop = true;
  for (auto& t : spray) t.join();
  report("32-way login spray", admin_spray);
  std::printf(
      "  spray answers: %zu x 429 (p50 %.2f ms, p99 %.2f ms), %zu x 401 (p50 %.1f ms), %d other\n",
      spray_429.ms.size(), spray_429.pct(0.5), spray_429.pct(0.99), spray_401.ms.size(),
      spray_401.pct(0.5), spray_other);

  std::printf("ratios (p99 under load / p99 quiet):\n");
  for (const auto& [n, q] : quiet)
    std::printf("  hung cluster  %-18s %.2f\n", n.c_str(), hang[n].pct(0.99) / q.pct(0.99));
  for (const auto& [n, q] : admin_quiet)
    std::printf("  login spray   %-18s %.2f\n", n.c_str(), admin_spray[n].pct(0.99) / q.pct(0.99));
  (*server)->stop();
  svc->reset();
  fs::remove_all(work);
  return 0;
}
