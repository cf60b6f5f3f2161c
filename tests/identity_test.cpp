#include "dmscore/identity.hpp"

#include <sys/stat.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>

#include "auth/jwt.hpp"
#include "test_util.hpp"

using namespace dmscore;
using dmscore::testing::TempDir;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::unique_ptr<Identity> open_identity(const std::string& dir, std::shared_ptr<Env> env = nullptr,
                                        int bits = 2048) {
  IdentityOptions o;
  o.rsa_bits = bits;
  o.env = std::move(env);
  auto id = Identity::open(dir, o);
  INFO(id.status().to_string());
  REQUIRE(id.ok());
  return std::move(id).value();
}

std::string private_key_file(const std::string& dir, const std::string& id) {
  return dir + "/" + id + ".pem";
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

}  // namespace

TEST_CASE("Identity: the first open makes a 3072-bit key pair kept 0600 with a stable dms- id") {
  TempDir tmp;
  std::string pub_id;
  {
    IdentityOptions o;  // the default size, checked with the openssl command line
    auto id = Identity::open(tmp / "identity", o);
    REQUIRE(id.ok());
    pub_id = (*id)->credentials().pub_key_id;
  }
  CHECK(pub_id.rfind("dms-", 0) == 0);
  CHECK(pub_id.size() == 4 + 36);
  std::string key = private_key_file(tmp / "identity", pub_id);
  CHECK(dmscore::testing::file_mode(key) == 0600);
  CHECK(dmscore::testing::file_mode(tmp / "identity") == 0700);
  CHECK(sh("openssl pkey -in " + key +
           " -noout -text 2>/dev/null | grep -q 'Private-Key: (3072 bit'") == 0);
  auto again = open_identity(tmp / "identity");
  CHECK(again->credentials().pub_key_id == pub_id);
}

TEST_CASE("Identity: credentials carry the PEM public key in base64, ready for lbcli") {
  TempDir tmp;
  auto id = open_identity(tmp / "identity");
  auto c = id->credentials();
  REQUIRE(c.pub_key.find_first_not_of(
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
          std::string::npos);
  dmscore::testing::write_file(tmp / "pub.b64", c.pub_key);
  REQUIRE(sh("base64 -d " + (tmp / "pub.b64") + " > " + (tmp / "pub.pem")) == 0);
  CHECK(dmscore::testing::read_file(tmp / "pub.pem").rfind("-----BEGIN PUBLIC KEY-----", 0) == 0);
  CHECK(dmscore::testing::read_file(tmp / "pub.pem") == id->keys()[0].public_pem);
}

TEST_CASE("Identity: the public key verifies a signature made with the private key (openssl)") {
  TempDir tmp;
  auto id = open_identity(tmp / "identity");
  std::string data = "header.payload";
  auto sig = id->sign_with_cluster_key(data);
  REQUIRE(sig.ok());
  dmscore::testing::write_file(tmp / "data", data);
  dmscore::testing::write_file(tmp / "sig", *sig);
  dmscore::testing::write_file(tmp / "pub.pem", id->keys()[0].public_pem);
  CHECK(sh("openssl dgst -sha256 -verify " + (tmp / "pub.pem") + " -signature " + (tmp / "sig") +
           " " + (tmp / "data") + " | grep -q 'Verified OK'") == 0);
  dmscore::testing::write_file(tmp / "data", "header.payloaX");
  CHECK(sh("openssl dgst -sha256 -verify " + (tmp / "pub.pem") + " -signature " + (tmp / "sig") +
           " " + (tmp / "data") + " 2>/dev/null | grep -q 'Verified OK'") != 0);
}

TEST_CASE("Identity: a private key readable by others is refused with the fix in the message") {
  TempDir tmp;
  std::string pub_id = open_identity(tmp / "identity")->credentials().pub_key_id;
  std::string key = private_key_file(tmp / "identity", pub_id);
  ::chmod(key.c_str(), 0644);
  auto id = Identity::open(tmp / "identity", IdentityOptions{2048, nullptr});
  REQUIRE_FALSE(id.ok());
  CHECK(id.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(id.status().message(), Catch::Contains("chmod 600 " + key));
  CHECK_THAT(id.status().message(), Catch::Contains("0644"));
  CHECK_THAT(id.status().message(), !Catch::Contains("PRIVATE KEY"));
  ::chmod(key.c_str(), 0600);
  CHECK(Identity::open(tmp / "identity", IdentityOptions{2048, nullptr}).ok());
}

TEST_CASE("Identity: a garbled key file is refused, not replaced") {
  TempDir tmp;
  std::string pub_id = open_identity(tmp / "identity")->credentials().pub_key_id;
  std::string key = private_key_file(tmp / "identity", pub_id);
  dmscore::testing::write_file(key, "not a key");
  ::chmod(key.c_str(), 0600);
  CHECK(Identity::open(tmp / "identity", IdentityOptions{2048, nullptr}).status().code() ==
        Code::kFailedPrecondition);
  CHECK(dmscore::testing::read_file(key) == "not a key");
}

TEST_CASE("Identity: rotation keeps the previous key until confirmed, across restarts") {
  TempDir tmp;
  auto id = open_identity(tmp / "identity");
  std::string first = id->credentials().pub_key_id;
  REQUIRE(id->rotate().ok());
  std::string second = id->credentials().pub_key_id;
  CHECK(second != first);
  auto keys = id->keys();
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].pub_key_id == second);
  CHECK(keys[0].current);
  CHECK(keys[1].pub_key_id == first);
  CHECK_FALSE(keys[1].current);
  CHECK(id->rotate().code() == Code::kFailedPrecondition);
  id.reset();
  id = open_identity(tmp / "identity");
  CHECK(id->keys().size() == 2);
  REQUIRE(id->confirm_rotation().ok());
  CHECK(id->keys().size() == 1);
  CHECK_FALSE(fs::exists(private_key_file(tmp / "identity", first)));
  CHECK(id->confirm_rotation().code() == Code::kFailedPrecondition);
}

TEST_CASE("Identity: bad options are refused") {
  TempDir tmp;
  CHECK(Identity::open(tmp / "i", IdentityOptions{1024, nullptr}).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("ClusterTokenSigner: RS256 tokens with kid system:<pubKeyId>, cached until near expiry") {
  TempDir tmp;
  auto env = std::make_shared<ManualEnv>();
  auto id = open_identity(tmp / "identity", env);
  ClusterTokenSigner signer(*id, {}, env);
  const std::string aud = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";
  auto t1 = signer.token(aud);
  REQUIRE(t1.ok());
  auto parts = detail::split_jws(*t1);
  REQUIRE(parts);
  auto h = json::parse(parts->header_json).as_object();
  CHECK(h.at("alg") == "RS256");
  CHECK(h.at("kid").as_string() == "system:" + id->credentials().pub_key_id);
  auto c = json::parse(parts->payload_json).as_object();
  CHECK(c.at("roles").as_array().at(0) == "system:cluster-admin");
  CHECK(c.at("exp").as_int64() - c.at("iat").as_int64() == 300);  // short-lived
  CHECK(c.at("aud").as_string() == aud);
  CHECK(c.at("iss") == "libdmscore");
  CHECK(c.contains("sub"));
  CHECK(*signer.token(aud) == *t1);
  env->advance(std::chrono::seconds(230));
  CHECK(*signer.token(aud) == *t1);
  env->advance(std::chrono::seconds(20));  // within refresh_before of expiry
  CHECK(*signer.token(aud) != *t1);
  REQUIRE(id->rotate().ok());
  auto t3 = signer.token(aud);
  CHECK(json::parse(detail::split_jws(*t3)->header_json).at("kid").as_string() ==
        "system:" + id->credentials().pub_key_id);
}

TEST_CASE("ClusterTokenSigner: each cluster gets a token naming it, never another's") {
  TempDir tmp;
  auto env = std::make_shared<ManualEnv>();
  auto id = open_identity(tmp / "identity", env);
  ClusterTokenSigner signer(*id, {}, env);
  auto a = signer.token("cluster-a");
  auto b = signer.token("cluster-b");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
  CHECK(json::parse(detail::split_jws(*a)->payload_json).at("aud") == "cluster-a");
  CHECK(json::parse(detail::split_jws(*b)->payload_json).at("aud") == "cluster-b");
  CHECK(*signer.token("cluster-a") == *a);
  CHECK(signer.token("").status().code() == Code::kInvalidArgument);
}
