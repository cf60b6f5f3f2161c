#pragma once
// Volumes: the volumes and snapshots on attached clusters, handed out by Service::volumes().
// Every call goes to the cluster's driver behind its gate (Options::cluster_call_deadline,
// cluster_max_concurrent_calls): NOT_FOUND for a cluster that is not attached, UNAVAILABLE for
// one that is attached but unreachable or refusing callers. Safe for concurrent use.

#include <cstdint>
#include <string_view>

#include "dmscore/backend.hpp"
#include "dmscore/ids.hpp"
#include "dmscore/manageable.hpp"
#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"

namespace dmscore {

class Volumes : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // One page of a project's volumes (PageRequest's paging rules).
  Result<VolumePage> list(const ProjectRef& project, const PageRequest& page) const;
  // NOT_FOUND for an unknown volume. A volume being adopted (manage) reads as Creating from
  // the moment the request is accepted, and as Failed when the adoption failed.
  Result<Volume> get(const VolumeRef& volume) const;
  // An empty volume, Available when this returns. INVALID_ARGUMENT naming the field;
  // ALREADY_EXISTS for a taken name.
  Result<Volume> create(const ClusterId& cluster, const CreateVolumeRequest& request);
  // NOT_FOUND; FAILED_PRECONDITION while a workflow uses the volume (as source or destination)
  // or a consistency group or copy set holds it.
  Status remove(const VolumeRef& volume);
  // Writes `data` at `offset` of an Available volume: the service's data path, which group
  // snapshots fence (see group.hpp). With `durable`, the data is fsynced before it returns.
  // INVALID_ARGUMENT for a write past the end or over 64 MiB; UNAVAILABLE when a group
  // snapshot holds writes for over twice group_snapshot_fence_timeout.
  Status write(const VolumeRef& volume, std::uint64_t offset, std::string_view data,
               bool durable = false);

  Result<SnapshotPage> list_snapshots(const ProjectRef& project, const PageRequest& page) const;
  // NOT_FOUND for an unknown snapshot.
  Result<Snapshot> get_snapshot(const SnapshotRef& snapshot) const;
  // INVALID_ARGUMENT naming the field; NOT_FOUND for an unknown source volume; ALREADY_EXISTS
  // for a taken name.
  Result<Snapshot> create_snapshot(const ClusterId& cluster, const CreateSnapshotRequest& request);
  // NOT_FOUND; FAILED_PRECONDITION while a workflow reads the snapshot or a group snapshot
  // holds it.
  Status remove_snapshot(const SnapshotRef& snapshot);

  // Adopting what exists (manageable.hpp). What the cluster holds that the service could take
  // over, and what it manages already (not safe, "already managed"), as one page sorted and
  // paged as Cinder does. INVALID_ARGUMENT naming a bad query parameter; UNIMPLEMENTED for a
  // driver that cannot list.
  Result<std::vector<ManageableObject>> list_manageable(const ClusterId& cluster,
                                                        const ManageableQuery& query) const;
  // Starts a MANAGE_VOLUME workflow that adopts a candidate without copying it: the volume is
  // Creating while it runs and ends Available, sized as the candidate rounded up to whole GiB;
  // or the workflow fails with the reason and the candidate untouched (one that changed since
  // this call is refused). Checked first: INVALID_ARGUMENT naming ref (unknown or unsafe, with
  // the reason), name or projectName; ALREADY_EXISTS for a taken name; RESOURCE_EXHAUSTED at
  // maxRunningWorkflows.
  Result<ManageStarted> manage(const ClusterId& cluster, const ManageRequest& request);
  // Stops managing an Available volume without touching a byte of its data; answers the
  // reference it is a candidate under again. NOT_FOUND; FAILED_PRECONDITION while a workflow,
  // a consistency group or a copy set uses it, or while it has snapshots.
  // (A volume whose MANAGE_VOLUME workflow failed is forgotten: its record goes, and the
  // candidate, which was never taken, is answered.)
  Result<std::string> unmanage(const VolumeRef& volume);
  // The service's record of a volume it adopts or adopted, by id alone (Cinder's routes name a
  // volume by id). NOT_FOUND when the service adopted no volume of that id, or gave it back.
  Result<ManagedVolume> managed(const std::string& volume_id) const;

  // The same for snapshots (Cinder's manageable snapshots). Candidates carry the reference of
  // the volume they are snapshots of (ManageableObject::source_reference); manage_snapshot
  // starts a MANAGE_SNAPSHOT workflow that adopts one as a snapshot of request.volume_id, the
  // managed volume adopted from that reference (INVALID_ARGUMENT naming volumeId otherwise;
  // NOT_FOUND for an unknown volume). unmanage_snapshot gives an Available snapshot back.
  Result<std::vector<ManageableObject>> list_manageable_snapshots(
      const ClusterId& cluster, const ManageableQuery& query) const;
  Result<ManageStarted> manage_snapshot(const ClusterId& cluster, const ManageRequest& request);
  Result<std::string> unmanage_snapshot(const SnapshotRef& snapshot);
  Result<ManagedSnapshot> managed_snapshot(const std::string& snapshot_id) const;
};

}  // namespace dmscore
