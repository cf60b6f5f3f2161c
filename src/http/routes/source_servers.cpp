// Source servers in the native API's style (camelCase, token paging, the gRPC-gateway error
// body), over the same library calls as SMS's routes (sms.cpp).
#include "http/route_table.hpp"

namespace dmscore::http::routing {

namespace {

std::string ms_time(std::int64_t ms) {
  return ms > 0 ? http::detail::rfc3339(Env::SystemTime(std::chrono::milliseconds(ms)))
                : std::string();
}

json::object to_json(const SourceServer& s, bool with_report) {
  json::array checks;
  for (const auto& c : s.checks) {
    json::array params;
    for (const auto& p : c.params) params.emplace_back(p);
    checks.push_back(json::object{{"id", c.id},
                                  {"name", c.name},
                                  {"result", c.result},
                                  {"errorCode", c.error_code},
                                  {"message", c.message},
                                  {"params", std::move(params)}});
  }
  json::array disks;
  for (const auto& d : s.disks) {
    json::object o{{"name", d.name},
                   {"deviceUse", d.device_use},
                   {"partitionStyle", d.partition_style},
                   {"size", std::to_string(d.size)},
                   {"usedSize", std::to_string(d.used_size)},
                   {"osDisk", d.os_disk},
                   {"needMigration", d.need_migration}};
    if (d.adjust_size) o["adjustSize"] = std::to_string(*d.adjust_size);
    disks.push_back(std::move(o));
  }
  json::object o{{"id", s.id},
                 {"name", s.name},
                 {"hostname", s.hostname},
                 {"ip", s.ip},
                 {"ipv6", s.ipv6},
                 {"osType", s.os_type},
                 {"osVersion", s.os_version},
                 {"firmware", s.firmware},
                 {"agentVersion", s.agent_version},
                 {"kernelVersion", s.kernel_version},
                 {"cpuQuantity", s.cpu_quantity},
                 {"memory", std::to_string(s.memory)},
                 {"state", s.state},
                 {"migrationCycle", s.migration_cycle},
                 {"connected", s.connected},
                 {"migprojectId", s.migproject_id},
                 {"checks", std::move(checks)},
                 {"disks", std::move(disks)},
                 {"totalSize", std::to_string(s.total_size)},
                 {"replicatedSize", std::to_string(s.replicate_size)},
                 {"workflowId", s.workflow_id},
                 {"reportedBy", s.reported_by}};
  for (auto [key, ms] : {std::pair{"addedAt", s.add_date},
                         {"stateChangedAt", s.state_action_time},
                         {"stageChangedAt", s.stage_action_time},
                         {"lastVisitAt", s.last_visit_time}})
    if (ms > 0) o[key] = ms_time(ms);
  if (with_report) {
    boost::system::error_code ec;
    json::value r = json::parse(s.report_json, ec);
    if (!ec) o["report"] = std::move(r);
  }
  return o;
}

}  // namespace

void add_source_server_routes(RouteTable& add, Service& svc) {
  add("GET", "/api/v1/source-servers", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken", "state", "name", "ip",
                                          "migrationCycle", "connected"});
        !s.ok())
      return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    SourceQuery q;
    q.limit = *n == 0 ? 100 : *n;
    q.page_token = query(c.params, "nextPageToken");
    for (auto [key, out] : {std::pair{"state", &q.state},
                            {"name", &q.name},
                            {"ip", &q.ip},
                            {"migrationCycle", &q.migration_cycle}})
      if (auto it = c.params.query.find(key); it != c.params.query.end()) *out = it->second;
    if (auto it = c.params.query.find("connected"); it != c.params.query.end()) {
      if (it->second != "true" && it->second != "false")
        return Status::InvalidArgument("connected: must be true or false");
      q.connected = it->second == "true";
    }
    auto page = svc.sources().list(q);
    if (!page.ok()) {
      // The library names SMS's spelling of the field.
      if (page.status().message().rfind("migration_cycle:", 0) == 0)
        return Status::InvalidArgument("migrationCycle" + page.status().message().substr(15));
      return page.status();
    }
    json::array a;
    for (const auto& s : page->sources) a.push_back(to_json(s, false));
    return json::value(
        json::object{{"sourceServers", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add("GET", "/api/v1/source-servers/{sourceServerId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto s = svc.sources().get(c.params.path["sourceServerId"]);
    if (!s.ok()) return s.status();
    return json::value(json::object{{"sourceServer", to_json(*s, true)}});
  });
  add("DELETE", "/api/v1/source-servers/{sourceServerId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (Status s = svc.sources().remove(c.params.path["sourceServerId"]); !s.ok()) return s;
    return json::value(ok_body());
  });
}

}  // namespace dmscore::http::routing
