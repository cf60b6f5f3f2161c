// dmsctl: the operator's command line for libdmscore.
//
// Exit codes: 0 ok, 1 error, 2 usage.
#include <fmt/core.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "dmscore/version.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

struct ServeArgs {
  std::string listen = "127.0.0.1:8443";
  std::string data_dir;
  std::string tls_cert, tls_key;
  int max_running_workflows = 8;
  bool allow_plain_http = false;
};

// Splits "ADDR:PORT" ("[v6]:PORT" too).
bool split_listen(const std::string& s, std::string& addr, std::uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size()) return false;
  addr = s.substr(0, colon);
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']')
    addr = addr.substr(1, addr.size() - 2);
  try {
    std::size_t used = 0;
    unsigned long p = std::stoul(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (...) {
    return false;
  }
  return !addr.empty();
}

int serve(const ServeArgs& a) {
  std::string addr;
  std::uint16_t port = 0;
  if (!split_listen(a.listen, addr, port)) {
    fmt::print(stderr, "error: --listen: expected ADDR:PORT, got '{}'\n", a.listen);
    return kExitUsage;
  }
  // Signals are taken synchronously below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  dmscore::Options o;
  o.data_dir = a.data_dir;
  o.max_running_workflows = a.max_running_workflows;
  auto svc = dmscore::Service::open(o);
  if (!svc.ok()) {
    fmt::print(stderr, "error: {}\n", svc.status().to_string());
    return svc.status().code() == dmscore::Code::kInvalidArgument ? kExitUsage : kExitError;
  }
  dmscore::http::ServerOptions so;
  so.address = addr;
  so.port = port;
  so.tls_cert_file = a.tls_cert;
  so.tls_key_file = a.tls_key;
  so.allow_plain_http = a.allow_plain_http;
  so.log = [](std::string_view line) { fmt::print(stderr, "dmsctl serve: {}\n", line); };
  auto server = dmscore::http::Server::create(**svc, so);
  if (!server.ok()) {
    fmt::print(stderr, "error: {}\n", server.status().to_string());
    return server.status().code() == dmscore::Code::kInvalidArgument ? kExitUsage : kExitError;
  }
  if (auto s = (*server)->start(); !s.ok()) {
    fmt::print(stderr, "error: {}\n", s.to_string());
    return kExitError;
  }
  fmt::print(stderr, "dmsctl serve: listening on {}://{}:{} (data dir {})\n",
             (*server)->tls() ? "https" : "http", addr, (*server)->port(), a.data_dir);
  int sig = 0;
  sigwait(&signals, &sig);
  fmt::print(stderr, "dmsctl serve: {} received, stopping\n",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->stop();
  server->reset();
  svc->reset();
  fmt::print(stderr, "dmsctl serve: stopped\n");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dmsctl: drive a libdmscore data management service\n\n"
      "Exit codes: 0 ok, 1 error, 2 usage.\n\n"
      "Example:\n  dmsctl serve --listen 127.0.0.1:8443 --data-dir /var/lib/dms"};
  app.set_version_flag("--version", std::string("dmsctl ") + dmscore::version());
  app.require_subcommand(0, 1);

  auto* version = app.add_subcommand("version", "Print the version\n\nExample:\n  dmsctl version");

  ServeArgs serve_args;
  auto* serve_cmd = app.add_subcommand(
      "serve",
      "Run the service and its HTTP API until SIGTERM or SIGINT\n\n"
      "Example:\n  dmsctl serve --listen 127.0.0.1:8443 --data-dir /var/lib/dms\n"
      "  dmsctl serve --listen 0.0.0.0:8443 --data-dir /var/lib/dms --tls-cert c.pem --tls-key "
      "k.pem");
  serve_cmd->add_option("--listen", serve_args.listen, "ADDR:PORT to listen on")
      ->capture_default_str();
  serve_cmd->add_option("--data-dir", serve_args.data_dir, "the service's data directory")
      ->required();
  auto* cert =
      serve_cmd->add_option("--tls-cert", serve_args.tls_cert, "PEM certificate chain file");
  auto* key = serve_cmd->add_option("--tls-key", serve_args.tls_key, "PEM private key file");
  cert->needs(key);
  key->needs(cert);
  serve_cmd
      ->add_option("--max-running-workflows", serve_args.max_running_workflows,
                   "non-terminal workflows allowed at once (429 beyond)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  serve_cmd->add_flag("--allow-plain-http", serve_args.allow_plain_http,
                      "serve plain HTTP on a non-loopback address");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (version->parsed()) {
    fmt::print("dmsctl {}\n", dmscore::version());
    return kExitOk;
  }
  if (serve_cmd->parsed()) return serve(serve_args);
  fmt::print("{}", app.help());
  return kExitOk;
}
