#pragma once
// Backend: the driver for one storage cluster.
//
// A backend holds projects, and in them volumes and snapshots, with the fields and states of
// the REST contract (and of LightOS, which it follows). It offers thin clones (a volume made
// from a snapshot in the same cluster, sharing space where it can) and data access: reading a
// snapshot or a volume and writing a volume, as the copy engine's BlockSource and BlockSink.
// Nothing about how the cluster stores data shows through this interface.
//
// LocalBackend (local_backend.hpp) keeps a cluster in a directory and is the embedded default;
// a Lightbits driver speaks LightOS REST v2 behind the same interface.
//
// Implementations are safe for concurrent use.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/copy.hpp"
#include "dmscore/env.hpp"
#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace dmscore {

enum class VolumeState { kCreating, kAvailable, kUpdating, kDeleting, kFailed };
enum class SnapshotState { kCreating, kAvailable, kDeleting, kFailed };

// "Creating", "Available", ... as in the contract.
std::string_view to_string(VolumeState state);
std::string_view to_string(SnapshotState state);

struct Volume {
  std::string id;
  std::string name;
  std::string project_name;
  std::string cluster_id;
  std::uint64_t size = 0;
  int replica_count = 1;
  int sector_size = 4096;
  bool compression = false;
  VolumeState state = VolumeState::kCreating;
  // Set for a thin clone: the snapshot it was made from.
  std::string source_snapshot_id;
  Env::SystemTime created_at;
  // Where hosts reach the data: a file for a local cluster, empty when not attached here.
  std::string device_path;
  // Marks set at creation (LightOS labels): the service records there which workflow made an
  // object, so its compensation deletes only what it made.
  std::map<std::string, std::string> labels;
  // Set for a volume that was adopted rather than created (manage_volume): the reference it
  // was found under and its size in bytes then (its size now is rounded up to whole GiB).
  std::string adopted_from;
  std::uint64_t adopted_size = 0;
  // What the request that adopted it said (ManageRequest), filled in by the service; drivers
  // leave them empty.
  std::string description;
  std::map<std::string, std::string> metadata;
};

struct Snapshot {
  std::string id;
  std::string name;
  std::string project_name;
  std::string cluster_id;
  std::string source_volume_id;
  std::uint64_t size = 0;
  SnapshotState state = SnapshotState::kCreating;
  std::string description;
  Env::SystemTime created_at;
  // Inherited from the source volume; thick clones default to them.
  int replica_count = 1;
  int sector_size = 4096;
  bool compression = false;
  std::map<std::string, std::string> labels;
  // Set for a snapshot that was adopted (manage_snapshot), as Volume's.
  std::string adopted_from;
  std::uint64_t adopted_size = 0;
};

struct ClusterServer {
  std::string name;
  std::string endpoint;
  std::string state;
};

struct ClusterInfo {
  std::string id;
  std::string name;
  std::string version;
  std::string subsystem_nqn;
  std::vector<std::string> api_endpoints;
  std::vector<std::string> discovery_endpoints;
  std::vector<ClusterServer> servers;
};

struct CreateVolumeRequest {
  std::string project_name;
  std::string name;
  // Bytes. REQUIRES: > 0, a multiple of 4096.
  std::uint64_t size = 0;
  // Default: 1. REQUIRES: 1..3.
  int replica_count = 1;
  // Default: 4096. REQUIRES: 512 or 4096.
  int sector_size = 4096;
  bool compression = false;
  // When set: a thin clone of this snapshot (size defaults to the snapshot's, may be larger).
  std::string source_snapshot_id;
  // When true the volume stays Creating until mark_volume_available(); a thick clone writes
  // into it meanwhile. Default: false.
  bool hold_in_creating = false;
  // At most 16 labels; keys 1-63 and values 0-253 characters of [A-Za-z0-9._:/-].
  std::map<std::string, std::string> labels;
};

struct CreateSnapshotRequest {
  std::string project_name;
  std::string name;
  std::string source_volume_id;
  // At most 256 bytes.
  std::string description;
  // As CreateVolumeRequest::labels.
  std::map<std::string, std::string> labels;
};

// An object on a cluster as Cinder's manageable-volume lists show it: a candidate the service
// could take over, or one it manages already (listed as not safe).
struct ManageableObject {
  // What names it on the cluster, passed back to manage it (Cinder's {"source-name": ...}): for
  // a local cluster the path relative to the cluster directory ("import/db-2024.img"), for a
  // managed local volume "data/<id>.vol".
  std::string reference;
  // Bytes, as found.
  std::uint64_t size = 0;
  bool safe_to_manage = false;
  // When not safe, why: "already managed", "not a regular file", "a symbolic link", "empty",
  // "size is not a multiple of 512 bytes", "locked by another process", "being written".
  std::string reason_not_safe;
  // The id of the managed object it is, when it is one.
  std::string managed_id;
  // Free-form detail for people (an adopted volume's original reference and size).
  std::string extra_info;
  // What changes when the object does (for a file: device, inode, size, modification time;
  // for a Lightbits volume its ETag). ManageVolumeRequest::fingerprint refuses a candidate that
  // changed since it was looked at.
  std::string fingerprint;
  // The cluster's own id for it when its objects keep one (a Lightbits volume's UUID): the
  // volume has that id once managed. Empty for a local file, which the service gives an id.
  std::string object_id;
  // For a snapshot: the reference of the volume it is a snapshot of (for a local candidate
  // import/<file>@<snapshot>, import/<file>; for a managed one data/<volume id>.vol).
  std::string source_reference;
};

struct ManageVolumeRequest {
  // The id the volume gets (a UUID); empty: the driver chooses. A driver whose objects carry
  // their own ids (Lightbits) refuses one that differs from ManageableObject::object_id.
  std::string id;
  // A reference a manageable list answered.
  std::string reference;
  std::string project_name;
  // Empty: a driver whose objects keep their names (Lightbits) keeps it.
  std::string name;
  // Empty: take the candidate as it is now. Otherwise the fingerprint it had when looked at;
  // a candidate that differs is refused (FAILED_PRECONDITION) and left untouched.
  std::string fingerprint;
  // As CreateVolumeRequest::labels.
  std::map<std::string, std::string> labels;
};

struct ManageSnapshotRequest {
  // As ManageVolumeRequest's.
  std::string id;
  std::string reference;
  std::string project_name;
  // The managed volume it is a snapshot of: the one its source_reference was adopted from.
  std::string volume_id;
  std::string name;
  std::string fingerprint;
  std::map<std::string, std::string> labels;
};

// Who reaches an object's data, so that what a driver makes for that is accounted for.
struct DataAccess {
  // The workflow the access is for: what a driver makes carries it as its owner label
  // (kOwnerLabel). Empty: the driver's own name for a one-off access.
  std::string owner;
  // Called with a resource name before the driver makes something to reach the data; durable
  // when it returns OK (a non-OK answer stops the open with it). Empty: nothing is recorded, and
  // only the returned object's destruction removes what was made.
  std::function<Status(const std::string& resource)> record;
  // Asked while waiting (for a device to appear); true stops the open with CANCELLED.
  std::function<bool()> stop;
};

struct PageRequest {
  // 0 means 100. REQUIRES: 0..1000.
  int page_size = 0;
  std::string page_token;
};

struct VolumePage {
  std::vector<Volume> volumes;
  std::string next_page_token;
};

struct SnapshotPage {
  std::vector<Snapshot> snapshots;
  std::string next_page_token;
};

// Errors common to every method: INVALID_ARGUMENT naming the field; NOT_FOUND for an unknown
// id (or project); UNAVAILABLE when the cluster cannot be reached.
class Backend {
 public:
  virtual ~Backend() = default;

  virtual Result<ClusterInfo> info() = 0;

  // OK, or FAILED_PRECONDITION saying why the cluster cannot be used until an operator repairs
  // it (a local cluster whose metadata was lost or is older than its data files). Contacts
  // nothing. Default: OK.
  virtual Status repair_needed() const { return Status::Ok(); }

  virtual Result<VolumePage> list_volumes(const std::string& project, const PageRequest& page) = 0;
  virtual Result<Volume> get_volume(const std::string& project, const std::string& id) = 0;
  // NOT_FOUND when no volume of that name exists in the project.
  virtual Result<Volume> find_volume(const std::string& project, const std::string& name) = 0;
  // ALREADY_EXISTS when the name is taken in the project; NOT_FOUND for an unknown source
  // snapshot; INVALID_ARGUMENT for a size smaller than the source snapshot's.
  virtual Result<Volume> create_volume(const CreateVolumeRequest& request) = 0;
  // Moves a held volume from Creating to Available. OK when already Available.
  virtual Status mark_volume_available(const std::string& project, const std::string& id) = 0;
  // Deletes the volume and its data. NOT_FOUND when it does not exist.
  virtual Status delete_volume(const std::string& project, const std::string& id) = 0;

  virtual Result<SnapshotPage> list_snapshots(const std::string& project,
                                              const PageRequest& page) = 0;
  virtual Result<Snapshot> get_snapshot(const std::string& project, const std::string& id) = 0;
  virtual Result<Snapshot> find_snapshot(const std::string& project, const std::string& name) = 0;
  // A point-in-time, immutable image of the source volume. ALREADY_EXISTS for a taken name;
  // NOT_FOUND for an unknown volume; FAILED_PRECONDITION when the volume is not Available.
  virtual Result<Snapshot> create_snapshot(const CreateSnapshotRequest& request) = 0;
  virtual Status delete_snapshot(const std::string& project, const std::string& id) = 0;

  // Adopting what exists (Cinder's manageable volumes). The default answers UNIMPLEMENTED.
  // Every volume on the cluster as a manageable list shows it: candidates, and the volumes the
  // cluster's driver manages (not safe, "already managed"), in no particular order.
  virtual Result<std::vector<ManageableObject>> list_manageable_volumes();
  // Takes a safe candidate over without copying its data: the volume, Available when this
  // returns, is sized as the candidate rounded up to the next GiB (extended with zeros) and
  // remembers where it came from (Volume::adopted_from). INVALID_ARGUMENT naming `ref` for an
  // unknown or unsafe candidate (with the reason); FAILED_PRECONDITION when it changed since
  // its fingerprint; ALREADY_EXISTS for a taken name. On any error the candidate is untouched.
  virtual Result<Volume> manage_volume(const ManageVolumeRequest& request);
  // Stops managing an Available volume without touching a byte of its data: it becomes a
  // candidate again, and the reference it can be found under is returned (for a local cluster
  // the place it was adopted from when that is free, else import/<name>).
  // FAILED_PRECONDITION when it is not Available or has snapshots.
  virtual Result<std::string> unmanage_volume(const std::string& project, const std::string& id);
  // The same for snapshots (Cinder's manageable snapshots): candidates carry the reference of
  // the volume they are snapshots of, and one is adopted as a snapshot of the managed volume
  // that was adopted from that reference (INVALID_ARGUMENT naming volumeId otherwise), sized as
  // it rounded up to whole GiB. unmanage_snapshot gives back an Available snapshot.
  virtual Result<std::vector<ManageableObject>> list_manageable_snapshots();
  virtual Result<Snapshot> manage_snapshot(const ManageSnapshotRequest& request);
  virtual Result<std::string> unmanage_snapshot(const std::string& project, const std::string& id);

  // Data access. FAILED_PRECONDITION when the object is not in a readable/writable state.
  // What a driver must make to reach the data (Lightbits: a temporary volume from the snapshot,
  // this host in a volume's ACL, an NVMe/TCP connection) is named to `access.record` before it
  // is made, and removed when the returned object is destroyed; release_data() removes what a
  // record names after a crash.
  virtual Result<std::unique_ptr<BlockSource>> open_snapshot_data(const std::string& project,
                                                                  const std::string& id,
                                                                  const DataAccess& access) = 0;
  virtual Result<std::unique_ptr<BlockSource>> open_volume_data(const std::string& project,
                                                                const std::string& id,
                                                                const DataAccess& access) = 0;
  // Write access to a volume being filled (Creating). `fresh` tells the sink that no byte has
  // been written yet (every byte reads as zero), which lets the copy skip zero ranges.
  virtual Result<std::unique_ptr<BlockSink>> open_volume_sink(const std::string& project,
                                                              const std::string& id, bool fresh,
                                                              const DataAccess& access) = 0;
  // Removes what a DataAccess::record name says was (perhaps) made: a temporary volume that
  // still carries its owner's label, this host's entry in an ACL, a connection nothing in this
  // process uses. OK when there is nothing left to remove; never touches anything else.
  // Default (a driver that makes nothing): OK.
  virtual Status release_data(const std::string& resource);
};

// Lightbits naming rules: 1-256 characters of [A-Za-z0-9._-]. INVALID_ARGUMENT naming `field`.
Status validate_object_name(const std::string& name, const std::string& field);

// The label rules above. INVALID_ARGUMENT naming `field`.
Status validate_labels(const std::map<std::string, std::string>& labels, const std::string& field);

// The label key under which the service records the workflow that created an object.
inline constexpr const char* kOwnerLabel = "dms.workflow";
// On a cluster whose objects carry labels (Lightbits): the id of the service that manages the
// object, and for an adopted one the reference it was adopted under and its size then (bytes).
inline constexpr const char* kManagedByLabel = "dms.managed-by";
inline constexpr const char* kAdoptedFromLabel = "dms.adopted-from";
inline constexpr const char* kAdoptedSizeLabel = "dms.adopted-size";

}  // namespace dmscore
