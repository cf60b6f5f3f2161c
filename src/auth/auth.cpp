#include "dmscore/auth.hpp"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "auth/jwt.hpp"
#include "base/util.hpp"
#include "copy/file_io.hpp"
#include "dmscore/backend.hpp"
#include "store/store_cache.hpp"

namespace dmscore {

namespace json = boost::json;

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kAgent:
      return "agent";
    case Role::kViewer:
      break;
  }
  return "viewer";
}

Result<Role> parse_role(std::string_view name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "viewer") return Role::kViewer;
  if (name == "agent") return Role::kAgent;
  return Status::InvalidArgument("role: must be admin, viewer or agent");
}

namespace {

constexpr int kSaltBytes = 16;
constexpr int kHashBytes = 32;

Result<std::string> scrypt(const std::string& password, const std::string& salt, int log2_n) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "SCRYPT", nullptr);
  if (!kdf) return Status::Internal("auth: scrypt is not available");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (!ctx) return Status::Internal("auth: scrypt context");
  uint64_t n = uint64_t{1} << log2_n;
  uint32_t r = 8, p = 1;
  uint64_t maxmem = 128 * n * r + (1 << 20) * 2;  // what N and r need, and a margin
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, const_cast<char*>(password.data()),
                                        password.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
      OSSL_PARAM_construct_end()};
  std::string out(kHashBytes, '\0');
  int ok = EVP_KDF_derive(ctx, reinterpret_cast<unsigned char*>(out.data()), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) return Status::Internal("auth: scrypt failed");
  return out;
}

struct ParsedHash {
  int log2_n = 0;
  std::string salt;
  std::string hash;
};

// $scrypt$ln=17,r=8,p=1$<salt>$<hash>
std::optional<ParsedHash> parse_hash(const std::string& stored) {
  constexpr std::string_view kPrefix = "$scrypt$ln=";
  if (stored.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  std::string_view rest(stored);
  rest.remove_prefix(kPrefix.size());
  ParsedHash out;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), out.log2_n);
  if (ec != std::errc() || out.log2_n < 10 || out.log2_n > 20) return std::nullopt;
  rest.remove_prefix(static_cast<std::size_t>(p - rest.data()));
  constexpr std::string_view kMid = ",r=8,p=1$";
  if (rest.compare(0, kMid.size(), kMid) != 0) return std::nullopt;
  rest.remove_prefix(kMid.size());
  auto dollar = rest.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  auto salt = detail::base64url_decode(rest.substr(0, dollar));
  auto hash = detail::base64url_decode(rest.substr(dollar + 1));
  if (!salt || !hash || salt->size() != kSaltBytes || hash->size() != kHashBytes)
    return std::nullopt;
  out.salt = *salt;
  out.hash = *hash;
  return out;
}

Status check_password(const std::string& password) {
  if (password.size() < 8 || password.size() > 1024)
    return Status::InvalidArgument("password: must be 8-1024 bytes");
  return Status::Ok();
}

Status check_user_name(const std::string& name) {
  if (name.size() > 64)
    return Status::InvalidArgument("name: must be 1-64 characters of [A-Za-z0-9._-]");
  Status s = validate_object_name(name, "name");
  if (!s.ok()) return Status::InvalidArgument("name: must be 1-64 characters of [A-Za-z0-9._-]");
  return s;
}

std::int64_t seconds_of(Env::SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

const json::value* claim(const json::object& o, const char* key) { return o.if_contains(key); }

bool int_claim(const json::object& o, const char* key, std::int64_t& out) {
  auto* v = claim(o, key);
  if (!v) return false;
  if (v->is_int64()) {
    out = v->as_int64();
    return true;
  }
  if (v->is_uint64() && v->as_uint64() <= INT64_MAX) {
    out = static_cast<std::int64_t>(v->as_uint64());
    return true;
  }
  return false;
}

}  // namespace

Result<std::string> hash_password(const std::string& password, int log2_n, Env& env) {
  if (log2_n < 10 || log2_n > 20) return Status::InvalidArgument("scrypt_log2_n: must be 10..20");
  std::string salt(kSaltBytes, '\0');
  env.random_bytes(salt.data(), salt.size());
  auto h = scrypt(password, salt, log2_n);
  if (!h.ok()) return h.status();
  return "$scrypt$ln=" + std::to_string(log2_n) + ",r=8,p=1$" + detail::base64url_encode(salt) +
         "$" + detail::base64url_encode(*h);
}

bool verify_password(const std::string& password, const std::string& stored) {
  auto parsed = parse_hash(stored);
  if (!parsed) return false;
  auto h = scrypt(password, parsed->salt, parsed->log2_n);
  return h.ok() && CRYPTO_memcmp(h->data(), parsed->hash.data(), kHashBytes) == 0;
}

int password_hash_cost(const std::string& stored) {
  auto parsed = parse_hash(stored);
  return parsed ? parsed->log2_n : 0;
}

struct Auth::Impl {
  Store& store;
  const Identity& identity;
  AuthOptions options;
  std::shared_ptr<Env> env;

  // Failed logins per user and per source: the failures within the window, and the attempts
  // in progress (reserved before hashing, so a burst cannot all pass the check at once).
  struct Window {
    std::deque<Env::SteadyTime> failures;
    int pending = 0;
    Env::SteadyTime last{};
  };
  std::mutex limiter_mu;
  std::map<std::string, Window> by_user, by_source;
  static constexpr std::size_t kMaxWindows = 100000;

  // Bounded password hashing: `running` at most hash_concurrency, `waiting` at most hash_queue.
  std::mutex hash_mu;
  std::condition_variable hash_cv;
  int hashing = 0, hash_waiting = 0;

  std::once_flag dummy_once;
  std::string dummy_hash;  // verified for unknown users, so timing does not tell them apart

  std::mutex audit_mu;

  // What a token that passed every check of its own content says: its header and claims are
  // part of the token's bytes, so once its key id, algorithm, signature, issuer, audience and
  // claim types have been checked, only the checks that depend on time, on the current key and
  // on the user (revocation) need running again. Verifying an RS256 signature costs tens of
  // microseconds and decoding and parsing the parts a few more, and a client sends the same
  // token with every request. Bounded: emptied when full.
  struct Verified {
    std::string kid;
    std::string sub;
    std::int64_t exp = 0, iat = 0, tv = 0;
    std::optional<std::int64_t> nbf;
  };
  static constexpr std::size_t kVerifiedCap = 4096;
  mutable std::mutex verified_mu;
  mutable std::unordered_map<std::string, Verified> verified;

  std::optional<Verified> known(const std::string& token) const {
    std::lock_guard lock(verified_mu);
    auto it = verified.find(token);
    if (it == verified.end()) return std::nullopt;
    return it->second;
  }

  void remember(const std::string& token, Verified v) const {
    std::lock_guard lock(verified_mu);
    if (verified.size() >= kVerifiedCap) verified.clear();
    verified.emplace(token, std::move(v));
  }

  void log(std::string_view line) const {
    if (options.log) options.log(line);
  }

  void audit(json::object event) {
    if (options.audit_log_path.empty()) return;
    event["time"] = seconds_of(env->now());
    std::string line = json::serialize(event) + "\n";
    std::lock_guard lock(audit_mu);
    int fd =
        ::open(options.audit_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
  }

  // Drops what left the window; answers the seconds until another attempt is allowed, 0 when
  // it is allowed now.
  std::int64_t wait_for(Window& w, int limit, Env::SteadyTime now) const {
    while (!w.failures.empty() && now - w.failures.front() >= options.failure_window)
      w.failures.pop_front();
    if (static_cast<int>(w.failures.size()) + w.pending < limit) return 0;
    if (w.failures.empty()) return 1;  // only attempts in progress: soon
    auto wait = options.failure_window - (now - w.failures.front());
    return std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::seconds>(wait).count());
  }

  // Keeps a map of windows bounded: windows with nothing in them go first, then the stalest.
  void bound(std::map<std::string, Window>& m, Env::SteadyTime now) {
    if (m.size() < kMaxWindows) return;
    for (auto it = m.begin(); it != m.end();) {
      auto& w = it->second;
      while (!w.failures.empty() && now - w.failures.front() >= options.failure_window)
        w.failures.pop_front();
      it = w.failures.empty() && w.pending == 0 ? m.erase(it) : std::next(it);
    }
    while (m.size() >= kMaxWindows) {
      auto stalest = m.begin();
      for (auto it = m.begin(); it != m.end(); ++it)
        if (it->second.pending == 0 && it->second.last < stalest->second.last) stalest = it;
      m.erase(stalest);
    }
  }

  // Checks both limits and reserves an attempt against both, atomically: 0, or the seconds to
  // wait (nothing reserved).
  std::int64_t reserve(const std::string& user, const std::string& source) {
    std::lock_guard lock(limiter_mu);
    const auto now = env->steady_now();
    bound(by_user, now);
    bound(by_source, now);
    Window& u = by_user[user];
    Window& src = by_source[source];
    const std::int64_t wait = std::max(wait_for(u, options.max_failures, now),
                                       wait_for(src, options.max_failures_per_source, now));
    if (wait > 0) return wait;
    ++u.pending;
    ++src.pending;
    u.last = src.last = now;
    return 0;
  }

  // Ends a reserved attempt: a failure counts against both; a success clears the user's.
  void settle(const std::string& user, const std::string& source, bool ok) {
    std::lock_guard lock(limiter_mu);
    const auto now = env->steady_now();
    for (auto* m : {&by_user, &by_source}) {
      auto it = m->find(m == &by_user ? user : source);
      if (it == m->end()) continue;
      Window& w = it->second;
      if (w.pending > 0) --w.pending;
      if (!ok) {
        w.failures.push_back(now);
        const int limit = m == &by_user ? options.max_failures : options.max_failures_per_source;
        while (static_cast<int>(w.failures.size()) > limit) w.failures.pop_front();
      } else if (m == &by_user) {
        w.failures.clear();
      }
    }
  }

  // A slot to hash a password in, or RESOURCE_EXHAUSTED when the queue is full too.
  Status begin_hash() {
    std::unique_lock lock(hash_mu);
    if (hashing >= options.hash_concurrency) {
      if (hash_waiting >= options.hash_queue)
        return Status::ResourceExhausted("password hashing is busy; retry in 1 s");
      ++hash_waiting;
      hash_cv.wait(lock, [&] { return hashing < options.hash_concurrency; });
      --hash_waiting;
    }
    ++hashing;
    return Status::Ok();
  }
  void end_hash() {
    {
      std::lock_guard lock(hash_mu);
      --hashing;
    }
    hash_cv.notify_one();
  }
  // `fn` with a hashing slot held.
  template <typename Fn>
  auto hashed(Fn fn) -> decltype(fn()) {
    if (Status s = begin_hash(); !s.ok()) return s;
    auto r = fn();
    end_hash();
    return r;
  }

  struct Row {
    std::string role;
    std::string hash;
    std::int64_t token_version = 0;
  };

  // Users read by find(), kept until any write to the users table: every write goes through
  // write_users() (see store_cache.hpp for why that is exact in one process). A store shared by
  // several processes would have to drop this.
  mutable detail::StoreCache<std::string, std::optional<Row>> users;

  Status write_users(const std::function<Status(Txn&)>& fn) { return users.write(store, fn); }

  Result<std::optional<Row>> find(const std::string& name) const {
    return users.get(name, [&]() -> Result<std::optional<Row>> {
      std::optional<Row> out;
      Status s = store.read([&](Txn& t) -> Status {
        auto r = t.query_one("SELECT role, password_hash, token_version FROM users WHERE name = ?",
                             {name});
        if (!r.ok()) return r.status();
        if (*r) out = Row{(*r)->text(0), (*r)->text(1), (*r)->int64(2)};
        return Status::Ok();
      });
      if (!s.ok()) return s;
      return out;
    });
  }

  Result<LoginResult> issue(const std::string& name, std::int64_t token_version) {
    auto now = seconds_of(env->now());
    json::object header{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", identity.login_key_id()}};
    json::object claims{{"iss", options.issuer},
                        {"aud", options.audience},
                        {"sub", name},
                        {"iat", now},
                        {"nbf", now},
                        {"exp", now + options.token_ttl.count()},
                        {"tv", token_version}};
    std::string input = detail::jws_signing_input(json::serialize(header), json::serialize(claims));
    auto sig = identity.sign_with_login_key(input);
    if (!sig.ok()) return sig.status();
    LoginResult r;
    r.expires_in = options.token_ttl.count();
    r.id_token = input + "." + detail::base64url_encode(*sig);
    return r;
  }

  Status bump_token_version(const std::string& name) {
    bool found = false;
    Status s = write_users([&](Txn& t) -> Status {
      auto r = t.exec("UPDATE users SET token_version = token_version + 1 WHERE name = ?", {name});
      if (!r.ok()) return r.status();
      found = *r > 0;
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (!found) return Status::NotFound("user " + name + " not found");
    return Status::Ok();
  }

  // Verifies a token and returns its user and token version.
  Result<std::pair<Principal, std::int64_t>> check(const std::string& token) const {
    auto bad = [](const char* why) {
      return Status::Unauthenticated(std::string("invalid token: ") + why);
    };
    if (token.empty()) return bad("empty");
    if (token.size() > options.max_token_bytes) return bad("too large");
    std::optional<Verified> v = known(token);
    if (!v) {
      auto parsed = parse_and_verify(token);
      if (!parsed.ok()) return parsed.status();
      v = std::move(parsed).value();
      remember(token, *v);
    } else if (v->kid != identity.login_key_id()) {
      return bad("unknown key");  // the login key rotated since
    }
    const std::int64_t now = seconds_of(env->now());
    const std::int64_t skew = options.clock_skew.count();
    if (now > v->exp + skew) return bad("expired");
    if (v->iat > now + skew) return bad("issued in the future");
    if (v->nbf && *v->nbf > now + skew) return bad("not yet valid");
    auto row = find(v->sub);
    if (!row.ok()) return row.status();
    if (!*row || (*row)->token_version != v->tv) return bad("revoked");
    auto role = parse_role((*row)->role);
    if (!role.ok()) return bad("revoked");
    return std::make_pair(Principal{v->sub, *role}, v->tv);
  }

  // The checks of a token's own content: structure, pinned algorithm, current key id, RS256
  // signature, issuer, audience, subject and the types of the time claims.
  Result<Verified> parse_and_verify(const std::string& token) const {
    auto bad = [](const char* why) {
      return Status::Unauthenticated(std::string("invalid token: ") + why);
    };
    auto parts = detail::split_jws(token);
    if (!parts) return bad("malformed");
    boost::system::error_code ec;
    json::value header = json::parse(parts->header_json, ec);
    if (ec || !header.is_object()) return bad("malformed header");
    const auto& h = header.as_object();
    // The algorithm is pinned: the header's own claim is only checked, never obeyed.
    auto* alg = claim(h, "alg");
    if (!alg || !alg->is_string() || alg->as_string() != "RS256")
      return bad("algorithm not accepted");
    auto* kid = claim(h, "kid");
    if (!kid || !kid->is_string() || kid->as_string() != identity.login_key_id())
      return bad("unknown key");
    if (auto* typ = claim(h, "typ"); typ && (!typ->is_string() || typ->as_string() != "JWT"))
      return bad("wrong type");
    if (!identity.verify_login_signature(parts->signing_input, parts->signature))
      return bad("signature does not verify");
    json::value payload = json::parse(parts->payload_json, ec);
    if (ec || !payload.is_object()) return bad("malformed claims");
    const auto& c = payload.as_object();
    Verified v;
    v.kid = std::string(kid->as_string());
    if (!int_claim(c, "exp", v.exp)) return bad("no expiry");
    if (!int_claim(c, "iat", v.iat)) return bad("no issue time");
    if (!int_claim(c, "tv", v.tv)) return bad("no token version");
    auto* iss = claim(c, "iss");
    if (!iss || !iss->is_string() || iss->as_string() != options.issuer) return bad("wrong issuer");
    auto* aud = claim(c, "aud");
    bool aud_ok = false;
    if (aud && aud->is_string()) aud_ok = aud->as_string() == options.audience;
    if (aud && aud->is_array())
      for (auto& a : aud->as_array()) aud_ok |= a.is_string() && a.as_string() == options.audience;
    if (!aud_ok) return bad("wrong audience");
    auto* sub = claim(c, "sub");
    if (!sub || !sub->is_string() || sub->as_string().empty()) return bad("no subject");
    v.sub = std::string(sub->as_string());
    if (claim(c, "nbf")) {
      std::int64_t nbf = 0;
      if (!int_claim(c, "nbf", nbf)) return bad("malformed nbf");
      v.nbf = nbf;
    }
    return v;
  }
};

Auth::Auth(Store& store, const Identity& identity, AuthOptions options)
    : impl_(new Impl{store, identity, std::move(options), nullptr}) {
  impl_->env = impl_->options.env ? impl_->options.env : Env::Default();
  // Several instances on one store: a user changed (a logout, a new password) through one is
  // seen by all at their next request.
  if (store.dialect() == SqlDialect::kPostgres) impl_->users.share(&store, "users");
}
Auth::~Auth() = default;

Result<bool> Auth::bootstrap_admin(const std::string& password, const std::string& password_file) {
  std::int64_t users = 0;
  Status s = impl_->store.read([&](Txn& t) -> Status {
    auto r = t.query_one("SELECT COUNT(*) FROM users");
    if (!r.ok()) return r.status();
    users = (*r)->int64(0);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (users > 0) return false;
  std::string pw = password;
  if (pw.empty()) {
    std::string raw(18, '\0');
    impl_->env->random_bytes(raw.data(), raw.size());
    pw = detail::base64url_encode(raw);
    if (s = detail::write_file_atomic(password_file, pw + "\n", 0600); !s.ok()) return s;
    impl_->log("created user admin; its generated password is in " + password_file +
               " (mode 0600)");
  } else {
    impl_->log("created user admin with the password given in DMS_ADMIN_PASSWORD");
  }
  auto u = create_user("admin", pw, Role::kAdmin);
  if (u.status().code() == Code::kAlreadyExists) {
    // Another instance sharing the store made it first: its password is that instance's. The
    // file this call wrote is taken back, only when it still holds what this call wrote.
    if (password.empty()) {
      auto now = detail::read_small_file(password_file, 4096);
      if (now.ok() && *now == pw + "\n") ::unlink(password_file.c_str());
    }
    return false;
  }
  if (!u.ok()) return u.status();
  return true;
}

Result<User> Auth::create_user(const std::string& name, const std::string& password, Role role) {
  if (Status s = check_user_name(name); !s.ok()) return s;
  if (Status s = check_password(password); !s.ok()) return s;
  auto hash = impl_->hashed(
      [&] { return hash_password(password, impl_->options.scrypt_log2_n, *impl_->env); });
  if (!hash.ok()) return hash.status();
  User u{name, role, impl_->env->now(), impl_->env->now()};
  Status s = impl_->write_users([&](Txn& t) {
    return t
        .exec(
            "INSERT INTO users (name, role, password_hash, token_version, created_at, "
            "password_changed_at) VALUES (?, ?, ?, 1, ?, ?)",
            {name, std::string(to_string(role)), *hash, detail::to_millis(u.created_at),
             detail::to_millis(u.created_at)})
        .status();
  });
  if (s.code() == Code::kAlreadyExists)
    return Status::AlreadyExists("name: user " + name + " already exists");
  if (!s.ok()) return s;
  impl_->audit({{"event", "user_created"}, {"user", name}, {"role", to_string(role)}});
  return u;
}

Result<std::vector<User>> Auth::list_users() const {
  std::vector<User> out;
  Status s = impl_->store.read([&](Txn& t) -> Status {
    auto r = t.query("SELECT name, role, created_at, password_changed_at FROM users ORDER BY name");
    if (!r.ok()) return r.status();
    for (auto& row : *r) {
      auto role = parse_role(row.text(1));
      out.push_back({row.text(0), role.ok() ? *role : Role::kViewer,
                     detail::from_millis(row.int64(2)), detail::from_millis(row.int64(3))});
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

void Auth::audit(const std::string& event,
                 const std::vector<std::pair<std::string, std::string>>& fields) {
  json::object o{{"event", event}};
  for (const auto& [k, v] : fields) o[k] = v;
  impl_->audit(std::move(o));
}

Status Auth::delete_user(const std::string& name) {
  Status s = impl_->write_users([&](Txn& t) -> Status {
    auto row = t.query_one("SELECT role FROM users WHERE name = ?", {name});
    if (!row.ok()) return row.status();
    if (!*row) return Status::NotFound("user " + name + " not found");
    if ((*row)->text(0) == "admin") {
      auto admins = t.query_one("SELECT COUNT(*) FROM users WHERE role = 'admin'");
      if (!admins.ok()) return admins.status();
      if ((*admins)->int64(0) <= 1)
        return Status::FailedPrecondition("user " + name + " is the last admin");
    }
    return t.exec("DELETE FROM users WHERE name = ?", {name}).status();
  });
  if (s.ok()) impl_->audit({{"event", "user_deleted"}, {"user", name}});
  return s;
}

Status Auth::change_password(const std::string& name, const std::string& new_password) {
  if (Status s = check_password(new_password); !s.ok()) return s;
  auto hash = impl_->hashed(
      [&] { return hash_password(new_password, impl_->options.scrypt_log2_n, *impl_->env); });
  if (!hash.ok()) return hash.status();
  bool found = false;
  Status s = impl_->write_users([&](Txn& t) -> Status {
    auto r = t.exec(
        "UPDATE users SET password_hash = ?, token_version = token_version + 1, "
        "password_changed_at = ? WHERE name = ?",
        {*hash, detail::to_millis(impl_->env->now()), name});
    if (!r.ok()) return r.status();
    found = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) return Status::NotFound("user " + name + " not found");
  impl_->audit({{"event", "password_changed"}, {"user", name}});
  return Status::Ok();
}

Result<LoginResult> Auth::login(const std::string& name, const std::string& password,
                                const std::string& source) {
  Impl& im = *impl_;
  const std::string user = name.substr(0, 256);
  if (auto wait = im.reserve(user, source); wait > 0) {
    im.audit({{"event", "login_throttled"}, {"user", name.substr(0, 64)}, {"source", source}});
    return Status::ResourceExhausted("too many failed logins; retry in " + std::to_string(wait) +
                                     " s");
  }
  const auto invalid = Status::Unauthenticated("invalid username or password");
  auto row = name.size() <= 64 ? im.find(name) : Result<std::optional<Impl::Row>>(std::nullopt);
  if (!row.ok()) {
    im.settle(user, source, true);
    return row.status();
  }
  // The same scrypt run whatever the name and the password's length: time tells nothing.
  const std::string checked = password.substr(0, 1024);
  auto verified = im.hashed([&]() -> Result<bool> {
    if (*row) return verify_password(checked, (*row)->hash) && password.size() <= 1024;
    std::call_once(im.dummy_once, [&] {
      auto h = hash_password("not a password of anyone", im.options.scrypt_log2_n, *im.env);
      im.dummy_hash = h.ok() ? *h : std::string();
    });
    (void)verify_password(checked, im.dummy_hash);
    return false;
  });
  if (!verified.ok()) {
    im.settle(user, source, true);  // not an attempt: nothing was checked
    return verified.status();
  }
  if (!*verified) {
    im.settle(user, source, false);
    im.audit({{"event", "login_failed"}, {"user", name.substr(0, 64)}, {"source", source}});
    im.log("login failed for a user from " + source);
    return invalid;
  }
  im.settle(user, source, true);
  // Raise the cost of a hash made with weaker parameters than the configured ones.
  if (password_hash_cost((*row)->hash) < im.options.scrypt_log2_n) {
    auto h = im.hashed([&] { return hash_password(password, im.options.scrypt_log2_n, *im.env); });
    if (h.ok()) {
      (void)im.write_users([&](Txn& t) -> Status {
        return t
            .exec("UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?",
                  {*h, name, (*row)->hash})
            .status();
      });
    }
  }
  im.audit({{"event", "login"}, {"user", name}, {"source", source}});
  return im.issue(name, (*row)->token_version);
}

Status Auth::logout(const std::string& token) {
  auto who = impl_->check(token);
  if (!who.ok()) return who.status();
  Status s = impl_->bump_token_version(who->first.user);
  if (s.ok()) impl_->audit({{"event", "logout"}, {"user", who->first.user}});
  return s;
}

Result<Principal> Auth::verify(const std::string& token) const {
  auto who = impl_->check(token);
  if (!who.ok()) return who.status();
  return who->first;
}

std::int64_t Auth::retry_after_seconds(const Status& status) {
  return dmscore::retry_after_seconds(status);
}

}  // namespace dmscore
