#pragma once
// What the route files (routes/<area>.cpp) share: the call a handler receives, the table they
// add their routes to, and the small helpers of request decoding. Internal to dmscore::http.

#include <boost/json.hpp>
#include <charconv>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/codec.hpp"
#include "dmscore/http/router.hpp"
#include "dmscore/service.hpp"
#include "http/api_json.hpp"

namespace dmscore::http::routing {

namespace json = boost::json;
using dmscore::detail::ObjectReader;
using R = Result<json::value>;

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

inline int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; nullopt for a bad escape or a decoded NUL.
inline std::optional<std::string> unescape(std::string_view s, bool plus_is_space) {
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

inline json::object ok_body() { return json::object(); }

// `s` with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD.
// Messages may quote what a client sent (an id from the path), and JSON must be UTF-8.
std::string valid_utf8(std::string_view s);

inline Response json_response(int status, const json::value& v) {
  Response r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

struct Params {
  std::map<std::string, std::string> path;
  std::map<std::string, std::string> query;
};

// How a route speaks: the native API, or the dialect of another system whose clients it serves
// unchanged (its token header, error bodies and status codes).
enum class Dialect {
  kNative,
  kCinder,  // OpenStack Cinder's v3 API (routes/cinder.cpp)
  kSms,     // Huawei Cloud SMS's v3 source-server API (routes/sms.cpp)
};

struct Call {
  const Request& req;
  Params params;
  Principal principal;
  // Set by a handler whose answer is a stored text, sent byte for byte with this media type.
  std::optional<std::string> raw_body;
  std::string raw_content_type = "application/json";
  // What a handler of another dialect may set: the success status (202, ...), headers sent
  // whatever the outcome, and the HTTP status of an error it returns when the dialect's status
  // is not the one its code maps to (0: the mapping's).
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  int error_status = 0;
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
  // Users of the agent role may call it (they may call nothing else).
  bool agent_may_call = false;
  Lane lane = Lane::kInline;
  // A query parameter that makes the request wait (a long poll): it then runs on Lane::kWait.
  std::string wait_parameter;
  Dialect dialect = Dialect::kNative;
  // Only admins may call it, reads included (who the users are).
  bool admin_only = false;
  // A larger request body than the server's limit it takes (0: the server's).
  std::size_t body_limit = 0;
};

// A data-stream window: 16 MiB of chunks of 1 MiB, with their headers, and slack.
inline constexpr std::size_t kStreamBodyLimit = (16u << 20) + (1u << 16);

inline std::vector<std::string> split_path(std::string_view path) {
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

inline Result<json::value> parse_body(const Request& req, bool allow_empty) {
  std::string_view body = req.body;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    if (allow_empty) return json::value(json::object());
    return Status::InvalidArgument("body: a JSON object is required");
  }
  return dmscore::detail::parse_json(body);
}

// A body of exactly one action, {"<action>": {...}}: INVALID_ARGUMENT listing `actions`
// otherwise.
inline Result<json::value> action_body(const Request& req, const char* actions) {
  auto body = parse_body(req, false);
  if (!body.ok()) return body.status();
  const json::object* obj = body->if_object();
  if (!obj || obj->size() != 1)
    return Status::InvalidArgument(std::string("body: must hold exactly one action: ") + actions);
  return body;
}

// Only the named query parameters are accepted.
inline Status check_query(const Params& p, std::initializer_list<const char*> allowed) {
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

inline Result<int> page_size(const Params& p) {
  auto it = p.query.find("pageSize");
  if (it == p.query.end() || it->second.empty()) return 0;
  int n = 0;
  auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
  if (ec != std::errc() || ptr != it->second.data() + it->second.size() || n < 0 || n > 1000)
    return Status::InvalidArgument("pageSize: must be an integer 0..1000");
  return n;
}

inline std::string query(const Params& p, const char* key) {
  auto it = p.query.find(key);
  return it == p.query.end() ? std::string() : it->second;
}

// The paging parameters of a manageable list, as given (checked by paginate_manageable).
inline ManageableQuery manageable_query_of(const Params& p) {
  ManageableQuery q;
  for (auto [key, out] : {std::pair{"sort", &q.sort},
                          {"sort_key", &q.sort_key},
                          {"sort_dir", &q.sort_dir},
                          {"marker", &q.marker},
                          {"limit", &q.limit},
                          {"offset", &q.offset}}) {
    if (auto it = p.query.find(key); it != p.query.end()) *out = it->second;
  }
  return q;
}

inline json::value workflow_id_body(const WorkflowId& id) {
  return json::object{{"workflowId", id.str()}};
}

// The routes, in the order they were added. Each routes/<area>.cpp adds its own.
class RouteTable {
 public:
  // Adds a route: GET and HEAD are answered inline, other methods on the blocking lane (see
  // Lane); `authenticated` false for the few routes that need no token.
  void operator()(std::string method, const std::string& pattern, Handler h,
                  bool authenticated = true) {
    const Lane lane = method == "GET" || method == "HEAD" ? Lane::kInline : Lane::kBlocking;
    routes_.push_back(Route{std::move(method),
                            pattern,
                            split_path(pattern),
                            authenticated,
                            std::move(h),
                            false,
                            false,
                            lane,
                            {},
                            Dialect::kNative});
  }
  // The route added last may call a storage cluster.
  void calls_clusters() { routes_.back().lane = Lane::kCluster; }
  // The route added last speaks `d`.
  void speaks(Dialect d) { routes_.back().dialect = d; }
  Route& last() { return routes_.back(); }
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

void add_operations_routes(RouteTable& add, Service& svc,
                           std::function<std::string()> render_metrics);
void add_identity_routes(RouteTable& add, Service& svc);
void add_cluster_routes(RouteTable& add, Service& svc);
void add_volume_routes(RouteTable& add, Service& svc);
void add_manageable_routes(RouteTable& add, Service& svc);
void add_cinder_routes(RouteTable& add, Service& svc);
// Cinder's fault for `s` ({"badRequest": {"code": 400, "message": ...}}), at `http_status`
// when non-zero, else at the status Cinder gives the error's kind.
Response cinder_fault(const Status& s, int http_status = 0);
void add_group_routes(RouteTable& add, Service& svc);
void add_cg_snapshot_routes(RouteTable& add, Service& svc);
void add_copy_set_routes(RouteTable& add, Service& svc);
void add_workflow_routes(RouteTable& add, Service& svc);
void add_sms_routes(RouteTable& add, Service& svc);
// SMS's error body for `s` ({"error_code": "SMS.xxxx", "error_msg": ...}), at `http_status`
// when non-zero, else at the status SMS gives the error's kind.
Response sms_fault(const Status& s, int http_status = 0);
void add_source_server_routes(RouteTable& add, Service& svc);
void add_migration_routes(RouteTable& add, Service& svc);
void add_user_routes(RouteTable& add, Service& svc);

}  // namespace dmscore::http::routing
