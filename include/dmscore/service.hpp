#pragma once
// Service: what an embedder opens. It owns the durable store, the workflow engine, the cluster
// registry and the cluster drivers, and hands out one interface per concept (clusters,
// volumes and snapshots, clones, groups, copy sets, workflows, sources, identity and users), which
// together offer every operation of the REST contract as a function. The HTTP façade and
// dmsctl are thin layers over them.
//
// Opening recovers: non-terminal workflows resume from their checkpoints (see workflow.hpp).
// Only one process may open a data directory at a time.
//
// Safe for concurrent use. Long operations return a workflow id at once; they run on the
// engine's threads.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/auth.hpp"
#include "dmscore/backend.hpp"
#include "dmscore/clone.hpp"
#include "dmscore/clones.hpp"
#include "dmscore/cluster.hpp"
#include "dmscore/clusters.hpp"
#include "dmscore/copy_sets.hpp"
#include "dmscore/full_copy.hpp"
#include "dmscore/group.hpp"
#include "dmscore/groups.hpp"
#include "dmscore/identity.hpp"
#include "dmscore/ids.hpp"
#include "dmscore/migrations.hpp"
#include "dmscore/options.hpp"
#include "dmscore/result.hpp"
#include "dmscore/sources.hpp"
#include "dmscore/volumes.hpp"
#include "dmscore/workflow.hpp"
#include "dmscore/workflows.hpp"

namespace dmscore {

// Workflow type names, as the contract spells them.
inline constexpr const char* kAttachCluster = "ATTACH_CLUSTER";
inline constexpr const char* kRefreshClusters = "REFRESH_CLUSTERS";
inline constexpr const char* kThickCloneVolume = "THICK_CLONE_VOLUME";
inline constexpr const char* kThickCloneSnapshot = "THICK_CLONE_SNAPSHOT";
inline constexpr const char* kCreateCgSnapshot = "CREATE_CG_SNAPSHOT";
inline constexpr const char* kCreateConsistencyGroup = "CREATE_CONSISTENCY_GROUP";
inline constexpr const char* kCreateFullCopy = "CREATE_FULL_COPY";
inline constexpr const char* kActivateFullCopy = "ACTIVATE_FULL_COPY";
inline constexpr const char* kResynchronizeFullCopy = "RESYNCHRONIZE_FULL_COPY";
inline constexpr const char* kRestoreFullCopy = "RESTORE_FULL_COPY";
inline constexpr const char* kThickCloneConsistencyGroup = "THICK_CLONE_CONSISTENCY_GROUP";
inline constexpr const char* kRepairCluster = "REPAIR_CLUSTER";
inline constexpr const char* kManageVolume = "MANAGE_VOLUME";
inline constexpr const char* kManageSnapshot = "MANAGE_SNAPSHOT";

struct WorkflowCount {
  std::string type;
  WorkflowState state = WorkflowState::kPending;
  std::int64_t count = 0;
};

// How one cluster's callers fared at its gate (see Options::cluster_max_concurrent_calls).
struct ClusterCallStats {
  std::string cluster_id;
  // Callers refused at once: its calls in flight were at the limit / it had just timed out.
  std::uint64_t refused_busy = 0;
  std::uint64_t refused_open = 0;
  // Calls (callers' and workflows') that ran out of time.
  std::uint64_t timeouts = 0;
  // Calls made on an HTTP I/O thread: always 0 unless a route is misfiled (a bug).
  std::uint64_t io_thread_calls = 0;
  // Callers' calls running now; whether callers are being refused now.
  int in_flight = 0;
  bool refusing = false;
};

// Counters for monitoring (the HTTP façade's /metrics).
struct ServiceStats {
  // Every (type, state) pair with at least one workflow.
  std::vector<WorkflowCount> workflows;
  // Data bytes written into destinations by thick clones since the service opened.
  std::uint64_t copy_bytes_total = 0;
  // Bytes read back and compared by verifyClone since the service opened.
  std::uint64_t verify_bytes_total = 0;
  // Per local cluster (by id): files moved into its lost+found/ since the service opened.
  std::vector<std::pair<std::string, std::uint64_t>> set_aside_files;
  // Per attached cluster.
  std::vector<ClusterCallStats> cluster_calls;
  // This instance's id (scale-out; empty on the embedded store) and its lease machinery.
  std::string instance_id;
  LeaseStats lease;
  // Workflows this instance runs or has parked now.
  int running_here = 0;
};

class Service {
 public:
  // Creates `options.data_dir` (mode 0700) when absent, opens its store and starts recovery.
  // INVALID_ARGUMENT for bad options; UNAVAILABLE when another process has the directory open;
  // FAILED_PRECONDITION for a store this release cannot open (see Store::open).
  static Result<std::unique_ptr<Service>> open(Options options);

  // Stops the workflows (they resume at the next open) and closes everything.
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  const Options& options() const;
  // True once the store is open and recovery is done.
  bool ready() const;

  // What GET /api/v1/service-credentials answers: {pubKeyId, pubKey}.
  ServiceCredentials service_credentials() const;
  // The service's keys, including rotation.
  Identity& identity();
  // Users, login and token verification.
  Auth& auth();
  // Signs the service's calls to storage clusters.
  ClusterTokenSigner& cluster_tokens();

  // The per-concept interfaces; each header states every method's contract. They live as long
  // as the Service.
  Clusters& clusters() { return clusters_; }
  Volumes& volumes() { return volumes_; }
  Clones& clones() { return clones_; }
  ConsistencyGroups& groups() { return groups_; }
  CopySets& copy_sets() { return copy_sets_; }
  Workflows& workflows() { return workflows_; }
  Sources& sources() { return sources_; }
  Migrations& migrations() { return migrations_; }
  const Clusters& clusters() const { return clusters_; }
  const Volumes& volumes() const { return volumes_; }
  const ConsistencyGroups& groups() const { return groups_; }
  const CopySets& copy_sets() const { return copy_sets_; }
  const Workflows& workflows() const { return workflows_; }
  const Sources& sources() const { return sources_; }
  const Migrations& migrations() const { return migrations_; }

  // Monitoring counters; one store read.
  Result<ServiceStats> stats() const;

  // Scale-out: this instance's id ("" on the embedded SQLite store), and every instance
  // sharing the store with its lease (empty on SQLite).
  const std::string& instance_id() const;
  Result<std::vector<InstanceInfo>> instances() const;

  // The library's own state; opaque outside it.
  using Impl = detail::ServiceImpl;

 private:
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  Clusters clusters_;
  Volumes volumes_;
  Clones clones_;
  ConsistencyGroups groups_;
  CopySets copy_sets_;
  Workflows workflows_;
  Sources sources_;
  Migrations migrations_;
};

}  // namespace dmscore
