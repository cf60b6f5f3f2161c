#include "dmscore/service.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <tuple>

#include "base/call_scope.hpp"
#include "registry/cluster_gate.hpp"
#include "base/codec.hpp"
#include "copy/copy_options.hpp"
#include "dmscore/lightbits_backend.hpp"
#include "dmscore/local_backend.hpp"
#include "dmscore/store.hpp"
#include "copy/file_io.hpp"
#include "catalog/copy_set_catalog.hpp"
#include "service/full_copies.hpp"
#include "service/groups.hpp"
#include "store/store_cache.hpp"
#include "base/endpoint.hpp"
#include "base/util.hpp"
#include "workflows/volume_copy.hpp"

namespace dmscore {

namespace fs = std::filesystem;
namespace json = boost::json;
using detail::Fd;

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

namespace {

constexpr const char* kClusterCols =
    "id, name, kind, api_endpoint, version, subsystem_nqn, api_endpoints, discovery_endpoints, "
    "servers, access_status, data_status, attached_at, refreshed_at, status_message";

json::array to_json_array(const std::vector<std::string>& v) {
  json::array a;
  for (auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> strings_from(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (auto& e : v.as_array())
    if (e.is_string()) out.emplace_back(e.as_string());
  return out;
}

std::string servers_json(const std::vector<ClusterServer>& servers) {
  json::array a;
  for (auto& s : servers)
    a.push_back(json::object{{"name", s.name}, {"endpoint", s.endpoint}, {"state", s.state}});
  return json::serialize(a);
}

std::vector<ClusterServer> servers_from(const std::string& text) {
  std::vector<ClusterServer> out;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (auto& e : v.as_array()) {
    if (!e.is_object()) continue;
    auto get = [&](const char* k) {
      auto* f = e.as_object().if_contains(k);
      return f && f->is_string() ? std::string(f->as_string()) : std::string();
    };
    out.push_back({get("name"), get("endpoint"), get("state")});
  }
  return out;
}

ConnectionStatus connection_status(const std::string& s) {
  if (s == "Connected") return ConnectionStatus::kConnected;
  if (s == "Unauthorized") return ConnectionStatus::kUnauthorized;
  if (s == "NeedsRepair") return ConnectionStatus::kNeedsRepair;
  return ConnectionStatus::kDisconnected;
}

Cluster cluster_from(const Row& r) {
  Cluster c;
  c.id = r.text(0);
  c.name = r.text(1);
  c.kind = r.text(2) == "local" ? ClusterKind::kLocal : ClusterKind::kLightbits;
  c.version = r.text(4);
  c.subsystem_nqn = r.text(5);
  c.api_endpoints = strings_from(r.text(6));
  c.discovery_endpoints = strings_from(r.text(7));
  c.servers = servers_from(r.text(8));
  c.access_status = connection_status(r.text(9));
  c.data_status = connection_status(r.text(10));
  c.attached_at = detail::from_millis(r.int64(11));
  if (!r.is_null(12)) c.refreshed_at = detail::from_millis(r.int64(12));
  c.status_message = r.text(13);
  return c;
}

std::string json_string(const json::value& v, const char* key) {
  if (auto* o = v.if_object())
    if (auto* f = o->if_contains(key); f && f->is_string()) return std::string(f->as_string());
  return {};
}

}  // namespace

struct Service::Impl {
  Options options;
  std::shared_ptr<Env> env;
  Fd dir_lock;  // <data_dir>/.lock, held while open
  std::unique_ptr<Store> store;
  std::unique_ptr<Identity> identity;
  std::unique_ptr<Auth> auth;
  std::unique_ptr<ClusterTokenSigner> cluster_tokens;
  std::unique_ptr<WorkflowEngine> engine;

  // Held shared by operations that need an attached cluster to stay attached (submissions,
  // object deletes), exclusively by attach and detach.
  mutable std::shared_mutex registry_mu;
  std::map<std::string, std::shared_ptr<Backend>> backends;  // by cluster id

  std::unique_ptr<detail::Groups> groups;
  // The clusters table as list_clusters() answers it; every write to the table goes through it.
  detail::StoreCache<int, std::vector<Cluster>> clusters_cache{1};
  std::unique_ptr<detail::FullCopies> full_copies;
  // What groups ask of full copies' rows.
  detail::CopySetCatalog copy_set_links;

  std::atomic<std::uint64_t> copy_bytes{0};
  std::atomic<std::uint64_t> verify_bytes{0};

  std::int64_t now_ms() const { return detail::to_millis(env->now()); }

  Result<std::shared_ptr<Backend>> backend(const std::string& cluster_id,
                                           const std::string& field = "clusterId") const {
    auto it = backends.find(cluster_id);
    if (it != backends.end()) return it->second;
    bool known = false;
    (void)store->read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT 1 FROM clusters WHERE id = ?", {cluster_id});
      known = r.ok() && r->has_value();
      return Status::Ok();
    });
    if (known)
      return Status::Unavailable("cluster " + cluster_id + " is attached but not reachable");
    return Status::NotFound(field + ": cluster " + cluster_id + " is not attached");
  }

  Result<std::shared_ptr<Backend>> backend_locked(const std::string& cluster_id) const {
    std::shared_lock lock(registry_mu);
    return backend(cluster_id);
  }

  // The gid of Options::local_cluster_file_group, -1 for none.
  int file_gid = -1;

  LocalBackendOptions local_options() const {
    LocalBackendOptions lo;
    lo.copy.threads = options.copy_threads;
    lo.copy.chunk_bytes = options.copy_chunk_bytes;
    lo.env = env;
    lo.file_group = file_gid;
    lo.log = options.log;
    return lo;
  }

  Status open_local(const std::string& id, const std::string& dir) {
    auto b = LocalBackend::open(dir, "", local_options());
    if (!b.ok()) return b.status();
    if ((*b)->cluster_id() != id)
      return Status::FailedPrecondition("the directory " + dir + " now holds another cluster (" +
                                        (*b)->cluster_id() + ")");
    backends[id] = gated(id, std::shared_ptr<Backend>(std::move(b).value()));
    return Status::Ok();
  }

  // One gate per cluster, kept across reopenings of its driver (its breaker state with it).
  std::map<std::string, std::shared_ptr<detail::ClusterGate>> gates;

  // `b` behind the cluster's gate. REQUIRES: registry_mu held exclusively.
  std::shared_ptr<Backend> gated(const std::string& id, std::shared_ptr<Backend> b) {
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

  // The deadline of a caller's backend work (see CallScope), opened by every public method
  // that may reach a cluster.
  detail::CallScope caller() const {
    return detail::CallScope(env->steady_now() + options.cluster_call_deadline);
  }

  // The status a cluster has after `probe` answered: NeedsRepair when its driver says so.
  std::pair<ConnectionStatus, std::string> condition(const std::string& id, const Status& probe) {
    if (!probe.ok()) return {status_for(probe), probe.message()};
    std::shared_ptr<Backend> b;
    {
      std::shared_lock lock(registry_mu);
      if (auto it = backends.find(id); it != backends.end()) b = it->second;
    }
    if (b) {
      if (Status r = b->repair_needed(); !r.ok()) return {ConnectionStatus::kNeedsRepair, r.message()};
    }
    return {ConnectionStatus::kConnected, ""};
  }

  // FAILED_PRECONDITION when `dir` is, lies inside or contains the service's data directory or
  // another attached local cluster's directory (compared after resolving symlinks): a cluster's
  // recovery owns everything under its directory, so two must never nest.
  Status check_no_overlap(const std::string& dir) const {
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
      auto rows = t.query("SELECT id, name, api_endpoint FROM clusters WHERE kind = 'local'");
      if (!rows.ok()) return rows.status();
      for (auto& r : *rows) {
        auto d = local_cluster_dir(r.text(2));
        if (d.ok() && *d)
          others.emplace_back("the local cluster " + r.text(1) + " (" + r.text(0) + ")", real(**d));
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    for (const auto& [what, other] : others) {
      if (mine == other) continue;  // the same directory: attach answers ALREADY_EXISTS for it
      if (nested(mine, other) || nested(other, mine))
        return Status::FailedPrecondition("apiEndpoint: " + dir + (nested(mine, other) ? " lies inside " : " contains ") +
                                          what + " at " + other + "; clusters never overlap");
    }
    if (mine == others.front().second)
      return Status::FailedPrecondition("apiEndpoint: " + dir + " is " + others.front().first);
    return Status::Ok();
  }

  // `cluster_id`: the attached cluster's UUID, the audience of its tokens; empty while
  // attaching (the tokens then name the endpoint).
  Result<std::shared_ptr<Backend>> make_lightbits(const std::vector<std::string>& endpoints,
                                                  const std::string& label,
                                                  const std::string& cluster_id = "") {
    LightbitsOptions lo;
    lo.endpoints = endpoints;
    lo.label = label;
    lo.cluster_id = cluster_id;
    lo.plain_http = options.cluster_allow_plain_http;
    lo.ca_file = options.cluster_ca_file;
    lo.insecure = options.cluster_tls_insecure;
    lo.request_timeout = options.cluster_request_timeout;
    lo.connect_timeout = std::min(options.cluster_request_timeout, std::chrono::milliseconds(5000));
    lo.operation_timeout = options.cluster_operation_timeout;
    lo.env = env;
    lo.token = [this](const std::vector<std::string>& audience) {
      return cluster_tokens->token(audience);
    };
    auto b = LightbitsBackend::open(lo);
    if (!b.ok()) return b.status();
    return std::shared_ptr<Backend>(std::move(b).value());
  }

  // The attach endpoint first, then the others the cluster reported. A reported endpoint with
  // another scheme than https would carry the service's token in the clear: it is ignored
  // (and logged) unless the operator allowed plain HTTP.
  std::vector<std::string> endpoints_of(const std::string& endpoint,
                                        const std::vector<std::string>& reported) const {
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

  Status open_lightbits(const std::string& id, const std::string& endpoint) {
    std::vector<std::string> reported;
    (void)store->read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT api_endpoints FROM clusters WHERE id = ?", {id});
      if (r.ok() && *r) reported = strings_from((*r)->text(0));
      return Status::Ok();
    });
    auto b = make_lightbits(endpoints_of(endpoint, reported), id, id);
    if (!b.ok()) return b.status();
    backends[id] = gated(id, *b);
    return Status::Ok();
  }

  static ConnectionStatus status_for(const Status& s) {
    if (s.ok()) return ConnectionStatus::kConnected;
    if (s.code() == Code::kUnauthenticated || s.code() == Code::kPermissionDenied)
      return ConnectionStatus::kUnauthorized;
    return ConnectionStatus::kDisconnected;
  }

  Status set_status(const std::string& id, ConnectionStatus s, const std::string& message = "") {
    return clusters_cache.write(*store, [&](Txn& t) {
      return t
          .exec(
              "UPDATE clusters SET access_status = ?, data_status = ?, status_message = ? "
              "WHERE id = ?",
              {std::string(to_string(s)), std::string(to_string(s)), message.substr(0, 1024), id})
          .status();
    });
  }

  Status load_clusters() {
    std::vector<std::pair<std::string, std::string>> rows, remote;
    Status s = store->read([&](Txn& t) -> Status {
      auto r = t.query("SELECT id, kind, api_endpoint FROM clusters");
      if (!r.ok()) return r.status();
      for (auto& row : *r) {
        if (row.text(1) == "local")
          rows.emplace_back(row.text(0), row.text(2));
        else
          remote.emplace_back(row.text(0), row.text(2));
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    // A Lightbits driver opens without contacting the cluster; the health checks tell.
    for (auto& [id, endpoint] : remote) (void)open_lightbits(id, endpoint);
    for (auto& [id, endpoint] : rows) {
      auto dir = local_cluster_dir(endpoint);
      Status os = dir.ok() && *dir ? open_local(id, **dir) : Status::Internal("bad endpoint");
      auto [status, message] = condition(id, os);
      if (Status w = set_status(id, status, message); !w.ok()) return w;
    }
    return Status::Ok();
  }

  Status record_cluster(const ClusterInfo& info, ClusterKind kind, const std::string& endpoint,
                        bool adopt) {
    return clusters_cache.write(*store, [&](Txn& t) -> Status {
      auto existing = t.query_one("SELECT api_endpoint FROM clusters WHERE id = ?", {info.id});
      if (!existing.ok()) return existing.status();
      if (*existing) {
        if (adopt && (*existing)->text(0) == endpoint) return Status::Ok();
        return Status::AlreadyExists("cluster " + info.id + " is already attached");
      }
      return t
          .exec(
              "INSERT INTO clusters (id, name, kind, api_endpoint, version, subsystem_nqn, "
              "api_endpoints, discovery_endpoints, servers, access_status, data_status, "
              "attached_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'Connected', 'Connected', ?)",
              {info.id, info.name, std::string(to_string(kind)), endpoint, info.version,
               info.subsystem_nqn, json::serialize(to_json_array(info.api_endpoints)),
               json::serialize(to_json_array(info.discovery_endpoints)), servers_json(info.servers),
               now_ms()})
          .status();
    });
  }

  Status update_cluster_info(const std::string& id, const ClusterInfo& info) {
    return clusters_cache.write(*store, [&](Txn& t) {
      return t
          .exec(
              "UPDATE clusters SET name = ?, version = ?, subsystem_nqn = ?, api_endpoints = ?, "
              "discovery_endpoints = ?, servers = ?, access_status = 'Connected', "
              "data_status = 'Connected', status_message = '', refreshed_at = ? WHERE id = ?",
              {info.name, info.version, info.subsystem_nqn,
               json::serialize(to_json_array(info.api_endpoints)),
               json::serialize(to_json_array(info.discovery_endpoints)), servers_json(info.servers),
               now_ms(), id})
          .status();
    });
  }

  // ---- workflow steps ----

  Status attach_step(StepContext& ctx) {
    auto v = detail::parse_json(ctx.request());
    if (!v.ok()) return v.status();
    auto req = detail::attach_cluster_request_from_json(*v);
    if (!req.ok()) return req.status();
    auto dir = local_cluster_dir(req->api_endpoint);
    if (!dir.ok()) return dir.status();
    if (!*dir) return attach_lightbits(ctx, req->api_endpoint, req->name);
    const std::string endpoint = "file://" + **dir;
    std::unique_lock lock(registry_mu);
    // Already attached (possibly by this very workflow before a crash)?
    std::optional<std::string> attached_id;
    Status s = store->read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT id FROM clusters WHERE api_endpoint = ?", {endpoint});
      if (!r.ok()) return r.status();
      if (*r) attached_id = (*r)->text(0);
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (attached_id) {
      if (ctx.resumed() && ctx.var("clusterId") == *attached_id) {
        ctx.set_result(json::serialize(json::object{{"clusterId", *attached_id}}));
        return Status::Ok();
      }
      return Status::AlreadyExists("the cluster at " + endpoint + " is already attached as " +
                                   *attached_id);
    }
    if (Status o = check_no_overlap(**dir); !o.ok()) return o;
    auto b = LocalBackend::open(**dir, req->name, local_options());
    if (!b.ok()) return b.status();
    auto info = (*b)->info();
    if (!info.ok()) return info.status();
    if (backends.count(info->id))
      return Status::AlreadyExists("cluster " + info->id + " is already attached");
    ctx.set_var("clusterId", info->id);
    s = record_cluster(*info, ClusterKind::kLocal, endpoint, ctx.resumed());
    if (!s.ok()) return s;
    if (Status r = (*b)->repair_needed(); !r.ok()) {
      s = set_status(info->id, ConnectionStatus::kNeedsRepair, r.message());
      if (!s.ok()) return s;
    }
    backends[info->id] = gated(info->id, std::shared_ptr<Backend>(std::move(b).value()));
    ctx.set_result(json::serialize(json::object{{"clusterId", info->id}}));
    return Status::Ok();
  }

  Status attach_lightbits(StepContext& ctx, const std::string& given, const std::string& name) {
    auto endpoint = lightbits_endpoint(given);
    if (!endpoint.ok()) return endpoint.status();
    auto b = make_lightbits({*endpoint}, *endpoint);
    if (!b.ok()) return b.status();
    auto info = (*b)->info();
    if (!info.ok()) {
      if (info.status().code() == Code::kUnauthenticated ||
          info.status().code() == Code::kPermissionDenied) {
        auto c = identity->credentials();
        return Status::FailedPrecondition(
            "the cluster at " + *endpoint +
            " refused the service's token: import the service's public key there, then attach "
            "again. Write the key with `dmsctl get service-credentials --pem-out dms.pem` and "
            "run on the cluster: lbcli create credential --project-name=system "
            "--type=rsa256pubkey --id=" +
            c.pub_key_id + " dms.pem (" + info.status().message() + ")");
      }
      return info.status();
    }
    if (!name.empty()) info->name = name;
    std::unique_lock lock(registry_mu);
    std::optional<std::string> attached_id;
    Status s = store->read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT id FROM clusters WHERE id = ? OR api_endpoint = ?",
                           {info->id, *endpoint});
      if (!r.ok()) return r.status();
      if (*r) attached_id = (*r)->text(0);
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (attached_id) {
      if (ctx.resumed() && ctx.var("clusterId") == *attached_id) {
        ctx.set_result(json::serialize(json::object{{"clusterId", *attached_id}}));
        return Status::Ok();
      }
      return Status::AlreadyExists("cluster " + info->id + " is already attached");
    }
    ctx.set_var("clusterId", info->id);
    s = record_cluster(*info, ClusterKind::kLightbits, *endpoint, ctx.resumed());
    if (!s.ok()) return s;
    auto reopened =
        make_lightbits(endpoints_of(*endpoint, info->api_endpoints), info->id, info->id);
    backends[info->id] = gated(info->id, reopened.ok() ? *reopened : *b);
    ctx.set_result(json::serialize(json::object{{"clusterId", info->id}}));
    return Status::Ok();
  }

  // Asks a cluster who it is, opening its driver first when it is not open (a cluster that was
  // unreachable at start). UNAVAILABLE when it does not answer as the attached cluster.
  Result<ClusterInfo> probe(const std::string& id, const std::string& endpoint) {
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

  // Health checks: every interval, probe each attached cluster and record (and log) changes
  // of its connection status.
  std::thread health;
  std::mutex health_mu;
  std::condition_variable health_cv;
  bool health_stop = false;

  void health_loop() {
    std::unique_lock lock(health_mu);
    while (!health_cv.wait_for(lock, options.health_check_interval, [&] { return health_stop; })) {
      lock.unlock();
      check_health_once();
      lock.lock();
    }
  }

  void check_health_once() {
    // id, endpoint, status, message
    std::vector<std::tuple<std::string, std::string, std::string, std::string>> targets;
    (void)store->read([&](Txn& t) -> Status {
      auto r = t.query(
          "SELECT id, api_endpoint, access_status, status_message FROM clusters "
          "ORDER BY attached_at");
      if (!r.ok()) return r.status();
      for (auto& row : *r) targets.emplace_back(row.text(0), row.text(1), row.text(2), row.text(3));
      return Status::Ok();
    });
    // Probed in parallel, 8 at a time, each recorded as soon as it answers: a cluster that does
    // not answer delays no other's status.
    constexpr std::size_t kParallel = 8;
    for (std::size_t first = 0; first < targets.size(); first += kParallel) {
      std::vector<std::future<void>> probes;
      const std::size_t last = std::min(targets.size(), first + kParallel);
      for (std::size_t i = first; i < last; ++i) {
        probes.push_back(std::async(std::launch::async, [this, &t = targets[i]] {
          const auto& [id, endpoint, before, before_message] = t;
          Status st = probe(id, endpoint).status();
          auto [now, message] = condition(id, st);
          if (std::string(to_string(now)) == before && message == before_message) return;
          if (!set_status(id, now, message).ok()) return;
          if (std::string(to_string(now)) == before) return;
          options.log("cluster " + id + " is now " + std::string(to_string(now)) +
                      (message.empty() ? std::string() : " (" + message + ")"));
        }));
      }
      for (auto& p : probes) p.get();
    }
  }

  Status refresh_step(StepContext& ctx) {
    auto v = detail::parse_json(ctx.request());
    if (!v.ok()) return v.status();
    std::string only = json_string(*v, "clusterId");
    std::vector<std::pair<std::string, std::string>> targets;
    Status s = store->read([&](Txn& t) -> Status {
      auto r = only.empty() ? t.query("SELECT id, api_endpoint FROM clusters ORDER BY attached_at")
                            : t.query("SELECT id, api_endpoint FROM clusters WHERE id = ?", {only});
      if (!r.ok()) return r.status();
      for (auto& row : *r) targets.emplace_back(row.text(0), row.text(1));
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (!only.empty() && targets.empty())
      return Status::NotFound("cluster " + only + " is not attached");
    int connected = 0;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (ctx.should_stop()) return Status::Cancelled("refresh stopped");
      const auto& [id, endpoint] = targets[i];
      Result<ClusterInfo> info = probe(id, endpoint);
      auto [status, message] = condition(id, info.status());
      if (info.ok()) s = update_cluster_info(id, *info);
      if (s.ok() && status != ConnectionStatus::kConnected) s = set_status(id, status, message);
      if (status == ConnectionStatus::kConnected) ++connected;
      if (!s.ok()) return s;
      ctx.report_progress({static_cast<int>((i + 1) * 100 / targets.size()), "refresh", 0, 0, 0});
    }
    ctx.set_result(json::serialize(json::object{
        {"clusters", static_cast<std::int64_t>(targets.size())}, {"connected", connected}}));
    return Status::Ok();
  }

  Status repair_step(StepContext& ctx) {
    auto v = detail::parse_json(ctx.request());
    if (!v.ok()) return v.status();
    const std::string id = json_string(*v, "clusterId");
    auto b = backend_locked(id);
    if (!b.ok()) return b.status();
    auto* local = dynamic_cast<LocalBackend*>(detail::ungated(b->get()));
    if (!local) return Status::FailedPrecondition("cluster " + id + " is not a local cluster");
    if (local->repair_needed().ok()) {
      if (!ctx.resumed()) return Status::FailedPrecondition("cluster " + id + " needs no repair");
      // Repaired before a restart cut the workflow short; the report went with the process.
      ctx.set_result(json::serialize(json::object{{"repairedBeforeRestart", true}}));
      return set_status(id, ConnectionStatus::kConnected);
    }
    auto report = local->repair();
    if (!report.ok()) return report.status();
    if (Status s = set_status(id, ConnectionStatus::kConnected); !s.ok()) return s;
    json::object r{{"volumes", report->volumes},
                   {"snapshots", report->snapshots},
                   {"setAside", to_json_array(report->set_aside)},
                   {"missing", to_json_array(report->missing)},
                   {"previousMetadata", report->previous_metadata}};
    ctx.set_result(json::serialize(r));
    return Status::Ok();
  }

  Status register_cluster_workflows() {
    if (Status s = engine->register_type(
            {kAttachCluster, {{"attach", [this](StepContext& c) { return attach_step(c); }}}});
        !s.ok())
      return s;
    if (Status s = engine->register_type(
            {kRefreshClusters, {{"refresh", [this](StepContext& c) { return refresh_step(c); }}}});
        !s.ok())
      return s;
    return engine->register_type(
        {kRepairCluster, {{"repair", [this](StepContext& c) { return repair_step(c); }}}});
  }

  Status register_clone_workflows();
  Status finalize_snapshot_clone(
      StepContext& c, const std::function<Result<ThickCloneRequest>(StepContext&)>& load);
  Result<std::string> submit_clone(const ThickCloneRequest& req, bool snapshot);

  // The volume-copy pipeline of thick clones (full copies have their own instance).
  std::unique_ptr<detail::VolumeCopy> pipeline;

  void make_pipeline() {
    detail::VolumeCopy::Deps d;
    d.options = &options;
    d.env = env;
    d.backend = [this](const std::string& cid) { return backend_locked(cid); };
    d.copy_bytes = &copy_bytes;
    d.verify_bytes = &verify_bytes;
    pipeline = std::make_unique<detail::VolumeCopy>(std::move(d));
  }
};

// ---- thick clones ----

Status Service::Impl::register_clone_workflows() {
  auto load = [](StepContext& c) -> Result<ThickCloneRequest> {
    auto v = detail::parse_json(c.request());
    if (!v.ok()) return v.status();
    return detail::thick_clone_request_from_json(*v);
  };

  for (bool snapshot_clone : {false, true}) {
    WorkflowType type{snapshot_clone ? kThickCloneSnapshot : kThickCloneVolume, {}};

    // What the clone copies, as the pipeline sees it: the source snapshot into the destination
    // volume (the destination itself, or a hidden one for a snapshot clone).
    auto item_of = [snapshot_clone](StepContext& c,
                                    const ThickCloneRequest& r) -> std::vector<detail::CopyItem> {
      // A clone of an earlier release marked its intent as "creating".
      if (c.var("creating") == "1" && c.var("creating0").empty()) c.set_var("creating0", "1");
      detail::CopyItem it;
      it.src_cluster = r.src.cluster_id;
      it.src_project = r.src.project_name;
      it.src_snapshot_id = r.src.snap_id;
      it.dst_cluster = r.dst.cluster_id;
      it.dst_project = c.var("dstProject");
      it.dst_name = snapshot_clone ? "dms-tmp-" + c.workflow_id() : r.dst.name;
      it.dst_volume_id = c.var("dstVolumeId");
      const std::string size = c.var("dstSize");
      it.size = size.empty() ? 0 : std::stoull(size);
      it.replica = c.var("replica").empty() ? 1 : std::stoi(c.var("replica"));
      it.sector_size = c.var("sectorSize").empty() ? 4096 : std::stoi(c.var("sectorSize"));
      it.compression = c.var("compression") == "1";
      return {it};
    };

    type.steps.push_back(
        {"resolve-source", [this, load](StepContext& c) -> Status {
           auto req = load(c);
           if (!req.ok()) return req.status();
           auto src = backend_locked(req->src.cluster_id);
           if (!src.ok()) return src.status();
           auto snap = (*src)->get_snapshot(req->src.project_name, req->src.snap_id);
           if (!snap.ok()) return snap.status();
           if (snap->state != SnapshotState::kAvailable)
             return Status::FailedPrecondition("source snapshot " + snap->id + " is " +
                                               std::string(to_string(snap->state)));
           std::uint64_t size = req->dst.size.value_or(snap->size);
           if (size < snap->size)
             return Status::InvalidArgument("dst.size: must be at least the source size (" +
                                            std::to_string(snap->size) + ")");
           c.set_var("srcSize", std::to_string(snap->size));
           c.set_var("dstSize", std::to_string(size));
           c.set_var("dstProject",
                     req->dst.project_name.empty() ? req->src.project_name : req->dst.project_name);
           c.set_var("replica", std::to_string(req->dst.replica.value_or(snap->replica_count)));
           c.set_var("sectorSize",
                     std::to_string(req->dst.sector_size.value_or(snap->sector_size)));
           c.set_var("compression", req->dst.compression.value_or(snap->compression) ? "1" : "0");
           return Status::Ok();
         }});

    type.steps.push_back(
        {"create-destination",
         [this, load, item_of](StepContext& c) -> Status {
           auto req = load(c);
           if (!req.ok()) return req.status();
           if (c.var("dstProject").empty()) return Status::Ok();
           auto items = item_of(c, *req);
           Status s = pipeline->create_targets(c, items, [&c](std::size_t, const std::string& id) {
             c.set_var("dstVolumeId", id);
             return Status::Ok();
           });
           return s.code() == Code::kAlreadyExists ? s.with_prefix("dst.name") : s;
         },
         [this, load, item_of](StepContext& c) -> Status {
           auto req = load(c);
           if (!req.ok()) return req.status();
           if (c.var("dstProject").empty()) return Status::Ok();
           auto dst = backend_locked(req->dst.cluster_id);
           if (!dst.ok()) return dst.status().code() == Code::kNotFound ? Status::Ok() : dst.status();
           return pipeline->delete_targets(c, item_of(c, *req));
         }});

    type.steps.push_back({"copy", [this, load, item_of](StepContext& c) -> Status {
                            auto req = load(c);
                            if (!req.ok()) return req.status();
                            return pipeline->copy(c, item_of(c, *req), true, "copy", 0,
                                                 req->verify_clone ? 90 : 99);
                          }});

    type.steps.push_back({"verify", [this, load, item_of](StepContext& c) -> Status {
                            auto req = load(c);
                            if (!req.ok()) return req.status();
                            if (!req->verify_clone) return Status::Ok();
                            return pipeline->verify(c, item_of(c, *req));
                          }});

    if (!snapshot_clone) {
      type.steps.push_back(
          {"finalize", [this, load, item_of](StepContext& c) -> Status {
             auto req = load(c);
             if (!req.ok()) return req.status();
             if (Status s = pipeline->make_available(item_of(c, *req)); !s.ok()) return s;
             c.set_result(json::serialize(json::object{{"volumeId", c.var("dstVolumeId")},
                                                       {"clusterId", req->dst.cluster_id},
                                                       {"projectName", c.var("dstProject")}}));
             return Status::Ok();
           }});
    } else {
      type.steps.push_back({"finalize",
                            [this, load](StepContext& c) { return finalize_snapshot_clone(c, load); },
                            [this, load](StepContext& c) -> Status {
                              auto req = load(c);
                              if (!req.ok()) return req.status();
                              std::string snap_id = c.var("dstSnapshotId");
                              if (snap_id.empty()) return Status::Ok();
                              auto dst = backend_locked(req->dst.cluster_id);
                              if (!dst.ok()) return Status::Ok();
                              Status s = (*dst)->delete_snapshot(c.var("dstProject"), snap_id);
                              return s.is_not_found() ? Status::Ok() : s;
                            }});
    }
    if (Status s = engine->register_type(std::move(type)); !s.ok()) return s;
  }
  return Status::Ok();
}

// A snapshot clone's last step: the hidden volume, now whole, becomes the destination snapshot
// and goes.
Status Service::Impl::finalize_snapshot_clone(
    StepContext& c, const std::function<Result<ThickCloneRequest>(StepContext&)>& load) {
  auto req = load(c);
  if (!req.ok()) return req.status();
  auto dst = backend_locked(req->dst.cluster_id);
  if (!dst.ok()) return dst.status();
  const std::string project = c.var("dstProject");
  const std::string hidden = c.var("dstVolumeId");
  std::string snap_id = c.var("dstSnapshotId");
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
  c.set_result(json::serialize(
      json::object{{"snapshotId", snap_id}, {"clusterId", req->dst.cluster_id}, {"projectName", project}}));
  return Status::Ok();
}

// ---- Service ----

Service::Service(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Service::~Service() {
  if (impl_->health.joinable()) {
    {
      std::lock_guard lock(impl_->health_mu);
      impl_->health_stop = true;
    }
    impl_->health_cv.notify_all();
    impl_->health.join();
  }
  if (impl_->engine) impl_->engine->stop();
  impl_->engine.reset();
  impl_->full_copies.reset();
  impl_->groups.reset();
  impl_->backends.clear();
}

Result<std::unique_ptr<Service>> Service::open(Options options) {
  if (Status s = validate(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->env = options.env ? options.env : Env::Default();
  if (!options.log) {
    options.log = [](std::string_view line) {
      std::fprintf(stderr, "dmscore: %.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
  std::error_code ec;
  if (!fs::exists(options.data_dir, ec)) {
    fs::create_directories(options.data_dir, ec);
    if (ec)
      return Status::Unavailable("cannot create data_dir " + options.data_dir + ": " +
                                 ec.message());
    ::chmod(options.data_dir.c_str(), 0700);
  } else if (!fs::is_directory(options.data_dir, ec)) {
    return Status::InvalidArgument("data_dir: " + options.data_dir + " is not a directory");
  }
  if (Status s = detail::keep_private(options.data_dir, options.log); !s.ok()) return s;
  if (!options.local_cluster_file_group.empty()) {
    auto gid = detail::group_id(options.local_cluster_file_group);
    if (!gid.ok()) return gid.status();
    impl->file_gid = *gid;
  }
  impl->dir_lock =
      Fd(::open((options.data_dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!impl->dir_lock.valid()) return detail::errno_status("open " + options.data_dir + "/.lock");
  if (::flock(impl->dir_lock.get(), LOCK_EX | LOCK_NB) != 0)
    return Status::Unavailable("data_dir " + options.data_dir +
                               " is in use by another process; stop it first");
  StoreOptions so;
  so.busy_timeout_ms = static_cast<int>(options.store_busy_timeout.count());
  so.env = impl->env;
  auto store = Store::open(options.data_dir + "/dms.db", so);
  if (!store.ok()) return store.status();
  impl->store = std::move(store).value();
  impl->options = options;

  IdentityOptions io;
  io.rsa_bits = options.rsa_bits;
  io.env = impl->env;
  auto identity = Identity::open(options.data_dir + "/identity", io);
  if (!identity.ok()) return identity.status();
  impl->identity = std::move(identity).value();
  impl->cluster_tokens =
      std::make_unique<ClusterTokenSigner>(*impl->identity, ClusterTokenOptions{}, impl->env);
  AuthOptions ao;
  ao.token_ttl = options.token_ttl;
  ao.scrypt_log2_n = options.scrypt_log2_n;
  ao.max_failures = options.login_failures_per_user;
  ao.max_failures_per_source = options.login_failures_per_source;
  ao.hash_concurrency = options.password_hash_concurrency;
  ao.hash_queue = options.password_hash_queue;
  ao.audit_log_path = options.data_dir + "/audit.log";
  ao.log = options.log;
  ao.env = impl->env;
  impl->auth = std::make_unique<Auth>(*impl->store, *impl->identity, ao);
  auto boot =
      impl->auth->bootstrap_admin(options.admin_password, options.data_dir + "/admin-password");
  if (!boot.ok()) return boot.status().with_prefix("bootstrap admin");
  if (Status s = impl->load_clusters(); !s.ok()) return s;

  EngineOptions eo;
  eo.max_running_workflows = options.max_running_workflows;
  eo.threads = options.workflow_threads;
  eo.progress_persist_interval = options.progress_persist_interval;
  eo.store_retry_budget = options.store_retry_budget;
  eo.log = options.log;
  eo.env = impl->env;
  impl->engine = std::make_unique<WorkflowEngine>(*impl->store, eo);
  if (Status s = impl->register_cluster_workflows(); !s.ok()) return s;
  impl->make_pipeline();
  if (Status s = impl->register_clone_workflows(); !s.ok()) return s;
  detail::Groups::Deps gd;
  gd.store = impl->store.get();
  gd.engine = impl->engine.get();
  gd.auth = impl->auth.get();
  gd.env = impl->env;
  gd.options = &impl->options;
  gd.registry_mu = &impl->registry_mu;
  {
    Impl* raw = impl.get();
    gd.backend = [raw](const std::string& cid, const std::string& field) {
      return raw->backend(cid, field);
    };
  }
  gd.links = &impl->copy_set_links;
  impl->groups = std::make_unique<detail::Groups>(gd);
  if (Status s = impl->groups->register_workflows(); !s.ok()) return s;
  detail::FullCopies::Deps fd;
  static_cast<detail::Groups::Deps&>(fd) = gd;
  fd.groups = impl->groups.get();
  fd.copy_bytes = &impl->copy_bytes;
  fd.verify_bytes = &impl->verify_bytes;
  impl->full_copies = std::make_unique<detail::FullCopies>(std::move(fd));
  if (Status s = impl->full_copies->register_workflows(); !s.ok()) return s;
  if (Status s = impl->groups->recover(); !s.ok()) return s;
  if (Status s = impl->engine->start(); !s.ok()) return s;
  if (Status s = impl->full_copies->recover(); !s.ok()) return s;
  if (impl->options.health_check_interval.count() > 0) {
    Impl* raw = impl.get();
    impl->health = std::thread([raw] { raw->health_loop(); });
  }
  return std::unique_ptr<Service>(new Service(std::move(impl)));
}

const Options& Service::options() const { return impl_->options; }
ServiceCredentials Service::service_credentials() const { return impl_->identity->credentials(); }
Identity& Service::identity() { return *impl_->identity; }
Auth& Service::auth() { return *impl_->auth; }
ClusterTokenSigner& Service::cluster_tokens() { return *impl_->cluster_tokens; }
bool Service::ready() const { return impl_->engine && impl_->engine->ready(); }

Result<std::string> Service::attach_cluster(const AttachClusterRequest& request) {
  auto dir = local_cluster_dir(request.api_endpoint);
  if (!dir.ok()) return dir.status();
  if (!request.name.empty()) {
    if (Status s = validate_object_name(request.name, "name"); !s.ok()) return s;
  }
  if (!*dir) {
    auto endpoint = lightbits_endpoint(request.api_endpoint);
    if (!endpoint.ok()) return endpoint.status();
    AttachClusterRequest normal{*endpoint, request.name};
    return impl_->engine->submit(kAttachCluster, json::serialize(detail::to_json(normal)));
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
  return impl_->engine->submit(kAttachCluster, json::serialize(detail::to_json(normal)));
}

Result<std::vector<Cluster>> Service::list_clusters() const {
  // Every write to the clusters table goes through clusters_cache.write().
  return impl_->clusters_cache.get(0, [this]() -> Result<std::vector<Cluster>> {
    std::vector<Cluster> out;
    Status s = impl_->store->read([&](Txn& t) -> Status {
      auto r = t.query(std::string("SELECT ") + kClusterCols +
                       " FROM clusters ORDER BY attached_at, id");
      if (!r.ok()) return r.status();
      for (auto& row : *r) out.push_back(cluster_from(row));
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return out;
  });
}

Result<Cluster> Service::get_cluster(const std::string& cluster_id) const {
  std::optional<Cluster> out;
  Status s = impl_->store->read([&](Txn& t) -> Status {
    auto r = t.query_one(std::string("SELECT ") + kClusterCols + " FROM clusters WHERE id = ?",
                         {cluster_id});
    if (!r.ok()) return r.status();
    if (*r) out = cluster_from(**r);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!out) return Status::NotFound("cluster " + cluster_id + " not found");
  return *out;
}

Result<std::string> Service::refresh_clusters(const std::optional<std::string>& cluster_id) {
  json::object req;
  if (cluster_id) {
    auto c = get_cluster(*cluster_id);
    if (!c.ok())
      return c.status().code() == Code::kNotFound
                 ? Status::NotFound("clusterId: cluster " + *cluster_id + " not found")
                 : c.status();
    req["clusterId"] = *cluster_id;
  }
  std::vector<std::string> resources;
  if (cluster_id) resources.push_back("cluster:" + *cluster_id);
  return impl_->engine->submit(kRefreshClusters, json::serialize(req), resources);
}

Status Service::detach_cluster(const std::string& cluster_id) {
  auto c = get_cluster(cluster_id);
  if (!c.ok()) return c.status();
  // The claim keeps workflows from starting on the cluster meanwhile; no lock is held while
  // anything waits.
  auto claim = impl_->engine->claim({"cluster:" + cluster_id}, "detached");
  if (!claim.ok())
    return claim.status().message().find("running workflow") != std::string::npos
               ? Status::FailedPrecondition(claim.status().message() +
                                            "; wait for it or cancel it")
               : claim.status();
  if (Status g = impl_->groups->check_cluster_free(cluster_id); !g.ok()) return g;
  std::unique_lock lock(impl_->registry_mu);
  Status s = impl_->clusters_cache.write(*impl_->store, [&](Txn& t) {
    return t.exec("DELETE FROM clusters WHERE id = ?", {cluster_id}).status();
  });
  if (!s.ok()) return s;
  impl_->backends.erase(cluster_id);
  impl_->gates.erase(cluster_id);
  return Status::Ok();
}

Result<std::string> Service::repair_cluster(const std::string& cluster_id) {
  auto c = get_cluster(cluster_id);
  if (!c.ok()) return c.status();
  if (c->kind != ClusterKind::kLocal)
    return Status::FailedPrecondition("cluster " + cluster_id +
                                      " is a Lightbits cluster; the service repairs local ones");
  if (c->access_status != ConnectionStatus::kNeedsRepair)
    return Status::FailedPrecondition("cluster " + cluster_id + " needs no repair (it is " +
                                      std::string(to_string(c->access_status)) + ")");
  json::object req{{"clusterId", cluster_id}};
  return impl_->engine->submit(kRepairCluster, json::serialize(req), {"cluster:" + cluster_id});
}

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

Result<std::string> Service::thick_clone_volume(const ThickCloneRequest& request) {
  auto scope = impl_->caller();
  return impl_->submit_clone(request, false);
}

Result<std::string> Service::thick_clone_snapshot(const ThickCloneRequest& request) {
  auto scope = impl_->caller();
  return impl_->submit_clone(request, true);
}

Result<ServiceStats> Service::stats() const {
  ServiceStats out;
  Status s = impl_->store->read([&](Txn& t) -> Status {
    auto rows = t.query("SELECT type, state, COUNT(*) FROM workflows GROUP BY type, state");
    if (!rows.ok()) return rows.status();
    for (auto& r : *rows) {
      auto st = parse_workflow_state(r.text(1));
      if (st.ok()) out.workflows.push_back({r.text(0), *st, r.int64(2)});
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  out.copy_bytes_total = impl_->copy_bytes.load();
  out.verify_bytes_total = impl_->verify_bytes.load();
  std::shared_lock lock(impl_->registry_mu);
  for (const auto& [id, b] : impl_->backends)
    if (auto* local = dynamic_cast<LocalBackend*>(detail::ungated(b.get())))
      out.set_aside_files.emplace_back(id, local->set_aside_count());
  for (const auto& [id, gate] : impl_->gates) {
    auto g = gate->stats();
    out.cluster_calls.push_back({id, g.refused_busy, g.refused_open, g.timeouts, g.io_thread_calls,
                                 g.in_flight, g.open});
  }
  return out;
}

Result<Workflow> Service::get_workflow(const std::string& id) const {
  return impl_->engine->get(id);
}
Result<WorkflowPage> Service::list_workflows(const ListWorkflowsRequest& r) const {
  return impl_->engine->list(r);
}
Status Service::cancel_workflow(const std::string& id) {
  auto scope = impl_->caller();
  if (Status s = impl_->engine->cancel(id); !s.ok()) return s;
  return impl_->full_copies->workflow_cancelled();
}
Result<Workflow> Service::wait_workflow(const std::string& id,
                                        std::chrono::milliseconds timeout) const {
  return impl_->engine->wait(id, timeout);
}

// ---- consistency groups (groups.cpp) ----

Status Service::write_volume(const std::string& cluster_id, const std::string& project,
                             const std::string& volume_id, std::uint64_t offset,
                             std::string_view data, bool durable) {
  auto scope = impl_->caller();
  return impl_->groups->write_volume(cluster_id, project, volume_id, offset, data, durable);
}

Result<ConsistencyGroup> Service::create_consistency_group(const CreateGroupRequest& request) {
  auto scope = impl_->caller();
  return impl_->groups->create(request);
}

Result<GroupPage> Service::list_consistency_groups(const PageRequest& page) const {
  return impl_->groups->list(page);
}

Result<ConsistencyGroup> Service::get_consistency_group(const std::string& id) const {
  return impl_->groups->get(id);
}

Result<ConsistencyGroup> Service::update_consistency_group(const std::string& id,
                                                           const UpdateGroupRequest& request) {
  auto scope = impl_->caller();
  return impl_->groups->update(id, request);
}

Status Service::delete_consistency_group(const std::string& id) {
  auto scope = impl_->caller();
  return impl_->groups->remove(id);
}

Status Service::reset_consistency_group_status(const std::string& id, GroupStatus status,
                                               const std::string& actor) {
  return impl_->groups->reset_status(id, status, actor);
}

Status Service::force_delete_consistency_group(const std::string& id, const std::string& actor) {
  auto scope = impl_->caller();
  return impl_->groups->force_delete(id, actor);
}

Result<CgSnapshot> Service::create_cg_snapshot(const CreateCgSnapshotRequest& request) {
  auto scope = impl_->caller();
  return impl_->groups->create_cg_snapshot(request);
}

Result<CgSnapshotPage> Service::list_cg_snapshots(const PageRequest& page,
                                                  const std::string& consistency_group_id) const {
  return impl_->groups->list_cg_snapshots(page, consistency_group_id);
}

Result<CgSnapshot> Service::get_cg_snapshot(const std::string& id) const {
  return impl_->groups->get_cg_snapshot(id);
}

Status Service::delete_cg_snapshot(const std::string& id) {
  auto scope = impl_->caller();
  return impl_->groups->delete_cg_snapshot(id);
}

// ---- group full copies (full_copies.cpp) ----

Result<CopySetWork> Service::create_full_copies(const CreateFullCopiesRequest& request) {
  auto scope = impl_->caller();
  return impl_->full_copies->create(request);
}

Result<CopySetPage> Service::list_copy_sets(const std::string& group_id,
                                            const PageRequest& page) const {
  return impl_->full_copies->list(group_id, page);
}

Result<CopySet> Service::get_copy_set(const std::string& group_id,
                                      const std::string& copy_set_id) const {
  return impl_->full_copies->get(group_id, copy_set_id);
}

Result<CopySetWork> Service::copy_set_action(const std::string& group_id,
                                             const std::string& copy_set_id,
                                             const CopySetActionRequest& request) {
  auto scope = impl_->caller();
  return impl_->full_copies->act(group_id, copy_set_id, request);
}

Result<ConsistencyGroup> Service::thick_clone_consistency_group(
    const ThickCloneGroupRequest& request) {
  auto scope = impl_->caller();
  return impl_->full_copies->thick_clone_group(request);
}

}  // namespace dmscore
