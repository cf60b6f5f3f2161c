#include "dmscore/options.hpp"

#include "backends/nvme_host.hpp"
#include "dmscore/store.hpp"

namespace dmscore {

Status validate(const Options& o) {
  if (o.data_dir.empty()) return Status::InvalidArgument("data_dir: must not be empty");
  if (!o.store.empty()) {
    if (!is_postgres_url(o.store))
      return Status::InvalidArgument("store: must be a postgresql:// URL (or empty for SQLite)");
    if (o.store.size() > 4096) return Status::InvalidArgument("store: over 4096 characters");
    if (o.store_key_file.empty())
      return Status::InvalidArgument("store_key_file: required with a PostgreSQL store");
    if (o.instance_heartbeat.count() < 10)
      return Status::InvalidArgument("instance_heartbeat: must be at least 10 ms");
    if (o.instance_lease < 3 * o.instance_heartbeat)
      return Status::InvalidArgument("instance_lease: must be at least 3 heartbeats");
  } else if (!o.store_key_file.empty()) {
    return Status::InvalidArgument("store_key_file: only with a PostgreSQL store");
  }
  if (o.max_running_workflows < 1 || o.max_running_workflows > 10000)
    return Status::InvalidArgument("max_running_workflows: must be 1..10000");
  if (o.workflow_threads < 1 || o.workflow_threads > 256)
    return Status::InvalidArgument("workflow_threads: must be 1..256");
  if (o.copy_threads < 1 || o.copy_threads > 64)
    return Status::InvalidArgument("copy_threads: must be 1..64");
  if (o.copy_chunk_bytes % 4096 != 0 || o.copy_chunk_bytes < (64u << 10) ||
      o.copy_chunk_bytes > (256u << 20))
    return Status::InvalidArgument(
        "copy_chunk_bytes: must be a multiple of 4096 in 64 KiB..256 MiB");
  if (o.progress_persist_interval.count() < 0)
    return Status::InvalidArgument("progress_persist_interval: must not be negative");
  if (o.copy_checkpoint_interval.count() < 0 || o.copy_checkpoint_interval > std::chrono::hours(1))
    return Status::InvalidArgument("copy_checkpoint_interval: must be 0..1 h");
  if (!o.host_nqn.empty()) {
    if (auto n = detail::resolve_host_nqn(o.host_nqn, ""); !n.ok()) return n.status();
  }
  if (o.nvme_cli.empty()) return Status::InvalidArgument("nvme_cli: must not be empty");
  if (o.nvme_device_timeout.count() <= 0 || o.nvme_device_timeout > std::chrono::hours(1))
    return Status::InvalidArgument("nvme_device_timeout: must be 1 ms..1 h");
  if (o.copy_path_retries < 0 || o.copy_path_retries > 100)
    return Status::InvalidArgument("copy_path_retries: must be 0..100");
  if (o.store_busy_timeout.count() < 0)
    return Status::InvalidArgument("store_busy_timeout: must not be negative");
  if (o.health_check_interval.count() < 0)
    return Status::InvalidArgument("health_check_interval: must not be negative");
  if (o.rsa_bits < 2048 || o.rsa_bits > 8192)
    return Status::InvalidArgument("rsa_bits: must be 2048..8192");
  if (o.scrypt_log2_n < 10 || o.scrypt_log2_n > 20)
    return Status::InvalidArgument("scrypt_log2_n: must be 10..20");
  if (o.token_ttl < std::chrono::minutes(1) || o.token_ttl > std::chrono::hours(24 * 30))
    return Status::InvalidArgument("token_ttl: must be 1 min..30 days");
  if (o.cluster_request_timeout.count() <= 0)
    return Status::InvalidArgument("cluster_request_timeout: must be positive");
  if (o.cluster_operation_timeout.count() <= 0)
    return Status::InvalidArgument("cluster_operation_timeout: must be positive");
  if (o.group_snapshot_fence_timeout < std::chrono::milliseconds(1) ||
      o.group_snapshot_fence_timeout > std::chrono::minutes(10))
    return Status::InvalidArgument("group_snapshot_fence_timeout: must be 1 ms..10 min");
  if (o.group_snapshot_hook_timeout < std::chrono::milliseconds(1) ||
      o.group_snapshot_hook_timeout > std::chrono::hours(1))
    return Status::InvalidArgument("group_snapshot_hook_timeout: must be 1 ms..1 h");
  if (!o.group_snapshot_pre_hook.empty() && o.group_snapshot_pre_hook[0] != '/')
    return Status::InvalidArgument("group_snapshot_pre_hook: must be an absolute path");
  if (!o.group_snapshot_post_hook.empty() && o.group_snapshot_post_hook[0] != '/')
    return Status::InvalidArgument("group_snapshot_post_hook: must be an absolute path");
  if (o.password_hash_concurrency < 1 || o.password_hash_concurrency > 64)
    return Status::InvalidArgument("password_hash_concurrency: must be 1..64");
  if (o.password_hash_queue < 0 || o.password_hash_queue > 1024)
    return Status::InvalidArgument("password_hash_queue: must be 0..1024");
  if (o.login_failures_per_source < 1 || o.login_failures_per_source > 10000)
    return Status::InvalidArgument("login_failures_per_source: must be 1..10000");
  if (o.login_failures_per_user < 1 || o.login_failures_per_user > 10000)
    return Status::InvalidArgument("login_failures_per_user: must be 1..10000");
  if (o.cluster_call_deadline < std::chrono::milliseconds(100) ||
      o.cluster_call_deadline > std::chrono::minutes(10))
    return Status::InvalidArgument("cluster_call_deadline: must be 100 ms..10 min");
  if (o.source_agent_timeout < std::chrono::seconds(10) ||
      o.source_agent_timeout > std::chrono::hours(24))
    return Status::InvalidArgument("source_agent_timeout: must be 10 s..1 day");
  if (o.cluster_max_concurrent_calls < 1 || o.cluster_max_concurrent_calls > 256)
    return Status::InvalidArgument("cluster_max_concurrent_calls: must be 1..256");
  if (o.cluster_breaker_cooldown.count() < 0 ||
      o.cluster_breaker_cooldown > std::chrono::minutes(10))
    return Status::InvalidArgument("cluster_breaker_cooldown: must be 0..10 min");
  if (o.store_retry_budget.count() < 0 || o.store_retry_budget > std::chrono::hours(1))
    return Status::InvalidArgument("store_retry_budget: must be 0..1 h");
  if (o.max_clusters < 1 || o.max_clusters > 4096)
    return Status::InvalidArgument("max_clusters: must be 1..4096");
  for (const auto& root : o.local_cluster_roots) {
    if (root.empty() || root[0] != '/')
      return Status::InvalidArgument("local_cluster_roots: each entry must be an absolute path");
  }
  return Status::Ok();
}

}  // namespace dmscore
