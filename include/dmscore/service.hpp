#pragma once
// Service: what an embedder opens. It owns the durable store, the workflow engine, the cluster
// registry and the cluster drivers, and offers every operation of the REST contract as a
// function. The HTTP façade and dmsctl are thin layers over it.
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
#include "dmscore/cluster.hpp"
#include "dmscore/full_copy.hpp"
#include "dmscore/group.hpp"
#include "dmscore/identity.hpp"
#include "dmscore/options.hpp"
#include "dmscore/result.hpp"
#include "dmscore/workflow.hpp"

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

  // Clusters. attach/refresh answer a workflow id; the attach workflow's result is
  // {"clusterId": "<uuid>"}. detach: NOT_FOUND; FAILED_PRECONDITION while a non-terminal
  // workflow uses the cluster. Data on the cluster is never touched.
  Result<std::string> attach_cluster(const AttachClusterRequest& request);
  Result<std::vector<Cluster>> list_clusters() const;
  Result<Cluster> get_cluster(const std::string& cluster_id) const;
  Result<std::string> refresh_clusters(const std::optional<std::string>& cluster_id = {});
  Status detach_cluster(const std::string& cluster_id);
  // Rebuilds the metadata of a local cluster in NeedsRepair from its data files (see
  // LocalBackend::repair); the REPAIR_CLUSTER workflow's result reports what it found:
  // {"volumes", "snapshots", "setAside": [...], "missing": [...], "previousMetadata"}.
  // NOT_FOUND; FAILED_PRECONDITION for a Lightbits cluster or one that needs no repair.
  Result<std::string> repair_cluster(const std::string& cluster_id);

  // Storage objects on an attached cluster (NOT_FOUND for an unknown cluster).
  Result<VolumePage> list_volumes(const std::string& cluster_id, const std::string& project,
                                  const PageRequest& page) const;
  Result<Volume> get_volume(const std::string& cluster_id, const std::string& project,
                            const std::string& volume_id) const;
  Result<Volume> create_volume(const std::string& cluster_id, const CreateVolumeRequest& request);
  // FAILED_PRECONDITION while a workflow uses the volume (as source or destination).
  Status delete_volume(const std::string& cluster_id, const std::string& project,
                       const std::string& volume_id);
  Result<SnapshotPage> list_snapshots(const std::string& cluster_id, const std::string& project,
                                      const PageRequest& page) const;
  Result<Snapshot> get_snapshot(const std::string& cluster_id, const std::string& project,
                                const std::string& snapshot_id) const;
  Result<Snapshot> create_snapshot(const std::string& cluster_id,
                                   const CreateSnapshotRequest& request);
  // FAILED_PRECONDITION while a workflow reads the snapshot.
  Status delete_snapshot(const std::string& cluster_id, const std::string& project,
                         const std::string& snapshot_id);

  // Thick clones. Validated up front (INVALID_ARGUMENT naming the field, NOT_FOUND for an
  // unknown cluster or snapshot, ALREADY_EXISTS for a taken name), then admitted
  // (RESOURCE_EXHAUSTED at maxRunningWorkflows, nothing recorded) and durably recorded before
  // the id is returned.
  Result<std::string> thick_clone_volume(const ThickCloneRequest& request);
  Result<std::string> thick_clone_snapshot(const ThickCloneRequest& request);

  // Writes `data` at `offset` of an Available volume: the service's data path, which group
  // snapshots fence (see group.hpp). With `durable`, the data is fsynced before it returns.
  // INVALID_ARGUMENT for a write past the end or over 64 MiB; UNAVAILABLE when a group
  // snapshot holds writes for over twice group_snapshot_fence_timeout.
  Status write_volume(const std::string& cluster_id, const std::string& project,
                      const std::string& volume_id, std::uint64_t offset, std::string_view data,
                      bool durable = false);

  // Consistency groups (group.hpp). create: INVALID_ARGUMENT naming the field; NOT_FOUND for
  // an unknown cluster or volume; FAILED_PRECONDITION for a volume that is not Available or
  // already in a group; ALREADY_EXISTS for a taken name. The group is available at once, or,
  // made from a group snapshot, `creating` with its workflow id until its volumes are made.
  Result<ConsistencyGroup> create_consistency_group(const CreateGroupRequest& request);
  Result<GroupPage> list_consistency_groups(const PageRequest& page) const;
  Result<ConsistencyGroup> get_consistency_group(const std::string& id) const;
  // Members change only while the group is available and no group snapshot is being taken.
  Result<ConsistencyGroup> update_consistency_group(const std::string& id,
                                                    const UpdateGroupRequest& request);
  // Never deletes the volumes. FAILED_PRECONDITION unless available or error, or while the
  // group has group snapshots.
  Status delete_consistency_group(const std::string& id);
  // Admin actions, recorded in the audit log with `actor`.
  Status reset_consistency_group_status(const std::string& id, GroupStatus status,
                                        const std::string& actor);
  Status force_delete_consistency_group(const std::string& id, const std::string& actor);

  // Group snapshots. create answers the group snapshot in `creating` with its workflow id
  // (CREATE_CG_SNAPSHOT); the group and every member must be available. The workflow takes
  // every member snapshot behind the write fence, all or nothing.
  Result<CgSnapshot> create_cg_snapshot(const CreateCgSnapshotRequest& request);
  // `consistency_group_id` empty: every group's.
  Result<CgSnapshotPage> list_cg_snapshots(const PageRequest& page,
                                           const std::string& consistency_group_id = "") const;
  Result<CgSnapshot> get_cg_snapshot(const std::string& id) const;
  // Deletes the member snapshots, then the record. FAILED_PRECONDITION unless available, error
  // or error_deleting; a member that cannot be deleted leaves it error_deleting.
  Status delete_cg_snapshot(const std::string& id);

  // Group full copies (full_copy.hpp). create: INVALID_ARGUMENT naming the field; NOT_FOUND
  // for an unknown group or cluster; FAILED_PRECONDITION unless the group and its members are
  // available; ALREADY_EXISTS for a taken set name or copy volume name; RESOURCE_EXHAUSTED
  // (nothing recorded) when the `count` workflows do not all fit under maxRunningWorkflows.
  // Answers the copy set and one workflow per copy (CREATE_FULL_COPY).
  Result<CopySetWork> create_full_copies(const CreateFullCopiesRequest& request);
  Result<CopySetPage> list_copy_sets(const std::string& consistency_group_id,
                                     const PageRequest& page) const;
  Result<CopySet> get_copy_set(const std::string& consistency_group_id,
                               const std::string& copy_set_id) const;
  // activate, resynchronize (one workflow per copy, sharing one new group snapshot), restore
  // (one workflow; FAILED_PRECONDITION while any workflow uses the group or its volumes) and
  // detach (at once, no workflow). FAILED_PRECONDITION naming the copy in the wrong state.
  Result<CopySetWork> copy_set_action(const std::string& consistency_group_id,
                                      const std::string& copy_set_id,
                                      const CopySetActionRequest& request);
  // A new group, `creating` with its THICK_CLONE_CONSISTENCY_GROUP workflow id, whose volumes
  // are thick clones of the group snapshot's members; `available` when they are made.
  Result<ConsistencyGroup> thick_clone_consistency_group(const ThickCloneGroupRequest& request);

  // Monitoring counters; one store read.
  Result<ServiceStats> stats() const;

  // Workflows (see WorkflowEngine).
  Result<Workflow> get_workflow(const std::string& id) const;
  Result<WorkflowPage> list_workflows(const ListWorkflowsRequest& request) const;
  Status cancel_workflow(const std::string& id);
  Result<Workflow> wait_workflow(const std::string& id, std::chrono::milliseconds timeout) const;

  // The library's own state; opaque outside it.
  struct Impl;

 private:
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore
