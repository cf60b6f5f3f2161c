#include "dmscore/http/router.hpp"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>

#include "base/codec.hpp"
#include "dmscore/service.hpp"
#include "http/api_json.hpp"
#include "http/route_table.hpp"

namespace dmscore::http {

namespace json = boost::json;
using dmscore::detail::ObjectReader;

using namespace routing;

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

namespace routing {

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80           ? 1
                      : (c >> 5) == 0x6  ? 2
                      : (c >> 4) == 0xe  ? 3
                      : (c >> 3) == 0x1e ? 4
                                         : 0;
    bool ok = len != 0 && i + len <= s.size();
    std::uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // No overlong forms, no surrogates, nothing past U+10FFFF.
    if (ok && len > 1) {
      static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace routing

Response error_response(int grpc_code, std::string_view message) {
  Response r;
  r.status = http_status(static_cast<Code>(grpc_code));
  r.body = json::serialize(json::object{
      {"code", grpc_code}, {"message", valid_utf8(message)}, {"details", json::array()}});
  return r;
}

namespace {

// Prometheus counters of the HTTP layer.
struct HttpMetrics {
  static constexpr std::array<double, 11> kBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,   1,    2.5,   10};
  std::mutex mu;
  std::map<std::pair<std::string, int>, std::uint64_t> requests;  // (route, status)
  std::array<std::uint64_t, kBuckets.size()> buckets{};
  std::uint64_t count = 0;
  double sum = 0;

  void record(const std::string& route, int status, double seconds) {
    std::lock_guard lock(mu);
    ++requests[{route.empty() ? "unmatched" : route, status}];
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      if (seconds <= kBuckets[i]) ++buckets[i];
    ++count;
    sum += seconds;
  }
};

// A label value escaped for the Prometheus text format.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

struct Router::Impl {
  const Route* route_of(const std::string& method, std::string_view target) const;
  Service& svc;
  RouterOptions options;
  RouteTable table;
  mutable HttpMetrics metrics;

  std::string render_metrics() const {
    std::string out;
    auto stats = svc.stats();
    out += "# HELP dms_workflows Workflows in the store by type and state.\n";
    out += "# TYPE dms_workflows gauge\n";
    if (stats.ok()) {
      for (const auto& w : stats->workflows)
        out += "dms_workflows{type=\"" + label(w.type) + "\",state=\"" +
               std::string(to_string(w.state)) + "\"} " + std::to_string(w.count) + "\n";
    }
    out += "# HELP dms_copy_bytes_total Data bytes written by thick clones since start.\n";
    out += "# TYPE dms_copy_bytes_total counter\n";
    out +=
        "dms_copy_bytes_total " + std::to_string(stats.ok() ? stats->copy_bytes_total : 0) + "\n";
    out += "# HELP dms_verify_bytes_total Bytes compared by verifyClone since start.\n";
    out += "# TYPE dms_verify_bytes_total counter\n";
    out += "dms_verify_bytes_total " + std::to_string(stats.ok() ? stats->verify_bytes_total : 0) +
           "\n";
    out +=
        "# HELP dms_local_cluster_files_set_aside_total Files a local cluster moved to its "
        "lost+found/ since start.\n";
    out += "# TYPE dms_local_cluster_files_set_aside_total counter\n";
    if (stats.ok()) {
      for (const auto& [cluster, n] : stats->set_aside_files)
        out += "dms_local_cluster_files_set_aside_total{cluster=\"" + label(cluster) + "\"} " +
               std::to_string(n) + "\n";
    }
    out +=
        "# HELP dms_cluster_calls_refused_total Callers refused at once by a cluster's gate, by "
        "reason (busy: its calls in flight at the limit; open: it had just timed out).\n";
    out += "# TYPE dms_cluster_calls_refused_total counter\n";
    if (stats.ok()) {
      for (const auto& c : stats->cluster_calls) {
        out += "dms_cluster_calls_refused_total{cluster=\"" + label(c.cluster_id) +
               "\",reason=\"busy\"} " + std::to_string(c.refused_busy) + "\n";
        out += "dms_cluster_calls_refused_total{cluster=\"" + label(c.cluster_id) +
               "\",reason=\"open\"} " + std::to_string(c.refused_open) + "\n";
      }
    }
    out += "# HELP dms_cluster_call_timeouts_total Calls to a cluster that ran out of time.\n";
    out += "# TYPE dms_cluster_call_timeouts_total counter\n";
    if (stats.ok()) {
      for (const auto& c : stats->cluster_calls)
        out += "dms_cluster_call_timeouts_total{cluster=\"" + label(c.cluster_id) + "\"} " +
               std::to_string(c.timeouts) + "\n";
    }
    out += "# HELP dms_cluster_calls_in_flight Callers' calls to a cluster running now.\n";
    out += "# TYPE dms_cluster_calls_in_flight gauge\n";
    if (stats.ok()) {
      for (const auto& c : stats->cluster_calls)
        out += "dms_cluster_calls_in_flight{cluster=\"" + label(c.cluster_id) + "\"} " +
               std::to_string(c.in_flight) + "\n";
    }
    if (stats.ok() && !stats->instance_id.empty()) {
      // Scale-out: every instance answers for itself, its id on every line.
      const std::string inst = "{instance=\"" + label(stats->instance_id) + "\"}";
      auto metric = [&](const char* name, const char* type, const char* help, std::uint64_t v) {
        out += std::string("# HELP ") + name + " " + help + "\n";
        out += std::string("# TYPE ") + name + " " + type + "\n";
        out += name + inst + " " + std::to_string(v) + "\n";
      };
      metric("dms_instance_lease_held", "gauge",
             "1 while this instance holds its lease (renewed within the lease time).",
             svc.ready() ? 1 : 0);
      metric("dms_instance_workflows_running", "gauge",
             "Workflows this instance runs, has queued or has parked now.",
             static_cast<std::uint64_t>(stats->running_here));
      metric("dms_instance_heartbeats_total", "counter", "Lease renewals.",
             stats->lease.heartbeats);
      metric("dms_instance_heartbeat_failures_total", "counter", "Lease renewals that failed.",
             stats->lease.heartbeat_failures);
      metric("dms_instance_workflows_claimed_total", "counter", "Workflows this instance claimed.",
             stats->lease.claimed);
      metric("dms_instance_takeovers_total", "counter",
             "Workflows claimed from an instance whose lease had run out.",
             stats->lease.taken_over);
      metric("dms_instance_fenced_total", "counter",
             "Runs stopped here because another instance had taken their workflow over.",
             stats->lease.fenced);
    }
    std::lock_guard lock(metrics.mu);
    out += "# HELP dms_http_requests_total HTTP requests by route and status code.\n";
    out += "# TYPE dms_http_requests_total counter\n";
    for (const auto& [k, n] : metrics.requests)
      out += "dms_http_requests_total{route=\"" + label(k.first) + "\",code=\"" +
             std::to_string(k.second) + "\"} " + std::to_string(n) + "\n";
    out += "# HELP dms_http_request_duration_seconds Time to handle a request.\n";
    out += "# TYPE dms_http_request_duration_seconds histogram\n";
    for (std::size_t i = 0; i < HttpMetrics::kBuckets.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof le, "%g", HttpMetrics::kBuckets[i]);
      out += "dms_http_request_duration_seconds_bucket{le=\"" + std::string(le) + "\"} " +
             std::to_string(metrics.buckets[i]) + "\n";
    }
    out += "dms_http_request_duration_seconds_bucket{le=\"+Inf\"} " +
           std::to_string(metrics.count) + "\n";
    char sum[64];
    std::snprintf(sum, sizeof sum, "%.6f", metrics.sum);
    out += "dms_http_request_duration_seconds_sum " + std::string(sum) + "\n";
    out += "dms_http_request_duration_seconds_count " + std::to_string(metrics.count) + "\n";
    return out;
  }

  void log(std::string_view line) const {
    if (options.log) options.log(line);
  }

  // The route for `method` and the decoded `segs`, and its path variables; nullptr when none
  // matches (`path_matched` tells whether another method would, `allow` lists them).
  const Route* match(const std::string& method, const std::vector<std::string>& segs,
                     std::map<std::string, std::string>* vars_out, bool* path_matched,
                     std::string* allow) const {
    const Route* found = nullptr;
    for (const auto& route : table.routes()) {
      if (route.segments.size() != segs.size()) continue;
      std::map<std::string, std::string> vars;
      bool ok = true;
      for (std::size_t i = 0; i < segs.size() && ok; ++i) {
        const std::string& p = route.segments[i];
        if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
          if (segs[i].empty())
            ok = false;
          else
            vars[p.substr(1, p.size() - 2)] = segs[i];
        } else {
          ok = p == segs[i];
        }
      }
      if (!ok) continue;
      if (path_matched) *path_matched = true;
      if (route.method != method) {
        if (allow) *allow += (allow->empty() ? "" : ", ") + route.method;
        continue;
      }
      // A literal segment wins over a variable one ("clusters/refresh" over "clusters/{id}").
      if (!found || std::count(route.pattern.begin(), route.pattern.end(), '{') <
                        std::count(found->pattern.begin(), found->pattern.end(), '{')) {
        found = &route;
        if (vars_out) *vars_out = std::move(vars);
      }
    }
    return found;
  }

  Response from_status(const Status& s, const Request& req) const {
    if (s.code() == Code::kInternal || s.code() == Code::kUnknown || s.code() == Code::kDataLoss) {
      log("request " + req.request_id + " " + req.method + " failed: " + s.to_string());
      return error_response(static_cast<int>(Code::kInternal),
                            "internal error; quote request id " + req.request_id);
    }
    Response r = error_response(static_cast<int>(s.code()), s.message());
    if (s.code() == Code::kResourceExhausted || s.code() == Code::kUnavailable)
      r.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds(s)));
    if (s.code() == Code::kUnauthenticated) r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }

  Result<Principal> authenticate(const Request& req, Dialect dialect) const {
    // Keystone's header, as OpenStack clients send a token they were given.
    // (and as Huawei Cloud's clients send their IAM token to SMS).
    if (std::string_view k = req.header("X-Auth-Token");
        (dialect == Dialect::kCinder || dialect == Dialect::kSms) && !k.empty())
      return svc.auth().verify(std::string(k));
    std::string_view h = req.header("Authorization");
    if (h.empty()) return Status::Unauthenticated("a bearer token is required; log in first");
    if (h.size() < 7 || !iequals(h.substr(0, 7), "Bearer "))
      return Status::Unauthenticated("the Authorization header must be: Bearer <token>");
    std::string_view token = h.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    return svc.auth().verify(std::string(token));
  }

  Response handle(const Request& req) const;
  void build();
};

Response Router::Impl::handle(const Request& req) const {
  std::string_view target = req.target;
  if (target.empty() || target[0] != '/')
    return error_response(static_cast<int>(Code::kInvalidArgument),
                          "target: must be an absolute path");
  Params params;
  std::string_view path = target, q;
  if (auto qm = target.find('?'); qm != std::string_view::npos) {
    path = target.substr(0, qm);
    q = target.substr(qm + 1);
  }
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    auto k = unescape(kv.substr(0, eq), true);
    auto v = unescape(eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1), true);
    if (!k || !v)
      return error_response(static_cast<int>(Code::kInvalidArgument), "query: malformed escape");
    if (params.query.count(*k))
      return error_response(static_cast<int>(Code::kInvalidArgument),
                            k->substr(0, 64) + ": given more than once");
    params.query[*k] = *v;
  }
  std::vector<std::string> raw = split_path(path);
  std::vector<std::string> segs;
  for (const auto& r : raw) {
    auto d = unescape(r, false);
    if (!d)
      return error_response(static_cast<int>(Code::kInvalidArgument), "path: malformed escape");
    segs.push_back(*d);
  }
  bool path_matched = false;
  std::string allow;
  const Route* match = this->match(req.method, segs, &params.path, &path_matched, &allow);
  if (!match) {
    if (path_matched) {
      Response r = error_response(static_cast<int>(Code::kUnimplemented),
                                  "method " + req.method.substr(0, 16) + " is not allowed here");
      r.status = 405;
      r.headers.emplace_back("Allow", allow);
      return r;
    }
    if (path == "/v3/sources" || path.substr(0, 12) == "/v3/sources/") {
      // As Huawei Cloud's API gateway answers for an API it does not publish.
      return json_response(404,
                           json::object{{"error_code", "APIGW.0101"},
                                        {"error_msg",
                                         "The API does not exist or has not been published in the "
                                         "environment"},
                                        {"request_id", req.request_id}});
    }
    if (path.substr(0, 4) == "/v3/")
      return cinder_fault(Status::NotFound("The resource could not be found."));
    return error_response(static_cast<int>(Code::kNotFound), "no such route");
  }
  Call call{req, std::move(params), {}, {}};
  const bool cinder = match->dialect == Dialect::kCinder;
  const bool sms = match->dialect == Dialect::kSms;
  auto failed = [&](const Status& s, int http_status) {
    if (sms) {
      if (s.code() == Code::kInternal || s.code() == Code::kUnknown ||
          s.code() == Code::kDataLoss) {
        log("request " + req.request_id + " " + req.method + " failed: " + s.to_string());
        return sms_fault(Status::Internal("internal error; quote request id " + req.request_id));
      }
      if (s.code() == Code::kUnauthenticated) {
        // As Huawei Cloud's API gateway answers before SMS sees the request.
        return json_response(
            401, json::object{{"error_code", "APIGW.0301"},
                              {"error_msg", "Incorrect IAM authentication information: " +
                                                valid_utf8(s.message())},
                              {"request_id", req.request_id}});
      }
      Response r = sms_fault(s, http_status);
      if (s.code() == Code::kResourceExhausted || s.code() == Code::kUnavailable)
        r.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds(s)));
      return r;
    }
    if (!cinder) return from_status(s, req);
    if (s.code() == Code::kInternal || s.code() == Code::kUnknown || s.code() == Code::kDataLoss) {
      log("request " + req.request_id + " " + req.method + " failed: " + s.to_string());
      return cinder_fault(Status::Internal("internal error; quote request id " + req.request_id));
    }
    if (s.code() == Code::kUnauthenticated) {
      // As keystonemiddleware answers before Cinder sees the request.
      Response r =
          json_response(401, json::object{{"error", json::object{{"code", 401},
                                                                 {"title", "Unauthorized"},
                                                                 {"message",
                                                                  "The request you have made "
                                                                  "requires authentication."}}}});
      r.headers.emplace_back("WWW-Authenticate", "Keystone uri=\"\"");
      return r;
    }
    return cinder_fault(s, http_status);
  };
  Response out;
  try {
    if (match->authenticated) {
      auto who = authenticate(req, match->dialect);
      if (!who.ok()) {
        out = failed(who.status(), 0);
        out.route = match->pattern;
        return out;
      }
      call.principal = *who;
      if (call.principal.role == Role::kAgent && !match->agent_may_call) {
        out = failed(Status::PermissionDenied(
                         "the agent role may only register and report sources; this needs "
                         "admin"),
                     0);
        out.route = match->pattern;
        return out;
      }
      if (match->admin_only && call.principal.role != Role::kAdmin) {
        out = failed(Status::PermissionDenied("this needs admin"), 0);
        out.route = match->pattern;
        return out;
      }
      if (req.method != "GET" && !match->viewer_may_call && call.principal.role == Role::kViewer) {
        out =
            failed(Status::PermissionDenied("the viewer role may only read; this needs admin"), 0);
        out.route = match->pattern;
        return out;
      }
    }
    auto result = match->handler(call);
    if (!result.ok()) {
      out = failed(result.status(), call.error_status);
    } else {
      out = json_response(call.status, *result);
      if (call.raw_body) {
        out.body = std::move(*call.raw_body);
        out.content_type = call.raw_content_type;
      }
    }
  } catch (const std::exception& e) {
    out = failed(Status::Internal(std::string("handler threw: ") + e.what()), 0);
  } catch (...) {
    out = failed(Status::Internal("handler threw"), 0);
  }
  for (auto& h : call.headers) out.headers.push_back(std::move(h));
  out.route = match->pattern;
  return out;
}

void Router::Impl::build() {
  add_operations_routes(table, svc, [this] { return render_metrics(); });
  add_cinder_routes(table, svc);
  add_identity_routes(table, svc);
  add_cluster_routes(table, svc);
  add_volume_routes(table, svc);
  add_manageable_routes(table, svc);
  add_group_routes(table, svc);
  add_cg_snapshot_routes(table, svc);
  add_copy_set_routes(table, svc);
  add_workflow_routes(table, svc);
  add_sms_routes(table, svc);
  add_source_server_routes(table, svc);
  add_migration_routes(table, svc);
  add_user_routes(table, svc);
}

Router::Router(Service& service, RouterOptions options)
    : impl_(new Impl{service, std::move(options), {}}) {
  impl_->build();
}
Router::~Router() = default;

// The route `method` `target` names, or nullptr.
const Route* Router::Impl::route_of(const std::string& method, std::string_view target) const {
  std::string_view path = target.substr(0, target.find('?'));
  if (path.empty() || path[0] != '/') return nullptr;
  std::vector<std::string> segs;
  for (const auto& r : split_path(path)) {
    auto d = unescape(r, false);
    if (!d) return nullptr;
    segs.push_back(*d);
  }
  return match(method, segs, nullptr, nullptr, nullptr);
}

std::size_t Router::body_limit(std::string_view method, std::string_view target) const {
  const Route* route = impl_->route_of(std::string(method), target);
  return route ? route->body_limit : 0;
}

Lane Router::lane(const Request& request) const {
  const Route* route = impl_->route_of(request.method, request.target);
  if (!route) return Lane::kInline;
  if (!route->wait_parameter.empty()) {
    const std::string_view target = request.target;
    const auto q = target.find('?');
    if (q != std::string_view::npos) {
      const std::string needle = route->wait_parameter + "=";
      const std::string_view query = target.substr(q + 1);
      for (std::size_t at = query.find(needle); at != std::string_view::npos;
           at = query.find(needle, at + 1))
        if (at == 0 || query[at - 1] == '&') return Lane::kWait;
    }
  }
  return route->lane;
}

Response Router::handle(const Request& request) const {
  auto t0 = std::chrono::steady_clock::now();
  Response r = impl_->handle(request);
  impl_->metrics.record(
      r.route, r.status,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return r;
}

}  // namespace dmscore::http
