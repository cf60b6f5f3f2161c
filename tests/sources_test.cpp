// Source servers over real HTTP: SMS's registration schema case by case (generated from the
// seed's tables), re-registration, the environment check, list filters and paging, update,
// batch delete, changestate, overview, `connected` timing on a manual clock, SMS's error
// bodies and tokens, the agent role, and the native routes.
#include "dmscore/sources.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>

#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "test_support.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

json::value load_cases() {
  std::ifstream in(std::string(DMSCORE_SOURCE_DIR) + "/tests/data/sms/register_cases.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

using Reply = dmscore::testing::HttpReply;

struct Fixture : dmscore::testing::ServiceHarness {
  std::shared_ptr<ManualEnv> clock;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::Client> client;
  std::string admin, agent, viewer;

  explicit Fixture(bool manual_clock = false) {
    Options o;
    o.admin_password = "sources-admin-pw";
    if (manual_clock) {
      clock = std::make_shared<ManualEnv>();
      o.env = clock;
    }
    open_service(o);
    const auto tokens = dmscore::testing::role_tokens(*svc, "sources-admin-pw");
    admin = tokens.admin;
    agent = tokens.agent;
    viewer = tokens.viewer;
    server = dmscore::testing::start_server(*svc);
    client = dmscore::testing::local_client(*server);
  }

  // With SMS's token header.
  Reply sms(const std::string& method, const std::string& target, const std::string& body = "",
            const std::string& token = "") {
    http::Headers h;
    h.emplace_back("X-Auth-Token", token.empty() ? admin : token);
    auto r = client->request(method, target, body, h);
    INFO(method << " " << target << ": " << r.status().to_string());
    REQUIRE(r.ok());
    return {r->status, r->body};
  }
  Reply native(const std::string& method, const std::string& target, const std::string& body = "",
               const std::string& token = "") {
    auto r = client->request(method, target, body,
                             {{"Authorization", "Bearer " + (token.empty() ? admin : token)}});
    REQUIRE(r.ok());
    return {r->status, r->body};
  }
  std::string report(const json::value& body, const std::string& token = "") {
    auto r = sms("POST", "/v3/sources", json::serialize(body), token.empty() ? agent : token);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return std::string(r.json().at("id").as_string());
  }
  json::object show(const std::string& id) {
    auto r = sms("GET", "/v3/sources/" + id);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return r.json().as_object();
  }
};

// A Linux source that passes every check.
json::object good(const std::string& name, const std::string& mac, const std::string& ip) {
  return json::parse(R"({"name":")" + name + R"(","os_type":"LINUX","os_version":"UBUNTU22.04",
    "agent_version":"1.0","ip":")" +
                     ip + R"(","firmware":"UEFI","boot_loader":"GRUB",
    "has_rsync":true,"has_tc":true,"paravirtualization":false,"raw_devices":"",
    "btrfs_list":[],"volume_groups":[],
    "disks":[{"name":"/dev/vda","size":10737418240,"used_size":4096,"partition_style":"GPT",
              "device_use":"BOOT","physical_volumes":[{"name":"/dev/vda1","size":1073741824}]},
             {"name":"/dev/vdb","size":2147483648,"partition_style":"MBR"}],
    "networks":[{"mac":")" +
                     mac + R"(","mtu":1500}]})")
      .as_object();
}

void expect_sms_error(const Reply& r, int status, const std::string& code,
                      const std::string& field = "") {
  INFO(r.body);
  CHECK(r.status == status);
  auto v = r.json();
  REQUIRE(v.is_object());
  CHECK(v.at("error_code") == code.c_str());
  CHECK(v.at("error_msg").is_string());
  if (!field.empty()) {
    REQUIRE(v.as_object().contains("error_param"));
    CHECK(v.at("error_param").at(0) == field.c_str());
    CHECK(v.at("details").at(0).at("error_code") == code.c_str());
  }
}

void apply(json::value& doc, const json::object& op) {
  const auto& path = op.at("path").as_array();
  json::value* at = &doc;
  for (std::size_t i = 0; i + 1 < path.size(); ++i)
    at = path[i].is_string() ? &at->as_object()[path[i].as_string()]
                             : &at->as_array()[static_cast<std::size_t>(path[i].to_number<int>())];
  const json::value& last = path.back();
  const std::string kind(op.at("op").as_string());
  if (kind == "remove") {
    at->as_object().erase(last.as_string());
    return;
  }
  json::value& target = last.is_string()
                            ? at->as_object()[last.as_string()]
                            : at->as_array()[static_cast<std::size_t>(last.to_number<int>())];
  if (kind == "set") {
    target = op.at("value");
  } else {
    const auto n = static_cast<std::size_t>(op.at("count").to_number<std::int64_t>());
    json::array& a = target.as_array();
    if (a.size() > n) a.resize(n);
    while (a.size() < n) a.push_back(op.at("element"));
  }
}

}  // namespace

TEST_CASE("Sources: every bound, enumeration, count and required field of the seed's schema") {
  Fixture f;
  const json::value cases = load_cases();
  const json::value example = cases.at("example");
  std::set<std::string> macs;
  int accepted = 0, refused = 0;
  for (const auto& c : cases.at("cases").as_array()) {
    json::value body = example;
    for (const auto& op : c.at("ops").as_array()) apply(body, op.as_object());
    const std::string name(c.at("name").as_string());
    INFO("case: " << name);
    auto r = f.sms("POST", "/v3/sources", json::serialize(body), f.agent);
    INFO(r.body.substr(0, 600));
    if (c.at("expect") == "accept") {
      REQUIRE(r.status == 200);
      const std::string id(r.json().at("id").as_string());
      CHECK(id.size() == 32);
      CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
      macs.insert(std::string(body.at("networks").at(0).at("mac").as_string()));
      ++accepted;
    } else {
      const std::string field(c.at("field").as_string());
      expect_sms_error(r, 400, "SMS.9001", field);
      CHECK_THAT(std::string(r.json().at("error_msg").as_string()),
                 Catch::StartsWith(field + ": "));
      ++refused;
    }
  }
  CHECK(accepted > 100);
  CHECK(refused > 150);
  // A refusal changes nothing; each accepted report landed on the source of its first mac.
  auto all = f.svc->sources().list({});
  REQUIRE(all.ok());
  CHECK(all->count == static_cast<std::int64_t>(macs.size()));
}

TEST_CASE("Sources: the seed's example registers as it stands, numbers sent as strings included") {
  Fixture f;
  const json::value example = load_cases().at("example");
  const std::string id = f.report(example);
  const json::object s = f.show(id);
  // Numbers given as strings are numbers; the btrfs size with its unit is bytes.
  CHECK(s.at("volume_groups").at(0).at("logical_volumes").at(0).at("inode_size") == 256);
  CHECK(s.at("btrfs_list").at(0).at("size") == 3543348019);  // 3.30 GiB
  CHECK(s.at("btrfs_list").at(0).at("nodesize") == 16384);
  CHECK(s.at("btrfs_list").at(0).at("sectorsize") == 4096);
  CHECK(s.at("btrfs_list").at(0).at("g_vol_used_size") == 3894038528);
  CHECK(s.at("name") == "host-192-168-136-111");
  CHECK(s.at("id") == id.c_str());
  CHECK(s.at("migration_cycle") == "checking");
  CHECK(s.at("connected") == true);
  // The example leaves out what a Linux source must report: the check says what, and why.
  CHECK(s.at("state") == "unavailable");
  bool found = false;
  for (const auto& c : s.at("checks").as_array()) {
    if (c.at("name") != "mandatory_fields") continue;
    found = true;
    CHECK(c.at("result") == "ERROR");
    std::set<std::string> params;
    for (const auto& p : c.at("params").as_array()) params.insert(std::string(p.as_string()));
    CHECK((params == std::set<std::string>{"raw_devices", "has_tc", "networks[0].mtu"}));
  }
  CHECK(found);
  // init_target_server: the disks the target gets.
  CHECK(s.at("init_target_server").at("disks").as_array().size() == 3);
  CHECK(s.at("totalsize") == 42949672960 + 2 * 21474836480);
}

TEST_CASE("Sources: an agent that reports again updates its source, by id or by first mac") {
  Fixture f(true);
  auto body = good("web01", "aa:00:00:00:00:01", "10.0.0.1");
  body.erase("has_tc");
  const std::string id = f.report(body);
  auto first = f.show(id);
  CHECK(first.at("state") == "unavailable");
  const auto t0 = first.at("state_action_time").as_int64();
  f.clock->advance(5s);
  // The same mac: the same source, now complete, so waiting.
  body["has_tc"] = true;
  CHECK(f.report(body) == id);
  auto second = f.show(id);
  CHECK(second.at("state") == "waiting");
  CHECK(second.at("state_action_time").as_int64() == t0 + 5000);
  CHECK(second.at("add_date").as_int64() == first.at("add_date").as_int64());
  // Its id with a new mac: still the same source, under its new mac.
  body["id"] = id;
  body["networks"].as_array()[0].as_object()["mac"] = "aa:00:00:00:00:02";
  CHECK(f.report(body) == id);
  body.erase("id");
  CHECK(f.report(body) == id);
  // Another mac without an id: another source.
  body["networks"].as_array()[0].as_object()["mac"] = "aa:00:00:00:00:03";
  const std::string other = f.report(body);
  CHECK(other != id);
  // An id the service does not know (its source was deleted) registers anew.
  REQUIRE(f.sms("DELETE", "/v3/sources/" + other).status == 200);
  body["id"] = other;
  const std::string again = f.report(body);
  CHECK(again != other);
  CHECK(f.svc->sources().list({})->count == 2);
  // A renamed source keeps the operator's name through later reports.
  REQUIRE(f.sms("PUT", "/v3/sources/" + id, R"({"name":"web-renamed"})").status == 200);
  body.erase("id");
  body["networks"].as_array()[0].as_object()["mac"] = "aa:00:00:00:00:02";
  body["name"] = "web01";
  CHECK(f.report(body) == id);
  CHECK(f.show(id).at("name") == "web-renamed");
  // While migrating, a report does not reset the state.
  REQUIRE(f.sms("PUT", "/v3/sources/" + id + "/changestate",
                R"({"copystate":"REPLICATE","migrationcycle":"replicating"})")
              .status == 200);
  body.erase("has_tc");
  CHECK(f.report(body) == id);
  CHECK(f.show(id).at("state") == "replicate");
}

TEST_CASE("Sources: the environment check fails what cannot be migrated, naming why") {
  Fixture f;
  auto check_of = [&](const json::object& s, const char* name) {
    for (const auto& c : s.at("checks").as_array())
      if (c.at("name") == name) return c.as_object();
    FAIL("no check " << name);
    return json::object();
  };
  auto body = good("ok", "bb:00:00:00:00:01", "10.0.1.1");
  auto s = f.show(f.report(body));
  CHECK(s.at("state") == "waiting");
  for (const auto& c : s.at("checks").as_array()) CHECK(c.at("result") == "OK");

  struct Bad {
    const char* check;
    std::function<void(json::object&)> change;
  };
  const std::vector<Bad> bad = {
      {"os_version", [](json::object& b) { b["os_version"] = "CENTOS6_32BIT"; }},
      {"architecture",
       [](json::object& b) { b["linux_block_check"] = R"({"architecture": "ppc64le"})"; }},
      {"boot_loader", [](json::object& b) { b["boot_loader"] = "LILO"; }},
      {"firmware", [](json::object& b) { b.erase("firmware"); }},
      {"disks", [](json::object& b) { b["disks"] = json::array(); }},
      {"partition_style",
       [](json::object& b) { b["disks"].as_array()[1].as_object()["partition_style"] = "LDM"; }},
      {"mandatory_fields", [](json::object& b) { b.erase("btrfs_list"); }},
      {"windows_environment",
       [](json::object& b) {
         b["os_type"] = "WINDOWS";
         b["os_version"] = "WINDOWS2019_64BIT";
         b["system_dir"] = "C:\\Windows";
         b["driver_files"] = true;
         b["system_services"] = false;
         b["account_rights"] = true;
       }},
  };
  int n = 2;
  for (const auto& b : bad) {
    INFO(b.check);
    auto body2 = good("bad", "bb:00:00:00:00:0" + std::to_string(n++), "10.0.1.2");
    b.change(body2);
    auto r = f.show(f.report(body2));
    CHECK(r.at("state") == "unavailable");
    auto c = check_of(r, b.check);
    CHECK(c.at("result") == "ERROR");
    CHECK_FALSE(c.at("error_code").as_string().empty());
    CHECK_FALSE(c.at("error_or_warn").as_string().empty());
  }
}

TEST_CASE("Sources: list filters, offset paging and count as SMS answers them") {
  Fixture f(true);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto b = good(i < 3 ? "web0" + std::to_string(i) : "db0" + std::to_string(i),
                  "cc:00:00:00:00:0" + std::to_string(i), "10.0.2." + std::to_string(i + 1));
    if (i == 4) b.erase("has_tc");
    ids.push_back(f.report(b));
    f.clock->advance(1s);
  }
  auto list = [&](const std::string& q) {
    auto r = f.sms("GET", "/v3/sources" + q);
    INFO(q << " " << r.body);
    REQUIRE(r.status == 200);
    std::vector<std::string> out;
    const json::value v = r.json();
    for (const auto& s : v.at("source_servers").as_array())
      out.emplace_back(s.at("id").as_string());
    return std::make_pair(v.at("count").as_int64(), out);
  };
  using V = std::vector<std::string>;
  // Newest first; count ignores paging.
  CHECK((list("") == std::make_pair(std::int64_t{5}, V{ids[4], ids[3], ids[2], ids[1], ids[0]})));
  CHECK((list("?limit=2") == std::make_pair(std::int64_t{5}, V{ids[4], ids[3]})));
  CHECK((list("?limit=2&offset=2") == std::make_pair(std::int64_t{5}, V{ids[2], ids[1]})));
  CHECK((list("?limit=2&offset=4") == std::make_pair(std::int64_t{5}, V{ids[0]})));
  CHECK((list("?offset=9") == std::make_pair(std::int64_t{5}, V{})));
  CHECK((list("?limit=0").second.size() == 5));  // 0: the default of 200
  CHECK((list("?name=web") == std::make_pair(std::int64_t{3}, V{ids[2], ids[1], ids[0]})));
  CHECK((list("?name=web&limit=1&offset=1") == std::make_pair(std::int64_t{3}, V{ids[1]})));
  CHECK((list("?state=unavailable").second == V{ids[4]}));
  CHECK((list("?state=waiting").first == 4));
  CHECK((list("?id=" + ids[2]).second == V{ids[2]}));
  CHECK((list("?ip=10.0.2.4").second == V{ids[3]}));
  CHECK((list("?migration_cycle=checking").first == 5));
  CHECK((list("?migration_cycle=replicating").first == 0));
  REQUIRE(f.sms("PUT", "/v3/sources/" + ids[1], R"({"migprojectid":"proj-a"})").status == 200);
  CHECK((list("?migproject=proj-a").second == V{ids[1]}));
  CHECK((list("?connected=true").first == 5));
  CHECK((list("?connected=false").first == 0));
  // The list item is SourceServersResponseBody.
  auto item = f.sms("GET", "/v3/sources?id=" + ids[0]).json().at("source_servers").at(0);
  for (const char* k :
       {"id", "ip", "name", "os_type", "os_version", "state", "connected", "migration_cycle",
        "add_date", "state_action_time", "stage_action_time", "last_visit_time", "checks",
        "totalsize", "replicatesize", "init_target_server"})
    CHECK(item.as_object().contains(k));
  CHECK(item.at("totalsize") == 10737418240 + 2147483648);

  // Bad parameters: 400 naming the parameter, in SMS's body.
  for (auto [q, field] : {std::pair{"?state=bogus", "state"},
                          {"?migration_cycle=later", "migration_cycle"},
                          {"?limit=201", "limit"},
                          {"?limit=-1", "limit"},
                          {"?limit=ten", "limit"},
                          {"?offset=-1", "offset"},
                          {"?offset=99999999999", "offset"},
                          {"?connected=yes", "connected"},
                          {"?enterprise_project_id=0", "enterprise_project_id"}}) {
    INFO(q);
    expect_sms_error(f.sms("GET", std::string("/v3/sources") + q), 400, "SMS.9001", field);
  }
  const std::string long_name(300, 'n');
  expect_sms_error(f.sms("GET", "/v3/sources?name=" + long_name), 400, "SMS.9001", "filter");
}

TEST_CASE("Sources: connected follows the agent's reports and polls on the manual clock") {
  Fixture f(true);
  const std::string id = f.report(good("web", "dd:00:00:00:00:01", "10.0.3.1"));
  const auto t0 = f.show(id).at("last_visit_time").as_int64();
  f.clock->advance(299s);
  CHECK(f.show(id).at("connected") == true);
  f.clock->advance(2s);  // past Options::source_agent_timeout (5 min)
  CHECK(f.show(id).at("connected") == false);
  CHECK(f.show(id).at("last_visit_time").as_int64() == t0);
  CHECK(f.sms("GET", "/v3/sources?connected=false").json().at("count") == 1);
  // The agent polls for its command: connected again.
  auto poll = f.sms("GET", "/v3/sources/" + id + "/command", "", f.agent);
  REQUIRE(poll.status == 200);
  CHECK(poll.json().at("command_name") == "TASK_NOT_STARTED");
  CHECK(f.show(id).at("connected") == true);
  CHECK(f.show(id).at("last_visit_time").as_int64() == t0 + 301000);
  CHECK(f.sms("GET", "/v3/sources?connected=true").json().at("count") == 1);
  f.clock->advance(400s);
  CHECK(f.show(id).at("connected") == false);
  // A report counts as a visit too.
  f.report(good("web", "dd:00:00:00:00:01", "10.0.3.1"));
  CHECK(f.show(id).at("connected") == true);
  expect_sms_error(
      f.sms("GET", "/v3/sources/0123456789abcdef0123456789abcdef/command", "", f.agent), 404,
      "SMS.2216");
}

TEST_CASE("Sources: update, changestate, delete, batch delete and overview") {
  Fixture f(true);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(f.report(good("s" + std::to_string(i), "ee:00:00:00:00:0" + std::to_string(i),
                                "10.0.4." + std::to_string(i + 1))));
  // Update: name, project, what to migrate (SMS's PutDisk), answered with an empty 200.
  auto up = f.sms("PUT", "/v3/sources/" + ids[0],
                  R"({"name":"renamed","migprojectid":"p1","disks":[
                      {"id":"/dev/vdb","need_migration":false},
                      {"id":"/dev/vda","adjust_size":21474836480,
                       "physical_volumes":[{"id":"/dev/vda1","need_migration":true}]}]})");
  INFO(up.body);
  CHECK(up.status == 200);
  CHECK(up.body.empty());
  auto s = f.show(ids[0]);
  CHECK(s.at("name") == "renamed");
  CHECK(s.at("migprojectid") == "p1");
  CHECK(s.at("totalsize") == 21474836480);
  CHECK(s.at("init_target_server").at("disks").as_array().size() == 1);
  CHECK(s.at("init_target_server").at("disks").at(0).at("size") == 21474836480);
  // Bad updates name the field and change nothing.
  for (auto [body, field] :
       {std::pair{R"({"name":""})", "name"},
        {R"({"name":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})", "name"},
        {R"({"disks":[{"id":"/dev/nope"}]})", "disks[0].id"},
        {R"({"disks":[{"id":"/dev/vda","adjust_size":1}]})", "disks[0].adjust_size"},
        {R"({"disks":[{"id":"/dev/vda","physical_volumes":[{"id":"/dev/x"}]}]})",
         "disks[0].physical_volumes[0].id"},
        {R"({"disks":[{"need_migration":true}]})", "disks[0].id"},
        {R"({"disks":"all"})", "disks"},
        {R"({"volume_groups":[{"id":"vg9"}]})", "volume_groups[0].id"},
        {R"({"colour":"red"})", "colour"},
        {R"({"name":)", "body"}}) {
    INFO(body);
    expect_sms_error(f.sms("PUT", "/v3/sources/" + ids[0], body), 400, "SMS.9001", field);
  }
  CHECK(f.show(ids[0]).at("name") == "renamed");
  CHECK(f.show(ids[0]).at("totalsize") == 21474836480);
  expect_sms_error(f.sms("PUT", "/v3/sources/0123456789abcdef0123456789abcdef", R"({"name":"x"})"),
                   404, "SMS.2216");

  // changestate: SMS's upper-case copystate; the times of each change are kept.
  f.clock->advance(3s);
  const auto before = f.show(ids[1]);
  REQUIRE(f.sms("PUT", "/v3/sources/" + ids[1] + "/changestate",
                R"({"copystate":"INIT","migrationcycle":"setting"})", f.agent)
              .status == 200);
  auto changed = f.show(ids[1]);
  CHECK(changed.at("state") == "initialize");
  CHECK(changed.at("migration_cycle") == "setting");
  CHECK(changed.at("state_action_time").as_int64() ==
        before.at("state_action_time").as_int64() + 3000);
  CHECK(changed.at("stage_action_time").as_int64() ==
        before.at("stage_action_time").as_int64() + 3000);
  for (auto [body, field] :
       {std::pair{R"({"copystate":"FLYING","migrationcycle":"setting"})", "copystate"},
        {R"({"copystate":"WAITING","migrationcycle":"later"})", "migrationcycle"},
        {R"({"copystate":"WAITING"})", "migrationcycle"},
        {R"({"migrationcycle":"setting"})", "copystate"},
        {R"({"copystate":7,"migrationcycle":"setting"})", "copystate"}}) {
    INFO(body);
    expect_sms_error(f.sms("PUT", "/v3/sources/" + ids[1] + "/changestate", body), 400, "SMS.9001",
                     field);
  }
  // A source being migrated cannot be deleted, alone or in a batch; nothing is deleted then.
  expect_sms_error(f.sms("DELETE", "/v3/sources/" + ids[1]), 400, "SMS.2015");
  expect_sms_error(
      f.sms("POST", "/v3/sources/delete", R"({"ids":[")" + ids[2] + R"(",")" + ids[1] + R"("]})"),
      400, "SMS.2015");
  CHECK(f.svc->sources().get(ids[2]).ok());
  // Nor its disk choices changed.
  expect_sms_error(f.sms("PUT", "/v3/sources/" + ids[1], R"({"disks":[{"id":"/dev/vda"}]})"), 400,
                   "SMS.2015");
  // Overview: counts per state, every state SMS names present.
  auto ov = f.sms("GET", "/v3/sources/overview").json().as_object();
  for (const char* k :
       {"waiting", "replicate", "syncing", "stopped", "deleting", "cutovering", "unavailable",
        "stopping", "skipping", "finished", "initialize", "error", "cloning", "unconfigured"})
    CHECK(ov.contains(k));
  CHECK(ov.at("waiting") == 3);
  CHECK(ov.at("initialize") == 1);
  CHECK(ov.at("unconfigured") == 3);
  // Batch delete: all or nothing.
  expect_sms_error(f.sms("POST", "/v3/sources/delete",
                         R"({"ids":[")" + ids[2] + R"(","0123456789abcdef0123456789abcdef"]})"),
                   404, "SMS.2216");
  CHECK(f.svc->sources().get(ids[2]).ok());
  for (auto [body, field] : {std::pair{R"({"ids":[]})", "ids"},
                             {R"({})", "ids"},
                             {R"({"ids":"x"})", "ids"},
                             {R"({"ids":[1]})", "ids[0]"}}) {
    INFO(body);
    expect_sms_error(f.sms("POST", "/v3/sources/delete", body), 400, "SMS.9001", field);
  }
  expect_sms_error(
      f.sms("POST", "/v3/sources/delete", R"({"ids":[")" + ids[2] + R"(",")" + ids[2] + R"("]})"),
      400, "SMS.9001", "ids[1]");
  std::string many = R"({"ids":[)";
  for (int i = 0; i < 101; ++i)
    many += std::string(i ? "," : "") + "\"x" + std::to_string(i) + "\"";
  expect_sms_error(f.sms("POST", "/v3/sources/delete", many + "]}"), 400, "SMS.9001", "ids");
  auto del =
      f.sms("POST", "/v3/sources/delete", R"({"ids":[")" + ids[2] + R"(",")" + ids[3] + R"("]})");
  CHECK(del.status == 200);
  CHECK(del.body.empty());
  CHECK(f.svc->sources().get(ids[2]).status().code() == Code::kNotFound);
  CHECK(f.svc->sources().get(ids[3]).status().code() == Code::kNotFound);
  // A delete removes the service's record of exactly the sources named: the others stay as
  // they were, and the machines' disks are never touched (a source is a record, not data).
  CHECK(f.svc->sources().get(ids[0])->name == "renamed");
  CHECK(f.svc->sources().get(ids[1])->state == "initialize");
  CHECK(f.svc->sources().list({})->count == 2);
  auto one = f.sms("DELETE", "/v3/sources/" + ids[0]);
  CHECK(one.status == 200);
  CHECK(one.body.empty());
  expect_sms_error(f.sms("GET", "/v3/sources/" + ids[0]), 404, "SMS.2216");
  expect_sms_error(f.sms("DELETE", "/v3/sources/" + ids[0]), 404, "SMS.2216");
}

TEST_CASE("Sources: SMS's tokens, error bodies and the agent role") {
  Fixture f;
  const std::string body = json::serialize(good("a", "ff:00:00:00:00:01", "10.0.5.1"));
  // No token, a bad one: the API gateway's 401.
  auto none = f.client->request("POST", "/v3/sources", body);
  REQUIRE(none.ok());
  CHECK(none->status == 401);
  CHECK(json::parse(none->body).at("error_code") == "APIGW.0301");
  auto forged = f.sms("GET", "/v3/sources", "", "not.a.token");
  CHECK(forged.status == 401);
  CHECK(forged.json().at("error_code") == "APIGW.0301");
  // Bearer works as well as X-Auth-Token.
  CHECK(f.native("GET", "/v3/sources").status == 200);
  // The agent may register, report, poll and change its state; nothing else.
  const std::string id = f.report(json::parse(body), f.agent);
  for (auto [method, target] : {std::pair{"GET", std::string("/v3/sources")},
                                {"GET", "/v3/sources/" + id},
                                {"DELETE", "/v3/sources/" + id},
                                {"GET", std::string("/api/v1/clusters")},
                                {"GET", std::string("/api/v1/source-servers")},
                                {"GET", std::string("/api/v1/users")}}) {
    INFO(method << " " << target);
    auto r = target.rfind("/v3/", 0) == 0 ? f.sms(method, target, "", f.agent)
                                          : f.native(method, target, "", f.agent);
    CHECK(r.status == 403);
    if (target.rfind("/v3/", 0) == 0) {
      CHECK(r.json().at("error_code") == "SMS.9004");
      CHECK(r.json().at("details").at(0).at("error_code") == "SMS.9004");
    }
  }
  // A viewer reads but does not register.
  CHECK(f.sms("GET", "/v3/sources/" + id, "", f.viewer).status == 200);
  CHECK(f.sms("GET", "/v3/sources/" + id + "/command", "", f.viewer).status == 403);
  auto v = f.sms("POST", "/v3/sources", body, f.viewer);
  CHECK(v.status == 403);
  CHECK(v.json().at("error_code") == "SMS.9004");
  // Unknown paths under /v3/sources: the gateway's 404; a wrong method: 405.
  auto unknown = f.sms("GET", "/v3/sources/" + id + "/nothing");
  CHECK(unknown.status == 404);
  CHECK(unknown.json().at("error_code") == "APIGW.0101");
  CHECK(f.sms("PATCH", "/v3/sources/" + id).status == 405);
  // Malformed, empty and hostile bodies: 400 naming the body or field.
  expect_sms_error(f.sms("POST", "/v3/sources", "", f.agent), 400, "SMS.9001", "body");
  expect_sms_error(f.sms("POST", "/v3/sources", "{\"name\":", f.agent), 400, "SMS.9001", "body");
  expect_sms_error(f.sms("POST", "/v3/sources", "[1,2]", f.agent), 400, "SMS.9001", "body");
  std::string deep(40, '[');
  expect_sms_error(f.sms("POST", "/v3/sources", deep, f.agent), 400, "SMS.9001", "body");
  auto hostile = good("a", "ff:00:00:00:00:02", "10.0.5.1");
  hostile["\x01<script>"] = 1;
  auto h = f.sms("POST", "/v3/sources", json::serialize(hostile), f.agent);
  expect_sms_error(h, 400, "SMS.9001");
  CHECK(h.json().at("error_msg").as_string().find('\x01') == json::string::npos);
  hostile.erase("\x01<script>");
  hostile["name"] = "\xe2\x80\xae evil";  // any UTF-8 name of 1..64 characters is a name
  CHECK(f.sms("POST", "/v3/sources", json::serialize(hostile), f.agent).status == 200);
  // An oversized body: refused before the service reads it (413, or the connection closed
  // while the client still sends), registering nothing.
  const auto before = f.svc->sources().list({})->count;
  std::string huge = R"({"name":")" + std::string(2 << 20, 'a') + R"("})";
  auto big = f.client->request("POST", "/v3/sources", huge, {{"X-Auth-Token", f.agent}});
  CHECK((!big.ok() || big->status == 413));
  CHECK(f.svc->sources().list({})->count == before);
}

TEST_CASE("Sources: the native routes list, show and delete over the same library calls") {
  Fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(f.report(good("n" + std::to_string(i), "12:00:00:00:00:0" + std::to_string(i),
                                "10.0.6." + std::to_string(i + 1))));
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto r = f.native("GET", "/api/v1/source-servers?pageSize=2" +
                                 (token.empty() ? "" : "&nextPageToken=" + token));
    INFO(r.body);
    REQUIRE(r.status == 200);
    const json::value v = r.json();
    for (const auto& s : v.at("sourceServers").as_array())
      seen.emplace_back(s.at("id").as_string());
    token = std::string(r.json().at("nextPageToken").as_string());
    ++pages;
  } while (!token.empty() && pages < 10);
  CHECK(pages == 3);
  CHECK((seen == std::vector<std::string>{ids[4], ids[3], ids[2], ids[1], ids[0]}));
  auto one = f.native("GET", "/api/v1/source-servers/" + ids[0]);
  REQUIRE(one.status == 200);
  auto s = one.json().at("sourceServer");
  CHECK(s.at("osType") == "LINUX");
  CHECK(s.at("state") == "waiting");
  CHECK(s.at("migrationCycle") == "checking");
  CHECK(s.at("connected") == true);
  CHECK(s.at("totalSize") == "12884901888");
  CHECK(s.at("disks").at(0).at("size") == "10737418240");
  CHECK(s.at("report").at("networks").at(0).at("mac") == "12:00:00:00:00:00");
  CHECK(s.at("reportedBy") == "agent1");
  CHECK(f.native("GET", "/api/v1/source-servers?name=n3")
            .json()
            .at("sourceServers")
            .as_array()
            .size() == 1);
  // Errors in the native body.
  for (auto [q, field] : {std::pair{"?state=bogus", "state:"},
                          {"?migrationCycle=x", "migrationCycle:"},
                          {"?pageSize=5000", "pageSize:"},
                          {"?nextPageToken=zz", "nextPageToken:"},
                          {"?connected=1", "connected:"},
                          {"?limit=3", "limit:"}}) {
    INFO(q);
    auto r = f.native("GET", std::string("/api/v1/source-servers") + q);
    CHECK(r.status == 400);
    CHECK(r.json().at("code") == 3);
    CHECK_THAT(std::string(r.json().at("message").as_string()), Catch::StartsWith(field));
  }
  CHECK(f.native("DELETE", "/api/v1/source-servers/" + ids[0]).status == 200);
  auto gone = f.native("GET", "/api/v1/source-servers/" + ids[0]);
  CHECK(gone.status == 404);
  CHECK(gone.json().at("code") == 5);
  // A viewer reads, may not delete.
  CHECK(f.native("GET", "/api/v1/source-servers/" + ids[1], "", f.viewer).status == 200);
  CHECK(f.native("DELETE", "/api/v1/source-servers/" + ids[1], "", f.viewer).status == 403);
}

TEST_CASE("Sources: sizes with units as btrfs prints them") {
  Fixture f;
  auto b = good("u", "13:00:00:00:00:01", "10.0.7.1");
  for (auto [size, bytes] : {std::pair{"0.00B", std::int64_t{0}},
                             {"16.00KiB", std::int64_t{16384}},
                             {"1.50MiB", std::int64_t{1572864}},
                             {"2GiB", std::int64_t{2147483648}},
                             {"1.00TiB", std::int64_t{1099511627776}},
                             {"123", std::int64_t{123}}}) {
    INFO(size);
    b["btrfs_list"] = json::array{json::object{{"name", "/dev/vda2"}, {"size", size}}};
    const std::string id = f.report(b);
    CHECK(f.show(id).at("btrfs_list").at(0).at("size") == bytes);
  }
  for (const char* bad : {"GiB", "1.GiB", "-1GiB", "1.5", "9999999EiB", "1 parsec"}) {
    INFO(bad);
    b["btrfs_list"] = json::array{json::object{{"size", bad}}};
    expect_sms_error(f.sms("POST", "/v3/sources", json::serialize(b), f.agent), 400, "SMS.9001",
                     "btrfs_list[0].size");
  }
}
