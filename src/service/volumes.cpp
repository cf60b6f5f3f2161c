// Service's volume and snapshot requests: forwarded to the cluster's driver behind its gate,
// under the caller's deadline; deletes refused for what groups and copies still hold.

#include "service/service_impl.hpp"

namespace dmscore {

Result<VolumePage> Volumes::list(const ProjectRef& p, const PageRequest& page) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(p.cluster.str());
  if (!b.ok()) return b.status();
  return (*b)->list_volumes(p.project, page);
}

Result<Volume> Volumes::get(const VolumeRef& v) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(v.cluster.str());
  if (!b.ok()) return b.status();
  return detail::with_record(*impl_, v, (*b)->get_volume(v.project, v.id));
}

Result<Volume> Volumes::create(const ClusterId& cluster, const CreateVolumeRequest& request) {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  CreateVolumeRequest r = request;
  r.hold_in_creating = false;
  return (*b)->create_volume(r);
}

Status Volumes::remove(const VolumeRef& ref) {
  const std::string& cid = ref.cluster.str();
  Status s = impl_->claimed_call<Status>(
      cid, "volume:" + ref.id, "deleted",
      [&](Backend& b) { return b.get_volume(ref.project, ref.id).status(); },
      [&] { return impl_->groups->check_volume_free(cid, ref.id); },
      [&](Backend& b) { return b.delete_volume(ref.project, ref.id); });
  if (!s.ok()) return s;
  return detail::forget_record(*impl_, ref.id);
}

Result<SnapshotPage> Volumes::list_snapshots(const ProjectRef& p, const PageRequest& page) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(p.cluster.str());
  if (!b.ok()) return b.status();
  return (*b)->list_snapshots(p.project, page);
}

Result<Snapshot> Volumes::get_snapshot(const SnapshotRef& s) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(s.cluster.str());
  if (!b.ok()) return b.status();
  return (*b)->get_snapshot(s.project, s.id);
}

Result<Snapshot> Volumes::create_snapshot(const ClusterId& cluster,
                                          const CreateSnapshotRequest& request) {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  return (*b)->create_snapshot(request);
}

Status Volumes::remove_snapshot(const SnapshotRef& ref) {
  Status s = impl_->claimed_call<Status>(
      ref.cluster.str(), "snapshot:" + ref.id, "deleted",
      [&](Backend& b) { return b.get_snapshot(ref.project, ref.id).status(); },
      [&] { return impl_->groups->check_snapshot_free(ref.id); },
      [&](Backend& b) { return b.delete_snapshot(ref.project, ref.id); });
  if (!s.ok()) return s;
  return detail::forget_snapshot_record(*impl_, ref.id);
}

Status Volumes::write(const VolumeRef& v, std::uint64_t offset, std::string_view data,
                      bool durable) {
  auto scope = impl_->caller();
  return impl_->groups->write_volume(v.cluster.str(), v.project, v.id, offset, data, durable);
}

}  // namespace dmscore
