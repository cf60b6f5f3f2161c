#pragma once
// Runs tests/lightos_emulator/lightos_emulator.py (a LightOS REST v2 test double over TLS with
// a test CA) as a child process on ephemeral ports, and talks to its control API.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "dmscore/http/client.hpp"
#include "lightos_emulator_process.hpp"
#include "test_util.hpp"

namespace dmscore::testing {

class LightosEmulator {
 public:
  // `ca_dir`: share another emulator's test CA (so one CA file trusts both).
  explicit LightosEmulator(int create_delay_ms = 100, const std::string& ca_dir = "") {
    const std::string problem =
        process_.start(dir_.path(), ca_dir.empty() ? dir_ / "ca" : ca_dir, create_delay_ms);
    INFO(problem);
    REQUIRE(problem.empty());
    http::ClientOptions o;
    o.endpoints = {process_.control_endpoint()};
    control_client_ = std::move(http::Client::create(o)).value();
  }

  std::string endpoint() const { return process_.endpoint(); }
  std::string https_endpoint() const { return "https://" + endpoint(); }
  std::string ca_file() const { return process_.ca_file(); }
  const std::string& ca_dir() const { return process_.ca_dir(); }
  std::string self_signed_cert() const { return ca_dir() + "/selfsigned.pem"; }

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
  LightosEmulatorProcess process_;
  std::unique_ptr<http::Client> control_client_;
};

}  // namespace dmscore::testing
