#pragma once
// Service's state, shared by the files that implement it: service.cpp (open, close, workflows,
// stats), registry/clusters.cpp (the cluster registry and health checks), service/volumes.cpp
// (volumes and snapshots) and the workflow files of clusters and thick clones.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/call_scope.hpp"
#include "base/util.hpp"
#include "catalog/cluster_catalog.hpp"
#include "catalog/copy_set_catalog.hpp"
#include "copy/file_io.hpp"
#include "dmscore/local_backend.hpp"
#include "dmscore/service.hpp"
#include "migrations/migration_impl.hpp"
#include "registry/cluster_gate.hpp"
#include "service/full_copies.hpp"
#include "service/groups.hpp"
#include "store/store_cache.hpp"
#include "workflows/volume_copy.hpp"

namespace dmscore {

// "https://host:port" for a Lightbits endpoint given as host[:port] or https://host[:port];
// INVALID_ARGUMENT naming apiEndpoint otherwise (registry/clusters.cpp).
Result<std::string> lightbits_endpoint(const std::string& endpoint);

namespace detail {
// A workflow id the engine answered, as the public API types it.
inline Result<WorkflowId> workflow_id(Result<std::string> id) {
  if (!id.ok()) return id.status();
  return WorkflowId(std::move(id).value());
}
}  // namespace detail

struct detail::ServiceImpl {
  using Impl = ServiceImpl;  // Service::Impl, as the code inside it says
  Options options;
  std::shared_ptr<Env> env;
  detail::Fd dir_lock;  // <data_dir>/.lock, held while open
  std::unique_ptr<Store> store;
  // The service's id (service_facts), marked on what it manages on Lightbits clusters.
  std::string service_id;
  // Scale-out: this instance's id, kept in data_dir/instance-id; empty on SQLite.
  std::string instance_id;
  // Scale-out: clusters that were not in the store at the last sync_clusters (their drivers are
  // closed when they are still not at the next: attached here meanwhile, or detached elsewhere).
  std::set<std::string> vanished_once;
  std::unique_ptr<Identity> identity;
  std::unique_ptr<Auth> auth;
  std::unique_ptr<ClusterTokenSigner> cluster_tokens;
  std::unique_ptr<WorkflowEngine> engine;

  // Held shared by operations that need an attached cluster to stay attached (submissions,
  // object deletes), exclusively by attach and detach.
  mutable std::shared_mutex registry_mu;
  std::map<std::string, std::shared_ptr<Backend>> backends;  // by cluster id
  // One gate per cluster, kept across reopenings of its driver (its breaker state with it).
  std::map<std::string, std::shared_ptr<detail::ClusterGate>> gates;
  // The clusters table as list_clusters() answers it; every write to the table goes through it.
  detail::StoreCache<int, std::vector<Cluster>> clusters_cache{1};
  // The gid of Options::local_cluster_file_group, -1 for none.
  int file_gid = -1;

  std::unique_ptr<detail::Groups> groups;
  std::unique_ptr<detail::FullCopies> full_copies;
  // What groups ask of full copies' rows.
  detail::CopySetCatalog copy_set_links;
  // The volume-copy pipeline of thick clones (full copies have their own instance).
  std::unique_ptr<detail::VolumeCopy> pipeline;

  // The live data streams of source migrations (migrations/migrations.cpp).
  std::shared_ptr<detail::MigrationStreams> streams = std::make_shared<detail::MigrationStreams>();

  std::atomic<std::uint64_t> copy_bytes{0};
  std::atomic<std::uint64_t> verify_bytes{0};

  // Health checks: every interval, probe each attached cluster and record (and log) changes
  // of its connection status.
  std::thread health;
  std::mutex health_mu;
  std::condition_variable health_cv;
  bool health_stop = false;

  std::int64_t now_ms() const { return detail::to_millis(env->now()); }

  // The deadline of a caller's backend work (see CallScope), opened by every public method
  // that may reach a cluster.
  detail::CallScope caller() const {
    return detail::CallScope(env->steady_now() + options.cluster_call_deadline);
  }

  // ---- the cluster registry (registry/clusters.cpp) ----

  // The driver of an attached cluster. NOT_FOUND naming `field` when it is not attached,
  // UNAVAILABLE when it is but its driver is not open. REQUIRES: registry_mu held.
  Result<std::shared_ptr<Backend>> backend(const std::string& cluster_id,
                                           const std::string& field = "clusterId") const;
  // backend() under a shared registry_mu.
  Result<std::shared_ptr<Backend>> backend_locked(const std::string& cluster_id) const;
  LocalBackendOptions local_options() const;
  // Opens local cluster `id` at `dir`. REQUIRES: registry_mu held exclusively.
  Status open_local(const std::string& id, const std::string& dir);
  // `b` behind the cluster's gate. REQUIRES: registry_mu held exclusively.
  std::shared_ptr<Backend> gated(const std::string& id, std::shared_ptr<Backend> b);
  // The status a cluster has after `probe` answered: NeedsRepair when its driver says so.
  std::pair<ConnectionStatus, std::string> condition(const std::string& id, const Status& probe);
  // FAILED_PRECONDITION when `dir` is, lies inside or contains the service's data directory or
  // another attached local cluster's directory (compared after resolving symlinks): a cluster's
  // recovery owns everything under its directory, so two must never nest.
  Status check_no_overlap(const std::string& dir) const;
  // FAILED_PRECONDITION when options.max_clusters clusters are attached already.
  Status check_cluster_room() const;
  // `cluster_id`: the attached cluster's UUID, the audience of its tokens; empty while
  // attaching (the tokens then name the endpoint).
  Result<std::shared_ptr<Backend>> make_lightbits(const std::vector<std::string>& endpoints,
                                                  const std::string& label,
                                                  const std::string& cluster_id = "");
  // The attach endpoint first, then the others the cluster reported. A reported endpoint with
  // another scheme than https would carry the service's token in the clear: it is ignored
  // (and logged) unless the operator allowed plain HTTP.
  std::vector<std::string> endpoints_of(const std::string& endpoint,
                                        const std::vector<std::string>& reported) const;
  // REQUIRES: registry_mu held exclusively.
  Status open_lightbits(const std::string& id, const std::string& endpoint);
  Status set_status(const std::string& id, ConnectionStatus s, const std::string& message = "");
  // Every attached cluster's row.
  Result<std::vector<ClusterCatalog::Entry>> cluster_entries() const;
  // At open: every attached cluster's driver, local ones checked for repair.
  Status load_clusters();
  // Scale-out, at every heartbeat: opens the drivers of clusters attached through another
  // instance (a local cluster's folder only when no other instance holds it), closes those
  // detached elsewhere, and says which local clusters exist (`placed`) and which this instance
  // holds (`reached`).
  void sync_clusters(std::vector<std::string>& placed, std::vector<std::string>& reached);
  bool shared() const { return !instance_id.empty(); }
  Status record_cluster(const ClusterInfo& info, ClusterKind kind, const std::string& endpoint,
                        bool adopt);
  Status update_cluster_info(const std::string& id, const ClusterInfo& info);
  // Asks a cluster who it is, opening its driver first when it is not open (a cluster that was
  // unreachable at start). UNAVAILABLE when it does not answer as the attached cluster.
  Result<ClusterInfo> probe(const std::string& id, const std::string& endpoint);
  void health_loop();
  void check_health_once();

  // ---- thick clones (workflows/thick_clone.cpp) ----
  Result<std::string> submit_clone(const ThickCloneRequest& req, bool snapshot);

  // A call that removes or gives back one object of cluster `cid`, on the caller's deadline:
  // `exists` must find it; `resource` is then claimed for `doing` (claimed, not locked: a
  // cluster that hangs on the call holds up nobody else); `is_free` must find nothing holding
  // it; then `act` runs on the cluster's driver.
  template <class R>
  R claimed_call(const std::string& cid, const std::string& resource, const char* doing,
                 const std::function<Status(Backend&)>& exists,
                 const std::function<Status()>& is_free, const std::function<R(Backend&)>& act) {
    auto scope = caller();
    auto b = backend_locked(cid);
    if (!b.ok()) return b.status();
    if (Status s = exists(**b); !s.ok()) return s;
    auto claim = engine->claim({resource}, doing);
    if (!claim.ok()) return claim.status();
    if (Status s = is_free(); !s.ok()) return s;
    return act(**b);
  }
};

namespace detail {

// The workflow types of the cluster registry and of thick clones, registered on open.
Status register_attach_cluster(WorkflowEngine& engine, Service::Impl& service);
Status register_refresh_clusters(WorkflowEngine& engine, Service::Impl& service);
Status register_repair_cluster(WorkflowEngine& engine, Service::Impl& service);
Status register_thick_clones(WorkflowEngine& engine, Service::Impl& service);
Status register_manage_volume(WorkflowEngine& engine, Service::Impl& service);

// The service's record of an adopted volume (service/manageable.cpp) joined to what the
// cluster answered for `ref`: once adopted, its description and metadata added; while the
// cluster has no such volume, the volume as Creating (being adopted) or Failed (the adoption
// failed); a candidate that keeps its id (Lightbits) as the cluster has it until adopted.
Result<Volume> with_record(ServiceImpl& service, const VolumeRef& ref, Result<Volume> found);
// Forgets the record of a volume that was deleted.
Status forget_record(ServiceImpl& service, const std::string& volume_id);
Status forget_snapshot_record(ServiceImpl& service, const std::string& snapshot_id);

}  // namespace detail
}  // namespace dmscore
