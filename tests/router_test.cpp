#include "dmscore/http/router.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <mutex>
#include <thread>

#include "dmscore/service.hpp"
#include "test_files.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::TempDir;
namespace json = boost::json;

namespace {

constexpr const char* kAdminPw = "router-admin-pw";

struct Fixture {
  TempDir tmp;
  std::unique_ptr<Service> svc;
  std::unique_ptr<http::Router> router;
  std::string admin;  // bearer token

  explicit Fixture(Options o = {}) {
    o.admin_password = kAdminPw;
    svc = dmscore::testing::open_test_service(tmp / "data", o);
    http::RouterOptions ro;
    // Internal errors are logged with their detail: shown when a test fails on one.
    ro.log = [](std::string_view line) { UNSCOPED_INFO("router log: " << line); };
    router = std::make_unique<http::Router>(*svc, ro);
    admin = login("admin", kAdminPw);
  }

  http::Response call(const std::string& method, const std::string& target,
                      const std::string& body = "", const std::string& token = "") {
    http::Request r;
    r.method = method;
    r.target = target;
    r.body = body;
    r.remote = "127.0.0.1";
    r.request_id = "test-req";
    if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
    return router->handle(r);
  }

  // As admin; checks the status.
  json::object ok(const std::string& method, const std::string& target,
                  const std::string& body = "") {
    auto r = call(method, target, body, admin);
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body).as_object();
  }

  std::string login(const std::string& user, const std::string& pw) {
    auto r = call("POST", "/api/v1/login",
                  json::serialize(json::object{{"username", user}, {"password", pw}}));
    INFO(r.body);
    REQUIRE(r.status == 200);
    return std::string(json::parse(r.body).at("idToken").as_string());
  }

  json::object wait_workflow(const std::string& id) {
    for (int i = 0; i < 1000; ++i) {
      auto w = ok("GET", "/api/v1/workflows/" + id).at("workflow").as_object();
      std::string st(w.at("state").as_string());
      if (st == "COMPLETED" || st == "FAILED" || st == "CANCELLED") return w;
      std::this_thread::sleep_for(10ms);
    }
    FAIL("workflow did not finish");
    return {};
  }

  std::string attach(const std::string& name) {
    auto w = ok("POST", "/api/v1/clusters",
                R"({"apiEndpoint":"file://)" + (tmp / name) + R"(","name":")" + name + "\"}");
    auto done = wait_workflow(std::string(w.at("workflowId").as_string()));
    REQUIRE(done.at("state") == "COMPLETED");
    return std::string(done.at("result").at("clusterId").as_string());
  }
};

void expect_error(const http::Response& r, int status, int code,
                  const std::string& message_prefix = "") {
  INFO(r.status << " " << r.body);
  CHECK(r.status == status);
  auto b = json::parse(r.body).as_object();
  CHECK(b.at("code").as_int64() == code);
  CHECK(b.at("details").as_array().empty());
  CHECK(b.at("message").is_string());
  if (!message_prefix.empty())
    CHECK(std::string(b.at("message").as_string()).rfind(message_prefix, 0) == 0);
}

}  // namespace

TEST_CASE("Router: the OpenAPI document is served without a token, byte for byte") {
  Fixture f;
  auto r = f.call("GET", "/api/v1/openapi.json");
  REQUIRE(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.body == dmscore::testing::read_file(DMSCORE_SOURCE_DIR "/docs/openapi.json"));
  auto doc = json::parse(r.body).as_object();
  CHECK(doc.at("openapi").as_string().starts_with("3.0"));
  CHECK(doc.at("paths").as_object().contains("/api/v1/workflows/{workflowId}"));
  expect_error(f.call("GET", "/api/v1/openapi.json?x=1"), 400, 3);
  expect_error(f.call("POST", "/api/v1/openapi.json", "{}", f.admin), 405, 12);
}

TEST_CASE("Router: /metrics answers only GET") {
  Fixture f;
  auto r = f.call("POST", "/metrics", "{}");
  expect_error(r, 405, 12);
  REQUIRE(r.headers.size() == 1);
  CHECK(r.headers[0] == std::make_pair(std::string("Allow"), std::string("GET")));
}

TEST_CASE("Router: health and readiness need no token") {
  Fixture f;
  auto h = f.call("GET", "/healthz");
  CHECK(h.status == 200);
  CHECK(h.body == R"({"status":"ok"})");
  CHECK(f.call("GET", "/readyz").status == 200);
}

TEST_CASE("Router: unknown routes are 404 and wrong methods 405, in the error body shape") {
  Fixture f;
  expect_error(f.call("GET", "/api/v1/nothing", "", f.admin), 404, 5);
  expect_error(f.call("GET", "/nothing", "", f.admin), 404, 5);
  // The root is Cinder's version document (routes/cinder.cpp), read without a token.
  CHECK(f.call("GET", "/").status == 300);
  auto r = f.call("PUT", "/api/v1/clusters", "", f.admin);
  expect_error(r, 405, 12);
  expect_error(f.call("GET", "relative"), 400, 3);
  expect_error(f.call("GET", "/api/v1/workflows/%zz", "", f.admin), 400, 3);
  expect_error(f.call("GET", "/api/v1/workflows/a%00b", "", f.admin), 400, 3);
}

TEST_CASE("Router: error messages quoting bytes that are not UTF-8 are still valid JSON") {
  // Found by fuzz_http: an id from the path was echoed into the message byte for byte.
  Fixture f;
  for (std::string bad : {std::string("/api/v1/workflows/ab\xd5\xff\xff"
                                      "cd"),
                          std::string("/api/v1/clusters/\xc0\xaf"),          // overlong '/'
                          std::string("/api/v1/clusters/\xed\xa0\x80x"),     // a surrogate
                          std::string("/api/v1/clusters/\xf4\x90\x80\x80"),  // past U+10FFFF
                          std::string("/api/v1/clusters/\xe2\x82")}) {       // cut short
    auto r = f.call("GET", bad, "", f.admin);
    INFO(r.body);
    CHECK(r.status >= 400);
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    REQUIRE_FALSE(ec);
    std::string msg(v.at("message").as_string());
    CHECK(msg.find("\xEF\xBF\xBD") != std::string::npos);
  }
  // Well-formed multi-byte text is kept as it is.
  auto r = f.call("GET", "/api/v1/clusters/caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x92\xbe", "", f.admin);
  CHECK(json::parse(r.body).at("message").as_string().find(
            "caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x92\xbe") != json::string::npos);
}

TEST_CASE("Router: Cinder's routes answer valid JSON whatever bytes a client sends") {
  // Found by fuzz_http: a Host header was echoed into the version document's links.
  Fixture f;
  http::Request r;
  r.method = "GET";
  r.target = "/";
  r.request_id = "test-req";
  r.headers.emplace_back("Host", "\"evil\x88\"");
  auto versions = f.router->handle(r);
  CHECK(versions.status == 300);
  boost::system::error_code ec;
  auto doc = json::parse(versions.body, ec);
  REQUIRE_FALSE(ec);
  CHECK(json::serialize(doc).find("http://localhost/v3/") != std::string::npos);
  // An id from the path in a Cinder fault.
  auto fault = f.call("GET", "/v3/p/volumes/ab\xd5\xff", "", f.admin);
  CHECK(fault.status == 404);
  auto v = json::parse(fault.body, ec);
  REQUIRE_FALSE(ec);
  CHECK(std::string(v.at("itemNotFound").at("message").as_string()).find("\xEF\xBF\xBD") !=
        std::string::npos);
  // A version string that is not UTF-8.
  r.target = "/v3/p/os-volume-manage?host=x";
  r.headers = {{"Authorization", "Bearer " + f.admin}, {"OpenStack-API-Version", "volume \xff.1"}};
  auto bad = f.router->handle(r);
  CHECK(bad.status == 400);
  REQUIRE_FALSE((json::parse(bad.body, ec), ec));
}

TEST_CASE("Router: every /api/v1 route but login answers 401 without a valid token") {
  Fixture f;
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/api/v1/service-credentials"},
      {"GET", "/api/v1/clusters"},
      {"POST", "/api/v1/clusters"},
      {"POST", "/api/v1/clusters/refresh"},
      {"GET", "/api/v1/clusters/x"},
      {"DELETE", "/api/v1/clusters/x"},
      {"GET", "/api/v1/clusters/x/projects/p/volumes"},
      {"POST", "/api/v1/clusters/x/projects/p/volumes"},
      {"GET", "/api/v1/clusters/x/projects/p/volumes/v"},
      {"DELETE", "/api/v1/clusters/x/projects/p/volumes/v"},
      {"GET", "/api/v1/clusters/x/projects/p/snapshots"},
      {"POST", "/api/v1/clusters/x/projects/p/snapshots"},
      {"GET", "/api/v1/clusters/x/projects/p/snapshots/s"},
      {"DELETE", "/api/v1/clusters/x/projects/p/snapshots/s"},
      {"POST", "/api/v1/volumes/thickclone"},
      {"POST", "/api/v1/snapshots/thickclone"},
      {"GET", "/api/v1/workflows"},
      {"GET", "/api/v1/workflows/w"},
      {"POST", "/api/v1/workflows/w/cancel"},
      {"GET", "/api/v1/consistency-groups"},
      {"POST", "/api/v1/consistency-groups"},
      {"GET", "/api/v1/consistency-groups/g"},
      {"PUT", "/api/v1/consistency-groups/g"},
      {"DELETE", "/api/v1/consistency-groups/g"},
      {"POST", "/api/v1/consistency-groups/g/action"},
      {"GET", "/api/v1/cg-snapshots"},
      {"POST", "/api/v1/cg-snapshots"},
      {"GET", "/api/v1/cg-snapshots/s"},
      {"GET", "/api/v1/cg-snapshots/s/members"},
      {"DELETE", "/api/v1/cg-snapshots/s"},
      {"POST", "/api/v1/logout"}};
  for (const auto& [m, p] : routes) {
    INFO(m << " " << p);
    auto none = f.call(m, p, "{}");
    expect_error(none, 401, 16);
    auto bad = f.call(m, p, "{}", "not.a.token");
    expect_error(bad, 401, 16);
    http::Request basic;
    basic.method = m;
    basic.target = p;
    basic.headers.emplace_back("Authorization", "Basic YWRtaW46eA==");
    expect_error(f.router->handle(basic), 401, 16);
  }
}

TEST_CASE("Router: login takes JSON or Basic credentials and never tells which part was wrong") {
  Fixture f;
  http::Request basic;
  basic.method = "POST";
  basic.target = "/api/v1/login";
  basic.remote = "10.0.0.1";
  basic.headers.emplace_back("Authorization",
                             "Basic YWRtaW46cm91dGVyLWFkbWluLXB3");  // admin:router-admin-pw
  auto r = f.router->handle(basic);
  REQUIRE(r.status == 200);
  auto b = json::parse(r.body).as_object();
  CHECK(b.at("tokenType") == "Bearer");
  CHECK(b.at("expiresIn") == "3600");
  CHECK(b.at("idToken").as_string().size() > 100);

  auto wrong_pw = f.call("POST", "/api/v1/login", R"({"username":"admin","password":"nope-nope"})");
  auto no_user = f.call("POST", "/api/v1/login", R"({"username":"ghost","password":"nope-nope"})");
  expect_error(wrong_pw, 401, 16);
  CHECK(wrong_pw.body == no_user.body);
  expect_error(f.call("POST", "/api/v1/login", R"({"username":"admin"})"), 400, 3, "password:");
  expect_error(f.call("POST", "/api/v1/login", R"({"username":"admin","password":"x","otp":1})"),
               400, 3, "otp: unknown field");
  expect_error(f.call("POST", "/api/v1/login", R"({"username":)"), 400, 3, "body:");
  expect_error(f.call("POST", "/api/v1/login", R"({"username":5,"password":"x"})"), 400, 3,
               "username:");
}

TEST_CASE("Router: repeated failed logins answer 429 with Retry-After") {
  Fixture f;
  for (int i = 0; i < 5; ++i)
    (void)f.call("POST", "/api/v1/login", R"({"username":"admin","password":"wrong-pass"})");
  auto r = f.call("POST", "/api/v1/login", R"({"username":"admin","password":"router-admin-pw"})");
  expect_error(r, 429, 8);
  bool retry = false;
  for (auto& [k, v] : r.headers) retry |= k == "Retry-After" && std::stoi(v) > 0;
  CHECK(retry);
}

TEST_CASE("Router: a viewer may read but not write, and may log out") {
  Fixture f;
  REQUIRE(f.svc->auth().create_user("vera", "viewer-password", Role::kViewer).ok());
  std::string viewer = f.login("vera", "viewer-password");
  CHECK(f.call("GET", "/api/v1/clusters", "", viewer).status == 200);
  expect_error(f.call("POST", "/api/v1/clusters", R"({"apiEndpoint":"file:///tmp/x"})", viewer),
               403, 7);
  expect_error(f.call("POST", "/api/v1/volumes/thickclone", "{}", viewer), 403, 7);
  CHECK(f.call("POST", "/api/v1/logout", "", viewer).status == 200);
  expect_error(f.call("GET", "/api/v1/clusters", "", viewer), 401, 16);
}

TEST_CASE("Router: service credentials carry pubKeyId, the base64 PEM and the host NQN") {
  Fixture f;
  auto b = f.ok("GET", "/api/v1/service-credentials");
  CHECK(std::string(b.at("pubKeyId").as_string()).rfind("dms-", 0) == 0);
  CHECK(b.at("pubKey").as_string().starts_with(
      "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS"));  // "-----BEGIN PUBLIC KEY-----"
  // The NVMe host NQN the data path uses, "" when this host has none.
  REQUIRE(b.contains("hostNqn"));
  CHECK(b.size() == 3);
}

TEST_CASE("Router: clusters are attached, listed, read, refreshed and detached") {
  Fixture f;
  std::string c1 = f.attach("c1");
  auto list = f.ok("GET", "/api/v1/clusters").at("clusters").as_array();
  REQUIRE(list.size() == 1);
  auto c = f.ok("GET", "/api/v1/clusters/" + c1).at("cluster").as_object();
  CHECK(c.at("id").as_string() == c1);
  CHECK(c.at("kind") == "local");
  CHECK(c.at("apiEndpoints").as_array().at(0).as_string() == "file://" + (f.tmp / "c1"));
  CHECK(c.at("clusterConnectionStatus").at("accessConnectionStatus") == "Connected");
  CHECK_FALSE(c.contains("refreshedAt"));
  auto ref = f.ok("POST", "/api/v1/clusters/refresh", "{}");
  f.wait_workflow(std::string(ref.at("workflowId").as_string()));
  CHECK(f.ok("GET", "/api/v1/clusters/" + c1).at("cluster").as_object().contains("refreshedAt"));
  expect_error(f.call("POST", "/api/v1/clusters/refresh", R"({"clusterId":"nope"})", f.admin), 400,
               3, "clusterId:");
  expect_error(f.call("POST", "/api/v1/clusters", R"({"apiEndpoint":"file://rel"})", f.admin), 400,
               3, "apiEndpoint:");
  expect_error(f.call("POST", "/api/v1/clusters", R"({"apiEndpiont":"file:///x"})", f.admin), 400,
               3);
  expect_error(f.call("POST", "/api/v1/clusters", "", f.admin), 400, 3, "body:");
  CHECK(f.ok("DELETE", "/api/v1/clusters/" + c1).empty());
  expect_error(f.call("GET", "/api/v1/clusters/" + c1, "", f.admin), 404, 5);
  expect_error(f.call("DELETE", "/api/v1/clusters/" + c1, "", f.admin), 404, 5);
}

TEST_CASE("Router: volumes and snapshots are created, listed, read and deleted") {
  Fixture f;
  std::string c1 = f.attach("c1");
  std::string base = "/api/v1/clusters/" + c1 + "/projects/p1";
  auto v =
      f.ok("POST", base + "/volumes", R"({"name":"v1","size":"1048576"})").at("volume").as_object();
  CHECK(v.at("size") == "1048576");
  CHECK(v.at("state") == "Available");
  CHECK(v.at("replicaCount") == 1);
  std::string vid(v.at("id").as_string());
  expect_error(f.call("POST", base + "/volumes", R"({"name":"v1","size":"1048576"})", f.admin), 409,
               6);
  expect_error(f.call("POST", base + "/volumes", R"({"name":"v2","size":"12ab"})", f.admin), 400, 3,
               "size:");
  expect_error(f.call("POST", base + "/volumes", R"({"name":"v 2","size":"4096"})", f.admin), 400,
               3, "name:");
  expect_error(
      f.call("POST", base + "/volumes", R"({"name":"v2","size":"4096","color":"red"})", f.admin),
      400, 3, "color: unknown field");
  expect_error(f.call("POST", base + "/volumes", R"({"name":"v2"})", f.admin), 400, 3, "size:");
  auto list = f.ok("GET", base + "/volumes?pageSize=10");
  CHECK(list.at("volumes").as_array().size() == 1);
  CHECK(list.at("nextPageToken") == "");
  expect_error(f.call("GET", base + "/volumes?pageSize=abc", "", f.admin), 400, 3, "pageSize:");
  expect_error(f.call("GET", base + "/volumes?bogus=1", "", f.admin), 400, 3, "bogus:");
  CHECK(f.ok("GET", base + "/volumes/" + vid).at("volume").at("id").as_string() == vid);

  auto s = f.ok("POST", base + "/snapshots", R"({"name":"s1","sourceVolumeId":")" + vid + "\"}")
               .at("snapshot")
               .as_object();
  CHECK(s.at("state") == "Available");
  std::string sid(s.at("id").as_string());
  CHECK(f.ok("GET", base + "/snapshots").at("snapshots").as_array().size() == 1);
  CHECK(f.ok("GET", base + "/snapshots/" + sid).at("snapshot").at("sourceVolumeId").as_string() ==
        vid);
  expect_error(f.call("POST", base + "/snapshots", R"({"name":"s2"})", f.admin), 400, 3,
               "sourceVolumeId:");
  CHECK(f.ok("DELETE", base + "/snapshots/" + sid).empty());
  CHECK(f.ok("DELETE", base + "/volumes/" + vid).empty());
  expect_error(f.call("GET", base + "/volumes/" + vid, "", f.admin), 404, 5);
  expect_error(
      f.call("GET", "/api/v1/clusters/00000000-0000-4000-8000-000000000000/projects/p1/volumes", "",
             f.admin),
      404, 5);
}

TEST_CASE("Router: a thick clone runs as a workflow whose JSON follows the contract") {
  Fixture f;
  std::string c1 = f.attach("c1"), c2 = f.attach("c2");
  std::string base = "/api/v1/clusters/" + c1 + "/projects/p1";
  auto v = f.ok("POST", base + "/volumes", R"({"name":"src","size":"4194304"})")
               .at("volume")
               .as_object();
  dmscore::testing::make_sparse_image(std::string(v.at("devicePath").as_string()), 4 << 20, 2, 3);
  auto s =
      f.ok("POST", base + "/snapshots",
           R"({"name":"snap","sourceVolumeId":")" + std::string(v.at("id").as_string()) + "\"}");
  std::string sid(s.at("snapshot").at("id").as_string());
  std::string body = R"({"src":{"snapId":")" + sid + R"(","projectName":"p1","clusterId":")" + c1 +
                     R"("},"dst":{"name":"copy","clusterId":")" + c2 + R"("},"verifyClone":true})";
  auto id =
      std::string(f.ok("POST", "/api/v1/volumes/thickclone", body).at("workflowId").as_string());
  auto w = f.wait_workflow(id);
  CHECK(w.at("state") == "COMPLETED");
  CHECK(w.at("type") == "THICK_CLONE_VOLUME");
  CHECK(w.at("progress").at("percent") == 100);
  CHECK(w.at("progress").at("bytesTotal") == "4194304");
  CHECK(w.at("progress").at("bytesDone").is_string());
  CHECK(w.at("thickCloneVolumeRequest").at("src").at("snapId").as_string() == sid);
  CHECK(w.at("result").at("volumeId").is_string());
  CHECK(std::string(w.at("createdAt").as_string()).back() == 'Z');
  CHECK(w.contains("startedAt"));
  CHECK(w.contains("endedAt"));
  CHECK(w.at("cancelRequested") == false);
  expect_error(f.call("POST", "/api/v1/workflows/" + id + "/cancel", "", f.admin), 400, 9);
  expect_error(f.call("POST", "/api/v1/volumes/thickclone", body, f.admin), 409, 6, "dst.name:");
  expect_error(f.call("POST", "/api/v1/volumes/thickclone", R"({"src":{}})", f.admin), 400, 3,
               "dst:");
  expect_error(f.call("POST", "/api/v1/snapshots/thickclone", "[]", f.admin), 400, 3, "body:");
  auto page = f.ok("GET", "/api/v1/workflows?pageSize=2&type=THICK_CLONE_VOLUME");
  CHECK(page.at("workflows").as_array().size() == 1);
  CHECK(f.ok("GET", "/api/v1/workflows?state=COMPLETED").at("workflows").as_array().size() == 3);
  expect_error(f.call("GET", "/api/v1/workflows?state=done", "", f.admin), 400, 3, "state:");
  expect_error(f.call("GET", "/api/v1/workflows?pageSize=5000", "", f.admin), 400, 3, "pageSize:");
  expect_error(f.call("GET", "/api/v1/workflows?nextPageToken=zzz", "", f.admin), 400, 3,
               "nextPageToken:");
  expect_error(f.call("GET", "/api/v1/workflows?pageSize=1&pageSize=2", "", f.admin), 400, 3,
               "pageSize:");
  expect_error(f.call("GET", "/api/v1/workflows/nope", "", f.admin), 404, 5);
  expect_error(f.call("POST", "/api/v1/workflows/" + id + "/cancel", R"({"force":true})", f.admin),
               400, 3, "force:");
}

TEST_CASE("Router: maxRunningWorkflows answers 429 with Retry-After and records nothing") {
  Options o;
  o.max_running_workflows = 1;
  o.copy_rate_limit_bytes_per_sec = 1 << 20;
  o.copy_chunk_bytes = 256 * 1024;
  Fixture f(o);
  std::string c1 = f.attach("c1");
  std::string base = "/api/v1/clusters/" + c1 + "/projects/p1";
  auto v = f.ok("POST", base + "/volumes", R"({"name":"src","size":"8388608"})")
               .at("volume")
               .as_object();
  dmscore::testing::make_sparse_image(std::string(v.at("devicePath").as_string()), 8 << 20, 8, 3);
  auto s =
      f.ok("POST", base + "/snapshots",
           R"({"name":"snap","sourceVolumeId":")" + std::string(v.at("id").as_string()) + "\"}");
  std::string sid(s.at("snapshot").at("id").as_string());
  auto body = [&](const std::string& name) {
    return R"({"src":{"snapId":")" + sid + R"(","projectName":"p1","clusterId":")" + c1 +
           R"("},"dst":{"name":")" + name + R"(","clusterId":")" + c1 + R"("}})";
  };
  auto id = std::string(
      f.ok("POST", "/api/v1/volumes/thickclone", body("a")).at("workflowId").as_string());
  auto r = f.call("POST", "/api/v1/volumes/thickclone", body("b"), f.admin);
  expect_error(r, 429, 8);
  bool retry = false;
  for (auto& [k, val] : r.headers) retry |= k == "Retry-After";
  CHECK(retry);
  CHECK(f.ok("GET", "/api/v1/workflows").at("workflows").as_array().size() == 2);
  CHECK(f.ok("POST", "/api/v1/workflows/" + id + "/cancel").empty());
  CHECK(f.wait_workflow(id).at("state") == "CANCELLED");
}

TEST_CASE("Router: /metrics speaks the Prometheus text format without a token") {
  Fixture f;
  f.attach("c1");
  (void)f.call("GET", "/api/v1/nothing", "", f.admin);
  auto r = f.call("GET", "/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK_THAT(r.body, Catch::Contains("# TYPE dms_workflows gauge"));
  CHECK_THAT(r.body,
             Catch::Contains(R"(dms_workflows{type="ATTACH_CLUSTER",state="COMPLETED"} 1)"));
  CHECK_THAT(r.body, Catch::Contains("dms_copy_bytes_total 0"));
  CHECK_THAT(r.body,
             Catch::Contains(R"(dms_http_requests_total{route="/api/v1/login",code="200"} 1)"));
  CHECK_THAT(r.body, Catch::Contains(R"(dms_http_requests_total{route="unmatched",code="404"} 1)"));
  CHECK_THAT(r.body, Catch::Contains(R"(dms_http_request_duration_seconds_bucket{le="+Inf"})"));
  CHECK_THAT(r.body, Catch::Contains("dms_http_request_duration_seconds_count"));
  // Every non-comment line is "name{labels} value" or "name value".
  std::size_t pos = 0;
  while (pos < r.body.size()) {
    auto end = r.body.find('\n', pos);
    std::string line = r.body.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    CHECK_NOTHROW(std::stod(line.substr(space + 1)));
  }
}

TEST_CASE("Router: an internal error answers with the request id only and logs the detail") {
  std::vector<std::string> lines;
  std::mutex mu;
  Fixture f;
  http::Router router(*f.svc, {[&](std::string_view l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l);
  }});
  std::string c1 = f.attach("c1");
  std::string base = "/api/v1/clusters/" + c1 + "/projects/p1";
  auto v = f.ok("POST", base + "/volumes", R"({"name":"v","size":"1048576"})").at("volume");
  // Put a directory where the volume's data file was: snapshotting it fails deep in file I/O.
  std::string path(v.at("devicePath").as_string());
  std::filesystem::remove(path);
  std::filesystem::create_directory(path);
  http::Request r;
  r.method = "POST";
  r.target = base + "/snapshots";
  r.body = R"({"name":"s","sourceVolumeId":")" + std::string(v.at("id").as_string()) + "\"}";
  r.headers.emplace_back("Authorization", "Bearer " + f.admin);
  r.request_id = "req-42";
  auto resp = router.handle(r);
  expect_error(resp, 500, 13, "internal error");
  CHECK_THAT(resp.body, Catch::Contains("req-42"));
  CHECK_THAT(resp.body, !Catch::Contains(path));
  CHECK_THAT(resp.body, !Catch::Contains("directory"));
  std::lock_guard lock(mu);
  bool detailed = false;
  for (auto& l : lines)
    detailed |= l.find("req-42") != std::string::npos && l.find("INTERNAL") != std::string::npos;
  CHECK(detailed);
}

TEST_CASE("Router: consistency groups are created, listed, read, updated and deleted") {
  Fixture f;
  std::string c1 = f.attach("c1");
  const std::string vols = "/api/v1/clusters/" + c1 + "/projects/p1/volumes";
  std::vector<std::string> ids;
  for (const char* n : {"data", "log", "conf"}) {
    auto v = f.ok("POST", vols, std::string(R"({"name":")") + n + R"(","size":"1048576"})");
    ids.emplace_back(v.at("volume").at("id").as_string());
  }
  auto created =
      f.ok("POST", "/api/v1/consistency-groups",
           R"({"name":"db","description":"orders","clusterId":")" + c1 +
               R"(","projectName":"p1","volumeIds":[")" + ids[0] + R"(",")" + ids[1] + R"("]})")
          .at("consistencyGroup")
          .as_object();
  const std::string gid(created.at("id").as_string());
  CHECK(created.at("status") == "available");
  CHECK(created.at("volumeIds").as_array().size() == 2);
  CHECK(created.at("clusterId").as_string() == c1);
  CHECK(created.at("createdAt").as_string().ends_with("Z"));
  const std::string g = "/api/v1/consistency-groups/" + gid;

  SECTION("bad input changes nothing") {
    const std::string base = R"("clusterId":")" + c1 + R"(","projectName":"p1")";
    expect_error(f.call("POST", "/api/v1/consistency-groups", "", f.admin), 400, 3, "body:");
    expect_error(f.call("POST", "/api/v1/consistency-groups", "{", f.admin), 400, 3, "body:");
    expect_error(f.call("POST", "/api/v1/consistency-groups", "[]", f.admin), 400, 3, "body:");
    expect_error(f.call("POST", "/api/v1/consistency-groups", "{" + base + "}", f.admin), 400, 3,
                 "name:");
    expect_error(
        f.call("POST", "/api/v1/consistency-groups", R"({"name":"x","projectName":"p1"})", f.admin),
        400, 3, "clusterId:");
    expect_error(
        f.call("POST", "/api/v1/consistency-groups", R"({"name":"x y",)" + base + "}", f.admin),
        400, 3, "name:");
    expect_error(f.call("POST", "/api/v1/consistency-groups",
                        R"({"name":"x",)" + base + R"(,"volumeIds":"abc"})", f.admin),
                 400, 3, "volumeIds:");
    expect_error(f.call("POST", "/api/v1/consistency-groups",
                        R"({"name":"x",)" + base + R"(,"volumeIds":[1]})", f.admin),
                 400, 3, "volumeIds[0]:");
    expect_error(f.call("POST", "/api/v1/consistency-groups",
                        R"({"name":"x",)" + base + R"(,"volumeIds":["../../etc"]})", f.admin),
                 400, 3, "volumeIds[0]:");
    std::string many = R"({"name":"x",)" + base + R"(,"volumeIds":[)";
    for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + "\"" + ids[2] + "\"";
    expect_error(f.call("POST", "/api/v1/consistency-groups", many + "]}", f.admin), 400, 3,
                 "volumeIds:");
    expect_error(f.call("POST", "/api/v1/consistency-groups",
                        R"({"name":"x",)" + base + R"(,"shareTypes":[]})", f.admin),
                 400, 3, "shareTypes:");
    expect_error(
        f.call("POST", "/api/v1/consistency-groups",
               R"({"name":"x",)" + base + R"(,"description":")" + std::string(2000, 'd') + "\"}",
               f.admin),
        400, 3, "description:");
    expect_error(
        f.call("POST", "/api/v1/consistency-groups",
               R"({"name":"db2",)" + base + R"(,"volumeIds":[")" + ids[0] + "\"]}", f.admin),
        400, 9, "volumeIds[0]:");
    expect_error(
        f.call("POST", "/api/v1/consistency-groups", R"({"name":"db",)" + base + "}", f.admin), 409,
        6, "name:");
    expect_error(
        f.call(
            "POST", "/api/v1/consistency-groups",
            R"({"name":"x","projectName":"p1","clusterId":"5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e"})",
            f.admin),
        404, 5, "clusterId:");
    expect_error(f.call("PUT", g, R"({"addVolumeIds":[")" + ids[0] + "\"]}", f.admin), 400, 9,
                 "addVolumeIds[0]:");
    expect_error(f.call("PUT", g, R"({"removeVolumeIds":[")" + ids[2] + "\"]}", f.admin), 400, 3,
                 "removeVolumeIds[0]:");
    expect_error(f.call("PUT", g, R"({"name":7})", f.admin), 400, 3, "name:");
    expect_error(f.call("PUT", g, R"({"status":"error"})", f.admin), 400, 3, "status:");
    expect_error(f.call("PUT", g + "?force=1", "{}", f.admin), 400, 3, "force:");
    expect_error(f.call("GET", "/api/v1/consistency-groups?pageSize=-1", "", f.admin), 400, 3,
                 "pageSize:");
    expect_error(f.call("GET", "/api/v1/consistency-groups?nextPageToken=zz", "", f.admin), 400, 3,
                 "nextPageToken:");
    auto after = f.ok("GET", g).at("consistencyGroup").as_object();
    CHECK(after == created);
    CHECK(f.ok("GET", "/api/v1/consistency-groups").at("consistencyGroups").as_array().size() == 1);
  }
  SECTION("update, page, delete; the volumes stay") {
    auto u = f.ok("PUT", g,
                  R"({"name":"db-main","addVolumeIds":[")" + ids[2] + R"("],"removeVolumeIds":[")" +
                      ids[0] + "\"]}")
                 .at("consistencyGroup")
                 .as_object();
    CHECK(u.at("name") == "db-main");
    CHECK(u.at("description") == "orders");
    REQUIRE(u.at("volumeIds").as_array().size() == 2);
    CHECK(u.at("volumeIds").as_array()[0] == ids[1].c_str());
    CHECK(u.at("volumeIds").as_array()[1] == ids[2].c_str());
    f.ok("POST", "/api/v1/consistency-groups",
         R"({"name":"other","clusterId":")" + c1 + R"(","projectName":"p1"})");
    auto p1 = f.ok("GET", "/api/v1/consistency-groups?pageSize=1");
    REQUIRE(p1.at("consistencyGroups").as_array().size() == 1);
    std::string tok(p1.at("nextPageToken").as_string());
    REQUIRE(!tok.empty());
    auto p2 = f.ok("GET", "/api/v1/consistency-groups?pageSize=1&nextPageToken=" + tok);
    CHECK(p2.at("consistencyGroups").as_array()[0].at("name") == "other");
    CHECK(p2.at("nextPageToken") == "");
    // A member cannot be deleted; after the group goes it can.
    expect_error(f.call("DELETE", vols + "/" + ids[1], "", f.admin), 400, 9);
    f.ok("DELETE", g);
    expect_error(f.call("GET", g, "", f.admin), 404, 5);
    f.ok("GET", vols + "/" + ids[1]);
    f.ok("DELETE", vols + "/" + ids[1]);
  }
  SECTION("admin actions: reset status and force delete; viewers are refused") {
    REQUIRE(f.svc->auth().create_user("vera", "vera-password", Role::kViewer).ok());
    std::string viewer = f.login("vera", "vera-password");
    const std::string act = g + "/action";
    expect_error(f.call("POST", act, R"({"resetStatus":{"status":"error"}})", viewer), 403, 7);
    expect_error(f.call("POST", act, R"({"forceDelete":{}})", viewer), 403, 7);
    expect_error(f.call("PUT", g, R"({"name":"v"})", viewer), 403, 7);
    expect_error(f.call("DELETE", g, "", viewer), 403, 7);
    expect_error(
        f.call("POST", "/api/v1/cg-snapshots", R"({"consistencyGroupId":")" + gid + "\"}", viewer),
        403, 7);
    CHECK(f.call("GET", g, "", viewer).status == 200);
    // Malformed actions.
    expect_error(f.call("POST", act, "{}", f.admin), 400, 3, "body:");
    expect_error(
        f.call("POST", act, R"({"resetStatus":{"status":"error"},"forceDelete":{}})", f.admin), 400,
        3, "body:");
    expect_error(f.call("POST", act, R"({"resetStatus":null})", f.admin), 400, 3, "body:");
    expect_error(f.call("POST", act, R"({"resetStatus":{}})", f.admin), 400, 3,
                 "resetStatus.status:");
    expect_error(f.call("POST", act, R"({"resetStatus":{"status":"migrating"}})", f.admin), 400, 3,
                 "resetStatus.status:");
    expect_error(f.call("POST", act, R"({"resetStatus":{"status":"error","x":1}})", f.admin), 400,
                 3, "resetStatus.x:");
    expect_error(f.call("POST", act, R"({"forceDelete":{"now":true}})", f.admin), 400, 3,
                 "forceDelete.now:");
    expect_error(f.call("POST", act, R"({"os-force_delete":{}})", f.admin), 400, 3,
                 "os-force_delete:");
    expect_error(
        f.call("POST", "/api/v1/consistency-groups/nope/action", R"({"forceDelete":{}})", f.admin),
        404, 5);
    CHECK(f.ok("GET", g).at("consistencyGroup").at("status") == "available");
    // reset to creating: delete is refused, a group snapshot too; back to available it works.
    f.ok("POST", act, R"({"resetStatus":{"status":"creating"}})");
    CHECK(f.ok("GET", g).at("consistencyGroup").at("status") == "creating");
    expect_error(f.call("DELETE", g, "", f.admin), 400, 9);
    expect_error(
        f.call("POST", "/api/v1/cg-snapshots", R"({"consistencyGroupId":")" + gid + "\"}", f.admin),
        400, 9);
    f.ok("POST", act, R"({"forceDelete":{}})");
    expect_error(f.call("GET", g, "", f.admin), 404, 5);
    auto audit = dmscore::testing::read_file(f.tmp / "data/audit.log");
    CHECK_THAT(audit, Catch::Contains(R"("event":"cg_reset_status")"));
    CHECK_THAT(audit, Catch::Contains(R"("to":"creating")"));
    CHECK_THAT(audit, Catch::Contains(R"("event":"cg_force_delete")"));
    CHECK_THAT(audit, Catch::Contains(R"("user":"admin")"));
  }
}

TEST_CASE("Router: a group snapshot runs as a workflow and lists its members") {
  Fixture f;
  std::string c1 = f.attach("c1");
  const std::string vols = "/api/v1/clusters/" + c1 + "/projects/p1/volumes";
  std::vector<std::string> ids;
  for (const char* n : {"data", "log"}) {
    auto v = f.ok("POST", vols, std::string(R"({"name":")") + n + R"(","size":"1048576"})");
    ids.emplace_back(v.at("volume").at("id").as_string());
  }
  auto g = f.ok("POST", "/api/v1/consistency-groups",
                R"({"name":"db","clusterId":")" + c1 + R"(","projectName":"p1","volumeIds":[")" +
                    ids[0] + R"(",")" + ids[1] + R"("]})");
  const std::string gid(g.at("consistencyGroup").at("id").as_string());

  expect_error(f.call("POST", "/api/v1/cg-snapshots", "{}", f.admin), 400, 3,
               "consistencyGroupId:");
  expect_error(f.call("POST", "/api/v1/cg-snapshots", R"({"consistencyGroupId":"x"})", f.admin),
               400, 3, "consistencyGroupId:");
  expect_error(f.call("POST", "/api/v1/cg-snapshots",
                      R"({"consistencyGroupId":"5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e"})", f.admin),
               404, 5, "consistencyGroupId:");
  expect_error(
      f.call("POST", "/api/v1/cg-snapshots",
             R"({"consistencyGroupId":")" + gid + R"(","name":")" + std::string(200, 'n') + "\"}",
             f.admin),
      400, 3, "name:");
  expect_error(f.call("POST", "/api/v1/cg-snapshots",
                      R"({"consistencyGroupId":")" + gid + R"(","extra":1})", f.admin),
               400, 3, "extra:");
  expect_error(f.call("GET", "/api/v1/cg-snapshots?consistencyGroupId=zz", "", f.admin), 400, 3,
               "consistencyGroupId:");

  auto r = f.ok("POST", "/api/v1/cg-snapshots",
                R"({"consistencyGroupId":")" + gid + R"(","name":"nightly","description":"d"})");
  auto cs = r.at("cgSnapshot").as_object();
  CHECK(cs.at("status") == "creating");
  CHECK(cs.at("workflowId") == r.at("workflowId"));
  const std::string sid(cs.at("id").as_string());
  auto w = f.wait_workflow(std::string(r.at("workflowId").as_string()));
  INFO(json::serialize(w));
  REQUIRE(w.at("state") == "COMPLETED");
  CHECK(w.at("type") == "CREATE_CG_SNAPSHOT");
  CHECK(w.at("cgSnapshotRequest").at("cgSnapshotId") == sid.c_str());
  CHECK(w.at("result").at("cgSnapshotId") == sid.c_str());
  auto got = f.ok("GET", "/api/v1/cg-snapshots/" + sid).at("cgSnapshot").as_object();
  CHECK(got.at("status") == "available");
  CHECK(got.at("consistencyGroupId") == gid.c_str());
  auto members = f.ok("GET", "/api/v1/cg-snapshots/" + sid + "/members").at("members").as_array();
  REQUIRE(members.size() == 2);
  CHECK(members[0].at("volumeId") == ids[0].c_str());
  CHECK(members[0].at("size") == "1048576");
  const std::string snap0(members[0].at("snapshotId").as_string());
  auto sn = f.ok("GET", "/api/v1/clusters/" + c1 + "/projects/p1/snapshots/" + snap0);
  CHECK(sn.at("snapshot").at("name") == "nightly-data");
  CHECK(f.ok("GET", "/api/v1/cg-snapshots?consistencyGroupId=" + gid)
            .at("cgSnapshots")
            .as_array()
            .size() == 1);
  expect_error(f.call("POST", "/api/v1/cg-snapshots",
                      R"({"consistencyGroupId":")" + gid + R"(","name":"nightly"})", f.admin),
               409, 6, "name:");
  // The member snapshot and the group are protected while the group snapshot exists.
  expect_error(
      f.call("DELETE", "/api/v1/clusters/" + c1 + "/projects/p1/snapshots/" + snap0, "", f.admin),
      400, 9);
  expect_error(f.call("DELETE", "/api/v1/consistency-groups/" + gid, "", f.admin), 400, 9);
  expect_error(f.call("DELETE", "/api/v1/clusters/" + c1, "", f.admin), 400, 9);
  // A group made from the group snapshot: creating, then available with one clone per member.
  expect_error(
      f.call("POST", "/api/v1/consistency-groups",
             R"({"name":"copy","projectName":"p1","sourceCgSnapshotId":")" + sid + "\"}", f.admin),
      400, 3, "projectName:");
  auto made = f.ok("POST", "/api/v1/consistency-groups",
                   R"({"name":"copy","sourceCgSnapshotId":")" + sid + "\"}")
                  .at("consistencyGroup")
                  .as_object();
  CHECK(made.at("status") == "creating");
  auto mw = f.wait_workflow(std::string(made.at("workflowId").as_string()));
  CHECK(mw.at("type") == "CREATE_CONSISTENCY_GROUP");
  CHECK(mw.at("state") == "COMPLETED");
  auto copy = f.ok("GET", "/api/v1/consistency-groups/" + std::string(made.at("id").as_string()))
                  .at("consistencyGroup")
                  .as_object();
  CHECK(copy.at("status") == "available");
  CHECK(copy.at("volumeIds").as_array().size() == 2);
  CHECK(copy.at("sourceCgSnapshotId") == sid.c_str());
  f.ok("DELETE", "/api/v1/consistency-groups/" + std::string(made.at("id").as_string()));
  f.ok("DELETE", "/api/v1/cg-snapshots/" + sid);
  expect_error(f.call("GET", "/api/v1/cg-snapshots/" + sid, "", f.admin), 404, 5);
  expect_error(
      f.call("GET", "/api/v1/clusters/" + c1 + "/projects/p1/snapshots/" + snap0, "", f.admin), 404,
      5);
  f.ok("DELETE", "/api/v1/consistency-groups/" + gid);
}

TEST_CASE("Router: full copies and group thick clones: bad, oversized and hostile input, roles") {
  Fixture f;
  std::string c1 = f.attach("c1");
  const std::string vols = "/api/v1/clusters/" + c1 + "/projects/p1/volumes";
  auto v = f.ok("POST", vols, R"({"name":"data","size":"1048576"})");
  const std::string vid(v.at("volume").at("id").as_string());
  auto created = f.ok("POST", "/api/v1/consistency-groups",
                      R"({"name":"db","clusterId":")" + c1 +
                          R"(","projectName":"p1","volumeIds":[")" + vid + R"("]})");
  const std::string gid(created.at("consistencyGroup").at("id").as_string());
  const std::string fc = "/api/v1/consistency-groups/" + gid + "/full-copies";
  auto none_recorded = [&] {
    CHECK(f.ok("GET", fc).at("copySets").as_array().empty());
    CHECK(f.ok("GET", "/api/v1/cg-snapshots").at("cgSnapshots").as_array().empty());
  };

  // Malformed, missing, wrong types, out of range, oversized, hostile: 400 naming the field.
  expect_error(f.call("POST", fc, "", f.admin), 400, 3, "body:");
  expect_error(f.call("POST", fc, "{", f.admin), 400, 3, "body:");
  expect_error(f.call("POST", fc, "{}", f.admin), 400, 3, "name:");
  expect_error(f.call("POST", fc, R"({"name":"x","count":"many"})", f.admin), 400, 3, "count:");
  expect_error(f.call("POST", fc, R"({"name":"x","count":0})", f.admin), 400, 3, "count:");
  expect_error(f.call("POST", fc, R"({"name":"x","count":4294967297})", f.admin), 400, 3, "count:");
  expect_error(f.call("POST", fc, R"({"name":"x","partial":"yes"})", f.admin), 400, 3, "partial:");
  expect_error(f.call("POST", fc, R"({"name":"x","partial":true,"volumeIds":[1]})", f.admin), 400,
               3, "volumeIds[0]:");
  expect_error(f.call("POST", fc, R"({"name":"x","copyMode":"sync"})", f.admin), 400, 3,
               "copyMode:");
  expect_error(f.call("POST", fc, R"({"name":")" + std::string(300, 'n') + "\"}", f.admin), 400, 3,
               "name:");
  expect_error(f.call("POST", fc, R"({"name":"../../etc"})", f.admin), 400, 3, "name:");
  expect_error(f.call("POST", fc, R"({"name":"x\u0000y"})", f.admin), 400, 3, "name:");
  expect_error(f.call("POST", fc, R"({"name":"x","projectName":"a/b"})", f.admin), 400, 3,
               "projectName:");
  std::string many = R"({"name":"x","partial":true,"volumeIds":[)";
  for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + "\"" + vid + "\"";
  expect_error(f.call("POST", fc, many + "]}", f.admin), 400, 3, "volumeIds:");
  expect_error(
      f.call("POST", "/api/v1/consistency-groups/nope/full-copies", R"({"name":"x"})", f.admin),
      400, 3, "consistencyGroupId:");
  none_recorded();

  auto made = f.ok("POST", fc, R"({"name":"fc"})");
  const std::string sid(made.at("copySet").at("id").as_string());
  const std::string wid(made.at("workflows").at(0).at("workflowId").as_string());
  REQUIRE(f.svc->workflows().wait(WorkflowId(wid), 60s).ok());
  const std::string act = fc + "/" + sid + "/action";
  expect_error(f.call("POST", act, "{}", f.admin), 400, 3, "body:");
  expect_error(f.call("POST", act, R"({"detach":{},"activate":{}})", f.admin), 400, 3, "body:");
  expect_error(f.call("POST", act, R"({"explode":{}})", f.admin), 400, 3, "explode:");
  expect_error(f.call("POST", act, R"({"detach":null})", f.admin), 400, 3, "body:");
  expect_error(f.call("POST", act, R"({"resynchronize":{"copies":"all"}})", f.admin), 400, 3,
               "resynchronize.copies:");
  expect_error(f.call("POST", act, R"({"resynchronize":{"copies":[1,1]}})", f.admin), 400, 3,
               "copies[1]:");
  expect_error(f.call("POST", act, R"({"resynchronize":{"confirm":true}})", f.admin), 400, 3,
               "resynchronize.confirm:");
  expect_error(f.call("POST", act, R"({"restore":{"confirm":"true"}})", f.admin), 400, 3,
               "restore.confirm:");
  expect_error(f.call("POST", act, R"({"restore":{}})", f.admin), 400, 3, "confirm:");
  expect_error(f.call("POST", act, R"({"activate":{}})", f.admin), 400, 9, "copy 1");
  expect_error(f.call("POST", fc + "/" + sid + "x/action", R"({"detach":{}})", f.admin), 404, 5);
  expect_error(f.call("GET", fc + "/" + sid + "?x=1", "", f.admin), 400, 3);
  // The group snapshot thick clone's body.
  const std::string tc = "/api/v1/consistency-groups/thickclone";
  expect_error(f.call("POST", tc, "{}", f.admin), 400, 3, "src:");
  expect_error(f.call("POST", tc, R"({"src":{"cgSnapshotId":"x"},"dst":{"name":"n"}})", f.admin),
               400, 3, "src.cgSnapshotId:");
  expect_error(f.call("POST", tc, R"({"src":{},"dst":{"name":"n"}})", f.admin), 400, 3,
               "src.cgSnapshotId:");
  expect_error(
      f.call("POST", tc, R"({"src":{"cgSnapshotId":"x"},"dst":{"name":"n","size":1}})", f.admin),
      400, 3, "dst.size:");
  // GET of it is the group route with the id "thickclone".
  expect_error(f.call("GET", tc, "", f.admin), 404, 5);

  // Viewers read and are refused every write.
  REQUIRE(f.svc->auth().create_user("vera", "vera-password", Role::kViewer).ok());
  std::string viewer = f.login("vera", "vera-password");
  CHECK(f.call("GET", fc, "", viewer).status == 200);
  CHECK(f.call("GET", fc + "/" + sid, "", viewer).status == 200);
  expect_error(f.call("POST", fc, R"({"name":"v"})", viewer), 403, 7);
  for (const char* body : {R"({"detach":{}})", R"({"resynchronize":{}})",
                           R"({"restore":{"confirm":true}})", R"({"activate":{}})"})
    expect_error(f.call("POST", act, body, viewer), 403, 7);
  expect_error(f.call("POST", tc, R"({"src":{"cgSnapshotId":"x"},"dst":{"name":"n"}})", viewer),
               403, 7);
  // Without a token: 401.
  expect_error(f.call("GET", fc, "", ""), 401, 16);
  // Refusals changed nothing: the one copy is still synchronized.
  CHECK(f.ok("GET", fc + "/" + sid).at("copySet").at("copies").at(0).at("status") ==
        "synchronized");
}
