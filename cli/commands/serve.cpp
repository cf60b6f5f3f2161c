// dmsctl serve: runs the service and its HTTP API in this process until SIGTERM or SIGINT.
#include <fmt/core.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands/commands.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"
#include "dmscore/store.hpp"
#include "log_buffer.hpp"

namespace dmsctl {

namespace {

using dmscore::Code;
using dmscore::Status;

struct ServeArgs {
  std::string listen = "127.0.0.1:8443";
  std::string data_dir;
  std::string tls_cert, tls_key;
  int max_running_workflows = 8;
  int max_clusters = 256;
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
  std::string host_nqn, host_nqn_file = "/etc/nvme/hostnqn";
  std::string nvme_cli = "nvme", sysfs_root = "/sys", dev_root = "/dev";
  int nvme_device_timeout_ms = 30000;
  bool device_direct_io = false;
  std::string store, store_key_file, instance_address;
  int instance_lease_ms = 10000, instance_heartbeat_ms = 2000;
};

// True when a PostgreSQL URL carries a password (user:password@ or password=).
bool url_has_password(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme != std::string::npos) {
    const auto at = url.find('@', scheme + 3);
    const auto colon = url.find(':', scheme + 3);
    const auto slash = url.find('/', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at &&
        (slash == std::string::npos || at < slash))
      return true;
  }
  return url.find("password=") != std::string::npos;
}

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
  LogBuffer log_lines(std::chrono::milliseconds(100));

  dmscore::Options o;
  o.data_dir = a.data_dir;
  if (!a.store.empty()) {
    if (!dmscore::is_postgres_url(a.store)) {
      fmt::print(stderr, "error: --store: must be a postgresql:// URL\n");
      return kExitUsage;
    }
    // A command line is visible to every user of the machine (ps, /proc).
    if (url_has_password(a.store)) {
      fmt::print(stderr,
                 "error: --store: the URL carries a password, which every user could read in "
                 "the process list; put it in a passfile (PGPASSFILE, mode 0600) instead\n");
      return kExitUsage;
    }
    if (a.store_key_file.empty()) {
      fmt::print(stderr, "error: --store-key-file: required with --store\n");
      return kExitUsage;
    }
  } else if (!a.store_key_file.empty()) {
    fmt::print(stderr, "error: --store-key-file: only with --store\n");
    return kExitUsage;
  }
  o.store = a.store;
  o.store_key_file = a.store_key_file;
  o.instance_address = a.instance_address.empty() ? a.listen : a.instance_address;
  o.instance_lease = std::chrono::milliseconds(a.instance_lease_ms);
  o.instance_heartbeat = std::chrono::milliseconds(a.instance_heartbeat_ms);
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
  o.max_clusters = a.max_clusters;
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
  o.host_nqn = a.host_nqn;
  o.host_nqn_file = a.host_nqn_file;
  o.nvme_cli = a.nvme_cli;
  o.sysfs_root = a.sysfs_root;
  o.dev_root = a.dev_root;
  o.nvme_device_timeout = std::chrono::milliseconds(a.nvme_device_timeout_ms);
  o.device_direct_io = a.device_direct_io;
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
  log_lines.add(fmt::format(
      "dmsctl serve: listening on {}://{}:{} (data dir {}{})", (*server)->tls() ? "https" : "http",
      so.address.find(':') != std::string::npos ? "[" + so.address + "]" : so.address,
      (*server)->port(), a.data_dir,
      (*svc)->instance_id().empty()
          ? std::string()
          : fmt::format(", instance {} on a shared store", (*svc)->instance_id())));
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

}  // namespace

void add_serve_commands(CLI::App& app, Context& ctx) {
  auto& sa = ctx.hold<ServeArgs>();
  auto* serve_cmd =
      ctx.leaf(&app, "serve", "Run the service and its HTTP API until SIGTERM or SIGINT",
               "  dmsctl serve --listen 127.0.0.1:8443 --data-dir /var/lib/dms\n"
               "  dmsctl serve --listen 0.0.0.0:8443 --data-dir /var/lib/dms "
               "--tls-cert c.pem --tls-key k.pem",
               [&sa] { return serve(sa); });
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
  serve_cmd
      ->add_option("--max-clusters", sa.max_clusters,
                   "clusters that may be attached at once (each holds open files)")
      ->check(CLI::Range(1, 4096))
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
  serve_cmd
      ->add_option("--copy-rate-limit", sa.copy_rate_limit,
                   "bytes per second each copy may move at most (0: unlimited)")
      ->check(non_negative());
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
  serve_cmd->add_option("--host-nqn", sa.host_nqn,
                        "this host's NVMe NQN for Lightbits volume ACLs (default: the first "
                        "line of --host-nqn-file)");
  serve_cmd->add_option("--host-nqn-file", sa.host_nqn_file, "file holding this host's NQN")
      ->capture_default_str();
  serve_cmd->add_option("--nvme-cli", sa.nvme_cli, "nvme-cli program for NVMe/TCP connections")
      ->capture_default_str();
  serve_cmd->add_option("--sysfs-root", sa.sysfs_root, "where the kernel's sysfs is mounted")
      ->capture_default_str();
  serve_cmd->add_option("--dev-root", sa.dev_root, "where device nodes are")->capture_default_str();
  serve_cmd
      ->add_option("--nvme-device-timeout-ms", sa.nvme_device_timeout_ms,
                   "milliseconds to wait for a volume's namespace to appear once connected")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  serve_cmd->add_flag("--device-direct-io", sa.device_direct_io,
                      "write Lightbits volumes' devices with O_DIRECT instead of buffered");
  serve_cmd->add_option("--cg-pre-hook", sa.cg_pre_hook,
                        "executable run before a group snapshot holds writes (quiesce)");
  serve_cmd->add_option("--cg-post-hook", sa.cg_post_hook,
                        "executable run after a group snapshot releases writes (thaw)");
  serve_cmd
      ->add_option("--cg-hook-timeout-ms", sa.cg_hook_timeout_ms,
                   "milliseconds a hook may run before it is killed")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();

  serve_cmd->add_option("--store", sa.store,
                        "a PostgreSQL URL shared with other instances (default: SQLite in the "
                        "data directory); its password belongs in PGPASSFILE");
  serve_cmd->add_option("--store-key-file", sa.store_key_file,
                        "file (mode 0600, 32+ bytes, the same on every instance) sealing the "
                        "service's keys in the shared store");
  serve_cmd->add_option("--instance-address", sa.instance_address,
                        "this instance's address as 'list instances' shows it (default: --listen)");
  serve_cmd
      ->add_option("--instance-lease-ms", sa.instance_lease_ms,
                   "how long a silent instance keeps its workflows before another takes them")
      ->check(CLI::Range(30, 3600000))
      ->capture_default_str();
  serve_cmd
      ->add_option("--instance-heartbeat-ms", sa.instance_heartbeat_ms,
                   "how often an instance renews its lease")
      ->check(CLI::Range(10, 1200000))
      ->capture_default_str();

  // It waits for SIGTERM and SIGINT itself.
  ctx.takes_own_signals(serve_cmd);
}

}  // namespace dmsctl
