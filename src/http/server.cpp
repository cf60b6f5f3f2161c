#include "dmscore/http/server.hpp"

#include <fcntl.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <future>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "base/call_scope.hpp"
#include "base/endpoint.hpp"
#include "dmscore/http/router.hpp"
#include "dmscore/service.hpp"

namespace dmscore::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

bool sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return true;
}

// A pool of threads for one lane (see Lane), with a bound on the requests it holds (running or
// queued); past it, the request is answered at once.
struct LanePool {
  net::thread_pool pool;
  std::atomic<int> held{0};
  int limit;
  LanePool(int threads, int limit_)
      : pool(static_cast<std::size_t>(std::max(1, threads))), limit(limit_) {}
};

// What every session shares with the server.
struct Shared {
  Service& service;
  ServerOptions options;
  Router router;
  net::thread_pool blocking;
  // Requests that may call a storage cluster: each cluster's calls are bounded by the service's
  // gate, so one that hangs holds a few of these threads, never the I/O threads or the others.
  LanePool clusters;
  // Logins: password hashing is bounded by the service; these threads only wait for it.
  LanePool logins;
  // Long polls: each waits at most 10 s (the drain timeout) for a workflow to end.
  LanePool waits;
  std::atomic<int> connections{0};
  // Signalled when the last connection ends; its own mutex, never held while sessions close.
  std::mutex connections_mu;
  std::condition_variable no_connections;
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> next_id{1};
  std::string id_prefix;

  std::mutex mu;
  std::condition_variable drained;
  // Closers of live sessions, so stop() can end idle keep-alive connections.
  std::list<std::function<void()>> closers;

  Shared(Service& s, ServerOptions o)
      : service(s),
        options(std::move(o)),
        router(s, RouterOptions{options.log}),
        blocking(static_cast<std::size_t>(std::max(1, options.blocking_threads))),
        clusters(options.cluster_threads, options.cluster_queue_limit),
        logins(s.options().password_hash_concurrency + s.options().password_hash_queue + 2,
               s.options().password_hash_concurrency + s.options().password_hash_queue + 2),
        waits(options.wait_threads, options.wait_threads) {
    id_prefix = s.options().env ? s.options().env->new_uuid().substr(0, 8)
                                : Env::Default()->new_uuid().substr(0, 8);
  }

  void log(std::string_view line) const {
    if (options.log) options.log(line);
  }

  std::string make_request_id() { return id_prefix + "-" + std::to_string(next_id++); }
};

template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream stream, std::shared_ptr<Shared> shared, std::string remote)
      : stream_(std::move(stream)), shared_(std::move(shared)), remote_(std::move(remote)) {}

  ~Session() {
    if (--shared_->connections == 0) {
      { std::lock_guard lock(shared_->connections_mu); }
      shared_->no_connections.notify_all();
    }
  }

  void run() {
    auto self = this->shared_from_this();
    {
      std::lock_guard lock(shared_->mu);
      closer_ = shared_->closers.insert(shared_->closers.end(), [weak = this->weak_from_this()] {
        if (auto s = weak.lock()) s->close_when_idle();
      });
    }
    net::dispatch(stream_.get_executor(), [self] { self->start(); });
  }

 private:
  void start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).expires_after(shared_->options.header_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->finish();
                                self->read(self->shared_->options.header_timeout);
                              });
    } else {
      read(shared_->options.header_timeout);
    }
  }

  void read(std::chrono::milliseconds deadline) {
    if (shared_->stopping) return finish();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->options.header_limit));
    // The limit is the route's (on_header): none while the header is read.
    parser_->body_limit(boost::none);
    body_limit_ = shared_->options.body_limit;
    idle_ = true;
    beast::get_lowest_layer(stream_).expires_after(deadline);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               self->on_header(ec);
                             });
  }

  void on_header(beast::error_code ec) {
    idle_ = false;
    if (ec == bhttp::error::header_limit)
      return reject(431, "request headers larger than " +
                             std::to_string(shared_->options.header_limit) + " bytes");
    // A Content-Length over the limit is refused before the body is read.
    if (ec == bhttp::error::body_limit) return reject(413, body_too_large());
    if (ec) return on_read_error(ec);
    // The body limit of the route named (a migration's data stream takes larger bodies).
    {
      const auto& h = parser_->get();
      body_limit_ = shared_->router.body_limit(std::string_view(h.method_string()),
                                               std::string_view(h.target()));
      if (body_limit_ < shared_->options.body_limit) body_limit_ = shared_->options.body_limit;
      if (auto len = parser_->content_length(); len && *len > body_limit_)
        return reject(413, body_too_large());
      parser_->body_limit(body_limit_);
    }
    if (parser_->is_done()) return dispatch_request();
    beast::get_lowest_layer(stream_).expires_after(shared_->options.body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code e, std::size_t) {
                        if (e == bhttp::error::body_limit)
                          return self->reject(413, self->body_too_large());
                        if (e) return self->on_read_error(e);
                        self->dispatch_request();
                      });
  }

  std::string body_too_large() const {
    return "request body larger than " + std::to_string(body_limit_) + " bytes";
  }

  void on_read_error(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset)
      return finish();
    // Anything else is a malformed request.
    reject(400, "malformed HTTP request");
  }

  // Answers a request the parser refused, with the contract's error body, and closes.
  void reject(int status, const std::string& message) {
    Response r = error_response(static_cast<int>(Code::kInvalidArgument), message);
    r.status = status;
    std::string id = shared_->make_request_id();
    shared_->log("request " + id + " from " + remote_ + " rejected: " + std::to_string(status));
    write(std::move(r), id, /*keep_alive=*/false, 11);
  }

  void dispatch_request() {
    auto& msg = parser_->get();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    for (const auto& f : msg)
      req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    req.body = std::move(msg.body());
    req.remote = remote_;
    req.secure = std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>;
    std::string_view rid = req.header("X-Request-Id");
    req.request_id = sane_request_id(rid) ? std::string(rid) : shared_->make_request_id();
    const bool keep_alive = msg.keep_alive() && !shared_->stopping;
    const unsigned version = msg.version();
    shared_->in_flight++;
    auto started = std::chrono::steady_clock::now();
    auto answer = [](const std::shared_ptr<Session>& self, const Request& rq,
                     std::chrono::steady_clock::time_point t0) {
      Response r = self->shared_->router.handle(rq);
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      std::string path = rq.target.substr(0, rq.target.find('?'));
      if (path.size() > 200) path = path.substr(0, 200) + "...";
      self->shared_->log("request " + rq.request_id + " " + rq.method.substr(0, 16) + " " + path +
                         " " + std::to_string(r.status) + " " + std::to_string(ms) + "ms");
      return r;
    };
    auto finish = [](const std::shared_ptr<Session>& self, Response r, const std::string& id,
                     bool keep, unsigned v) {
      self->write(std::move(r), id, keep, v);
      if (--self->shared_->in_flight == 0) {
        std::lock_guard lock(self->shared_->mu);
        self->shared_->drained.notify_all();
      }
    };
    // Bounded reads are answered here, on the session's strand (they never wait for a writer in
    // WAL mode, and the two thread hand-offs they save are a quarter of a request's CPU); what
    // may call a cluster or hash a password goes to its own lane; every other request to the
    // blocking pool. The answer is written back on the strand.
    const Lane lane = shared_->router.lane(req);
    if (lane == Lane::kInline && shared_->options.reads_on_io_threads &&
        (req.method == "GET" || req.method == "HEAD")) {
      auto self = this->shared_from_this();
      Response r;
      {
        // A cluster call here would be a bug: the gates count any made on this thread.
        bool& io = dmscore::detail::io_thread_flag();
        const bool was = io;
        io = true;
        r = answer(self, req, started);
        io = was;
      }
      finish(self, std::move(r), req.request_id, keep_alive, version);
      return;
    }
    LanePool* lane_pool = lane == Lane::kCluster ? &shared_->clusters
                          : lane == Lane::kLogin ? &shared_->logins
                          : lane == Lane::kWait  ? &shared_->waits
                                                 : nullptr;
    if (lane_pool && ++lane_pool->held > lane_pool->limit) {
      --lane_pool->held;
      const bool login = lane == Lane::kLogin;
      Response r =
          error_response(static_cast<int>(login ? Code::kResourceExhausted : Code::kUnavailable),
                         login ? "too many logins in progress; retry in 1 s"
                               : "too many requests to storage clusters in progress; retry in 1 s");
      r.headers.emplace_back("Retry-After", "1");
      shared_->log("request " + req.request_id + " " + req.method.substr(0, 16) +
                   " refused: " + std::to_string(r.status) + " (lane full)");
      finish(this->shared_from_this(), std::move(r), req.request_id, keep_alive, version);
      return;
    }
    auto work = [self = this->shared_from_this(), req = std::move(req), keep_alive, version,
                 started, answer, finish, lane_pool]() mutable {
      Response r = answer(self, req, started);
      if (lane_pool) --lane_pool->held;
      net::post(self->stream_.get_executor(),
                [self, r = std::move(r), id = req.request_id, keep_alive, version,
                 finish]() mutable { finish(self, std::move(r), id, keep_alive, version); });
    };
    if (lane_pool)
      net::post(lane_pool->pool, std::move(work));
    else
      net::post(shared_->blocking, std::move(work));
  }

  void write(Response r, const std::string& request_id, bool keep_alive, unsigned version) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(r.status), version);
    res->set(bhttp::field::server, "libdmscore");
    res->set(bhttp::field::content_type, r.content_type);
    res->set("X-Request-Id", request_id);
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(shared_->options.write_timeout);
    bhttp::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
          if (ec || !keep_alive) return self->finish();
          self->read(self->shared_->options.idle_timeout);
        });
  }

  // From stop(): an idle connection is closed now; a busy one after its answer.
  void close_when_idle() {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->idle_) beast::get_lowest_layer(self->stream_).cancel();
    });
  }

  void finish() {
    {
      std::lock_guard lock(shared_->mu);
      if (closer_) {
        shared_->closers.erase(*closer_);
        closer_.reset();
      }
    }
    beast::error_code ec;
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code e;
        beast::get_lowest_layer(self->stream_).socket().close(e);
      });
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      stream_.socket().close(ec);
    }
  }

  Stream stream_;
  std::shared_ptr<Shared> shared_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<std::list<std::function<void()>>::iterator> closer_;
  bool idle_ = false;
  std::size_t body_limit_ = 0;  // of the request being read
};

bool is_loopback(const std::string& address) {
  beast::error_code ec;
  auto a = net::ip::make_address(address, ec);
  return !ec && a.is_loopback();
}

}  // namespace

struct Server::Impl {
  std::shared_ptr<Shared> shared;
  // The server's own loop, or none when an embedder lends one.
  std::optional<net::io_context> own_ioc;
  net::io_context& ioc;
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::uint16_t port = 0;
  bool started = false;
  bool stopped = false;

  explicit Impl(int io_threads) : own_ioc(std::in_place, io_threads), ioc(*own_ioc) {}
  explicit Impl(net::io_context& lent) : ioc(lent) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        shared->log(std::string("accept failed: ") + ec.message());
        return accept();
      }
      // Asio does not open sockets close-on-exec; a hook started meanwhile closes what it
      // inherited anyway (run_hook), this keeps every other child from holding a connection.
      ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
      if (shared->stopping) return;
      if (shared->connections.load() >= shared->options.max_connections) {
        beast::error_code e;
        socket.close(e);  // over the cap: refuse at once rather than queue
        return accept();
      }
      shared->connections++;
      beast::error_code e;
      auto ep = socket.remote_endpoint(e);
      std::string remote = e ? std::string("unknown") : ep.address().to_string();
      if (tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *tls),
            shared, remote)
            ->run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), shared,
                                                     remote)
            ->run();
      }
      accept();
    });
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { stop(); }

namespace {

Status check_options(const ServerOptions& options) {
  if (options.io_threads < 1 || options.io_threads > 64)
    return Status::InvalidArgument("io_threads: must be 1..64");
  if (options.blocking_threads < 1 || options.blocking_threads > 256)
    return Status::InvalidArgument("blocking_threads: must be 1..256");
  if (options.cluster_threads < 1 || options.cluster_threads > 256)
    return Status::InvalidArgument("cluster_threads: must be 1..256");
  if (options.cluster_queue_limit < 1 || options.cluster_queue_limit > 100000)
    return Status::InvalidArgument("cluster_queue_limit: must be 1..100000");
  if (options.wait_threads < 1 || options.wait_threads > 1024)
    return Status::InvalidArgument("wait_threads: must be 1..1024");
  if (options.max_connections < 1) return Status::InvalidArgument("max_connections: must be >= 1");
  if (options.header_limit < 512) return Status::InvalidArgument("header_limit: must be >= 512");
  if (options.tls_cert_file.empty() != options.tls_key_file.empty())
    return Status::InvalidArgument("tls: give both a certificate and a key file, or neither");
  const bool plain = options.tls_cert_file.empty();
  if (plain && !options.allow_plain_http && !is_loopback(options.address))
    return Status::InvalidArgument(
        "listen: plain HTTP on a non-loopback address needs an explicit opt-in; give a TLS "
        "certificate and key");
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Server>> Server::build(Service& service, ServerOptions options,
                                              net::io_context* lent) {
  if (Status s = check_options(options); !s.ok()) return s;
  const bool plain = options.tls_cert_file.empty();
  auto impl = lent ? std::make_unique<Impl>(*lent) : std::make_unique<Impl>(options.io_threads);
  if (!plain) {
    impl->tls.emplace(ssl::context::tls_server);
    auto& ctx = *impl->tls;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                    ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    beast::error_code ec;
    ctx.use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec)
      return Status::Unavailable("tls: cannot load certificate " + options.tls_cert_file + ": " +
                                 ec.message());
    ctx.use_private_key_file(options.tls_key_file, ssl::context::pem, ec);
    if (ec)
      return Status::Unavailable("tls: cannot load key " + options.tls_key_file + ": " +
                                 ec.message());
  }
  beast::error_code ec;
  auto address = net::ip::make_address(options.address, ec);
  if (ec) return Status::InvalidArgument("listen: " + options.address + " is not an IP address");
  tcp::endpoint ep(address, options.port);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) ::fcntl(impl->acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return Status::Unavailable("listen: cannot listen on " + options.address + ":" +
                               std::to_string(options.port) + ": " + ec.message());
  impl->port = impl->acceptor.local_endpoint().port();
  impl->shared = std::make_shared<Shared>(service, std::move(options));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Result<std::unique_ptr<Server>> Server::create(Service& service, ServerOptions options) {
  return build(service, std::move(options), nullptr);
}

Result<std::unique_ptr<Server>> Server::create(net::io_context& io_context, Service& service,
                                               ServerOptions options) {
  return build(service, std::move(options), &io_context);
}

Status Server::start() {
  if (impl_->started) return Status::FailedPrecondition("server already started");
  impl_->started = true;
  net::post(impl_->ioc, [this] { impl_->accept(); });
  if (impl_->own_ioc) {
    for (int i = 0; i < impl_->shared->options.io_threads; ++i)
      impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
  return Status::Ok();
}

void Server::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  auto& sh = *impl_->shared;
  sh.stopping = true;
  net::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  {
    std::unique_lock lock(sh.mu);
    sh.drained.wait_for(lock, sh.options.drain_timeout, [&] { return sh.in_flight.load() == 0; });
    for (auto& close : sh.closers) close();
  }
  // Give closing sessions a moment to run their handlers, then stop the loop.
  {
    std::unique_lock lock(sh.connections_mu);
    sh.no_connections.wait_for(lock, std::chrono::seconds(2),
                               [&] { return sh.connections.load() == 0; });
  }
  if (impl_->own_ioc) {
    impl_->ioc.stop();
    for (auto& t : impl_->threads)
      if (t.joinable()) t.join();
  } else {
    // The lent loop keeps running; wait until it has run the acceptor's close.
    std::promise<void> closed;
    net::post(impl_->ioc, [&closed] { closed.set_value(); });
    closed.get_future().wait_for(std::chrono::seconds(2));
  }
  sh.blocking.join();
  sh.clusters.pool.join();
  sh.logins.pool.join();
  sh.waits.pool.join();
}

Status set_listen_address(ServerOptions& options, std::string_view text) {
  auto e = dmscore::detail::parse_listen_address(text, "listen");
  if (!e.ok()) return e.status();
  options.address = e->host;
  options.port = e->port;
  return Status::Ok();
}

std::uint16_t Server::port() const { return impl_->port; }
bool Server::tls() const { return impl_->tls.has_value(); }

}  // namespace dmscore::http
