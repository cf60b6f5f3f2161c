#include "dmscore/http/client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <thread>

#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::TempDir;

namespace {

// A loopback TCP listener whose connections are handled by the test, byte for byte.
class RawServer {
 public:
  explicit RawServer(std::function<void(int fd)> handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(fd_, 16) == 0);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        ++accepted;
        workers_.emplace_back([this, c] {
          handler_(c);
          ::close(c);
        });
      }
    });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    for (auto& w : workers_) w.join();
    ::close(fd_);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::atomic<int> accepted{0};

 private:
  std::function<void(int)> handler_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> workers_;
};

// Reads one request's head (and a Content-Length body); "" at EOF.
std::string read_request(int fd) {
  std::string buf;
  char b[4096];
  while (buf.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, b, sizeof b, 0);
    if (n <= 0) return "";
    buf.append(b, static_cast<std::size_t>(n));
  }
  auto end = buf.find("\r\n\r\n") + 4;
  auto cl = buf.find("Content-Length: ");
  std::size_t len = cl != std::string::npos && cl < end ? std::stoul(buf.substr(cl + 16)) : 0;
  while (buf.size() < end + len) {
    ssize_t n = ::recv(fd, b, sizeof b, 0);
    if (n <= 0) break;
    buf.append(b, static_cast<std::size_t>(n));
  }
  return buf;
}

void send_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

std::string ok_answer(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::unique_ptr<http::Client> client(std::vector<std::string> endpoints,
                                     http::ClientOptions o = {}) {
  o.endpoints = std::move(endpoints);
  auto c = http::Client::create(o);
  INFO(c.status().to_string());
  REQUIRE(c.ok());
  return std::move(c).value();
}

// A port nothing listens on.
std::string dead_endpoint() {
  return "http://127.0.0.1:" + std::to_string(dmscore::testing::free_loopback_port());
}

}  // namespace

TEST_CASE("Client: malformed endpoints and options are refused naming the field") {
  for (std::string bad : {"ftp://x", "https://", "http://host:0", "http://host:70000",
                          "http://host:12ab", "http://a/b", "http://[::1", "http://us@er:1"}) {
    http::ClientOptions o;
    o.endpoints = {bad};
    auto c = http::Client::create(o);
    INFO(bad);
    CHECK(c.status().code() == Code::kInvalidArgument);
    CHECK_THAT(c.status().message(), Catch::StartsWith("endpoint:"));
  }
  http::ClientOptions o;
  CHECK(http::Client::create(o).status().code() == Code::kInvalidArgument);
  o.endpoints = {"https://127.0.0.1:1"};
  o.ca_file = "/nonexistent/ca.pem";
  auto c = http::Client::create(o);
  CHECK(c.status().code() == Code::kInvalidArgument);
  CHECK_THAT(c.status().message(), Catch::StartsWith("ca_file:"));
}

TEST_CASE("Client: one kept-alive connection carries many requests") {
  RawServer srv([](int fd) {
    for (;;) {
      std::string req = read_request(fd);
      if (req.empty()) return;
      send_all(fd, ok_answer(R"({"n":1})"));
    }
  });
  auto c = client({srv.endpoint()});
  for (int i = 0; i < 5; ++i) {
    auto r = c->request("GET", "/x");
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->body == R"({"n":1})");
    CHECK(r->header("content-type") == "application/json");
  }
  CHECK(srv.accepted == 1);
}

TEST_CASE("Client: a connection the peer closed is reopened, once") {
  RawServer srv([](int fd) {
    // Answers one request, then closes though the answer said keep-alive.
    if (!read_request(fd).empty()) send_all(fd, ok_answer("{}"));
  });
  auto c = client({srv.endpoint()});
  for (const char* method : {"GET", "POST", "GET"}) {
    auto r = c->request(method, "/x", "{}");
    INFO(method << " " << r.status().to_string());
    REQUIRE(r.ok());
  }
  CHECK(srv.accepted == 3);
}

TEST_CASE("Client: a POST that reached the peer is never sent twice") {
  std::atomic<int> requests{0};
  RawServer srv([&](int fd) {
    if (!read_request(fd).empty()) ++requests;  // and close without answering
  });
  auto c = client({srv.endpoint(), srv.endpoint()});
  auto r = c->request("POST", "/x", "{}");
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK(requests == 1);
}

TEST_CASE("Client: a peer that does not answer is cut off at the request timeout") {
  std::atomic<bool> release{false};
  RawServer srv([&](int fd) {
    read_request(fd);
    while (!release) std::this_thread::sleep_for(10ms);
  });
  http::ClientOptions o;
  o.request_timeout = 300ms;
  auto c = client({srv.endpoint()}, o);
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->request("POST", "/x", "{}");
  auto took = std::chrono::steady_clock::now() - t0;
  release = true;
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("no answer within 300 ms"));
  CHECK(took < 5s);
}

TEST_CASE("Client: oversized and malformed answers are errors, not crashes") {
  SECTION("a body over the cap") {
    RawServer srv([](int fd) {
      read_request(fd);
      send_all(fd, ok_answer(std::string(2 << 20, 'x')));
    });
    http::ClientOptions o;
    o.max_response_bytes = 1 << 20;
    auto r = client({srv.endpoint()}, o)->request("GET", "/x");
    CHECK(r.status().code() == Code::kResourceExhausted);
  }
  SECTION("headers over 64 KiB") {
    RawServer srv([](int fd) {
      read_request(fd);
      send_all(fd, "HTTP/1.1 200 OK\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n");
    });
    auto r = client({srv.endpoint()})->request("GET", "/x");
    CHECK(r.status().code() == Code::kResourceExhausted);
  }
  SECTION("not HTTP") {
    RawServer srv([](int fd) {
      read_request(fd);
      send_all(fd, "SSH-2.0-OpenSSH\r\n\r\n");
    });
    auto r = client({srv.endpoint()})->request("GET", "/x");
    CHECK(r.status().code() == Code::kInternal);
    CHECK_THAT(r.status().message(), Catch::Contains("malformed HTTP answer"));
  }
  SECTION("a bad Content-Length") {
    RawServer srv([](int fd) {
      read_request(fd);
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n");
    });
    auto r = client({srv.endpoint()})->request("GET", "/x");
    CHECK_FALSE(r.ok());
  }
}

TEST_CASE("Client: an endpoint that does not answer is skipped, and the one that did is kept") {
  RawServer srv([](int fd) {
    for (;;) {
      if (read_request(fd).empty()) return;
      send_all(fd, ok_answer("{}"));
    }
  });
  std::string dead = dead_endpoint();
  auto c = client({dead, srv.endpoint()});
  auto r = c->request("GET", "/x");
  REQUIRE(r.ok());
  CHECK(r->endpoint == srv.endpoint());
  r = c->request("GET", "/y");
  REQUIRE(r.ok());
  CHECK(srv.accepted == 1);
  auto only_dead = client({dead});
  auto e = only_dead->request("GET", "/x");
  CHECK(e.status().code() == Code::kUnavailable);
  CHECK_THAT(e.status().message(), Catch::Contains("cannot connect"));
}

TEST_CASE("Client: TLS verifies the chain and the name unless told not to") {
  TempDir tmp;
  std::string cert = tmp / "cert.pem", key = tmp / "key.pem";
  REQUIRE(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=dms-test -days 1 "
                       "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
                       key + " -out " + cert + " >/dev/null 2>&1")
                          .c_str()) == 0);
  std::string other_cert = tmp / "other.pem", other_key = tmp / "other.key";
  REQUIRE(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=other -days 1 "
                       "-addext subjectAltName=DNS:other.example -keyout " +
                       other_key + " -out " + other_cert + " >/dev/null 2>&1")
                          .c_str()) == 0);
  auto svc = dmscore::testing::open_test_service(tmp / "data");
  auto start = [&](const std::string& c, const std::string& k) {
    http::ServerOptions so;
    so.tls_cert_file = c;
    so.tls_key_file = k;
    so.log = [](std::string_view) {};
    return dmscore::testing::start_server(*svc, so);
  };
  auto server = start(cert, key);
  std::string port = std::to_string(server->port());

  http::ClientOptions trusted;
  trusted.ca_file = cert;
  for (std::string ep : {"https://127.0.0.1:" + port, "localhost:" + port}) {
    auto r = client({ep}, trusted)->request("GET", "/healthz");
    INFO(ep << " " << r.status().to_string());
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
  // The system's store does not know the test certificate.
  auto untrusted = client({"https://127.0.0.1:" + port})->request("GET", "/healthz");
  CHECK(untrusted.status().code() == Code::kUnavailable);
  CHECK_THAT(untrusted.status().message(), Catch::Contains("certificate verify failed"));
  // Insecure skips the check.
  http::ClientOptions insecure;
  insecure.insecure = true;
  auto r = client({"https://127.0.0.1:" + port}, insecure)->request("GET", "/healthz");
  REQUIRE(r.ok());

  // A trusted certificate for another name is refused.
  auto other = start(other_cert, other_key);
  http::ClientOptions trust_other;
  trust_other.ca_file = other_cert;
  auto wrong_name = client({"https://127.0.0.1:" + std::to_string(other->port())}, trust_other)
                        ->request("GET", "/healthz");
  CHECK(wrong_name.status().code() == Code::kUnavailable);
  CHECK_THAT(wrong_name.status().message(), Catch::Contains("TLS handshake failed"));
}
