#pragma once
// Options: how a Service is opened. A plain struct; every field states its default.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/status.hpp"

namespace dmscore {

struct Options {
  // Directory that holds the service's durable state (dms.db, identity/, ...). Created with
  // mode 0700 when absent.
  // REQUIRES: not empty.
  std::string data_dir;

  // Scale-out: a PostgreSQL URL ("postgresql://..." in libpq's syntax; a password belongs in
  // libpq's PGPASSFILE, not in the URL) whose database several instances share. Empty (the
  // default): the embedded SQLite store <data_dir>/dms.db, this instance alone. With a URL,
  // data_dir keeps what is this instance's own (its id, logs, the generated admin password),
  // the workflows run where leases place them (EngineOptions::instance_id), and the service's
  // key pairs live in the database, sealed with store_key_file.
  std::string store;
  // Scale-out: the file whose bytes seal the key pairs in the database (mode 0600, 32..4096
  // bytes, the same file on every instance). REQUIRES: set when `store` is a URL.
  std::string store_key_file;
  // Scale-out: this instance's address as `dmsctl list instances` shows it. Default: empty.
  std::string instance_address;
  // Scale-out: how long an instance's lease lasts without a heartbeat (another instance takes
  // its workflows over once it ran out), and how often it is renewed. Defaults: 10 s and 2 s.
  // REQUIRES: lease >= 3 x heartbeat, heartbeat >= 10 ms.
  std::chrono::milliseconds instance_lease{10000};
  std::chrono::milliseconds instance_heartbeat{2000};

  // Non-terminal (PENDING or RUNNING) workflows allowed at once; a submission beyond it is
  // refused with RESOURCE_EXHAUSTED and nothing is recorded.
  // Default: 8. REQUIRES: 1..10000.
  int max_running_workflows = 8;

  // Threads that run workflow steps. Workflows beyond this wait in PENDING.
  // Default: 4. REQUIRES: 1..256.
  int workflow_threads = 4;

  // Threads the copy engine keeps busy per copy (requests in flight).
  // Default: 4. REQUIRES: 1..64.
  int copy_threads = 4;

  // Size of one copy request. Also the granularity of cancellation and zero detection.
  // Default: 4 MiB. REQUIRES: a multiple of 4096 in 64 KiB..256 MiB.
  std::uint64_t copy_chunk_bytes = 4u << 20;

  // Upper bound on the bytes per second one copy reads from its source, to protect a
  // cluster's QoS. 0 means unlimited.
  // Default: 0.
  std::uint64_t copy_rate_limit_bytes_per_sec = 0;

  // Minimum time between two durable progress writes of one workflow. Progress seen through
  // get() and list() is always current; only its persistence is rate-limited.
  // Default: 500 ms.
  std::chrono::milliseconds progress_persist_interval{500};

  // Minimum time between two checkpoints of a copy. Each checkpoint fsyncs the destination
  // first (a recorded offset always has its data on disk), so this trades the copy work a
  // crash can lose against the fsyncs a copy pays. Default: 2 s.
  std::chrono::milliseconds copy_checkpoint_interval{2000};

  // How many times a copy opens a failed data path again (a device that went away, an I/O
  // error, a cluster that stopped answering: UNAVAILABLE) and resumes from its last checkpoint
  // before the workflow fails. Default: 3. REQUIRES: 0..100.
  int copy_path_retries = 3;

  // How long a store operation waits for a lock held by another connection.
  // Default: 5 s.
  std::chrono::milliseconds store_busy_timeout{5000};

  // Password of the `admin` user made when the store holds no user yet. The library reads no
  // environment variable (dmsctl serve passes $DMS_ADMIN_PASSWORD here).
  // Default: empty, meaning a random password written to <data_dir>/admin-password (mode 0600)
  // and its path logged once.
  std::string admin_password;

  // Size of the service's RSA keys (cluster credentials and login tokens).
  // Default: 3072. REQUIRES: 2048..8192; below 3072 only for tests.
  int rsa_bits = 3072;

  // scrypt cost (log2 N, r = 8, p = 1) of new password hashes.
  // Default: 17. REQUIRES: 10..20; below 17 only for tests.
  int scrypt_log2_n = 17;

  // Lifetime of login tokens. Default: 1 hour. REQUIRES: 1 min..30 days.
  std::chrono::seconds token_ttl{3600};

  // Password hashes (login, user changes) computed at once, and logins allowed to wait for one;
  // a login beyond both is refused with RESOURCE_EXHAUSTED at once (Retry-After), so a spray
  // of logins cannot take the CPU from everything else.
  // Defaults: 2, 8. REQUIRES: 1..64, 0..1024.
  int password_hash_concurrency = 2;
  int password_hash_queue = 8;
  // Failed logins allowed within 5 minutes per source address (whatever the user names) and
  // per user (whatever the source); beyond them login answers RESOURCE_EXHAUSTED without
  // hashing until the oldest failure leaves the window.
  // Defaults: 20, 5. REQUIRES: 1..10000.
  int login_failures_per_source = 20;
  int login_failures_per_user = 5;

  // How often every attached cluster is probed and its connection status updated (changes are
  // logged). 0 turns the checks off. Default: 30 s.
  std::chrono::milliseconds health_check_interval{30000};

  // Lightbits clusters: the PEM file of CAs trusted for their API certificates (empty: the
  // system's store), or no verification at all for self-signed lab clusters.
  // Defaults: "", false.
  std::string cluster_ca_file;
  bool cluster_tls_insecure = false;
  // Bound on one call to a cluster, and on waiting for a cluster's object to settle (or for a
  // 409/412/429/503 to clear). Defaults: 30 s, 100 s.
  std::chrono::milliseconds cluster_request_timeout{30000};
  std::chrono::milliseconds cluster_operation_timeout{100000};
  // Endpoints a Lightbits cluster reports with a scheme other than https are ignored, so the
  // service's token never travels in clear; true uses them (labs only). Default: false.
  bool cluster_allow_plain_http = false;

  // The data path to Lightbits clusters: NVMe/TCP from this host (docs/design.md). This host's
  // NQN, as the clusters' volume ACLs name it; empty: the first line of `host_nqn_file`.
  // REQUIRES: empty or an NQN ("nqn.<yyyy-mm>.<domain>:...", at most 223 characters).
  std::string host_nqn;
  std::string host_nqn_file = "/etc/nvme/hostnqn";
  // nvme-cli (looked up in the standard PATH when it has no slash), and where the kernel shows
  // NVMe controllers and namespaces (sysfs) and device nodes. Tests point them at a model.
  std::string nvme_cli = "nvme";
  std::string sysfs_root = "/sys";
  std::string dev_root = "/dev";
  // Bound on waiting for a volume's namespace to appear once connected. Default: 30 s.
  std::chrono::milliseconds nvme_device_timeout{30000};
  // Writes to a device go O_DIRECT (nothing of the copy in the page cache) instead of through
  // the page cache with a flush at each checkpoint. Off by default: buffered writes measured
  // faster (docs/benchmarks.md). Default: false.
  bool device_direct_io = false;

  // Isolation of the callers of one cluster from the others. A call the service makes to a
  // cluster on behalf of a caller (a request, not a workflow step) has one deadline for all its
  // work, retries included; at most `cluster_max_concurrent_calls` such calls run per cluster
  // and more are refused at once with UNAVAILABLE; after a call timed out, calls to that
  // cluster are refused at once for `cluster_breaker_cooldown`, then one is let through to try.
  // Defaults: 10 s, 4, 5 s. REQUIRES: deadline 100 ms..10 min, calls 1..256, cooldown 0..10 min.
  std::chrono::milliseconds cluster_call_deadline{10000};
  int cluster_max_concurrent_calls = 4;
  std::chrono::milliseconds cluster_breaker_cooldown{5000};

  // A source's agent counts as connected while it has reported or polled within this time
  // (sources.hpp). Default: 5 min. REQUIRES: 10 s..1 day.
  std::chrono::seconds source_agent_timeout{300};

  // How many clusters may be attached at once. Each attached cluster holds open files (a local
  // cluster its lock file and its database: about four descriptors) and connections, so the
  // bound keeps attach requests from exhausting the process's descriptors. An attach beyond it
  // is refused with FAILED_PRECONDITION naming the limit. Default: 256. REQUIRES: 1..4096.
  int max_clusters = 256;

  // Directories under which a local (file://) cluster may be attached. An API caller with the
  // admin role can otherwise make the service create a cluster directory anywhere it may write.
  // Default: empty, meaning anywhere. REQUIRES: absolute paths.
  std::vector<std::string> local_cluster_roots;
  // A group (name or number) allowed to read local clusters' data: volume files 0640,
  // snapshots 0440, cluster directories 0750, owned by that group. Default: "", meaning none
  // (0600, 0400, 0700).
  std::string local_cluster_file_group;

  // How long a workflow retries a store write that fails (a full or failing disk) before it
  // gives up: it then compensates (freeing its partial destination) and ends FAILED with
  // RESOURCE_EXHAUSTED. Retries wait with backoff through `env`.
  // Default: 30 s. REQUIRES: 0..1 h.
  std::chrono::milliseconds store_retry_budget{30000};

  // Group snapshots. While the member snapshots are taken, writes through
  // Service::write_volume to every member wait: the write fence. Raising it waits for writes in
  // progress, at most `group_snapshot_fence_timeout` (then the group snapshot fails and nothing
  // is left behind). Turning the fence off is only for showing what it prevents.
  // Defaults: true, 30 s. REQUIRES: timeout 1 ms..10 min.
  bool group_snapshot_write_fence = true;
  std::chrono::milliseconds group_snapshot_fence_timeout{30000};
  // Quiesce hooks: executables run before the fence is raised and after it is lowered, for
  // applications that write by other means (freeze and thaw them). Their environment is
  // PATH, LC_ALL=C, DMS_HOOK_PHASE (pre|post), DMS_CG_ID, DMS_CG_NAME, DMS_CG_SNAPSHOT_ID,
  // DMS_CLUSTER_ID, DMS_PROJECT, DMS_VOLUME_IDS (space-separated) and, for post,
  // DMS_CG_SNAPSHOT_RESULT (ok|error), and nothing else of the service's; they inherit no
  // descriptor but stdin, stdout and stderr, all /dev/null. A pre hook that fails (non-zero exit,
  // signal, timeout) aborts the group snapshot before anything is taken; the post hook runs
  // whenever the pre hook succeeded, and its failure is logged. Each is killed (its whole process
  // group) after the timeout. Defaults: "" (none), 30 s. REQUIRES: absolute paths; timeout 1 ms..1
  // h.
  std::string group_snapshot_pre_hook;
  std::string group_snapshot_post_hook;
  std::chrono::milliseconds group_snapshot_hook_timeout{30000};

  // Receives the service's log lines, which never hold a password or a token.
  // Default: nullptr, meaning standard error.
  std::function<void(std::string_view)> log;

  // Clocks and randomness.
  // Default: nullptr, meaning Env::Default().
  std::shared_ptr<Env> env;
};

// Checks every field against its REQUIRES clause. INVALID_ARGUMENT names the first field that
// is out of range.
Status validate(const Options& options);

}  // namespace dmscore
