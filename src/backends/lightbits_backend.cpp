#include "dmscore/lightbits_backend.hpp"

#include "backends/lightbits_impl.hpp"

namespace dmscore {

LightbitsBackend::LightbitsBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LightbitsBackend::~LightbitsBackend() = default;

Result<std::unique_ptr<LightbitsBackend>> LightbitsBackend::open(LightbitsOptions options) {
  if (options.endpoints.empty()) return Status::InvalidArgument("endpoints: none given");
  if (options.operation_timeout.count() <= 0 || options.initial_backoff.count() <= 0 ||
      options.max_backoff < options.initial_backoff)
    return Status::InvalidArgument("operation_timeout/backoff: must be positive and ordered");
  auto impl = std::make_unique<Impl>();
  if (options.label.empty()) options.label = options.endpoints.front();
  http::ClientOptions co;
  for (const auto& e : options.endpoints) {
    auto parsed = detail::parse_net_endpoint(e, options.plain_http ? "http" : "https", "endpoints");
    if (!parsed.ok()) return parsed.status();
    if (!parsed->tls() && !options.plain_http)
      return Status::InvalidArgument("endpoints: " + e.substr(0, 256) +
                                     " would carry the service's token in the clear; only "
                                     "https:// endpoints are used");
    co.endpoints.push_back(parsed->url());
  }
  impl->endpoint_urls = co.endpoints;
  co.ca_file = options.ca_file;
  co.insecure = options.insecure;
  co.connect_timeout = options.connect_timeout;
  co.request_timeout = options.request_timeout;
  co.max_response_bytes = options.max_response_bytes;
  co.user_agent = "libdmscore-lightbits";
  co.headers = {{"Expect", ""}};
  if (options.max_connections < 1 || options.max_connections > 256)
    return Status::InvalidArgument("max_connections: must be 1..256");
  auto c = http::Client::create(co);  // checks the options (ca_file, endpoints) now
  if (!c.ok()) return c.status();
  impl->client_options = co;
  impl->idle.push_back(std::move(c).value());
  impl->clients = 1;
  impl->env = options.env ? options.env : Env::Default();
  impl->options = std::move(options);
  return std::unique_ptr<LightbitsBackend>(new LightbitsBackend(std::move(impl)));
}

Result<ClusterInfo> LightbitsBackend::info() {
  Impl& d = *impl_;
  auto ci = d.call("GET", "/api/v2/clusterinfo");
  if (!ci.ok()) return ci.status();
  Fields f(&*ci, "clusterinfo");
  ClusterInfo out;
  out.id = f.str("UUID");
  out.name = f.str("clusterName", false);
  out.subsystem_nqn = f.str("subsystemNQN");
  out.api_endpoints = f.strings("apiEndpoints");
  out.discovery_endpoints = f.strings("discoveryEndpoints");
  if (!f.ok()) return d.error(Code::kUnavailable, "malformed answer: " + f.problem());
  if (out.id.size() != 36)
    return d.error(Code::kUnavailable, "malformed answer: clusterinfo field UUID: not a UUID");
  {
    std::lock_guard lock(d.id_mu);
    d.cluster_id = out.id;
  }
  if (out.name.empty()) out.name = "lightbits-" + out.id.substr(0, 8);
  // The version is informative: a cluster that does not answer it is still attached.
  if (auto v = d.call("GET", "/api/v2/version"); v.ok() && v->is_object()) {
    Fields vf(&*v, "version");
    out.version = vf.str("version", false);
    if (out.version.empty()) out.version = vf.str("Version", false);
    if (out.version.size() > 128) out.version.resize(128);
  }
  auto nodes = d.call("GET", "/api/v2/nodes");
  if (!nodes.ok()) return nodes.status();
  Fields nf(&*nodes, "nodes");
  const json::array* list = nf.array("nodes");
  if (!nf.ok()) return d.error(Code::kUnavailable, "malformed answer: " + nf.problem());
  for (const auto& n : *list) {
    Fields one(&n, "node");
    ClusterServer s;
    s.name = one.str("name");
    s.endpoint = one.str("nvmeEndpoint", false);
    s.state = one.str("state", false);
    if (!one.ok()) return d.error(Code::kUnavailable, "malformed answer: " + one.problem());
    out.servers.push_back(std::move(s));
  }
  return out;
}

Result<VolumePage> LightbitsBackend::list_volumes(const std::string& project,
                                                  const PageRequest& page) {
  auto p = impl_->list_page<Volume>(
      project, page, "volumes",
      [this](const json::value& v, const std::string& pr) { return impl_->to_volume(v, pr); });
  if (!p.ok()) return p.status();
  return VolumePage{std::move(p->first), std::move(p->second)};
}

Result<Volume> LightbitsBackend::get_volume(const std::string& project, const std::string& id) {
  auto r = impl_->call("GET", impl_->base(project) + "/volumes/" + http::url_encode(id));
  if (!r.ok()) return r.status();
  return impl_->to_volume(*r, project);
}

Result<Volume> LightbitsBackend::find_volume(const std::string& project, const std::string& name) {
  Impl& d = *impl_;
  auto r = d.call("GET", d.base(project) + "/volumes?name=" + http::url_encode(name));
  if (!r.ok()) return r.status();
  Fields f(&*r, "volume list");
  const json::array* a = f.array("volumes");
  if (!f.ok()) return d.error(Code::kUnavailable, "malformed answer: " + f.problem());
  for (const auto& v : *a) {
    auto vol = d.to_volume(v, project);
    if (!vol.ok()) return vol.status();
    if (vol->name == name) return vol;
  }
  return d.error(Code::kNotFound, "no volume named " + name + " in project " + project);
}

Result<Volume> LightbitsBackend::create_volume(const CreateVolumeRequest& req) {
  return impl_->create(*this, req, {"ALLOW_NONE"});
}

Result<Volume> LightbitsBackend::Impl::create(LightbitsBackend& self,
                                              const CreateVolumeRequest& req,
                                              const std::vector<std::string>& acl) {
  Impl& d = *this;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.size == 0 || req.size % 4096 != 0)
    return Status::InvalidArgument("size: must be a positive multiple of 4096");
  json::object body{{"name", req.name},
                    {"size", std::to_string(req.size) + "b"},
                    {"replicaCount", req.replica_count},
                    {"sectorSize", req.sector_size},
                    {"compression", req.compression ? "true" : "false"},
                    {"acl", json::object{{"values", json::array(acl.begin(), acl.end())}}},
                    {"projectName", req.project_name}};
  if (!req.source_snapshot_id.empty()) body["sourceSnapshotUUID"] = req.source_snapshot_id;
  auto labels = d.marked(req.labels);
  if (!labels.ok()) return labels.status();
  if (!labels->empty()) body["labels"] = labels_json(*labels);
  auto r = d.call("POST", d.base(req.project_name) + "/volumes", json::serialize(body), {}, true);
  if (!r.ok()) return r.status();
  auto created = d.to_volume(*r, req.project_name);
  if (!created.ok()) return created.status();
  std::string id = created->id;
  return d.wait<Volume>([&] { return self.get_volume(req.project_name, id); },
                        [&](const Volume& v) -> Result<bool> {
                          if (v.state == VolumeState::kFailed)
                            return d.error(Code::kUnavailable,
                                           "volume " + id + " ended Failed while being created");
                          if (v.state == VolumeState::kDeleting)
                            return d.error(Code::kAborted, "volume " + id + " is being deleted");
                          return v.state == VolumeState::kAvailable;
                        },
                        "volume " + id);
}

Status LightbitsBackend::mark_volume_available(const std::string& project, const std::string& id) {
  // A Lightbits volume becomes Available on its own; this checks that it has.
  auto v = get_volume(project, id);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable)
    return impl_->error(Code::kFailedPrecondition,
                        "volume " + id + " is " + std::string(to_string(v->state)));
  return Status::Ok();
}

Status LightbitsBackend::delete_volume(const std::string& project, const std::string& id) {
  return impl_->remove(impl_->base(project) + "/volumes/" + http::url_encode(id), "volume " + id);
}

Result<SnapshotPage> LightbitsBackend::list_snapshots(const std::string& project,
                                                      const PageRequest& page) {
  auto p = impl_->list_page<Snapshot>(
      project, page, "snapshots",
      [this](const json::value& v, const std::string& pr) { return impl_->to_snapshot(v, pr); });
  if (!p.ok()) return p.status();
  return SnapshotPage{std::move(p->first), std::move(p->second)};
}

Result<Snapshot> LightbitsBackend::get_snapshot(const std::string& project, const std::string& id) {
  auto r = impl_->call("GET", impl_->base(project) + "/snapshots/" + http::url_encode(id));
  if (!r.ok()) return r.status();
  return impl_->to_snapshot(*r, project);
}

Result<Snapshot> LightbitsBackend::find_snapshot(const std::string& project,
                                                 const std::string& name) {
  Impl& d = *impl_;
  auto r = d.call("GET", d.base(project) + "/snapshots?Name=" + http::url_encode(name));
  if (!r.ok()) return r.status();
  Fields f(&*r, "snapshot list");
  const json::array* a = f.array("snapshots");
  if (!f.ok()) return d.error(Code::kUnavailable, "malformed answer: " + f.problem());
  for (const auto& v : *a) {
    auto s = d.to_snapshot(v, project);
    if (!s.ok()) return s.status();
    if (s->name == name) return s;
  }
  return d.error(Code::kNotFound, "no snapshot named " + name + " in project " + project);
}

Result<Snapshot> LightbitsBackend::create_snapshot(const CreateSnapshotRequest& req) {
  Impl& d = *impl_;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.description.size() > 256)
    return Status::InvalidArgument("description: longer than 256 bytes");
  json::object body{{"name", req.name},
                    {"sourceVolumeUUID", req.source_volume_id},
                    {"projectName", req.project_name}};
  if (!req.description.empty()) body["description"] = req.description;
  auto labels = d.marked(req.labels);
  if (!labels.ok()) return labels.status();
  if (!labels->empty()) body["labels"] = labels_json(*labels);
  auto r = d.call("POST", d.base(req.project_name) + "/snapshots", json::serialize(body), {}, true);
  if (!r.ok()) return r.status();
  auto created = d.to_snapshot(*r, req.project_name);
  if (!created.ok()) return created.status();
  std::string id = created->id;
  return d.wait<Snapshot>(
      [&] { return get_snapshot(req.project_name, id); },
      [&](const Snapshot& s) -> Result<bool> {
        if (s.state == SnapshotState::kFailed)
          return d.error(Code::kUnavailable, "snapshot " + id + " ended Failed while being taken");
        if (s.state == SnapshotState::kDeleting)
          return d.error(Code::kAborted, "snapshot " + id + " is being deleted");
        return s.state == SnapshotState::kAvailable;
      },
      "snapshot " + id);
}

Status LightbitsBackend::delete_snapshot(const std::string& project, const std::string& id) {
  return impl_->remove(impl_->base(project) + "/snapshots/" + http::url_encode(id),
                       "snapshot " + id);
}

// ---- adopting what exists ----

Result<std::vector<ManageableObject>> LightbitsBackend::list_manageable_volumes() {
  Impl& d = *impl_;
  std::vector<ManageableObject> out;
  Status s = d.for_all("volumes", [&](const json::value& v) -> Result<std::string> {
    auto one = d.found_of(v, "");
    if (!one.ok()) return one.status();
    out.push_back(d.manageable_of(one->volume, one->hosts, one->etag));
    return one->volume.id;
  });
  if (!s.ok()) return s;
  return out;
}

namespace {

// "<project>/<name>" of a Lightbits candidate. INVALID_ARGUMENT naming ref.
Result<std::pair<std::string, std::string>> split_reference(const std::string& ref) {
  const auto slash = ref.find('/');
  if (slash == std::string::npos || !validate_object_name(ref.substr(0, slash), "ref").ok() ||
      !validate_object_name(ref.substr(slash + 1), "ref").ok())
    return Status::InvalidArgument("ref: " + ref.substr(0, 256) +
                                   " is not a Lightbits volume reference (<project>/<name>)");
  return std::pair{ref.substr(0, slash), ref.substr(slash + 1)};
}

}  // namespace

Result<Volume> LightbitsBackend::manage_volume(const ManageVolumeRequest& req) {
  Impl& d = *impl_;
  auto where = split_reference(req.reference);
  if (!where.ok()) return where.status();
  const std::string project = where->first, name = where->second;
  if (req.project_name != project)
    return Status::InvalidArgument("projectName: a Lightbits volume stays in its project; " +
                                   req.reference + " is in project " + project);
  if (!req.name.empty()) {
    if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  }
  if (Status s = validate_labels(req.labels, "labels"); !s.ok()) return s;
  if (d.options.service_id.empty())
    return d.error(Code::kFailedPrecondition, "the driver has no service id to mark volumes with");
  auto listed = d.call("GET", d.base(project) + "/volumes?name=" + http::url_encode(name));
  if (!listed.ok()) return listed.status();
  Fields f(&*listed, "volume list");
  const json::array* a = f.array("volumes");
  if (!f.ok()) return d.error(Code::kUnavailable, "malformed answer: " + f.problem());
  std::optional<Impl::Found> cur;
  for (const auto& v : *a) {
    auto one = d.found_of(v, project);
    if (!one.ok()) return one.status();
    if (one->volume.name == name) cur = std::move(one).value();
  }
  if (!cur) return Status::InvalidArgument("ref: no candidate at " + req.reference);
  const Volume& v = cur->volume;
  if (!req.id.empty() && req.id != v.id)
    return Status::InvalidArgument("id: a Lightbits volume keeps its UUID (" + v.id + ")");
  // Adopted already, by the same request before a restart?
  auto owner = v.labels.find(kOwnerLabel);
  auto wanted = req.labels.find(kOwnerLabel);
  auto mark = v.labels.find(kManagedByLabel);
  if (owner != v.labels.end() && wanted != req.labels.end() && owner->second == wanted->second &&
      mark != v.labels.end() && mark->second == d.options.service_id)
    return v;
  if (cur->etag.empty())
    return d.error(Code::kFailedPrecondition,
                   "volume " + v.id + " has no ETag; it cannot be changed safely");
  const ManageableObject m = d.manageable_of(v, cur->hosts, cur->etag);
  if (!m.safe_to_manage)
    return Status::InvalidArgument("ref: " + req.reference +
                                   " is not safe to manage: " + m.reason_not_safe);
  if (!req.fingerprint.empty() && req.fingerprint != cur->etag)
    return Status::FailedPrecondition("ref: " + req.reference +
                                      " changed since it was listed; list it again");
  std::map<std::string, std::string> labels = v.labels;
  for (const auto& [k, val] : req.labels) labels[k] = val;
  labels[kManagedByLabel] = d.options.service_id;
  labels[kAdoptedFromLabel] = req.reference;
  labels[kAdoptedSizeLabel] = std::to_string(v.size);
  if (labels.size() > 16)
    return Status::FailedPrecondition("ref: " + req.reference + " carries " +
                                      std::to_string(v.labels.size()) +
                                      " labels; marking it needs room for " +
                                      std::to_string(labels.size() - v.labels.size()) + " more");
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
  json::object body{{"UUID", v.id}, {"labels", labels_json(labels)}};
  if (v.size % kGiB != 0) body["size"] = std::to_string((v.size / kGiB + 1) * kGiB) + "b";
  if (!req.name.empty() && req.name != v.name) body["newName"] = req.name;
  // One update, guarded by the ETag the candidate had when it was looked at.
  http::Headers h{{"If-Match", req.fingerprint.empty() ? cur->etag : req.fingerprint}};
  int status = 0;
  auto put = d.call("PUT", d.base(project) + "/volumes/" + http::url_encode(v.id),
                    json::serialize(body), h, /*creating=*/true, &status);
  if (!put.ok()) {
    if (status == 412)
      return Status::FailedPrecondition("ref: " + req.reference +
                                        " changed while it was being managed; list it again");
    if (status == 409 && body.contains("newName"))
      return Status::AlreadyExists("name: a volume named " + req.name +
                                   " already exists in project " + project);
    return put.status();
  }
  const std::string id = v.id;
  return d.wait<Volume>([&] { return get_volume(project, id); },
                        [&](const Volume& now) -> Result<bool> {
                          if (now.state == VolumeState::kFailed)
                            return d.error(Code::kUnavailable,
                                           "volume " + id + " ended Failed while being marked");
                          return now.state == VolumeState::kAvailable;
                        },
                        "volume " + id);
}

Result<std::string> LightbitsBackend::unmanage_volume(const std::string& project,
                                                      const std::string& id) {
  Impl& d = *impl_;
  const std::string path = d.base(project) + "/volumes/" + http::url_encode(id);
  // Snapshots the service manages would be left without their volume.
  PageRequest page{1000, ""};
  for (;;) {
    auto snaps = list_snapshots(project, page);
    if (!snaps.ok()) return snaps.status();
    std::size_t n = 0;
    for (const auto& sn : snaps->snapshots) {
      auto mark = sn.labels.find(kManagedByLabel);
      n += sn.source_volume_id == id && mark != sn.labels.end() &&
           mark->second == d.options.service_id;
    }
    if (n > 0)
      return Status::FailedPrecondition("volume " + id + " has " + std::to_string(n) +
                                        " snapshot(s); delete them first");
    if (snaps->next_page_token.empty()) break;
    page.page_token = snaps->next_page_token;
  }
  auto backoff = d.backoff_until(d.operation_deadline());
  for (;;) {
    auto raw = d.call("GET", path);
    if (!raw.ok()) return raw.status();
    auto cur = d.found_of(*raw, project);
    if (!cur.ok()) return cur.status();
    const Volume& v = cur->volume;
    if (v.state != VolumeState::kAvailable)
      return Status::FailedPrecondition("volume " + id + " is " + std::string(to_string(v.state)) +
                                        "; only an Available volume can be unmanaged");
    std::map<std::string, std::string> labels = v.labels;
    for (const char* k : {kManagedByLabel, kAdoptedFromLabel, kAdoptedSizeLabel, kOwnerLabel})
      labels.erase(k);
    json::object body{{"UUID", v.id}, {"labels", labels_json(labels)}};
    int status = 0;
    auto put =
        d.call("PUT", path, json::serialize(body), {{"If-Match", cur->etag}}, false, &status);
    if (put.ok()) break;
    // 412: changed meanwhile; read the new ETag and try again.
    if (status != 412 || !backoff.wait()) return put.status();
  }
  auto settled = d.wait<Volume>(
      [&] { return get_volume(project, id); },
      [&](const Volume& now) -> Result<bool> { return now.state == VolumeState::kAvailable; },
      "volume " + id);
  if (!settled.ok()) return settled.status();
  return project + "/" + settled->name;
}

Result<std::vector<ManageableObject>> LightbitsBackend::list_manageable_snapshots() {
  Impl& d = *impl_;
  std::vector<ManageableObject> out;
  Status st = d.for_all("snapshots", [&](const json::value& v) -> Result<std::string> {
    auto sn = d.to_snapshot(v, "");
    if (!sn.ok()) return sn.status();
    Fields raw(&v, "snapshot");
    const std::string volume_name = raw.str("sourceVolumeName", false);
    ManageableObject m;
    m.reference = sn->project_name + "/" + sn->name;
    m.size = sn->size;
    m.object_id = sn->id;
    m.fingerprint = Impl::etag_of(v);
    m.source_reference =
        sn->project_name + "/" + (volume_name.empty() ? sn->source_volume_id : volume_name);
    m.extra_info = std::to_string(sn->size) + " bytes";
    auto mark = sn->labels.find(kManagedByLabel);
    if (mark != sn->labels.end() && mark->second == d.options.service_id) {
      m.reason_not_safe = "already managed";
      m.managed_id = sn->id;
    } else if (mark != sn->labels.end()) {
      m.reason_not_safe = "managed by another service (" + mark->second + ")";
    } else if (sn->labels.count(kOwnerLabel)) {
      m.reason_not_safe =
          "made by a data management service's workflow (label " + std::string(kOwnerLabel) + ")";
    } else if (sn->state != SnapshotState::kAvailable) {
      m.reason_not_safe = "state is " + std::string(to_string(sn->state));
    }
    m.safe_to_manage = m.reason_not_safe.empty();
    out.push_back(std::move(m));
    return sn->id;
  });
  if (!st.ok()) return st;
  return out;
}

Result<Snapshot> LightbitsBackend::manage_snapshot(const ManageSnapshotRequest& req) {
  Impl& d = *impl_;
  auto where = split_reference(req.reference);
  if (!where.ok()) return where.status();
  const std::string project = where->first, name = where->second;
  if (req.project_name != project)
    return Status::InvalidArgument("projectName: a Lightbits snapshot stays in its project; " +
                                   req.reference + " is in project " + project);
  auto listed = d.call("GET", d.base(project) + "/snapshots?Name=" + http::url_encode(name));
  if (!listed.ok()) return listed.status();
  Fields f(&*listed, "snapshot list");
  const json::array* a = f.array("snapshots");
  if (!f.ok()) return d.error(Code::kUnavailable, "malformed answer: " + f.problem());
  std::optional<Snapshot> found;
  std::string etag;
  for (const auto& v : *a) {
    auto sn = d.to_snapshot(v, project);
    if (!sn.ok()) return sn.status();
    if (sn->name == name) {
      found = std::move(sn).value();
      etag = Impl::etag_of(v);
    }
  }
  if (!found) return Status::InvalidArgument("ref: no candidate at " + req.reference);
  if (!req.id.empty() && req.id != found->id)
    return Status::InvalidArgument("id: a Lightbits snapshot keeps its UUID (" + found->id + ")");
  if (found->source_volume_id != req.volume_id)
    return Status::InvalidArgument("volumeId: " + req.reference + " is a snapshot of volume " +
                                   found->source_volume_id + ", not of " + req.volume_id);
  // Only a snapshot of a volume this service manages.
  auto vol = get_volume(project, req.volume_id);
  if (!vol.ok()) return vol.status();
  auto owner = vol->labels.find(kManagedByLabel);
  if (owner == vol->labels.end() || owner->second != d.options.service_id)
    return Status::InvalidArgument("volumeId: volume " + req.volume_id +
                                   " is not managed by this service; manage it first");
  if (vol->state != VolumeState::kAvailable)
    return Status::FailedPrecondition("volumeId: volume " + req.volume_id + " is " +
                                      std::string(to_string(vol->state)));
  if (etag.empty())
    return d.error(Code::kFailedPrecondition,
                   "snapshot " + found->id + " has no ETag; it cannot be checked unchanged");
  auto mark = found->labels.find(kManagedByLabel);
  if (mark != found->labels.end() && mark->second != d.options.service_id)
    return Status::InvalidArgument("ref: " + req.reference +
                                   " is not safe to manage: managed by another service (" +
                                   mark->second + ")");
  if (found->state != SnapshotState::kAvailable)
    return Status::InvalidArgument("ref: " + req.reference + " is not safe to manage: state is " +
                                   std::string(to_string(found->state)));
  if (!req.fingerprint.empty() && req.fingerprint != etag)
    return Status::FailedPrecondition("ref: " + req.reference +
                                      " changed since it was listed; list it again");
  found->adopted_from = req.reference;
  found->adopted_size = found->size;
  return *found;
}

Result<std::string> LightbitsBackend::unmanage_snapshot(const std::string& project,
                                                        const std::string& id) {
  auto sn = get_snapshot(project, id);
  if (!sn.ok()) return sn.status();
  if (auto mark = sn->labels.find(kManagedByLabel); mark != sn->labels.end())
    return Status::FailedPrecondition(
        "snapshot " + id +
        " was made by a data management service and carries its mark, which a Lightbits "
        "snapshot cannot lose; delete it or keep it");
  if (sn->state != SnapshotState::kAvailable)
    return Status::FailedPrecondition("snapshot " + id + " is " +
                                      std::string(to_string(sn->state)) +
                                      "; only an Available snapshot can be unmanaged");
  return project + "/" + sn->name;
}

}  // namespace dmscore
