// Migrations of source servers in the native API's style, and the agent's data stream
// (migrations.hpp). SMS's command channel is in sms.cpp.
#include <charconv>

#include "http/route_table.hpp"

namespace dmscore::http::routing {

namespace {

std::string ms_time(std::int64_t ms) {
  return ms > 0 ? http::detail::rfc3339(Env::SystemTime(std::chrono::milliseconds(ms)))
                : std::string();
}

json::object to_json(const SourceMigration& m) {
  json::array disks;
  for (const auto& d : m.disks)
    disks.push_back(json::object{{"name", d.name},
                                 {"size", std::to_string(d.size)},
                                 {"volumeName", d.volume_name},
                                 {"volumeId", d.volume_id},
                                 {"pass", d.pass},
                                 {"ackedOffset", std::to_string(d.acked)},
                                 {"passBytes", std::to_string(d.pass_bytes)},
                                 {"totalBytes", std::to_string(d.total_bytes)},
                                 {"resentBytes", std::to_string(d.resent_bytes)},
                                 {"sessions", d.sessions}});
  json::object o{{"id", m.id},
                 {"workflowId", m.id},
                 {"sourceServerId", m.source_id},
                 {"clusterId", m.cluster_id},
                 {"projectName", m.project_name},
                 {"syncing", m.syncing},
                 {"state", m.state},
                 {"stage", m.stage},
                 {"pass", m.pass},
                 {"passesWanted", m.passes_wanted},
                 {"cutoverRequested", m.cutover_requested},
                 {"cutoverPass", m.cutover_pass},
                 {"stopped", m.stopped},
                 {"error", m.error},
                 {"chunkBytes", std::to_string(m.chunk_bytes)},
                 {"windowBytes", std::to_string(m.window_bytes)},
                 {"rateLimitBytesPerSec", std::to_string(m.rate_limit_bytes_per_sec)},
                 {"totalSize", std::to_string(m.total_size)},
                 {"replicatedSize", std::to_string(m.replicate_size)},
                 {"migrateSpeed", std::to_string(m.migrate_speed)},
                 {"remainSeconds", m.remain_seconds},
                 {"startedAt", ms_time(m.start_date)},
                 {"disks", std::move(disks)}};
  return o;
}

// A decimal offset from the query; INVALID_ARGUMENT naming it.
Result<std::uint64_t> offset_param(const Params& p, const char* key) {
  const std::string v = query(p, key);
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size())
    return Status::InvalidArgument(std::string(key) + ": must be a decimal byte offset");
  return n;
}

// An operator's action on the source's running migration: body {} or none.
Handler steer(Service& svc, Status (Migrations::*action)(const std::string&)) {
  return [&svc, action](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, true);
    if (!body.ok()) return body.status();
    ObjectReader o(*body, "");
    if (Status s = o.finish(); !s.ok()) return s;
    if (Status s = (svc.migrations().*action)(c.params.path["sourceServerId"]); !s.ok()) return s;
    return json::value(ok_body());
  };
}

}  // namespace

void add_migration_routes(RouteTable& add, Service& svc) {
  add("POST", "/api/v1/source-servers/{sourceServerId}/migrations", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    MigrationRequest r;
    r.source_id = c.params.path["sourceServerId"];
    ObjectReader o(*body, "");
    o.string("clusterId", r.cluster_id, true);
    o.string("projectName", r.project_name, false);
    o.boolean("syncing", r.syncing);
    o.strings("disks", r.disks, 64);
    std::optional<std::uint64_t> rate;
    o.size("rateLimitBytesPerSec", rate);
    if (Status s = o.finish(); !s.ok()) return s;
    r.rate_limit_bytes_per_sec = rate.value_or(0);
    auto id = svc.migrations().start(r);
    if (!id.ok()) return id.status();
    return workflow_id_body(WorkflowId(*id));
  });
  add("GET", "/api/v1/source-servers/{sourceServerId}/migration", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto m = svc.migrations().of_source(c.params.path["sourceServerId"]);
    if (!m.ok()) return m.status();
    return json::value(json::object{{"migration", to_json(*m)}});
  });
  add.last().agent_may_call = true;
  add("GET", "/api/v1/source-servers/{sourceServerId}/migrations/{migrationId}",
      [&svc](Call& c) -> R {
        if (Status s = check_query(c.params, {}); !s.ok()) return s;
        auto m = svc.migrations().get(c.params.path["migrationId"]);
        if (!m.ok()) return m.status();
        if (m->source_id != c.params.path["sourceServerId"])
          return Status::NotFound("source server has no migration " +
                                  c.params.path["migrationId"].substr(0, 64));
        return json::value(json::object{{"migration", to_json(*m)}});
      });
  add.last().agent_may_call = true;
  add("POST", "/api/v1/source-servers/{sourceServerId}/sync", steer(svc, &Migrations::sync));
  add("POST", "/api/v1/source-servers/{sourceServerId}/cutover", steer(svc, &Migrations::cutover));
  add("POST", "/api/v1/source-servers/{sourceServerId}/stop", steer(svc, &Migrations::stop));
  add("POST", "/api/v1/source-servers/{sourceServerId}/start", steer(svc, &Migrations::resume));

  // The agent's data stream.
  add("POST",
      "/api/v1/source-servers/{sourceServerId}/migrations/{migrationId}/disks/{disk}/session",
      [&svc](Call& c) -> R {
        if (Status s = check_query(c.params, {}); !s.ok()) return s;
        auto s = svc.migrations().open_disk(c.params.path["sourceServerId"],
                                            c.params.path["migrationId"], c.params.path["disk"]);
        if (!s.ok()) return s.status();
        return json::value(
            json::object{{"session", s->session},
                         {"pass", s->pass},
                         {"size", std::to_string(s->size)},
                         {"ackedOffset", std::to_string(s->acked)},
                         {"done", s->done},
                         {"chunkBytes", std::to_string(s->chunk_bytes)},
                         {"windowBytes", std::to_string(s->window_bytes)},
                         {"batchBytes", std::to_string(s->batch_bytes)},
                         {"rateLimitBytesPerSec", std::to_string(s->rate_limit_bytes_per_sec)}});
      });
  add.last().agent_may_call = true;
  add("GET",
      "/api/v1/source-servers/{sourceServerId}/migrations/{migrationId}/disks/{disk}/checksums",
      [&svc](Call& c) -> R {
        if (Status s = check_query(c.params, {}); !s.ok()) return s;
        auto sums = svc.migrations().checksums(c.params.path["sourceServerId"],
                                               c.params.path["migrationId"], c.params.path["disk"]);
        if (!sums.ok()) return sums.status();
        c.raw_body = std::move(sums).value();
        c.raw_content_type = "application/octet-stream";
        return json::value();
      });
  add.last().agent_may_call = true;
  // Reads a file of the service's: off the I/O thread.
  add.last().lane = Lane::kBlocking;
  add("POST", "/api/v1/source-servers/{sourceServerId}/migrations/{migrationId}/disks/{disk}/data",
      [&svc](Call& c) -> R {
        if (Status s = check_query(c.params, {"session", "from", "to"}); !s.ok()) return s;
        const std::string_view type = c.req.header("Content-Type");
        if (type.substr(0, type.find(';')) != "application/octet-stream")
          return Status::InvalidArgument("Content-Type: must be application/octet-stream");
        auto from = offset_param(c.params, "from");
        if (!from.ok()) return from.status();
        auto to = offset_param(c.params, "to");
        if (!to.ok()) return to.status();
        auto ack = svc.migrations().write_window(
            c.params.path["sourceServerId"], c.params.path["migrationId"], c.params.path["disk"],
            query(c.params, "session"), *from, *to, c.req.body);
        if (!ack.ok()) return ack.status();
        return json::value(json::object{{"receivedOffset", std::to_string(ack->received)},
                                        {"ackedOffset", std::to_string(ack->acked)},
                                        {"passDone", ack->pass_done},
                                        {"command", ack->command}});
      });
  add.last().agent_may_call = true;
  // Writes into a cluster's volume.
  add.calls_clusters();
  add.last().body_limit = kStreamBodyLimit;
}

}  // namespace dmscore::http::routing
