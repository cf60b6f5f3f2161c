#include "dmscore/lightbits_backend.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

#include "backends/lightos_json.hpp"
#include "base/backoff.hpp"
#include "base/call_scope.hpp"
#include "base/endpoint.hpp"
#include "dmscore/http/api_client.hpp"
#include "dmscore/http/client.hpp"

namespace dmscore {

namespace json = boost::json;

using namespace detail::lightos;  // NOLINT: the readers are this file's own

struct LightbitsBackend::Impl {
  LightbitsOptions options;
  std::shared_ptr<Env> env;
  // Connections: one per call in flight, kept for reuse, at most options.max_connections. A
  // call that hangs holds its own connection and nobody else's.
  http::ClientOptions client_options;
  std::mutex pool_mu;
  std::condition_variable pool_cv;
  std::vector<std::unique_ptr<http::Client>> idle;
  int clients = 0;
  mutable std::mutex id_mu;
  std::string cluster_id;  // learnt from clusterinfo (guarded by id_mu)

  std::string known_cluster_id() const {
    if (!options.cluster_id.empty()) return options.cluster_id;
    std::lock_guard lock(id_mu);
    return cluster_id;
  }
  std::vector<std::string> endpoint_urls;

  std::string prefix() const { return "cluster " + options.label + ": "; }

  // Whom this driver's tokens are for: the attached cluster's UUID, else the one it reported,
  // else the endpoint being attached.
  std::vector<std::string> audience() {
    if (!options.cluster_id.empty()) return {options.cluster_id};
    std::lock_guard lock(id_mu);
    if (!cluster_id.empty()) return {cluster_id};
    return endpoint_urls;
  }

  Status error(Code code, const std::string& msg) const { return Status(code, prefix() + msg); }

  // A connection of the pool, waiting for one until `deadline` when all are busy.
  Result<std::unique_ptr<http::Client>> take(Env::SteadyTime deadline) {
    std::unique_lock lock(pool_mu);
    for (;;) {
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
      if (clients < options.max_connections) {
        ++clients;
        lock.unlock();
        auto c = http::Client::create(client_options);
        if (!c.ok()) {
          std::lock_guard relock(pool_mu);
          --clients;
        }
        return c;
      }
      // Connections come back when other threads' calls end; the deadline is read from Env.
      if (env->steady_now() >= deadline)
        return error(Code::kDeadlineExceeded,
                     "all " + std::to_string(options.max_connections) + " connections are busy");
      pool_cv.wait_for(lock, std::chrono::milliseconds(20));
    }
  }

  void give_back(std::unique_ptr<http::Client> c) {
    {
      std::lock_guard lock(pool_mu);
      idle.push_back(std::move(c));
    }
    pool_cv.notify_one();
  }

  // When this call must be over: the request timeout, within the caller's deadline.
  Env::SteadyTime exchange_deadline() const {
    return detail::CallScope::cap(env->steady_now() + options.request_timeout);
  }

  // One HTTP exchange; the answer whatever its status. DEADLINE_EXCEEDED when the call's time
  // ran out (the cluster did not answer, or answered too slowly).
  Result<http::ClientResponse> send(const std::string& method, const std::string& target,
                                    const std::string& body, const http::Headers& extra) {
    http::Headers headers = extra;
    if (options.token) {
      auto t = options.token(audience());
      if (!t.ok()) return t.status();
      headers.emplace_back("Authorization", "Bearer " + *t);
    }
    const auto start = env->steady_now();
    const auto deadline = exchange_deadline();
    auto client = take(deadline);
    if (!client.ok()) return client.status();
    const auto budget =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - env->steady_now());
    if (budget.count() <= 0) {
      give_back(std::move(client).value());
      return error(Code::kDeadlineExceeded,
                   "no time left for " + method + " " + target.substr(0, target.find('?')));
    }
    auto r = (*client)->request(method, target, body, headers, budget);
    give_back(std::move(client).value());
    if (!r.ok()) {
      if (env->steady_now() - start >= budget - std::chrono::milliseconds(5))
        return error(Code::kDeadlineExceeded, "no answer within " + std::to_string(budget.count()) +
                                                  " ms (" + r.status().message() + ")");
      // The client's message starts with the endpoint; say "cluster" once, with the label.
      const std::string& m = r.status().message();
      return Status(r.status().code(),
                    m.rfind(options.label, 0) == 0 ? "cluster " + m : prefix() + m);
    }
    return r;
  }

  // The Status for an error answer, from the LightOS error body {error, code, message}.
  Status map_error(const http::ClientResponse& r, const std::string& what, bool creating) const {
    std::string msg;
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    if (!ec && v.is_object()) {
      const auto& o = v.as_object();
      for (const char* k : {"message", "error"}) {
        if (auto* m = o.if_contains(k); m && m->is_string() && !m->as_string().empty()) {
          msg = std::string(m->as_string()).substr(0, 512);
          break;
        }
      }
    }
    std::string text =
        what + ": HTTP " + std::to_string(r.status) + (msg.empty() ? "" : ": " + msg);
    switch (r.status) {
      case 400:
        return error(Code::kInvalidArgument, text);
      case 401:
        return error(Code::kUnauthenticated, text + " (the cluster refuses the service's token)");
      case 403:
        return error(Code::kPermissionDenied, text);
      case 404:
        return error(Code::kNotFound, text);
      case 409:
        return error(creating ? Code::kAlreadyExists : Code::kAborted, text);
      case 412:
        return error(Code::kAborted, text);
      case 501:
        return error(Code::kUnimplemented, text);
      default:
        return error(Code::kUnavailable, text);
    }
  }

  // Pauses between retries: through Env, jittered, never past `deadline`.
  detail::Backoff backoff_until(Env::SteadyTime deadline) const {
    return detail::Backoff(*env, options.initial_backoff, options.max_backoff, deadline);
  }

  // The operation's deadline: operation_timeout, within the caller's deadline.
  Env::SteadyTime operation_deadline() const {
    return detail::CallScope::cap(env->steady_now() + options.operation_timeout);
  }

  // Sends until the answer is final: 409 (unless creating), 429 and 503 are retried with
  // backoff until the operation deadline. A 2xx answers its parsed JSON body (null when empty).
  Result<json::value> call(const std::string& method, const std::string& target,
                           const std::string& body = {}, const http::Headers& extra = {},
                           bool creating = false, int* http_status = nullptr) {
    const auto deadline = operation_deadline();
    auto backoff = backoff_until(deadline);
    const std::string what = method + " " + target.substr(0, target.find('?'));
    for (;;) {
      auto r = send(method, target, body, extra);
      if (!r.ok()) return r.status();
      if (http_status) *http_status = r->status;
      if (r->status >= 200 && r->status < 300) {
        if (r->body.empty()) return json::value();
        boost::system::error_code ec;
        json::value v = json::parse(r->body, ec);
        if (ec) return error(Code::kUnavailable, "malformed answer to " + what + ": not JSON");
        return v;
      }
      bool retry = !terminal_http(r->status) && r->status != 412 && !(r->status == 409 && creating);
      if (!retry || !backoff.wait()) {
        Status s = map_error(*r, what, creating);
        if (retry)
          return Status(s.code() == Code::kAborted ? Code::kAborted : Code::kUnavailable,
                        s.message() + " (still after retrying for " +
                            std::to_string(options.operation_timeout.count() / 1000) + " s)");
        return s;
      }
    }
  }

  std::string base(const std::string& project) const {
    return "/api/v2/projects/" + http::url_encode(project);
  }

  Result<Volume> to_volume(const json::value& v, const std::string& project) const {
    Fields f(&v, "volume");
    Volume out;
    out.id = f.str("UUID");
    out.name = f.str("name");
    out.project_name = f.str("projectName", false);
    if (out.project_name.empty()) out.project_name = project;
    out.size = f.u64("size");
    out.replica_count = f.small("replicaCount", 1, 3, 1);
    out.sector_size = f.small("sectorSize", 512, 4096, 4096);
    out.compression = f.flag("compression");
    std::string state = f.str("state");
    out.source_snapshot_id = f.str("sourceSnapshotUUID", false);
    out.created_at = parse_time(f.str("creationTime", false));
    out.labels = f.labels("labels");
    if (!f.ok()) return error(Code::kUnavailable, "malformed answer: " + f.problem());
    if (auto a = out.labels.find(kAdoptedFromLabel); a != out.labels.end()) {
      out.adopted_from = a->second;
      if (auto z = out.labels.find(kAdoptedSizeLabel); z != out.labels.end())
        std::from_chars(z->second.data(), z->second.data() + z->second.size(), out.adopted_size);
    }
    if (out.sector_size != 512 && out.sector_size != 4096)
      return error(Code::kUnavailable,
                   "malformed answer: volume field sectorSize: not 512 or 4096");
    auto st = volume_state(state);
    if (!st.ok()) return error(Code::kUnavailable, "malformed answer: " + st.status().message());
    out.state = *st;
    out.cluster_id = known_cluster_id();
    return out;
  }

  Result<Snapshot> to_snapshot(const json::value& v, const std::string& project) const {
    Fields f(&v, "snapshot");
    Snapshot out;
    out.id = f.str("UUID");
    out.name = f.str("name");
    out.project_name = f.str("projectName", false);
    if (out.project_name.empty()) out.project_name = project;
    out.size = f.u64("size");
    out.source_volume_id = f.str("sourceVolumeUUID", false);
    out.description = f.str("description", false);
    out.replica_count = f.small("replicaCount", 1, 3, 1);
    out.sector_size = f.small("sectorSize", 512, 4096, 4096);
    out.compression = f.flag("compression");
    std::string state = f.str("state");
    out.created_at = parse_time(f.str("creationTime", false));
    out.labels = f.labels("labels");
    if (!f.ok()) return error(Code::kUnavailable, "malformed answer: " + f.problem());
    auto st = snapshot_state(state);
    if (!st.ok()) return error(Code::kUnavailable, "malformed answer: " + st.status().message());
    out.state = *st;
    out.cluster_id = known_cluster_id();
    return out;
  }

  static std::string etag_of(const json::value& v) {
    if (v.is_object())
      if (auto* e = v.as_object().if_contains("ETag"); e && e->is_string())
        return std::string(e->as_string());
    return {};
  }

  // Polls `get` until `settled` says so (or the object is gone when `gone_ok`).
  template <typename T, typename Get, typename Settled>
  Result<T> wait(Get get, Settled settled, const std::string& what) {
    auto backoff = backoff_until(operation_deadline());
    for (;;) {
      auto r = get();
      if (!r.ok()) return r.status();
      auto verdict = settled(*r);
      if (!verdict.ok()) return verdict.status();
      if (*verdict) return r;
      if (!backoff.wait())
        return error(Code::kDeadlineExceeded,
                     what + " did not settle within the operation's time (" +
                         std::to_string(options.operation_timeout.count() / 1000) + " s at most)");
    }
  }

  // One page of a project's `kind` ("volumes" or "snapshots"), each converted by `convert`:
  // LightOS pages by a limit and the UUID of the last object seen, which is the next token.
  template <class T, class Convert>
  Result<std::pair<std::vector<T>, std::string>> list_page(const std::string& project,
                                                           const PageRequest& page,
                                                           const std::string& kind,
                                                           Convert convert) {
    if (page.page_size < 0 || page.page_size > 1000)
      return Status::InvalidArgument("pageSize: must be 0..1000");
    const int limit = page.page_size == 0 ? 100 : page.page_size;
    std::string q = "?limit=" + std::to_string(limit);
    if (!page.page_token.empty()) q += "&offsetUUID=" + http::url_encode(page.page_token);
    auto r = call("GET", base(project) + "/" + kind + q);
    if (!r.ok()) return r.status();
    Fields f(&*r, kind.substr(0, kind.size() - 1) + " list");
    const json::array* a = f.array(kind.c_str());
    if (!f.ok()) return error(Code::kUnavailable, "malformed answer: " + f.problem());
    std::pair<std::vector<T>, std::string> out;
    for (const auto& v : *a) {
      Result<T> one = convert(v, project);
      if (!one.ok()) return one.status();
      out.first.push_back(std::move(one).value());
    }
    if (static_cast<int>(out.first.size()) == limit) out.second = out.first.back().id;
    return out;
  }

  // `labels` checked, with the service's mark added (what it creates, it manages).
  Result<std::map<std::string, std::string>> marked(
      std::map<std::string, std::string> labels) const {
    if (Status s = validate_labels(labels, "labels"); !s.ok()) return s;
    if (!options.service_id.empty()) labels[kManagedByLabel] = options.service_id;
    if (labels.size() > 16)
      return Status::InvalidArgument("labels: at most 15 (one is the service's)");
    return labels;
  }

  // A volume as a manageable list shows it. `hosts`: its connectedHosts; `etag`: its ETag.
  // Why an object whose labels are `labels` is not a candidate, as far as its marks tell: this
  // service's ("already managed"), another's, or a service workflow's; "" when none.
  std::string mark_reason(const std::map<std::string, std::string>& labels) const {
    auto mark = labels.find(kManagedByLabel);
    if (mark != labels.end() && mark->second == options.service_id) return "already managed";
    if (mark != labels.end()) return "managed by another service (" + mark->second + ")";
    if (labels.count(kOwnerLabel))
      return "made by a data management service's workflow (label " + std::string(kOwnerLabel) +
             ")";
    return "";
  }

  ManageableObject manageable_of(const Volume& v, const std::vector<std::string>& hosts,
                                 const std::string& etag) const {
    ManageableObject m;
    m.reference = v.project_name + "/" + v.name;
    m.size = v.size;
    m.object_id = v.id;
    m.fingerprint = etag;
    m.extra_info = std::to_string(v.size) + " bytes";
    m.reason_not_safe = mark_reason(v.labels);
    if (m.reason_not_safe == "already managed") {
      m.managed_id = v.id;
      if (!v.adopted_from.empty())
        m.extra_info =
            "adopted from " + v.adopted_from + " (" + std::to_string(v.adopted_size) + " bytes)";
    }
    if (!m.reason_not_safe.empty()) {
      // marked
    } else if (v.state != VolumeState::kAvailable) {
      m.reason_not_safe = "state is " + std::string(to_string(v.state));
    } else if (!hosts.empty()) {
      std::string list;
      for (const auto& h : hosts) list += (list.empty() ? "" : ", ") + h;
      m.reason_not_safe = "connected to host(s): " + list.substr(0, 512);
    } else if (options.service_id.empty()) {
      m.reason_not_safe = "the driver has no service id to mark it with";
    }
    m.safe_to_manage = m.reason_not_safe.empty();
    return m;
  }

  // A volume read with what only its raw answer holds (connected hosts, ETag).
  struct Found {
    Volume volume;
    std::vector<std::string> hosts;
    std::string etag;
  };
  Result<Found> found_of(const json::value& v, const std::string& project) const {
    auto vol = to_volume(v, project);
    if (!vol.ok()) return vol.status();
    Fields f(&v, "volume");
    Found out{std::move(vol).value(), {}, etag_of(v)};
    if (const auto* h = v.as_object().if_contains("connectedHosts"); h && !h->is_null())
      out.hosts = f.strings("connectedHosts");
    if (!f.ok()) return error(Code::kUnavailable, "malformed answer: " + f.problem());
    return out;
  }

  // Every `kind` ("volumes", "snapshots") of every project (the binding without a project), page
  // by page, each raw object given to `each`, which answers its UUID (the next page starts after
  // the last). At most 100000.
  template <class Each>
  Status for_all(const std::string& kind, Each each) {
    constexpr std::size_t kPage = 1000, kMax = 100000;
    std::string after;
    for (std::size_t seen = 0;;) {
      std::string target = "/api/v2/" + kind + "?limit=" + std::to_string(kPage);
      if (!after.empty()) target += "&offsetUUID=" + http::url_encode(after);
      auto r = call("GET", target);
      if (!r.ok()) return r.status();
      Fields f(&*r, kind.substr(0, kind.size() - 1) + " list");
      const json::array* a = f.array(kind.c_str());
      if (!f.ok()) return error(Code::kUnavailable, "malformed answer: " + f.problem());
      for (const auto& v : *a) {
        Result<std::string> id = each(v);
        if (!id.ok()) return id.status();
        after = *id;
      }
      seen += a->size();
      if (a->size() < kPage || seen >= kMax) return Status::Ok();
    }
  }

  // DELETE with If-Match: reads the ETag, deletes, re-reads on 412, and waits for 404.
  Status remove(const std::string& path, const std::string& what) {
    auto backoff = backoff_until(operation_deadline());
    for (;;) {
      auto cur = call("GET", path);
      if (!cur.ok()) return cur.status();
      http::Headers h;
      if (std::string tag = etag_of(*cur); !tag.empty()) h.emplace_back("If-Match", tag);
      int status = 0;
      auto r = call("DELETE", path, {}, h, false, &status);
      if (r.ok()) break;
      if (r.status().code() == Code::kNotFound) return Status::Ok();
      // 412: someone changed it meanwhile; read the new ETag and try again.
      if (status != 412 || !backoff.wait()) return r.status();
    }
    for (;;) {
      int status = 0;
      auto r = call("GET", path, {}, {}, false, &status);
      if (!r.ok() && r.status().code() == Code::kNotFound) return Status::Ok();
      if (!r.ok()) return r.status();
      if (!backoff.wait())
        return error(Code::kDeadlineExceeded,
                     what + " still present when the operation's time ran out (" +
                         std::to_string(options.operation_timeout.count() / 1000) +
                         " s at most) after its delete");
    }
  }
};

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
  Impl& d = *impl_;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.size == 0 || req.size % 4096 != 0)
    return Status::InvalidArgument("size: must be a positive multiple of 4096");
  json::object body{{"name", req.name},
                    {"size", std::to_string(req.size) + "b"},
                    {"replicaCount", req.replica_count},
                    {"sectorSize", req.sector_size},
                    {"compression", req.compression ? "true" : "false"},
                    {"acl", json::object{{"values", json::array{"ALLOW_NONE"}}}},
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
  return d.wait<Volume>([&] { return get_volume(req.project_name, id); },
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

namespace {
constexpr const char* kNoDataPath =
    "the data path to a Lightbits cluster (NVMe/TCP to its discovery endpoints and subsystem "
    "NQN) is not available in this build";
}

Result<std::unique_ptr<BlockSource>> LightbitsBackend::open_snapshot_data(const std::string&,
                                                                          const std::string&) {
  return impl_->error(Code::kUnimplemented, kNoDataPath);
}
Result<std::unique_ptr<BlockSource>> LightbitsBackend::open_volume_data(const std::string&,
                                                                        const std::string&) {
  return impl_->error(Code::kUnimplemented, kNoDataPath);
}
Result<std::unique_ptr<BlockSink>> LightbitsBackend::open_volume_sink(const std::string&,
                                                                      const std::string&, bool) {
  return impl_->error(Code::kUnimplemented, kNoDataPath);
}

}  // namespace dmscore
