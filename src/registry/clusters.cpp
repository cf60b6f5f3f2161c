// The cluster registry: attached clusters' drivers behind their gates, their records (through
// ClusterCatalog), health checks, and Service's cluster requests.

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <tuple>

#include "base/codec.hpp"
#include "base/endpoint.hpp"
#include "catalog/cluster_catalog.hpp"
#include "catalog/rows.hpp"
#include "dmscore/lightbits_backend.hpp"
#include "service/service_impl.hpp"
#include "workflows/cluster_maintenance.hpp"

namespace dmscore {

namespace fs = std::filesystem;
namespace json = boost::json;
using detail::ClusterCatalog;

std::string_view to_string(ConnectionStatus s) {
  switch (s) {
    case ConnectionStatus::kConnected:
      return "Connected";
    case ConnectionStatus::kDisconnected:
      return "Disconnected";
    case ConnectionStatus::kUnauthorized:
      return "Unauthorized";
    case ConnectionStatus::kNeedsRepair:
      return "NeedsRepair";
  }
  return "Disconnected";
}

std::string_view to_string(ClusterKind k) {
  return k == ClusterKind::kLocal ? "local" : "lightbits";
}

Result<std::optional<std::string>> local_cluster_dir(const std::string& endpoint) {
  constexpr std::string_view kScheme = "file://";
  if (endpoint.empty()) return Status::InvalidArgument("apiEndpoint: is required");
  if (endpoint.size() > 4096) return Status::InvalidArgument("apiEndpoint: longer than 4096 bytes");
  for (char c : endpoint) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return Status::InvalidArgument("apiEndpoint: contains control characters");
  }
  if (endpoint.compare(0, kScheme.size(), kScheme) != 0) return std::optional<std::string>();
  std::string path = endpoint.substr(kScheme.size());
  if (path.empty() || path[0] != '/')
    return Status::InvalidArgument(
        "apiEndpoint: a file:// endpoint needs an absolute path "
        "(file:///dir)");
  for (const auto& part : fs::path(path)) {
    if (part == "..") return Status::InvalidArgument("apiEndpoint: must not contain '..'");
  }
  std::string norm = fs::path(path).lexically_normal().string();
  if (norm.size() > 1 && norm.back() == '/') norm.pop_back();
  return std::optional<std::string>(norm);
}

// "https://host:port" for a Lightbits endpoint given as host[:port] or https://host[:port].
Result<std::string> lightbits_endpoint(const std::string& endpoint) {
  auto e = detail::parse_net_endpoint(endpoint, "https", "apiEndpoint");
  if (!e.ok()) return e.status();
  if (!e->tls())
    return Status::InvalidArgument("apiEndpoint: use file:///dir, host:port or https://host:port");
  return e->url();
}

// ---- Service::Impl: the registry ----

Result<std::shared_ptr<Backend>> Service::Impl::backend(const std::string& cluster_id,
                                                        const std::string& field) const {
  auto it = backends.find(cluster_id);
  if (it != backends.end()) return it->second;
  bool known = false;
  (void)store->read([&](Txn& t) -> Status {
    auto r = ClusterCatalog::attached_as(t, cluster_id, "");
    known = r.ok() && !r->empty();
    return Status::Ok();
  });
  if (known) return Status::Unavailable("cluster " + cluster_id + " is attached but not reachable");
  return Status::NotFound(field + ": cluster " + cluster_id + " is not attached");
}

Result<std::shared_ptr<Backend>> Service::Impl::backend_locked(
    const std::string& cluster_id) const {
  std::shared_lock lock(registry_mu);
  return backend(cluster_id);
}

LocalBackendOptions Service::Impl::local_options() const {
  LocalBackendOptions lo;
  lo.copy.threads = options.copy_threads;
  lo.copy.chunk_bytes = options.copy_chunk_bytes;
  lo.env = env;
  lo.file_group = file_gid;
  lo.log = options.log;
  return lo;
}

Status Service::Impl::open_local(const std::string& id, const std::string& dir) {
  auto b = LocalBackend::open(dir, "", local_options());
  if (!b.ok()) return b.status();
  if ((*b)->cluster_id() != id)
    return Status::FailedPrecondition("the directory " + dir + " now holds another cluster (" +
                                      (*b)->cluster_id() + ")");
  backends[id] = gated(id, std::shared_ptr<Backend>(std::move(b).value()));
  return Status::Ok();
}

std::shared_ptr<Backend> Service::Impl::gated(const std::string& id, std::shared_ptr<Backend> b) {
  auto& gate = gates[id];
  if (!gate) {
    detail::GateOptions go;
    go.max_calls = options.cluster_max_concurrent_calls;
    go.cooldown = options.cluster_breaker_cooldown;
    go.log = options.log;
    gate = std::make_shared<detail::ClusterGate>(id, go, env);
  }
  return std::make_shared<detail::GatedBackend>(std::move(b), gate);
}

namespace {

ConnectionStatus status_for(const Status& s) {
  if (s.ok()) return ConnectionStatus::kConnected;
  if (s.code() == Code::kUnauthenticated || s.code() == Code::kPermissionDenied)
    return ConnectionStatus::kUnauthorized;
  return ConnectionStatus::kDisconnected;
}

}  // namespace

std::pair<ConnectionStatus, std::string> Service::Impl::condition(const std::string& id,
                                                                  const Status& probe) {
  if (!probe.ok()) return {status_for(probe), probe.message()};
  std::shared_ptr<Backend> b;
  {
    std::shared_lock lock(registry_mu);
    if (auto it = backends.find(id); it != backends.end()) b = it->second;
  }
  if (b) {
    if (Status r = b->repair_needed(); !r.ok())
      return {ConnectionStatus::kNeedsRepair, r.message()};
  }
  return {ConnectionStatus::kConnected, ""};
}

Status Service::Impl::check_no_overlap(const std::string& dir) const {
  auto real = [](const std::string& p) {
    std::error_code ec;
    auto c = fs::weakly_canonical(p, ec);
    return ec ? fs::path(p).lexically_normal().string() : c.string();
  };
  auto nested = [](const std::string& a, const std::string& b) {  // a is b or inside b
    return a == b || (a.size() > b.size() && a.compare(0, b.size(), b) == 0 &&
                      (b == "/" || a[b.size()] == '/'));
  };
  const std::string mine = real(dir);
  std::vector<std::pair<std::string, std::string>> others;  // what, directory
  others.emplace_back("the service's data directory", real(options.data_dir));
  Status s = store->read([&](Txn& t) -> Status {
    auto rows = ClusterCatalog::entries(t);
    if (!rows.ok()) return rows.status();
    for (const auto& e : *rows) {
      if (e.kind != ClusterKind::kLocal) continue;
      auto d = local_cluster_dir(e.api_endpoint);
      if (d.ok() && *d)
        others.emplace_back("the local cluster " + e.name + " (" + e.id + ")", real(**d));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  for (const auto& [what, other] : others) {
    if (mine == other) continue;  // the same directory: attach answers ALREADY_EXISTS for it
    if (nested(mine, other) || nested(other, mine))
      return Status::FailedPrecondition("apiEndpoint: " + dir +
                                        (nested(mine, other) ? " lies inside " : " contains ") +
                                        what + " at " + other + "; clusters never overlap");
  }
  if (mine == others.front().second)
    return Status::FailedPrecondition("apiEndpoint: " + dir + " is " + others.front().first);
  return Status::Ok();
}

Status Service::Impl::check_cluster_room() const {
  auto n = detail::rows::read<std::int64_t>(*store, ClusterCatalog::count);
  if (!n.ok()) return n.status();
  if (*n < options.max_clusters) return Status::Ok();
  return Status::FailedPrecondition("apiEndpoint: " + std::to_string(*n) +
                                    " clusters are attached, the service's limit (max_clusters " +
                                    std::to_string(options.max_clusters) + "); detach one first");
}

Result<std::shared_ptr<Backend>> Service::Impl::make_lightbits(
    const std::vector<std::string>& endpoints, const std::string& label,
    const std::string& cluster_id) {
  LightbitsOptions lo;
  lo.endpoints = endpoints;
  lo.label = label;
  lo.cluster_id = cluster_id;
  lo.service_id = service_id;
  lo.plain_http = options.cluster_allow_plain_http;
  lo.ca_file = options.cluster_ca_file;
  lo.insecure = options.cluster_tls_insecure;
  lo.request_timeout = options.cluster_request_timeout;
  lo.connect_timeout = std::min(options.cluster_request_timeout, std::chrono::milliseconds(5000));
  lo.operation_timeout = options.cluster_operation_timeout;
  lo.host_nqn = options.host_nqn;
  lo.host_nqn_file = options.host_nqn_file;
  lo.nvme_cli = options.nvme_cli;
  lo.sysfs_root = options.sysfs_root;
  lo.dev_root = options.dev_root;
  lo.nvme_device_timeout = options.nvme_device_timeout;
  lo.direct_io = options.device_direct_io;
  lo.env = env;
  lo.token = [this](const std::vector<std::string>& audience) {
    return cluster_tokens->token(audience);
  };
  auto b = LightbitsBackend::open(lo);
  if (!b.ok()) return b.status();
  return std::shared_ptr<Backend>(std::move(b).value());
}

std::vector<std::string> Service::Impl::endpoints_of(
    const std::string& endpoint, const std::vector<std::string>& reported) const {
  std::vector<std::string> out{endpoint};
  for (const auto& e : reported) {
    auto parsed = detail::parse_net_endpoint(e, "https", "apiEndpoints");
    if (!parsed.ok()) {
      options.log("ignoring the endpoint " + e.substr(0, 256) + " that cluster at " + endpoint +
                  " reports: " + parsed.status().message());
      continue;
    }
    if (parsed->url() == endpoint) continue;
    if (!parsed->tls() && !options.cluster_allow_plain_http) {
      options.log("ignoring the endpoint " + e.substr(0, 256) + " that cluster at " + endpoint +
                  " reports: the service's token would travel in the clear");
      continue;
    }
    out.push_back(e);
  }
  return out;
}

Status Service::Impl::open_lightbits(const std::string& id, const std::string& endpoint) {
  std::vector<std::string> reported;
  (void)store->read([&](Txn& t) -> Status {
    auto r = ClusterCatalog::reported_endpoints(t, id);
    if (r.ok()) reported = std::move(r).value();
    return Status::Ok();
  });
  auto b = make_lightbits(endpoints_of(endpoint, reported), id, id);
  if (!b.ok()) return b.status();
  backends[id] = gated(id, *b);
  return Status::Ok();
}

Status Service::Impl::set_status(const std::string& id, ConnectionStatus s,
                                 const std::string& message) {
  return clusters_cache.write(
      *store, [&](Txn& t) { return ClusterCatalog::set_status(t, id, s, message); });
}

Result<std::vector<ClusterCatalog::Entry>> Service::Impl::cluster_entries() const {
  std::vector<ClusterCatalog::Entry> entries;
  Status s = store->read([&](Txn& t) -> Status {
    auto r = ClusterCatalog::entries(t);
    if (!r.ok()) return r.status();
    entries = std::move(r).value();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return entries;
}

void Service::Impl::sync_clusters(std::vector<std::string>& placed,
                                  std::vector<std::string>& reached) {
  auto read = cluster_entries();
  if (!read.ok()) return;
  const auto& entries = *read;
  // What to open, decided under a shared lock; opened without the lock (a local cluster's
  // recovery may take a while and requests read the registry meanwhile); kept under a short
  // exclusive one.
  std::vector<const ClusterCatalog::Entry*> missing;
  {
    std::shared_lock lock(registry_mu);
    for (const auto& e : entries)
      if (!backends.count(e.id)) missing.push_back(&e);
  }
  std::vector<std::pair<std::string, std::unique_ptr<LocalBackend>>> opened;
  for (const auto* e : missing) {
    if (e->kind != ClusterKind::kLocal) continue;
    auto dir = local_cluster_dir(e->api_endpoint);
    // Only a folder that holds a cluster already (never one to make: an empty mount point is
    // not this cluster), and not locked by another instance.
    if (!dir.ok() || !*dir || !LocalBackend::is_cluster_dir(**dir)) continue;
    auto b = LocalBackend::open(**dir, "", local_options());
    if (b.ok() && (*b)->cluster_id() == e->id) opened.emplace_back(e->id, std::move(b).value());
  }
  std::set<std::string> known;
  std::unique_lock lock(registry_mu);
  for (auto& [id, b] : opened)
    if (!backends.count(id)) backends[id] = gated(id, std::shared_ptr<Backend>(std::move(b)));
  for (const auto& e : entries) {
    known.insert(e.id);
    vanished_once.erase(e.id);
    if (!backends.count(e.id) && e.kind == ClusterKind::kLightbits)
      (void)open_lightbits(e.id, e.api_endpoint);  // opens without contacting the cluster
    if (e.kind == ClusterKind::kLocal) {
      placed.push_back("cluster:" + e.id);
      if (backends.count(e.id)) reached.push_back("cluster:" + e.id);
    }
  }
  for (auto it = backends.begin(); it != backends.end();) {
    if (known.count(it->first)) {
      ++it;
    } else if (vanished_once.insert(it->first).second) {
      ++it;  // perhaps being attached here right now: closed only if still gone next time
    } else {
      vanished_once.erase(it->first);
      it = backends.erase(it);
    }
  }
  // Workflows that must run on this instance (an attach of a local cluster it was asked for).
  placed.push_back("instance:" + instance_id);
  reached.push_back("instance:" + instance_id);
}

Status Service::Impl::load_clusters() {
  auto read = cluster_entries();
  if (!read.ok()) return read.status();
  const auto& entries = *read;
  // A Lightbits driver opens without contacting the cluster; the health checks tell.
  for (const auto& e : entries)
    if (e.kind == ClusterKind::kLightbits) (void)open_lightbits(e.id, e.api_endpoint);
  for (const auto& e : entries) {
    if (e.kind != ClusterKind::kLocal) continue;
    auto dir = local_cluster_dir(e.api_endpoint);
    // Shared store: another instance may hold the folder, or it is not visible here (an empty
    // mount point is not made a cluster); that is no news about the cluster (sync_clusters
    // takes it up when it is free).
    if (shared() && (!dir.ok() || !*dir || !LocalBackend::is_cluster_dir(**dir))) continue;
    Status os = dir.ok() && *dir ? open_local(e.id, **dir) : Status::Internal("bad endpoint");
    if (shared() && !os.ok()) continue;
    auto [status, message] = condition(e.id, os);
    if (Status w = set_status(e.id, status, message); !w.ok()) return w;
  }
  return Status::Ok();
}

Status Service::Impl::record_cluster(const ClusterInfo& info, ClusterKind kind,
                                     const std::string& endpoint, bool adopt) {
  return clusters_cache.write(*store, [&](Txn& t) {
    return ClusterCatalog::insert(t, info, kind, endpoint, adopt, now_ms());
  });
}

Status Service::Impl::update_cluster_info(const std::string& id, const ClusterInfo& info) {
  return clusters_cache.write(
      *store, [&](Txn& t) { return ClusterCatalog::update_info(t, id, info, now_ms()); });
}

Result<ClusterInfo> Service::Impl::probe(const std::string& id, const std::string& endpoint) {
  std::shared_ptr<Backend> b;
  {
    std::unique_lock lock(registry_mu);
    if (!backends.count(id)) {
      auto dir = local_cluster_dir(endpoint);
      if (dir.ok() && *dir)
        (void)open_local(id, **dir);
      else if (dir.ok())
        (void)open_lightbits(id, endpoint);
    }
    if (auto it = backends.find(id); it != backends.end()) b = it->second;
  }
  if (!b) return Status::Unavailable("cluster " + id + " has no driver open");
  auto info = b->info();
  if (info.ok() && info->id != id)
    return Status::Unavailable("the endpoint now answers as cluster " + info->id);
  return info;
}

void Service::Impl::health_loop() {
  std::unique_lock lock(health_mu);
  while (!health_cv.wait_for(lock, options.health_check_interval, [&] { return health_stop; })) {
    lock.unlock();
    check_health_once();
    lock.lock();
  }
}

void Service::Impl::check_health_once() {
  auto read = cluster_entries();
  if (!read.ok()) return;
  std::vector<ClusterCatalog::Entry> targets = std::move(read).value();
  // Probed in parallel, 8 at a time, each recorded as soon as it answers: a cluster that does
  // not answer delays no other's status.
  constexpr std::size_t kParallel = 8;
  for (std::size_t first = 0; first < targets.size(); first += kParallel) {
    std::vector<std::future<void>> probes;
    const std::size_t last = std::min(targets.size(), first + kParallel);
    for (std::size_t i = first; i < last; ++i) {
      probes.push_back(std::async(std::launch::async, [this, &e = targets[i]] {
        if (shared() && e.kind == ClusterKind::kLocal) {
          // Only the instance that holds a local cluster's folder tells its health.
          std::shared_lock lock(registry_mu);
          if (!backends.count(e.id)) return;
        }
        Status st = probe(e.id, e.api_endpoint).status();
        auto [now, message] = condition(e.id, st);
        if (now == e.access_status && message == e.status_message) return;
        if (!set_status(e.id, now, message).ok()) return;
        if (now == e.access_status) return;
        options.log("cluster " + e.id + " is now " + std::string(to_string(now)) +
                    (message.empty() ? std::string() : " (" + message + ")"));
      }));
    }
    for (auto& p : probes) p.get();
  }
}

// ---- Service: cluster requests ----

Result<WorkflowId> Clusters::attach(const AttachClusterRequest& request) {
  auto dir = local_cluster_dir(request.api_endpoint);
  if (!dir.ok()) return dir.status();
  if (!request.name.empty()) {
    if (Status s = validate_object_name(request.name, "name"); !s.ok()) return s;
  }
  // Checked again by the workflow under the registry's lock, where it is race-free.
  if (Status s = impl_->check_cluster_room(); !s.ok()) return s;
  if (!*dir) {
    auto endpoint = lightbits_endpoint(request.api_endpoint);
    if (!endpoint.ok()) return endpoint.status();
    AttachClusterRequest normal{*endpoint, request.name};
    return detail::workflow_id(
        impl_->engine->submit(kAttachCluster, json::serialize(detail::to_json(normal))));
  }
  if (!impl_->options.local_cluster_roots.empty()) {
    bool allowed = false;
    for (const auto& root : impl_->options.local_cluster_roots) {
      std::string r = fs::path(root).lexically_normal().string();
      while (r.size() > 1 && r.back() == '/') r.pop_back();
      if (**dir == r || (**dir).rfind(r == "/" ? r : r + "/", 0) == 0) allowed = true;
    }
    if (!allowed)
      return Status::PermissionDenied(
          "apiEndpoint: local clusters may only be attached under the configured roots");
  }
  if (Status s = impl_->check_no_overlap(**dir); !s.ok()) return s;
  AttachClusterRequest normal{"file://" + **dir, request.name};
  // Shared store: the folder is this instance's to check (roots, overlap) and to open, so
  // the attach runs here.
  std::vector<std::string> here;
  if (impl_->shared()) here.push_back("instance:" + impl_->instance_id);
  return detail::workflow_id(impl_->engine->submit(
      kAttachCluster, json::serialize(detail::to_json(normal)), std::move(here)));
}

Result<std::vector<Cluster>> Clusters::list() const {
  // Every write to the clusters table goes through clusters_cache.write().
  return impl_->clusters_cache.get(0, [this]() {
    return detail::rows::read<std::vector<Cluster>>(*impl_->store, ClusterCatalog::list);
  });
}

Result<Cluster> Clusters::get(const ClusterId& id) const {
  const std::string& cluster_id = id.str();
  auto c = detail::rows::read<std::optional<Cluster>>(
      *impl_->store, [&](Txn& t) { return ClusterCatalog::find(t, cluster_id); });
  if (!c.ok()) return c.status();
  if (!*c) return Status::NotFound("cluster " + cluster_id + " not found");
  return std::move(**c);
}

Result<WorkflowId> Clusters::refresh(const std::optional<ClusterId>& id) {
  detail::ClusterWork req;
  std::vector<std::string> resources;
  if (id) {
    auto c = get(*id);
    if (!c.ok())
      return c.status().code() == Code::kNotFound
                 ? Status::NotFound("clusterId: cluster " + id->str() + " not found")
                 : c.status();
    req.cluster_id = id->str();
    resources.push_back("cluster:" + id->str());
  }
  return detail::workflow_id(impl_->engine->submit(kRefreshClusters, req.to_json(), resources));
}

Status Clusters::detach(const ClusterId& id) {
  const std::string& cluster_id = id.str();
  auto c = get(id);
  if (!c.ok()) return c.status();
  // The claim keeps workflows from starting on the cluster meanwhile; no lock is held while
  // anything waits.
  auto claim = impl_->engine->claim({"cluster:" + cluster_id}, "detached");
  if (!claim.ok())
    return claim.status().message().find("running workflow") != std::string::npos
               ? Status::FailedPrecondition(claim.status().message() + "; wait for it or cancel it")
               : claim.status();
  if (Status g = impl_->groups->check_cluster_free(cluster_id); !g.ok()) return g;
  std::unique_lock lock(impl_->registry_mu);
  Status s = impl_->clusters_cache.write(
      *impl_->store, [&](Txn& t) { return ClusterCatalog::remove(t, cluster_id); });
  if (!s.ok()) return s;
  impl_->backends.erase(cluster_id);
  impl_->gates.erase(cluster_id);
  return Status::Ok();
}

Result<WorkflowId> Clusters::repair(const ClusterId& id) {
  const std::string& cluster_id = id.str();
  auto c = get(id);
  if (!c.ok()) return c.status();
  if (c->kind != ClusterKind::kLocal)
    return Status::FailedPrecondition("cluster " + cluster_id +
                                      " is a Lightbits cluster; the service repairs local ones");
  if (c->access_status != ConnectionStatus::kNeedsRepair)
    return Status::FailedPrecondition("cluster " + cluster_id + " needs no repair (it is " +
                                      std::string(to_string(c->access_status)) + ")");
  return detail::workflow_id(impl_->engine->submit(
      kRepairCluster, detail::ClusterWork{cluster_id}.to_json(), {"cluster:" + cluster_id}));
}

}  // namespace dmscore
