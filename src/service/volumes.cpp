// Service's volume and snapshot requests: forwarded to the cluster's driver behind its gate,
// under the caller's deadline; deletes refused for what groups and copies still hold.

#include "service/service_impl.hpp"

namespace dmscore {

Result<VolumePage> Service::list_volumes(const std::string& cid, const std::string& project,
                                         const PageRequest& page) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  return (*b)->list_volumes(project, page);
}

Result<Volume> Service::get_volume(const std::string& cid, const std::string& project,
                                   const std::string& id) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  return (*b)->get_volume(project, id);
}

Result<Volume> Service::create_volume(const std::string& cid, const CreateVolumeRequest& request) {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  CreateVolumeRequest r = request;
  r.hold_in_creating = false;
  return (*b)->create_volume(r);
}

Status Service::delete_volume(const std::string& cid, const std::string& project,
                              const std::string& id) {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  auto v = (*b)->get_volume(project, id);
  if (!v.ok()) return v.status();
  // Claimed, not locked: a cluster that hangs on the delete holds up nobody else.
  auto claim = impl_->engine->claim({"volume:" + id}, "deleted");
  if (!claim.ok()) return claim.status();
  if (Status g = impl_->groups->check_volume_free(cid, id); !g.ok()) return g;
  return (*b)->delete_volume(project, id);
}

Result<SnapshotPage> Service::list_snapshots(const std::string& cid, const std::string& project,
                                             const PageRequest& page) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  return (*b)->list_snapshots(project, page);
}

Result<Snapshot> Service::get_snapshot(const std::string& cid, const std::string& project,
                                       const std::string& id) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  return (*b)->get_snapshot(project, id);
}

Result<Snapshot> Service::create_snapshot(const std::string& cid,
                                          const CreateSnapshotRequest& request) {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  return (*b)->create_snapshot(request);
}

Status Service::delete_snapshot(const std::string& cid, const std::string& project,
                                const std::string& id) {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cid);
  if (!b.ok()) return b.status();
  auto sn = (*b)->get_snapshot(project, id);
  if (!sn.ok()) return sn.status();
  auto claim = impl_->engine->claim({"snapshot:" + id}, "deleted");
  if (!claim.ok()) return claim.status();
  if (Status g = impl_->groups->check_snapshot_free(id); !g.ok()) return g;
  return (*b)->delete_snapshot(project, id);
}

Status Service::write_volume(const std::string& cluster_id, const std::string& project,
                             const std::string& volume_id, std::uint64_t offset,
                             std::string_view data, bool durable) {
  auto scope = impl_->caller();
  return impl_->groups->write_volume(cluster_id, project, volume_id, offset, data, durable);
}

}  // namespace dmscore
