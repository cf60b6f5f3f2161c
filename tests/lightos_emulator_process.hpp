#pragma once
// Runs tests/lightos_emulator/lightos_emulator.py (a LightOS REST v2 test double over TLS with
// a test CA) as a child process on ephemeral ports. Free of the test framework, so that the
// tests' LightosEmulator (lightos_emulator.hpp) and the benchmarks start it the same way.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#ifndef DMSCORE_SOURCE_DIR
#error "DMSCORE_SOURCE_DIR must name the source tree"
#endif

namespace dmscore::testing {

class LightosEmulatorProcess {
 public:
  LightosEmulatorProcess() = default;
  LightosEmulatorProcess(const LightosEmulatorProcess&) = delete;
  LightosEmulatorProcess& operator=(const LightosEmulatorProcess&) = delete;
  ~LightosEmulatorProcess() { stop(); }

  // Starts it with its state, log (emulator.log) and ready file in `dir`, trusting the test CA
  // in `ca_dir` (made there when it has none; emulators sharing one CA directory are trusted
  // by one CA file). Answers "" once it listens, else what went wrong.
  std::string start(const std::string& dir, const std::string& ca_dir, int create_delay_ms) {
    const std::string src = DMSCORE_SOURCE_DIR "/tests/lightos_emulator";
    ca_dir_ = ca_dir;
    std::filesystem::create_directories(dir);
    if (std::system(("bash " + src + "/make_test_ca.sh " + ca_dir + " >/dev/null 2>&1").c_str()) !=
        0)
      return "make_test_ca.sh failed";
    const std::string ready = dir + "/ready.json", log = dir + "/emulator.log";
    pid_ = ::fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      const std::string script = src + "/lightos_emulator.py", cert = ca_dir + "/server.pem",
                        key = ca_dir + "/server.key", state = dir + "/state",
                        delay = std::to_string(create_delay_ms);
      std::freopen(log.c_str(), "w", stderr);
      std::freopen("/dev/null", "w", stdout);
      ::execlp("python3", "python3", script.c_str(), "--port", "0", "--control-port", "0", "--cert",
               cert.c_str(), "--key", key.c_str(), "--state-dir", state.c_str(),
               "--create-delay-ms", delay.c_str(), "--ready-file", ready.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 400 && !std::filesystem::exists(ready); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!std::filesystem::exists(ready)) return "the emulator did not start: " + read(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the file is written whole
    boost::system::error_code ec;
    auto v = boost::json::parse(read(ready), ec);
    if (ec || !v.is_object()) return "unreadable " + ready;
    port_ = static_cast<int>(v.at("port").to_number<std::int64_t>());
    control_port_ = static_cast<int>(v.at("controlPort").to_number<std::int64_t>());
    return "";
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  // "127.0.0.1:<port>", the REST API's address.
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  // "http://127.0.0.1:<port>", the control API.
  std::string control_endpoint() const {
    return "http://127.0.0.1:" + std::to_string(control_port_);
  }
  const std::string& ca_dir() const { return ca_dir_; }
  std::string ca_file() const { return ca_dir_ + "/ca.pem"; }

 private:
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  pid_t pid_ = -1;
  int port_ = 0, control_port_ = 0;
  std::string ca_dir_;
};

}  // namespace dmscore::testing
