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

#include "codec.hpp"
#include "dmscore/service.hpp"
#include "http/api_json.hpp"
#include "jwt.hpp"

namespace dmscore::http {

namespace detail {
// The OpenAPI document (docs/openapi.json), compiled in.
std::string_view openapi_document();
}  // namespace detail

namespace json = boost::json;
using dmscore::detail::ObjectReader;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; nullopt for a bad escape or a decoded NUL.
std::optional<std::string> unescape(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int h = hex(s[i + 1]), l = hex(s[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      c = static_cast<char>(h * 16 + l);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  return out;
}

json::object ok_body() { return json::object(); }

Response json_response(int status, const json::value& v) {
  Response r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

struct Params {
  std::map<std::string, std::string> path;
  std::map<std::string, std::string> query;
};

struct Call {
  const Request& req;
  Params params;
  Principal principal;
  // Set by a handler whose answer is a stored text, sent byte for byte with this media type.
  std::optional<std::string> raw_body;
  std::string raw_content_type = "application/json";
};

using Handler = std::function<Result<json::value>(Call&)>;

struct Route {
  std::string method;
  std::string pattern;
  std::vector<std::string> segments;
  bool authenticated = true;
  Handler handler;
  // Viewers may call it although it is not a GET (logging themselves out).
  bool viewer_may_call = false;
  Lane lane = Lane::kInline;
};

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t pos = 1;
  while (pos <= path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    out.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

Result<json::value> parse_body(const Request& req, bool allow_empty) {
  std::string_view body = req.body;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    if (allow_empty) return json::value(json::object());
    return Status::InvalidArgument("body: a JSON object is required");
  }
  return dmscore::detail::parse_json(body);
}

// A body of exactly one action, {"<action>": {...}}: INVALID_ARGUMENT listing `actions`
// otherwise.
Result<json::value> action_body(const Request& req, const char* actions) {
  auto body = parse_body(req, false);
  if (!body.ok()) return body.status();
  const json::object* obj = body->if_object();
  if (!obj || obj->size() != 1)
    return Status::InvalidArgument(std::string("body: must hold exactly one action: ") + actions);
  return body;
}

// Only the named query parameters are accepted.
Status check_query(const Params& p, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : p.query) {
    bool ok = false;
    for (const char* a : allowed) ok |= k == a;
    if (!ok) {
      std::string name = k.substr(0, 64);
      for (char& c : name)
        if (c < 0x20 || c > 0x7e) c = '?';
      return Status::InvalidArgument(name + ": unknown query parameter");
    }
  }
  return Status::Ok();
}

Result<int> page_size(const Params& p) {
  auto it = p.query.find("pageSize");
  if (it == p.query.end() || it->second.empty()) return 0;
  int n = 0;
  auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
  if (ec != std::errc() || ptr != it->second.data() + it->second.size() || n < 0 || n > 1000)
    return Status::InvalidArgument("pageSize: must be an integer 0..1000");
  return n;
}

std::string query(const Params& p, const char* key) {
  auto it = p.query.find(key);
  return it == p.query.end() ? std::string() : it->second;
}

json::value workflow_id_body(const std::string& id) { return json::object{{"workflowId", id}}; }

}  // namespace

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

namespace {

// `s` with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD.
// Messages may quote what a client sent (an id from the path), and JSON must be UTF-8.
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

}  // namespace

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
  Service& svc;
  RouterOptions options;
  std::vector<Route> routes;
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
    out += "# HELP dms_local_cluster_files_set_aside_total Files a local cluster moved to its "
           "lost+found/ since start.\n";
    out += "# TYPE dms_local_cluster_files_set_aside_total counter\n";
    if (stats.ok()) {
      for (const auto& [cluster, n] : stats->set_aside_files)
        out += "dms_local_cluster_files_set_aside_total{cluster=\"" + label(cluster) + "\"} " +
               std::to_string(n) + "\n";
    }
    out += "# HELP dms_cluster_calls_refused_total Callers refused at once by a cluster's gate, by "
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

  void add(std::string method, std::string pattern, Handler h, bool authenticated = true) {
    const Lane lane = method == "GET" || method == "HEAD" ? Lane::kInline : Lane::kBlocking;
    Route r{std::move(method), pattern,          split_path(pattern), authenticated,
            std::move(h),      false,            lane};
    routes.push_back(std::move(r));
  }

  // Marks the route added last as one whose handler may call a storage cluster.
  void calls_clusters() { routes.back().lane = Lane::kCluster; }

  // The route for `method` and the decoded `segs`, and its path variables; nullptr when none
  // matches (`path_matched` tells whether another method would, `allow` lists them).
  const Route* match(const std::string& method, const std::vector<std::string>& segs,
                     std::map<std::string, std::string>* vars_out, bool* path_matched,
                     std::string* allow) const {
    const Route* found = nullptr;
    for (const auto& route : routes) {
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

  Result<Principal> authenticate(const Request& req) const {
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
    return error_response(static_cast<int>(Code::kNotFound), "no such route");
  }
  Call call{req, std::move(params), {}, {}};
  Response out;
  try {
    if (match->authenticated) {
      auto who = authenticate(req);
      if (!who.ok()) {
        out = from_status(who.status(), req);
        out.route = match->pattern;
        return out;
      }
      call.principal = *who;
      if (req.method != "GET" && !match->viewer_may_call && call.principal.role != Role::kAdmin) {
        out = error_response(static_cast<int>(Code::kPermissionDenied),
                             "the viewer role may only read; this needs admin");
        out.route = match->pattern;
        return out;
      }
    }
    auto result = match->handler(call);
    if (!result.ok()) {
      out = from_status(result.status(), req);
    } else {
      out = json_response(200, *result);
      if (call.raw_body) {
        out.body = std::move(*call.raw_body);
        out.content_type = call.raw_content_type;
      }
    }
  } catch (const std::exception& e) {
    out = from_status(Status::Internal(std::string("handler threw: ") + e.what()), req);
  } catch (...) {
    out = from_status(Status::Internal("handler threw"), req);
  }
  out.route = match->pattern;
  return out;
}

void Router::Impl::build() {
  using R = Result<json::value>;

  add(
      "GET", "/healthz",
      [](Call&) -> R {
        return json::value(json::object{{"status", "ok"}});
      },
      false);
  add(
      "GET", "/readyz",
      [this](Call&) -> R {
        if (!svc.ready()) return Status::Unavailable("recovering");
        return json::value(json::object{{"status", "ready"}});
      },
      false);

  // Prometheus text; any query is ignored (scrapers may add their own parameters).
  add(
      "GET", "/metrics",
      [this](Call& c) -> R {
        c.raw_body = render_metrics();
        c.raw_content_type = "text/plain; version=0.0.4; charset=utf-8";
        return json::value();
      },
      false);

  add(
      "POST", "/api/v1/login",
      [this](Call& c) -> R {
        if (Status s = check_query(c.params, {}); !s.ok()) return s;
        std::string user, password;
        std::string_view auth = c.req.header("Authorization");
        if (auth.size() > 6 && iequals(auth.substr(0, 6), "Basic ")) {
          std::string b64(auth.substr(6));
          for (char& ch : b64) {  // the standard alphabet, decoded with the URL-safe decoder
            if (ch == '+')
              ch = '-';
            else if (ch == '/')
              ch = '_';
          }
          while (!b64.empty() && b64.back() == '=') b64.pop_back();
          auto decoded = dmscore::detail::base64url_decode(b64);
          auto colon = decoded ? decoded->find(':') : std::string::npos;
          if (!decoded || colon == std::string::npos)
            return Status::Unauthenticated("malformed Basic credentials");
          user = decoded->substr(0, colon);
          password = decoded->substr(colon + 1);
        } else {
          auto body = parse_body(c.req, true);
          if (!body.ok()) return body.status();
          ObjectReader o(*body, "");
          o.string("username", user, true);
          o.string("password", password, true);
          if (Status s = o.finish(); !s.ok()) return s;
        }
        auto r = svc.auth().login(user, password, c.req.remote);
        if (!r.ok()) return r.status();
        return json::value(http::detail::to_json(*r));
      },
      false);
  routes.back().lane = Lane::kLogin;

  add(
      "GET", "/api/v1/openapi.json",
      [this](Call& c) -> R {
        if (Status st = check_query(c.params, {}); !st.ok()) return st;
        c.raw_body = std::string(http::detail::openapi_document());
        return json::value();
      },
      false);

  add("POST", "/api/v1/logout", [this](Call& c) -> R {
    std::string_view h = c.req.header("Authorization");
    if (Status s = svc.auth().logout(std::string(h.substr(7))); !s.ok()) return s;
    return json::value(ok_body());
  });
  routes.back().viewer_may_call = true;  // ending one's own session is not an admin's write

  add("GET", "/api/v1/service-credentials",
      [this](Call&) -> R { return json::value(http::detail::to_json(svc.service_credentials())); });

  add("GET", "/api/v1/clusters", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto list = svc.list_clusters();
    if (!list.ok()) return list.status();
    json::array a;
    for (auto& cl : *list) a.push_back(http::detail::to_json(cl));
    return json::value(json::object{{"clusters", std::move(a)}});
  });
  add("POST", "/api/v1/clusters", [this](Call& c) -> R {
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    auto req = dmscore::detail::attach_cluster_request_from_json(*body);
    if (!req.ok()) return req.status();
    auto id = svc.attach_cluster(*req);
    if (!id.ok()) return id.status();
    return workflow_id_body(*id);
  });
  add("POST", "/api/v1/clusters/refresh", [this](Call& c) -> R {
    auto body = parse_body(c.req, true);
    if (!body.ok()) return body.status();
    std::string cid;
    ObjectReader o(*body, "");
    o.string("clusterId", cid);
    if (Status s = o.finish(); !s.ok()) return s;
    if (!cid.empty() && !dmscore::detail::is_uuid(cid))
      return Status::InvalidArgument("clusterId: must be a UUID");
    auto id = svc.refresh_clusters(cid.empty() ? std::nullopt : std::optional<std::string>(cid));
    if (!id.ok()) return id.status();
    return workflow_id_body(*id);
  });
  add("GET", "/api/v1/clusters/{clusterId}", [this](Call& c) -> R {
    auto cl = svc.get_cluster(c.params.path["clusterId"]);
    if (!cl.ok()) return cl.status();
    return json::value(json::object{{"cluster", http::detail::to_json(*cl)}});
  });
  add("POST", "/api/v1/clusters/{clusterId}/repair", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, true);
    if (!body.ok()) return body.status();
    ObjectReader o(*body, "");
    if (Status s = o.finish(); !s.ok()) return s;
    auto id = svc.repair_cluster(c.params.path["clusterId"]);
    if (!id.ok()) return id.status();
    return workflow_id_body(*id);
  });
  add("DELETE", "/api/v1/clusters/{clusterId}", [this](Call& c) -> R {
    if (Status s = svc.detach_cluster(c.params.path["clusterId"]); !s.ok()) return s;
    return json::value(ok_body());
  });

  const std::string vols = "/api/v1/clusters/{clusterId}/projects/{projectName}/volumes";
  const std::string snaps = "/api/v1/clusters/{clusterId}/projects/{projectName}/snapshots";
  add("GET", vols, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.list_volumes(c.params.path["clusterId"], c.params.path["projectName"],
                                 {*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& v : page->volumes) a.push_back(http::detail::to_json(v));
    return json::value(
        json::object{{"volumes", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  calls_clusters();
  add("POST", vols, [this](Call& c) -> R {
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateVolumeRequest r;
    r.project_name = c.params.path["projectName"];
    std::optional<std::uint64_t> size;
    std::optional<int> replica, sector;
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.size("size", size, true);
    o.integer("replicaCount", replica);
    o.integer("sectorSize", sector);
    o.boolean("compression", r.compression);
    o.string("sourceSnapshotId", r.source_snapshot_id);
    if (Status s = o.finish(); !s.ok()) return s;
    r.size = *size;
    if (replica) r.replica_count = *replica;
    if (sector) r.sector_size = *sector;
    auto v = svc.create_volume(c.params.path["clusterId"], r);
    if (!v.ok()) return v.status();
    return json::value(json::object{{"volume", http::detail::to_json(*v)}});
  });
  calls_clusters();
  add("GET", vols + "/{volumeId}", [this](Call& c) -> R {
    auto v = svc.get_volume(c.params.path["clusterId"], c.params.path["projectName"],
                            c.params.path["volumeId"]);
    if (!v.ok()) return v.status();
    return json::value(json::object{{"volume", http::detail::to_json(*v)}});
  });
  calls_clusters();
  add("DELETE", vols + "/{volumeId}", [this](Call& c) -> R {
    if (Status s = svc.delete_volume(c.params.path["clusterId"], c.params.path["projectName"],
                                     c.params.path["volumeId"]);
        !s.ok())
      return s;
    return json::value(ok_body());
  });
  calls_clusters();
  add("GET", snaps, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.list_snapshots(c.params.path["clusterId"], c.params.path["projectName"],
                                   {*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& s : page->snapshots) a.push_back(http::detail::to_json(s));
    return json::value(
        json::object{{"snapshots", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  calls_clusters();
  add("POST", snaps, [this](Call& c) -> R {
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateSnapshotRequest r;
    r.project_name = c.params.path["projectName"];
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.string("sourceVolumeId", r.source_volume_id, true);
    o.string("description", r.description);
    if (Status s = o.finish(); !s.ok()) return s;
    auto s = svc.create_snapshot(c.params.path["clusterId"], r);
    if (!s.ok()) return s.status();
    return json::value(json::object{{"snapshot", http::detail::to_json(*s)}});
  });
  calls_clusters();
  add("GET", snaps + "/{snapshotId}", [this](Call& c) -> R {
    auto s = svc.get_snapshot(c.params.path["clusterId"], c.params.path["projectName"],
                              c.params.path["snapshotId"]);
    if (!s.ok()) return s.status();
    return json::value(json::object{{"snapshot", http::detail::to_json(*s)}});
  });
  calls_clusters();
  add("DELETE", snaps + "/{snapshotId}", [this](Call& c) -> R {
    if (Status s = svc.delete_snapshot(c.params.path["clusterId"], c.params.path["projectName"],
                                       c.params.path["snapshotId"]);
        !s.ok())
      return s;
    return json::value(ok_body());
  });
  calls_clusters();

  for (bool snapshot : {false, true}) {
    add("POST", snapshot ? "/api/v1/snapshots/thickclone" : "/api/v1/volumes/thickclone",
        [this, snapshot](Call& c) -> R {
          auto body = parse_body(c.req, false);
          if (!body.ok()) return body.status();
          auto req = dmscore::detail::thick_clone_request_from_json(*body);
          if (!req.ok()) return req.status();
          auto id = snapshot ? svc.thick_clone_snapshot(*req) : svc.thick_clone_volume(*req);
          if (!id.ok()) return id.status();
          return workflow_id_body(*id);
        });
    calls_clusters();
  }

  // ---- consistency groups and group snapshots ----
  const std::string groups = "/api/v1/consistency-groups";
  add("GET", groups, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.list_consistency_groups({*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& g : page->groups) a.push_back(http::detail::to_json(g));
    return json::value(json::object{{"consistencyGroups", std::move(a)},
                                    {"nextPageToken", page->next_page_token}});
  });
  add("POST", groups, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateGroupRequest r;
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.string("description", r.description);
    o.string("clusterId", r.cluster_id);
    o.string("projectName", r.project_name);
    o.strings("volumeIds", r.volume_ids, 64);
    o.string("sourceCgSnapshotId", r.source_cg_snapshot_id);
    if (Status s = o.finish(); !s.ok()) return s;
    auto g = svc.create_consistency_group(r);
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)}});
  });
  calls_clusters();
  add("GET", groups + "/{consistencyGroupId}", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto g = svc.get_consistency_group(c.params.path["consistencyGroupId"]);
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)}});
  });
  add("PUT", groups + "/{consistencyGroupId}", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    UpdateGroupRequest r;
    ObjectReader o(*body, "");
    o.string("name", r.name);
    o.string("description", r.description);
    o.strings("addVolumeIds", r.add_volume_ids, 64);
    o.strings("removeVolumeIds", r.remove_volume_ids, 64);
    if (Status s = o.finish(); !s.ok()) return s;
    auto g = svc.update_consistency_group(c.params.path["consistencyGroupId"], r);
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)}});
  });
  calls_clusters();
  add("DELETE", groups + "/{consistencyGroupId}", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (Status s = svc.delete_consistency_group(c.params.path["consistencyGroupId"]); !s.ok())
      return s;
    return json::value(ok_body());
  });
  calls_clusters();
  add("POST", groups + "/{consistencyGroupId}/action", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = action_body(c.req, "resetStatus or forceDelete");
    if (!body.ok()) return body.status();
    ObjectReader o(*body, "");
    const json::value* reset = o.object("resetStatus");
    const json::value* force = o.object("forceDelete");
    if (Status s = o.finish(); !s.ok()) return s;
    if (!reset && !force)
      return Status::InvalidArgument("body: the action must be an object, not null");
    const std::string& id = c.params.path["consistencyGroupId"];
    if (reset) {
      std::string status;
      ObjectReader ro(*reset, "resetStatus");
      ro.string("status", status, true);
      if (Status s = ro.finish(); !s.ok()) return s;
      auto st = parse_group_status(status, "resetStatus.status");
      if (!st.ok()) return st.status();
      if (Status s = svc.reset_consistency_group_status(id, *st, c.principal.user); !s.ok())
        return s;
    } else {
      ObjectReader fo(*force, "forceDelete");
      if (Status s = fo.finish(); !s.ok()) return s;
      if (Status s = svc.force_delete_consistency_group(id, c.principal.user); !s.ok()) return s;
    }
    return json::value(ok_body());
  });
  calls_clusters();

  // A literal segment: it wins over "{consistencyGroupId}" (see handle).
  add("POST", groups + "/thickclone", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    ThickCloneGroupRequest r;
    ObjectReader o(*body, "");
    const json::value* src = o.object("src", true);
    const json::value* dst = o.object("dst", true);
    o.boolean("verifyClone", r.verify_clone);
    if (Status s = o.finish(); !s.ok()) return s;
    ObjectReader so(*src, "src");
    so.string("cgSnapshotId", r.src_cg_snapshot_id, true);
    if (Status s = so.finish(); !s.ok()) return s;
    ObjectReader dso(*dst, "dst");
    dso.string("name", r.dst_name, true);
    dso.string("clusterId", r.dst_cluster_id);
    dso.string("projectName", r.dst_project_name);
    if (Status s = dso.finish(); !s.ok()) return s;
    auto g = svc.thick_clone_consistency_group(r);
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)},
                                    {"workflowId", g->workflow_id}});
  });
  calls_clusters();
  const std::string copies = "/api/v1/consistency-groups/{consistencyGroupId}/full-copies";
  add("POST", copies, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateFullCopiesRequest r;
    r.consistency_group_id = c.params.path["consistencyGroupId"];
    std::optional<int> count;
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.integer("count", count);
    o.boolean("partial", r.partial);
    o.strings("volumeIds", r.volume_ids, 64);
    o.boolean("createInactive", r.create_inactive);
    o.string("clusterId", r.cluster_id);
    o.string("projectName", r.project_name);
    if (Status s = o.finish(); !s.ok()) return s;
    if (count) r.count = *count;
    auto w = svc.create_full_copies(r);
    if (!w.ok()) return w.status();
    return json::value(http::detail::to_json(*w));
  });
  calls_clusters();
  add("GET", copies, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.list_copy_sets(c.params.path["consistencyGroupId"],
                                   {*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& cs : page->copy_sets) a.push_back(http::detail::to_json(cs));
    return json::value(
        json::object{{"copySets", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add("GET", copies + "/{copySetId}", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto cs = svc.get_copy_set(c.params.path["consistencyGroupId"], c.params.path["copySetId"]);
    if (!cs.ok()) return cs.status();
    return json::value(json::object{{"copySet", http::detail::to_json(*cs)}});
  });
  add("POST", copies + "/{copySetId}/action", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = action_body(c.req, "activate, detach, resynchronize or restore");
    if (!body.ok()) return body.status();
    CopySetActionRequest r;
    ObjectReader o(*body, "");
    const json::value* found = nullptr;
    for (auto a : {CopyAction::kActivate, CopyAction::kDetach, CopyAction::kResynchronize,
                   CopyAction::kRestore}) {
      const std::string key(to_string(a));
      if (const json::value* v = o.object(key.c_str())) {
        found = v;
        r.action = a;
      }
    }
    if (Status s = o.finish(); !s.ok()) return s;
    if (!found) return Status::InvalidArgument("body: the action must be an object, not null");
    const std::string key(to_string(r.action));
    ObjectReader ao(*found, key);
    ao.integers("copies", r.copies, 8);
    if (r.action == CopyAction::kRestore) ao.boolean("confirm", r.confirm);
    if (Status s = ao.finish(); !s.ok()) return s;
    auto w =
        svc.copy_set_action(c.params.path["consistencyGroupId"], c.params.path["copySetId"], r);
    if (!w.ok()) return w.status();
    return json::value(http::detail::to_json(*w));
  });
  calls_clusters();

  const std::string cgsnaps = "/api/v1/cg-snapshots";
  add("GET", cgsnaps, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken", "consistencyGroupId"});
        !s.ok())
      return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.list_cg_snapshots({*n, query(c.params, "nextPageToken")},
                                      query(c.params, "consistencyGroupId"));
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& cs : page->cg_snapshots) a.push_back(http::detail::to_json(cs));
    return json::value(
        json::object{{"cgSnapshots", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add("POST", cgsnaps, [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateCgSnapshotRequest r;
    ObjectReader o(*body, "");
    o.string("consistencyGroupId", r.consistency_group_id, true);
    o.string("name", r.name);
    o.string("description", r.description);
    if (Status s = o.finish(); !s.ok()) return s;
    auto cs = svc.create_cg_snapshot(r);
    if (!cs.ok()) return cs.status();
    return json::value(
        json::object{{"cgSnapshot", http::detail::to_json(*cs)}, {"workflowId", cs->workflow_id}});
  });
  calls_clusters();
  add("GET", cgsnaps + "/{cgSnapshotId}", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto cs = svc.get_cg_snapshot(c.params.path["cgSnapshotId"]);
    if (!cs.ok()) return cs.status();
    return json::value(json::object{{"cgSnapshot", http::detail::to_json(*cs)}});
  });
  add("GET", cgsnaps + "/{cgSnapshotId}/members", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto cs = svc.get_cg_snapshot(c.params.path["cgSnapshotId"]);
    if (!cs.ok()) return cs.status();
    json::array a;
    for (auto& m : cs->members) a.push_back(http::detail::to_json(m));
    return json::value(json::object{{"members", std::move(a)}});
  });
  add("DELETE", cgsnaps + "/{cgSnapshotId}", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (Status s = svc.delete_cg_snapshot(c.params.path["cgSnapshotId"]); !s.ok()) return s;
    return json::value(ok_body());
  });
  calls_clusters();

  add("GET", "/api/v1/workflows", [this](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken", "state", "type"}); !s.ok())
      return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    ListWorkflowsRequest lr;
    lr.page_size = *n;
    lr.page_token = query(c.params, "nextPageToken");
    if (auto st = query(c.params, "state"); !st.empty()) {
      auto parsed = parse_workflow_state(st);
      if (!parsed.ok()) return parsed.status();
      lr.state = *parsed;
    }
    lr.type = query(c.params, "type");
    if (lr.type.size() > 64) return Status::InvalidArgument("type: unknown workflow type");
    auto page = svc.list_workflows(lr);
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& w : page->workflows) a.push_back(http::detail::to_json(w));
    return json::value(
        json::object{{"workflows", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add("GET", "/api/v1/workflows/{workflowId}", [this](Call& c) -> R {
    auto w = svc.get_workflow(c.params.path["workflowId"]);
    if (!w.ok()) return w.status();
    return json::value(json::object{{"workflow", http::detail::to_json(*w)}});
  });
  add("POST", "/api/v1/workflows/{workflowId}/cancel", [this](Call& c) -> R {
    auto body = parse_body(c.req, true);
    if (!body.ok()) return body.status();
    ObjectReader o(*body, "");
    if (Status s = o.finish(); !s.ok()) return s;
    if (Status s = svc.cancel_workflow(c.params.path["workflowId"]); !s.ok()) return s;
    return json::value(ok_body());
  });
  calls_clusters();
}

Router::Router(Service& service, RouterOptions options)
    : impl_(new Impl{service, std::move(options), {}}) {
  impl_->build();
}
Router::~Router() = default;

Lane Router::lane(const Request& request) const {
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path.empty() || path[0] != '/') return Lane::kInline;
  std::vector<std::string> segs;
  for (const auto& r : split_path(path)) {
    auto d = unescape(r, false);
    if (!d) return Lane::kInline;
    segs.push_back(*d);
  }
  const Route* route = impl_->match(request.method, segs, nullptr, nullptr, nullptr);
  return route ? route->lane : Lane::kInline;
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
