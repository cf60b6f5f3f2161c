#pragma once
// Server: the embeddable HTTP façade, Boost.Beast underneath, the Router on top.
//
//   listener (accepts, caps connections) ─► session per connection (its own strand)
//      read headers (deadline, 8 KiB limit → 431) ─► read body (deadline, 1 MiB → 413)
//      ─► Router::handle, on the lane Router::lane names: bounded reads on the session's strand;
//         store writes on the blocking pool; whatever may call a storage cluster on the cluster
//         pool; logins on their own pool (a full lane answers 503 or 429 at once)
//      ─► write (deadline) ─► keep-alive wait (idle deadline) ─► ...
//
// Every answer carries X-Request-Id (the client's, when it sent a sane one, or a new one),
// and every request is logged with it. TLS 1.2 and 1.3 only, from certificate and key files;
// plain HTTP only when asked for explicitly or when listening on loopback.
//
// Server::create(service, options) makes a server that runs on its own threads;
// Server::create(io_context, service, options) one that runs on an embedder's Boost.Asio
// io_context (only declared here: this header includes no Boost).
// stop() stops accepting, lets requests in flight finish (up to `drain_timeout`), closes idle
// connections and returns; with a lent io_context, call it from outside that loop's threads
// while the loop still runs. Safe for concurrent use.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace boost::asio {
class io_context;
}

namespace dmscore {
class Service;
}

namespace dmscore::http {

struct ServerOptions {
  // Address to bind. Default: "127.0.0.1".
  std::string address = "127.0.0.1";
  // Port; 0 picks a free one (see Server::port()). Default: 8443.
  std::uint16_t port = 8443;
  // PEM certificate chain and private key. Both empty means plain HTTP, which is refused unless
  // `allow_plain_http` or `address` is a loopback address.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Default: false.
  bool allow_plain_http = false;
  // I/O threads. Default: 1. REQUIRES: 1..64.
  int io_threads = 1;
  // Threads that run requests that write to the store. Default: 4.
  int blocking_threads = 4;
  // Threads that run requests that may call a storage cluster, and how many such requests may
  // be held (running or waiting) before more are answered 503 at once. Each cluster's share is
  // bounded by the service (Options::cluster_max_concurrent_calls), so one cluster that hangs
  // holds only its share. Logins run on threads of their own, sized after the service's
  // password hashing queue. Defaults: 16, 256. REQUIRES: 1..256, 1..100000.
  int cluster_threads = 16;
  int cluster_queue_limit = 256;
  // Requests that wait for a workflow to end (GET .../workflows/{id}?waitMs=) served at once;
  // more are answered 503 at once. Default: 32. REQUIRES: 1..1024.
  int wait_threads = 32;
  // Answers GET and HEAD on the I/O threads, saving two thread hand-offs per request. Their
  // work is a token check and bounded store reads, which never wait for a writer (WAL).
  // false sends every request through the blocking pool. Default: true.
  bool reads_on_io_threads = true;
  // Request line plus headers, in bytes; beyond it 431. Default: 8 KiB.
  std::size_t header_limit = 8 * 1024;
  // Request body, in bytes; beyond it 413. Default: 1 MiB.
  std::size_t body_limit = 1024 * 1024;
  // Deadlines. Defaults: headers 10 s, body 30 s, idle keep-alive 60 s, writing 30 s.
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{30000};
  // Connections served at once; more are accepted and closed at once. Default: 1024.
  int max_connections = 1024;
  // How long stop() waits for requests in flight. Default: 10 s.
  std::chrono::milliseconds drain_timeout{10000};
  // Receives one line per request and per failure (never a token or password).
  // Default: none.
  std::function<void(std::string_view)> log;
};

// Parses "ADDR:PORT" or "[v6]:PORT" (port 0: any) into `options.address` and `options.port`.
// INVALID_ARGUMENT "listen: ..." for anything else.
Status set_listen_address(ServerOptions& options, std::string_view address_and_port);

class Server {
 public:
  // Binds and listens. INVALID_ARGUMENT for bad options (plain HTTP on a non-loopback address
  // without allow_plain_http; one of the TLS files without the other); UNAVAILABLE when the
  // address cannot be bound or the TLS files cannot be loaded.
  static Result<std::unique_ptr<Server>> create(Service& service, ServerOptions options);
  // The same on `io_context`, which the embedder runs and which must outlive the server.
  // `io_threads` is ignored.
  static Result<std::unique_ptr<Server>> create(boost::asio::io_context& io_context,
                                                Service& service, ServerOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting: on the server's own threads, or on the lent io_context (which the embedder
  // runs). FAILED_PRECONDITION when already started.
  Status start();
  // See the class comment. Idempotent.
  void stop();

  // The bound port (useful with port 0).
  std::uint16_t port() const;
  bool tls() const;

 private:
  struct Impl;
  static Result<std::unique_ptr<Server>> build(Service& service, ServerOptions options,
                                               boost::asio::io_context* lent);
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore::http
