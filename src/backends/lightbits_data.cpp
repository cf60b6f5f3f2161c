// The Lightbits data path: a snapshot read through a temporary thin volume made from it, a
// volume through its ACL, both reached over NVMe/TCP from this host (nvme_host.hpp).
//
//   open_snapshot_data                          open_volume_data / open_volume_sink
//   record temp-volume:<project>/<name>         this host in the ACL already? ── yes ─┐
//   POST volumes {sourceSnapshotUUID,           record acl:<project>/<id>             │
//     acl: [host NQN], owner label} → Available PUT acl += host NQN (If-Match)        │
//                      └──────────────┬─────────────────────────────────────────────┘
//                                     ▼
//                  connect to the subsystem (record nvme:<nqn> first), the namespace's
//                  device node by nsid, opened (O_DIRECT where accepted)
//   destroyed: device closed, connection dropped (disconnected when nobody uses it),
//   then, newest first: the ACL entry removed (If-Match), the temporary volume deleted.

#include <algorithm>
#include <cstring>

#include "backends/lightbits_impl.hpp"
#include "base/util.hpp"

namespace dmscore {

namespace {

constexpr const char* kTempPrefix = "dms-read-";
constexpr const char* kTempVolume = "temp-volume:";
constexpr const char* kAcl = "acl:";
constexpr const char* kNvme = "nvme:";

bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

std::vector<std::string> acl_of(const json::value& v) {
  std::vector<std::string> out;
  const json::object* o = v.if_object();
  const json::value* acl = o ? o->if_contains("acl") : nullptr;
  const json::object* ao = acl ? acl->if_object() : nullptr;
  const json::value* values = ao ? ao->if_contains("values") : nullptr;
  if (values && values->is_array())
    for (const auto& x : values->as_array())
      if (x.is_string()) out.emplace_back(x.as_string());
  return out;
}

// "<project>/<rest>" of a resource after its kind.
std::pair<std::string, std::string> split(const std::string& s) {
  const auto slash = s.find('/');
  if (slash == std::string::npos) return {"", ""};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

}  // namespace

struct LightbitsBackend::Impl::Exposure {
  Impl* d = nullptr;
  std::vector<std::string> made;  // resources, in the order made (connections excepted)
  std::shared_ptr<detail::NvmeHost::Use> use;
  explicit Exposure(Impl* impl) : d(impl) {}
  ~Exposure() {
    use.reset();
    for (auto it = made.rbegin(); it != made.rend(); ++it) (void)d->release(*it);
  }
  // Records `resource` (through the caller's record, then here) before it is made.
  Status record(const DataAccess& access, const std::string& resource) {
    if (access.record) {
      if (Status s = access.record(resource); !s.ok()) return s;
    }
    if (!starts(resource, kNvme)) made.push_back(resource);
    return Status::Ok();
  }
};

Result<std::shared_ptr<detail::NvmeHost>> LightbitsBackend::Impl::nvme_host() {
  std::lock_guard lock(data_mu);
  if (nvme) return nvme;
  auto nqn = detail::resolve_host_nqn(options.host_nqn, options.host_nqn_file);
  if (!nqn.ok()) return error(nqn.status().code(), nqn.status().message());
  detail::NvmeHostOptions o;
  o.cli = options.nvme_cli;
  o.sysfs_root = options.sysfs_root;
  o.dev_root = options.dev_root;
  o.host_nqn = *nqn;
  o.command_timeout = options.nvme_command_timeout;
  o.device_timeout = options.nvme_device_timeout;
  o.env = env;
  nvme = detail::NvmeHost::shared(o);
  return nvme;
}

Status LightbitsBackend::Impl::learn_data_endpoints() {
  {
    std::lock_guard lock(data_mu);
    if (!subsystem_nqn.empty() && !nvme_endpoints.empty()) return Status::Ok();
  }
  auto ci = call("GET", "/api/v2/clusterinfo");
  if (!ci.ok()) return ci.status();
  Fields f(&*ci, "clusterinfo");
  std::string nqn = f.str("subsystemNQN");
  std::vector<std::string> eps = f.strings("nvmeEndpoints");
  if (!f.ok()) return error(Code::kUnavailable, "malformed answer: " + f.problem());
  if (eps.empty()) {  // older clusters: each node's nvmeEndpoint
    auto nodes = call("GET", "/api/v2/nodes");
    if (!nodes.ok()) return nodes.status();
    Fields nf(&*nodes, "nodes");
    const json::array* list = nf.array("nodes");
    if (!nf.ok()) return error(Code::kUnavailable, "malformed answer: " + nf.problem());
    for (const auto& n : *list) {
      Fields one(&n, "node");
      std::string e = one.str("nvmeEndpoint", false);
      if (!e.empty()) eps.push_back(e);
    }
  }
  if (nqn.empty()) return error(Code::kUnavailable, "reports no subsystemNQN");
  if (eps.empty()) return error(Code::kUnavailable, "reports no NVMe endpoint (nvmeEndpoints)");
  std::lock_guard lock(data_mu);
  subsystem_nqn = nqn;
  nvme_endpoints = eps;
  return Status::Ok();
}

Result<detail::DeviceFile> LightbitsBackend::Impl::open_device(const json::value& raw,
                                                               const std::string& project,
                                                               bool writable, Exposure& exp,
                                                               const DataAccess& access,
                                                               std::uint64_t size) {
  auto host = nvme_host();
  if (!host.ok()) return host.status();
  if (Status s = learn_data_endpoints(); !s.ok()) return s;
  auto found = found_of(raw, project);
  if (!found.ok()) return found.status();
  const Volume& v = found->volume;
  Fields f(&raw, "volume");
  const std::uint64_t nsid = f.u64("nsid");
  if (!f.ok() || nsid == 0 || nsid > 0xFFFFFFFEu)
    return error(Code::kUnavailable, "malformed answer: volume field nsid: not a namespace id");
  const std::string& me = (*host)->options().host_nqn;
  const std::string path = base(project) + "/volumes/" + http::url_encode(v.id);
  std::vector<std::string> acl = acl_of(raw);
  std::string etag = found->etag;
  auto granted = [&] {
    return std::find(acl.begin(), acl.end(), me) != acl.end() ||
           std::find(acl.begin(), acl.end(), "ALLOW_ANY") != acl.end();
  };
  if (!granted()) {
    if (Status s = exp.record(access, std::string(kAcl) + project + "/" + v.id); !s.ok()) return s;
    auto backoff = backoff_until(operation_deadline());
    for (;;) {
      std::vector<std::string> want;
      for (const auto& a : acl)
        if (a != "ALLOW_NONE") want.push_back(a);
      want.push_back(me);
      json::object body{{"UUID", v.id},
                        {"acl", json::object{{"values", json::array(want.begin(), want.end())}}}};
      int status = 0;
      auto put = call("PUT", path, json::serialize(body), {{"If-Match", etag}}, false, &status);
      if (put.ok()) break;
      if (status == 412 && backoff.wait()) {  // changed meanwhile: read it again
        auto again = call("GET", path);
        if (!again.ok()) return again.status();
        acl = acl_of(*again);
        etag = etag_of(*again);
        if (granted()) break;
        continue;
      }
      return Status(put.status().code(),
                    put.status().message() + "; the cluster refused adding this host (" + me +
                        ") to the ACL of volume " + v.id +
                        ": let the service's credential update volumes in project " + project +
                        ", or add the host NQN to the volume's ACL");
    }
  }
  auto use = (*host)->use(subsystem_nqn, nvme_endpoints,
                          [&](const std::string& r) { return exp.record(access, r); });
  if (!use.ok()) return error(use.status().code(), use.status().message());
  exp.use = *use;
  auto dev = (*host)->device(subsystem_nqn, static_cast<std::uint32_t>(nsid), access.stop);
  if (!dev.ok())
    return error(dev.status().code(), "volume " + v.id + ": " + dev.status().message());
  auto file = detail::DeviceFile::open(*dev, writable, size ? size : v.size, options.direct_io);
  if (!file.ok())
    return error(file.status().code(), "volume " + v.id + ": " + file.status().message());
  return file;
}

Result<std::unique_ptr<BlockSource>> LightbitsBackend::open_snapshot_data(
    const std::string& project, const std::string& id, const DataAccess& access) {
  Impl& d = *impl_;
  auto sn = get_snapshot(project, id);
  if (!sn.ok()) return sn.status();
  if (sn->state != SnapshotState::kAvailable)
    return d.error(Code::kFailedPrecondition,
                   "snapshot " + id + " is " + std::string(to_string(sn->state)));
  auto host = d.nvme_host();
  if (!host.ok()) return host.status();
  auto exp = std::make_shared<Impl::Exposure>(&d);
  // LightOS exposes volumes, not snapshots: a thin volume made from it, this host alone in its
  // ACL, named and labelled after its owner so that a crash leaves it findable.
  std::string owner = access.owner;
  if (owner.empty()) owner = "once-" + detail::random_hex(*d.env, 8);
  const std::string name = std::string(kTempPrefix) + id + "-" + owner;
  if (Status s = exp->record(access, std::string(kTempVolume) + project + "/" + name); !s.ok())
    return s;
  CreateVolumeRequest cv;
  cv.project_name = project;
  cv.name = name;
  cv.size = sn->size;
  cv.replica_count = 1;
  cv.sector_size = sn->sector_size;
  cv.source_snapshot_id = id;
  cv.labels[kOwnerLabel] = owner;
  auto made = d.create(*this, cv, {(*host)->options().host_nqn});
  if (!made.ok() && made.status().code() == Code::kAlreadyExists) {
    // Made by this owner before (a retry after a dropped path): use it.
    auto again = find_volume(project, name);
    if (again.ok() && again->labels.count(kOwnerLabel) && again->labels.at(kOwnerLabel) == owner &&
        again->source_snapshot_id == id)
      made = d.wait<Volume>(
          [&] { return get_volume(project, again->id); },
          [](const Volume& v) -> Result<bool> { return v.state == VolumeState::kAvailable; },
          "volume " + again->id);
  }
  if (!made.ok()) {
    if (made.status().code() == Code::kPermissionDenied)
      return Status(made.status().code(),
                    made.status().message() + "; reading snapshot " + id +
                        " needs a temporary volume made from it: let the service's credential "
                        "create volumes in project " +
                        project);
    return made.status();
  }
  auto raw = d.call("GET", d.base(project) + "/volumes/" + http::url_encode(made->id));
  if (!raw.ok()) return raw.status();
  // The snapshot's size, not the thin volume's (which a cluster may round up).
  auto dev = d.open_device(*raw, project, false, *exp, access, sn->size);
  if (!dev.ok()) return dev.status();
  return std::unique_ptr<BlockSource>(
      std::make_unique<detail::DeviceSource>(std::move(dev).value(), exp));
}

// An Available volume's device, this host in its ACL.
Result<std::pair<detail::DeviceFile, std::shared_ptr<LightbitsBackend::Impl::Exposure>>>
LightbitsBackend::Impl::open_volume(const std::string& project, const std::string& id,
                                    bool writable, const DataAccess& access) {
  auto raw = call("GET", base(project) + "/volumes/" + http::url_encode(id));
  if (!raw.ok()) return raw.status();
  auto v = to_volume(*raw, project);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable)
    return error(Code::kFailedPrecondition,
                 "volume " + id + " is " + std::string(to_string(v->state)));
  auto exp = std::make_shared<Exposure>(this);
  auto dev = open_device(*raw, project, writable, *exp, access);
  if (!dev.ok()) return dev.status();
  return std::make_pair(std::move(dev).value(), std::move(exp));
}

Result<std::unique_ptr<BlockSource>> LightbitsBackend::open_volume_data(const std::string& project,
                                                                        const std::string& id,
                                                                        const DataAccess& access) {
  auto opened = impl_->open_volume(project, id, false, access);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<BlockSource>(
      std::make_unique<detail::DeviceSource>(std::move(opened->first), std::move(opened->second)));
}

Result<std::unique_ptr<BlockSink>> LightbitsBackend::open_volume_sink(const std::string& project,
                                                                      const std::string& id,
                                                                      bool fresh,
                                                                      const DataAccess& access) {
  auto opened = impl_->open_volume(project, id, true, access);
  if (!opened.ok()) return opened.status();
  // A thin Lightbits volume made for the copy reads zeros where nothing was written.
  return std::unique_ptr<BlockSink>(std::make_unique<detail::DeviceSink>(
      std::move(opened->first), fresh, std::move(opened->second)));
}

Status LightbitsBackend::release_data(const std::string& resource) {
  return impl_->release(resource);
}

Status LightbitsBackend::Impl::release(const std::string& resource) {
  if (starts(resource, kNvme)) {
    auto host = nvme_host();
    if (!host.ok()) return Status::Ok();  // no host NQN: nothing was ever connected
    Status s = (*host)->release(resource.substr(std::strlen(kNvme)));
    return s.ok() ? s : error(s.code(), s.message());
  }
  if (starts(resource, kTempVolume)) {
    auto [project, name] = split(resource.substr(std::strlen(kTempVolume)));
    if (project.empty() || !starts(name, kTempPrefix))
      return Status::InvalidArgument("not a temporary volume: " + resource);
    auto r = call("GET", base(project) + "/volumes?name=" + http::url_encode(name));
    if (!r.ok()) return r.status().is_not_found() ? Status::Ok() : r.status();
    Fields f(&*r, "volume list");
    const json::array* a = f.array("volumes");
    if (!f.ok()) return error(Code::kUnavailable, "malformed answer: " + f.problem());
    for (const auto& raw : *a) {
      auto v = to_volume(raw, project);
      if (!v.ok()) return v.status();
      if (v->name != name) continue;
      // Only what carries the owner its name was made with.
      auto owner = v->labels.find(kOwnerLabel);
      if (owner == v->labels.end() || owner->second.empty() ||
          name.size() <= owner->second.size() ||
          name.compare(name.size() - owner->second.size(), std::string::npos, owner->second) != 0)
        return error(Code::kFailedPrecondition,
                     "volume " + v->id + " is named " + name +
                         " but does not carry the label of the workflow that name says made it; "
                         "left alone");
      if (v->state == VolumeState::kDeleting) continue;
      Status s = remove(base(project) + "/volumes/" + http::url_encode(v->id), "volume " + v->id);
      if (!s.ok() && !s.is_not_found()) return s;
    }
    return Status::Ok();
  }
  if (starts(resource, kAcl)) {
    auto [project, id] = split(resource.substr(std::strlen(kAcl)));
    if (project.empty() || id.empty())
      return Status::InvalidArgument("not an ACL entry: " + resource);
    auto host = nvme_host();
    if (!host.ok()) return Status::Ok();
    const std::string& me = (*host)->options().host_nqn;
    const std::string path = base(project) + "/volumes/" + http::url_encode(id);
    auto backoff = backoff_until(operation_deadline());
    for (;;) {
      auto cur = call("GET", path);
      if (!cur.ok()) return cur.status().is_not_found() ? Status::Ok() : cur.status();
      std::vector<std::string> acl = acl_of(*cur);
      if (std::find(acl.begin(), acl.end(), me) == acl.end()) return Status::Ok();
      std::vector<std::string> rest;
      for (const auto& a : acl)
        if (a != me) rest.push_back(a);
      if (rest.empty()) rest.push_back("ALLOW_NONE");
      json::object body{{"UUID", id},
                        {"acl", json::object{{"values", json::array(rest.begin(), rest.end())}}}};
      int status = 0;
      auto put =
          call("PUT", path, json::serialize(body), {{"If-Match", etag_of(*cur)}}, false, &status);
      if (put.ok() || put.status().is_not_found()) return Status::Ok();
      if (status != 412 || !backoff.wait()) return put.status();
    }
  }
  return Status::InvalidArgument("not a resource of this driver: " + resource.substr(0, 256));
}

}  // namespace dmscore
