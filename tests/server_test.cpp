#include "dmscore/http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "dmscore/service.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::TempDir;
namespace json = boost::json;

namespace {

// A raw client: what goes over the wire is exactly what the test writes.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~Client() { ::close(fd_); }
  void send(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
  // Reads one response (headers + Content-Length body); "" when the peer closed first.
  std::string response(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::size_t len = 0;
        auto cl = buf_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) len = std::stoul(buf_.substr(cl + 16));
        if (buf_.size() >= end + 4 + len) {
          std::string r = buf_.substr(0, end + 4 + len);
          buf_.erase(0, end + 4 + len);
          return r;
        }
      }
      if (!fill(deadline)) return "";
    }
  }
  // True when the server closed the connection within `timeout`.
  bool closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return eof_;
  }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char b[65536];
    ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(b, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

int status_of(const std::string& response) {
  return response.size() > 12 ? std::stoi(response.substr(9, 3)) : 0;
}

std::string body_of(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

std::string header_of(const std::string& response, const std::string& name) {
  auto p = response.find("\r\n" + name + ": ");
  if (p == std::string::npos) return "";
  auto start = p + name.size() + 4;
  return response.substr(start, response.find("\r\n", start) - start);
}

// The server's log lines are kept in `log`.
struct Fixture : dmscore::testing::ServiceHarness {
  std::unique_ptr<http::Server> server;

  explicit Fixture(http::ServerOptions so = {}) {
    Options o;
    o.admin_password = "server-admin-pw";
    open_service(o);
    so.log = log_sink();
    server = dmscore::testing::start_server(*svc, so);
  }

  std::string request(const std::string& method, const std::string& target,
                      const std::string& body = "", const std::string& extra_headers = "") {
    Client c(server->port());
    c.send(method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra_headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    return c.response();
  }

  std::string token() {
    auto r =
        request("POST", "/api/v1/login", R"({"username":"admin","password":"server-admin-pw"})");
    REQUIRE(status_of(r) == 200);
    return std::string(json::parse(body_of(r)).at("idToken").as_string());
  }
};

}  // namespace

TEST_CASE("Server: serves over real HTTP on loopback and echoes or makes a request id") {
  Fixture f;
  auto r = f.request("GET", "/healthz", "", "X-Request-Id: abc-123\r\n");
  CHECK(status_of(r) == 200);
  CHECK(body_of(r) == R"({"status":"ok"})");
  CHECK(header_of(r, "X-Request-Id") == "abc-123");
  CHECK(header_of(r, "Content-Type") == "application/json");
  auto made = f.request("GET", "/healthz", "", "X-Request-Id: bad id with spaces\r\n");
  CHECK(header_of(made, "X-Request-Id").size() > 8);
  CHECK(header_of(made, "X-Request-Id").find(' ') == std::string::npos);
  bool logged = false;
  {
    std::lock_guard lock(f.log_mu);
    for (auto& l : f.log) logged |= l.find("abc-123") != std::string::npos;
  }
  CHECK(logged);
}

TEST_CASE("Server: authenticates over the wire and never logs the token") {
  Fixture f;
  std::string t = f.token();
  CHECK(status_of(f.request("GET", "/api/v1/clusters")) == 401);
  auto ok = f.request("GET", "/api/v1/clusters", "", "Authorization: Bearer " + t + "\r\n");
  CHECK(status_of(ok) == 200);
  CHECK(body_of(ok) == R"({"clusters":[]})");
  std::lock_guard lock(f.log_mu);
  for (auto& l : f.log) {
    CHECK_THAT(l, !Catch::Contains(t.substr(t.rfind('.') + 1)));
    CHECK_THAT(l, !Catch::Contains("server-admin-pw"));
  }
}

TEST_CASE("Server: keeps a connection alive across requests") {
  Fixture f;
  Client c(f.server->port());
  for (int i = 0; i < 3; ++i) {
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(status_of(c.response()) == 200);
  }
}

TEST_CASE("Server: oversized headers answer 431 and oversized bodies 413, in the error shape") {
  Fixture f;
  auto big_header =
      f.request("GET", "/healthz", "", "X-Filler: " + std::string(9000, 'a') + "\r\n");
  CHECK(status_of(big_header) == 431);
  CHECK(json::parse(body_of(big_header)).at("code") == 3);
  auto big_body = f.request("POST", "/api/v1/login", std::string(2 << 20, 'x'));
  CHECK(status_of(big_body) == 413);
  CHECK(json::parse(body_of(big_body)).at("message") == "request body larger than 1048576 bytes");
  CHECK(json::parse(body_of(big_header)).at("message") == "request headers larger than 8192 bytes");
  // A chunked body announces no length: it is cut off while being read.
  Client chunked(f.server->port());
  std::string chunk(64 * 1024, 'x');
  std::string req = "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) req += "10000\r\n" + chunk + "\r\n";
  chunked.send(req + "0\r\n\r\n");
  CHECK(status_of(chunked.response()) == 413);
  CHECK(status_of(f.request("GET", "/healthz")) == 200);
}

TEST_CASE("Server: a malformed request answers 400 and closes") {
  Fixture f;
  Client c(f.server->port());
  c.send("GARBAGE\r\n\r\n");
  auto r = c.response();
  CHECK(status_of(r) == 400);
  CHECK(c.closed(2s));
}

TEST_CASE("Server: a slow client is cut off by the header deadline while others are served") {
  http::ServerOptions so;
  so.header_timeout = 300ms;
  Fixture f(so);
  Client slow(f.server->port());
  slow.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finishes its headers
  for (int i = 0; i < 5; ++i) CHECK(status_of(f.request("GET", "/healthz")) == 200);
  CHECK(slow.closed(3s));
}

TEST_CASE("Server: connections over the cap are closed at once") {
  http::ServerOptions so;
  so.max_connections = 2;
  Fixture f(so);
  Client a(f.server->port()), b(f.server->port());
  a.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  b.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(a.response()) == 200);
  CHECK(status_of(b.response()) == 200);
  Client c(f.server->port());
  CHECK(c.closed(2s));
}

TEST_CASE("Server: plain HTTP off loopback needs an explicit opt-in, TLS needs both files") {
  TempDir tmp;
  auto svc = dmscore::testing::open_test_service(tmp / "data");
  http::ServerOptions so;
  so.address = "0.0.0.0";
  so.port = 0;
  CHECK(http::Server::create(*svc, so).status().code() == Code::kInvalidArgument);
  so.allow_plain_http = true;
  CHECK(http::Server::create(*svc, so).ok());
  so.tls_cert_file = "/nonexistent.pem";
  CHECK(http::Server::create(*svc, so).status().code() == Code::kInvalidArgument);
  so.tls_key_file = "/nonexistent.key";
  CHECK(http::Server::create(*svc, so).status().code() == Code::kUnavailable);
  so.address = "not-an-ip";
  so.tls_cert_file = so.tls_key_file = "";
  CHECK(http::Server::create(*svc, so).status().code() == Code::kInvalidArgument);
}

TEST_CASE("Server: TLS 1.2 and 1.3 are served from certificate files, older versions refused") {
  TempDir tmp;
  std::string cert = tmp / "cert.pem", key = tmp / "key.pem";
  REQUIRE(std::system(
              ("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 -keyout " +
               key + " -out " + cert + " >/dev/null 2>&1")
                  .c_str()) == 0);
  http::ServerOptions so;
  so.tls_cert_file = cert;
  so.tls_key_file = key;
  Fixture f(so);
  CHECK(f.server->tls());
  std::string url = "https://127.0.0.1:" + std::to_string(f.server->port()) + "/healthz";
  std::string out = tmp / "out";
  CHECK(std::system(("curl -s --cacert " + cert + " " + url + " > " + out).c_str()) == 0);
  CHECK(dmscore::testing::read_file(out) == R"({"status":"ok"})");
  CHECK(std::system(("curl -s --cacert " + cert + " --tlsv1.3 " + url + " > /dev/null").c_str()) ==
        0);
  CHECK(
      std::system(("curl -s --cacert " + cert + " --tlsv1.2 --tls-max 1.2 " + url + " > /dev/null")
                      .c_str()) == 0);
  CHECK(std::system(
            ("curl -s --cacert " + cert + " --tlsv1.1 --tls-max 1.1 " + url + " > /dev/null 2>&1")
                .c_str()) != 0);
  Client plain(f.server->port());  // plain HTTP to the TLS port is not answered in clear
  plain.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(plain.response(2s).find("200 OK") == std::string::npos);
}

TEST_CASE("Server: stop finishes and closes idle connections") {
  Fixture f;
  Client idle(f.server->port());
  idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(idle.response()) == 200);
  auto t0 = std::chrono::steady_clock::now();
  f.server->stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(idle.closed(2s));
  f.server->stop();  // idempotent
}

TEST_CASE("Server: runs on an io_context the embedder owns and stops while it keeps running") {
  TempDir tmp;
  auto svc = dmscore::testing::open_test_service(tmp / "data");
  boost::asio::io_context ioc;
  auto work = boost::asio::make_work_guard(ioc);
  std::thread loop([&] { ioc.run(); });
  http::ServerOptions so;
  so.port = 0;
  auto server = http::Server::create(ioc, *svc, so);
  REQUIRE(server.ok());
  REQUIRE((*server)->start().ok());
  {
    Client c((*server)->port());
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(status_of(c.response()) == 200);
    (*server)->stop();
    CHECK(c.closed(2s));
  }
  bool still_running = false;
  boost::asio::post(ioc, [&] { still_running = true; });
  for (int i = 0; i < 200 && !still_running; ++i) std::this_thread::sleep_for(5ms);
  CHECK(still_running);  // the embedder's loop was not stopped by the server
  server->reset();
  work.reset();
  loop.join();
}
