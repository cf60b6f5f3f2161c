#pragma once
// LightbitsBackend::Impl: the driver's state and its REST helpers (calls with retries, answer
// readers, polling), shared by the control plane (lightbits_backend.cpp) and the data path
// (lightbits_data.cpp).

#include <boost/json.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "backends/lightos_json.hpp"
#include "backends/nvme_host.hpp"
#include "base/backoff.hpp"
#include "base/call_scope.hpp"
#include "base/endpoint.hpp"
#include "copy/device_io.hpp"
#include "dmscore/http/api_client.hpp"
#include "dmscore/http/client.hpp"
#include "dmscore/lightbits_backend.hpp"

namespace dmscore {

namespace json = boost::json;

using namespace detail::lightos;  // NOLINT: the readers are the driver's own

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

  // POST volumes with `acl` as the volume's ACL, then waits until it is Available.
  Result<Volume> create(LightbitsBackend& self, const CreateVolumeRequest& req,
                        const std::vector<std::string>& acl);

  // The data path (lightbits_data.cpp).
  std::mutex data_mu;
  std::shared_ptr<detail::NvmeHost> nvme;   // once the host NQN is known
  std::string subsystem_nqn;                // from clusterinfo, once read
  std::vector<std::string> nvme_endpoints;  // "host:port", once read
  Result<std::shared_ptr<detail::NvmeHost>> nvme_host();
  Status learn_data_endpoints();
  // What one open made to reach the data; undone when its device is closed.
  struct Exposure;
  // Makes the volume whose raw answer is `raw` reachable from this host (its ACL), connects
  // and opens its device node.
  // `size`: the bytes to expose (0: the volume's own size).
  Result<detail::DeviceFile> open_device(const json::value& raw, const std::string& project,
                                         bool writable, Exposure& exposure,
                                         const DataAccess& access, std::uint64_t size = 0);
  Result<std::pair<detail::DeviceFile, std::shared_ptr<Exposure>>> open_volume(
      const std::string& project, const std::string& id, bool writable, const DataAccess& access);
  // Undoes what a record names (release_data).
  Status release(const std::string& resource);

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

}  // namespace dmscore
