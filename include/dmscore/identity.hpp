#pragma once
// Identity: the service's RSA key pairs and the RS256 JWTs it signs with them.
//
// On first open the service makes an RSA key pair (3072 bits) with OpenSSL's EVP API and keeps
// it under <data-dir>/identity/: `cluster-key.pem` (private, mode 0600) and
// `cluster-key.json` ({"pubKeyId": "dms-<uuid>", "createdAt": ...}). The public half goes to
// storage clusters: an operator imports it with
//   lbcli create credential --project-name=system --type=rsa256pubkey --id=<pubKeyId> <pem>
// and the service then calls the cluster with RS256 JWTs whose `kid` is `system:<pubKeyId>`.
//
// Rotation makes a new pair and keeps the old one as "previous" (both ids visible) until the
// operator confirms that every cluster has the new public key.
//
// A second, separate pair (`login-key.pem`) signs the tokens of the service's own API, so that
// a leaked cluster token can never pass as a login and the other way round.
//
// A private key file readable by anyone but its owner is refused, with a message saying how to
// fix it. Key material never appears in a Status message.
//
// Several instances sharing a PostgreSQL store share one identity: open_in_store() keeps the
// pairs in the store instead, each private key sealed (AES-256-GCM) with a key derived from a
// file every instance is given, so the database alone never yields them.
//
// Safe for concurrent use.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"

namespace dmscore {

class Store;

// What GET /api/v1/service-credentials answers.
struct ServiceCredentials {
  std::string pub_key_id;  // "dms-<uuid>"
  std::string pub_key;     // base64 of the PEM public key
  // The NVMe host NQN the service reaches Lightbits volumes as (what their ACLs come to name
  // while it copies); empty when this host has none (Options::host_nqn, host_nqn_file).
  std::string host_nqn;
};

struct ServiceKey {
  std::string pub_key_id;
  bool current = false;  // false: the previous key, kept until rotation is confirmed
  Env::SystemTime created_at;
  std::string public_pem;
};

struct IdentityOptions {
  // Default: 3072. REQUIRES: 2048..8192 (tests may use 2048 for speed; 3072 or more in use).
  int rsa_bits = 3072;
  // Default: Env::Default().
  std::shared_ptr<Env> env;
};

class Identity {
 public:
  // Opens <dir> (created 0700 when absent), making the key pairs on first use. Returns
  // FAILED_PRECONDITION when a private key file is readable or writable by group or others (the
  // message names the file and the chmod that fixes it) or cannot be parsed; UNAVAILABLE when
  // files cannot be written.
  static Result<std::unique_ptr<Identity>> open(const std::string& dir,
                                                IdentityOptions options = {});

  // Opens the identity kept in `store` (its service_keys table), making the pairs on first use
  // (instances racing to make them agree on one). Every private key is sealed with AES-256-GCM
  // under a key derived (SHA-256) from the file `store_key_file`: mode 0600 and 32..4096 bytes,
  // the same file on every instance (`head -c 32 /dev/urandom > FILE`). A rotation or
  // confirmation made through one instance is seen by the others at their next use. Returns
  // FAILED_PRECONDITION when the file is readable by others, too short or long, or does not
  // open the keys in the store (another instance's file differs); UNAVAILABLE when it cannot be
  // read. The store must outlive the Identity.
  static Result<std::unique_ptr<Identity>> open_in_store(Store& store,
                                                         const std::string& store_key_file,
                                                         IdentityOptions options = {});
  ~Identity();

  // The current cluster key, in the shape the REST contract answers.
  ServiceCredentials credentials() const;
  // The current key, then the previous one when a rotation awaits confirmation.
  std::vector<ServiceKey> keys() const;

  // Makes a new current key; the old one becomes previous. FAILED_PRECONDITION while an earlier
  // rotation is not yet confirmed.
  Status rotate();
  // Forgets the previous key. FAILED_PRECONDITION when no rotation is pending.
  Status confirm_rotation();

  // RS256 signatures (RSASSA-PKCS1-v1_5 with SHA-256) of `data`.
  Result<std::string> sign_with_cluster_key(std::string_view data) const;
  Result<std::string> sign_with_login_key(std::string_view data) const;
  // Checks an RS256 signature against the login key's public half. Never throws, whatever the
  // input.
  bool verify_login_signature(std::string_view data, std::string_view signature) const;
  // "login-<uuid>": the `kid` of login tokens.
  const std::string& login_key_id() const;

 private:
  struct Impl;
  explicit Identity(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct ClusterTokenOptions {
  // `iss` claim. Default: "libdmscore".
  std::string issuer = "libdmscore";
  // `sub` claim. Default: "dms".
  std::string subject = "dms";
  // Lifetime of a token. Default: 5 minutes. REQUIRES: 1 s..24 h.
  std::chrono::seconds ttl{300};
  // A cached token is replaced this long before it expires. Default: 60 s.
  std::chrono::seconds refresh_before{60};
};

// Mints the RS256 JWTs the service presents to storage clusters: header
// {"alg":"RS256","typ":"JWT","kid":"system:<pubKeyId>"}, claims iss, sub, aud, iat, exp and
// roles ["system:cluster-admin"]. Each token names one cluster as its audience (its UUID; the
// endpoint while attaching, before the UUID is known), so a token one cluster received is no
// use against another, and lives only `ttl`. Tokens are cached per audience until shortly
// before expiry. Safe for concurrent use.
class ClusterTokenSigner {
 public:
  ClusterTokenSigner(const Identity& identity, ClusterTokenOptions options = {},
                     std::shared_ptr<Env> env = nullptr);
  ~ClusterTokenSigner();
  // A token for the cluster `audience`. INVALID_ARGUMENT for an empty audience or bad options.
  Result<std::string> token(const std::string& audience);
  // A token whose `aud` is the list (RFC 7519 allows several): for a cluster known only by its
  // endpoints while it is being attached. INVALID_ARGUMENT for an empty list or name.
  Result<std::string> token(const std::vector<std::string>& audience);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore
