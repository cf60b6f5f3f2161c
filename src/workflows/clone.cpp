#include "dmscore/clone.hpp"

#include "base/codec.hpp"
#include "dmscore/backend.hpp"

namespace dmscore {

Status validate(const ThickCloneRequest& r, bool snapshot_clone) {
  if (!detail::is_uuid(r.src.snap_id)) return Status::InvalidArgument("src.snapId: must be a UUID");
  if (Status s = validate_object_name(r.src.project_name, "src.projectName"); !s.ok()) return s;
  if (!detail::is_uuid(r.src.cluster_id))
    return Status::InvalidArgument("src.clusterId: must be a UUID");
  if (Status s = validate_object_name(r.dst.name, "dst.name"); !s.ok()) return s;
  if (!r.dst.project_name.empty()) {
    if (Status s = validate_object_name(r.dst.project_name, "dst.projectName"); !s.ok()) return s;
  }
  if (!detail::is_uuid(r.dst.cluster_id))
    return Status::InvalidArgument("dst.clusterId: must be a UUID");
  if (r.dst.size && (*r.dst.size == 0 || *r.dst.size % 4096 != 0 || *r.dst.size > (1ull << 50)))
    return Status::InvalidArgument("dst.size: must be a positive multiple of 4096 up to 1 PiB");
  if (r.dst.replica && (*r.dst.replica < 1 || *r.dst.replica > 3))
    return Status::InvalidArgument("dst.replica: must be 1..3");
  if (r.dst.sector_size && *r.dst.sector_size != 512 && *r.dst.sector_size != 4096)
    return Status::InvalidArgument("dst.sectorSize: must be 512 or 4096");
  if (r.dst.qos_policy_name.size() > 256)
    return Status::InvalidArgument("dst.qosPolicyName: must be at most 256 characters");
  if (r.dst.description.size() > 256)
    return Status::InvalidArgument("dst.description: must be at most 256 bytes");
  if (!snapshot_clone && !r.dst.description.empty())
    return Status::InvalidArgument("dst.description: applies to snapshot clones only");
  return Status::Ok();
}

}  // namespace dmscore
