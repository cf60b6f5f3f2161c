#include "dmscore/http/api_client.hpp"

#include <boost/json.hpp>
#include <thread>

#include "base/base64.hpp"
#include "dmscore/status.hpp"

namespace dmscore::http {

namespace json = boost::json;

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

// The Status an error answer carries: its body's code and message when it has the contract's
// shape, otherwise one made from the HTTP status.
Status status_of(const ClientResponse& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    const json::value* code = o.if_contains("code");
    const json::value* msg = o.if_contains("message");
    if (code && code->is_int64() && code->as_int64() > 0 && code->as_int64() <= 16 && msg &&
        msg->is_string())
      return Status(static_cast<Code>(code->as_int64()), std::string(msg->as_string()));
  }
  Code c = Code::kUnknown;
  switch (r.status) {
    case 400:
      c = Code::kInvalidArgument;
      break;
    case 401:
      c = Code::kUnauthenticated;
      break;
    case 403:
      c = Code::kPermissionDenied;
      break;
    case 404:
      c = Code::kNotFound;
      break;
    case 409:
      c = Code::kAborted;
      break;
    case 413:
    case 431:
    case 429:
      c = Code::kResourceExhausted;
      break;
    case 501:
      c = Code::kUnimplemented;
      break;
    case 502:
    case 503:
    case 504:
      c = Code::kUnavailable;
      break;
    default:
      c = r.status >= 500 ? Code::kInternal : Code::kUnknown;
  }
  return Status(c, "HTTP " + std::to_string(r.status) + " from " + r.endpoint);
}

std::string body(json::object o) { return json::serialize(o); }

// ---- typed answers ----

Result<json::value> parse_json(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return Status::Internal("the service answered something that is not JSON");
  return v;
}

Status missing(const std::string& what) {
  return Status::Internal("the service's answer has no " + what);
}

// The member `key` of `v` when `v` is an object that has it.
const json::value* member(const json::value* v, const char* key) {
  return v && v->is_object() ? v->as_object().if_contains(key) : nullptr;
}

// The string member `key` of `v`, or `missing(name)`.
Result<std::string> string_member(const json::value* v, const char* key, const std::string& name) {
  const json::value* m = member(v, key);
  if (!m || !m->is_string()) return missing(name);
  return std::string(m->as_string());
}

// The string member `key` of a JSON object body.
Result<std::string> top_level_string(const std::string& body, const char* key) {
  auto v = parse_json(body);
  if (!v.ok()) return v.status();
  return string_member(&*v, key, key);
}

}  // namespace

Result<StartedWorkflow> StartedWorkflow::parse(std::string body) {
  auto id = top_level_string(body, "workflowId");
  if (!id.ok()) return id.status();
  return StartedWorkflow{std::move(body), std::move(id).value()};
}

Result<LoginAnswer> LoginAnswer::parse(std::string body) {
  auto token = top_level_string(body, "idToken");
  if (!token.ok()) return token.status();
  return LoginAnswer{std::move(body), std::move(token).value()};
}

std::optional<std::string> ServiceCredentialsAnswer::pem() const {
  return detail::base64_decode(pub_key);
}

Result<ServiceCredentialsAnswer> ServiceCredentialsAnswer::parse(std::string body) {
  auto v = parse_json(body);
  if (!v.ok()) return v.status();
  auto id = string_member(&*v, "pubKeyId", "pubKeyId");
  if (!id.ok()) return id.status();
  auto key = string_member(&*v, "pubKey", "pubKey");
  if (!key.ok()) return key.status();
  return ServiceCredentialsAnswer{std::move(body), std::move(id).value(), std::move(key).value()};
}

Result<ConsistencyGroupAnswer> ConsistencyGroupAnswer::parse(std::string body) {
  auto v = parse_json(body);
  if (!v.ok()) return v.status();
  const json::value* g = member(&*v, "consistencyGroup");
  auto id = string_member(g, "id", "consistencyGroup.id");
  if (!id.ok()) return id.status();
  auto wid = string_member(g, "workflowId", "consistencyGroup.workflowId");
  if (!wid.ok()) return wid.status();
  return ConsistencyGroupAnswer{std::move(body), std::move(id).value(), std::move(wid).value()};
}

Result<CopySetWorkAnswer> CopySetWorkAnswer::parse(std::string body) {
  auto v = parse_json(body);
  if (!v.ok()) return v.status();
  auto id = string_member(member(&*v, "copySet"), "id", "copySet.id");
  if (!id.ok()) return id.status();
  const json::value* wfs = member(&*v, "workflows");
  if (!wfs || !wfs->is_array()) return missing("workflows");
  CopySetWorkAnswer out{{}, std::move(id).value(), {}};
  for (const json::value& w : wfs->as_array()) {
    const json::value* copy = member(&w, "copy");
    boost::system::error_code ec;
    const auto index = copy ? copy->to_number<std::int64_t>(ec) : 0;
    if (!copy || ec) return missing("workflows[].copy");
    auto wid = string_member(&w, "workflowId", "workflows[].workflowId");
    if (!wid.ok()) return wid.status();
    out.workflows.push_back({index, std::move(wid).value()});
  }
  out.body = std::move(body);
  return out;
}

struct ApiClient::Impl {
  std::unique_ptr<Client> client;
  std::shared_ptr<Env> env;
  std::optional<int> retry_after;

  std::string volumes(const std::string& cid, const std::string& project) {
    return "/api/v1/clusters/" + url_encode(cid) + "/projects/" + url_encode(project) + "/volumes";
  }
  std::string snapshots(const std::string& cid, const std::string& project) {
    return "/api/v1/clusters/" + url_encode(cid) + "/projects/" + url_encode(project) +
           "/snapshots";
  }
  static std::string page_query(const PageRequest& p) {
    std::string q;
    auto add = [&](const char* k, const std::string& v) {
      q += (q.empty() ? "?" : "&") + std::string(k) + "=" + url_encode(v);
    };
    if (p.page_size > 0) add("pageSize", std::to_string(p.page_size));
    if (!p.page_token.empty()) add("nextPageToken", p.page_token);
    return q;
  }
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::create(ClientOptions options, std::string token) {
  if (options.user_agent == "libdmscore") options.user_agent = "libdmscore-api-client";
  auto c = Client::create(options);
  if (!c.ok()) return c.status();
  auto impl = std::make_unique<Impl>();
  impl->env = options.env ? options.env : Env::Default();
  impl->client = std::move(c).value();
  std::unique_ptr<ApiClient> out(new ApiClient(std::move(impl)));
  if (!token.empty()) out->set_token(std::move(token));
  return out;
}

void ApiClient::set_token(std::string token) {
  impl_->client->set_header("Authorization", token.empty() ? "" : "Bearer " + token);
}

std::optional<int> ApiClient::retry_after() const { return impl_->retry_after; }

Result<std::string> ApiClient::call(std::string_view method, std::string_view target,
                                    std::string_view body) {
  impl_->retry_after.reset();
  auto r = impl_->client->request(method, target, body);
  if (!r.ok()) return r.status();
  if (r->status >= 200 && r->status < 300) return std::move(r->body);
  std::string_view ra = r->header("Retry-After");
  if (!ra.empty()) {
    try {
      impl_->retry_after = std::stoi(std::string(ra));
    } catch (...) {
    }
  }
  return status_of(*r);
}

Result<std::string> ApiClient::login(const std::string& username, const std::string& password) {
  return call("POST", "/api/v1/login",
              body(json::object{{"username", username}, {"password", password}}));
}
Result<std::string> ApiClient::logout() { return call("POST", "/api/v1/logout", "{}"); }
Result<std::string> ApiClient::service_credentials() {
  return call("GET", "/api/v1/service-credentials");
}

Result<std::string> ApiClient::list_clusters() { return call("GET", "/api/v1/clusters"); }
Result<std::string> ApiClient::get_cluster(const std::string& id) {
  return call("GET", "/api/v1/clusters/" + url_encode(id));
}
Result<std::string> ApiClient::attach_cluster(const std::string& api_endpoint,
                                              const std::string& name) {
  json::object o{{"apiEndpoint", api_endpoint}};
  if (!name.empty()) o["name"] = name;
  return call("POST", "/api/v1/clusters", body(std::move(o)));
}
Result<std::string> ApiClient::refresh_clusters(const std::string& id) {
  json::object o;
  if (!id.empty()) o["clusterId"] = id;
  return call("POST", "/api/v1/clusters/refresh", body(std::move(o)));
}
Result<std::string> ApiClient::repair_cluster(const std::string& id) {
  return call("POST", "/api/v1/clusters/" + url_encode(id) + "/repair", "{}");
}
Result<std::string> ApiClient::detach_cluster(const std::string& id) {
  return call("DELETE", "/api/v1/clusters/" + url_encode(id));
}

Result<std::string> ApiClient::list_volumes(const std::string& cid, const std::string& project,
                                            const PageRequest& page) {
  return call("GET", impl_->volumes(cid, project) + Impl::page_query(page));
}
Result<std::string> ApiClient::get_volume(const std::string& cid, const std::string& project,
                                          const std::string& id) {
  return call("GET", impl_->volumes(cid, project) + "/" + url_encode(id));
}
Result<std::string> ApiClient::create_volume(const std::string& cid, const std::string& project,
                                             const std::string& body_json) {
  return call("POST", impl_->volumes(cid, project), body_json);
}
Result<std::string> ApiClient::delete_volume(const std::string& cid, const std::string& project,
                                             const std::string& id) {
  return call("DELETE", impl_->volumes(cid, project) + "/" + url_encode(id));
}

namespace {

// GET /api/v1/clusters/<cid>/<list>[/detail]?<query>
std::string manageable_target(const std::string& cid, const char* list, bool detail,
                              const std::vector<std::pair<std::string, std::string>>& query) {
  std::string target =
      "/api/v1/clusters/" + url_encode(cid) + "/" + list + (detail ? "/detail" : "");
  char sep = '?';
  for (const auto& [k, v] : query) {
    target += sep + url_encode(k) + "=" + url_encode(v);
    sep = '&';
  }
  return target;
}

}  // namespace

Result<std::string> ApiClient::list_manageable_volumes(
    const std::string& cid, bool detail,
    const std::vector<std::pair<std::string, std::string>>& query) {
  return call("GET", manageable_target(cid, "manageable-volumes", detail, query));
}
Result<std::string> ApiClient::manage_volume(const std::string& cid, const std::string& body_json) {
  return call("POST", manageable_target(cid, "manageable-volumes", false, {}), body_json);
}
Result<std::string> ApiClient::unmanage_volume(const std::string& cid, const std::string& project,
                                               const std::string& id) {
  return call("POST", impl_->volumes(cid, project) + "/" + url_encode(id) + "/unmanage");
}
Result<std::string> ApiClient::list_manageable_snapshots(
    const std::string& cid, bool detail,
    const std::vector<std::pair<std::string, std::string>>& query) {
  return call("GET", manageable_target(cid, "manageable-snapshots", detail, query));
}
Result<std::string> ApiClient::manage_snapshot(const std::string& cid,
                                               const std::string& body_json) {
  return call("POST", manageable_target(cid, "manageable-snapshots", false, {}), body_json);
}
Result<std::string> ApiClient::unmanage_snapshot(const std::string& cid, const std::string& project,
                                                 const std::string& id) {
  return call("POST", impl_->snapshots(cid, project) + "/" + url_encode(id) + "/unmanage");
}

Result<std::string> ApiClient::list_snapshots(const std::string& cid, const std::string& project,
                                              const PageRequest& page) {
  return call("GET", impl_->snapshots(cid, project) + Impl::page_query(page));
}
Result<std::string> ApiClient::get_snapshot(const std::string& cid, const std::string& project,
                                            const std::string& id) {
  return call("GET", impl_->snapshots(cid, project) + "/" + url_encode(id));
}
Result<std::string> ApiClient::create_snapshot(const std::string& cid, const std::string& project,
                                               const std::string& body_json) {
  return call("POST", impl_->snapshots(cid, project), body_json);
}
Result<std::string> ApiClient::delete_snapshot(const std::string& cid, const std::string& project,
                                               const std::string& id) {
  return call("DELETE", impl_->snapshots(cid, project) + "/" + url_encode(id));
}

Result<std::string> ApiClient::thick_clone_volume(const std::string& body_json) {
  return call("POST", "/api/v1/volumes/thickclone", body_json);
}
Result<std::string> ApiClient::thick_clone_snapshot(const std::string& body_json) {
  return call("POST", "/api/v1/snapshots/thickclone", body_json);
}

Result<std::string> ApiClient::list_instances() { return call("GET", "/api/v1/instances"); }

Result<std::string> ApiClient::list_workflows(const WorkflowFilter& f) {
  std::string q = Impl::page_query({f.page_size, f.page_token});
  auto add = [&](const char* k, const std::string& v) {
    if (!v.empty()) q += (q.empty() ? "?" : "&") + std::string(k) + "=" + url_encode(v);
  };
  add("state", f.state);
  add("type", f.type);
  return call("GET", "/api/v1/workflows" + q);
}
namespace {
const std::string kGroups = "/api/v1/consistency-groups";
const std::string kCgSnapshots = "/api/v1/cg-snapshots";
}  // namespace

Result<std::string> ApiClient::list_consistency_groups(const PageRequest& page) {
  return call("GET", kGroups + Impl::page_query(page));
}
Result<std::string> ApiClient::get_consistency_group(const std::string& id) {
  return call("GET", kGroups + "/" + url_encode(id));
}
Result<std::string> ApiClient::create_consistency_group(const std::string& body_json) {
  return call("POST", kGroups, body_json);
}
Result<std::string> ApiClient::update_consistency_group(const std::string& id,
                                                        const std::string& body_json) {
  return call("PUT", kGroups + "/" + url_encode(id), body_json);
}
Result<std::string> ApiClient::delete_consistency_group(const std::string& id) {
  return call("DELETE", kGroups + "/" + url_encode(id));
}
Result<std::string> ApiClient::consistency_group_action(const std::string& id,
                                                        const std::string& body_json) {
  return call("POST", kGroups + "/" + url_encode(id) + "/action", body_json);
}
Result<std::string> ApiClient::list_cg_snapshots(const PageRequest& page,
                                                 const std::string& group_id) {
  std::string q = Impl::page_query(page);
  if (!group_id.empty())
    q += (q.empty() ? "?" : "&") + ("consistencyGroupId=" + url_encode(group_id));
  return call("GET", kCgSnapshots + q);
}
Result<std::string> ApiClient::get_cg_snapshot(const std::string& id) {
  return call("GET", kCgSnapshots + "/" + url_encode(id));
}
Result<std::string> ApiClient::list_cg_snapshot_members(const std::string& id) {
  return call("GET", kCgSnapshots + "/" + url_encode(id) + "/members");
}
Result<std::string> ApiClient::create_cg_snapshot(const std::string& body_json) {
  return call("POST", kCgSnapshots, body_json);
}
Result<std::string> ApiClient::delete_cg_snapshot(const std::string& id) {
  return call("DELETE", kCgSnapshots + "/" + url_encode(id));
}

Result<std::string> ApiClient::create_full_copies(const std::string& group_id,
                                                  const std::string& body_json) {
  return call("POST", kGroups + "/" + url_encode(group_id) + "/full-copies", body_json);
}
Result<std::string> ApiClient::list_copy_sets(const std::string& group_id,
                                              const PageRequest& page) {
  return call("GET",
              kGroups + "/" + url_encode(group_id) + "/full-copies" + Impl::page_query(page));
}
Result<std::string> ApiClient::get_copy_set(const std::string& group_id, const std::string& id) {
  return call("GET", kGroups + "/" + url_encode(group_id) + "/full-copies/" + url_encode(id));
}
Result<std::string> ApiClient::copy_set_action(const std::string& group_id, const std::string& id,
                                               const std::string& body_json) {
  return call("POST",
              kGroups + "/" + url_encode(group_id) + "/full-copies/" + url_encode(id) + "/action",
              body_json);
}
Result<std::string> ApiClient::thick_clone_consistency_group(const std::string& body_json) {
  return call("POST", kGroups + "/thickclone", body_json);
}

Result<std::string> ApiClient::get_workflow(const std::string& id) {
  return call("GET", "/api/v1/workflows/" + url_encode(id));
}
Result<std::string> ApiClient::cancel_workflow(const std::string& id) {
  return call("POST", "/api/v1/workflows/" + url_encode(id) + "/cancel", "{}");
}

Result<std::string> ApiClient::wait_workflow(
    const std::string& id, std::chrono::milliseconds timeout, std::chrono::milliseconds interval,
    const std::function<bool(const std::string&)>& on_update) {
  Env& env = *impl_->env;
  const auto deadline = env.steady_now() + timeout;
  auto expired = [&] { return timeout.count() > 0 && env.steady_now() >= deadline; };
  if (interval.count() <= 0) interval = std::chrono::milliseconds(200);
  while (true) {
    // A long poll: the service answers as soon as the workflow ends, or after `interval` with
    // its progress, so the end is seen at once and the progress as often as before.
    auto wait_ms = interval;
    if (timeout.count() > 0) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - env.steady_now());
      wait_ms = std::max(std::chrono::milliseconds(0), std::min(wait_ms, left));
    }
    wait_ms = std::min(wait_ms, std::chrono::milliseconds(10000));
    const auto asked = env.steady_now();
    auto r = call("GET", "/api/v1/workflows/" + url_encode(id) +
                             "?waitMs=" + std::to_string(wait_ms.count()));
    if (!r.ok()) {
      if (r.status().code() != Code::kUnavailable || expired()) return r.status();
    } else {
      boost::system::error_code ec;
      json::value v = json::parse(*r, ec);
      const json::value* state = nullptr;
      if (!ec && v.is_object()) {
        if (const json::value* w = v.as_object().if_contains("workflow"); w && w->is_object())
          state = w->as_object().if_contains("state");
      }
      if (!state || !state->is_string())
        return Status::Internal("workflow " + id + ": answer without a state");
      if (on_update && !on_update(*r)) return Status::Cancelled("wait interrupted");
      const auto& s = state->as_string();
      if (s == "COMPLETED" || s == "FAILED" || s == "CANCELLED") return r;
    }
    if (expired())
      return Status::DeadlineExceeded("workflow " + id + " still running after " +
                                      std::to_string(timeout.count() / 1000) + " s");
    // An answer that came before its wait was over (an error, or a server that does not hold
    // the request) is not asked again at once.
    const auto early =
        wait_ms - std::chrono::duration_cast<std::chrono::milliseconds>(env.steady_now() - asked);
    if (early.count() > 0) env.sleep_for(std::min(early, interval));
  }
}

}  // namespace dmscore::http
