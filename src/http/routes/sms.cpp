// Huawei Cloud SMS's v3 source-server API (../shared/reference/seed-apis.md §4), spoken as SMS
// speaks it: its paths, snake_case bodies, offset paging and error bodies, so SMS agents and
// SDK clients work unchanged. Both this and the native routes (source_servers.cpp) call
// Service::sources().
#include <set>

#include "base/util.hpp"
#include "http/route_table.hpp"

namespace dmscore::http::routing {

namespace {

// The field a library message names: the text before its first ": ".
std::string field_of(const std::string& message) {
  const auto colon = message.find(": ");
  if (colon == std::string::npos || colon > 200) return {};
  const std::string f = message.substr(0, colon);
  return f.find(' ') == std::string::npos ? f : std::string();
}

json::value parsed(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(json::object()) : v;
}

json::array checks_json(const SourceServer& s) {
  json::array a;
  for (const auto& c : s.checks) {
    json::array params;
    for (const auto& p : c.params) params.emplace_back(p);
    json::object o{{"id", c.id}, {"name", c.name}, {"result", c.result}, {"params", params}};
    if (!c.error_code.empty()) o["error_code"] = c.error_code;
    if (!c.message.empty()) o["error_or_warn"] = c.message;
    a.push_back(std::move(o));
  }
  return a;
}

// The disks the target will have: those chosen for migration, at their adjusted sizes.
json::object init_target_server(const SourceServer& s, const json::object& report) {
  json::array disks;
  const json::array* reported = nullptr;
  if (const auto* d = report.if_contains("disks"); d && d->is_array()) reported = &d->as_array();
  for (std::size_t i = 0; i < s.disks.size(); ++i) {
    const auto& d = s.disks[i];
    if (!d.need_migration) continue;
    const std::string use =
        d.device_use == "BOOT" || d.device_use == "OS" ? d.device_use : std::string("NORMAL");
    json::object o{{"name", d.name},
                   {"size", static_cast<std::int64_t>(d.adjust_size.value_or(d.size))},
                   {"device_use", use},
                   {"used_size", static_cast<std::int64_t>(d.used_size)}};
    json::array pvs;
    if (reported && i < reported->size())
      if (const auto* p = (*reported)[i].as_object().if_contains("physical_volumes");
          p && p->is_array())
        for (const auto& pv : p->as_array()) {
          json::object q;
          for (const char* k : {"device_use", "file_system", "index", "mount_point", "name", "size",
                                "inode_size", "used_size", "uuid"})
            if (const auto* v = pv.as_object().if_contains(k)) q[k] = *v;
          pvs.push_back(std::move(q));
        }
    o["physical_volumes"] = std::move(pvs);
    disks.push_back(std::move(o));
  }
  return json::object{{"disks", std::move(disks)}};
}

// TaskByServerSource: the source's migration as SMS shows its current task. Speeds in MB/s,
// the speed limit in Mbit/s, times in epoch milliseconds.
json::object current_task(const SourceMigration& m, std::int64_t now_ms) {
  json::object o{
      {"id", m.id},
      {"name", "MIGRATE_SOURCE_SERVER-" + m.id.substr(0, 8)},
      {"type", "MIGRATE_BLOCK"},
      {"state", m.state},
      {"start_date", m.start_date},
      {"speed_limit", static_cast<std::int64_t>(m.rate_limit_bytes_per_sec * 8 / 1000000)},
      {"migrate_speed", static_cast<double>(m.migrate_speed) / 1e6},
      {"compress_rate", 0.0},
      {"start_target_server", false},
      {"project_name", m.project_name},
      {"project_id", m.cluster_id},
      {"remain_seconds", m.remain_seconds < 0 ? 0 : m.remain_seconds},
      {"estimate_complete_time",
       m.remain_seconds < 0 ? std::int64_t{0} : now_ms + m.remain_seconds * 1000}};
  return o;
}

void status_fields(json::object& o, const SourceServer& s, const Service& svc) {
  if (!s.workflow_id.empty())
    if (auto m = svc.migrations().get(s.workflow_id); m.ok())
      o["current_task"] =
          current_task(*m, dmscore::detail::to_millis(
                               (svc.options().env ? svc.options().env : Env::Default())->now()));
  o["id"] = s.id;
  o["name"] = s.name;
  o["state"] = s.state;
  o["connected"] = s.connected;
  o["migration_cycle"] = s.migration_cycle;
  o["add_date"] = s.add_date;
  o["state_action_time"] = s.state_action_time;
  o["stage_action_time"] = s.stage_action_time;
  o["last_visit_time"] = s.last_visit_time;
  o["replicatesize"] = static_cast<std::int64_t>(s.replicate_size);
  o["totalsize"] = static_cast<std::int64_t>(s.total_size);
  o["checks"] = checks_json(s);
  if (!s.migproject_id.empty()) o["migprojectid"] = s.migproject_id;
}

// SourceServersResponseBody: one item of the list.
json::object list_item(const SourceServer& s, const Service& svc) {
  json::value report = parsed(s.report_json);
  const json::object& r = report.as_object();
  json::object o;
  if (!s.ip.empty()) o["ip"] = s.ip;
  for (const char* k : {"os_type", "os_version", "oem_system", "cpu_quantity", "memory", "has_tc"})
    if (const auto* v = r.if_contains(k)) o[k] = *v;
  status_fields(o, s, svc);
  o["init_target_server"] = init_target_server(s, r);
  return o;
}

// ShowServerResponse: the registration data with the status fields.
json::object show_body(const SourceServer& s, const Service& svc) {
  json::value report = parsed(s.report_json);
  json::object o = report.as_object();
  o.erase("state");
  o.erase("migration_cycle");
  o["init_target_server"] = init_target_server(s, report.as_object());
  status_fields(o, s, svc);
  return o;
}

// A decimal query value in [lo, hi]; INVALID_ARGUMENT naming `key` otherwise.
Result<std::int64_t> query_int(const Params& p, const char* key, std::int64_t lo, std::int64_t hi,
                               std::int64_t dflt) {
  auto it = p.query.find(key);
  if (it == p.query.end()) return dflt;
  std::int64_t n = 0;
  const std::string& v = it->second;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || n < lo || n > hi)
    return Status::InvalidArgument(std::string(key) + ": must be an integer " + std::to_string(lo) +
                                   ".." + std::to_string(hi));
  return n;
}

Status read_choices(const json::value* v, const std::string& path, const char* child_key,
                    std::vector<SourceVolumeChoice>& out) {
  if (!v || v->is_null()) return Status::Ok();
  const json::array* a = v->if_array();
  if (!a) return Status::InvalidArgument(path + ": must be an array");
  if (a->size() > 50) return Status::InvalidArgument(path + ": at most 50 items");
  for (std::size_t i = 0; i < a->size(); ++i) {
    const std::string ip = path + "[" + std::to_string(i) + "]";
    SourceVolumeChoice c;
    ObjectReader o((*a)[i], ip);
    o.string("id", c.id, true);
    o.boolean("need_migration", c.need_migration);
    std::optional<std::uint64_t> size;
    o.size("adjust_size", size);
    c.adjust_size = size;
    const json::value* children = child_key ? o.any(child_key) : nullptr;
    if (Status s = o.finish(); !s.ok()) return s;
    if (child_key)
      if (Status s = read_choices(children, ip + "." + child_key, nullptr, c.children); !s.ok())
        return s;
    out.push_back(std::move(c));
  }
  return Status::Ok();
}

// SMS answers an update, a delete and a changestate with 200 and an empty body.
R empty(Call& c) {
  c.raw_body = "";
  return json::value(nullptr);
}

}  // namespace

Response sms_fault(const Status& s, int http_status) {
  int status = 400;
  std::string code = "SMS.9001";  // a field of the request is refused
  switch (s.code()) {
    case Code::kNotFound:
      status = 404;
      code = "SMS.2216";  // the source does not exist
      break;
    case Code::kFailedPrecondition:
      code = "SMS.2015";  // running or stopping work cannot be deleted
      break;
    case Code::kAlreadyExists:
      status = 401;
      code = "SMS.2013";  // the source server already exists
      break;
    case Code::kPermissionDenied:
      status = 403;
      code = "SMS.9004";
      break;
    case Code::kResourceExhausted:
      status = 429;
      code = "APIGW.0308";
      break;
    case Code::kUnavailable:
      status = 503;
      code = "SMS.2007";
      break;
    case Code::kInternal:
      status = 500;
      code = "SMS.2007";
      break;
    default:
      break;
  }
  if (http_status) status = http_status;
  const std::string msg = valid_utf8(s.message());
  json::object body{{"error_code", code}, {"error_msg", msg}};
  if (const std::string f = field_of(msg); !f.empty() && s.code() == Code::kInvalidArgument)
    body["error_param"] = json::array{json::value(f)};
  if (status == 403 || s.code() == Code::kInvalidArgument)
    body["details"] = json::array{json::object{{"error_code", code}, {"error_msg", msg}}};
  return json_response(status, body);
}

void add_sms_routes(RouteTable& add, Service& svc) {
  auto sms = [&add] { add.speaks(Dialect::kSms); };

  // Registration and every later report of an agent.
  add("POST", "/v3/sources", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (c.req.body.find_first_not_of(" \t\r\n") == std::string::npos)
      return Status::InvalidArgument("body: a JSON object is required");
    auto r = svc.sources().report(c.req.body, c.principal.user);
    if (!r.ok()) return r.status();
    return json::value(json::object{{"id", r->id}});
  });
  sms();
  add.last().agent_may_call = true;

  add("GET", "/v3/sources", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"state", "name", "id", "ip", "migproject",
                                          "migration_cycle", "connected", "limit", "offset"});
        !s.ok())
      return s;
    SourceQuery q;
    for (auto [key, out] : {std::pair{"state", &q.state},
                            {"name", &q.name},
                            {"id", &q.id},
                            {"ip", &q.ip},
                            {"migproject", &q.migproject},
                            {"migration_cycle", &q.migration_cycle}})
      if (auto it = c.params.query.find(key); it != c.params.query.end()) *out = it->second;
    if (auto it = c.params.query.find("connected"); it != c.params.query.end()) {
      if (it->second != "true" && it->second != "false")
        return Status::InvalidArgument("connected: must be true or false");
      q.connected = it->second == "true";
    }
    auto limit = query_int(c.params, "limit", 0, 200, 0);
    if (!limit.ok()) return limit.status();
    auto offset = query_int(c.params, "offset", 0, 2147483647, 0);
    if (!offset.ok()) return offset.status();
    q.limit = *limit == 0 ? 200 : *limit;
    q.offset = *offset;
    auto page = svc.sources().list(q);
    if (!page.ok()) return page.status();
    json::array items;
    for (const auto& s : page->sources) items.push_back(list_item(s, svc));
    return json::value(json::object{{"count", page->count}, {"source_servers", std::move(items)}});
  });
  sms();

  add("GET", "/v3/sources/overview", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto o = svc.sources().overview();
    if (!o.ok()) return o.status();
    json::object out;
    for (const auto& [state, n] : o->counts) out[state] = n;
    return json::value(std::move(out));
  });
  sms();

  add("POST", "/v3/sources/delete", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    std::vector<std::string> ids;
    ObjectReader o(*body, "");
    o.strings("ids", ids, 100, true);
    if (Status s = o.finish(); !s.ok()) return s;
    if (Status s = svc.sources().remove_many(ids); !s.ok()) return s;
    return empty(c);
  });
  sms();

  add("GET", "/v3/sources/{source_id}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto s = svc.sources().get(c.params.path["source_id"]);
    if (!s.ok()) return s.status();
    return json::value(show_body(*s, svc));
  });
  sms();

  add("PUT", "/v3/sources/{source_id}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    SourceUpdate u;
    ObjectReader o(*body, "");
    o.string("name", u.name);
    o.string("migprojectid", u.migproject_id);
    const json::value* disks = o.any("disks");
    const json::value* groups = o.any("volume_groups");
    if (Status s = o.finish(); !s.ok()) return s;
    if (Status s = read_choices(disks, "disks", "physical_volumes", u.disks); !s.ok()) return s;
    if (Status s = read_choices(groups, "volume_groups", "logical_volumes", u.volume_groups);
        !s.ok())
      return s;
    auto r = svc.sources().update(c.params.path["source_id"], u);
    if (!r.ok()) return r.status();
    return empty(c);
  });
  sms();

  add("DELETE", "/v3/sources/{source_id}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (Status s = svc.sources().remove(c.params.path["source_id"]); !s.ok()) return s;
    return empty(c);
  });
  sms();

  add("PUT", "/v3/sources/{source_id}/changestate", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    std::string copystate, cycle;
    ObjectReader o(*body, "");
    o.string("copystate", copystate, true);
    o.string("migrationcycle", cycle, true);
    if (Status s = o.finish(); !s.ok()) return s;
    if (Status s = svc.sources().change_state(c.params.path["source_id"], copystate, cycle);
        !s.ok())
      return s;
    return empty(c);
  });
  sms();
  add.last().agent_may_call = true;

  // The agent's poll for its next command (SMS's ShowCommand): START, SYNC, STOP, SKIP, or
  // TASK_NOT_STARTED while no migration is set up; `command_param` names the task. The poll
  // keeps the source connected.
  add("GET", "/v3/sources/{source_id}/command", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    // Only an agent's poll (or an admin acting as one) shows that the agent is alive.
    if (c.principal.role == Role::kViewer)
      return Status::PermissionDenied("polling a source's commands is an agent's call");
    auto cmd = svc.migrations().poll(c.params.path["source_id"]);
    if (!cmd.ok()) return cmd.status();
    json::object o{{"command_name", cmd->name}};
    if (!cmd->task_id.empty())
      o["command_param"] = json::object{{"task_id", cmd->task_id}, {"bucket", ""}};
    return json::value(std::move(o));
  });
  sms();
  add.last().agent_may_call = true;
  // A GET that writes (last_visit_time): on the blocking lane, as writes are.
  add.last().lane = Lane::kBlocking;

  // The agent's result of a command (SMS's UpdateCommandStatus): {command_name, result:
  // success|fail, result_detail: {...}}. A failure puts the migration in error with the detail.
  add("POST", "/v3/sources/{source_id}/command_result", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (c.principal.role == Role::kViewer)
      return Status::PermissionDenied("reporting a command's result is an agent's call");
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    std::string name, result;
    ObjectReader o(*body, "");
    o.string("command_name", name, true);
    o.string("result", result, true);
    const json::value* detail = o.any("result_detail");
    if (Status s = o.finish(); !s.ok()) return s;
    if (result != "success" && result != "fail")
      return Status::InvalidArgument("result: must be success or fail");
    if (!detail || !detail->is_object())
      return Status::InvalidArgument("result_detail: an object is required");
    std::string text = json::serialize(*detail);
    if (const auto* msg = detail->as_object().if_contains("msg"); msg && msg->is_string())
      text = std::string(msg->as_string());
    if (Status s = svc.migrations().command_result(c.params.path["source_id"], name,
                                                   result == "success", text);
        !s.ok())
      return s;
    return empty(c);
  });
  sms();
  add.last().agent_may_call = true;
  add.last().lane = Lane::kBlocking;
}

}  // namespace dmscore::http::routing
