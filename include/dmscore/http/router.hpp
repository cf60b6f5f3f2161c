#pragma once
// Router: the REST contract (docs/api-v1.md) as a pure function from a request to a response.
//
// No sockets are involved: the HTTP server parses the wire into a Request, calls handle(), and
// writes the Response back, so every route is testable by calling handle() directly. Bodies
// are decoded strictly (unknown fields are INVALID_ARGUMENT naming the field), every error has
// the grpc-gateway body {"code", "message", "details": []}, and INTERNAL errors never carry
// their internal message to the client (it goes to the log with the request id).
//
// GET /metrics answers the Prometheus text format 0.0.4: workflows by type and state, copy and
// verify bytes, HTTP requests by route and code, and a request latency histogram.
//
// Authentication: every /api/v1 route but login and openapi.json needs a Bearer token from
// login; a viewer may only use GET. A missing or bad token answers 401 without telling whether
// the user exists.
//
// handle() may block on the store, on scrypt (login) and on storage clusters: lane() tells which,
// and the server runs it accordingly (see Lane). Safe for concurrent use.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dmscore {
class Service;
}

namespace dmscore::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as sent: "/api/v1/workflows?pageSize=10"
  // Header names compare case-insensitively (see header()).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The peer's address, for login rate limiting and the audit log.
  std::string remote;
  // Whether it came over TLS (for the links an answer carries).
  bool secure = false;
  // The id echoed in X-Request-Id; made by the server when the client sent none.
  std::string request_id;

  // The first header named `name` (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The route template that matched ("/api/v1/workflows/{workflowId}"), for metrics; "" when
  // none did.
  std::string route;
};

// Where the server runs a request's handling, so that nothing slow runs on an I/O thread and a
// slow cluster or a login spray holds only threads of its own kind.
enum class Lane {
  kInline,    // bounded memory and store reads: answered on the I/O thread itself
  kBlocking,  // store writes and other work that never waits for a cluster
  kCluster,   // may call a storage cluster (bounded per cluster by the service's gates)
  kLogin,     // hashes a password (bounded by the service's hashing queue)
  kWait,      // waits for a workflow to end (a long poll, bounded in time)
};

struct RouterOptions {
  // Receives log lines (never secrets). Default: none.
  std::function<void(std::string_view)> log;
};

class Router {
 public:
  // `service` must outlive the router.
  explicit Router(Service& service, RouterOptions options = {});
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Never throws; always answers.
  Response handle(const Request& request) const;

  // The lane of the route `request` names (kInline for an unknown route or method, whose
  // answer is an error computed at once).
  Lane lane(const Request& request) const;

  // The largest request body the route `method` `target` names takes, when it takes more than
  // the server's limit (a migration's data stream); 0 for the server's own limit.
  std::size_t body_limit(std::string_view method, std::string_view target) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The error body of the contract for `code` and `message`, and its HTTP status.
Response error_response(int grpc_code, std::string_view message);

}  // namespace dmscore::http
