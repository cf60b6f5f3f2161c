// The users API over real HTTP: admins create, list and delete users of the three roles and set
// their passwords (revoking their tokens), every change audited with the admin who made it;
// and the refusals of malformed, missing, oversized and hostile input.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "test_support.hpp"
#include "test_util.hpp"

using namespace dmscore;
namespace json = boost::json;

namespace {

struct Fixture : dmscore::testing::ServiceHarness {
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::Client> client;
  std::string admin;
  std::string audit_path;

  Fixture() {
    Options o;
    o.admin_password = "users-admin-pw";
    open_service(o);
    audit_path = tmp / "data/audit.log";
    admin = svc->auth().login("admin", "users-admin-pw", "127.0.0.1")->id_token;
    server = dmscore::testing::start_server(*svc);
    client = dmscore::testing::local_client(*server);
  }
  std::pair<int, json::value> call(const std::string& method, const std::string& target,
                                   const std::string& body = "", const std::string& token = "") {
    auto r = client->request(method, target, body,
                             {{"Authorization", "Bearer " + (token.empty() ? admin : token)}});
    REQUIRE(r.ok());
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    return {r->status, ec ? json::value() : v};
  }
  std::string login(const std::string& user, const std::string& pw) {
    auto r = svc->auth().login(user, pw, "127.0.0.1");
    return r.ok() ? r->id_token : std::string();
  }
};

}  // namespace

TEST_CASE("Users: admins create, list and delete users of every role") {
  Fixture f;
  for (auto [name, role] : {std::pair{"ann", "admin"}, {"vic", "viewer"}, {"agt", "agent"}}) {
    auto [st, body] = f.call("POST", "/api/v1/users",
                             R"({"username":")" + std::string(name) +
                                 R"(","password":"password-1","role":")" + role + R"("})");
    INFO(json::serialize(body));
    REQUIRE(st == 200);
    CHECK(body.at("user").at("username") == name);
    CHECK(body.at("user").at("role") == role);
    CHECK(body.at("user").as_object().contains("createdAt"));
    CHECK_FALSE(json::serialize(body).find("password-1") != std::string::npos);
  }
  auto [st, list] = f.call("GET", "/api/v1/users");
  REQUIRE(st == 200);
  std::vector<std::string> names;
  for (const auto& u : list.at("users").as_array())
    names.emplace_back(u.at("username").as_string());
  CHECK((names == std::vector<std::string>{"admin", "agt", "ann", "vic"}));
  // Each logs in with its role.
  const std::string agent = f.login("agt", "password-1");
  REQUIRE_FALSE(agent.empty());
  CHECK(f.svc->auth().verify(agent)->role == Role::kAgent);
  // A taken name: 409.
  CHECK(f.call("POST", "/api/v1/users",
               R"({"username":"vic","password":"password-2","role":"viewer"})")
            .first == 409);
  // Delete; the token of a deleted user stops working.
  CHECK(f.call("DELETE", "/api/v1/users/agt").first == 200);
  CHECK(f.call("GET", "/v3/sources", "", agent).first == 401);
  CHECK(f.call("DELETE", "/api/v1/users/agt").first == 404);
  // The last admin cannot go; another admin can.
  CHECK(f.call("DELETE", "/api/v1/users/ann").first == 200);
  CHECK(f.call("DELETE", "/api/v1/users/admin").first == 400);
}

TEST_CASE("Users: an admin sets a password, revoking the user's tokens, and it is audited") {
  Fixture f;
  REQUIRE(f.svc->auth().create_user("vic", "old-password", Role::kViewer).ok());
  const std::string old_token = f.login("vic", "old-password");
  REQUIRE_FALSE(old_token.empty());
  CHECK(f.call("GET", "/api/v1/clusters", "", old_token).first == 200);
  CHECK(f.call("PUT", "/api/v1/users/vic/password", R"({"password":"new-password"})").first == 200);
  CHECK(f.call("GET", "/api/v1/clusters", "", old_token).first == 401);
  CHECK(f.login("vic", "old-password").empty());
  CHECK_FALSE(f.login("vic", "new-password").empty());
  CHECK(f.call("PUT", "/api/v1/users/nobody/password", R"({"password":"new-password"})").first ==
        404);
  const std::string audit = dmscore::testing::read_file(f.audit_path);
  CHECK_THAT(audit, Catch::Contains(R"("action":"set_password")"));
  CHECK_THAT(audit, Catch::Contains(R"("by":"admin")"));
  CHECK(audit.find("new-password") == std::string::npos);
  CHECK(audit.find("old-password") == std::string::npos);
}

TEST_CASE("Users: only admins manage users") {
  Fixture f;
  REQUIRE(f.svc->auth().create_user("vic", "viewer-password", Role::kViewer).ok());
  REQUIRE(f.svc->auth().create_user("agt", "agent-password", Role::kAgent).ok());
  for (const auto& token : {f.login("vic", "viewer-password"), f.login("agt", "agent-password")}) {
    CHECK(f.call("GET", "/api/v1/users", "", token).first == 403);
    CHECK(f.call("POST", "/api/v1/users",
                 R"({"username":"x1","password":"password-1","role":"admin"})", token)
              .first == 403);
    CHECK(f.call("DELETE", "/api/v1/users/admin", "", token).first == 403);
    CHECK(f.call("PUT", "/api/v1/users/admin/password", R"({"password":"password-9"})", token)
              .first == 403);
  }
  CHECK(f.call("GET", "/api/v1/users", "", "forged").first == 401);
  CHECK(f.svc->auth().list_users()->size() == 3);
}

TEST_CASE("Users: malformed, missing, oversized and hostile input names the field") {
  Fixture f;
  const std::string long_name(65, 'n');
  const std::string long_pw(1025, 'p');
  for (auto [body, field] :
       {std::pair{std::string(R"({"password":"password-1","role":"viewer"})"), "username:"},
        {R"({"username":"u1","role":"viewer"})", "password:"},
        {R"({"username":"u1","password":"password-1"})", "role:"},
        {R"({"username":"u1","password":"password-1","role":"root"})", "role:"},
        {R"({"username":"u1","password":"short","role":"viewer"})", "password:"},
        {R"({"username":"u1","password":")" + long_pw + R"(","role":"viewer"})", "password:"},
        {R"({"username":")" + long_name + R"(","password":"password-1","role":"viewer"})", "name:"},
        {R"({"username":"../etc","password":"password-1","role":"viewer"})", "name:"},
        {R"({"username":"a\u0000b","password":"password-1","role":"viewer"})", "name:"},
        {R"({"username":5,"password":"password-1","role":"viewer"})", "username:"},
        {R"({"username":"u1","password":"password-1","role":"viewer","admin":true})", "admin:"},
        {R"({"username":)", "body:"},
        {"", "body:"}}) {
    INFO(body);
    auto [st, v] = f.call("POST", "/api/v1/users", body);
    CHECK(st == 400);
    CHECK(v.at("code") == 3);
    CHECK_THAT(std::string(v.at("message").as_string()), Catch::StartsWith(field));
    CHECK(std::string(v.at("message").as_string()).find("password-1") == std::string::npos);
  }
  CHECK(f.svc->auth().list_users()->size() == 1);
  CHECK(f.call("PUT", "/api/v1/users/admin/password", R"({})").first == 400);
  CHECK(f.call("PUT", "/api/v1/users/admin/password", R"({"password":"x"})").first == 400);
  CHECK(f.call("POST", "/api/v1/users?x=1", R"({})").first == 400);
}
