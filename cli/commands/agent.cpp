// dmsctl agent (the migration agent, run on the machine to migrate) and the commands that
// migrate a source server: migrate, sync, cutover, stop, start.

#include "agent/agent.hpp"

#include <signal.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <string>
#include <thread>

#include "commands/commands.hpp"
#include "dmscore/version.hpp"
#include "output.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct AgentArgs {
  std::vector<std::string> disks;
  std::string root = "/", name, hook;
  int poll_ms = 2000;
  int hook_timeout_s = 600;
  bool exit_after_cutover = false, print_report = false;
};

struct MigrateArgs {
  std::string id, cluster, project = "default";
  std::vector<std::string> disks;
  bool syncing = false;
  std::uint64_t rate = 0;
};

int run_agent_command(Context& ctx, const AgentArgs& a) {
  agent::AgentOptions o;
  o.facts.root = a.root;
  o.facts.name = a.name;
  o.facts.agent_version = std::string("dmsctl/") + dmscore::version();
  for (const auto& d : a.disks) {
    const auto eq = d.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == d.size()) {
      std::fprintf(stderr, "error: --disk %s: must be NAME=PATH\n", d.c_str());
      return kExitUsage;
    }
    o.facts.disks.push_back({d.substr(0, eq), d.substr(eq + 1)});
  }
  if (a.print_report) {
    auto f = agent::collect_facts(o.facts);
    if (!f.ok()) {
      std::fprintf(stderr, "error: %s\n", f.status().message().c_str());
      return kExitUsage;
    }
    std::printf("%s\n", json::serialize(f->report).c_str());
    return kExitOk;
  }
  auto conn = ctx.connect(true);
  o.client = conn.options;
  o.token = conn.token;
  o.pre_cutover_hook = a.hook;
  o.hook_timeout_ms = a.hook_timeout_s * 1000;
  o.poll_ms = a.poll_ms;
  o.exit_after_cutover = a.exit_after_cutover;
  o.progress = !ctx.flags.no_progress;
  // SIGTERM and SIGINT stop the agent between two windows.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::atomic<bool> stop{false};
  o.stop = &stop;
  std::thread waiter([&signals, &stop] {
    int sig = 0;
    sigwait(&signals, &sig);
    stop = true;
  });
  const int rc = agent::run_agent(
      o, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
  if (!stop) {
    // Wake the waiter so that it can be joined.
    ::kill(::getpid(), SIGTERM);
  }
  waiter.join();
  return rc == 0 ? kExitOk : rc == 3 ? kExitAuth : rc == 2 ? kExitUsage : kExitError;
}

}  // namespace

void add_agent_commands(CLI::App& app, Context& ctx) {
  using dmscore::http::url_encode;
  auto& a = ctx.hold<AgentArgs>();
  auto* agent = ctx.leaf(
      &app, "agent", "Run the migration agent on this machine: register it, stream its disks",
      "  DMS_TOKEN=... dmsctl agent --endpoint https://dms:8443 --ca-cert ca.pem\n"
      "  dmsctl agent --disk data=/images/data.img --root /srv/sysroot --print-report",
      [&ctx, &a] { return run_agent_command(ctx, a); });
  ctx.takes_own_signals(agent);
  agent->add_option("--disk", a.disks,
                    "NAME=PATH: report the image or device PATH as the disk NAME (repeatable); "
                    "then only these disks are reported");
  agent->add_option("--root", a.root, "read the system's facts below this directory")
      ->capture_default_str();
  agent->add_option("--name", a.name, "the source's name (default: the hostname)");
  agent->add_option("--pre-cutover-hook", a.hook,
                    "shell command run before the cutover pass (quiesce the machine)");
  agent
      ->add_option("--pre-cutover-hook-timeout", a.hook_timeout_s,
                   "seconds the hook may take; it is killed past them")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  agent->add_option("--poll-interval-ms", a.poll_ms, "between polls when idle")
      ->check(CLI::Range(50, 600000))
      ->capture_default_str();
  agent->add_flag("--exit-after-cutover", a.exit_after_cutover,
                  "exit once a migration this agent streamed has cut over");
  agent->add_flag("--print-report", a.print_report,
                  "print the registration report and exit (no service needed)");

  auto& m = ctx.hold<MigrateArgs>();
  auto* mc = ctx.leaf(app.get_subcommand("migrate"), "source-server",
                      "Start migrating a registered source server into volumes of a cluster "
                      "(MIGRATE_SOURCE_SERVER)",
                      "  dmsctl migrate source-server 0f3c... --cluster c1 --syncing\n"
                      "  dmsctl migrate source-server 0f3c... --cluster c1 --disk sda --wait",
                      [&ctx, &m] {
                        auto conn = ctx.connect(true);
                        json::object body{{"clusterId", m.cluster}, {"projectName", m.project}};
                        if (m.syncing) body["syncing"] = true;
                        if (m.rate) body["rateLimitBytesPerSec"] = std::to_string(m.rate);
                        if (!m.disks.empty()) {
                          json::array d;
                          for (const auto& x : m.disks) d.emplace_back(x);
                          body["disks"] = std::move(d);
                        }
                        auto r = conn.api->call(
                            "POST", "/api/v1/source-servers/" + url_encode(m.id) + "/migrations",
                            json::serialize(body));
                        return ctx.started(conn, ctx.admitted(conn, std::move(r)),
                                           "Migrating source server " + m.id, true);
                      });
  mc->add_option("ID", m.id, "the source server's id")->required();
  mc->add_option("--cluster", m.cluster, "the cluster the volumes are made on")->required();
  mc->add_option("--project", m.project, "the volumes' project")->capture_default_str();
  mc->add_option("--disk", m.disks, "a disk to migrate (repeatable; default: all chosen)");
  mc->add_flag("--syncing", m.syncing,
               "keep syncing after the full copy until cutover (default: cut over at once)");
  mc->add_option("--rate-limit", m.rate, "bytes per second the agent may send (0: unlimited)")
      ->check(non_negative());
  ctx.with_wait(mc);

  struct Action {
    const char* verb;
    const char* what;
    const char* done;
  };
  static constexpr Action kActions[] = {
      {"sync", "Sync a migrating source server once: send what changed", "sync asked"},
      {"cutover", "Cut a migrating source server over: a last sync, then final volumes",
       "cutover asked"},
      {"stop", "Stop a source server's migration (it keeps its volumes)", "stopped"},
      {"start", "Start a stopped or failed migration again, where it stood", "started"},
  };
  for (const Action& act : kActions) {
    auto* verb = app.get_subcommand(act.verb);
    auto& id = ctx.hold<std::string>();
    auto* c = ctx.leaf(
        verb, "source-server", act.what,
        std::string("  dmsctl ") + act.verb + " source-server 0f3c...",
        ctx.reporting(
            [&id, verb = std::string(act.verb)](auto& api) {
              return api.call("POST", "/api/v1/source-servers/" + url_encode(id) + "/" + verb,
                              "{}");
            },
            [&id, done = std::string(act.done)] { return "source server " + id + ": " + done; }));
    c->add_option("ID", id, "the source server's id")->required();
  }
}

}  // namespace dmsctl
