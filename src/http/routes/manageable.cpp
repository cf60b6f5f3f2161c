// Adopting what exists on a cluster: its manageable volumes (summary and detail), managing one,
// and unmanaging a volume. Paging follows Cinder (manageable.hpp).
#include "http/route_table.hpp"

namespace dmscore::http::routing {

namespace {

json::value reference_json(const std::string& ref) { return json::object{{"source-name", ref}}; }

json::value manageable_json(const ManageableObject& m, bool detail, bool snapshot) {
  json::object o{{"reference", reference_json(m.reference)},
                 {"size", size_in_gib(m.size)},
                 {"safeToManage", m.safe_to_manage}};
  if (snapshot) o["sourceReference"] = reference_json(m.source_reference);
  if (detail) {
    auto text_or_null = [](const std::string& s) {
      return s.empty() ? json::value() : json::value(s);
    };
    o["reasonNotSafe"] = text_or_null(m.reason_not_safe);
    o[snapshot ? "snapshotId" : "volumeId"] = text_or_null(m.managed_id);
    o["extraInfo"] = text_or_null(m.extra_info);
  }
  return o;
}

// The body of a manage request: {ref: {source-name}, projectName, name?, description?,
// metadata?} and, for a snapshot, volumeId.
Result<ManageRequest> manage_request(const Request& req, bool snapshot) {
  auto body = parse_body(req, false);
  if (!body.ok()) return body.status();
  ManageRequest r;
  ObjectReader o(*body, "");
  if (const json::value* ref = o.object("ref", true)) {
    ObjectReader ro(*ref, "ref");
    ro.string("source-name", r.reference, true);
    if (Status s = ro.finish(); !s.ok()) return s;
  }
  o.string("name", r.name);
  o.string("projectName", r.project_name, true);
  if (snapshot) o.string("volumeId", r.volume_id, true);
  o.string("description", r.description);
  if (const json::value* md = o.object("metadata")) {
    for (const auto& [k, v] : md->as_object()) {
      if (!v.is_string())
        return Status::InvalidArgument("metadata." + std::string(k).substr(0, 64) +
                                       ": must be a string");
      r.metadata[std::string(k)] = std::string(v.get_string());
    }
  }
  if (Status s = o.finish(); !s.ok()) return s;
  return r;
}

Result<ManageableQuery> manageable_query(const Params& p) {
  if (Status s = check_query(p, {"sort", "sort_key", "sort_dir", "marker", "limit", "offset"});
      !s.ok())
    return s;
  return manageable_query_of(p);
}

}  // namespace

void add_manageable_routes(RouteTable& add, Service& svc) {
  const std::string base = "/api/v1/clusters/{clusterId}/manageable-volumes";
  const std::string snaps = "/api/v1/clusters/{clusterId}/manageable-snapshots";
  for (bool detail : {false, true}) {
    add("GET", detail ? base + "/detail" : base, [&svc, detail](Call& c) -> R {
      auto q = manageable_query(c.params);
      if (!q.ok()) return q.status();
      auto page = svc.volumes().list_manageable(ClusterId(c.params.path["clusterId"]), *q);
      if (!page.ok()) return page.status();
      json::array a;
      for (const auto& m : *page) a.push_back(manageable_json(m, detail, false));
      return json::value(json::object{{"manageableVolumes", std::move(a)}});
    });
    add.calls_clusters();
    add("GET", detail ? snaps + "/detail" : snaps, [&svc, detail](Call& c) -> R {
      auto q = manageable_query(c.params);
      if (!q.ok()) return q.status();
      auto page =
          svc.volumes().list_manageable_snapshots(ClusterId(c.params.path["clusterId"]), *q);
      if (!page.ok()) return page.status();
      json::array a;
      for (const auto& m : *page) a.push_back(manageable_json(m, detail, true));
      return json::value(json::object{{"manageableSnapshots", std::move(a)}});
    });
    add.calls_clusters();
  }
  add("POST", base, [&svc](Call& c) -> R {
    auto r = manage_request(c.req, false);
    if (!r.ok()) return r.status();
    auto started = svc.volumes().manage(ClusterId(c.params.path["clusterId"]), *r);
    if (!started.ok()) return started.status();
    return json::value(
        json::object{{"workflowId", started->workflow_id}, {"volumeId", started->volume_id}});
  });
  add.calls_clusters();
  add("POST", snaps, [&svc](Call& c) -> R {
    auto r = manage_request(c.req, true);
    if (!r.ok()) return r.status();
    auto started = svc.volumes().manage_snapshot(ClusterId(c.params.path["clusterId"]), *r);
    if (!started.ok()) return started.status();
    return json::value(json::object{{"workflowId", started->workflow_id},
                                    {"snapshotId", started->snapshot_id},
                                    {"volumeId", started->volume_id}});
  });
  add.calls_clusters();
  for (bool snapshot : {false, true}) {
    add("POST",
        snapshot
            ? "/api/v1/clusters/{clusterId}/projects/{projectName}/snapshots/{snapshotId}/unmanage"
            : "/api/v1/clusters/{clusterId}/projects/{projectName}/volumes/{volumeId}/unmanage",
        [&svc, snapshot](Call& c) -> R {
          auto body = parse_body(c.req, true);
          if (!body.ok()) return body.status();
          ObjectReader o(*body, "");
          if (Status s = o.finish(); !s.ok()) return s;
          const ClusterId cid(c.params.path["clusterId"]);
          const std::string& p = c.params.path["projectName"];
          const std::string& id = c.params.path[snapshot ? "snapshotId" : "volumeId"];
          auto where = snapshot ? svc.volumes().unmanage_snapshot({cid, p, id})
                                : svc.volumes().unmanage({cid, p, id});
          if (!where.ok()) return where.status();
          return json::value(json::object{{"reference", reference_json(*where)}});
        });
    add.calls_clusters();
  }
}

}  // namespace dmscore::http::routing
