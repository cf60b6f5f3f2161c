#include "dmscore/lightbits_backend.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "dmscore/identity.hpp"
#include "lightos_emulator.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::LightosEmulator;
using dmscore::testing::TempDir;
namespace json = boost::json;

namespace {

struct Fixture {
  TempDir tmp;
  LightosEmulator emu;
  std::unique_ptr<Identity> identity;
  std::unique_ptr<ClusterTokenSigner> signer;

  Fixture() {
    auto id = Identity::open(tmp / "identity", IdentityOptions{2048, nullptr});
    REQUIRE(id.ok());
    identity = std::move(id).value();
    signer = std::make_unique<ClusterTokenSigner>(*identity);
  }

  void import_key() {
    emu.import_credential("system:" + identity->credentials().pub_key_id,
                          identity->keys()[0].public_pem);
  }

  LightbitsOptions options() {
    LightbitsOptions o;
    o.endpoints = {emu.endpoint()};
    o.label = "emu";
    o.ca_file = emu.ca_file();
    o.token = [this](const std::vector<std::string>& aud) { return signer->token(aud); };
    o.operation_timeout = 20s;
    o.initial_backoff = 20ms;
    o.max_backoff = 200ms;
    o.request_timeout = 5s;
    return o;
  }

  std::unique_ptr<LightbitsBackend> backend(LightbitsOptions o) {
    auto b = LightbitsBackend::open(std::move(o));
    INFO(b.status().to_string());
    REQUIRE(b.ok());
    return std::move(b).value();
  }
  std::unique_ptr<LightbitsBackend> backend() { return backend(options()); }

  void fail_next(const std::string& method, const std::string& path_regex, int status,
                 int count = 1) {
    emu.control(
        "POST", "/control/fail",
        json::serialize(json::object{
            {"method", method}, {"pathRegex", path_regex}, {"status", status}, {"count", count}}));
  }

  int count_calls(const std::string& method, const std::string& path_part) {
    int n = 0;
    for (auto& c : emu.calls()) {
      const auto& o = c.as_object();
      if (o.at("method").as_string() == method &&
          std::string(o.at("path").as_string()).find(path_part) != std::string::npos)
        ++n;
    }
    return n;
  }
};

CreateVolumeRequest vol(const std::string& name, std::uint64_t size = 1 << 30) {
  CreateVolumeRequest r;
  r.project_name = "default";
  r.name = name;
  r.size = size;
  r.replica_count = 2;
  return r;
}

}  // namespace

TEST_CASE("LightbitsBackend: a cluster that does not know the service's key refuses it") {
  Fixture f;
  auto b = f.backend();
  auto info = b->info();
  CHECK(info.status().code() == Code::kUnauthenticated);
  CHECK_THAT(info.status().message(), Catch::StartsWith("cluster emu: "));
  f.import_key();
  info = b->info();
  INFO(info.status().to_string());
  REQUIRE(info.ok());
  CHECK(info->id.size() == 36);
  CHECK_FALSE(info->subsystem_nqn.empty());
  CHECK_FALSE(info->api_endpoints.empty());
  CHECK_FALSE(info->discovery_endpoints.empty());
  CHECK_FALSE(info->servers.empty());
}

TEST_CASE("LightbitsBackend: TLS is verified against the CA file unless told otherwise") {
  Fixture f;
  f.import_key();
  auto o = f.options();
  o.ca_file.clear();  // the system's store does not know the test CA
  auto untrusted = f.backend(o)->info();
  CHECK(untrusted.status().code() == Code::kUnavailable);
  CHECK_THAT(untrusted.status().message(), Catch::Contains("certificate verify failed"));
  o.ca_file = f.emu.self_signed_cert();  // trusting another certificate does not help
  CHECK(f.backend(o)->info().status().code() == Code::kUnavailable);
  o.ca_file.clear();
  o.insecure = true;
  CHECK(f.backend(o)->info().ok());
}

TEST_CASE("LightbitsBackend: volumes and snapshots are created, waited for, listed and deleted") {
  Fixture f;
  f.import_key();
  auto b = f.backend();
  REQUIRE(b->info().ok());
  auto v = b->create_volume(vol("v1"));
  INFO(v.status().to_string());
  REQUIRE(v.ok());
  CHECK(v->state == VolumeState::kAvailable);  // waited through Creating
  CHECK(v->size == (1u << 30));
  CHECK(v->replica_count == 2);
  CHECK(b->get_volume("default", v->id)->name == "v1");
  CHECK(b->find_volume("default", "v1")->id == v->id);
  CHECK(b->find_volume("default", "nope").status().code() == Code::kNotFound);
  CHECK(b->create_volume(vol("v1")).status().code() == Code::kAlreadyExists);
  CHECK(b->mark_volume_available("default", v->id).ok());

  for (const char* n : {"v2", "v3"}) REQUIRE(b->create_volume(vol(n)).ok());
  auto p1 = b->list_volumes("default", {2, ""});
  REQUIRE(p1.ok());
  CHECK(p1->volumes.size() == 2);
  REQUIRE_FALSE(p1->next_page_token.empty());
  auto p2 = b->list_volumes("default", {2, p1->next_page_token});
  REQUIRE(p2.ok());
  CHECK(p2->volumes.size() == 1);
  CHECK(p2->next_page_token.empty());

  CreateSnapshotRequest sr{"default", "s1", v->id, "nightly"};
  auto s = b->create_snapshot(sr);
  INFO(s.status().to_string());
  REQUIRE(s.ok());
  CHECK(s->state == SnapshotState::kAvailable);
  CHECK(s->source_volume_id == v->id);
  CHECK(b->find_snapshot("default", "s1")->id == s->id);
  CHECK(b->list_snapshots("default", {})->snapshots.size() == 1);

  auto thin = vol("thin");
  thin.source_snapshot_id = s->id;
  auto t = b->create_volume(thin);
  REQUIRE(t.ok());
  CHECK(t->source_snapshot_id == s->id);

  REQUIRE(b->delete_volume("default", t->id).ok());  // waits for 404
  CHECK(b->get_volume("default", t->id).status().code() == Code::kNotFound);
  REQUIRE(b->delete_snapshot("default", s->id).ok());
  CHECK(b->get_snapshot("default", s->id).status().code() == Code::kNotFound);
  CHECK(b->delete_volume("default", t->id).code() == Code::kNotFound);  // as the Backend says
  // Deletes went with the object's ETag.
  bool if_match = false;
  for (auto& c : f.emu.calls()) {
    const auto& o = c.as_object();
    if (o.at("method") == "DELETE" && o.contains("ifMatch") && o.at("ifMatch").is_string() &&
        !o.at("ifMatch").as_string().empty())
      if_match = true;
  }
  CHECK(if_match);
}

TEST_CASE("LightbitsBackend: 412 re-reads the ETag, 409 and 503 are retried within the deadline") {
  Fixture f;
  f.import_key();
  auto b = f.backend();
  auto v = b->create_volume(vol("v1"));
  REQUIRE(v.ok());

  f.fail_next("DELETE", "/volumes/", 412);
  f.fail_next("GET", "/volumes/" + v->id, 503, 2);
  REQUIRE(b->delete_volume("default", v->id).ok());
  CHECK(f.count_calls("DELETE", v->id) == 2);

  auto w = b->create_volume(vol("w1"));
  REQUIRE(w.ok());
  f.fail_next("DELETE", "/volumes/", 409, 2);
  REQUIRE(b->delete_volume("default", w->id).ok());
  CHECK(f.count_calls("DELETE", w->id) == 3);

  // Retries stop at the deadline.
  auto o = f.options();
  o.operation_timeout = 300ms;
  auto impatient = f.backend(o);
  f.fail_next("GET", "/clusterinfo", 503, 1000);
  auto r = impatient->info();
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("after retrying"));
  f.emu.control("POST", "/control/reset");
}

TEST_CASE("LightbitsBackend: every LightOS error status maps to its code") {
  Fixture f;
  f.import_key();
  auto b = f.backend();
  REQUIRE(b->info().ok());
  struct Case {
    int http;
    Code code;
  };
  for (auto [http_status, code] :
       {Case{400, Code::kInvalidArgument}, Case{401, Code::kUnauthenticated},
        Case{403, Code::kPermissionDenied}, Case{404, Code::kNotFound},
        Case{500, Code::kUnavailable}, Case{501, Code::kUnimplemented},
        Case{502, Code::kUnavailable}}) {
    f.fail_next("GET", "/volumes/", http_status);
    auto r = b->get_volume("default", "00000000-0000-4000-8000-000000000001");
    INFO(http_status << " -> " << r.status().to_string());
    CHECK(r.status().code() == code);
    CHECK_THAT(r.status().message(), Catch::StartsWith("cluster emu: "));
  }
  f.fail_next("POST", "/volumes", 409);
  CHECK(b->create_volume(vol("x")).status().code() == Code::kAlreadyExists);
  auto o = f.options();
  o.operation_timeout = 200ms;
  auto impatient = f.backend(o);
  f.fail_next("GET", "/volumes/", 409, 1000);
  CHECK(impatient->get_volume("default", "00000000-0000-4000-8000-000000000001").status().code() ==
        Code::kAborted);
  f.emu.control("POST", "/control/reset");
  f.fail_next("GET", "/volumes/", 429, 1000);
  CHECK(impatient->get_volume("default", "00000000-0000-4000-8000-000000000001").status().code() ==
        Code::kUnavailable);
  f.emu.control("POST", "/control/reset");
}

TEST_CASE(
    "LightbitsBackend: malformed, oversized and stalled answers are errors naming the cluster") {
  Fixture f;
  f.import_key();
  auto o = f.options();
  o.max_response_bytes = 1 << 20;
  o.request_timeout = 500ms;
  o.operation_timeout = 1s;
  auto b = f.backend(o);
  REQUIRE(b->info().ok());
  for (std::string kind : {"truncated-json", "wrong-types", "not-json", "missing-fields"}) {
    f.emu.control(
        "POST", "/control/malformed",
        json::serialize(json::object{{"pathRegex", "/clusterinfo"}, {"kind", kind}, {"count", 1}}));
    auto r = b->info();
    INFO(kind << " -> " << r.status().to_string());
    CHECK(r.status().code() == Code::kUnavailable);
    CHECK_THAT(r.status().message(), Catch::StartsWith("cluster emu: "));
  }
  f.emu.control("POST", "/control/malformed",
                json::serialize(json::object{
                    {"pathRegex", "/clusterinfo"}, {"kind", "oversized"}, {"count", 1}}));
  auto big = b->info();
  CHECK(big.status().code() == Code::kResourceExhausted);
  f.emu.control(
      "POST", "/control/stall",
      json::serialize(json::object{
          {"method", "GET"}, {"pathRegex", "/clusterinfo"}, {"seconds", 3}, {"count", 1}}));
  auto slow = b->info();
  CHECK(slow.status().code() == Code::kDeadlineExceeded);
  CHECK_THAT(slow.status().message(), Catch::Contains("no answer within"));
}

TEST_CASE("LightbitsBackend: an endpoint that does not answer is skipped for the next one") {
  Fixture f;
  f.import_key();
  auto o = f.options();
  o.endpoints = {"127.0.0.1:1", f.emu.endpoint()};
  auto b = f.backend(o);
  CHECK(b->info().ok());
}

TEST_CASE("LightbitsBackend: without an NVMe host NQN the data path says how to make one") {
  Fixture f;
  f.import_key();
  TempDir dir;
  auto o = f.options();
  o.host_nqn_file = dir / "hostnqn";  // absent
  auto b = f.backend(o);
  auto v = b->create_volume(vol("v1"));
  REQUIRE(v.ok());
  auto src = b->open_volume_data("default", v->id, {});
  CHECK(src.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(src.status().message(), Catch::Contains("nvme gen-hostnqn"));
  CHECK(b->open_volume_sink("default", v->id, true, {}).status().code() ==
        Code::kFailedPrecondition);
  testing::write_file(dir / "hostnqn", "not-an-nqn\n");
  CHECK(b->open_volume_data("default", v->id, {}).status().code() == Code::kFailedPrecondition);
  o.host_nqn = "bad nqn";
  auto b2 = f.backend(o);
  auto bad = b2->open_volume_data("default", v->id, {});
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("host_nqn"));
  // Nothing was made: the volume's ACL is as it was.
  CHECK_THAT(f.emu.control("GET", "/control/state"), !Catch::Contains("nqn.2014-08"));
  LightbitsOptions none;
  CHECK(LightbitsBackend::open(none).status().code() == Code::kInvalidArgument);
}

TEST_CASE(
    "LightbitsBackend: a key imported through the cluster's credentials endpoint is accepted") {
  // What `lbcli create credential` does, made with a cluster admin's token.
  Fixture f;
  TempDir admin_dir;
  auto admin = Identity::open(admin_dir / "identity", IdentityOptions{2048, nullptr});
  REQUIRE(admin.ok());
  f.emu.import_credential("system:" + (*admin)->credentials().pub_key_id,
                          (*admin)->keys()[0].public_pem);
  ClusterTokenSigner admin_tokens(**admin);
  http::ClientOptions co;
  co.endpoints = {f.emu.https_endpoint()};
  co.ca_file = f.emu.ca_file();
  auto client = http::Client::create(co);
  REQUIRE(client.ok());
  const auto creds = f.identity->credentials();
  std::string body = json::serialize(json::object{{"projectName", "system"},
                                                  {"ID", creds.pub_key_id},
                                                  {"type", "rsa256pubkey"},
                                                  {"payload", creds.pub_key}});  // base64 PEM
  auto b = f.backend();
  CHECK(b->info().status().code() == Code::kUnauthenticated);
  // Without a token the endpoint refuses; with the admin's it imports the service's key.
  auto anon = (*client)->request("POST", "/api/v2/projects/system/credentials", body);
  REQUIRE(anon.ok());
  CHECK(anon->status == 401);
  http::Headers auth{{"Authorization", "Bearer " + *admin_tokens.token(f.emu.https_endpoint())}};
  auto r = (*client)->request("POST", "/api/v2/projects/system/credentials", body, auth);
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  auto again = (*client)->request("POST", "/api/v2/projects/system/credentials", body, auth);
  REQUIRE(again.ok());
  CHECK(again->status == 409);
  CHECK(b->info().ok());
}

TEST_CASE("LightbitsBackend: manage refuses what changed, what is elsewhere and what has no room") {
  Fixture f;
  f.import_key();
  LightbitsOptions o = f.options();
  o.service_id = "00000000-0000-4000-8000-0000000000aa";
  auto b = f.backend(o);
  auto planted = json::parse(f.emu.control("POST", "/control/volumes",
                                           R"({"projectName":"p1","name":"old","size":"8mib"})"));
  const std::string id(planted.at("UUID").as_string());
  auto listed = b->list_manageable_volumes();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  const ManageableObject m = listed->front();
  CHECK(m.reference == "p1/old");
  CHECK(m.object_id == id);
  CHECK(m.safe_to_manage);

  ManageVolumeRequest r;
  r.reference = "p1/old";
  r.project_name = "p1";
  r.fingerprint = m.fingerprint;
  r.labels[kOwnerLabel] = "wf-1";
  // Elsewhere: another project, another id, a reference that is no <project>/<name>.
  ManageVolumeRequest other = r;
  other.project_name = "p2";
  CHECK_THAT(b->manage_volume(other).status().message(), Catch::StartsWith("projectName:"));
  other = r;
  other.id = "00000000-0000-4000-8000-000000000001";
  CHECK_THAT(b->manage_volume(other).status().message(), Catch::StartsWith("id:"));
  other = r;
  other.reference = "no-slash";
  CHECK(b->manage_volume(other).status().code() == Code::kInvalidArgument);
  // Changed since it was listed: refused, and left as the other tool made it.
  f.emu.control("PATCH", "/control/volumes/" + id,
                R"({"labels":[{"key":"owner","value":"someone"}]})");
  auto changed = b->manage_volume(r);
  CHECK(changed.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(changed.status().message(), Catch::Contains("changed since it was listed"));
  auto v = b->get_volume("p1", id);
  REQUIRE(v.ok());
  CHECK(v->labels == std::map<std::string, std::string>{{"owner", "someone"}});
  CHECK(v->size == 8 << 20);
  // Taken as it is now; a second call of the same workflow (a restart) finds it done.
  r.fingerprint.clear();
  auto done = b->manage_volume(r);
  INFO(done.status().to_string());
  REQUIRE(done.ok());
  CHECK(done->id == id);
  CHECK(done->size == std::uint64_t{1} << 30);
  CHECK(done->adopted_size == 8 << 20);
  const int puts = f.count_calls("PUT", "/volumes/");
  REQUIRE(b->manage_volume(r).ok());
  CHECK(f.count_calls("PUT", "/volumes/") == puts);
  // No room for the marks among 16 labels: refused before anything is sent.
  json::array sixteen;
  for (int i = 0; i < 16; ++i)
    sixteen.push_back(json::object{{"key", "k" + std::to_string(i)}, {"value", "v"}});
  f.emu.control(
      "POST", "/control/volumes",
      json::serialize(json::object{{"projectName", "p1"}, {"name", "full"}, {"labels", sixteen}}));
  r.reference = "p1/full";
  CHECK_THAT(b->manage_volume(r).status().message(), Catch::Contains("needs room for"));
  CHECK(f.count_calls("PUT", "/volumes/") == puts);
  // What the driver creates carries its mark.
  auto made = b->create_volume(vol("made"));
  REQUIRE(made.ok());
  CHECK(made->labels.at(kManagedByLabel) == o.service_id);
}
