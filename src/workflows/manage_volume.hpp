#pragma once
// MANAGE_VOLUME: a candidate on a cluster becomes a volume of the service, no byte copied.
// MANAGE_SNAPSHOT: the same for a snapshot of a managed volume ("snapshotId" in the request;
// "volumeId" is the volume it belongs to; the result names the snapshot).
//
//   request: ManageWork {"clusterId", "reference", "projectName", "name", "volumeId",
//            "fingerprint"} (checked and completed by Volumes::manage: the id the volume gets,
//            and the fingerprint the candidate had when the request was accepted)
//
//   manage ───────────────────────────────────────────────────────────────► managed
//     the driver adopts the candidate (Backend::manage_volume) under the id given, labelled
//     with this workflow; one that changed since the request was accepted is refused.
//     A resumed run finds the volume it made and succeeds.
//     undo: a volume carrying this workflow's label is given back (unmanage_volume), so a
//     failed or cancelled workflow leaves the candidate as it was.
//   result: {"volumeId", "size", "adoptedSize"} (sizes in bytes, as decimal strings)

#include <string>

#include "dmscore/result.hpp"

namespace dmscore::detail {

struct ManageWork {
  std::string cluster_id, reference, project_name, name, volume_id, fingerprint;
  // MANAGE_SNAPSHOT: the snapshot's id (volume_id is then the volume it belongs to).
  std::string snapshot_id;
  std::string to_json() const;
  static Result<ManageWork> from_json(const std::string& text);
};

}  // namespace dmscore::detail
