#pragma once
// Runs tests/lightos_emulator/lightos_emulator.py (a LightOS REST v2 test double over TLS with
// a test CA) as a child process on ephemeral ports, and talks to its control API.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "dmscore/http/client.hpp"
#include "test_util.hpp"

#ifndef DMSCORE_SOURCE_DIR
#error "DMSCORE_SOURCE_DIR must name the source tree"
#endif

namespace dmscore::testing {

class LightosEmulator {
 public:
  // `ca_dir`: share another emulator's test CA (so one CA file trusts both).
  explicit LightosEmulator(int create_delay_ms = 100, const std::string& ca_dir = "") {
    const std::string src = DMSCORE_SOURCE_DIR "/tests/lightos_emulator";
    ca_dir_ = ca_dir.empty() ? dir_ / "ca" : ca_dir;
    REQUIRE(std::system(
                ("bash " + src + "/make_test_ca.sh " + ca_dir_ + " >/dev/null 2>&1").c_str()) == 0);
    std::string ready = dir_ / "ready.json";
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      std::string script = src + "/lightos_emulator.py";
      std::string cert = ca_dir_ + "/server.pem", key = ca_dir_ + "/server.key";
      std::string state = dir_ / "state", delay = std::to_string(create_delay_ms);
      std::string log = dir_ / "emulator.log";
      std::freopen(log.c_str(), "w", stderr);
      std::freopen("/dev/null", "w", stdout);
      ::execlp("python3", "python3", script.c_str(), "--port", "0", "--control-port", "0", "--cert",
               cert.c_str(), "--key", key.c_str(), "--state-dir", state.c_str(),
               "--create-delay-ms", delay.c_str(), "--ready-file", ready.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 300 && !std::filesystem::exists(ready); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    INFO(read_file(dir_ / "emulator.log"));
    REQUIRE(std::filesystem::exists(ready));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the file is written whole
    auto v = boost::json::parse(read_file(ready)).as_object();
    port_ = static_cast<int>(v.at("port").to_number<std::int64_t>());
    control_port_ = static_cast<int>(v.at("controlPort").to_number<std::int64_t>());
    http::ClientOptions o;
    o.endpoints = {"http://127.0.0.1:" + std::to_string(control_port_)};
    control_client_ = std::move(http::Client::create(o)).value();
  }
  ~LightosEmulator() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string https_endpoint() const { return "https://" + endpoint(); }
  std::string ca_file() const { return ca_dir_ + "/ca.pem"; }
  const std::string& ca_dir() const { return ca_dir_; }
  std::string self_signed_cert() const { return ca_dir_ + "/selfsigned.pem"; }

  // A call to the control API; REQUIREs a 2xx and answers the body.
  std::string control(const std::string& method, const std::string& path,
                      const std::string& body = "") {
    auto r = control_client_->request(method, path, body);
    INFO(method << " " << path << " " << (r.ok() ? r->body : r.status().to_string()));
    REQUIRE(r.ok());
    REQUIRE(r->status / 100 == 2);
    return r->body;
  }

  void import_credential(const std::string& id, const std::string& pem) {
    control("POST", "/control/credentials",
            boost::json::serialize(boost::json::object{{"id", id}, {"pem", pem}}));
  }

  // The API calls the emulator received, as JSON.
  boost::json::array calls() {
    auto v = boost::json::parse(control("GET", "/control/calls"));
    if (v.is_array()) return v.as_array();
    return v.as_object().at("calls").as_array();
  }

 private:
  TempDir dir_;
  std::string ca_dir_;
  pid_t pid_ = -1;
  int port_ = 0, control_port_ = 0;
  std::unique_ptr<http::Client> control_client_;
};

}  // namespace dmscore::testing
