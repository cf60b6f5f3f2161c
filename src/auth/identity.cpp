#include "dmscore/identity.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "auth/jwt.hpp"
#include "base/base64.hpp"
#include "base/util.hpp"
#include "copy/file_io.hpp"
#include "dmscore/store.hpp"

namespace dmscore {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Result<Pkey> generate_rsa(int bits) {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
  if (!key) return Status::Internal("identity: RSA key generation failed");
  return key;
}

Result<std::string> private_pem(EVP_PKEY* key) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return Status::Internal("identity: cannot encode a private key");
  return bio_string(b.get());
}

std::string public_pem(EVP_PKEY* key) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PUBKEY(b.get(), key) != 1) return {};
  return bio_string(b.get());
}

// Refuses a private key file that anyone but its owner may read or write.
Status check_private_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return detail::errno_status("stat " + path);
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Status::FailedPrecondition("private key " + path + " has mode " + mode +
                                      " and may be read by others; fix it with: chmod 600 " + path);
  }
  return Status::Ok();
}

Result<Pkey> load_private(const std::string& path) {
  if (Status s = check_private_mode(path); !s.ok()) return s;
  auto text = detail::read_small_file(path, 64 << 10);
  if (!text.ok()) return text.status();
  Bio b(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  Pkey key(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA)
    return Status::FailedPrecondition(path + " does not hold an RSA private key");
  return key;
}

Result<std::string> rs256_sign(EVP_PKEY* key, std::string_view data) {
  MdCtx ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1)
    return Status::Internal("identity: signing failed");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return Status::Internal("identity: signing failed");
  sig.resize(len);
  return sig;
}

bool rs256_verify(EVP_PKEY* key, std::string_view data, std::string_view sig) {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1)
    return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

struct KeySlot {
  std::string id;
  std::int64_t created_ms = 0;
  Pkey key;
  std::string pub_pem;
};

json::object slot_json(const KeySlot& k) { return {{"id", k.id}, {"createdAt", k.created_ms}}; }

}  // namespace

struct Identity::Impl {
  std::string dir;
  IdentityOptions options;
  std::shared_ptr<Env> env;
  mutable std::mutex mu;
  KeySlot current, previous, login;  // previous.id empty when no rotation is pending

  // Kept in a shared store (open_in_store): the store, the sealing key, and the version of the
  // keys held in memory (cache_versions 'identity').
  Store* store = nullptr;
  std::string seal_key;
  std::int64_t version = -1;

  // Seals `pem` for the row of `slot`/`id` (bound in as associated data, so a row's sealed key
  // cannot be moved to another): "v1." + base64(nonce | ciphertext | tag).
  Result<std::string> seal(const std::string& slot, const std::string& id,
                           const std::string& pem) const {
    unsigned char nonce[12];
    env->random_bytes(nonce, sizeof nonce);
    const std::string aad = slot + "\n" + id;
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> c(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
    std::string out(reinterpret_cast<char*>(nonce), sizeof nonce);
    out.resize(sizeof nonce + pem.size() + 16);
    int len = 0, fin = 0;
    auto* o = reinterpret_cast<unsigned char*>(out.data()) + sizeof nonce;
    if (!c ||
        EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr,
                           reinterpret_cast<const unsigned char*>(seal_key.data()), nonce) != 1 ||
        EVP_EncryptUpdate(c.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(aad.data()),
                          static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(c.get(), o, &len, reinterpret_cast<const unsigned char*>(pem.data()),
                          static_cast<int>(pem.size())) != 1 ||
        EVP_EncryptFinal_ex(c.get(), o + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, 16, o + len + fin) != 1)
      return Status::Internal("identity: cannot seal a key");
    return "v1." + detail::base64_encode(out);
  }

  Result<std::string> unseal(const std::string& slot, const std::string& id,
                             const std::string& sealed) const {
    const Status refused = Status::FailedPrecondition(
        "identity: the store's key " + id +
        " does not open with this store key file; every instance must be given the same file");
    if (sealed.rfind("v1.", 0) != 0) return refused;
    auto raw = detail::base64_decode(sealed.substr(3));
    if (!raw || raw->size() < 12 + 16) return refused;
    const std::string aad = slot + "\n" + id;
    const auto* in = reinterpret_cast<const unsigned char*>(raw->data());
    const int n = static_cast<int>(raw->size() - 12 - 16);
    std::string pem(static_cast<std::size_t>(n), '\0');
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> c(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
    int len = 0, fin = 0;
    unsigned char tag[16];
    std::memcpy(tag, in + 12 + n, 16);
    if (!c ||
        EVP_DecryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr,
                           reinterpret_cast<const unsigned char*>(seal_key.data()), in) != 1 ||
        EVP_DecryptUpdate(c.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(aad.data()),
                          static_cast<int>(aad.size())) != 1 ||
        EVP_DecryptUpdate(c.get(), reinterpret_cast<unsigned char*>(pem.data()), &len, in + 12,
                          n) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, 16, tag) != 1 ||
        EVP_DecryptFinal_ex(c.get(), reinterpret_cast<unsigned char*>(pem.data()) + len, &fin) != 1)
      return refused;
    return pem;
  }

  // A new slot: a key made, not written anywhere yet.
  Result<KeySlot> fresh_key(const std::string& id) {
    auto key = generate_rsa(options.rsa_bits);
    if (!key.ok()) return key.status();
    KeySlot k;
    k.id = id;
    k.created_ms = detail::to_millis(env->now());
    k.pub_pem = public_pem(key->get());
    k.key = std::move(key).value();
    return k;
  }

  // Reads the keys from the store when their version moved (or on first use). REQUIRES: mu.
  Status refresh_locked() {
    if (!store) return Status::Ok();
    std::int64_t v = 0;
    std::vector<Row> rows;
    Status s = store->read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT version FROM cache_versions WHERE name = 'identity'");
      if (!r.ok()) return r.status();
      v = *r ? (*r)->int64(0) : 0;
      if (v == version) return Status::Ok();
      auto all = t.query("SELECT slot, id, created_at, sealed FROM service_keys");
      if (!all.ok()) return all.status();
      rows = std::move(all).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (v == version) return Status::Ok();
    KeySlot cur, prev, log;
    for (const auto& r : rows) {
      auto pem = unseal(r.text(0), r.text(1), r.text(3));
      if (!pem.ok()) return pem.status();
      Bio b(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
      Pkey key(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
      OPENSSL_cleanse(pem->data(), pem->size());
      if (!key)
        return Status::FailedPrecondition("identity: the store's key " + r.text(1) +
                                          " is not an RSA private key");
      KeySlot k;
      k.id = r.text(1);
      k.created_ms = r.int64(2);
      k.pub_pem = public_pem(key.get());
      k.key = std::move(key);
      KeySlot& dst = r.text(0) == "current" ? cur : r.text(0) == "previous" ? prev : log;
      dst = std::move(k);
    }
    if (cur.id.empty() || log.id.empty())
      return Status::FailedPrecondition("identity: the store holds no current or login key");
    // The login key never changes: tokens signed before stay valid.
    if (!login.id.empty() && login.id != log.id)
      return Status::FailedPrecondition("identity: the store's login key changed");
    current = std::move(cur);
    previous = std::move(prev);
    login = std::move(log);
    version = v;
    return Status::Ok();
  }

  // Writes slot `slot` (sealed) in `t`, replacing what was there.
  Status put_slot(Txn& t, const std::string& slot, const KeySlot& k) {
    auto pem = private_pem(k.key.get());
    if (!pem.ok()) return pem.status();
    auto sealed = seal(slot, k.id, *pem);
    OPENSSL_cleanse(pem->data(), pem->size());
    if (!sealed.ok()) return sealed.status();
    auto r = t.exec("DELETE FROM service_keys WHERE slot = ?", {slot});
    if (!r.ok()) return r.status();
    return t
        .exec("INSERT INTO service_keys (slot, id, created_at, sealed) VALUES (?, ?, ?, ?)",
              {slot, k.id, k.created_ms, *sealed})
        .status();
  }

  static Status bump(Txn& t) {
    auto r = t.exec("INSERT OR IGNORE INTO cache_versions (name, version) VALUES ('identity', 0)");
    if (!r.ok()) return r.status();
    return t.exec("UPDATE cache_versions SET version = version + 1 WHERE name = 'identity'")
        .status();
  }

  std::string key_path(const std::string& id) const { return dir + "/" + id + ".pem"; }
  std::string manifest_path() const { return dir + "/keys.json"; }

  Result<KeySlot> make_key(const std::string& id) {
    auto key = generate_rsa(options.rsa_bits);
    if (!key.ok()) return key.status();
    auto pem = private_pem(key->get());
    if (!pem.ok()) return pem.status();
    if (Status s = detail::write_file_atomic(key_path(id), *pem, 0600); !s.ok()) return s;
    KeySlot k;
    k.id = id;
    k.created_ms = detail::to_millis(env->now());
    k.pub_pem = public_pem(key->get());
    k.key = std::move(key).value();
    return k;
  }

  Status load_slot(const json::value& v, KeySlot& out) {
    if (!v.is_object() || !v.as_object().contains("id") || !v.as_object().at("id").is_string())
      return Status::FailedPrecondition(manifest_path() + " is malformed");
    out.id = std::string(v.as_object().at("id").as_string());
    if (out.id.find('/') != std::string::npos || out.id.find("..") != std::string::npos)
      return Status::FailedPrecondition(manifest_path() + " names an invalid key id");
    if (auto* c = v.as_object().if_contains("createdAt"); c && c->is_int64())
      out.created_ms = c->as_int64();
    auto key = load_private(key_path(out.id));
    if (!key.ok()) return key.status();
    out.pub_pem = public_pem(key->get());
    out.key = std::move(key).value();
    return Status::Ok();
  }

  // The manifest is the commit point of every key change.
  Status write_manifest() {
    json::object m{{"current", slot_json(current)}, {"login", slot_json(login)}};
    if (!previous.id.empty()) m["previous"] = slot_json(previous);
    return detail::write_file_atomic(manifest_path(), json::serialize(m), 0600);
  }

  // Deletes key files the manifest does not name (left by a crash mid-rotation).
  void remove_strays() {
    std::set<std::string> keep = {current.id + ".pem", login.id + ".pem", "keys.json"};
    if (!previous.id.empty()) keep.insert(previous.id + ".pem");
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec)) {
      if (!keep.count(e.path().filename().string())) fs::remove(e.path(), ec);
    }
  }
};

Identity::Identity(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Identity::~Identity() = default;

Result<std::unique_ptr<Identity>> Identity::open(const std::string& dir, IdentityOptions options) {
  if (options.rsa_bits < 2048 || options.rsa_bits > 8192)
    return Status::InvalidArgument("rsa_bits: must be 2048..8192");
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  impl->env = options.env ? options.env : Env::Default();
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return Status::Unavailable("cannot create " + dir + ": " + ec.message());
  }
  ::chmod(dir.c_str(), 0700);
  if (fs::exists(impl->manifest_path(), ec)) {
    if (Status s = check_private_mode(impl->manifest_path()); !s.ok()) return s;
    auto text = detail::read_small_file(impl->manifest_path());
    if (!text.ok()) return text.status();
    boost::system::error_code jec;
    auto m = json::parse(*text, jec);
    if (jec || !m.is_object() || !m.as_object().contains("current") ||
        !m.as_object().contains("login"))
      return Status::FailedPrecondition(impl->manifest_path() + " is malformed");
    if (Status s = impl->load_slot(m.as_object().at("current"), impl->current); !s.ok()) return s;
    if (Status s = impl->load_slot(m.as_object().at("login"), impl->login); !s.ok()) return s;
    if (auto* p = m.as_object().if_contains("previous")) {
      if (Status s = impl->load_slot(*p, impl->previous); !s.ok()) return s;
    }
  } else {
    auto cur = impl->make_key("dms-" + impl->env->new_uuid());
    if (!cur.ok()) return cur.status();
    impl->current = std::move(cur).value();
    auto login = impl->make_key("login-" + impl->env->new_uuid());
    if (!login.ok()) return login.status();
    impl->login = std::move(login).value();
    if (Status s = impl->write_manifest(); !s.ok()) return s;
  }
  impl->remove_strays();
  return std::unique_ptr<Identity>(new Identity(std::move(impl)));
}

Result<std::unique_ptr<Identity>> Identity::open_in_store(Store& store,
                                                          const std::string& store_key_file,
                                                          IdentityOptions options) {
  if (options.rsa_bits < 2048 || options.rsa_bits > 8192)
    return Status::InvalidArgument("rsa_bits: must be 2048..8192");
  if (Status s = check_private_mode(store_key_file); !s.ok()) {
    if (s.code() == Code::kFailedPrecondition)
      return Status::FailedPrecondition("store key file " + store_key_file +
                                        " may be read by others; fix it with: chmod 600 " +
                                        store_key_file);
    return Status::Unavailable("store key file " + store_key_file + ": " + s.message());
  }
  auto secret = detail::read_small_file(store_key_file, 4096);
  if (!secret.ok())
    return Status::FailedPrecondition("store key file " + store_key_file +
                                      " cannot be read or is over 4096 bytes");
  if (secret->size() < 32)
    return Status::FailedPrecondition("store key file " + store_key_file +
                                      " holds under 32 bytes; make one with: head -c 32 "
                                      "/dev/urandom > " +
                                      store_key_file);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->env = options.env ? options.env : Env::Default();
  impl->store = &store;
  {
    static constexpr char kLabel[] = "libdmscore store key v1\n";
    std::string material = std::string(kLabel) + *secret;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(material.data()), material.size(), digest);
    impl->seal_key.assign(reinterpret_cast<char*>(digest), sizeof digest);
    OPENSSL_cleanse(material.data(), material.size());
    OPENSSL_cleanse(secret->data(), secret->size());
    OPENSSL_cleanse(digest, sizeof digest);
  }
  bool empty = false;
  Status s = store.read([&](Txn& t) -> Status {
    auto r = t.query_one("SELECT COUNT(*) FROM service_keys");
    if (!r.ok()) return r.status();
    empty = (*r)->int64(0) == 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (empty) {
    // First instance: make the pairs; an instance racing it may make its own, and one write
    // wins (the key check below), the other instance reading the winner's.
    auto cur = impl->fresh_key("dms-" + impl->env->new_uuid());
    if (!cur.ok()) return cur.status();
    auto login = impl->fresh_key("login-" + impl->env->new_uuid());
    if (!login.ok()) return login.status();
    Status w = store.transact([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT COUNT(*) FROM service_keys");
      if (!r.ok()) return r.status();
      if ((*r)->int64(0) != 0) return Status::Ok();  // made meanwhile
      if (Status p = impl->put_slot(t, "current", *cur); !p.ok()) return p;
      if (Status p = impl->put_slot(t, "login", *login); !p.ok()) return p;
      return Impl::bump(t);
    });
    if (!w.ok() && w.code() != Code::kAlreadyExists) return w;
  }
  {
    std::lock_guard lock(impl->mu);
    if (Status r = impl->refresh_locked(); !r.ok()) return r;
  }
  return std::unique_ptr<Identity>(new Identity(std::move(impl)));
}

ServiceCredentials Identity::credentials() const {
  std::lock_guard lock(impl_->mu);
  (void)impl_->refresh_locked();  // unreachable store: the keys held answer
  return {impl_->current.id, detail::base64_encode(impl_->current.pub_pem)};
}

std::vector<ServiceKey> Identity::keys() const {
  std::lock_guard lock(impl_->mu);
  (void)impl_->refresh_locked();
  std::vector<ServiceKey> out;
  out.push_back({impl_->current.id, true, detail::from_millis(impl_->current.created_ms),
                 impl_->current.pub_pem});
  if (!impl_->previous.id.empty())
    out.push_back({impl_->previous.id, false, detail::from_millis(impl_->previous.created_ms),
                   impl_->previous.pub_pem});
  return out;
}

Status Identity::rotate() {
  std::lock_guard lock(impl_->mu);
  if (impl_->store) {
    if (Status r = impl_->refresh_locked(); !r.ok()) return r;
    auto next = impl_->fresh_key("dms-" + impl_->env->new_uuid());
    if (!next.ok()) return next.status();
    Status s = impl_->store->transact([&](Txn& t) -> Status {
      auto prev = t.query_one("SELECT id FROM service_keys WHERE slot = 'previous'");
      if (!prev.ok()) return prev.status();
      auto cur = t.query_one("SELECT id FROM service_keys WHERE slot = 'current'");
      if (!cur.ok()) return cur.status();
      if (*prev || !*cur)
        return Status::FailedPrecondition("a key rotation to " +
                                          (*cur ? (*cur)->text(0) : std::string("?")) +
                                          " awaits confirmation; confirm it first");
      // Sealed for its slot: the old current key is sealed again as previous.
      if (Status p = impl_->put_slot(t, "previous", impl_->current); !p.ok()) return p;
      if (Status p = impl_->put_slot(t, "current", *next); !p.ok()) return p;
      return Impl::bump(t);
    });
    if (!s.ok()) return s;
    return impl_->refresh_locked();
  }
  if (!impl_->previous.id.empty())
    return Status::FailedPrecondition("a key rotation to " + impl_->current.id +
                                      " awaits confirmation; confirm it first");
  auto next = impl_->make_key("dms-" + impl_->env->new_uuid());
  if (!next.ok()) return next.status();
  KeySlot old = std::move(impl_->current);
  impl_->current = std::move(next).value();
  impl_->previous = std::move(old);
  Status s = impl_->write_manifest();
  if (!s.ok()) {  // not committed: back to how it was
    ::unlink(impl_->key_path(impl_->current.id).c_str());
    impl_->current = std::move(impl_->previous);
    impl_->previous = KeySlot{};
  }
  return s;
}

Status Identity::confirm_rotation() {
  std::lock_guard lock(impl_->mu);
  if (impl_->store) {
    Status s = impl_->store->transact([&](Txn& t) -> Status {
      auto r = t.exec("DELETE FROM service_keys WHERE slot = 'previous'");
      if (!r.ok()) return r.status();
      if (*r == 0) return Status::FailedPrecondition("no key rotation awaits confirmation");
      return Impl::bump(t);
    });
    if (!s.ok()) return s;
    return impl_->refresh_locked();
  }
  if (impl_->previous.id.empty())
    return Status::FailedPrecondition("no key rotation awaits confirmation");
  KeySlot old = std::move(impl_->previous);
  impl_->previous = KeySlot{};
  Status s = impl_->write_manifest();
  if (!s.ok()) {
    impl_->previous = std::move(old);
    return s;
  }
  ::unlink(impl_->key_path(old.id).c_str());
  return detail::fsync_dir(impl_->dir);
}

Result<std::string> Identity::sign_with_cluster_key(std::string_view data) const {
  std::lock_guard lock(impl_->mu);
  (void)impl_->refresh_locked();
  return rs256_sign(impl_->current.key.get(), data);
}

Result<std::string> Identity::sign_with_login_key(std::string_view data) const {
  return rs256_sign(impl_->login.key.get(), data);  // the login key never changes while open
}

bool Identity::verify_login_signature(std::string_view data, std::string_view signature) const {
  return rs256_verify(impl_->login.key.get(), data, signature);
}

const std::string& Identity::login_key_id() const { return impl_->login.id; }

struct ClusterTokenSigner::Impl {
  const Identity& identity;
  ClusterTokenOptions options;
  std::shared_ptr<Env> env;
  std::mutex mu;
  struct Cached {
    std::string token;
    std::string kid;
    Env::SystemTime expires{};
  };
  std::map<std::string, Cached> cached;  // by audience
};

ClusterTokenSigner::ClusterTokenSigner(const Identity& identity, ClusterTokenOptions options,
                                       std::shared_ptr<Env> env)
    : impl_(new Impl{identity, std::move(options), env ? env : Env::Default(), {}, {}}) {}
ClusterTokenSigner::~ClusterTokenSigner() = default;

Result<std::string> ClusterTokenSigner::token(const std::string& audience) {
  return token(std::vector<std::string>{audience});
}

Result<std::string> ClusterTokenSigner::token(const std::vector<std::string>& audiences) {
  Impl& im = *impl_;
  if (im.options.ttl < std::chrono::seconds(1) || im.options.ttl > std::chrono::hours(24))
    return Status::InvalidArgument("ttl: must be 1 s..24 h");
  if (audiences.empty() || audiences.size() > 16)
    return Status::InvalidArgument("audience: must name 1-16 clusters");
  std::string audience;  // the cache key
  json::array aud_list;
  for (const auto& a : audiences) {
    if (a.empty() || a.size() > 512)
      return Status::InvalidArgument("audience: each must be 1-512 bytes");
    audience += a + '\n';
    aud_list.emplace_back(a);
  }
  auto creds = im.identity.credentials();
  std::lock_guard lock(im.mu);
  auto now = im.env->now();
  if (auto it = im.cached.find(audience); it != im.cached.end() &&
                                          it->second.kid == creds.pub_key_id &&
                                          now + im.options.refresh_before < it->second.expires)
    return it->second.token;
  auto iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  auto exp = iat + im.options.ttl.count();
  json::object header{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "system:" + creds.pub_key_id}};
  json::object claims{{"iss", im.options.issuer},
                      {"sub", im.options.subject},
                      {"aud", audiences.size() == 1 ? json::value(audiences.front())
                                                    : json::value(std::move(aud_list))},
                      {"iat", iat},
                      {"exp", exp},
                      {"roles", json::array{"system:cluster-admin"}}};
  std::string input = detail::jws_signing_input(json::serialize(header), json::serialize(claims));
  auto sig = im.identity.sign_with_cluster_key(input);
  if (!sig.ok()) return sig.status();
  if (im.cached.size() >= 1024) im.cached.clear();  // bounded: one entry per attached cluster
  auto& c = im.cached[audience];
  c.token = input + "." + detail::base64url_encode(*sig);
  c.kid = creds.pub_key_id;
  c.expires = Env::SystemTime(std::chrono::seconds(exp));
  return c.token;
}

}  // namespace dmscore
