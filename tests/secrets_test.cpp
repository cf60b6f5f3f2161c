// Secrets stay private: what the service writes is readable by it alone, hooks get neither its
// environment nor its descriptors, every descriptor it opens is close-on-exec, and the library
// reads nothing from the process environment.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "base/hook.hpp"
#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "service_options.hpp"
#include "test_support.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using dmscore::testing::file_mode;
using dmscore::testing::read_file;
using dmscore::testing::TempDir;
using dmscore::testing::write_script;
namespace fs = std::filesystem;

namespace {

std::set<int> open_fds() {
  std::set<int> out;
  for (auto& e : fs::directory_iterator("/proc/self/fd"))
    out.insert(std::stoi(e.path().filename()));
  return out;
}

std::string fd_target(int fd) {
  std::error_code ec;
  auto t = fs::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
  return ec ? std::string() : t.string();
}

// The service's log lines are kept in `log`; no health checks.
struct Fixture : dmscore::testing::ServiceHarness {
  explicit Fixture(Options o = {}) {
    o.log = log_sink();
    o.health_check_interval = 0ms;
    open_service(o);
  }
};

// A server for the service with a live client connection: sockets of the service are open.
struct Connected {
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::Client> client;

  explicit Connected(Service& svc) : server(dmscore::testing::start_server(svc)) {
    http::ClientOptions co;
    co.endpoints = {"http://127.0.0.1:" + std::to_string(server->port())};
    auto c = http::Client::create(co);
    REQUIRE(c.ok());
    client = std::move(c).value();
    REQUIRE(client->request("GET", "/healthz").ok());
  }
};

}  // namespace

TEST_CASE("Secrets: the data directory, database and logs are the service's alone") {
  TempDir tmp;
  const std::string data = tmp / "data";
  fs::create_directories(data);
  ::chmod(data.c_str(), 0755);  // as an operator's mkdir leaves it
  std::vector<std::string> lines;
  {
    Options o;
    o.log = [&](std::string_view l) { lines.emplace_back(l); };
    auto s = dmscore::testing::open_test_service(data, o);
    REQUIRE(s->auth().login("admin", "wrong password", "127.0.0.1").status().code() ==
            Code::kUnauthenticated);  // writes the audit log
  }
  CHECK(file_mode(data) == 0700);
  bool said = false;
  for (const auto& l : lines)
    said |= l.find(data) != std::string::npos && l.find("0700") != std::string::npos;
  CHECK(said);
  for (const char* f : {"dms.db", "audit.log", "admin-password", ".lock"}) {
    INFO(f);
    CHECK(file_mode(data + "/" + f) == 0600);
  }
  for (auto& e : fs::directory_iterator(data + "/identity")) {
    INFO(e.path());
    CHECK((file_mode(e.path()) & 077) == 0);
  }
  // A database an older release left 0644 is tightened at the next open.
  ::chmod((data + "/dms.db").c_str(), 0644);
  {
    auto s = dmscore::testing::open_test_service(data);
    CHECK(file_mode(data + "/dms.db") == 0600);
    CHECK((file_mode(data + "/dms.db-wal") & 077) == 0);
  }
}

TEST_CASE("Secrets: the library reads no environment variable") {
  TempDir tmp;
  ::setenv("DMS_ADMIN_PASSWORD", "from-the-environment", 1);
  auto s = Service::open(dmscore::testing::test_options(tmp / "data"));
  ::unsetenv("DMS_ADMIN_PASSWORD");
  REQUIRE(s.ok());
  CHECK(fs::exists(tmp / "data/admin-password"));
  CHECK((*s)->auth().login("admin", "from-the-environment", "127.0.0.1").status().code() ==
        Code::kUnauthenticated);
}

TEST_CASE("Secrets: hooks get a minimal environment and no descriptor of the service") {
  TempDir hooks;
  const std::string env_out = hooks / "env", fds_out = hooks / "fds";
  Options o;
  o.group_snapshot_pre_hook = hooks / "pre";
  o.group_snapshot_hook_timeout = 10s;
  write_script(o.group_snapshot_pre_hook,
               "env > " + env_out + "\nfor f in /proc/$$/fd/*; do readlink \"$f\"; done > " +
                   fds_out + "\nexit 0");
  ::setenv("DMS_ADMIN_PASSWORD", "must-not-leak", 1);
  ::setenv("DMS_TOKEN", "must-not-leak-either", 1);
  // An embedder's descriptor that is not close-on-exec: still not the hook's to have.
  int inherited = ::open((hooks / "embedder-secret").c_str(), O_CREAT | O_WRONLY, 0600);
  REQUIRE(inherited >= 0);
  Fixture f(o);
  // Sockets of the service are open while the hook runs: a server with a live connection.
  Connected connected(*f.svc);

  const std::string cid = f.attach_dir(f.tmp / "c1");
  auto v = f.svc->volumes().create(ClusterId(cid), {"p1", "v", 1 << 20});
  REQUIRE(v.ok());
  auto g = f.svc->groups().create({"g", "", cid, "p1", {v->id}, ""});
  REQUIRE(g.ok());
  auto c = f.svc->groups().create_snapshot({g->id, "s", ""});
  REQUIRE(c.ok());
  CHECK(f.wait(c->workflow_id).state == WorkflowState::kCompleted);
  ::unsetenv("DMS_ADMIN_PASSWORD");
  ::unsetenv("DMS_TOKEN");
  ::close(inherited);

  const std::string env = read_file(env_out);
  CHECK_THAT(env, Catch::Contains("DMS_CG_ID=" + g->id));
  CHECK_THAT(env, Catch::Contains("PATH="));
  CHECK_THAT(env, !Catch::Contains("must-not-leak"));
  CHECK_THAT(env, !Catch::Contains("HOME="));
  std::istringstream fds(read_file(fds_out));
  int count = 0;
  for (std::string target; std::getline(fds, target);) {
    INFO(target);
    ++count;
    // stdin/stdout/stderr (/dev/null), the shell's own script and the file it writes.
    CHECK((target == "/dev/null" || target == o.group_snapshot_pre_hook || target == fds_out));
  }
  CHECK(count >= 3);
}

TEST_CASE(
    "Secrets: programs the service runs (nvme-cli) get a minimal environment and no "
    "descriptor of the service, their output is captured, and one that hangs is killed") {
  TempDir d;
  write_script(d / "prog",
               "env\nfor f in /proc/$$/fd/*; do echo \"fd $(readlink \"$f\")\"; done\n"
               "echo \"args $*\"\necho refused >&2\nexit 3");
  ::setenv("DMS_ADMIN_PASSWORD", "must-not-leak", 1);
  int inherited = ::open((d / "embedder-secret").c_str(), O_CREAT | O_WRONLY, 0600);
  REQUIRE(inherited >= 0);
  auto r = detail::run_program(d / "prog", {"connect", "--nqn=nqn.2014-08.x:y z"},
                               std::chrono::seconds(20));
  ::unsetenv("DMS_ADMIN_PASSWORD");
  ::close(inherited);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 3);
  CHECK(r->err == "refused\n");
  CHECK_THAT(r->out, Catch::Contains("args connect --nqn=nqn.2014-08.x:y z"));
  CHECK_THAT(r->out, Catch::Contains("PATH="));
  CHECK_THAT(r->out, !Catch::Contains("must-not-leak") && !Catch::Contains("HOME="));
  std::istringstream lines(r->out);
  int fds = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("fd ", 0) != 0) continue;
    INFO(line);
    ++fds;
    // stdin (/dev/null), stdout and stderr (the capture's pipes), the shell's own script.
    CHECK((line == "fd /dev/null" || line.rfind("fd pipe:", 0) == 0 || line == "fd " + d / "prog"));
  }
  CHECK(fds >= 3);
  // A program that does not finish in time is killed, with its children.
  write_script(d / "hang", "sleep 60 &\nsleep 60");
  auto h = detail::run_program(d / "hang", {}, std::chrono::milliseconds(300));
  CHECK(h.status().code() == Code::kDeadlineExceeded);
  // One that cannot be started says so.
  CHECK(detail::run_program(d / "absent", {}, std::chrono::seconds(5)).status().code() ==
        Code::kFailedPrecondition);
}

TEST_CASE("Secrets: every descriptor the service and its HTTP faces open is close-on-exec") {
  const std::set<int> before = open_fds();
  Fixture f;
  Connected connected(*f.svc);
  const std::string cid = f.attach_dir(f.tmp / "c1");
  REQUIRE(f.svc->volumes().create(ClusterId(cid), {"p1", "v", 1 << 20}).ok());

  int checked = 0;
  for (int fd : open_fds()) {
    if (before.count(fd)) continue;
    const std::string target = fd_target(fd);
    const bool ours = target.rfind("socket:", 0) == 0 || target.rfind(f.tmp.path(), 0) == 0;
    if (!ours) continue;
    INFO(fd << " -> " << target);
    int flags = ::fcntl(fd, F_GETFD);
    CHECK(flags >= 0);
    CHECK((flags & FD_CLOEXEC) != 0);
    ++checked;
  }
  CHECK(checked >= 4);  // the listener, both ends of the client's connection, the databases
}
