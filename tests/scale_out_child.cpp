// An instance of the service's workflow engine on a shared PostgreSQL store, for the scale-out
// tests: real processes that are stopped (SIGSTOP), killed (SIGKILL) and raced.
//
//   scale_out_child run URL INSTANCE LEASE_MS HEARTBEAT_MS [noreach]
//       runs TICKS workflows it claims until SIGTERM (or SIGKILL). With noreach it does not
//       reach the site TICKS workflows are placed on, so it must never run one.
//   scale_out_child submit URL COUNT TICKS TICK_MS
//       submits COUNT TICKS workflows from an instance that runs none, prints "ID <id>" each.
//
// Lines (one write(2) each, so a kill loses none that was printed):
//   READY <instance>                       the lease is held
//   RESUMED <instance> <workflow> <n>      a run of the tick step starts at tick n
//   COMMITTED <instance> <workflow> <n>    tick n's checkpoint committed
//   FENCED <instance> <workflow> <n>       tick n's checkpoint was refused: taken over
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"

using namespace dmscore;

namespace {

void say(const std::string& line) {
  std::string l = line + "\n";
  (void)!::write(1, l.data(), l.size());
}

struct TickRequest {
  int ticks = 0;
  int tick_ms = 0;
};

TickRequest parse(const std::string& request) {
  TickRequest t;
  std::sscanf(request.c_str(), "{\"ticks\":%d,\"tickMs\":%d}", &t.ticks, &t.tick_ms);
  return t;
}

WorkflowType ticks_type(const std::string& instance) {
  WorkflowType t{"TICKS", {}};
  t.steps.push_back({"tick",
                     [instance](StepContext& c) -> Status {
                       const TickRequest req = parse(c.request());
                       int n = c.checkpoint().empty() ? 0 : std::stoi(c.checkpoint());
                       say("RESUMED " + instance + " " + c.workflow_id() + " " + std::to_string(n));
                       while (n < req.ticks) {
                         if (c.should_stop()) return Status::Cancelled("stopped");
                         std::this_thread::sleep_for(std::chrono::milliseconds(req.tick_ms));
                         ++n;
                         Status s = c.save_checkpoint(std::to_string(n));
                         if (!s.ok()) {
                           say("FENCED " + instance + " " + c.workflow_id() + " " +
                               std::to_string(n) + " " + s.message());
                           return s;
                         }
                         say("COMMITTED " + instance + " " + c.workflow_id() + " " +
                             std::to_string(n));
                       }
                       return Status::Ok();
                     },
                     [instance](StepContext& c) -> Status {
                       say("UNDO " + instance + " " + c.workflow_id());
                       return Status::Ok();
                     }});
  t.steps.push_back({"done", [](StepContext&) { return Status::Ok(); }});
  return t;
}

std::unique_ptr<Store> open_store(const std::string& url) {
  auto s = Store::open(url);
  if (!s.ok()) {
    std::fprintf(stderr, "store: %s\n", s.status().to_string().c_str());
    std::exit(3);
  }
  return std::move(s).value();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string mode = argv[1], url = argv[2];
  if (mode == "run" && argc >= 6) {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    const std::string instance = argv[3];
    const bool reach = !(argc >= 7 && std::string(argv[6]) == "noreach");
    auto store = open_store(url);
    EngineOptions o;
    o.instance_id = instance;
    o.lease_ttl = std::chrono::milliseconds(std::stoi(argv[4]));
    o.heartbeat_interval = std::chrono::milliseconds(std::stoi(argv[5]));
    o.claim_interval = std::chrono::milliseconds(50);
    o.max_running_workflows = 1000;
    o.threads = 4;
    o.reach = [reach](std::vector<std::string>& placed, std::vector<std::string>& reached) {
      placed.push_back("site:work");
      if (reach) reached.push_back("site:work");
    };
    o.log = [](std::string_view line) { say("LOG " + std::string(line)); };
    WorkflowEngine engine(*store, o);
    if (!engine.register_type(ticks_type(instance)).ok()) return 3;
    if (Status s = engine.start(); !s.ok()) {
      std::fprintf(stderr, "start: %s\n", s.to_string().c_str());
      return 3;
    }
    say("READY " + instance);
    int sig = 0;
    sigwait(&sigs, &sig);
    engine.stop();
    return 0;
  }
  if (mode == "submit" && argc >= 6) {
    auto store = open_store(url);
    EngineOptions o;
    o.instance_id = "submitter";
    o.max_running_workflows = 1000;
    o.heartbeat_interval = std::chrono::milliseconds(100);
    o.lease_ttl = std::chrono::milliseconds(1000);
    o.reach = [](std::vector<std::string>& placed, std::vector<std::string>&) {
      placed.push_back("site:work");
    };
    WorkflowEngine engine(*store, o);
    if (!engine.register_type(ticks_type("submitter")).ok()) return 3;
    if (!engine.start().ok()) return 3;
    const int count = std::stoi(argv[3]);
    const std::string req = "{\"ticks\":" + std::string(argv[4]) + ",\"tickMs\":" + argv[5] + "}";
    for (int i = 0; i < count; ++i) {
      auto id = engine.submit("TICKS", req, {"site:work"});
      if (!id.ok()) {
        std::fprintf(stderr, "submit: %s\n", id.status().to_string().c_str());
        return 3;
      }
      say("ID " + *id);
    }
    engine.stop();
    return 0;
  }
  return 2;
}
