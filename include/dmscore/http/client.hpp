#pragma once
// Client: a blocking HTTP/1.1 client over TCP or TLS, for talking to the service (dmsctl) and to
// storage clusters (the Lightbits driver).
//
// - TLS verification is on by default: the peer's chain is checked against `ca_file` (or the
//   system's store) and its name against the endpoint's host. `insecure` turns both off, for
//   self-signed lab systems only.
// - One connection is kept alive and reused; it is reopened when the peer closed it. A request
//   that fails before any byte of the answer arrives is retried once on a fresh connection
//   when the method is idempotent (GET, HEAD, PUT, DELETE).
// - Every step (resolve, connect, handshake, write, read) is bounded by the timeouts below,
//   and answers larger than `max_response_bytes` are refused.
// - Several endpoints may be given: when one cannot be reached, the next is tried, and the one
//   that answered is used first afterwards.
//
// Errors are Status values: UNAVAILABLE for unreachable or timed-out peers, and for TLS
// failures (with the reason), INTERNAL for answers that break HTTP, RESOURCE_EXHAUSTED for
// oversized answers. HTTP error statuses are not errors here: the caller reads `status`.
//
// Not thread-safe: use one Client per thread, or guard it.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace dmscore::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ClientOptions {
  // "https://host:port", "http://host:port" or "host:port" (HTTPS). At least one.
  // Plain http:// is for loopback and tests; credentials then cross the wire in the clear.
  std::vector<std::string> endpoints;
  // PEM file of trusted certificate authorities. Default: empty, the system's store.
  std::string ca_file;
  // Skips certificate and host name verification. Default: false.
  bool insecure = false;
  // Bounds on connecting (resolve + TCP + TLS handshake) and on one request's write and read.
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  // Largest answer body accepted. Default: 16 MiB.
  std::size_t max_response_bytes = 16u << 20;
  // The clock and pauses of waits above a request (ApiClient::wait_workflow). Default:
  // Env::Default().
  std::shared_ptr<Env> env;
  // Sent with every request (for example Authorization). Per-request headers come after.
  Headers headers;
  // Value of the User-Agent header.
  std::string user_agent = "libdmscore";
};

struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
  // The endpoint that answered.
  std::string endpoint;

  // The first header named `name` (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
};

class Client {
 public:
  // INVALID_ARGUMENT naming the field for a malformed endpoint or an unreadable ca_file.
  static Result<std::unique_ptr<Client>> create(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // `target` is the path and query ("/api/v1/clusters?x=1"). A body is sent with
  // Content-Type application/json unless `headers` names another.
  // `timeout`, when positive, also bounds this request's connect and exchange (a caller's
  // deadline), below the options' own timeouts.
  Result<ClientResponse> request(std::string_view method, std::string_view target,
                                 std::string_view body = {}, const Headers& headers = {},
                                 std::chrono::milliseconds timeout = {});

  // Replaces (or adds) a header sent with every request.
  void set_header(std::string name, std::string value);

  const ClientOptions& options() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore::http
