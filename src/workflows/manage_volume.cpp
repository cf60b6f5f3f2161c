#include "workflows/manage_volume.hpp"

#include <boost/json.hpp>

#include "base/codec.hpp"
#include "service/service_impl.hpp"
#include "workflows/step_builder.hpp"

namespace dmscore::detail {

namespace json = boost::json;

std::string ManageWork::to_json() const {
  return json::serialize(json::object{{"clusterId", cluster_id},
                                      {"reference", reference},
                                      {"projectName", project_name},
                                      {"name", name},
                                      {"volumeId", volume_id},
                                      {"fingerprint", fingerprint},
                                      {"snapshotId", snapshot_id}});
}

Result<ManageWork> ManageWork::from_json(const std::string& text) {
  auto v = parse_json(text);
  if (!v.ok()) return v.status();
  const json::object* o = v->if_object();
  if (!o) return Status::InvalidArgument("request: not an object");
  ManageWork w;
  for (auto [key, out] : {std::pair{"clusterId", &w.cluster_id},
                          {"reference", &w.reference},
                          {"projectName", &w.project_name},
                          {"name", &w.name},
                          {"volumeId", &w.volume_id},
                          {"fingerprint", &w.fingerprint}}) {
    const json::value* f = o->if_contains(key);
    if (!f || !f->is_string()) return Status::InvalidArgument(std::string("request: ") + key);
    *out = std::string(f->as_string());
  }
  if (const json::value* f = o->if_contains("snapshotId"); f && f->is_string())
    w.snapshot_id = std::string(f->as_string());
  return w;
}

namespace {

Status manage_step(Service::Impl& s, StepContext& ctx) {
  auto w = ManageWork::from_json(ctx.request());
  if (!w.ok()) return w.status();
  auto b = s.backend_locked(w->cluster_id);
  if (!b.ok()) return b.status();
  ctx.report_progress({0, "manage", 0, 0, 0});
  auto done = [&](const Volume& v) {
    // Sizes as decimal strings, the contract's form for 64-bit numbers.
    ctx.set_result(json::serialize(json::object{{"volumeId", v.id},
                                                {"size", std::to_string(v.size)},
                                                {"adoptedSize", std::to_string(v.adopted_size)}}));
    ctx.report_progress({100, "done", 0, 0, 0});
    return Status::Ok();
  };
  // Made already, by this workflow before a restart? (A volume of that id without its label
  // is, on a cluster whose objects keep their ids, the candidate itself.)
  if (auto v = (*b)->get_volume(w->project_name, w->volume_id); v.ok()) {
    auto owner = v->labels.find(kOwnerLabel);
    if (owner != v->labels.end() && owner->second == ctx.workflow_id()) return done(*v);
  }
  ManageVolumeRequest r;
  r.id = w->volume_id;
  r.reference = w->reference;
  r.project_name = w->project_name;
  r.name = w->name;
  r.fingerprint = w->fingerprint;
  r.labels[kOwnerLabel] = ctx.workflow_id();
  auto v = (*b)->manage_volume(r);
  if (!v.ok()) return v.status();
  return done(*v);
}

Status manage_snapshot_step(Service::Impl& s, StepContext& ctx) {
  auto w = ManageWork::from_json(ctx.request());
  if (!w.ok()) return w.status();
  auto b = s.backend_locked(w->cluster_id);
  if (!b.ok()) return b.status();
  ctx.report_progress({0, "manage", 0, 0, 0});
  auto done = [&](const Snapshot& sn) {
    ctx.set_result(json::serialize(json::object{{"snapshotId", sn.id},
                                                {"volumeId", sn.source_volume_id},
                                                {"size", std::to_string(sn.size)},
                                                {"adoptedSize", std::to_string(sn.adopted_size)}}));
    ctx.report_progress({100, "done", 0, 0, 0});
    return Status::Ok();
  };
  if (auto sn = (*b)->get_snapshot(w->project_name, w->snapshot_id); sn.ok()) {
    auto owner = sn->labels.find(kOwnerLabel);
    if (owner != sn->labels.end() && owner->second == ctx.workflow_id()) return done(*sn);
  }
  ManageSnapshotRequest r;
  r.id = w->snapshot_id;
  r.reference = w->reference;
  r.project_name = w->project_name;
  r.volume_id = w->volume_id;
  r.name = w->name;
  r.fingerprint = w->fingerprint;
  r.labels[kOwnerLabel] = ctx.workflow_id();
  auto sn = (*b)->manage_snapshot(r);
  if (!sn.ok()) return sn.status();
  return done(*sn);
}

Status manage_snapshot_undo(Service::Impl& s, StepContext& ctx) {
  auto w = ManageWork::from_json(ctx.request());
  if (!w.ok()) return Status::Ok();
  auto b = s.backend_locked(w->cluster_id);
  if (!b.ok()) return b.status();
  auto sn = (*b)->get_snapshot(w->project_name, w->snapshot_id);
  if (sn.status().code() == Code::kNotFound) return Status::Ok();
  if (!sn.ok()) return sn.status();
  auto owner = sn->labels.find(kOwnerLabel);
  if (owner == sn->labels.end() || owner->second != ctx.workflow_id()) return Status::Ok();
  return (*b)->unmanage_snapshot(w->project_name, w->snapshot_id).status();
}

Status manage_undo(Service::Impl& s, StepContext& ctx) {
  auto w = ManageWork::from_json(ctx.request());
  if (!w.ok()) return Status::Ok();
  auto b = s.backend_locked(w->cluster_id);
  if (!b.ok()) return b.status();
  auto v = (*b)->get_volume(w->project_name, w->volume_id);
  if (v.status().code() == Code::kNotFound) return Status::Ok();
  if (!v.ok()) return v.status();
  auto owner = v->labels.find(kOwnerLabel);
  if (owner == v->labels.end() || owner->second != ctx.workflow_id()) return Status::Ok();
  return (*b)->unmanage_volume(w->project_name, w->volume_id).status();
}

}  // namespace

Status register_manage_volume(WorkflowEngine& engine, Service::Impl& s) {
  if (Status st =
          engine.register_type({kManageVolume, {make_step("manage", s, manage_step, manage_undo)}});
      !st.ok())
    return st;
  return engine.register_type(
      {kManageSnapshot, {make_step("manage", s, manage_snapshot_step, manage_snapshot_undo)}});
}

}  // namespace dmscore::detail
