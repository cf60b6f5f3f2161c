#pragma once
// Adopting what exists on a cluster (OpenStack Cinder's manageable volumes): the list of what
// a cluster holds, sorted and paged exactly as Cinder does, and the request to take one over.
// The objects themselves come from the cluster's driver (Backend::list_manageable_volumes).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/backend.hpp"
#include "dmscore/result.hpp"

namespace dmscore {

// A manageable list's page as Cinder's query asks for it. The values are the query's text, so
// that every rule of Cinder's parser holds whatever the face the request came through:
//   sort      "key[:dir],..." with keys reference and size, dirs asc and desc (a key without a
//             dir: desc); default reference:desc. Not together with sort_key/sort_dir.
//   sort_key, sort_dir   the deprecated single pair.
//   marker    the JSON text of the last reference seen, e.g. {"source-name": "import/a.img"};
//             the page starts after it.
//   limit     an integer >= 0, at most (and by default) 1000; 0 gives an empty page.
//   offset    an integer 0..2147483647 skipped after the marker.
struct ManageableQuery {
  std::optional<std::string> sort, sort_key, sort_dir, marker, limit, offset;
};

// The size Cinder shows: bytes rounded up to whole GiB.
std::uint64_t size_in_gib(std::uint64_t bytes);

// Sorts `all` and answers the page `query` asks for, as Cinder's paginate_entries_list does
// (a stable sort; references compare by their source-name). INVALID_ARGUMENT naming the
// parameter ("sort: Invalid sort keys passed: foo", "marker: marker not found: {...}",
// "limit: limit param must be an integer", "offset: offset must be >= 0", ...); the text after
// "<name>: " is Cinder's own message.
Result<std::vector<ManageableObject>> paginate_manageable(std::vector<ManageableObject> all,
                                                          const ManageableQuery& query);

// A request to adopt a candidate as a volume of the service (Volumes::manage).
struct ManageRequest {
  // A reference a manageable list answered (its source-name).
  std::string reference;
  std::string project_name;
  // The volume's name on the cluster (validate_object_name). Default: the reference's last
  // component when that is a valid name not taken in the project and no display_name is given;
  // otherwise volume-<id>, as Cinder names the volumes it manages.
  std::string name;
  // Kept by the service with the volume, as Cinder keeps them: a display name and a description
  // of at most 255 bytes of any text, at most 64 metadata entries (keys 1-255 bytes, values 0-255
  // bytes), and whether the volume holds something to boot from.
  std::string display_name;
  std::string description;
  std::map<std::string, std::string> metadata;
  bool bootable = false;
  // Cinder's availability zone, kept as given (at most 255 bytes).
  std::string availability_zone;
  // Only for a snapshot (Volumes::manage_snapshot): the managed volume it is a snapshot of.
  std::string volume_id;
};

// What Volumes::manage answers: the MANAGE_VOLUME workflow and the id the volume will have.
struct ManageStarted {
  std::string workflow_id;
  std::string volume_id;
  // Volumes::manage_snapshot: the id the snapshot will have (volume_id is its volume's).
  std::string snapshot_id;
};

// A volume the service adopts or adopted, as the service records it from the moment
// Volumes::manage accepts the request: what the request asked for and how the adoption stands.
struct ManagedVolume {
  std::string id;
  std::string cluster_id;
  std::string project_name;
  std::string name;
  std::string reference;
  std::string display_name;
  std::string description;
  std::map<std::string, std::string> metadata;
  bool bootable = false;
  std::string availability_zone;
  // The MANAGE_VOLUME workflow, and why it failed when it did.
  std::string workflow_id;
  std::string failure;
  Env::SystemTime created_at;
  // Creating while the workflow runs; Failed when it failed or was cancelled (the candidate is
  // where it was); afterwards the cluster's volume's own state.
  VolumeState state = VolumeState::kCreating;
  // The cluster's volume, once adopted.
  std::optional<Volume> volume;
};

// A snapshot the service adopts or adopted, as ManagedVolume.
struct ManagedSnapshot {
  std::string id;
  std::string cluster_id;
  std::string project_name;
  std::string name;
  std::string reference;
  // The managed volume it is a snapshot of.
  std::string volume_id;
  std::string display_name;
  std::string description;
  std::map<std::string, std::string> metadata;
  std::string workflow_id;
  std::string failure;
  Env::SystemTime created_at;
  SnapshotState state = SnapshotState::kCreating;
  std::optional<Snapshot> snapshot;
};

}  // namespace dmscore
