// dmsctl: the operator's command line for libdmscore.
//
// Verb-noun commands over the REST contract (docs/api-v1.md) through dmscore::http::ApiClient,
// and `serve`, which runs the service itself. This file holds the command line and its
// presentation only; every rule of the service lives in the library.
#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "config.hpp"
#include "dmscore/http/api_client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "dmscore/version.hpp"
#include "log_buffer.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace {

namespace json = boost::json;
using dmscore::Code;
using dmscore::Status;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitAuth = 3;
constexpr int kExitNotFound = 4;
constexpr int kExitThrottled = 5;
constexpr int kExitTimeout = 6;
constexpr int kExitWorkflowFailed = 7;

constexpr const char* kExitCodes =
    "Exit codes: 0 ok, 1 error, 2 usage, 3 unauthenticated or forbidden, 4 not found,\n"
    "5 throttled (429), 6 wait timed out, 7 workflow ended FAILED or CANCELLED.";

// A failure the user must act on, with the exit code scripts see.
struct Failure {
  int code;
  std::string message;
};

int exit_code_for(const Status& s) {
  switch (s.code()) {
    case Code::kUnauthenticated:
    case Code::kPermissionDenied:
      return kExitAuth;
    case Code::kNotFound:
      return kExitNotFound;
    case Code::kResourceExhausted:
      return kExitThrottled;
    case Code::kDeadlineExceeded:
      return kExitTimeout;
    default:
      return kExitError;
  }
}

[[noreturn]] void fail(int code, const std::string& message) { throw Failure{code, message}; }

[[noreturn]] void fail(const Status& s, const std::string& hint = "") {
  std::string m = dmscore::code_name(s.code()) + ": " + s.message();
  if (!hint.empty()) m += "\n" + hint;
  fail(exit_code_for(s), m);
}

template <class T>
T check(dmscore::Result<T> r, const std::string& hint = "") {
  if (!r.ok()) fail(r.status(), hint);
  return std::move(r).value();
}

json::value parse_answer(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) fail(kExitError, "the service answered something that is not JSON");
  return v;
}

// ---- global state set by the command line ----------------------------------------------------

struct Globals {
  std::string endpoint, ca_cert, context, output = "table";
  bool insecure = false;
  bool wait = false, no_progress = false;
  int timeout_s = 0;  // 0: wait without limit
} g;

std::atomic<bool> interrupted{false};

dmscore::Result<dmsctl::Config> load_config() { return dmsctl::Config::load(); }

struct Connection {
  std::unique_ptr<dmscore::http::ApiClient> api;
  std::string endpoint;
};

Connection connect(bool need_token) {
  dmsctl::Config cfg = check(load_config());
  std::string name = g.context.empty() ? cfg.current_context : g.context;
  dmsctl::Context ctx;
  if (!name.empty()) {
    auto it = cfg.contexts.find(name);
    if (it == cfg.contexts.end()) {
      if (!g.context.empty()) fail(kExitUsage, "--context: no context named '" + name + "'");
    } else {
      ctx = it->second;
    }
  }
  std::string endpoint = g.endpoint;
  if (endpoint.empty()) {
    if (const char* e = std::getenv("DMS_ENDPOINT"); e && *e) endpoint = e;
  }
  if (endpoint.empty()) endpoint = ctx.endpoint;
  if (endpoint.empty())
    fail(kExitUsage,
         "no endpoint: pass --endpoint, set DMS_ENDPOINT, or run dmsctl login --endpoint URL");
  std::string token;
  if (const char* t = std::getenv("DMS_TOKEN"); t && *t)
    token = t;
  else if (ctx.endpoint == endpoint)
    token = ctx.token;
  if (need_token && token.empty())
    fail(kExitAuth, "not logged in to " + endpoint + ": run dmsctl login --endpoint " + endpoint);
  dmscore::http::ClientOptions o;
  o.endpoints = {endpoint};
  o.ca_file = !g.ca_cert.empty() ? g.ca_cert : ctx.endpoint == endpoint ? ctx.ca_cert : "";
  o.insecure = g.insecure || (ctx.endpoint == endpoint && ctx.insecure);
  o.user_agent = std::string("dmsctl/") + dmscore::version();
  auto api = dmscore::http::ApiClient::create(o, token);
  if (!api.ok()) fail(kExitUsage, api.status().message());
  return {std::move(api).value(), endpoint};
}

dmsctl::Format output_format() {
  dmsctl::Format f;
  if (!dmsctl::parse_format(g.output, f))
    fail(kExitUsage, "-o: expected table, wide, json, yaml or name, got '" + g.output + "'");
  return f;
}

void print(const std::string& answer, const std::string& kind) {
  json::value v = parse_answer(answer);
  dmsctl::Format f = output_format();
  std::fputs(dmsctl::render(v, kind, f).c_str(), stdout);
  if ((f == dmsctl::Format::kTable || f == dmsctl::Format::kWide) && v.is_object()) {
    if (auto* t = v.as_object().if_contains("nextPageToken");
        t && t->is_string() && !t->as_string().empty())
      fmt::print(stderr, "more: repeat with --page-token {}\n", std::string(t->as_string()));
  }
}

std::string workflow_id_of(const std::string& answer) {
  json::value v = parse_answer(answer);
  if (v.is_object())
    if (auto* id = v.as_object().if_contains("workflowId"); id && id->is_string())
      return std::string(id->as_string());
  fail(kExitError, "the service's answer has no workflowId");
}

// Asks on the terminal whether to cancel; false when there is no terminal to ask on.
bool ask_cancel(const std::string& id) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (!tty) return false;
  fmt::print(tty, "\nInterrupted. Cancel workflow {}? [y/N] ", id);
  std::fflush(tty);
  char buf[16] = {};
  // Another Ctrl-C at the prompt means no: let it interrupt the read (no SA_RESTART here).
  struct sigaction once {
  }, old{};
  once.sa_handler = [](int) {};
  sigemptyset(&once.sa_mask);
  sigaction(SIGINT, &once, &old);
  bool yes = std::fgets(buf, sizeof buf, tty) && (buf[0] == 'y' || buf[0] == 'Y');
  sigaction(SIGINT, &old, nullptr);
  std::fclose(tty);
  return yes;
}

// Follows a workflow to its end with progress on stderr; prints it (-o) when asked, or only its
// result (as YAML) with `show_result` in table mode.
int follow(Connection& c, const std::string& id, const std::string& title, bool print_result,
           bool show_result = false) {
  dmsctl::Progress progress(title, !g.no_progress);
  auto on_update = [&](const std::string& body) {
    if (interrupted.load()) return false;
    json::value v = parse_answer(body);
    progress.update(v.at("workflow").as_object());
    return true;
  };
  auto r = c.api->wait_workflow(id, std::chrono::seconds(g.timeout_s),
                                std::chrono::milliseconds(500), on_update);
  if (!r.ok() && r.status().code() == Code::kCancelled && interrupted.load()) {
    progress.break_line();
    if (ask_cancel(id)) {
      interrupted = false;
      check(c.api->cancel_workflow(id));
      fmt::print(stderr, "cancel requested for workflow {}\n", id);
      r = c.api->wait_workflow(id, std::chrono::seconds(g.timeout_s),
                               std::chrono::milliseconds(500), on_update);
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
    fmt::print("{}", dmsctl::to_yaml(w.at("result")));
  return w.at("state").as_string() == "COMPLETED" ? kExitOk : kExitWorkflowFailed;
}

// Starts long work: prints the workflow id, or follows it with --wait.
int started(Connection& c, const std::string& answer, const std::string& title,
            bool show_result = false) {
  std::string id = workflow_id_of(answer);
  if (!g.wait) {
    dmsctl::Format f = output_format();
    if (f == dmsctl::Format::kJson || f == dmsctl::Format::kYaml)
      print(answer, "workflow");
    else if (f == dmsctl::Format::kName)
      fmt::print("workflow/{}\n", id);
    else
      fmt::print("{}\n", id);
    fmt::print(stderr, "started workflow {}; follow it with: dmsctl get workflow {} --watch\n", id,
               id);
    return kExitOk;
  }
  fmt::print(stderr, "started workflow {}\n", id);
  return follow(c, id, title, g.output != "table", show_result);
}

// "10GiB", "512M", "4096" → bytes as a decimal string.
std::string parse_size(const std::string& text, const char* flag) {
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0 || i > 20)
    fail(kExitUsage, std::string(flag) + ": expected a size like 10GiB, got '" + text + "'");
  std::string unit = text.substr(i);
  static const std::map<std::string, int> kShift = {{"", 0},   {"B", 0},    {"K", 10}, {"KiB", 10},
                                                    {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30},
                                                    {"T", 40}, {"TiB", 40}, {"P", 50}, {"PiB", 50}};
  auto it = kShift.find(unit);
  if (it == kShift.end())
    fail(kExitUsage,
         std::string(flag) + ": unknown unit '" + unit + "' (use B, KiB, MiB, GiB, TiB, PiB)");
  std::uint64_t v = 0;
  for (std::size_t k = 0; k < i; ++k) {
    if (v > (UINT64_MAX - 9) / 10) fail(kExitUsage, std::string(flag) + ": too large");
    v = v * 10 + static_cast<unsigned>(text[k] - '0');
  }
  if (it->second > 0 && v > (UINT64_MAX >> it->second))
    fail(kExitUsage, std::string(flag) + ": too large");
  return std::to_string(v << it->second);
}

std::string read_password() {
  if (const char* p = std::getenv("DMS_PASSWORD"); p && *p) return p;
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    fail(kExitUsage, "no terminal to ask for the password: use --password-stdin or DMS_PASSWORD");
  termios old{};
  bool have = ::tcgetattr(fd, &old) == 0;
  if (have) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  const char prompt[] = "Password: ";
  (void)!::write(fd, prompt, sizeof prompt - 1);
  std::string pw;
  char ch;
  while (::read(fd, &ch, 1) == 1 && ch != '\n') pw += ch;
  if (have) ::tcsetattr(fd, TCSAFLUSH, &old);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  return pw;
}

// ---- serve ------------------------------------------------------------------------------------

struct ServeArgs {
  std::string listen = "127.0.0.1:8443";
  std::string data_dir;
  std::string tls_cert, tls_key;
  int max_running_workflows = 8;
  bool allow_plain_http = false;
  std::vector<std::string> local_cluster_roots;
  std::uint64_t copy_rate_limit = 0;
  int io_threads = 2;
  int blocking_threads = 4;
  std::string cluster_ca_file;
  bool cluster_insecure = false;
  std::string cg_pre_hook, cg_post_hook;
  int cg_hook_timeout_ms = 30000;
  std::string local_cluster_file_group;
  bool cluster_allow_plain_http = false;
  int cluster_call_deadline_ms = 10000;
};

int serve(const ServeArgs& a) {
  dmscore::http::ServerOptions so;
  if (Status s = dmscore::http::set_listen_address(so, a.listen); !s.ok()) {
    fmt::print(stderr, "error: --{}\n", s.message());
    return kExitUsage;
  }
  // Signals are taken synchronously below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // The service's and the access log's lines: one write(2) per batch, not per request (a line
  // is at most 100 ms late). Started after the mask, so its thread takes no signal either.
  dmsctl::LogBuffer log_lines(std::chrono::milliseconds(100));

  dmscore::Options o;
  o.data_dir = a.data_dir;
  // The library reads no environment; the admin's first password comes from here, and the
  // variable is dropped so that nothing this process starts inherits it.
  if (const char* pw = std::getenv("DMS_ADMIN_PASSWORD")) {
    o.admin_password = pw;
    ::unsetenv("DMS_ADMIN_PASSWORD");
  }
  o.log = [&log_lines](std::string_view line) {
    log_lines.add(std::string("dmscore: ").append(line));
  };
  o.max_running_workflows = a.max_running_workflows;
  o.local_cluster_roots = a.local_cluster_roots;
  o.group_snapshot_pre_hook = a.cg_pre_hook;
  o.group_snapshot_post_hook = a.cg_post_hook;
  o.group_snapshot_hook_timeout = std::chrono::milliseconds(a.cg_hook_timeout_ms);
  o.copy_rate_limit_bytes_per_sec = a.copy_rate_limit;
  o.cluster_ca_file = a.cluster_ca_file;
  o.cluster_tls_insecure = a.cluster_insecure;
  o.local_cluster_file_group = a.local_cluster_file_group;
  o.cluster_allow_plain_http = a.cluster_allow_plain_http;
  o.cluster_call_deadline = std::chrono::milliseconds(a.cluster_call_deadline_ms);
  auto svc = dmscore::Service::open(o);
  log_lines.flush();
  if (!svc.ok()) {
    fmt::print(stderr, "error: {}\n", svc.status().to_string());
    return svc.status().code() == Code::kInvalidArgument ? kExitUsage : kExitError;
  }
  so.tls_cert_file = a.tls_cert;
  so.tls_key_file = a.tls_key;
  so.allow_plain_http = a.allow_plain_http;
  so.io_threads = a.io_threads;
  so.blocking_threads = a.blocking_threads;
  so.log = [&log_lines](std::string_view line) {
    log_lines.add(std::string("dmsctl serve: ").append(line));
  };
  auto server = dmscore::http::Server::create(**svc, so);
  if (!server.ok()) {
    fmt::print(stderr, "error: {}\n", server.status().to_string());
    return server.status().code() == Code::kInvalidArgument ? kExitUsage : kExitError;
  }
  if (auto s = (*server)->start(); !s.ok()) {
    fmt::print(stderr, "error: {}\n", s.to_string());
    return kExitError;
  }
  log_lines.add(fmt::format("dmsctl serve: listening on {}://{}:{} (data dir {})",
                            (*server)->tls() ? "https" : "http", so.address.find(':') != std::string::npos ? "[" + so.address + "]" : so.address, (*server)->port(),
                            a.data_dir));
  log_lines.flush();
  int sig = 0;
  sigwait(&signals, &sig);
  log_lines.add(
      fmt::format("dmsctl serve: {} received, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
  (*server)->stop();
  server->reset();
  svc->reset();
  log_lines.add("dmsctl serve: stopped");
  log_lines.flush();
  return kExitOk;
}

// ---- completion -------------------------------------------------------------------------------

struct Tree {
  std::map<std::string, std::vector<std::string>> nouns;  // verb → nouns
};

std::string completion_script(const std::string& shell, const Tree& t) {
  std::string cases;
  std::string verbs;
  for (const auto& [verb, nouns] : t.nouns) {
    verbs += verb + " ";
    std::string list;
    for (const auto& n : nouns) list += n + " ";
    cases += "    " + verb + ") COMPREPLY=($(compgen -W \"" + list + "\" -- \"$cur\")) ;;\n";
  }
  std::string bash =
      "# dmsctl bash completion: source <(dmsctl completion bash)\n"
      "_dmsctl() {\n"
      "  local cur=${COMP_WORDS[COMP_CWORD]}\n"
      "  if [[ $cur == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"--endpoint --ca-cert --insecure --context -o --output "
      "--wait --no-progress --timeout --help\" -- \"$cur\")); return\n"
      "  fi\n"
      "  if ((COMP_CWORD == 1)); then\n"
      "    COMPREPLY=($(compgen -W \"" +
      verbs +
      "\" -- \"$cur\")); return\n"
      "  fi\n"
      "  if ((COMP_CWORD == 2)); then\n"
      "    case ${COMP_WORDS[1]} in\n" +
      cases +
      "    esac\n"
      "  fi\n"
      "}\n"
      "complete -F _dmsctl dmsctl\n";
  if (shell == "bash") return bash;
  return "#compdef dmsctl\n# dmsctl zsh completion: source <(dmsctl completion zsh)\n"
         "autoload -U +X bashcompinit && bashcompinit\n" +
         bash;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{std::string("dmsctl: drive a libdmscore data management service\n\n") + kExitCodes +
               "\n\nConnection: --endpoint, else $DMS_ENDPOINT, else the context saved by login "
               "(~/.config/dmsctl/config.json, mode 0600); the token: $DMS_TOKEN, else the "
               "context's.\n\nExample:\n  dmsctl login --endpoint https://dms.example:8443\n"
               "  dmsctl list clusters -o wide"};
  app.set_version_flag("--version", std::string("dmsctl ") + dmscore::version());
  app.require_subcommand(0, 1);
  app.fallthrough();
  app.add_option("--endpoint", g.endpoint, "service URL: https://host:port (http:// on loopback)");
  app.add_option("--ca-cert", g.ca_cert,
                 "PEM file of the CAs that signed the service's certificate");
  app.add_flag("--insecure", g.insecure, "do not verify the service's TLS certificate");
  app.add_option("--context", g.context, "named context of the config file to use");

  std::map<CLI::App*, std::function<int()>> actions;
  Tree tree;
  auto verb = [&](const std::string& name, const std::string& what) {
    auto* v = app.add_subcommand(name, what);
    v->fallthrough();
    v->require_subcommand(0, 1);
    return v;
  };
  // A command with its example(s) in --help.
  auto leaf = [&](CLI::App* parent, const std::string& name, const std::string& what,
                  const std::string& example, std::function<int()> run) {
    auto* c = parent->add_subcommand(name, what);
    c->footer("Example:\n" + example);
    c->fallthrough();
    actions[c] = std::move(run);
    if (parent != &app) tree.nouns[parent->get_name()].push_back(name);
    return c;
  };
  auto with_output = [&](CLI::App* c) {
    c->add_option("-o,--output", g.output, "table, wide, json, yaml or name")
        ->capture_default_str();
    return c;
  };
  auto with_wait = [&](CLI::App* c) {
    c->add_flag("--wait", g.wait, "wait for the workflow to end, with progress on stderr");
    c->add_flag("--no-progress", g.no_progress, "no progress lines while waiting");
    c->add_option("--timeout", g.timeout_s, "seconds to wait at most (0: no limit)")
        ->check(CLI::NonNegativeNumber);
    return with_output(c);
  };

  // version, serve, completion
  leaf(&app, "version", "Print the version", "  dmsctl version", [] {
    fmt::print("dmsctl {}\n", dmscore::version());
    return kExitOk;
  });

  ServeArgs sa;
  auto* serve_cmd = leaf(&app, "serve", "Run the service and its HTTP API until SIGTERM or SIGINT",
                         "  dmsctl serve --listen 127.0.0.1:8443 --data-dir /var/lib/dms\n"
                         "  dmsctl serve --listen 0.0.0.0:8443 --data-dir /var/lib/dms "
                         "--tls-cert c.pem --tls-key k.pem",
                         [&] { return serve(sa); });
  serve_cmd->add_option("--listen", sa.listen, "ADDR:PORT to listen on (port 0: any free one)")
      ->capture_default_str();
  serve_cmd->add_option("--data-dir", sa.data_dir, "the service's data directory")->required();
  auto* cert = serve_cmd->add_option("--tls-cert", sa.tls_cert, "PEM certificate chain file");
  auto* key = serve_cmd->add_option("--tls-key", sa.tls_key, "PEM private key file");
  cert->needs(key);
  key->needs(cert);
  serve_cmd
      ->add_option("--max-running-workflows", sa.max_running_workflows,
                   "non-terminal workflows allowed at once (429 beyond)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  serve_cmd->add_flag("--allow-plain-http", sa.allow_plain_http,
                      "serve plain HTTP on a non-loopback address");
  serve_cmd->add_option("--io-threads", sa.io_threads, "threads reading and writing sockets")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  serve_cmd
      ->add_option("--blocking-threads", sa.blocking_threads,
                   "threads answering requests (store, login)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  serve_cmd->add_option("--cluster-ca-cert", sa.cluster_ca_file,
                        "PEM file of the CAs that signed Lightbits clusters' API certificates");
  serve_cmd->add_flag("--cluster-insecure", sa.cluster_insecure,
                      "do not verify Lightbits clusters' certificates (self-signed labs only)");
  serve_cmd->add_option("--copy-rate-limit", sa.copy_rate_limit,
                        "bytes per second each copy may move at most (0: unlimited)");
  serve_cmd->add_option("--local-cluster-root", sa.local_cluster_roots,
                        "directory under which local clusters may be attached (repeatable)");
  serve_cmd->add_option("--local-cluster-file-group", sa.local_cluster_file_group,
                        "group (name or id) allowed to read local clusters' data (files 0640)");
  serve_cmd->add_flag("--cluster-allow-plain-http", sa.cluster_allow_plain_http,
                      "use http:// endpoints Lightbits clusters report (the token travels in "
                      "the clear; labs only)");
  serve_cmd
      ->add_option("--cluster-call-deadline-ms", sa.cluster_call_deadline_ms,
                   "milliseconds a request's calls to one cluster may take in all")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  serve_cmd->add_option("--cg-pre-hook", sa.cg_pre_hook,
                        "executable run before a group snapshot holds writes (quiesce)");
  serve_cmd->add_option("--cg-post-hook", sa.cg_post_hook,
                        "executable run after a group snapshot releases writes (thaw)");
  serve_cmd
      ->add_option("--cg-hook-timeout-ms", sa.cg_hook_timeout_ms,
                   "milliseconds a hook may run before it is killed")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();

  std::string shell;
  auto* completion =
      leaf(&app, "completion", "Print a shell completion script",
           "  source <(dmsctl completion bash)\n  dmsctl completion zsh > ~/.zfunc/_dmsctl", [&] {
             fmt::print("{}", completion_script(shell, tree));
             return kExitOk;
           });
  completion->add_option("shell", shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));

  // login, logout
  std::string username = "admin", save_context;
  bool password_stdin = false;
  auto* login =
      leaf(&app, "login", "Log in and keep the token in the config file (mode 0600)",
           "  dmsctl login --endpoint https://dms.example:8443 --username admin\n"
           "  echo \"$PW\" | dmsctl login --endpoint http://127.0.0.1:8443 --password-stdin",
           [&] {
             dmsctl::Config cfg = check(load_config());
             auto c = connect(false);
             std::string password;
             if (password_stdin) {
               if (!std::getline(std::cin, password))
                 fail(kExitUsage, "--password-stdin: no input");
             } else {
               password = read_password();
             }
             json::value v = parse_answer(check(c.api->login(username, password)));
             std::string name = !save_context.empty()          ? save_context
                                : !g.context.empty()           ? g.context
                                : !cfg.current_context.empty() ? cfg.current_context
                                                               : "default";
             auto& ctx = cfg.contexts[name];
             ctx.endpoint = c.endpoint;
             if (!g.ca_cert.empty()) ctx.ca_cert = g.ca_cert;
             if (g.insecure) ctx.insecure = true;
             ctx.username = username;
             ctx.token = std::string(v.at("idToken").as_string());
             cfg.current_context = name;
             if (Status s = cfg.save(); !s.ok()) fail(s);
             fmt::print(stderr, "logged in to {} as {} (context {}, {})\n", c.endpoint, username,
                        name, cfg.path);
             return kExitOk;
           });
  login->add_option("--username", username, "user name")->capture_default_str();
  login->add_flag("--password-stdin", password_stdin, "read the password from standard input");
  login->add_option("--save-as", save_context, "name of the context to save (default: current)");

  leaf(&app, "logout", "Revoke the token and forget it", "  dmsctl logout", [&] {
    auto c = connect(true);
    check(c.api->logout());
    dmsctl::Config cfg = check(load_config());
    for (auto& [name, ctx] : cfg.contexts)
      if (ctx.endpoint == c.endpoint) ctx.token.clear();
    if (Status s = cfg.save(); !s.ok()) fail(s);
    fmt::print(stderr, "logged out of {}\n", c.endpoint);
    return kExitOk;
  });

  auto* get = verb("get", "Show one object");
  auto* list = verb("list", "List objects");
  auto* create = verb("create", "Create a volume, snapshot, consistency group or group snapshot");
  auto* del = verb("delete", "Delete a volume, snapshot, consistency group or group snapshot");
  auto* update = verb("update", "Change a consistency group");
  auto* reset = verb("reset", "Reset the status of a consistency group (admin)");
  auto* attach = verb("attach", "Attach a cluster");
  auto* detach = verb("detach", "Detach a cluster, or full copies from their group");
  auto* refresh = verb("refresh", "Re-read clusters");
  auto* repair = verb("repair", "Rebuild a local cluster's metadata from its data files");
  auto* clone = verb("clone", "Thick clone a snapshot, or a group snapshot into a new group");
  auto* cancel = verb("cancel", "Cancel a workflow");
  auto* activate = verb("activate", "Copy a group into inactive full copies");
  auto* resync = verb("resync", "Copy a group's current state onto its full copies again");
  auto* restore = verb("restore", "Copy a full copy back onto its group's volumes");

  // service credentials
  std::string pem_out;
  auto* creds = leaf(
      get, "service-credentials", "The service's public key, to import into Lightbits clusters",
      "  dmsctl get service-credentials --pem-out dms.pem", [&] {
        auto c = connect(true);
        std::string answer = check(c.api->service_credentials());
        json::value v = parse_answer(answer);
        std::string id(v.at("pubKeyId").as_string());
        if (!pem_out.empty()) {
          std::string b64(v.at("pubKey").as_string());
          // The PEM is public; decode it with OpenSSL-free code: base64 is all it takes.
          static const std::string kAlphabet =
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
          std::string pem;
          unsigned buf = 0;
          int bits = 0;
          for (char ch : b64) {
            if (ch == '=') break;
            auto pos = kAlphabet.find(ch);
            if (pos == std::string::npos) fail(kExitError, "pubKey: not base64");
            buf = (buf << 6) | static_cast<unsigned>(pos);
            bits += 6;
            if (bits >= 8) {
              bits -= 8;
              pem += static_cast<char>((buf >> bits) & 0xff);
            }
          }
          std::ofstream out(pem_out, std::ios::binary | std::ios::trunc);
          if (!(out << pem)) fail(kExitError, "--pem-out: cannot write " + pem_out);
          fmt::print(stderr,
                     "wrote {}. Import it on each Lightbits cluster with:\n"
                     "  lbcli create credential --project-name=system --type=rsa256pubkey "
                     "--id={} {}\n",
                     pem_out, id, pem_out);
        }
        print(answer, "service-credentials");
        return kExitOk;
      });
  creds->add_option("--pem-out", pem_out, "write the decoded PEM public key to this file");
  with_output(creds);

  // clusters
  std::string cluster_id, cluster_name, endpoint_arg;
  auto* attach_cluster =
      leaf(attach, "cluster", "Attach a cluster (ATTACH_CLUSTER workflow)",
           "  dmsctl attach cluster file:///var/lib/dms-local/c1 --name c1 --wait\n"
           "  dmsctl attach cluster https://10.0.0.10:443 --name prod --wait",
           [&] {
             auto c = connect(true);
             return started(c, check(c.api->attach_cluster(endpoint_arg, cluster_name)),
                            "Attaching " + endpoint_arg);
           });
  attach_cluster->add_option("endpoint", endpoint_arg, "file:///dir or https://host:port")
      ->required();
  attach_cluster->add_option("--name", cluster_name, "name to give the cluster");
  with_wait(attach_cluster);

  with_output(
      leaf(list, "clusters", "List attached clusters", "  dmsctl list clusters -o wide", [&] {
        auto c = connect(true);
        print(check(c.api->list_clusters()), "cluster");
        return kExitOk;
      }));
  auto* get_cluster =
      leaf(get, "cluster", "Show a cluster", "  dmsctl get cluster CLUSTER_ID -o yaml", [&] {
        auto c = connect(true);
        print(check(c.api->get_cluster(cluster_id)), "cluster");
        return kExitOk;
      });
  get_cluster->add_option("id", cluster_id, "cluster id")->required();
  with_output(get_cluster);
  auto* refresh_clusters =
      leaf(refresh, "clusters", "Re-read every cluster's information, or one's (REFRESH_CLUSTERS)",
           "  dmsctl refresh clusters --wait\n  dmsctl refresh clusters CLUSTER_ID", [&] {
             auto c = connect(true);
             return started(c, check(c.api->refresh_clusters(cluster_id)), "Refreshing clusters");
           });
  refresh_clusters->add_option("id", cluster_id, "only this cluster");
  with_wait(refresh_clusters);
  auto* repair_cluster = leaf(
      repair, "cluster",
      "Rebuild the metadata of a local cluster in NeedsRepair from its data files and their "
      "sidecars; files it cannot explain go to the cluster's lost+found/, nothing is deleted "
      "(REPAIR_CLUSTER). With --wait, prints what it found",
      "  dmsctl repair cluster CLUSTER_ID --wait", [&] {
        auto c = connect(true);
        return started(c, check(c.api->repair_cluster(cluster_id)),
                       "Repairing cluster " + cluster_id, /*show_result=*/true);
      });
  repair_cluster->add_option("id", cluster_id, "cluster id")->required();
  with_wait(repair_cluster);
  auto* detach_cluster = leaf(detach, "cluster", "Forget a cluster (its data is not touched)",
                              "  dmsctl detach cluster CLUSTER_ID", [&] {
                                auto c = connect(true);
                                check(c.api->detach_cluster(cluster_id));
                                fmt::print(stderr, "detached cluster {}\n", cluster_id);
                                return kExitOk;
                              });
  detach_cluster->add_option("id", cluster_id, "cluster id")->required();

  // volumes and snapshots
  std::string project = "default", object_id, object_name, size_text, source_snapshot,
              source_volume, description, page_token;
  int page_size = 0, replica = 0, sector = 0;
  std::optional<bool> compression;
  auto in_project = [&](CLI::App* c) {
    c->add_option("--cluster", cluster_id, "cluster id")->required();
    c->add_option("--project", project, "project name")->capture_default_str();
    return c;
  };
  auto paged = [&](CLI::App* c) {
    c->add_option("--page-size", page_size, "objects per page")->check(CLI::Range(1, 1000));
    c->add_option("--page-token", page_token, "the page to show, from a previous list");
    return with_output(in_project(c));
  };
  auto* create_volume =
      leaf(create, "volume", "Create a volume, empty or as a thin clone of a snapshot",
           "  dmsctl create volume --cluster CLUSTER_ID --name db --size 10GiB\n"
           "  dmsctl create volume --cluster CLUSTER_ID --name db2 --size 10GiB --source-snapshot "
           "SNAP_ID",
           [&] {
             json::object b{{"name", object_name}, {"size", parse_size(size_text, "--size")}};
             if (replica) b["replicaCount"] = replica;
             if (sector) b["sectorSize"] = sector;
             if (compression) b["compression"] = *compression;
             if (!source_snapshot.empty()) b["sourceSnapshotId"] = source_snapshot;
             auto c = connect(true);
             print(check(c.api->create_volume(cluster_id, project, json::serialize(b))), "volume");
             return kExitOk;
           });
  in_project(create_volume);
  create_volume->add_option("--name", object_name, "volume name")->required();
  create_volume->add_option("--size", size_text, "size: bytes or with a unit (GiB, ...)")
      ->required();
  create_volume->add_option("--replica-count", replica, "replicas (1-3)");
  create_volume->add_option("--sector-size", sector, "512 or 4096");
  create_volume->add_option("--compression", compression, "true or false");
  create_volume->add_option("--source-snapshot", source_snapshot, "thin clone of this snapshot");
  with_output(create_volume);

  paged(leaf(
      list, "volumes", "List the volumes of a project",
      "  dmsctl list volumes --cluster CLUSTER_ID --project default -o wide", [&] {
        auto c = connect(true);
        print(check(c.api->list_volumes(cluster_id, project, {page_size, page_token})), "volume");
        return kExitOk;
      }));
  auto* get_volume =
      leaf(get, "volume", "Show a volume",
           "  dmsctl get volume VOLUME_ID --cluster CLUSTER_ID -o json", [&] {
             auto c = connect(true);
             print(check(c.api->get_volume(cluster_id, project, object_id)), "volume");
             return kExitOk;
           });
  get_volume->add_option("id", object_id, "volume id")->required();
  with_output(in_project(get_volume));
  auto* delete_volume = leaf(del, "volume", "Delete a volume",
                             "  dmsctl delete volume VOLUME_ID --cluster CLUSTER_ID", [&] {
                               auto c = connect(true);
                               check(c.api->delete_volume(cluster_id, project, object_id));
                               fmt::print(stderr, "deleted volume {}\n", object_id);
                               return kExitOk;
                             });
  delete_volume->add_option("id", object_id, "volume id")->required();
  in_project(delete_volume);

  auto* create_snapshot = leaf(
      create, "snapshot", "Take a snapshot of a volume",
      "  dmsctl create snapshot --cluster CLUSTER_ID --name nightly --source-volume VOLUME_ID",
      [&] {
        json::object b{{"name", object_name}, {"sourceVolumeId", source_volume}};
        if (!description.empty()) b["description"] = description;
        auto c = connect(true);
        print(check(c.api->create_snapshot(cluster_id, project, json::serialize(b))), "snapshot");
        return kExitOk;
      });
  in_project(create_snapshot);
  create_snapshot->add_option("--name", object_name, "snapshot name")->required();
  create_snapshot->add_option("--source-volume", source_volume, "volume id")->required();
  create_snapshot->add_option("--description", description, "free text");
  with_output(create_snapshot);
  paged(leaf(list, "snapshots", "List the snapshots of a project",
             "  dmsctl list snapshots --cluster CLUSTER_ID -o name", [&] {
               auto c = connect(true);
               print(check(c.api->list_snapshots(cluster_id, project, {page_size, page_token})),
                     "snapshot");
               return kExitOk;
             }));
  auto* get_snapshot =
      leaf(get, "snapshot", "Show a snapshot",
           "  dmsctl get snapshot SNAP_ID --cluster CLUSTER_ID -o yaml", [&] {
             auto c = connect(true);
             print(check(c.api->get_snapshot(cluster_id, project, object_id)), "snapshot");
             return kExitOk;
           });
  get_snapshot->add_option("id", object_id, "snapshot id")->required();
  with_output(in_project(get_snapshot));
  auto* delete_snapshot = leaf(del, "snapshot", "Delete a snapshot",
                               "  dmsctl delete snapshot SNAP_ID --cluster CLUSTER_ID", [&] {
                                 auto c = connect(true);
                                 check(c.api->delete_snapshot(cluster_id, project, object_id));
                                 fmt::print(stderr, "deleted snapshot {}\n", object_id);
                                 return kExitOk;
                               });
  delete_snapshot->add_option("id", object_id, "snapshot id")->required();
  in_project(delete_snapshot);

  // thick clones
  std::string dst_cluster, dst_project, snap_id;
  bool verify = false;
  auto clone_body = [&](bool snapshot) {
    json::object src{{"snapId", snap_id}, {"projectName", project}, {"clusterId", cluster_id}};
    json::object dst{{"name", object_name},
                     {"clusterId", dst_cluster.empty() ? cluster_id : dst_cluster}};
    if (!dst_project.empty()) dst["projectName"] = dst_project;
    if (!size_text.empty()) dst["size"] = parse_size(size_text, "--size");
    if (replica) dst["replica"] = replica;
    if (sector) dst["sectorSize"] = sector;
    if (compression) dst["compression"] = *compression;
    if (snapshot && !description.empty()) dst["description"] = description;
    return json::serialize(json::object{{"src", src}, {"dst", dst}, {"verifyClone", verify}});
  };
  for (bool snapshot : {false, true}) {
    const std::string kind = snapshot ? "snapshot" : "volume";
    auto* c = leaf(
        clone, kind,
        "Thick clone a snapshot into a new, independent " + kind + " (THICK_CLONE_" +
            (snapshot ? "SNAPSHOT" : "VOLUME") + ")",
        "  dmsctl clone " + kind + " --cluster SRC_CLUSTER --snapshot SNAP_ID --dst-cluster " +
            "DST_CLUSTER --name copy1 --verify --wait",
        [&, snapshot, kind] {
          auto conn = connect(true);
          std::string body = clone_body(snapshot);
          auto r =
              snapshot ? conn.api->thick_clone_snapshot(body) : conn.api->thick_clone_volume(body);
          if (!r.ok() && r.status().code() == Code::kResourceExhausted && conn.api->retry_after())
            fail(r.status(), "retry after " + std::to_string(*conn.api->retry_after()) + " s");
          return started(conn, check(std::move(r)), "Cloning " + kind + " " + object_name);
        });
    c->add_option("--cluster", cluster_id, "the source snapshot's cluster")->required();
    c->add_option("--project", project, "the source snapshot's project")->capture_default_str();
    c->add_option("--snapshot", snap_id, "source snapshot id")->required();
    c->add_option("--dst-cluster", dst_cluster, "destination cluster (default: the source's)");
    c->add_option("--dst-project", dst_project, "destination project (default: the source's)");
    c->add_option("--name", object_name, "name of the new " + kind)->required();
    c->add_option("--size", size_text, "destination size (default: the source's)");
    c->add_option("--replica", replica, "replicas (default: inherited)");
    c->add_option("--sector-size", sector, "512 or 4096 (default: inherited)");
    c->add_option("--compression", compression, "true or false (default: inherited)");
    c->add_flag("--verify", verify, "read the copy back and compare it with the source");
    if (snapshot) c->add_option("--description", description, "the new snapshot's description");
    with_wait(c);
  }

  // consistency groups and group snapshots
  std::vector<std::string> volume_ids, add_volumes, remove_volumes;
  std::optional<std::string> new_name, new_description;
  std::string group_id, group_status, source_cg_snapshot;
  bool force = false, members = false;
  auto* create_group = leaf(
      create, "consistency-group", "Group volumes whose snapshots must show one instant",
      "  dmsctl create consistency-group --cluster CLUSTER_ID --project db --name orders "
      "--volume DATA_ID --volume LOG_ID\n"
      "  dmsctl create consistency-group --name orders-copy --from-cg-snapshot CGSNAP_ID --wait",
      [&] {
        json::object b{{"name", object_name}};
        if (!source_cg_snapshot.empty()) {
          if (!cluster_id.empty() || !volume_ids.empty())
            fail(kExitUsage,
                 "--from-cg-snapshot takes the cluster, project and volumes from the group "
                 "snapshot: leave --cluster and --volume out");
          b["sourceCgSnapshotId"] = source_cg_snapshot;
        } else {
          if (cluster_id.empty()) fail(kExitUsage, "--cluster is required");
          json::array ids;
          for (const auto& v : volume_ids) ids.push_back(json::value(v));
          b["clusterId"] = cluster_id;
          b["projectName"] = project;
          b["volumeIds"] = std::move(ids);
        }
        if (!description.empty()) b["description"] = description;
        auto c = connect(true);
        std::string answer = check(c.api->create_consistency_group(json::serialize(b)));
        if (!source_cg_snapshot.empty() && g.wait) {
          json::value v = parse_answer(answer);
          std::string wid(v.at("consistencyGroup").at("workflowId").as_string());
          fmt::print(stderr, "started workflow {}\n", wid);
          return follow(c, wid, "Making group " + object_name, g.output != "table");
        }
        print(answer, "consistencyGroup");
        return kExitOk;
      });
  create_group->add_option("--cluster", cluster_id, "cluster id");
  create_group->add_option("--project", project, "project name")->capture_default_str();
  create_group->add_option("--from-cg-snapshot", source_cg_snapshot,
                           "make the group from this group snapshot: a new volume per member");
  create_group->add_option("--name", object_name, "group name")->required();
  create_group->add_option("--volume", volume_ids, "a member volume id (repeatable, in order)");
  create_group->add_option("--description", description, "free text");
  with_wait(create_group);
  auto* list_groups = leaf(
      list, "consistency-groups", "List consistency groups",
      "  dmsctl list consistency-groups -o wide", [&] {
        auto c = connect(true);
        print(check(c.api->list_consistency_groups({page_size, page_token})), "consistencyGroup");
        return kExitOk;
      });
  list_groups->add_option("--page-size", page_size, "groups per page")->check(CLI::Range(1, 1000));
  list_groups->add_option("--page-token", page_token, "the page to show");
  with_output(list_groups);
  auto* get_group = leaf(get, "consistency-group", "Show a consistency group",
                         "  dmsctl get consistency-group GROUP_ID -o yaml", [&] {
                           auto c = connect(true);
                           print(check(c.api->get_consistency_group(group_id)), "consistencyGroup");
                           return kExitOk;
                         });
  get_group->add_option("id", group_id, "group id")->required();
  with_output(get_group);
  auto* update_group = leaf(
      update, "consistency-group", "Rename a group, change its description or its members",
      "  dmsctl update consistency-group GROUP_ID --add-volume INDEX_ID --remove-volume OLD_ID",
      [&] {
        json::object b;
        if (new_name) b["name"] = *new_name;
        if (new_description) b["description"] = *new_description;
        auto arr = [](const std::vector<std::string>& v) {
          json::array a;
          for (const auto& x : v) a.push_back(json::value(x));
          return a;
        };
        if (!add_volumes.empty()) b["addVolumeIds"] = arr(add_volumes);
        if (!remove_volumes.empty()) b["removeVolumeIds"] = arr(remove_volumes);
        if (b.empty())
          fail(kExitUsage,
               "nothing to change: pass --name, --description, "
               "--add-volume or --remove-volume");
        auto c = connect(true);
        print(check(c.api->update_consistency_group(group_id, json::serialize(b))),
              "consistencyGroup");
        return kExitOk;
      });
  update_group->add_option("id", group_id, "group id")->required();
  update_group->add_option("--name", new_name, "new name");
  update_group->add_option("--description", new_description, "new description");
  update_group->add_option("--add-volume", add_volumes, "volume to add (repeatable)");
  update_group->add_option("--remove-volume", remove_volumes, "member to remove (repeatable)");
  with_output(update_group);
  auto* reset_group =
      leaf(reset, "consistency-group", "Set a group's status, whatever it is (admin; audited)",
           "  dmsctl reset consistency-group GROUP_ID --status available", [&] {
             auto c = connect(true);
             json::object b{{"resetStatus", json::object{{"status", group_status}}}};
             check(c.api->consistency_group_action(group_id, json::serialize(b)));
             fmt::print(stderr, "consistency group {} is now {}\n", group_id, group_status);
             return kExitOk;
           });
  reset_group->add_option("id", group_id, "group id")->required();
  reset_group->add_option("--status", group_status, "the new status")
      ->required()
      ->check(CLI::IsMember({"creating", "available", "error", "deleting", "error_deleting"}));
  auto* delete_group = leaf(
      del, "consistency-group", "Delete a group (never its volumes)",
      "  dmsctl delete consistency-group GROUP_ID\n"
      "  dmsctl delete consistency-group GROUP_ID --force   # whatever its status (admin; audited)",
      [&] {
        auto c = connect(true);
        if (force)
          check(c.api->consistency_group_action(group_id, R"({"forceDelete":{}})"));
        else
          check(c.api->delete_consistency_group(group_id));
        fmt::print(stderr, "deleted consistency group {}\n", group_id);
        return kExitOk;
      });
  delete_group->add_option("id", group_id, "group id")->required();
  delete_group->add_flag("--force", force, "remove the record whatever its status and snapshots");

  auto* create_cgs =
      leaf(create, "cg-snapshot",
           "Snapshot every member of a group at one instant (CREATE_CG_SNAPSHOT workflow)",
           "  dmsctl create cg-snapshot --group GROUP_ID --name nightly --wait", [&] {
             json::object b{{"consistencyGroupId", group_id}};
             if (!object_name.empty()) b["name"] = object_name;
             if (!description.empty()) b["description"] = description;
             auto c = connect(true);
             auto r = c.api->create_cg_snapshot(json::serialize(b));
             if (!r.ok() && r.status().code() == Code::kResourceExhausted && c.api->retry_after())
               fail(r.status(), "retry after " + std::to_string(*c.api->retry_after()) + " s");
             return started(c, check(std::move(r)), "Group snapshot of " + group_id);
           });
  create_cgs->add_option("--group", group_id, "consistency group id")->required();
  create_cgs->add_option("--name", object_name, "name (default: cgsnap-<id>)");
  create_cgs->add_option("--description", description, "free text");
  with_wait(create_cgs);
  auto* list_cgs = leaf(
      list, "cg-snapshots", "List group snapshots", "  dmsctl list cg-snapshots --group GROUP_ID",
      [&] {
        auto c = connect(true);
        print(check(c.api->list_cg_snapshots({page_size, page_token}, group_id)), "cgSnapshot");
        return kExitOk;
      });
  list_cgs->add_option("--group", group_id, "only this group's");
  list_cgs->add_option("--page-size", page_size, "per page")->check(CLI::Range(1, 1000));
  list_cgs->add_option("--page-token", page_token, "the page to show");
  with_output(list_cgs);
  auto* get_cgs = leaf(get, "cg-snapshot", "Show a group snapshot, or its members",
                       "  dmsctl get cg-snapshot CGSNAP_ID\n"
                       "  dmsctl get cg-snapshot CGSNAP_ID --members -o json",
                       [&] {
                         auto c = connect(true);
                         if (members)
                           print(check(c.api->list_cg_snapshot_members(object_id)), "member");
                         else
                           print(check(c.api->get_cg_snapshot(object_id)), "cgSnapshot");
                         return kExitOk;
                       });
  get_cgs->add_option("id", object_id, "group snapshot id")->required();
  get_cgs->add_flag("--members", members, "list its members: volume, snapshot, size");
  with_output(get_cgs);
  auto* delete_cgs = leaf(del, "cg-snapshot", "Delete a group snapshot and its member snapshots",
                          "  dmsctl delete cg-snapshot CGSNAP_ID", [&] {
                            auto c = connect(true);
                            check(c.api->delete_cg_snapshot(object_id));
                            fmt::print(stderr, "deleted group snapshot {}\n", object_id);
                            return kExitOk;
                          });
  delete_cgs->add_option("id", object_id, "group snapshot id")->required();

  // full copies of groups (copy sets) and group thick clones
  int copy_count = 1;
  std::string target_cluster, target_project;
  bool partial = false, inactive = false, confirm = false;
  std::vector<int> copy_indexes;
  // Prints the copy set; with --wait follows each copy's workflow in turn.
  auto copy_work = [&](Connection& c, const std::string& answer, const std::string& title) {
    json::value v = parse_answer(answer);
    std::vector<std::pair<std::int64_t, std::string>> wfs;
    for (const auto& w : v.at("workflows").as_array())
      wfs.emplace_back(w.at("copy").to_number<std::int64_t>(),
                       std::string(w.at("workflowId").as_string()));
    if (!g.wait || wfs.empty()) {
      print(answer, "copySet");
      for (const auto& [copy, id] : wfs)
        fmt::print(stderr, "copy {}: workflow {}; follow it with: dmsctl get workflow {} --watch\n",
                   copy, id, id);
      return kExitOk;
    }
    int rc = kExitOk;
    for (const auto& [copy, id] : wfs) {
      fmt::print(stderr, "copy {}: workflow {}\n", copy, id);
      int one = follow(c, id, title + " copy " + std::to_string(copy), false);
      if (one != kExitOk) rc = one;
    }
    print(check(c.api->get_copy_set(group_id, std::string(v.at("copySet").at("id").as_string()))),
          "copySet");
    return rc;
  };
  auto* create_set = leaf(
      create, "copy-set",
      "Full copies of a group: one group snapshot, its members thick cloned COUNT times",
      "  dmsctl create copy-set --group GROUP_ID --name nightly --count 3 --wait\n"
      "  dmsctl create copy-set --group GROUP_ID --name dr --cluster C2 --project dr --inactive\n"
      "  dmsctl create copy-set --group GROUP_ID --name data-only --partial --volume DATA_ID",
      [&] {
        json::object b{{"name", object_name}, {"count", copy_count}};
        if (partial) b["partial"] = true;
        if (!volume_ids.empty()) {
          json::array ids;
          for (const auto& v : volume_ids) ids.push_back(json::value(v));
          b["volumeIds"] = std::move(ids);
        }
        if (inactive) b["createInactive"] = true;
        if (!target_cluster.empty()) b["clusterId"] = target_cluster;
        if (!target_project.empty()) b["projectName"] = target_project;
        auto c = connect(true);
        auto r = c.api->create_full_copies(group_id, json::serialize(b));
        if (!r.ok() && r.status().code() == Code::kResourceExhausted && c.api->retry_after())
          fail(r.status(), "retry after " + std::to_string(*c.api->retry_after()) + " s");
        return copy_work(c, check(std::move(r)), "Full copy " + object_name);
      });
  create_set->add_option("--group", group_id, "consistency group id")->required();
  create_set->add_option("--name", object_name, "copy set name")->required();
  create_set->add_option("--count", copy_count, "copies (1-8)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  create_set->add_flag("--partial", partial, "copy only the members given with --volume");
  create_set->add_option("--volume", volume_ids, "a member to copy, with --partial (repeatable)");
  create_set->add_flag("--inactive", inactive, "make the volumes, copy nothing until activate");
  create_set->add_option("--cluster", target_cluster,
                         "cluster of the copies (default: the group's)");
  create_set->add_option("--project", target_project,
                         "project of the copies (default: the group's)");
  with_wait(create_set);
  auto* list_sets =
      leaf(list, "copy-sets", "List a group's copy sets",
           "  dmsctl list copy-sets --group GROUP_ID -o wide", [&] {
             auto c = connect(true);
             print(check(c.api->list_copy_sets(group_id, {page_size, page_token})), "copySet");
             return kExitOk;
           });
  list_sets->add_option("--group", group_id, "consistency group id")->required();
  list_sets->add_option("--page-size", page_size, "per page")->check(CLI::Range(1, 1000));
  list_sets->add_option("--page-token", page_token, "the page to show");
  with_output(list_sets);
  auto* get_set = leaf(get, "copy-set", "Show a copy set: its copies, their states and volumes",
                       "  dmsctl get copy-set SET_ID --group GROUP_ID -o yaml", [&] {
                         auto c = connect(true);
                         print(check(c.api->get_copy_set(group_id, object_id)), "copySet");
                         return kExitOk;
                       });
  get_set->add_option("id", object_id, "copy set id")->required();
  get_set->add_option("--group", group_id, "consistency group id")->required();
  with_output(get_set);
  // activate, resync, restore and detach copy-set: one action each.
  struct SetAction {
    CLI::App* verb;
    const char* action;
    const char* what;
    const char* example;
  };
  for (const SetAction& a :
       {SetAction{activate, "activate", "Take a group snapshot and copy it into inactive copies",
                  "  dmsctl activate copy-set SET_ID --group GROUP_ID --wait"},
        SetAction{resync, "resynchronize",
                  "Take a new group snapshot and copy the group's current state onto the copies",
                  "  dmsctl resync copy-set SET_ID --group GROUP_ID --copy 2 --wait"},
        SetAction{restore, "restore",
                  "Write one copy back onto the group's volumes (their data is overwritten)",
                  "  dmsctl restore copy-set SET_ID --group GROUP_ID --copy 1 --confirm --wait"},
        SetAction{detach, "detach", "Unlink copies from the group: they become ordinary volumes",
                  "  dmsctl detach copy-set SET_ID --group GROUP_ID"}}) {
    const std::string action = a.action;
    auto* cmd = leaf(a.verb, "copy-set", a.what, a.example, [&, action] {
      json::object body;
      if (!copy_indexes.empty()) {
        json::array idx;
        for (int i : copy_indexes) idx.push_back(i);
        body["copies"] = std::move(idx);
      }
      if (action == "restore") body["confirm"] = confirm;
      auto c = connect(true);
      auto r = c.api->copy_set_action(group_id, object_id,
                                      json::serialize(json::object{{action, std::move(body)}}));
      if (!r.ok() && r.status().code() == Code::kResourceExhausted && c.api->retry_after())
        fail(r.status(), "retry after " + std::to_string(*c.api->retry_after()) + " s");
      return copy_work(c, check(std::move(r)), action);
    });
    cmd->add_option("id", object_id, "copy set id")->required();
    cmd->add_option("--group", group_id, "consistency group id")->required();
    cmd->add_option("--copy", copy_indexes, "a copy (1-8; repeatable; default: all)")
        ->check(CLI::Range(1, 8));
    if (action == "restore")
      cmd->add_flag("--confirm", confirm, "yes, overwrite the group's volumes");
    if (action == "detach")
      with_output(cmd);
    else
      with_wait(cmd);
  }
  bool verify_group = false;
  auto* clone_group = leaf(
      clone, "cg-snapshot",
      "Thick clone a group snapshot into a new group (THICK_CLONE_CONSISTENCY_GROUP workflow)",
      "  dmsctl clone cg-snapshot CGSNAP_ID --name orders-dr --dst-cluster C2 --dst-project dr "
      "--verify --wait",
      [&] {
        json::object dst{{"name", object_name}};
        if (!target_cluster.empty()) dst["clusterId"] = target_cluster;
        if (!target_project.empty()) dst["projectName"] = target_project;
        json::object b{{"src", json::object{{"cgSnapshotId", object_id}}},
                       {"dst", std::move(dst)},
                       {"verifyClone", verify_group}};
        auto c = connect(true);
        auto r = c.api->thick_clone_consistency_group(json::serialize(b));
        if (!r.ok() && r.status().code() == Code::kResourceExhausted && c.api->retry_after())
          fail(r.status(), "retry after " + std::to_string(*c.api->retry_after()) + " s");
        return started(c, check(std::move(r)), "Group " + object_name);
      });
  clone_group->add_option("id", object_id, "group snapshot id")->required();
  clone_group->add_option("--name", object_name, "the new group's name")->required();
  clone_group->add_option("--dst-cluster", target_cluster,
                          "cluster (default: the group snapshot's)");
  clone_group->add_option("--dst-project", target_project,
                          "project (default: the group snapshot's)");
  clone_group->add_flag("--verify", verify_group, "read every volume back and compare it");
  with_wait(clone_group);

  // workflows
  std::string wf_state, wf_type;
  bool watch = false;
  auto* list_workflows = leaf(
      list, "workflows", "List workflows, newest first",
      "  dmsctl list workflows --state RUNNING\n  dmsctl list workflows --type THICK_CLONE_VOLUME "
      "-o json",
      [&] {
        auto c = connect(true);
        print(check(c.api->list_workflows({page_size, page_token, wf_state, wf_type})), "workflow");
        return kExitOk;
      });
  list_workflows->add_option("--state", wf_state,
                             "PENDING, RUNNING, COMPLETED, FAILED or CANCELLED");
  list_workflows->add_option("--type", wf_type, "ATTACH_CLUSTER, THICK_CLONE_VOLUME, ...");
  list_workflows->add_option("--page-size", page_size, "workflows per page")
      ->check(CLI::Range(1, 1000));
  list_workflows->add_option("--page-token", page_token, "the page to show");
  with_output(list_workflows);
  auto* get_workflow = leaf(get, "workflow", "Show a workflow, or follow it with --watch",
                            "  dmsctl get workflow WORKFLOW_ID -o yaml\n"
                            "  dmsctl get workflow WORKFLOW_ID --watch",
                            [&] {
                              auto c = connect(true);
                              if (watch) return follow(c, object_id, "Workflow " + object_id, true);
                              print(check(c.api->get_workflow(object_id)), "workflow");
                              return kExitOk;
                            });
  get_workflow->add_option("id", object_id, "workflow id")->required();
  get_workflow->add_flag("--watch", watch, "follow it to its end (exit 7 when it fails)");
  get_workflow->add_flag("--no-progress", g.no_progress, "no progress lines while watching");
  get_workflow->add_option("--timeout", g.timeout_s, "seconds to watch at most (0: no limit)");
  with_output(get_workflow);
  auto* cancel_workflow =
      leaf(cancel, "workflow", "Ask a workflow to stop; it undoes its work",
           "  dmsctl cancel workflow WORKFLOW_ID", [&] {
             auto c = connect(true);
             check(c.api->cancel_workflow(object_id));
             fmt::print(stderr, "cancel requested for workflow {}\n", object_id);
             return kExitOk;
           });
  cancel_workflow->add_option("id", object_id, "workflow id")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  // The parsed leaf: the deepest parsed subcommand.
  CLI::App* chosen = nullptr;
  for (auto& [cmd, run] : actions)
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
  if (chosen != serve_cmd) sigaction(SIGINT, &sa_int, nullptr);

  try {
    return actions[chosen]();
  } catch (const Failure& f) {
    fmt::print(stderr, "error: {}\n", f.message);
    return f.code;
  }
}
