#pragma once
// Auth: the users of the service's own API, their passwords, login tokens and roles.
//
// Passwords are stored as self-describing scrypt hashes
//   $scrypt$ln=17,r=8,p=1$<salt, base64url>$<hash, base64url>
// (N = 2^ln), compared in constant time, and rehashed at the next successful login when the
// configured cost is higher than the stored one.
//
// Login answers an RS256 JWT signed with the identity's login key (never the cluster key):
// header {"alg":"RS256","typ":"JWT","kid":"<login key id>"}, claims iss, aud, sub, iat, nbf, exp
// and `tv`, the user's token version. Verification pins RS256 and the key id, requires and
// checks exp, iat, iss, aud and sub with at most `clock_skew` of tolerance, and refuses a token
// whose `tv` is older than the user's: logout and password changes bump it, revoking every
// earlier token.
//
// Failed logins are limited per user and per source address, checked and recorded atomically,
// and every failure is appended to an audit log of JSON lines (never the password or a token).
// Hashing runs at most `hash_concurrency` at a time with a bounded queue, so a spray of logins
// cannot take the service's CPU. An unknown user or an over-long password costs the same hash as
// a known user's. Messages for a bad login never reveal whether the user exists.
//
// Safe for concurrent use.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/identity.hpp"
#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore {

// admin: everything; viewer: reads; agent: a source's agent, which may register and report its
// source (and poll for its commands) and nothing else.
enum class Role { kAdmin, kViewer, kAgent };
// "admin", "viewer", "agent".
std::string_view to_string(Role role);
// INVALID_ARGUMENT naming `role` for anything else.
Result<Role> parse_role(std::string_view name);

struct User {
  std::string name;
  Role role = Role::kViewer;
  Env::SystemTime created_at;
  Env::SystemTime password_changed_at;
};

// Who a verified token speaks for.
struct Principal {
  std::string user;
  Role role = Role::kViewer;
};

// What POST /api/v1/login answers.
struct LoginResult {
  std::string token_type = "Bearer";
  std::int64_t expires_in = 0;  // seconds
  std::string id_token;
};

struct AuthOptions {
  // Default: 1 hour. REQUIRES: 1 min..30 days.
  std::chrono::seconds token_ttl{3600};
  // `iss` of login tokens. Default: "libdmscore".
  std::string issuer = "libdmscore";
  // `aud` of login tokens. Default: "dms-api".
  std::string audience = "dms-api";
  // Tolerance for exp, iat and nbf. Default: 60 s. REQUIRES: 0..60 s.
  std::chrono::seconds clock_skew{60};
  // log2 of the scrypt N parameter for new hashes. Default: 17 (N = 131072, 128 MiB, r=8, p=1).
  // REQUIRES: 10..20. Below 17 only for tests.
  int scrypt_log2_n = 17;
  // Failed logins allowed within `failure_window` per user (whatever the source) and per source
  // address (whatever the user names), after which login answers RESOURCE_EXHAUSTED, without
  // hashing anything, until the oldest failure leaves the window. Attempts in progress count
  // against the limits too, so a burst cannot pass the check all at once.
  // Defaults: 5 per user, 20 per source, in 5 minutes.
  int max_failures = 5;
  int max_failures_per_source = 20;
  std::chrono::seconds failure_window{300};
  // Password hashes computed at once, and callers allowed to wait for one; past both, login
  // (and a user change) answers RESOURCE_EXHAUSTED at once. Defaults: 2, 8.
  int hash_concurrency = 2;
  int hash_queue = 8;
  // Tokens longer than this are refused unread. Default: 8 KiB.
  std::size_t max_token_bytes = 8192;
  // Where failures and account changes are appended as JSON lines (mode 0600). Empty: none.
  std::string audit_log_path;
  // Receives human-readable log lines (never secrets). Default: none.
  std::function<void(std::string_view)> log;
  // Default: Env::Default().
  std::shared_ptr<Env> env;
};

class Auth {
 public:
  // Uses `store` (tables `users`) and `identity` (the login key); both must outlive it.
  Auth(Store& store, const Identity& identity, AuthOptions options = {});
  ~Auth();

  // Creates `admin` when no user exists: with `password` when not empty, otherwise with a
  // random one written to `password_file` (mode 0600). Returns whether a user was created.
  Result<bool> bootstrap_admin(const std::string& password, const std::string& password_file);

  // INVALID_ARGUMENT naming `name` (the object name rules, at most 64 characters) or
  // `password` (8..1024 bytes); ALREADY_EXISTS.
  Result<User> create_user(const std::string& name, const std::string& password, Role role);
  Result<std::vector<User>> list_users() const;
  // NOT_FOUND; FAILED_PRECONDITION for the last admin.
  Status delete_user(const std::string& name);
  // Revokes every token issued to the user before. NOT_FOUND; INVALID_ARGUMENT for the password.
  Status change_password(const std::string& name, const std::string& new_password);

  // UNAUTHENTICATED "invalid username or password" for an unknown user or a wrong password
  // alike; RESOURCE_EXHAUSTED "... retry in N s" when the user or the source has failed too
  // often, or when password hashing is saturated.
  // `source` is the caller's address, for rate limiting and the audit log.
  Result<LoginResult> login(const std::string& name, const std::string& password,
                            const std::string& source);
  // Revokes every token of the token's user. UNAUTHENTICATED for a token that does not verify.
  Status logout(const std::string& token);
  // UNAUTHENTICATED (with a reason that names no user) unless the token verifies.
  Result<Principal> verify(const std::string& token) const;

  // Appends an event to the audit log (the one login failures go to): {"event", fields...,
  // "time"}. For the service's admin actions; never pass a secret.
  void audit(const std::string& event,
             const std::vector<std::pair<std::string, std::string>>& fields);

  // Seconds a caller should wait before retrying after RESOURCE_EXHAUSTED from login.
  static std::int64_t retry_after_seconds(const Status& status);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Password hashing, exposed for tests and tools.
// Hashes `password` with scrypt at N = 2^log2_n, r = 8, p = 1 and a 16-byte random salt.
Result<std::string> hash_password(const std::string& password, int log2_n, Env& env);
// Constant-time check of `password` against a stored hash; false for a malformed hash.
bool verify_password(const std::string& password, const std::string& stored);
// log2 N of a stored hash, 0 when malformed.
int password_hash_cost(const std::string& stored);

}  // namespace dmscore
