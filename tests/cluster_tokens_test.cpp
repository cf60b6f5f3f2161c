// Tokens sent to clusters are scoped: each names the cluster it is for, lives minutes, and never
// crosses the network in the clear.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "service_fixture.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::attached_cluster_id;
using dmscore::testing::LightbitsFixture;
namespace json = boost::json;

namespace {

// A plain TCP listener that only counts who connects to it.
class Honeypot {
 public:
  Honeypot() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(fd_, 16) == 0);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        ++connections_;
        ::close(c);
      }
    });
  }
  ~Honeypot() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int connections() const { return connections_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("Cluster tokens: each names the cluster it is sent to and lives five minutes") {
  LightbitsFixture lb;
  lb.import_key();
  const std::string cid = attached_cluster_id(lb.attach());
  REQUIRE(lb.f->svc->volumes().create(ClusterId(cid), {"default", "v", 1 << 30}).ok());
  REQUIRE(lb.f->wait(*lb.f->svc->clusters().refresh(ClusterId(cid))).state ==
          WorkflowState::kCompleted);

  int named_uuid = 0;
  for (const auto& c : lb.emu.calls()) {
    const auto& o = c.as_object();
    INFO(json::serialize(o));
    REQUIRE(o.at("status").as_int64() == 200);
    const json::value& aud = o.at("audience");
    if (aud.is_string() && aud.as_string() == cid) {
      ++named_uuid;
    } else {
      // Only while attaching, before the cluster said who it is: its endpoint(s).
      json::array names = aud.is_array() ? aud.as_array() : json::array{aud};
      for (const auto& a : names) CHECK(std::string(a.as_string()).rfind("https://", 0) == 0);
    }
    CHECK(o.at("exp").as_int64() - o.at("iat").as_int64() == 300);
  }
  CHECK(named_uuid >= 3);  // the create, its polls and the refresh
}

TEST_CASE("Cluster tokens: endpoints a cluster reports without https are never used") {
  Honeypot plain;
  Options o;
  std::vector<std::string> lines;
  std::mutex mu;
  o.log = [&](std::string_view l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l);
  };
  LightbitsFixture lb(o);
  lb.import_key();
  lb.emu.control("POST", "/control/api-endpoints",
                 json::serialize(json::object{
                     {"endpoints", json::array{"http://127.0.0.1:" + std::to_string(plain.port()),
                                               lb.emu.endpoint()}}}));
  const std::string cid = attached_cluster_id(lb.attach());
  // Also after a restart, when the driver is built from the endpoints the cluster reported.
  o.cluster_ca_file = lb.emu.ca_file();
  lb.f->open(o);
  auto listed = lb.f->svc->volumes().list({ClusterId(cid), "default"}, {});
  INFO(listed.status().to_string());
  CHECK(listed.ok());
  // With its API down, the driver tries every endpoint it has: never the plain one.
  lb.emu.control("POST", "/control/stop-api");
  CHECK_FALSE(lb.f->svc->volumes().list({ClusterId(cid), "default"}, {}).ok());
  lb.emu.control("POST", "/control/start-api");
  CHECK(plain.connections() == 0);
  std::lock_guard lock(mu);
  bool said = false;
  for (const auto& l : lines) said |= l.find("ignoring the endpoint http://") != std::string::npos;
  CHECK(said);
}

TEST_CASE("Cluster tokens: a driver refuses a plain http endpoint unless told it may") {
  LightbitsOptions o;
  o.endpoints = {"http://127.0.0.1:1"};
  o.token = [](const std::vector<std::string>&) -> Result<std::string> { return std::string("t"); };
  auto b = LightbitsBackend::open(o);
  CHECK(b.status().code() == Code::kInvalidArgument);
  CHECK_THAT(b.status().message(), Catch::Contains("in the clear"));
  o.plain_http = true;
  CHECK(LightbitsBackend::open(o).ok());
}
