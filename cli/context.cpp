#include "context.hpp"

#include <fmt/core.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "dmscore/version.hpp"
#include "progress.hpp"

namespace dmsctl {

namespace json = boost::json;
using dmscore::Code;

namespace {

// Set by the SIGINT handler, seen by follow()'s poll callback. The one piece of static state:
// a signal handler can reach nothing else.
std::atomic<bool> interrupted{false};

struct VerbInfo {
  const char* name;
  const char* what;
};
constexpr VerbInfo kVerbs[] = {
    {"get", "Show one object"},
    {"list", "List objects"},
    {"create", "Create a volume, snapshot, consistency group, group snapshot or user"},
    {"delete",
     "Delete a volume, snapshot, consistency group, group snapshot, user or source server"},
    {"update", "Change a consistency group"},
    {"reset", "Reset the status of a consistency group (admin)"},
    {"attach", "Attach a cluster"},
    {"detach", "Detach a cluster, or full copies from their group"},
    {"refresh", "Re-read clusters"},
    {"repair", "Rebuild a local cluster's metadata from its data files"},
    {"clone", "Thick clone a snapshot, or a group snapshot into a new group"},
    {"cancel", "Cancel a workflow"},
    {"activate", "Copy a group into inactive full copies"},
    {"resync", "Copy a group's current state onto its full copies again"},
    {"restore", "Copy a full copy back onto its group's volumes"},
    {"manage", "Adopt what exists on a cluster, without copying it"},
    {"unmanage", "Stop managing a volume, keeping its data"},
    {"set", "Set a user's password"},
    {"migrate", "Migrate a source server's disks into a cluster"},
    {"sync", "Sync a migrating source server"},
    {"cutover", "Cut a migrating source server over"},
    {"stop", "Stop a source server's migration"},
    {"start", "Start a stopped or failed migration again"},
};

}  // namespace

void add_verbs(CLI::App& app) {
  for (const VerbInfo& v : kVerbs) {
    auto* cmd = app.add_subcommand(v.name, v.what);
    cmd->fallthrough();
    cmd->require_subcommand(0, 1);
  }
}

// ---- registering and running commands ----

CLI::App* Context::leaf(CLI::App* parent, const std::string& name, const std::string& what,
                        const std::string& example, std::function<int()> run) {
  auto* c = parent->add_subcommand(name, what);
  c->footer("Example:\n" + example);
  c->fallthrough();
  actions_[c] = std::move(run);
  if (parent->get_parent() != nullptr) tree_[parent->get_name()].push_back(name);
  return c;
}

CLI::App* Context::with_output(CLI::App* c) {
  c->add_option("-o,--output", flags.output, "table, wide, json, yaml or name")
      ->capture_default_str();
  return c;
}

CLI::App* Context::with_wait(CLI::App* c) {
  c->add_flag("--wait", flags.wait, "wait for the workflow to end, with progress on stderr");
  c->add_flag("--no-progress", flags.no_progress, "no progress lines while waiting");
  c->add_option("--timeout", flags.timeout_s, "seconds to wait at most (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  return with_output(c);
}

int Context::run(CLI::App& app) {
  // The parsed leaf: the deepest parsed subcommand.
  CLI::App* chosen = nullptr;
  for (auto& [cmd, run] : actions_)
    if (cmd->parsed()) chosen = cmd;
  if (!chosen) {
    for (auto* v : app.get_subcommands()) {
      fmt::print(stderr, "{}", v->help());
      return kExitUsage;
    }
    fmt::print("{}", app.help());
    return kExitOk;
  }

  struct sigaction sa_int {};
  sa_int.sa_handler = [](int) { interrupted = true; };
  sigemptyset(&sa_int.sa_mask);
  // SA_RESTART: a Ctrl-C in the middle of writing a progress line must not fail the write
  // (EINTR); the wait loop notices `interrupted` at its next poll.
  sa_int.sa_flags = SA_RESTART;
  if (!own_signals_.count(chosen)) sigaction(SIGINT, &sa_int, nullptr);

  try {
    return actions_[chosen]();
  } catch (const Failure& f) {
    fmt::print(stderr, "error: {}\n", f.message);
    return f.code;
  }
}

// ---- the service ----

Config Context::load_config() const { return check(Config::load()); }

Connection Context::connect(bool need_token) const {
  Config cfg = load_config();
  std::string name = flags.context.empty() ? cfg.current_context : flags.context;
  SavedContext saved;
  if (!name.empty()) {
    auto it = cfg.contexts.find(name);
    if (it == cfg.contexts.end()) {
      if (!flags.context.empty()) fail(kExitUsage, "--context: no context named '" + name + "'");
    } else {
      saved = it->second;
    }
  }
  std::string endpoint = flags.endpoint;
  if (endpoint.empty()) {
    if (const char* e = std::getenv("DMS_ENDPOINT"); e && *e) endpoint = e;
  }
  if (endpoint.empty()) endpoint = saved.endpoint;
  if (endpoint.empty())
    fail(kExitUsage,
         "no endpoint: pass --endpoint, set DMS_ENDPOINT, or run dmsctl login --endpoint URL");
  std::string token;
  if (const char* t = std::getenv("DMS_TOKEN"); t && *t)
    token = t;
  else if (saved.endpoint == endpoint)
    token = saved.token;
  if (need_token && token.empty())
    fail(kExitAuth, "not logged in to " + endpoint + ": run dmsctl login --endpoint " + endpoint);
  dmscore::http::ClientOptions o;
  o.endpoints = {endpoint};
  o.ca_file = !flags.ca_cert.empty()       ? flags.ca_cert
              : saved.endpoint == endpoint ? saved.ca_cert
                                           : "";
  o.insecure = flags.insecure || (saved.endpoint == endpoint && saved.insecure);
  o.user_agent = std::string("dmsctl/") + dmscore::version();
  auto api = dmscore::http::ApiClient::create(o, token);
  if (!api.ok()) fail(kExitUsage, api.status().message());
  return {std::move(api).value(), endpoint, o, token};
}

std::string Context::admitted(const Connection& c, dmscore::Result<std::string> r) const {
  if (!r.ok() && r.status().code() == Code::kResourceExhausted && c.api->retry_after())
    fail(r.status(), "retry after " + std::to_string(*c.api->retry_after()) + " s");
  return check(std::move(r));
}

// ---- presentation ----

Format Context::output_format() const {
  Format f;
  if (!parse_format(flags.output, f))
    fail(kExitUsage, "-o: expected table, wide, json, yaml or name, got '" + flags.output + "'");
  return f;
}

void Context::print(const std::string& answer, const std::string& kind) const {
  json::value v = parse_answer(answer);
  Format f = output_format();
  std::fputs(render(v, kind, f).c_str(), stdout);
  if ((f == Format::kTable || f == Format::kWide) && v.is_object()) {
    if (auto* t = v.as_object().if_contains("nextPageToken");
        t && t->is_string() && !t->as_string().empty())
      fmt::print(stderr, "more: repeat with --page-token {}\n", std::string(t->as_string()));
  }
}

std::function<int()> Context::printing(std::string kind, Call call) {
  return [this, kind = std::move(kind), call = std::move(call)] {
    auto c = connect(true);
    print(check(call(*c.api)), kind);
    return kExitOk;
  };
}

std::function<int()> Context::reporting(Call call, std::function<std::string()> done) {
  return [this, call = std::move(call), done = std::move(done)] {
    auto c = connect(true);
    check(call(*c.api));
    fmt::print(stderr, "{}\n", done());
    return kExitOk;
  };
}

// ---- workflows ----

int Context::follow(Connection& c, const std::string& id, const std::string& title,
                    bool print_result, bool show_result) {
  Progress progress(title, !flags.no_progress);
  auto on_update = [&](const std::string& body) {
    if (interrupted.load()) return false;
    json::value v = parse_answer(body);
    progress.update(v.at("workflow").as_object());
    return true;
  };
  auto wait = [&] {
    return c.api->wait_workflow(id, std::chrono::seconds(flags.timeout_s),
                                std::chrono::milliseconds(500), on_update);
  };
  auto r = wait();
  if (!r.ok() && r.status().code() == Code::kCancelled && interrupted.load()) {
    progress.break_line();
    if (ask_cancel(id)) {
      interrupted = false;
      check(c.api->cancel_workflow(id));
      fmt::print(stderr, "cancel requested for workflow {}\n", id);
      r = wait();
    } else {
      fail(kExitError, "stopped waiting; workflow " + id +
                           " goes on. Follow it with: dmsctl get workflow " + id + " --watch");
    }
  }
  if (!r.ok()) {
    progress.break_line();
    if (r.status().code() == Code::kDeadlineExceeded)
      fail(kExitTimeout, "timed out waiting: " + r.status().message() +
                             " (it goes on; dmsctl get workflow " + id + " --watch)");
    fail(r.status());
  }
  json::value v = parse_answer(*r);
  const json::object& w = v.at("workflow").as_object();
  progress.finish(w);
  if (print_result) print(*r, "workflow");
  if (!print_result && show_result && w.contains("result"))
    fmt::print("{}", to_yaml(w.at("result")));
  return w.at("state").as_string() == "COMPLETED" ? kExitOk : kExitWorkflowFailed;
}

int Context::started(Connection& c, const std::string& answer, const std::string& title,
                     bool show_result) {
  std::string id = decoded(dmscore::http::StartedWorkflow::parse(answer)).workflow_id;
  if (!flags.wait) {
    Format f = output_format();
    if (f == Format::kJson || f == Format::kYaml)
      print(answer, "workflow");
    else if (f == Format::kName)
      fmt::print("workflow/{}\n", id);
    else
      fmt::print("{}\n", id);
    fmt::print(stderr, "started workflow {}; follow it with: dmsctl get workflow {} --watch\n", id,
               id);
    return kExitOk;
  }
  fmt::print(stderr, "started workflow {}\n", id);
  return follow(c, id, title, flags.output != "table", show_result);
}

}  // namespace dmsctl
