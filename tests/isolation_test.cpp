// A slow cluster costs only its own callers: over real HTTP, while requests to a Lightbits
// cluster that hangs are in flight, every other route answers; the hanging cluster's own
// callers beyond its share are refused at once, and once it has timed out, all of them are
// until it is tried again.

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "service_fixture.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

struct Served {
  dmscore::testing::LightosEmulator emu;
  dmscore::testing::TempDir tmp;
  std::unique_ptr<Service> svc;
  std::unique_ptr<http::Server> server;
  std::string token, lb, local, attach_wf;

  Served() {
    Options o;
    o.cluster_ca_file = emu.ca_file();
    o.health_check_interval = 0ms;
    o.cluster_call_deadline = 2s;
    o.cluster_breaker_cooldown = 1s;
    o.cluster_max_concurrent_calls = 4;
    o.admin_password = "isolation-admin";
    svc = dmscore::testing::open_test_service(tmp / "data", o);
    server = dmscore::testing::start_server(*svc);
    token = svc->auth().login("admin", "isolation-admin", "127.0.0.1")->id_token;
    dmscore::testing::import_service_key(emu, *svc);
    auto a = svc->clusters().attach({emu.endpoint(), "lb"});
    REQUIRE(a.ok());
    attach_wf = a->str();
    lb = dmscore::testing::attached_cluster_id(dmscore::testing::wait_workflow(*svc, *a, 30s));
    local = dmscore::testing::attach_cluster(*svc, {"file://" + (tmp / "local"), "local"}, 30s);
    REQUIRE(svc->volumes().create(ClusterId(local), {"p1", "v", 1 << 20}).ok());
  }

  // One request on a connection of its own.
  // A request as the admin. Free of Catch's macros, which are not thread-safe: the tests'
  // worker threads call this one and leave the checking to the main thread.
  Result<http::ClientResponse> request(const std::string& method, const std::string& target) {
    http::ClientOptions co;
    co.endpoints = {"http://127.0.0.1:" + std::to_string(server->port())};
    co.request_timeout = 60s;
    auto c = http::Client::create(co);
    if (!c.ok()) return c.status();
    return (*c)->request(method, target, method == "POST" ? "{}" : "",
                         {{"Authorization", "Bearer " + token}});
  }
  // request(), on the main thread only.
  http::ClientResponse call(const std::string& method, const std::string& target) {
    auto r = request(method, target);
    INFO(target << ": " << r.status().to_string());
    REQUIRE(r.ok());
    return *r;
  }

  ClusterCallStats gate(const std::string& id) {
    auto st = svc->stats();
    REQUIRE(st.ok());
    for (const auto& c : st->cluster_calls)
      if (c.cluster_id == id) return c;
    return {};
  }
};

}  // namespace

TEST_CASE("Isolation: a hanging cluster's requests hold only its share, everything else answers") {
  Served s;
  const std::string lb_volumes = "/api/v1/clusters/" + s.lb + "/projects/default/volumes";
  s.emu.control("POST", "/control/stall",
                R"({"method":"GET","pathRegex":"/volumes","seconds":30,"count":1000})");

  std::mutex mu;
  std::vector<int> statuses;
  std::vector<std::string> retry_after;
  std::atomic<int> finished{0};
  std::vector<std::thread> hung;
  for (int i = 0; i < 16; ++i) {
    hung.emplace_back([&] {
      auto r = s.request("GET", lb_volumes);
      std::lock_guard lock(mu);
      statuses.push_back(r.ok() ? r->status : -1);  // -1: no answer at all
      retry_after.emplace_back(r.ok() ? r->header("Retry-After") : "");
      ++finished;
    });
  }
  // The cluster's share (4) is taken and waiting; the 12 others were refused at once.
  for (int i = 0; i < 500 && !(finished.load() == 12 && s.gate(s.lb).in_flight == 4); ++i)
    std::this_thread::sleep_for(10ms);
  REQUIRE(finished.load() == 12);
  REQUIRE(s.gate(s.lb).in_flight == 4);
  {
    std::lock_guard lock(mu);
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      CHECK(statuses[i] == 503);
      CHECK(retry_after[i] == "1");
    }
  }

  // Meanwhile every other route answers, before any of the four hung calls ends.
  CHECK(s.call("GET", "/healthz").status == 200);
  CHECK(s.call("GET", "/api/v1/workflows/" + s.attach_wf).status == 200);
  CHECK(s.call("GET", "/api/v1/clusters/" + s.local + "/projects/p1/volumes").status == 200);
  CHECK(s.call("GET", "/api/v1/clusters").status == 200);
  CHECK(s.call("POST", "/api/v1/clusters/refresh").status == 200);
  CHECK(s.call("GET", "/metrics").status == 200);
  CHECK(finished.load() == 12);

  for (auto& t : hung) t.join();
  {
    std::lock_guard lock(mu);
    CHECK(std::count(statuses.begin(), statuses.end(), 504) == 4);  // DEADLINE_EXCEEDED, 2 s
  }
  // It just timed out: its callers are refused at once until the cooldown has passed.
  auto refused = s.call("GET", lb_volumes);
  CHECK(refused.status == 503);
  CHECK(refused.header("Retry-After") == "1");
  CHECK_THAT(refused.body, Catch::Contains("did not answer in time"));
  CHECK(s.gate(s.lb).refusing);

  // Once it answers again, the first call after the cooldown finds out and closes the breaker.
  s.emu.control("POST", "/control/reset");
  std::this_thread::sleep_for(1100ms);
  CHECK(s.call("GET", lb_volumes).status == 200);
  CHECK_FALSE(s.gate(s.lb).refusing);
  CHECK(s.call("GET", lb_volumes).status == 200);

  // No call to any cluster ran on an I/O thread.
  CHECK(s.gate(s.lb).io_thread_calls == 0);
  CHECK(s.gate(s.local).io_thread_calls == 0);
  CHECK(s.gate(s.lb).timeouts >= 4);
}

TEST_CASE("Isolation: a delete that hangs on its cluster blocks nobody else") {
  Served s;
  auto v = s.svc->volumes().create(ClusterId(s.lb), {"default", "slow-delete", 1 << 30});
  REQUIRE(v.ok());
  s.emu.control("POST", "/control/stall",
                R"({"method":"DELETE","pathRegex":"/volumes/","seconds":30,"count":10})");
  std::atomic<int> delete_status{0};
  std::thread deleting([&] {
    auto r = s.request("DELETE", "/api/v1/clusters/" + s.lb + "/projects/default/volumes/" + v->id);
    delete_status = r.ok() ? r->status : -1;
  });
  for (int i = 0; i < 500 && s.gate(s.lb).in_flight == 0; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(s.gate(s.lb).in_flight == 1);
  // Attaching, detaching and deleting on other clusters need no lock the delete holds.
  auto local_v = s.svc->volumes().create(ClusterId(s.local), {"p1", "other", 1 << 20});
  REQUIRE(local_v.ok());
  CHECK(s.call("DELETE", "/api/v1/clusters/" + s.local + "/projects/p1/volumes/" + local_v->id)
            .status == 200);
  auto a = s.call("POST", "/api/v1/clusters");  // malformed body: answered at once
  CHECK(a.status == 400);
  CHECK(s.gate(s.lb).in_flight == 1);  // still hanging
  deleting.join();
  CHECK(delete_status.load() == 504);
}

TEST_CASE("Isolation: a login spray with fresh names is throttled by source and starves no one") {
  Served s;
  std::atomic<int> refused{0}, checked{0}, other{0}, no_retry_after{0};
  std::atomic<bool> spraying{true};
  std::vector<std::thread> spray;
  for (int t = 0; t < 8; ++t) {
    spray.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        http::ClientOptions co;
        co.endpoints = {"http://127.0.0.1:" + std::to_string(s.server->port())};
        auto c = http::Client::create(co);
        auto r = (*c)->request(
            "POST", "/api/v1/login",
            json::serialize(json::object{{"username", "spray-" + std::to_string(t * 100 + i)},
                                         {"password", "guess-guess"}}));
        if (!r.ok()) {
          ++other;
        } else if (r->status == 429) {
          if (std::string(r->header("Retry-After")).empty()) ++no_retry_after;
          ++refused;
        } else if (r->status == 401) {
          ++checked;
        } else {
          ++other;
        }
      }
    });
  }
  // Admin calls go on meanwhile.
  int admin_ok = 0;
  for (int i = 0; i < 20; ++i) {
    admin_ok += s.call("GET", "/api/v1/workflows/" + s.attach_wf).status == 200;
    admin_ok += s.call("GET", "/api/v1/clusters/" + s.local + "/projects/p1/volumes").status == 200;
  }
  for (auto& t : spray) t.join();
  spraying = false;
  CHECK(no_retry_after.load() == 0);  // every 429 says when to retry
  CHECK(admin_ok == 40);
  CHECK(other.load() == 0);
  // The source may fail 20 times in 5 minutes (Options::login_failures_per_source).
  CHECK(checked.load() <= 20);
  CHECK(refused.load() + checked.load() == 160);
  // The admin, logging in from the sprayed source, waits too: the limit is the source's.
  http::ClientOptions co;
  co.endpoints = {"http://127.0.0.1:" + std::to_string(s.server->port())};
  auto c = http::Client::create(co);
  auto admin = (*c)->request("POST", "/api/v1/login",
                             R"({"username":"admin","password":"isolation-admin"})");
  REQUIRE(admin.ok());
  CHECK(admin->status == 429);
}

TEST_CASE("Isolation: a long poll on a workflow answers when it ends and holds no I/O thread") {
  Served s;
  s.emu.control("POST", "/control/stall",
                R"({"method":"GET","pathRegex":"/clusterinfo","seconds":2,"count":1})");
  auto refresh = s.svc->clusters().refresh(ClusterId(s.lb));
  REQUIRE(refresh.ok());
  std::atomic<bool> answered{false};
  Result<http::ClientResponse> polled = Status::Unavailable("not answered");
  std::thread poll([&] {
    polled = s.request("GET", "/api/v1/workflows/" + refresh->str() + "?waitMs=9000");
    answered = true;
  });
  // While it waits, the I/O threads serve everyone else.
  for (int i = 0; i < 20; ++i) CHECK(s.call("GET", "/healthz").status == 200);
  CHECK_FALSE(answered.load());
  poll.join();
  INFO(polled.status().to_string());
  REQUIRE(polled.ok());
  REQUIRE(polled->status == 200);
  CHECK_THAT(polled->body, Catch::Contains("\"state\":\"COMPLETED\""));
  // Bad waits are refused, naming the parameter.
  for (const char* bad : {"-1", "10001", "soon", ""}) {
    auto r = s.call("GET", "/api/v1/workflows/" + refresh->str() + "?waitMs=" + bad);
    INFO(bad);
    CHECK(r.status == 400);
    CHECK_THAT(r.body, Catch::Contains("waitMs"));
  }
}
