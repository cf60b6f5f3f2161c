#include "dmscore/auth.hpp"

#include <openssl/hmac.h>

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <ctime>
#include <thread>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "auth/jwt.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::TempDir;
namespace json = boost::json;

namespace {

constexpr const char* kPassword = "correct horse battery";

struct Fixture {
  TempDir tmp;
  std::shared_ptr<ManualEnv> env =
      std::make_shared<ManualEnv>(Env::SystemTime(std::chrono::seconds(1800000000)));
  std::unique_ptr<Store> store;
  std::unique_ptr<Identity> identity;
  std::unique_ptr<Auth> auth;
  std::mutex log_mu;
  std::vector<std::string> log;

  AuthOptions base;

  explicit Fixture(AuthOptions o = {}) : base(std::move(o)) {
    auto s = Store::open(tmp / "dms.db");
    REQUIRE(s.ok());
    store = std::move(s).value();
    auto id = Identity::open(tmp / "identity", IdentityOptions{2048, env});
    REQUIRE(id.ok());
    identity = std::move(id).value();
    make_auth();
  }

  void make_auth(int scrypt = 0) {
    AuthOptions o = base;
    o.scrypt_log2_n = scrypt ? scrypt : (base.scrypt_log2_n == 17 ? 10 : base.scrypt_log2_n);
    o.audit_log_path = tmp / "audit.log";
    o.env = env;
    o.log = [this](std::string_view l) {
      std::lock_guard lock(log_mu);
      log.emplace_back(l);
    };
    auth = std::make_unique<Auth>(*store, *identity, o);
  }

  std::string login(const std::string& user = "alice", const std::string& pw = kPassword) {
    auto r = auth->login(user, pw, "127.0.0.1");
    INFO(r.status().to_string());
    REQUIRE(r.ok());
    return r->id_token;
  }

  // A token signed with the real login key over the given header and claims.
  std::string sign(const json::object& header, const json::object& claims) {
    std::string input = detail::jws_signing_input(json::serialize(header), json::serialize(claims));
    return input + "." + detail::base64url_encode(*identity->sign_with_login_key(input));
  }

  json::object header() {
    return {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", identity->login_key_id()}};
  }

  json::object claims() {
    auto now =
        std::chrono::duration_cast<std::chrono::seconds>(env->now().time_since_epoch()).count();
    return {{"iss", "libdmscore"}, {"aud", "dms-api"}, {"sub", "alice"}, {"iat", now},
            {"nbf", now},          {"exp", now + 600}, {"tv", 1}};
  }

  void expect_rejected(const std::string& token) {
    auto p = auth->verify(token);
    CHECK(p.status().code() == Code::kUnauthenticated);
    CHECK_THAT(p.status().message(), !Catch::Contains("alice"));
  }
};

}  // namespace

TEST_CASE("Auth: password hashes are salted, self-describing scrypt and checked exactly") {
  ManualEnv env;
  auto a = hash_password("secret-pass", 10, env);
  auto b = hash_password("secret-pass", 10, env);
  REQUIRE(a.ok());
  CHECK(a->rfind("$scrypt$ln=10,r=8,p=1$", 0) == 0);
  CHECK(*a != *b);  // salted
  CHECK(verify_password("secret-pass", *a));
  CHECK_FALSE(verify_password("secret-pasS", *a));
  CHECK_FALSE(verify_password("", *a));
  CHECK(password_hash_cost(*a) == 10);
  for (std::string bad : std::vector<std::string>{"", "$scrypt$", "$scrypt$ln=99,r=8,p=1$AAAA$AAAA",
                                                  "plain", a->substr(0, a->size() - 2),
                                                  "$scrypt$ln=10,r=1,p=1$" + a->substr(22)}) {
    CHECK_FALSE(verify_password("secret-pass", bad));
    CHECK(password_hash_cost(bad) == 0);
  }
  CHECK(hash_password("x", 9, env).status().code() == Code::kInvalidArgument);
}

TEST_CASE("Auth: the default cost is scrypt N=2^17") { CHECK(AuthOptions{}.scrypt_log2_n == 17); }

TEST_CASE("Auth: login issues a Bearer RS256 token that verifies into the user and role") {
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kViewer).ok());
  auto r = f.auth->login("alice", kPassword, "10.1.1.1");
  REQUIRE(r.ok());
  CHECK(r->token_type == "Bearer");
  CHECK(r->expires_in == 3600);
  auto parts = detail::split_jws(r->id_token);
  REQUIRE(parts);
  auto h = json::parse(parts->header_json).as_object();
  CHECK(h.at("alg") == "RS256");
  CHECK(h.at("kid").as_string() == f.identity->login_key_id());
  CHECK(h.at("kid").as_string() != "system:" + f.identity->credentials().pub_key_id);
  auto p = f.auth->verify(r->id_token);
  REQUIRE(p.ok());
  CHECK(p->user == "alice");
  CHECK(p->role == Role::kViewer);
}

TEST_CASE("Auth: an unknown user and a wrong password get the same answer") {
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  auto a = f.auth->login("alice", "wrong password", "h1");
  auto b = f.auth->login("mallory", "wrong password", "h2");
  CHECK(a.status() == b.status());
  CHECK(a.status().code() == Code::kUnauthenticated);
  CHECK(a.status().message() == "invalid username or password");
}

TEST_CASE("Auth: tokens are refused for every kind of forgery and staleness") {
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  const std::string good = f.sign(f.header(), f.claims());
  REQUIRE(f.auth->verify(good).ok());

  SECTION("alg none") {
    auto h = f.header();
    h["alg"] = "none";
    f.expect_rejected(detail::jws_signing_input(json::serialize(h), json::serialize(f.claims())) +
                      ".");
    f.expect_rejected(detail::jws_signing_input(json::serialize(h), json::serialize(f.claims())) +
                      ".AAAA");
  }
  SECTION("HS256 signed with the RSA public key") {
    auto h = f.header();
    h["alg"] = "HS256";
    std::string input = detail::jws_signing_input(json::serialize(h), json::serialize(f.claims()));
    std::string pem = f.identity->keys()[0].public_pem;
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    f.expect_rejected(input + "." +
                      detail::base64url_encode(std::string(reinterpret_cast<char*>(mac), len)));
  }
  SECTION("unknown kid") {
    auto h = f.header();
    h["kid"] = "login-00000000-0000-4000-8000-000000000000";
    f.expect_rejected(f.sign(h, f.claims()));
    h.erase("kid");
    f.expect_rejected(f.sign(h, f.claims()));
  }
  SECTION("signed by a different key") {
    auto other = Identity::open(f.tmp / "other", IdentityOptions{2048, f.env});
    REQUIRE(other.ok());
    std::string input =
        detail::jws_signing_input(json::serialize(f.header()), json::serialize(f.claims()));
    f.expect_rejected(input + "." +
                      detail::base64url_encode(*(*other)->sign_with_login_key(input)));
    // The cluster key of the same service is a different key too.
    f.expect_rejected(input + "." +
                      detail::base64url_encode(*f.identity->sign_with_cluster_key(input)));
  }
  SECTION("expired, beyond the clock skew") {
    f.env->advance(600s + 59s);
    CHECK(f.auth->verify(good).ok());
    f.env->advance(2s);
    f.expect_rejected(good);
  }
  SECTION("nbf or iat in the future") {
    auto c = f.claims();
    c["nbf"] = c["iat"].as_int64() + 120;
    f.expect_rejected(f.sign(f.header(), c));
    c = f.claims();
    c["iat"] = c["iat"].as_int64() + 120;
    f.expect_rejected(f.sign(f.header(), c));
    c = f.claims();
    c["nbf"] = c["iat"].as_int64() + 30;  // within the skew
    CHECK(f.auth->verify(f.sign(f.header(), c)).ok());
    // The times are checked on every use, not only the first: a token refused as not yet
    // valid is accepted once its nbf has come (its checked content is remembered).
    c = f.claims();
    c["nbf"] = c["iat"].as_int64() + 120;
    const std::string later = f.sign(f.header(), c);
    f.expect_rejected(later);
    f.env->advance(61s);
    CHECK(f.auth->verify(later).ok());
  }
  SECTION("missing exp, iat or version") {
    for (const char* k : {"exp", "iat", "tv", "sub"}) {
      auto c = f.claims();
      c.erase(k);
      f.expect_rejected(f.sign(f.header(), c));
    }
    auto c = f.claims();
    c["exp"] = "tomorrow";
    f.expect_rejected(f.sign(f.header(), c));
  }
  SECTION("wrong aud or iss") {
    auto c = f.claims();
    c["aud"] = "another-api";
    f.expect_rejected(f.sign(f.header(), c));
    c["aud"] = json::array{"x", "dms-api"};
    CHECK(f.auth->verify(f.sign(f.header(), c)).ok());
    c = f.claims();
    c["iss"] = "someone-else";
    f.expect_rejected(f.sign(f.header(), c));
  }
  SECTION("tampered payload") {
    auto c = f.claims();
    c["sub"] = "root";
    auto d1 = good.find('.'), d2 = good.rfind('.');
    f.expect_rejected(good.substr(0, d1 + 1) + detail::base64url_encode(json::serialize(c)) +
                      good.substr(d2));
  }
  SECTION("truncated or empty signature, malformed segments") {
    f.expect_rejected(good.substr(0, good.size() - 4));
    f.expect_rejected(good.substr(0, good.rfind('.') + 1));
    f.expect_rejected(good.substr(0, good.rfind('.')));
    f.expect_rejected("");
    f.expect_rejected("a.b.c");
    f.expect_rejected(good + ".extra");
    std::string plus = good;
    plus[good.find('.') + 2] = '+';
    f.expect_rejected(plus);
    f.expect_rejected("Bearer " + good);
    f.expect_rejected(std::string("\0\0\0", 3));
  }
  SECTION("larger than 8 KiB") {
    auto c = f.claims();
    c["pad"] = std::string(9000, 'x');
    f.expect_rejected(f.sign(f.header(), c));
  }
  SECTION("revoked by logout") {
    REQUIRE(f.auth->logout(good).ok());
    f.expect_rejected(good);
    CHECK(f.auth->logout(good).code() == Code::kUnauthenticated);
  }
  SECTION("revoked by a password change, and for a deleted user") {
    REQUIRE(f.auth->change_password("alice", "another password").ok());
    f.expect_rejected(good);
    auto t = f.login("alice", "another password");
    REQUIRE(f.auth->create_user("root", kPassword, Role::kAdmin).ok());
    REQUIRE(f.auth->delete_user("alice").ok());
    f.expect_rejected(t);
  }
}

TEST_CASE("Auth: a token verified before is still checked for expiry and revocation each time") {
  // The signature of a token is verified once and remembered; nothing else may be.
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  std::string t = f.login();
  for (int i = 0; i < 3; ++i) REQUIRE(f.auth->verify(t).ok());
  f.env->advance(std::chrono::hours(2));  // past the 1 h lifetime and the skew
  f.expect_rejected(t);
  std::string t2 = f.login();
  REQUIRE(f.auth->verify(t2).ok());
  REQUIRE(f.auth->logout(t2).ok());
  f.expect_rejected(t2);
  // A remembered token with one byte of its signature changed is a different token.
  std::string t3 = f.login();
  REQUIRE(f.auth->verify(t3).ok());
  std::string forged = t3;
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  f.expect_rejected(forged);
  // More distinct tokens than the memory holds: all still verify.
  for (int i = 0; i < 5000; i += 997) {
    auto c = f.claims();
    c["jti"] = i;
    c["tv"] = 2;  // alice's token version after the logout above
    REQUIRE(f.auth->verify(f.sign(f.header(), c)).ok());
  }
}

TEST_CASE("Auth: a verify that starts after a revocation returns never passes, under load") {
  // Users are cached between writes; a verify racing with a logout may pass, one that starts
  // after the logout was acknowledged must not.
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  for (int round = 0; round < 20; ++round) {
    std::string t = f.login();
    REQUIRE(f.auth->verify(t).ok());
    std::atomic<bool> revoked{false}, stop{false};
    std::atomic<int> late_passes{0}, checks{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 3; ++i) {
      readers.emplace_back([&] {
        while (!stop.load()) {
          const bool after = revoked.load();
          const bool ok = f.auth->verify(t).ok();
          if (after) {
            ++checks;
            if (ok) ++late_passes;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    REQUIRE(f.auth->logout(t).ok());
    revoked = true;
    while (checks.load() < 30) std::this_thread::yield();
    stop = true;
    for (auto& r : readers) r.join();
    CHECK(late_passes.load() == 0);
  }
}

TEST_CASE("Auth: failed logins are limited per user whatever the source, with a retry time") {
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  REQUIRE(f.auth->create_user("bob", kPassword, Role::kAdmin).ok());
  for (int i = 0; i < 5; ++i)
    CHECK(f.auth->login("alice", "bad password", "10.0.0." + std::to_string(i)).status().code() ==
          Code::kUnauthenticated);
  auto blocked = f.auth->login("alice", kPassword, "10.0.0.9");  // even the right password waits
  CHECK(blocked.status().code() == Code::kResourceExhausted);
  CHECK(Auth::retry_after_seconds(blocked.status()) == 300);
  // From another source too: the limit is the user's.
  CHECK(f.auth->login("alice", kPassword, "10.0.0.77").status().code() ==
        Code::kResourceExhausted);
  CHECK(f.auth->login("bob", kPassword, "10.0.0.9").ok());  // another user is not blocked
  f.env->advance(301s);
  CHECK(f.auth->login("alice", kPassword, "10.0.0.9").ok());
}

TEST_CASE("Auth: failed logins are limited per source whatever the user names") {
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  // A spray of fresh names from one source: each name fails once, the source twenty times.
  for (int i = 0; i < 20; ++i)
    CHECK(f.auth->login("sprayed-" + std::to_string(i), "guess", "10.9.9.9").status().code() ==
          Code::kUnauthenticated);
  auto blocked = f.auth->login("sprayed-20", "guess", "10.9.9.9");
  CHECK(blocked.status().code() == Code::kResourceExhausted);
  CHECK(f.auth->login("alice", kPassword, "10.9.9.9").status().code() ==
        Code::kResourceExhausted);  // the source, whatever the user
  CHECK(f.auth->login("alice", kPassword, "10.1.1.1").ok());  // alice from elsewhere is fine
}

TEST_CASE("Auth: a burst of concurrent attempts cannot pass the limit before it is recorded") {
  AuthOptions o;
  o.max_failures_per_source = 4;
  o.hash_queue = 64;
  Fixture f(o);
  std::atomic<int> checked{0}, throttled{0};
  std::vector<std::thread> burst;
  for (int i = 0; i < 16; ++i) {
    burst.emplace_back([&, i] {
      auto r = f.auth->login("burst-" + std::to_string(i), "guess", "10.7.7.7");
      (r.status().code() == Code::kResourceExhausted ? throttled : checked)++;
    });
  }
  for (auto& t : burst) t.join();
  // The source may fail 4 times: however the 16 interleave, at most 4 were checked.
  CHECK(checked.load() <= 4);
  CHECK(throttled.load() >= 12);
}

TEST_CASE("Auth: password hashing runs a bounded number at a time, past its queue refused") {
  AuthOptions o;
  o.hash_concurrency = 1;
  o.hash_queue = 0;
  o.scrypt_log2_n = 15;  // long enough for logins to overlap
  o.max_failures = 1000;
  o.max_failures_per_source = 1000;
  Fixture f(o);
  std::atomic<int> busy{0}, answered{0};
  std::vector<std::thread> logins;
  for (int i = 0; i < 8; ++i) {
    logins.emplace_back([&, i] {
      auto r = f.auth->login("u" + std::to_string(i), "guess", "10.0.0." + std::to_string(i));
      if (r.status().code() == Code::kResourceExhausted) {
        CHECK_THAT(r.status().message(), Catch::Contains("hashing is busy"));
        ++busy;
      } else {
        CHECK(r.status().code() == Code::kUnauthenticated);
        ++answered;
      }
    });
  }
  for (auto& t : logins) t.join();
  CHECK(answered.load() >= 1);
  CHECK(busy.load() >= 1);
  CHECK(busy.load() + answered.load() == 8);
}

TEST_CASE("Auth: unknown users and over-long passwords cost the same hash as known ones") {
  AuthOptions o;
  o.scrypt_log2_n = 14;
  o.max_failures = 1000;
  o.max_failures_per_source = 1000;
  Fixture f(o);
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  // The work each attempt costs, in CPU time of the calling thread (what scrypt burns, whatever
  // else the machine does): an attempt that skipped the hash would cost next to nothing.
  auto cpu_of = [&](const std::string& user, const std::string& pw) {
    timespec a{}, b{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    CHECK(f.auth->login(user, pw, "10.0.0.1").status().code() == Code::kUnauthenticated);
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    return (b.tv_sec - a.tv_sec) * 1e9 + static_cast<double>(b.tv_nsec - a.tv_nsec);
  };
  (void)cpu_of("nobody", "warm up the dummy hash");
  const double known = cpu_of("alice", "wrong password");
  for (double t : {cpu_of("nobody", "wrong password"), cpu_of("alice", std::string(5000, 'x')),
                   cpu_of(std::string(200, 'n'), "wrong password")})
    CHECK(t > known / 3);
}

TEST_CASE("Auth: the audit log and the log record failures but never a password or token") {
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  (void)f.auth->login("alice", "hunter2-wrong", "10.0.0.7");
  (void)f.auth->login("nobody", "hunter3-wrong", "10.0.0.7");
  std::string token = f.login();
  REQUIRE(f.auth->logout(token).ok());
  REQUIRE(f.auth->change_password("alice", "new-secret-pw").ok());
  std::string audit = dmscore::testing::read_file(f.tmp / "audit.log");
  CHECK(dmscore::testing::file_mode(f.tmp / "audit.log") == 0600);
  CHECK_THAT(audit, Catch::Contains(R"("event":"login_failed")"));
  CHECK_THAT(audit, Catch::Contains(R"("source":"10.0.0.7")"));
  CHECK_THAT(audit, Catch::Contains(R"("event":"logout")"));
  for (const std::string& secret :
       {std::string(kPassword), std::string("hunter2-wrong"), std::string("hunter3-wrong"),
        std::string("new-secret-pw"), token, token.substr(token.rfind('.') + 1)}) {
    CHECK_THAT(audit, !Catch::Contains(secret));
    for (auto& line : f.log) CHECK_THAT(line, !Catch::Contains(secret));
  }
  // Every line is a JSON object.
  std::size_t pos = 0;
  int lines = 0;
  while ((pos = audit.find('\n')) != std::string::npos) {
    CHECK(json::parse(audit.substr(0, pos)).is_object());
    audit.erase(0, pos + 1);
    ++lines;
  }
  CHECK(lines >= 5);
}

TEST_CASE("Auth: user management checks names, passwords and the last admin") {
  Fixture f;
  CHECK(f.auth->create_user("", kPassword, Role::kAdmin).status().message().rfind("name:", 0) == 0);
  CHECK(f.auth->create_user(std::string(65, 'a'), kPassword, Role::kAdmin).status().code() ==
        Code::kInvalidArgument);
  CHECK(f.auth->create_user("a b", kPassword, Role::kAdmin).status().code() ==
        Code::kInvalidArgument);
  CHECK(
      f.auth->create_user("bob", "short", Role::kAdmin).status().message().rfind("password:", 0) ==
      0);
  CHECK(f.auth->create_user("bob", std::string(1025, 'p'), Role::kAdmin).status().code() ==
        Code::kInvalidArgument);
  REQUIRE(f.auth->create_user("bob", kPassword, Role::kAdmin).ok());
  CHECK(f.auth->create_user("bob", kPassword, Role::kViewer).status().code() ==
        Code::kAlreadyExists);
  REQUIRE(f.auth->create_user("vera", kPassword, Role::kViewer).ok());
  auto users = f.auth->list_users();
  REQUIRE(users.ok());
  REQUIRE(users->size() == 2);
  CHECK((*users)[0].name == "bob");
  CHECK((*users)[1].role == Role::kViewer);
  CHECK(f.auth->delete_user("bob").code() == Code::kFailedPrecondition);  // the last admin
  CHECK(f.auth->delete_user("nobody").code() == Code::kNotFound);
  CHECK(f.auth->change_password("nobody", kPassword).code() == Code::kNotFound);
  CHECK(f.auth->change_password("vera", "x").code() == Code::kInvalidArgument);
  REQUIRE(f.auth->delete_user("vera").ok());
  CHECK(*parse_role("admin") == Role::kAdmin);
  CHECK(parse_role("root").status().code() == Code::kInvalidArgument);
}

TEST_CASE("Auth: bootstrap makes admin once, with a generated password kept 0600") {
  Fixture f;
  auto made = f.auth->bootstrap_admin("", f.tmp / "admin-password");
  REQUIRE(made.ok());
  CHECK(*made);
  CHECK(dmscore::testing::file_mode(f.tmp / "admin-password") == 0600);
  std::string pw = dmscore::testing::read_file(f.tmp / "admin-password");
  REQUIRE(pw.size() > 16);
  pw.pop_back();  // newline
  f.login("admin", pw);
  CHECK_FALSE(*f.auth->bootstrap_admin("", f.tmp / "admin-password"));
  for (auto& line : f.log) CHECK_THAT(line, !Catch::Contains(pw));
  bool said_where = false;
  for (auto& line : f.log) said_where |= line.find(f.tmp / "admin-password") != std::string::npos;
  CHECK(said_where);
}

TEST_CASE("Auth: a hash made at a lower cost is upgraded at the next login") {
  Fixture f;
  REQUIRE(f.auth->create_user("alice", kPassword, Role::kAdmin).ok());
  f.make_auth(11);
  f.login();
  std::string stored;
  REQUIRE(f.store
              ->read([&](Txn& t) -> Status {
                stored =
                    (*t.query_one("SELECT password_hash FROM users WHERE name = 'alice'"))->text(0);
                return Status::Ok();
              })
              .ok());
  CHECK(password_hash_cost(stored) == 11);
  f.login();  // still the same password
}
