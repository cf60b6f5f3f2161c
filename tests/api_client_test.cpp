#include "dmscore/http/api_client.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "service_options.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::TempDir;
namespace json = boost::json;

namespace {

constexpr const char* kPw = "api-client-admin-pw";

struct Fixture {
  TempDir tmp;
  std::unique_ptr<Service> svc;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::ApiClient> api;

  explicit Fixture(Options o = {}) {
    o.admin_password = kPw;
    auto s = Service::open(dmscore::testing::test_options(tmp / "data", o));
    REQUIRE(s.ok());
    svc = std::move(s).value();
    http::ServerOptions so;
    so.port = 0;
    so.log = [](std::string_view) {};
    auto srv = http::Server::create(*svc, so);
    REQUIRE(srv.ok());
    server = std::move(srv).value();
    REQUIRE(server->start().ok());
    api = make();
  }

  std::unique_ptr<http::ApiClient> make(const std::string& token = "") {
    http::ClientOptions o;
    o.endpoints = {"http://127.0.0.1:" + std::to_string(server->port())};
    auto a = http::ApiClient::create(o, token);
    REQUIRE(a.ok());
    return std::move(a).value();
  }

  void login() {
    auto r = api->login("admin", kPw);
    REQUIRE(r.ok());
    api->set_token(std::string(json::parse(*r).at("idToken").as_string()));
  }

  std::string attach(const std::string& name) {
    auto r = api->attach_cluster("file://" + (tmp / name), name);
    REQUIRE(r.ok());
    std::string wid(json::parse(*r).at("workflowId").as_string());
    auto done = api->wait_workflow(wid, 30s, 20ms, nullptr);
    REQUIRE(done.ok());
    auto w = json::parse(*done).at("workflow");
    REQUIRE(w.at("state") == "COMPLETED");
    return std::string(w.at("result").at("clusterId").as_string());
  }
};

}  // namespace

TEST_CASE("ApiClient: url_encode keeps unreserved characters and escapes the rest") {
  CHECK(http::url_encode("abc-XYZ_0.9~") == "abc-XYZ_0.9~");
  CHECK(http::url_encode("a b/c?d&e%") == "a%20b%2Fc%3Fd%26e%25");
  CHECK(http::url_encode(std::string("\x00\xff", 2)) == "%00%FF");
}

TEST_CASE("ApiClient: calls answer the service's JSON, errors its code and message") {
  Fixture f;
  auto anon = f.api->list_clusters();
  CHECK(anon.status().code() == Code::kUnauthenticated);
  f.login();
  auto list = f.api->list_clusters();
  REQUIRE(list.ok());
  CHECK(json::parse(*list).at("clusters").as_array().empty());
  std::string cid = f.attach("c1");
  auto one = f.api->get_cluster(cid);
  REQUIRE(one.ok());
  CHECK(json::parse(*one).at("cluster").at("id") == cid.c_str());

  auto missing = f.api->get_workflow("00000000-0000-4000-8000-000000000000");
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains("00000000-0000-4000-8000-000000000000"));

  auto bad = f.api->create_volume(cid, "default", R"({"name":"v","size":"1","extra":1})");
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::StartsWith("extra"));

  // Path parameters are escaped: a project name with a slash cannot reach another route.
  auto odd = f.api->list_volumes(cid, "a/b", {});
  CHECK(odd.status().code() != Code::kOk);

  auto v = f.api->create_volume(cid, "default", R"({"name":"v1","size":"1048576"})");
  REQUIRE(v.ok());
  std::string vid(json::parse(*v).at("volume").at("id").as_string());
  auto s =
      f.api->create_snapshot(cid, "default", R"({"name":"s1","sourceVolumeId":")" + vid + "\"}");
  REQUIRE(s.ok());
  std::string sid(json::parse(*s).at("snapshot").at("id").as_string());
  auto page = f.api->list_snapshots(cid, "default", {1, ""});
  REQUIRE(page.ok());
  CHECK(json::parse(*page).at("snapshots").as_array().size() == 1);
  CHECK(f.api->get_snapshot(cid, "default", sid).ok());
  CHECK(f.api->get_volume(cid, "default", vid).ok());
  CHECK(f.api->list_volumes(cid, "default", {}).ok());
  CHECK(f.api->service_credentials().ok());
  CHECK(f.api->list_workflows({10, "", "COMPLETED", "ATTACH_CLUSTER"}).ok());
  auto bad_filter = f.api->list_workflows({0, "", "SLEEPING", ""});
  CHECK(bad_filter.status().code() == Code::kInvalidArgument);
  CHECK(f.api->delete_snapshot(cid, "default", sid).ok());
  CHECK(f.api->delete_volume(cid, "default", vid).ok());
  auto refresh = f.api->refresh_clusters(cid);
  REQUIRE(refresh.ok());
  std::string rid(json::parse(*refresh).at("workflowId").as_string());
  REQUIRE(f.api->wait_workflow(rid, 30s, 20ms, nullptr).ok());
  CHECK(f.api->detach_cluster(cid).ok());
  CHECK(f.api->get_cluster(cid).status().code() == Code::kNotFound);
  CHECK(f.api->logout().ok());
  CHECK(f.api->list_clusters().status().code() == Code::kUnauthenticated);
}

TEST_CASE("ApiClient: 429 answers keep their Retry-After") {
  Fixture f;
  for (int i = 0; i < 5; ++i) (void)f.api->login("admin", "wrong");
  auto r = f.api->login("admin", "wrong");
  CHECK(r.status().code() == Code::kResourceExhausted);
  REQUIRE(f.api->retry_after().has_value());
  CHECK(*f.api->retry_after() > 0);
  (void)f.api->list_clusters();
  CHECK_FALSE(f.api->retry_after().has_value());  // only the last answer's
}

TEST_CASE("ApiClient: wait_workflow follows a workflow, stops on request and times out") {
  Options o;
  o.copy_rate_limit_bytes_per_sec = 4 << 20;  // a 16 MiB copy takes about 4 s
  Fixture f(o);
  f.login();
  std::string cid = f.attach("c1");
  auto v = f.api->create_volume(cid, "default", R"({"name":"v1","size":"16777216"})");
  REQUIRE(v.ok());
  std::string path(json::parse(*v).at("volume").at("devicePath").as_string());
  dmscore::testing::write_file(path, std::string(16 << 20, 'x'));
  std::string vid(json::parse(*v).at("volume").at("id").as_string());
  auto s =
      f.api->create_snapshot(cid, "default", R"({"name":"s1","sourceVolumeId":")" + vid + "\"}");
  REQUIRE(s.ok());
  std::string sid(json::parse(*s).at("snapshot").at("id").as_string());
  auto clone = [&](const std::string& name) {
    auto r = f.api->thick_clone_volume(json::serialize(
        json::object{{"src", {{"snapId", sid}, {"projectName", "default"}, {"clusterId", cid}}},
                     {"dst", {{"name", name}, {"clusterId", cid}}}}));
    REQUIRE(r.ok());
    return std::string(json::parse(*r).at("workflowId").as_string());
  };
  std::string wid = clone("copy1");

  auto t0 = std::chrono::steady_clock::now();
  auto timed_out = f.api->wait_workflow(wid, 300ms, 50ms, nullptr);
  CHECK(timed_out.status().code() == Code::kDeadlineExceeded);
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);

  int seen = 0;
  auto stopped = f.api->wait_workflow(wid, 30s, 20ms, [&](const std::string& body) {
    CHECK(json::parse(body).at("workflow").at("id") == wid.c_str());
    return ++seen < 3;
  });
  CHECK(stopped.status().code() == Code::kCancelled);
  CHECK(seen == 3);

  REQUIRE(f.api->cancel_workflow(wid).ok());
  auto ended = f.api->wait_workflow(wid, 30s, 20ms, nullptr);
  REQUIRE(ended.ok());
  CHECK(json::parse(*ended).at("workflow").at("state") == "CANCELLED");
  CHECK(f.api->cancel_workflow(wid).status().code() == Code::kFailedPrecondition);
  CHECK(f.api->thick_clone_snapshot("{}").status().code() == Code::kInvalidArgument);
}

// A volume "data" in project p1 of cluster `cid`, and group "db" of it over the API.
Result<std::string> make_group(Fixture& f, const std::string& cid) {
  auto v = f.api->create_volume(cid, "p1", R"({"name":"data","size":"1048576"})");
  if (!v.ok()) return v.status();
  std::string vid(json::parse(*v).at("volume").at("id").as_string());
  return f.api->create_consistency_group(R"({"name":"db","clusterId":")" + cid +
                                         R"(","projectName":"p1","volumeIds":[")" + vid + "\"]}");
}

TEST_CASE("ApiClient: consistency groups and group snapshots over HTTP") {
  Fixture f;
  f.login();
  std::string cid = f.attach("c1");
  auto g = make_group(f, cid);
  INFO(g.status().to_string());
  REQUIRE(g.ok());
  std::string gid(json::parse(*g).at("consistencyGroup").at("id").as_string());
  CHECK(f.api->get_consistency_group(gid).ok());
  auto u = f.api->update_consistency_group(gid, R"({"description":"orders"})");
  REQUIRE(u.ok());
  CHECK(json::parse(*u).at("consistencyGroup").at("description") == "orders");
  auto list = f.api->list_consistency_groups({1, ""});
  REQUIRE(list.ok());
  CHECK(json::parse(*list).at("consistencyGroups").as_array().size() == 1);
  auto cs = f.api->create_cg_snapshot(R"({"consistencyGroupId":")" + gid + R"(","name":"n1"})");
  REQUIRE(cs.ok());
  auto body = json::parse(*cs);
  std::string sid(body.at("cgSnapshot").at("id").as_string());
  auto done =
      f.api->wait_workflow(std::string(body.at("workflowId").as_string()), 30s, 20ms, nullptr);
  REQUIRE(done.ok());
  CHECK(json::parse(*done).at("workflow").at("state") == "COMPLETED");
  auto members = f.api->list_cg_snapshot_members(sid);
  REQUIRE(members.ok());
  CHECK(json::parse(*members).at("members").as_array().size() == 1);
  auto of_group = f.api->list_cg_snapshots({}, gid);
  REQUIRE(of_group.ok());
  CHECK(json::parse(*of_group).at("cgSnapshots").as_array().size() == 1);
  CHECK(f.api->get_cg_snapshot(sid).ok());
  // Errors come back with their code.
  CHECK(f.api->delete_consistency_group(gid).status().code() == Code::kFailedPrecondition);
  CHECK(f.api->list_cg_snapshots({}, "x y").status().code() == Code::kInvalidArgument);
  CHECK(f.api->consistency_group_action(gid, "{}").status().code() == Code::kInvalidArgument);
  REQUIRE(f.api->delete_cg_snapshot(sid).ok());
  CHECK(f.api->get_cg_snapshot(sid).status().code() == Code::kNotFound);
  REQUIRE(f.api->consistency_group_action(gid, R"({"resetStatus":{"status":"error"}})").ok());
  REQUIRE(f.api->delete_consistency_group(gid).ok());
  CHECK(f.api->get_consistency_group(gid).status().code() == Code::kNotFound);
}

TEST_CASE("ApiClient: full copies and group thick clones over HTTP") {
  Fixture f;
  f.login();
  std::string cid = f.attach("c1");
  auto g = make_group(f, cid);
  REQUIRE(g.ok());
  std::string gid(json::parse(*g).at("consistencyGroup").at("id").as_string());
  auto wait = [&](const json::value& w) {
    auto done =
        f.api->wait_workflow(std::string(w.at("workflowId").as_string()), 30s, 20ms, nullptr);
    REQUIRE(done.ok());
    CHECK(json::parse(*done).at("workflow").at("state") == "COMPLETED");
  };
  auto made = f.api->create_full_copies(gid, R"({"name":"fc","count":2})");
  INFO(made.status().to_string());
  REQUIRE(made.ok());
  auto body = json::parse(*made);
  std::string sid(body.at("copySet").at("id").as_string());
  REQUIRE(body.at("workflows").as_array().size() == 2);
  for (const auto& w : body.at("workflows").as_array()) wait(w);
  auto list = f.api->list_copy_sets(gid, {1, ""});
  REQUIRE(list.ok());
  CHECK(json::parse(*list).at("copySets").as_array().size() == 1);
  auto one = f.api->get_copy_set(gid, sid);
  REQUIRE(one.ok());
  CHECK(json::parse(*one).at("copySet").at("copies").at(1).at("status") == "synchronized");
  auto rs = f.api->copy_set_action(gid, sid, R"({"resynchronize":{"copies":[1]}})");
  REQUIRE(rs.ok());
  wait(json::parse(*rs).at("workflows").at(0));
  // Errors come back with their code.
  CHECK(f.api->copy_set_action(gid, sid, R"({"restore":{}})").status().code() ==
        Code::kInvalidArgument);
  CHECK(f.api->get_copy_set(gid, "x").status().code() == Code::kNotFound);
  CHECK(f.api->create_full_copies(gid, R"({"name":"fc"})").status().code() == Code::kAlreadyExists);
  REQUIRE(f.api->copy_set_action(gid, sid, R"({"detach":{}})").ok());
  auto cs = f.api->create_cg_snapshot(R"({"consistencyGroupId":")" + gid + R"("})");
  REQUIRE(cs.ok());
  auto csb = json::parse(*cs);
  wait(csb);
  auto tc = f.api->thick_clone_consistency_group(
      R"({"src":{"cgSnapshotId":")" + std::string(csb.at("cgSnapshot").at("id").as_string()) +
      R"("},"dst":{"name":"db-thick"},"verifyClone":true})");
  INFO(tc.status().to_string());
  REQUIRE(tc.ok());
  wait(json::parse(*tc));
  CHECK(f.api->thick_clone_consistency_group(R"({"src":{}})").status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("ApiClient: typed answers keep the body and read the fields callers act on") {
  Fixture f;
  auto login = http::LoginAnswer::parse(f.api->login("admin", kPw).value_or(""));
  REQUIRE(login.ok());
  CHECK(!login->id_token.empty());
  CHECK(json::parse(login->body).at("idToken") == login->id_token.c_str());
  f.api->set_token(login->id_token);

  auto creds = f.api->service_credentials();
  REQUIRE(creds.ok());
  auto typed = http::ServiceCredentialsAnswer::parse(*creds);
  REQUIRE(typed.ok());
  CHECK(typed->body == *creds);
  CHECK(json::parse(*creds).at("pubKeyId") == typed->pub_key_id.c_str());
  auto pem = typed->pem();
  REQUIRE(pem.has_value());
  CHECK(pem->rfind("-----BEGIN PUBLIC KEY-----", 0) == 0);

  auto attached = f.api->attach_cluster("file://" + (f.tmp / "c1"), "c1");
  REQUIRE(attached.ok());
  auto started = http::StartedWorkflow::parse(*attached);
  REQUIRE(started.ok());
  CHECK(started->body == *attached);
  REQUIRE(f.api->wait_workflow(started->workflow_id, 30s, 20ms, nullptr).ok());
  auto clusters = json::parse(f.api->list_clusters().value_or("{}"));
  std::string cid(clusters.at("clusters").at(0).at("id").as_string());

  auto g = make_group(f, cid);
  REQUIRE(g.ok());
  auto group = http::ConsistencyGroupAnswer::parse(*g);
  REQUIRE(group.ok());
  CHECK(group->group_id == json::parse(*g).at("consistencyGroup").at("id").as_string());
  CHECK(group->workflow_id.empty());  // made of existing volumes: no workflow

  auto made = f.api->create_full_copies(group->group_id, R"({"name":"fc","count":2})");
  REQUIRE(made.ok());
  auto work = http::CopySetWorkAnswer::parse(*made);
  REQUIRE(work.ok());
  CHECK(work->copy_set_id == json::parse(*made).at("copySet").at("id").as_string());
  REQUIRE(work->workflows.size() == 2);
  CHECK(work->workflows[0].index == 1);
  CHECK(work->workflows[1].index == 2);
  for (const auto& w : work->workflows)
    CHECK(f.api->wait_workflow(w.workflow_id, 30s, 20ms, nullptr).ok());

  // Bodies without the field are INTERNAL, naming what is missing.
  auto not_json = http::StartedWorkflow::parse("<html>");
  CHECK(not_json.status().code() == Code::kInternal);
  CHECK(not_json.status().message() == "the service answered something that is not JSON");
  CHECK(http::StartedWorkflow::parse("{}").status().message() ==
        "the service's answer has no workflowId");
  CHECK(http::LoginAnswer::parse(R"({"idToken":1})").status().message() ==
        "the service's answer has no idToken");
  CHECK(http::ConsistencyGroupAnswer::parse(R"({"consistencyGroup":{"id":"g"}})")
            .status()
            .message() == "the service's answer has no consistencyGroup.workflowId");
  CHECK(http::CopySetWorkAnswer::parse(R"({"copySet":{"id":"s"},"workflows":[{"copy":1}]})")
            .status()
            .message() == "the service's answer has no workflows[].workflowId");
  auto empty = http::CopySetWorkAnswer::parse(R"({"copySet":{"id":"s"},"workflows":[]})");
  REQUIRE(empty.ok());
  CHECK(empty->workflows.empty());
  auto odd = http::ServiceCredentialsAnswer::parse(R"({"pubKeyId":"k","pubKey":"not base64!"})");
  REQUIRE(odd.ok());
  CHECK_FALSE(odd->pem().has_value());
}
