#include "workflows/thick_clone.hpp"

#include <charconv>

#include "base/codec.hpp"
#include "dmscore/backend.hpp"
#include "dmscore/clone.hpp"
#include "service/service_impl.hpp"
#include "workflows/step_builder.hpp"

namespace dmscore {

namespace json = boost::json;

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

namespace detail {

namespace {

template <class T>
T number_or(const std::string& text, T fallback) {
  T v{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && p == text.data() + text.size() ? v : fallback;
}

}  // namespace

CloneVars CloneVars::load(const StepContext& c) {
  CloneVars v;
  v.dst_project = c.var("dstProject");
  v.src_size = number_or<std::uint64_t>(c.var("srcSize"), 0);
  v.dst_size = number_or<std::uint64_t>(c.var("dstSize"), 0);
  v.replica = number_or(c.var("replica"), 1);
  v.sector_size = number_or(c.var("sectorSize"), 4096);
  v.compression = c.var("compression") == "1";
  v.dst_volume_id = c.var("dstVolumeId");
  v.dst_snapshot_id = c.var("dstSnapshotId");
  return v;
}

void CloneVars::save_resolved(StepContext& c) const {
  c.set_var("srcSize", std::to_string(src_size));
  c.set_var("dstSize", std::to_string(dst_size));
  c.set_var("dstProject", dst_project);
  c.set_var("replica", std::to_string(replica));
  c.set_var("sectorSize", std::to_string(sector_size));
  c.set_var("compression", compression ? "1" : "0");
}

namespace {

Result<ThickCloneRequest> load(const StepContext& c) {
  auto v = parse_json(c.request());
  if (!v.ok()) return v.status();
  return thick_clone_request_from_json(*v);
}

// What the clone copies, as the pipeline sees it: the source snapshot into the destination
// volume (the destination itself, or a hidden one for a snapshot clone).
std::vector<CopyItem> item_of(StepContext& c, const ThickCloneRequest& r, bool snapshot_clone) {
  // A clone of an earlier release marked its intent as "creating".
  if (c.var("creating") == "1" && c.var("creating0").empty()) c.set_var("creating0", "1");
  const CloneVars v = CloneVars::load(c);
  CopyItem it;
  it.src_cluster = r.src.cluster_id;
  it.src_project = r.src.project_name;
  it.src_snapshot_id = r.src.snap_id;
  it.dst_cluster = r.dst.cluster_id;
  it.dst_project = v.dst_project;
  it.dst_name = snapshot_clone ? "dms-tmp-" + c.workflow_id() : r.dst.name;
  it.dst_volume_id = v.dst_volume_id;
  it.size = v.dst_size;
  it.replica = v.replica;
  it.sector_size = v.sector_size;
  it.compression = v.compression;
  return {it};
}

Status resolve_source(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  auto src = svc.backend_locked(req->src.cluster_id);
  if (!src.ok()) return src.status();
  auto snap = (*src)->get_snapshot(req->src.project_name, req->src.snap_id);
  if (!snap.ok()) return snap.status();
  if (snap->state != SnapshotState::kAvailable)
    return Status::FailedPrecondition("source snapshot " + snap->id + " is " +
                                      std::string(to_string(snap->state)));
  CloneVars v;
  v.src_size = snap->size;
  v.dst_size = req->dst.size.value_or(snap->size);
  if (v.dst_size < snap->size)
    return Status::InvalidArgument("dst.size: must be at least the source size (" +
                                   std::to_string(snap->size) + ")");
  v.dst_project = req->dst.project_name.empty() ? req->src.project_name : req->dst.project_name;
  v.replica = req->dst.replica.value_or(snap->replica_count);
  v.sector_size = req->dst.sector_size.value_or(snap->sector_size);
  v.compression = req->dst.compression.value_or(snap->compression);
  v.save_resolved(c);
  return Status::Ok();
}

template <bool kSnapshot>
Status create_destination(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  if (c.var("dstProject").empty()) return Status::Ok();
  auto items = item_of(c, *req, kSnapshot);
  Status s = svc.pipeline->create_targets(c, items, [&c](std::size_t, const std::string& id) {
    c.set_var("dstVolumeId", id);
    return Status::Ok();
  });
  return s.code() == Code::kAlreadyExists ? s.with_prefix("dst.name") : s;
}

template <bool kSnapshot>
Status create_destination_undo(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  if (c.var("dstProject").empty()) return Status::Ok();
  auto dst = svc.backend_locked(req->dst.cluster_id);
  if (!dst.ok()) return dst.status().code() == Code::kNotFound ? Status::Ok() : dst.status();
  return svc.pipeline->delete_targets(c, item_of(c, *req, kSnapshot));
}

template <bool kSnapshot>
Status copy(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  return svc.pipeline->copy(c, item_of(c, *req, kSnapshot), true, "copy", 0,
                            req->verify_clone ? 90 : 99);
}

template <bool kSnapshot>
Status verify(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  if (!req->verify_clone) return Status::Ok();
  return svc.pipeline->verify(c, item_of(c, *req, kSnapshot));
}

// Undo of copy and verify: what was made to reach data goes.
Status release_data(Service::Impl& svc, StepContext& c) { return svc.pipeline->release_data(c); }

Status finalize_volume(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  if (Status s = svc.pipeline->make_available(item_of(c, *req, false)); !s.ok()) return s;
  c.set_result(json::serialize(json::object{{"volumeId", c.var("dstVolumeId")},
                                            {"clusterId", req->dst.cluster_id},
                                            {"projectName", c.var("dstProject")}}));
  return Status::Ok();
}

// A snapshot clone's last step: the hidden volume, now whole, becomes the destination snapshot
// and goes.
Status finalize_snapshot(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  auto dst = svc.backend_locked(req->dst.cluster_id);
  if (!dst.ok()) return dst.status();
  const CloneVars v = CloneVars::load(c);
  const std::string& project = v.dst_project;
  const std::string& hidden = v.dst_volume_id;
  std::string snap_id = v.dst_snapshot_id;
  if (snap_id.empty()) {
    auto existing = (*dst)->find_snapshot(project, req->dst.name);
    if (existing.ok() && existing->source_volume_id == hidden) {
      snap_id = existing->id;  // made before a crash
    } else {
      // Snapshot a held (Creating) volume: make it Available first; it stays hidden by name and
      // is deleted right after.
      if (Status s = (*dst)->mark_volume_available(project, hidden); !s.ok()) return s;
      CreateSnapshotRequest sr{project, req->dst.name, hidden, req->dst.description};
      sr.labels[kOwnerLabel] = c.workflow_id();
      auto sn = (*dst)->create_snapshot(sr);
      if (!sn.ok()) {
        if (sn.status().code() == Code::kAlreadyExists) return sn.status().with_prefix("dst.name");
        return sn.status();
      }
      snap_id = sn->id;
    }
    c.set_var("dstSnapshotId", snap_id);
  }
  Status s = (*dst)->delete_volume(project, hidden);
  if (!s.ok() && !s.is_not_found()) return s;
  c.set_result(json::serialize(json::object{
      {"snapshotId", snap_id}, {"clusterId", req->dst.cluster_id}, {"projectName", project}}));
  return Status::Ok();
}

Status finalize_snapshot_undo(Service::Impl& svc, StepContext& c) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  std::string snap_id = c.var("dstSnapshotId");
  if (snap_id.empty()) return Status::Ok();
  auto dst = svc.backend_locked(req->dst.cluster_id);
  if (!dst.ok()) return Status::Ok();
  Status s = (*dst)->delete_snapshot(c.var("dstProject"), snap_id);
  return s.is_not_found() ? Status::Ok() : s;
}

template <bool kSnapshot>
WorkflowType clone_type(Service::Impl& s) {
  WorkflowType type{kSnapshot ? kThickCloneSnapshot : kThickCloneVolume, {}};
  type.steps.push_back(make_step("resolve-source", s, resolve_source));
  type.steps.push_back(make_step("create-destination", s, create_destination<kSnapshot>,
                                 create_destination_undo<kSnapshot>));
  type.steps.push_back(make_step("copy", s, copy<kSnapshot>, release_data));
  type.steps.push_back(make_step("verify", s, verify<kSnapshot>, release_data));
  type.steps.push_back(kSnapshot
                           ? make_step("finalize", s, finalize_snapshot, finalize_snapshot_undo)
                           : make_step("finalize", s, finalize_volume));
  return type;
}

}  // namespace

Status register_thick_clones(WorkflowEngine& engine, Service::Impl& s) {
  if (Status r = engine.register_type(clone_type<false>(s)); !r.ok()) return r;
  return engine.register_type(clone_type<true>(s));
}

}  // namespace detail

// ---- submission ----

Result<std::string> Service::Impl::submit_clone(const ThickCloneRequest& req, bool snapshot) {
  Impl& im = *this;
  if (Status s = validate(req, snapshot); !s.ok()) return s;
  Result<std::shared_ptr<Backend>> src = Status::Unavailable(""), dst = src;
  {
    std::shared_lock lock(im.registry_mu);  // only to read the map: no cluster call under it
    src = im.backend(req.src.cluster_id, "src.clusterId");
    dst = im.backend(req.dst.cluster_id, "dst.clusterId");
  }
  if (!src.ok()) return src.status();
  if (!dst.ok()) return dst.status();
  auto snap = (*src)->get_snapshot(req.src.project_name, req.src.snap_id);
  if (!snap.ok()) {
    if (snap.status().is_not_found())
      return Status::NotFound("src.snapId: snapshot " + req.src.snap_id + " not found in project " +
                              req.src.project_name);
    return snap.status();
  }
  if (snap->state != SnapshotState::kAvailable)
    return Status::FailedPrecondition("src.snapId: snapshot is " +
                                      std::string(to_string(snap->state)));
  if (req.dst.size && *req.dst.size < snap->size)
    return Status::InvalidArgument("dst.size: must be at least the source size (" +
                                   std::to_string(snap->size) + ")");
  if (!req.dst.qos_policy_name.empty())
    return Status::NotFound("dst.qosPolicyName: cluster " + req.dst.cluster_id +
                            " has no QoS policy named " + req.dst.qos_policy_name);
  const std::string project =
      req.dst.project_name.empty() ? req.src.project_name : req.dst.project_name;
  bool taken = snapshot ? (*dst)->find_snapshot(project, req.dst.name).ok()
                        : (*dst)->find_volume(project, req.dst.name).ok();
  if (taken)
    return Status::AlreadyExists("dst.name: " + std::string(snapshot ? "a snapshot" : "a volume") +
                                 " named " + req.dst.name + " already exists in project " +
                                 project);
  return im.engine->submit(snapshot ? kThickCloneSnapshot : kThickCloneVolume,
                           json::serialize(detail::to_json(req)),
                           {"cluster:" + req.src.cluster_id, "cluster:" + req.dst.cluster_id,
                            "snapshot:" + req.src.snap_id});
}

Result<WorkflowId> Clones::volume(const ThickCloneRequest& request) {
  auto scope = impl_->caller();
  return detail::workflow_id(impl_->submit_clone(request, false));
}

Result<WorkflowId> Clones::snapshot(const ThickCloneRequest& request) {
  auto scope = impl_->caller();
  return detail::workflow_id(impl_->submit_clone(request, true));
}

}  // namespace dmscore
