#pragma once
// LightbitsBackend: a Lightbits cluster driven over its REST API v2 (LightOS), as a Backend.
//
// - Transport: http::Client over HTTPS, verification on unless `insecure`; rotation across the
//   cluster's API endpoints; a bearer token (the service's RS256 cluster token, its audience
//   this cluster) on every call, never over plain HTTP unless `plain_http`.
// - Volumes and snapshots live under /api/v2/projects/{project}/...; creates and deletes are
//   asynchronous on the cluster, so they poll with backoff until Available (or 404 for a
//   delete) within `operation_timeout`. Deletes send If-Match with the object's ETag and re-read
//   it on 412; 409 "operation in progress", 429 and 503 are retried with backoff within the
//   same deadline.
// - Errors: no answer in time → DEADLINE_EXCEEDED; 400 → INVALID_ARGUMENT, 401 → UNAUTHENTICATED,
// 403 → PERMISSION_DENIED,
//   404 → NOT_FOUND, 409 on create → ALREADY_EXISTS (elsewhere, once retries are spent,
//   ABORTED), 412 after retries → ABORTED, 429/503 after retries and every 5xx → UNAVAILABLE,
//   501 → UNIMPLEMENTED. Every message starts with "cluster <label>: ".
// - Every field of an answer is checked before use; a malformed or oversized answer is
//   UNAVAILABLE naming the cluster and the field, never a crash.
// - Data access (open_*_data, open_volume_sink) is NVMe/TCP from this host: a snapshot is read
//   through a temporary thin volume made from it ("dms-read-<snapshot>-<owner>", this host
//   alone in its ACL, labelled with the owner); a volume by adding this host's NQN to its ACL
//   (ETag-guarded update). The host connects to the cluster's subsystem at its NVMe endpoints
//   (nvme-cli) and opens the namespace's device node found in sysfs by the volume's nsid. All
//   of it is recorded (DataAccess::record) before it is made and undone when the returned
//   object goes; release_data() undoes a record after a crash. The returned objects must not
//   outlive the driver.
//
// - Deadlines: every call ends within `request_timeout`, every operation (retries and polls
//   included) within `operation_timeout`, both within the caller's deadline when the thread
//   serves one (detail::CallScope). A call whose time ran out is DEADLINE_EXCEEDED. Pauses
//   between retries wait through Env, with jitter.
//
// Safe for concurrent use: each call in flight has its own connection (a pool).

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dmscore/backend.hpp"
#include "dmscore/env.hpp"
#include "dmscore/result.hpp"

namespace dmscore {

struct LightbitsOptions {
  // API endpoints, "host:port" or "https://host:port". At least one.
  std::vector<std::string> endpoints;
  // Name used in messages (the endpoint when empty).
  std::string label;
  // PEM file of CAs trusted for the cluster's certificate. Default: the system's store.
  std::string ca_file;
  // Skip TLS verification (self-signed lab clusters only). Default: false.
  bool insecure = false;
  // Plain HTTP instead of HTTPS for endpoints given without a scheme, and http:// endpoints
  // accepted: the token then crosses the network in the clear (labs and tests only). Without
  // it an http:// endpoint is INVALID_ARGUMENT. Default: false.
  bool plain_http = false;
  // The bearer token for each call (the service's RS256 token, kid system:<pubKeyId>), for the
  // audience given: `cluster_id` when set, else the UUID the cluster reported in info(), else
  // every endpoint ("https://host:port") while nothing is known yet.
  std::function<Result<std::string>(const std::vector<std::string>& audience)> token;
  // The UUID of the attached cluster, when known. Default: empty.
  std::string cluster_id;
  // The id of the service this driver works for: every volume and snapshot it creates or adopts
  // is marked with it (label dms.managed-by), and a volume marked with another id is another
  // service's. Empty: nothing is marked, and nothing can be adopted.
  std::string service_id;
  // The data path: NVMe/TCP from this host (docs/design.md, "The Lightbits data path").
  // This host's NQN as volume ACLs name it; empty: the first line of `host_nqn_file`.
  std::string host_nqn;
  std::string host_nqn_file = "/etc/nvme/hostnqn";
  // nvme-cli, and where the kernel shows controllers, namespaces and device nodes.
  std::string nvme_cli = "nvme";
  std::string sysfs_root = "/sys";
  std::string dev_root = "/dev";
  // Bound on one nvme-cli run, and on waiting for a namespace's device node to appear.
  std::chrono::milliseconds nvme_command_timeout{60000};
  std::chrono::milliseconds nvme_device_timeout{30000};
  // Writes to a volume's device go O_DIRECT (Options::device_direct_io). Default: false.
  bool direct_io = false;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  // Bound on waiting for an object to settle and on retrying 409/412/429/503.
  std::chrono::milliseconds operation_timeout{100000};
  // First pause between polls or retries; grows by half up to `max_backoff`.
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{1000};
  // Largest answer accepted. Default: 16 MiB.
  std::size_t max_response_bytes = 16u << 20;
  // Connections kept to the cluster: one per call in flight, reused; a call beyond them waits
  // for one within its deadline. Default: 16. REQUIRES: 1..256.
  int max_connections = 16;
  std::shared_ptr<Env> env;
};

class LightbitsBackend : public Backend {
 public:
  // INVALID_ARGUMENT for bad options; contacts nothing yet.
  static Result<std::unique_ptr<LightbitsBackend>> open(LightbitsOptions options);
  ~LightbitsBackend() override;

  // GET /api/v2/clusterinfo and /api/v2/nodes. UNAUTHENTICATED when the cluster refuses the
  // token (its credentials were not imported).
  Result<ClusterInfo> info() override;

  Result<VolumePage> list_volumes(const std::string& project, const PageRequest& page) override;
  Result<Volume> get_volume(const std::string& project, const std::string& id) override;
  Result<Volume> find_volume(const std::string& project, const std::string& name) override;
  Result<Volume> create_volume(const CreateVolumeRequest& request) override;
  Status mark_volume_available(const std::string& project, const std::string& id) override;
  Status delete_volume(const std::string& project, const std::string& id) override;

  Result<SnapshotPage> list_snapshots(const std::string& project, const PageRequest& page) override;
  Result<Snapshot> get_snapshot(const std::string& project, const std::string& id) override;
  Result<Snapshot> find_snapshot(const std::string& project, const std::string& name) override;
  Result<Snapshot> create_snapshot(const CreateSnapshotRequest& request) override;
  Status delete_snapshot(const std::string& project, const std::string& id) override;

  // Adopting what exists: the cluster's volumes in every project (GET /api/v2/volumes), each
  // referenced as "<project>/<name>". Not safe: marked by this service ("already managed") or
  // another, made by a service's workflow, not Available, or connected to hosts. Managing marks
  // the volume with one ETag-guarded update (labels dms.managed-by, dms.adopted-from,
  // dms.adopted-size; its size grown to whole GiB; renamed when a name is asked for): it keeps
  // its UUID, project and data. Unmanaging removes the marks; the size stays (LightOS shrinks a
  // volume only by force, which would drop data).
  Result<std::vector<ManageableObject>> list_manageable_volumes() override;
  Result<Volume> manage_volume(const ManageVolumeRequest& request) override;
  Result<std::string> unmanage_volume(const std::string& project, const std::string& id) override;
  // Snapshots, referenced as "<project>/<name>" with the source_reference of their volume. LightOS
  // has no update of a snapshot, so adopting one marks nothing on the cluster: it checks that the
  // snapshot is Available, unchanged (its ETag) and a snapshot of the managed volume named, and
  // the service's own record is what says it is managed (Volumes::list_manageable_snapshots).
  // Those the driver creates carry the mark. Unmanaging changes nothing on the cluster.
  Result<std::vector<ManageableObject>> list_manageable_snapshots() override;
  Result<Snapshot> manage_snapshot(const ManageSnapshotRequest& request) override;
  Result<std::string> unmanage_snapshot(const std::string& project, const std::string& id) override;

  Result<std::unique_ptr<BlockSource>> open_snapshot_data(const std::string& project,
                                                          const std::string& id,
                                                          const DataAccess& access) override;
  Result<std::unique_ptr<BlockSource>> open_volume_data(const std::string& project,
                                                        const std::string& id,
                                                        const DataAccess& access) override;
  Result<std::unique_ptr<BlockSink>> open_volume_sink(const std::string& project,
                                                      const std::string& id, bool fresh,
                                                      const DataAccess& access) override;
  Status release_data(const std::string& resource) override;

 private:
  struct Impl;
  explicit LightbitsBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore
